"""Git over smart HTTP at /<owner>/<repo>.git/..., served by git's own `git http-backend`."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from flask import Blueprint, Response, current_app, request

from simulators.github.app_permissions import grants
from simulators.github.exceptions import ApiError
from simulators.github.git_repos import PUSH_LOG_ENV, WORKFLOW_REFUSAL_ENV
from simulators.github.models import Permission, Repo
from simulators.github.simulator import GitHubSimulator, Identity

logger = logging.getLogger(__name__)

bp = Blueprint("git_http", __name__)

CHUNK = 64 * 1024
RECEIVE_PACK = "git-receive-pack"
# Request headers http-backend reads from the CGI environment (Git-Protocol selects v2).
PASSED_HEADERS = ("Content-Encoding", "Git-Protocol", "Accept")
# What GitHub answers a push touching .github/workflows/ without the right to ({path}: the file).
APP_WORKFLOW_REFUSAL = (
    "refusing to allow a GitHub App to create or update workflow `{path}` "
    "without `workflows` permission"
)
OAUTH_WORKFLOW_REFUSAL = (
    "refusing to allow an OAuth App to create or update workflow `{path}` without `workflow` scope"
)


def _text(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text answer; git prints its body after "remote:" or in its error."""
    return Response(body + "\n", status=status, mimetype="text/plain", headers=headers)


def _challenge(body: str = "") -> Response:
    """401 with the Basic challenge that makes git ask its credential helpers."""
    return _text(401, body, {"WWW-Authenticate": 'Basic realm="GitHub"'})


def _basic_identity(sim: GitHubSimulator) -> Identity | None:
    """Who the Basic credentials name: the password (or lone username) is a token.

    `x-access-token:<token>` (GitHub Apps) and `<user>:<token>` both work, as on GitHub.
    Raises Unauthorized when the token is unknown.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return sim.authenticate("")  # raises Unauthorized
    return sim.authenticate(password or user)


@bp.route("/<owner>/<name>.git/<path:rest>", methods=["GET", "POST"])
def smart_http(owner: str, name: str, rest: str) -> Response:
    """Authenticate and authorise like GitHub, then hand the request to `git http-backend`."""
    sim: GitHubSimulator = current_app.extensions["github_sim"]
    sim.remember_url(request.host_url)
    pushing = RECEIVE_PACK in (request.args.get("service"), rest.rsplit("/", 1)[-1])
    try:
        identity = _basic_identity(sim)
    except ApiError:
        return _challenge("Invalid username or password.")
    repo = sim.store.find_repo(f"{owner}/{name}")
    role = sim.git_permission(identity, repo) if repo else Permission.NONE
    if identity is None and (pushing or not role.allows(Permission.READ)):
        return _challenge()
    if repo is None or not role.allows(Permission.READ):
        return _text(404, "Repository not found.")
    if pushing and not role.allows(Permission.WRITE):
        assert identity is not None  # noqa: S101 (anonymous pushes were challenged above)
        return _text(403, f"Permission to {repo.full_name}.git denied to {identity.login}.")
    return _run_backend(sim, repo, rest, identity)


def _workflow_refusal(sim: GitHubSimulator, identity: Identity) -> str | None:
    """GitHub's refusal when ``identity`` may not push workflow changes, else None: an App
    token needs `workflows` write, a personal token the `workflow` scope."""
    if identity.installation_id is not None:
        allowed = grants(sim.app_permissions(identity), "workflows", "write")
        return None if allowed else APP_WORKFLOW_REFUSAL
    return None if "workflow" in identity.scopes else OAUTH_WORKFLOW_REFUSAL


def _cgi_environ(sim: GitHubSimulator, repo: Repo, rest: str, identity: Identity | None) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 (git only needs some HOME)
        "GIT_PROJECT_ROOT": str(sim.git.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH_INFO": f"/{repo.owner}/{repo.name}.git/{rest}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string.decode(),
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "REMOTE_ADDR": request.remote_addr or "",
        "SERVER_PROTOCOL": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
    }
    if identity is not None:
        env["REMOTE_USER"] = identity.login
        env["GIT_COMMITTER_NAME"] = identity.login
        env["GIT_COMMITTER_EMAIL"] = f"{identity.login}@users.noreply.localhost"
    # A chunked body has no length: http-backend then reads to EOF, which we give it.
    if request.content_length is not None:
        env["CONTENT_LENGTH"] = str(request.content_length)
    for header in PASSED_HEADERS:
        if header in request.headers:
            # http-backend itself inflates `Content-Encoding: gzip` request bodies.
            env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
    return env


def _run_backend(sim: GitHubSimulator, repo: Repo, rest: str, identity: Identity | None):
    env = _cgi_environ(sim, repo, rest, identity)
    push_log: Path | None = None
    if request.method == "POST" and rest.endswith(RECEIVE_PACK):
        fd, name = tempfile.mkstemp(prefix="push-", dir=sim.data_dir)
        os.close(fd)
        push_log = Path(name)
        env[PUSH_LOG_ENV] = str(push_log)
        refusal = _workflow_refusal(sim, identity) if identity is not None else None
        if refusal is not None:
            env[WORKFLOW_REFUSAL_ENV] = refusal
    proc = subprocess.Popen(
        ["git", "http-backend"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None  # noqa: S101 (piped above)
    assert proc.stdout is not None  # noqa: S101
    assert proc.stderr is not None  # noqa: S101
    errors: list[bytes] = []
    helpers = [
        threading.Thread(target=_feed, args=(request.stream, proc.stdin), daemon=True),
        threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True),
    ]
    for thread in helpers:
        thread.start()
    status, headers = _read_cgi_headers(proc.stdout)

    def body() -> Iterator[bytes]:
        try:
            while chunk := proc.stdout.read1(CHUNK):
                yield chunk
            proc.wait()
            for thread in helpers:
                thread.join()
            if errors and errors[0].strip():
                logger.debug("git http-backend %s: %s", rest, errors[0].decode(errors="replace"))
            if push_log is not None and identity is not None:
                _announce_push(sim, repo, identity.login, push_log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            if push_log is not None:
                push_log.unlink(missing_ok=True)

    return Response(body(), status=status, headers=headers, direct_passthrough=True)


def _feed(source: IO[bytes], sink: IO[bytes]) -> None:
    """Copy the request body into http-backend's stdin, then close it (EOF ends the body)."""
    try:
        while chunk := source.read(CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, OSError):
        logger.debug("git http-backend closed its input early")
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


def _read_cgi_headers(stdout: IO[bytes]) -> tuple[int, list[tuple[str, str]]]:
    """The CGI response's status and headers (up to the blank line)."""
    status, headers = 200, []
    while line := stdout.readline():
        line = line.rstrip(b"\r\n")
        if not line:
            break
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((key.strip(), value.strip()))
    return status, headers


def _announce_push(sim: GitHubSimulator, repo: Repo, pusher: str, push_log: Path) -> None:
    """Tell the simulator which refs the push moved (from the post-receive hook's log)."""
    changes = []
    for line in push_log.read_text().splitlines():
        old, new, ref = line.split(" ", 2)
        changes.append((ref, old, new))
    if changes:
        logger.info("Repo %s: %s pushed %s", repo.full_name, pusher, [c[0] for c in changes])
        sim.on_push(repo, pusher, changes)
