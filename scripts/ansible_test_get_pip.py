"""Stand-in for the get-pip.py that ansible-test downloads to put pip in its test virtualenvs.

ansible-test fetches that script from its own CI file server, which a machine that reaches only
the package index cannot. ansible-test runs this file instead (``scripts/ansible-test-sanity``
puts it in ansible-test's cache): pip comes from Python's own ``ensurepip``, then pip installs
what ansible-test asked for from the package index, as get-pip.py would.
"""

import ensurepip
import os
import subprocess
import sys

# get-pip.py's own flags; everything else is an argument of `pip install`.
GET_PIP_FLAGS = {"--no-setuptools", "--no-wheel"}

environment = dict(os.environ)  # ensurepip turns pip's configuration off in os.environ
ensurepip.bootstrap(upgrade=True)
arguments = [a for a in sys.argv[1:] if a not in GET_PIP_FLAGS]
command = [sys.executable, "-m", "pip", "install", *arguments]
sys.exit(subprocess.call(command, env=environment))
