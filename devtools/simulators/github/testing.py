"""Helpers for tests and demos that drive the simulator: a running server and a webhook receiver."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from github import Auth, Github

from simulators.github.app import create_app
from simulators.github.config import SimulatorConfig
from simulators.github.simulator import GitHubSimulator
from simulators.server import BackgroundServer


def push_commit(
    url: str, repo: str, login: str, branch: str, path: str, workdir: Path, *, new: bool = False
) -> str:
    """What a person does with git: clone ``repo`` as ``login``, commit a file ``path`` to
    ``branch`` (a ``new`` one from the default branch) and push it; returns the commit."""
    remote = url.replace("://", f"://x-access-token:{TOKENS[login]}@", 1) + f"/{repo}.git"
    checkout = workdir / f"{login}-{branch.replace('/', '-')}-{path.replace('/', '-')}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir)}
    for who in ("AUTHOR", "COMMITTER"):
        env |= {f"GIT_{who}_NAME": login, f"GIT_{who}_EMAIL": f"{login}@example.invalid"}

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=checkout, env=env, check=True,
                              capture_output=True, text=True)  # fmt: skip
        return done.stdout.strip()

    subprocess.run(["git", "clone", "-q", remote, str(checkout)], env=env, check=True)
    git("checkout", "-q", *(["-b", branch] if new else [branch]))
    (checkout / path).parent.mkdir(parents=True, exist_ok=True)
    (checkout / path).write_text(f"# {path}, by {login}\n")
    git("add", ".")
    git("commit", "-q", "-m", f"{path}, by {login}")
    git("push", "-q", "origin", branch)
    return git("rev-parse", "HEAD")


def pygithub(url: str, token: str | None = None) -> Github:
    """PyGithub against the simulator at ``url`` with ``token`` (anonymous when None), its
    pacing and retries off as the project uses it."""
    return Github(
        base_url=f"{url}/api/v3",
        auth=Auth.Token(token) if token else None,
        seconds_between_requests=0,
        seconds_between_writes=0,
        retry=None,
    )


@contextmanager
def running_simulator(config: SimulatorConfig) -> Iterator[tuple[GitHubSimulator, str]]:
    """Start the simulator on a free loopback port; yields (simulator, base URL)."""
    app = create_app(config)
    sim: GitHubSimulator = app.extensions["github_sim"]
    try:
        with BackgroundServer(app) as server:
            sim.remember_url(server.url)
            yield sim, server.url
    finally:
        sim.close()


@dataclass
class ReceivedHook:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> str:
        """The X-GitHub-Event header."""
        return self.headers.get("X-GitHub-Event", "")

    def json(self) -> dict:
        """The parsed payload."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A tiny HTTP server recording webhook POSTs; answers ``status`` (settable mid-test)."""

    status: int = 200
    received: list[ReceivedHook] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(ReceivedHook(dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status < 300 else b"broken")

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to point a hook."""
        return f"http://127.0.0.1:{self._server.server_port}/webhooks/github"

    def events(self, name: str) -> list[ReceivedHook]:
        """The requests received for event ``name``."""
        return [r for r in self.received if r.event == name]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# Tokens of the sample seed's users, by login.
TOKENS = {
    "alice": "ghp_test_alice_admin",
    "bob": "ghp_test_bob_write",
    "carol": "ghp_test_carol_read",
    "dave": "ghp_test_dave_outsider",
    "cluster-bot": "ghp_test_cluster_bot",
}
APP_ID = 77
INSTALLATION_ID = 7


def sample_seed() -> dict:
    """A small world for tests: org `acme` with a private and a public repo, four users of
    different roles, a bot and a GitHub App installed on `acme`."""
    files = {
        "README.md": "# widgets\n\nA test repository.\n",
        "widgets/__init__.py": 'def double(x):\n    """Twice x."""\n    return 2 * x\n',
        "tests/test_widgets.py": "from widgets import double\n\n\ndef test_double():\n"
        "    assert double(2) == 4\n",
    }
    return {
        "users": [
            {"login": "acme", "type": "Organization"},
            *({"login": login, "token": token} for login, token in TOKENS.items()),
        ],
        "app": {
            "id": APP_ID,
            "slug": "test-cluster",
            "owner": "acme",
            "installation_id": INSTALLATION_ID,
        },
        "repos": [
            {
                "name": "acme/widgets",
                "private": True,
                "collaborators": {
                    "alice": "admin",
                    "bob": "write",
                    "carol": "read",
                    "cluster-bot": "write",
                },
                "labels": [
                    {"name": "claude", "color": "7057ff", "description": "For the cluster"},
                    {"name": "bug", "color": "d73a4a"},
                ],
                "files": files,
            },
            {
                "name": "acme/public-site",
                "private": False,
                "collaborators": {"alice": "admin"},
                "files": {"index.html": "<h1>hello</h1>\n"},
            },
        ],
    }
