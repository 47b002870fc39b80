"""Commands have no network but an allowlisting proxy, and limits on memory, /tmp and disk.

The proxy here is the one agent hosts run (Debian's tinyproxy with a deny-by-default host
filter), reached the same way: a unix socket (socat on this side, systemd-socket-proxyd on
agent hosts) bound into the sandbox, relayed to 127.0.0.1:3128 inside it.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from agent_app import egress, sandbox
from agent_app.cli import build_worker
from agent_app.sandbox import CommandRunner, Policy, SandboxUnavailable
from agent_app.shell import ShellSession
from agent_app.workspace import TaskWorkspace
from lab.services import free_port
from tests.agent.conftest import REPO, needs_bwrap

pytestmark = [
    needs_bwrap,
    pytest.mark.skipif(
        not (shutil.which("tinyproxy") and shutil.which("socat")),
        reason="tinyproxy and socat are not installed (`make setup` installs them)",
    ),
]

# Inside the sandbox: fetch a URL through the proxy variables when set ("localhost" is in
# no_proxy, for servers a test suite starts inside; here it stands for an allowed registry).
FETCH = """env -u no_proxy -u NO_PROXY python3 - <<'EOF'
import urllib.request
try:
    print("STATUS", urllib.request.urlopen("{url}", timeout=5).status)
except Exception as exc:
    print("ERROR", exc)
EOF"""
TUNNEL = """python3 - <<'EOF'
import http.client
connection = http.client.HTTPConnection("127.0.0.1", 3128, timeout=5)
connection.set_tunnel("{host}", {port})
try:
    connection.request("GET", "/")
    print("STATUS", connection.getresponse().status)
except OSError as exc:
    print("ERROR", exc)
EOF"""
CONNECT = """python3 - <<'EOF'
import socket
try:
    socket.create_connection(("{host}", {port}), timeout=3).close()
    print("CONNECTED")
except OSError as exc:
    print("ERROR", exc)
EOF"""


class Recorder(http.server.BaseHTTPRequestHandler):
    """A web server on the host's loopback that counts what reaches it."""

    hits: ClassVar[list[str]] = []

    def do_GET(self):
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host\n")

    def log_message(self, *args):
        pass


@pytest.fixture
def egress_proxy(tmp_path):
    """A web server, tinyproxy allowing only the name ``localhost``, and the socket to it."""
    Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    (tmp_path / "allow").write_text("^localhost$\n")
    (tmp_path / "tinyproxy.conf").write_text(
        f"User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nAllow 127.0.0.1\n"
        "Timeout 30\nLogLevel Info\nMaxClients 20\nConnectPort 443\nDisableViaHeader Yes\n"
        f'FilterDefaultDeny Yes\nFilterExtended On\nFilterURLs Off\nFilter "{tmp_path}/allow"\n'
    )
    for name in ("allow", "tinyproxy.conf"):
        (tmp_path / name).chmod(0o644)
    tmp_path.chmod(0o755)
    proxy = subprocess.Popen(
        ["tinyproxy", "-d", "-c", str(tmp_path / "tinyproxy.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sock = tmp_path / "egress.sock"
    relay = subprocess.Popen(
        ["socat", f"UNIX-LISTEN:{sock},fork,mode=600", f"TCP:127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not sock.exists() or not _listening(port):
        assert time.monotonic() < deadline, "tinyproxy or socat did not start"
        time.sleep(0.05)
    try:
        yield sock, server.server_address[1]
    finally:
        for process in (relay, proxy):
            process.terminate()
            process.wait(10)
        server.shutdown()
        server.server_close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def run(policy: Policy, command: str, cwd) -> str:
    return CommandRunner(policy, secrets=[]).run(command, cwd, timeout=60).output


def test_an_allowed_host_answers_through_the_proxy(egress_proxy, tmp_path):
    sock, port = egress_proxy
    out = run(
        Policy(egress_socket=str(sock)), FETCH.format(url=f"http://localhost:{port}/ok"), tmp_path
    )
    assert "STATUS 200" in out, out
    assert Recorder.hits == ["/ok"]


def test_any_other_host_is_refused_by_the_proxy(egress_proxy, tmp_path):
    sock, port = egress_proxy
    policy = Policy(egress_socket=str(sock))
    # The same server under a name the filter does not list, and an HTTPS tunnel to it.
    out = run(policy, FETCH.format(url=f"http://127.0.0.1:{port}/leak"), tmp_path)
    assert "ERROR HTTP Error 403" in out, out
    for host in ("127.0.0.1", "localhost"):  # not listed; listed, but CONNECT is for 443 only
        tunnel = run(policy, TUNNEL.format(host=host, port=port), tmp_path)
        assert "ERROR Tunnel connection failed: 403" in tunnel, tunnel
    assert Recorder.hits == []


def test_nothing_is_reachable_without_the_proxy(egress_proxy, tmp_path):
    sock, port = egress_proxy
    host_address = _outside_address()
    for policy in (Policy(egress_socket=str(sock)), Policy()):
        # The host's loopback services (coordinator, Redis, agent API) are not this loopback.
        direct = run(policy, CONNECT.format(host="127.0.0.1", port=port), tmp_path)
        assert "ERROR" in direct and "CONNECTED" not in direct, direct
        for host in ("169.254.169.254", host_address):
            out = run(policy, CONNECT.format(host=host, port=80), tmp_path)
            assert "Network is unreachable" in out, out
    # Without an egress socket there is no proxy to ask either.
    out = run(Policy(), FETCH.format(url=f"http://localhost:{port}/"), tmp_path)
    assert "ERROR" in out and "STATUS" not in out, out
    assert Recorder.hits == []


def test_the_models_persistent_shell_has_the_same_network(egress_proxy, tmp_path):
    """One shell for the whole task: the relay it starts with serves every command, and what
    the proxy refuses stays refused."""
    sock, port = egress_proxy
    session = ShellSession(CommandRunner(Policy(egress_socket=str(sock)), secrets=[]), tmp_path)
    try:
        allowed = session.run(FETCH.format(url=f"http://localhost:{port}/ok"), 60, None)
        refused = session.run(FETCH.format(url=f"http://127.0.0.1:{port}/leak"), 60, None)
        direct = session.run(CONNECT.format(host="127.0.0.1", port=port), 60, None)
        again = session.run(FETCH.format(url=f"http://localhost:{port}/again"), 60, None)
    finally:
        session.close()
    assert "STATUS 200" in allowed.output and "STATUS 200" in again.output, allowed
    assert "ERROR HTTP Error 403" in refused.output, refused
    assert "ERROR" in direct.output and "CONNECTED" not in direct.output, direct
    assert Recorder.hits == ["/ok", "/again"]


def _outside_address() -> str:
    """An address of this machine that is not loopback (what other hosts would be)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 9))  # no packet is sent: this only picks a route
        return probe.getsockname()[0]
    except OSError:
        return "10.255.255.254"
    finally:
        probe.close()


def test_a_repository_with_its_own_proxy_gets_it(egress_proxy, cluster_factory, tmp_path):
    sock, port = egress_proxy
    with cluster_factory([]) as cluster:
        config_file = cluster.agent_config("agent-1")
        config = cluster.configs["agent-1"]
        config.egress_repository_sockets = {REPO: str(sock)}  # the others: no proxy at all
        runner = build_worker(config, str(config_file)).runner
        assert runner.sandbox_problem() is None  # both the default and REPO's policy probed
        workspace = TaskWorkspace(Path(config.workspace_root) / "tasks" / "task-1")
        workspace.repo.mkdir(parents=True)
        fetch = FETCH.format(url=f"http://localhost:{port}/own")
        for repository, answer in ((REPO, "STATUS 200"), ("acme/other", "ERROR")):
            commands = runner.command_runner({"repository": repository}, workspace)
            assert answer in commands.run(fetch, workspace.repo, timeout=60).output
        assert Recorder.hits == ["/own"]
        config.egress_repository_sockets = {REPO: str(tmp_path / "gone.sock")}
        assert "egress proxy socket" in runner.sandbox_problem()


def test_the_probe_checks_the_relay_and_the_socket(egress_proxy, tmp_path):
    sock, _port = egress_proxy
    config_dir, root = tmp_path / "etc", tmp_path / "var"
    for folder in (config_dir, root / "tasks"):
        folder.mkdir(parents=True)
    sandbox.probe(Policy(hidden=(config_dir, root), egress_socket=str(sock)), root / "tasks" / "p")
    missing = Policy(hidden=(config_dir, root), egress_socket=str(tmp_path / "gone.sock"))
    with pytest.raises(SandboxUnavailable, match=r"egress proxy socket .* does not exist"):
        sandbox.probe(missing, root / "tasks" / "p")
    no_socat = tmp_path / "bin"
    no_socat.mkdir()
    for tool in ("bwrap", "bash", "prlimit", "grep", "sleep", "ls", "touch", "rm", "tail",
                 "cut", "tr", "git"):  # fmt: skip
        (no_socat / tool).symlink_to(shutil.which(tool))
    without = Policy(
        hidden=(config_dir, root),
        readable=(no_socat,),  # /tmp is the sandbox's own: bind the folder in
        egress_socket=str(sock),
        path=str(no_socat),
    )
    with pytest.raises(SandboxUnavailable, match="egress proxy relay does not listen"):
        sandbox.probe(without, root / "tasks" / "p")


def test_the_defaults_are_the_registries_and_proxy_pip_uses(tmp_path, monkeypatch):
    from pip._internal.models.index import PyPI

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip's own default index
    monkeypatch.setenv("PATH", str(tmp_path))  # and no npm
    assert egress.registry_hosts(egress.pip_settings()) == sorted(
        {PyPI.netloc, PyPI.file_storage_domain}
    )
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://mirror.example.internal/simple\n"
        "extra-index-url = https://extra.example.internal/simple\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert egress.registry_hosts(egress.pip_settings()) == [
        "extra.example.internal",
        "mirror.example.internal",
    ]
    assert egress.upstream_proxy(egress.pip_settings()) == ""
    conf.write_text(
        "[global]\nextra-index-url = https://extra.example.internal/simple\n"
        "proxy = http://10.9.8.7:3142\n"
    )
    assert egress.upstream_proxy(egress.pip_settings()) == "http://10.9.8.7:3142"
    assert egress.registry_hosts(egress.pip_settings()) == sorted(
        {"extra.example.internal", PyPI.netloc, PyPI.file_storage_domain}
    )
    # Go's module proxies, as `go env GOPROXY` lists them (a stand-in go on the PATH).
    go = tmp_path / "go"
    go.write_text(
        "#!/bin/sh\necho 'https://goproxy.example.internal/mod|https://b.example.internal,direct'\n"
    )
    go.chmod(0o755)
    found = egress.registry_hosts(egress.pip_settings())
    assert {"goproxy.example.internal", "b.example.internal"} <= set(found)
    assert "direct" not in found
