"""Running the project's Ansible modules in-process, as Ansible would, for their unit tests."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic

ROOT = Path(__file__).resolve().parent.parent
# The project's Ansible collection (its roles and modules), as ansible.cfg uses it in place.
COLLECTION = ROOT / "ansible_collections/claude_code_cluster/cluster"


def load(name: str, path: Path):
    """Import a file of the project that is not in a package (a role's script) as ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_module(module, args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """Run an Ansible module's main(); its exit (or failure) JSON as a dict."""
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}
    payload["ANSIBLE_MODULE_ARGS"]["_ansible_diff"] = True
    stdout = io.StringIO()
    old = basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE
    basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE = json.dumps(payload).encode(), "legacy"
    try:
        with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
            module.main()
    finally:
        basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE = old
    return json.loads(stdout.getvalue())
