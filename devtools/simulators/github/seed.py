"""Load a seed (YAML file or dict): users and tokens, the GitHub App, repositories and hooks.

Format (every key but the names is optional)::

    users:
      - {login: alice, token: ghp_alice, type: User, site_admin: false, name: Alice}
      - {login: ci, token: ghp_ci, scopes: [repo]}   # OAuth scopes; default repo, workflow, ...
    app:                       # a GitHub App installed on `owner`'s account
      id: 1001
      slug: claude-cluster
      owner: acme
      installation_id: 5001
      repositories: [acme/demo]     # only these ("selected"); absent: all of owner's
      permissions: {workflows: write}   # on top of contents/issues/pull_requests write
      private_key_path: app.pem   # relative to the seed; generated (and written) when absent
      webhook_url: http://127.0.0.1:8000/webhooks/github   # the App's own webhook
      webhook_secret: s3cret
      events: [issues, issue_comment, pull_request, push]
      installations:            # several installations instead of (or besides, when
        - {id: 5002, account: bob, repositories: [bob/tools], permissions: {issues: read}}
                                # `installation_id` is given) the one on `owner`
    repos:
      - name: acme/demo
        private: true
        default_branch: main
        description: A demo
        collaborators: {bob: write, carol: read}
        labels: [{name: claude, color: 7057ff, description: Work for the cluster}]
        files: {README.md: "# Demo\\n"}   # and/or
        import_dir: demo-repo            # a directory committed as the first commit
        hooks: [{url: "http://127.0.0.1:8000/webhooks/github", secret: s3cret, events: ["*"]}]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.github.app_permissions import permissions_with
from simulators.github.installations import DEFAULT_EVENTS
from simulators.github.models import DEFAULT_SCOPES, App, Repo

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

logger = logging.getLogger(__name__)


def read_seed(seed: Path | dict) -> tuple[dict, Path]:
    """The seed as a dict and the directory its relative paths are resolved against."""
    if isinstance(seed, dict):
        return seed, Path.cwd()
    path = Path(seed)
    return yaml.safe_load(path.read_text()) or {}, path.resolve().parent


def load_seed(sim: GitHubSimulator, seed: Path | dict) -> None:
    """Create everything ``seed`` describes in ``sim`` (an empty simulator)."""
    data, base = read_seed(seed)
    for spec in data.get("users") or []:
        _add_user(sim, spec)
    if data.get("app"):
        _add_app(sim, data["app"], base)
    for spec in data.get("repos") or []:
        _add_repo(sim, spec, base)
    logger.info(
        "Seed loaded: %d users, %d repos, app %s",
        len(sim.store.users),
        len(sim.store.repos),
        "yes" if sim.store.app else "no",
    )


def _add_user(sim: GitHubSimulator, spec: dict) -> None:
    user = sim.store.add_user(
        spec["login"],
        type=spec.get("type", "User"),
        site_admin=bool(spec.get("site_admin", False)),
        name=spec.get("name"),
    )
    user.email = spec.get("email")
    tokens = spec.get("tokens") or ([spec["token"]] if spec.get("token") else [])
    scopes = tuple(spec.get("scopes") or DEFAULT_SCOPES)
    for token in tokens:
        sim.store.add_token(str(token), user.login, scopes)


def generate_private_key() -> str:
    """A new RSA private key in PEM, as GitHub hands App owners."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _add_app(sim: GitHubSimulator, spec: dict, base: Path) -> None:
    pem = spec.get("private_key")
    key_path = base / spec["private_key_path"] if spec.get("private_key_path") else None
    if sim.config.app_key_file:
        pem, key_path = None, sim.config.app_key_file
    if not pem and key_path and key_path.exists():
        pem = key_path.read_text()
    if not pem:
        pem = generate_private_key()
        if key_path:
            key_path.parent.mkdir(parents=True, exist_ok=True)
            key_path.write_text(pem)
            key_path.chmod(0o600)
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    owner = sim.store.add_user(spec["owner"]).login
    app = App(
        id=int(spec.get("id", 1)),
        slug=spec.get("slug", "simulated-app"),
        name=spec.get("name", spec.get("slug", "Simulated App")),
        owner=owner,
        public_key_pem=public_pem,
        private_key_pem=pem,
        permissions=permissions_with(spec.get("permissions")),
        events=list(spec.get("events") or DEFAULT_EVENTS),
        client_id=spec.get("client_id", "Iv1.simulated"),
    )
    sim.store.app = app
    sim.store.add_user(app.bot_login, type="Bot")
    sim.set_app_webhook(spec.get("webhook_url"), secret=spec.get("webhook_secret"))
    installations = list(spec.get("installations") or [])
    if "installation_id" in spec or not installations:
        owned = {"id": spec.get("installation_id", 1), "account": owner}
        owned |= {key: spec[key] for key in ("repositories", "permissions") if key in spec}
        installations.insert(0, owned)
    for item in installations:
        sim.install_app(
            sim.store.add_user(item["account"]).login,
            repositories=item.get("repositories"),
            permissions=item.get("permissions"),
            installation_id=int(item["id"]),
            notify=False,  # a seed describes installations that already exist
        )


def _add_repo(sim: GitHubSimulator, spec: dict, base: Path) -> None:
    owner, _, name = spec["name"].partition("/")
    repo = Repo(
        id=sim.store.next_id(),
        owner=sim.store.add_user(owner).login,
        name=name,
        private=bool(spec.get("private", False)),
        default_branch=spec.get("default_branch", "main"),
        description=spec.get("description"),
    )
    sim.store.add_repo(repo)
    import_dir = base / spec["import_dir"] if spec.get("import_dir") else None
    owner_user = sim.store.user(repo.owner)
    sim.git.create(
        repo,
        files=spec.get("files"),
        import_dir=import_dir,
        author=(owner_user.name or owner_user.login, f"{owner_user.login}@users.noreply.localhost"),
    )
    for login, permission in (spec.get("collaborators") or {}).items():
        sim.set_collaborator(repo, login, permission)
    for label in spec.get("labels") or []:
        sim.create_label(
            repo, label["name"], str(label.get("color", "ededed")), label.get("description")
        )
    for hook in spec.get("hooks") or []:
        sim.create_hook(
            repo,
            hook["url"],
            secret=hook.get("secret"),
            events=hook.get("events") or ["*"],
            content_type=hook.get("content_type", "json"),
        )
