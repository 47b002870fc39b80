"""The network of commands: nothing but an allowlisting HTTP(S) proxy.

Commands run in a network namespace of their own (``bwrap --unshare-net``) where only loopback
exists, so the coordinator, Redis, PostgreSQL, other hosts and link-local metadata addresses
cannot be reached at all. Where the agent host runs the egress proxy (the agent role: tinyproxy
with a deny-by-default host filter, offered to the agent's user on a unix socket), a relay
inside the sandbox (socat) offers that socket on 127.0.0.1:3128 and the usual proxy variables
point tools at it. Which hosts pass is decided by the proxy, outside the agent's Python, and an
nftables rule keeps the proxy itself off private and link-local addresses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

PROXY_PORT = 3128
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
#: Where the proxy's socket appears inside the sandbox (on its private /tmp).
SOCKET_IN_SANDBOX = "/tmp/.egress-proxy.sock"  # noqa: S108 - inside the sandbox's own tmpfs
#: The relay's line in /proc/net/tcp once it listens: 127.0.0.1:PROXY_PORT in hex, state 0A.
LISTENING = f" 0100007F:{PROXY_PORT:04X} 00000000:0000 0A"
# Start the relay, wait (at most ~2 s) until it listens, then become the command. `read` is a
# builtin, so waiting costs no process per look. socat exits with the sandbox (bwrap kills its
# PID namespace).
RELAY = f"""
socat TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:{SOCKET_IN_SANDBOX} &
tries=0
until read -r -d '' tcp < /proc/net/tcp; [[ $tcp == *"{LISTENING}"* ]]; do
    tries=$((tries + 1))
    [ "$tries" -le 1000 ] || {{ echo "egress: the proxy relay did not start" >&2; break; }}
    sleep 0.002
done
exec bash -c "$1"
"""


def environment() -> dict[str, str]:
    """Variables that send HTTP(S) clients (curl, pip, npm, go, cargo) to the relay; host
    settings such as pip.conf's ``proxy`` would point outside the namespace."""
    env = {name: PROXY_URL for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    env |= {"no_proxy": "localhost,127.0.0.1,::1", "NO_PROXY": "localhost,127.0.0.1,::1"}
    env |= {"PIP_PROXY": PROXY_URL, "npm_config_proxy": PROXY_URL}
    env["npm_config_https_proxy"] = PROXY_URL
    return env


def relay_command(command: str) -> list[str]:
    """``bash -c command``, behind the relay to the egress proxy."""
    return ["bash", "-c", RELAY, "egress", command]


def pip_settings(python: str = sys.executable) -> dict[str, list[str]]:
    """pip's configuration on this host (its files and PIP_* variables), by option name."""
    settings: dict[str, list[str]] = {}
    for line in _run([python, "-m", "pip", "config", "list"]).splitlines():
        key, _, value = line.partition("=")
        settings.setdefault(key.rpartition(".")[2], []).append(value.strip("'\""))
    return settings


def registry_hosts(settings: dict[str, list[str]], python: str = sys.executable) -> list[str]:
    """Hosts of the package registries this host's tools use: pip's configured index URLs (in
    ``settings``, from pip_settings; else pip's own default index and its file host), npm's
    registry when npm is installed and Go's module proxies when Go is. The agent role allows
    them by default; other ecosystems (crates, Maven) are added with agent_egress_allow."""
    urls = " ".join(settings.get("index-url", []) + settings.get("extra-index-url", []))
    hosts = [urlsplit(url).hostname or "" for url in urls.split()]  # file:// needs no network
    if not settings.get("index-url"):
        hosts += _run([python, "-c", _PIP_DEFAULT_INDEX]).split()
    if shutil.which("npm"):
        hosts.append(urlsplit(_run(["npm", "config", "get", "registry"]).strip()).hostname or "")
    if shutil.which("go"):  # GOPROXY: URLs separated by , or |, besides "direct" and "off"
        proxies = re.split(r"[,|]", _run(["go", "env", "GOPROXY"]).strip())
        hosts += [urlsplit(url).hostname or "" for url in proxies if "://" in url]
    return sorted({h for h in hosts if h})


def upstream_proxy(settings: dict[str, list[str]]) -> str:
    """The proxy this host's pip goes through (pip.conf ``proxy`` in ``settings``), or "":
    hosts without a route to the internet reach the registries through one, and so must the
    egress proxy."""
    return next(iter(settings.get("proxy", [])), "")


# pip's built-in index and the host its files come from (named by pip, not by us).
_PIP_DEFAULT_INDEX = (
    "from pip._internal.models.index import PyPI; print(PyPI.netloc, PyPI.file_storage_domain)"
)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
