"""The simulator's GitHub App: installations, narrowed installation tokens, what they may reach
and do over REST and git, and the App's own webhook. Driven by PyGithub and the git CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
from contextlib import ExitStack

import pytest
import requests
from github import Auth, GithubIntegration
from github.GithubException import BadCredentialsException, GithubException, UnknownObjectException

from simulators.github import SimulatorConfig
from simulators.github.testing import (
    APP_ID,
    INSTALLATION_ID,
    TOKENS,
    WebhookReceiver,
    pygithub,
    running_simulator,
    sample_seed,
)
from tests import test_github_simulator_git as git_tests
from tests.test_github_simulator_git import commit_file, git, remote

git_env = git_tests.git_env  # the same never-prompting git environment fixture

SECRET = "app-hook-secret"
BOT = "test-cluster[bot]"
CI_TOKEN = "ghp_test_ci_without_workflow_scope"
DEFAULT_PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
}
INTEGRATION_DENIED = "Resource not accessible by integration"
# Top-level keys of the real payloads (octokit/webhooks payload-examples/api.github.com).
INSTALLATION_KEYS = {"action", "installation", "repositories", "sender"}
INSTALLATION_REPOSITORIES_KEYS = {
    "action",
    "installation",
    "repository_selection",
    "repositories_added",
    "repositories_removed",
    "requester",
    "sender",
}
REPO_SUMMARY_KEYS = {"id", "node_id", "name", "full_name", "private"}


@pytest.fixture
def app_hook():
    """The receiver the App's webhook points at."""
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def start(tmp_path, app_hook):
    """``start(installation_token_seconds=..., **app)``: a simulator whose sample seed adds a
    private `acme/vault`, bob's public `bob/tools`, a user `ci` whose token lacks the `workflow`
    scope, and the App's webhook; ``app`` changes the seed's App. Returns (simulator, URL);
    once per test."""
    stack = ExitStack()

    def run(installation_token_seconds: int = 3600, **app: object):
        seed = sample_seed()
        seed["users"].append({"login": "ci", "token": CI_TOKEN, "scopes": ["repo"]})
        seed["repos"][0]["collaborators"]["ci"] = "write"
        seed["repos"] += [
            {"name": "acme/vault", "private": True, "files": {"SECRET.md": "hush\n"}},
            {"name": "bob/tools", "private": False, "files": {"README.md": "tools\n"}},
        ]
        seed["app"] |= {"webhook_url": app_hook.url, "webhook_secret": SECRET, **app}
        config = SimulatorConfig(
            seed=seed,
            data_dir=tmp_path / "data",
            installation_token_seconds=installation_token_seconds,
        )
        return stack.enter_context(running_simulator(config))

    with stack:
        yield run


@pytest.fixture
def server(start):
    """The simulator with the default App installation (all of acme's repositories)."""
    return start()


@pytest.fixture
def integration(server):
    """PyGithub authenticated as the App (JWTs signed with its key)."""
    sim, url = server
    auth = Auth.AppAuth(APP_ID, sim.store.app.private_key_pem)
    with GithubIntegration(auth=auth, base_url=f"{url}/api/v3") as client:
        yield client


def mint(integration: GithubIntegration, installation_id: int = INSTALLATION_ID, **body) -> dict:
    """POST .../access_tokens with ``body`` (PyGithub cannot narrow to repositories)."""
    _, data = integration.requester.requestJsonAndCheck(
        "POST", f"/app/installations/{installation_id}/access_tokens", input=body
    )
    return data


def api(url: str, token: str, method: str, path: str, **kwargs) -> requests.Response:
    """A raw API call, for status codes and headers."""
    headers = {"Authorization": f"token {token}"}
    return requests.request(method, f"{url}/api/v3{path}", headers=headers, timeout=10, **kwargs)


def test_app_jwt_finds_installations_and_mints_a_full_token(server, integration):
    _, url = server
    installations = list(integration.get_installations())
    assert [i.id for i in installations] == [INSTALLATION_ID]
    assert installations[0].repository_selection == "all"
    assert installations[0].permissions == DEFAULT_PERMISSIONS
    assert integration.get_org_installation("acme").id == INSTALLATION_ID
    assert integration.get_user_installation("acme").id == INSTALLATION_ID
    assert integration.get_repo_installation("acme", "vault").id == INSTALLATION_ID
    with pytest.raises(UnknownObjectException):
        integration.get_repo_installation("bob", "tools")  # not installed on bob
    with pytest.raises(UnknownObjectException):
        integration.get_org_installation("bob")  # a user, not an organization

    token = integration.get_access_token(INSTALLATION_ID)
    assert token.token.startswith("ghs_")
    assert token.permissions == DEFAULT_PERMISSIONS  # no workflows, no administration
    assert token.repository_selection == "all"
    with pygithub(url, token.token) as gh:
        issue = gh.get_repo("acme/vault").create_issue("Filed by the App")
        bot = gh.get_user(BOT)
        assert (bot.type, issue.user.login, issue.user.id) == ("Bot", BOT, bot.id)
    listed = api(url, token.token, "GET", "/installation/repositories", params={"per_page": 2})
    assert listed.json()["total_count"] == 3
    assert listed.json()["repository_selection"] == "all"
    assert [r["full_name"] for r in listed.json()["repositories"]] == [
        "acme/public-site",
        "acme/vault",
    ]
    assert 'rel="next"' in listed.headers["Link"]


def test_narrowed_token_reaches_only_its_repository(server, integration):
    _, url = server
    data = mint(integration, repositories=["widgets"], permissions={"issues": "write"})
    assert data["repository_selection"] == "selected"
    assert [r["full_name"] for r in data["repositories"]] == ["acme/widgets"]
    assert data["permissions"] == {"issues": "write", "metadata": "read"}
    token = data["token"]
    with pygithub(url, token) as gh:
        assert gh.get_repo("acme/widgets").create_issue("In reach").number == 1
        with pytest.raises(UnknownObjectException):
            gh.get_repo("acme/vault")  # private and out of reach: hidden
        public = gh.get_repo("acme/public-site")  # public: readable as by anyone
        assert public.full_name == "acme/public-site"
        with pytest.raises(GithubException) as raised:
            public.create_issue("Out of reach")
    assert raised.value.status == 403
    assert raised.value.data["message"] == INTEGRATION_DENIED
    listed = api(url, token, "GET", "/installation/repositories").json()
    assert listed["total_count"] == 1
    assert listed["repository_selection"] == "selected"
    assert [r["full_name"] for r in listed["repositories"]] == ["acme/widgets"]


def test_missing_permission_is_refused_with_the_accepted_permissions(server, integration):
    sim, url = server
    read_only = mint(integration, permissions={"issues": "read"})["token"]
    refused = api(url, read_only, "POST", "/repos/acme/widgets/issues", json={"title": "x"})
    assert refused.status_code == 403
    assert refused.json()["message"] == INTEGRATION_DENIED
    assert refused.headers["X-Accepted-GitHub-Permissions"] == "issues=write"
    assert api(url, read_only, "GET", "/repos/acme/widgets/issues").status_code == 200

    full = mint(integration)["token"]
    hooks = api(url, full, "GET", "/repos/acme/widgets/hooks")
    assert hooks.status_code == 403
    assert hooks.headers["X-Accepted-GitHub-Permissions"] == "repository_hooks=read"
    admin = api(url, full, "PUT", "/repos/acme/widgets/collaborators/dave", json={})
    assert admin.headers["X-Accepted-GitHub-Permissions"] == "administration=write"

    # `pull_requests` does not reach an issue's comments (a pull request's: the next test).
    sim.create_issue("acme/widgets", "bob", "An issue")
    pulls_only = mint(integration, permissions={"pull_requests": "write"})["token"]
    on_issue = api(
        url, pulls_only, "POST", "/repos/acme/widgets/issues/1/comments", json={"body": "hi"}
    )
    assert on_issue.status_code == 403
    assert on_issue.headers["X-Accepted-GitHub-Permissions"] == "issues=write"


def test_pull_request_numbers_accept_pull_requests_permission(
    server, integration, git_env, tmp_path
):
    sim, url = server
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "bob", TOKENS["bob"]), str(work))
    git(git_env, "checkout", "-q", "-b", "feature", cwd=work)
    commit_file(git_env, work, "feature.txt", "new\n")
    git(git_env, "push", "-q", "origin", "feature", cwd=work)
    pull = sim.create_pull("acme/widgets", "bob", "Feature", head="feature", base="main")

    pulls_only = mint(integration, permissions={"pull_requests": "write"})["token"]
    path = f"/repos/acme/widgets/issues/{pull.number}/comments"
    commented = api(url, pulls_only, "POST", path, json={"body": "Reviewed"})
    assert commented.status_code == 201
    assert commented.json()["user"]["login"] == BOT
    merge = api(url, pulls_only, "PUT", f"/repos/acme/widgets/pulls/{pull.number}/merge")
    assert merge.status_code == 403
    assert merge.headers["X-Accepted-GitHub-Permissions"] == "contents=write,pull_requests=write"
    merged = api(
        url, mint(integration)["token"], "PUT", f"/repos/acme/widgets/pulls/{pull.number}/merge"
    )
    assert merged.json()["merged"] is True
    issues_only = mint(integration, permissions={"issues": "write"})["token"]
    listed = api(url, issues_only, "GET", "/repos/acme/widgets/pulls")
    assert listed.headers["X-Accepted-GitHub-Permissions"] == "pull_requests=read"


def test_token_requests_are_validated_like_github(server, integration):
    sim, url = server

    def refused(**body) -> GithubException:
        with pytest.raises(GithubException) as raised:
            mint(integration, **body)
        return raised.value

    for body in (
        {"repositories": ["acme/widgets"]},  # GitHub wants names without the owner
        {"repositories": ["widgets", "no-such-repo"]},
        {"repository_ids": [sim.repo("bob/tools").id]},  # another account's
    ):
        error = refused(**body)
        assert error.status == 422, body
        assert error.data["message"] == (
            "There is at least one repository that does not exist or is not accessible to the "
            "parent installation."
        )
    for permissions in ({"workflows": "write"}, {"metadata": "write"}, {"administration": "read"}):
        error = refused(permissions=permissions)
        assert error.status == 422, permissions
        assert error.data["message"] == (
            "The permissions requested are not granted to this installation."
        )
    by_id = mint(integration, repository_ids=[sim.repo("acme/vault").id])
    assert [r["full_name"] for r in by_id["repositories"]] == ["acme/vault"]

    assert refused(installation_id=999).status == 404
    earlier = mint(integration)["token"]
    sim.suspend_installation(INSTALLATION_ID)
    error = refused()
    assert (error.status, error.data["message"]) == (403, "This installation has been suspended")
    used = api(url, earlier, "GET", "/repos/acme/widgets")
    assert (used.status_code, used.json()["message"]) == (
        403,
        "This installation has been suspended",
    )
    sim.unsuspend_installation(INSTALLATION_ID)
    assert api(url, earlier, "GET", "/repos/acme/widgets").status_code == 200
    assert mint(integration)["token"].startswith("ghs_")


def test_tokens_expire_after_the_configured_lifetime(start):
    sim, url = start(installation_token_seconds=1)
    auth = Auth.AppAuth(APP_ID, sim.store.app.private_key_pem)
    with GithubIntegration(auth=auth, base_url=f"{url}/api/v3") as integration:
        token = integration.get_access_token(INSTALLATION_ID)
    assert api(url, token.token, "GET", "/repos/acme/widgets").status_code == 200
    time.sleep(1.1)
    with pygithub(url, token.token) as gh, pytest.raises(BadCredentialsException) as raised:
        gh.get_repo("acme/widgets")
    assert raised.value.data["message"] == "Bad credentials"


def test_revoked_token_is_bad_credentials(server, integration):
    _, url = server
    token = mint(integration)["token"]
    assert api(url, token, "DELETE", "/installation/token").status_code == 204
    after = api(url, token, "GET", "/repos/acme/widgets")
    assert (after.status_code, after.json()["message"]) == (401, "Bad credentials")
    personal = api(url, TOKENS["bob"], "DELETE", "/installation/token")
    assert personal.status_code == 403


def push_workflow(git_env, work, branch: str) -> subprocess.CompletedProcess:
    """Commit .github/workflows/ci.yml on a new ``branch`` and try to push it."""
    git(git_env, "checkout", "-q", "-b", branch, cwd=work)
    (work / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
    commit_file(git_env, work, ".github/workflows/ci.yml", "on: push\n")
    return git(git_env, "push", "-q", "origin", branch, cwd=work, check=False)


APP_REFUSAL = (
    "refusing to allow a GitHub App to create or update workflow `.github/workflows/ci.yml` "
    "without `workflows` permission"
)


def test_workflow_changes_need_the_workflows_permission(server, integration, git_env, tmp_path):
    sim, url = server
    token = mint(integration)["token"]
    work = tmp_path / "app"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "x-access-token", token), str(work))
    refused = push_workflow(git_env, work, "ci")
    assert refused.returncode != 0
    assert APP_REFUSAL in refused.stderr
    assert sim.git.branch_sha(sim.repo("acme/widgets"), "ci") is None

    oauth = tmp_path / "oauth"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "ci", CI_TOKEN), str(oauth))
    refused = push_workflow(git_env, oauth, "ci")
    assert refused.returncode != 0
    assert (
        "refusing to allow an OAuth App to create or update workflow `.github/workflows/ci.yml` "
        "without `workflow` scope"
    ) in refused.stderr
    scopes = api(url, CI_TOKEN, "GET", "/repos/acme/widgets").headers["X-OAuth-Scopes"]
    assert scopes == "repo"
    assert "workflow" in api(url, TOKENS["bob"], "GET", "/user").headers["X-OAuth-Scopes"]
    git(
        git_env,
        "remote",
        "set-url",
        "origin",
        remote(url, "acme/widgets", "bob", TOKENS["bob"]),
        cwd=oauth,
    )
    git(git_env, "push", "-q", "origin", "ci", cwd=oauth)  # bob's token has the scope


def test_workflow_changes_pass_with_the_workflows_permission(start, git_env, tmp_path):
    sim, url = start(permissions={"workflows": "write"})
    auth = Auth.AppAuth(APP_ID, sim.store.app.private_key_pem)
    with GithubIntegration(auth=auth, base_url=f"{url}/api/v3") as integration:
        assert integration.get_access_token(INSTALLATION_ID).permissions["workflows"] == "write"
        full = mint(integration)["token"]
        contents_only = mint(integration, permissions={"contents": "write"})["token"]
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "x-access-token", full), str(work))
    assert push_workflow(git_env, work, "ci").returncode == 0
    assert sim.git.branch_sha(sim.repo("acme/widgets"), "ci") is not None
    assert sim.wait_idle()
    (push,) = [d for d in sim.deliveries() if d.event == "push"]
    assert json.loads(push.body)["pusher"]["name"] == BOT  # pushes are the bot's

    narrow = remote(url, "acme/widgets", "x-access-token", contents_only)
    git(git_env, "remote", "set-url", "origin", narrow, cwd=work)
    (work / ".github" / "workflows" / "ci.yml").unlink()
    git(git_env, "commit", "-q", "-am", "Drop CI", cwd=work)
    refused = git(git_env, "push", "-q", "origin", "ci", cwd=work, check=False)
    assert APP_REFUSAL in refused.stderr  # deleting a workflow counts too
    git(git_env, "reset", "-q", "--hard", "HEAD~1", cwd=work)
    # A new branch is judged by the commits it adds, not by the workflow already pushed.
    git(git_env, "checkout", "-q", "-b", "docs", cwd=work)
    commit_file(git_env, work, "DOCS.md", "docs\n")
    git(git_env, "push", "-q", "origin", "docs", cwd=work)


def test_git_with_a_narrowed_token(server, integration, git_env, tmp_path):
    _, url = server
    token = mint(integration, repositories=["widgets"])["token"]
    reader = mint(integration, repositories=["widgets"], permissions={"contents": "read"})

    def clone(repo: str, secret: str, into: str):
        target = str(tmp_path / into)
        url_with_token = remote(url, repo, "x-access-token", secret)
        return git(git_env, "clone", "-q", url_with_token, target, check=False)

    hidden = clone("acme/vault", token, "vault")
    assert hidden.returncode != 0
    assert "Repository not found." in hidden.stderr
    assert clone("acme/public-site", token, "site").returncode == 0  # public: read like anyone
    commit_file(git_env, tmp_path / "site", "page.html", "<p>hi</p>\n")
    pushed = git(git_env, "push", "-q", "origin", "HEAD", cwd=tmp_path / "site", check=False)
    assert "Permission to acme/public-site.git denied to test-cluster[bot]." in pushed.stderr

    assert clone("acme/widgets", reader["token"], "read").returncode == 0
    commit_file(git_env, tmp_path / "read", "x.txt", "x\n")
    pushed = git(git_env, "push", "-q", "origin", "HEAD", cwd=tmp_path / "read", check=False)
    assert "Permission to acme/widgets.git denied to test-cluster[bot]." in pushed.stderr


def test_removing_a_repository_cuts_existing_tokens_off(server, integration, git_env, tmp_path):
    sim, url = server
    token = mint(integration)["token"]
    assert api(url, token, "GET", "/repos/acme/vault").status_code == 200
    sim.remove_installation_repositories(INSTALLATION_ID, ["acme/vault"], sender="alice")
    assert api(url, token, "GET", "/repos/acme/vault").status_code == 404
    listed = api(url, token, "GET", "/installation/repositories").json()
    assert listed["repository_selection"] == "selected"
    assert {r["full_name"] for r in listed["repositories"]} == {"acme/widgets", "acme/public-site"}
    cloned = git(
        git_env,
        "clone",
        "-q",
        remote(url, "acme/vault", "x-access-token", token),
        str(tmp_path / "vault"),
        check=False,
    )
    assert "Repository not found." in cloned.stderr


def verified(received, secret: str = SECRET) -> dict:
    """The payload of a delivery to the App's webhook, after checking its signature."""
    digest = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-Hub-Signature-256"] == f"sha256={digest}"
    assert received.headers["X-GitHub-Hook-Installation-Target-Type"] == "integration"
    assert received.headers["X-GitHub-Hook-Installation-Target-ID"] == str(APP_ID)
    return received.json()


def test_installation_lifecycle_reaches_the_app_webhook(server, app_hook):
    sim, url = server
    created = requests.post(
        f"{url}/_sim/app/installations",
        json={"account": "bob", "repositories": ["bob/tools"], "as": "bob"},
        timeout=10,
    )
    assert created.status_code == 201
    installation_id = created.json()["id"]
    assert created.json()["repository_selection"] == "selected"
    sim.suspend_installation(installation_id, sender="bob")
    sim.unsuspend_installation(installation_id, sender="bob")
    sim.remove_installation_repositories(installation_id, ["bob/tools"], sender="bob")
    added = requests.put(
        f"{url}/_sim/app/installations/{installation_id}/repositories/bob/tools", timeout=10
    )
    assert added.status_code == 200
    token = sim.installation_token(installation_id).value
    assert api(url, token, "GET", "/repos/bob/tools").status_code == 200
    assert requests.delete(f"{url}/_sim/app/installations/{installation_id}", timeout=10).ok
    assert api(url, token, "GET", "/repos/bob/tools").status_code == 401
    assert sim.wait_idle()

    payloads = [verified(r) for r in app_hook.received]
    assert [(r.event, p["action"]) for r, p in zip(app_hook.received, payloads, strict=True)] == [
        ("installation", "created"),
        ("installation", "suspend"),
        ("installation", "unsuspend"),
        ("installation_repositories", "removed"),
        ("installation_repositories", "added"),
        ("installation", "deleted"),
    ]
    created, suspend, _, removed, added, deleted = payloads
    assert set(created) == INSTALLATION_KEYS
    assert created["installation"]["id"] == installation_id
    assert created["installation"]["account"]["login"] == "bob"
    assert created["installation"]["app_id"] == APP_ID
    assert created["installation"]["permissions"] == DEFAULT_PERMISSIONS
    assert [r["full_name"] for r in created["repositories"]] == ["bob/tools"]
    assert set(created["repositories"][0]) == REPO_SUMMARY_KEYS
    assert created["sender"]["login"] == "bob"
    assert suspend["installation"]["suspended_by"]["login"] == "bob"
    assert suspend["installation"]["suspended_at"]
    assert set(removed) == INSTALLATION_REPOSITORIES_KEYS
    assert [r["full_name"] for r in removed["repositories_removed"]] == ["bob/tools"]
    assert (removed["repositories_added"], removed["repository_selection"]) == ([], "selected")
    assert [r["full_name"] for r in added["repositories_added"]] == ["bob/tools"]
    assert set(deleted) == INSTALLATION_KEYS
    assert [r["full_name"] for r in deleted["repositories"]] == ["bob/tools"]
    assert [d.installation_id for d in sim.deliveries()] == [installation_id] * 6


def test_repository_events_reach_the_app_webhook_with_the_installation(server, app_hook):
    sim, url = server
    repo_hook = WebhookReceiver()
    with repo_hook:
        sim.create_hook("acme/widgets", repo_hook.url, events=["issues"])
        sim.create_issue("acme/widgets", "bob", "Seen twice")
        sim.create_issue("bob/tools", "bob", "Not installed here")
        assert sim.wait_idle()
    (app_copy,) = app_hook.events("issues")
    payload = verified(app_copy)
    assert payload["installation"]["id"] == INSTALLATION_ID
    assert payload["installation"]["node_id"]
    (repo_copy,) = repo_hook.events("issues")
    assert {**repo_copy.json(), "installation": payload["installation"]} == payload

    sim.set_app_webhook(None)
    sim.create_issue("acme/widgets", "bob", "No App webhook now")
    assert sim.wait_idle()
    assert len(app_hook.events("issues")) == 1
    turned_on = requests.put(
        f"{url}/_sim/app/webhook", json={"url": app_hook.url, "secret": SECRET}, timeout=10
    )
    assert turned_on.json()["url"] == app_hook.url
    sim.redeliver(sim.deliveries(hook_id=sim.store.app.hook.id)[0].id)
    assert sim.wait_idle()
    assert app_hook.received[-1].body == app_copy.body


# The delivery summary GitHub lists (GET /app/hook/deliveries).
DELIVERY_KEYS = {
    "id",
    "guid",
    "delivered_at",
    "redelivery",
    "duration",
    "status",
    "status_code",
    "event",
    "action",
    "installation_id",
    "repository_id",
}
JWT_REFUSAL = "A JSON web token could not be decoded"


def as_app(integration: GithubIntegration, method: str, path: str, **kwargs) -> tuple:
    """``method path`` with the App's JWT, as PyGithub sends it: (status, headers, JSON body)."""
    status, headers, body = integration.requester.requestJson(method, path, **kwargs)
    return status, headers, json.loads(body) if body else None


def test_app_webhook_config_is_read_and_changed_with_the_jwt(server, integration, app_hook):
    sim, url = server
    status, _, config = as_app(integration, "GET", "/app/hook/config")
    assert (status, config) == (
        200,
        {"content_type": "json", "insecure_ssl": "0", "secret": "********", "url": app_hook.url},
    )
    events = list(sim.store.app.events)
    with WebhookReceiver() as receiver:
        changed = {"url": receiver.url, "secret": "rotated"}
        status, _, config = as_app(integration, "PATCH", "/app/hook/config", input=changed)
        assert (status, config["url"], config["secret"]) == (200, receiver.url, "********")
        assert as_app(integration, "GET", "/app/hook/config")[2] == config
        assert sim.store.app.events == sim.store.app.hook.events == events  # events unchanged
        sim.create_issue("acme/widgets", "bob", "Sent to the new URL")
        assert sim.wait_idle()
        (received,) = receiver.events("issues")
        assert verified(received, "rotated")["installation"]["id"] == INSTALLATION_ID
    assert app_hook.events("issues") == []

    for bad in ("ftp://example.com/hook", "example.com/hook", ""):
        status, _, error = as_app(integration, "PATCH", "/app/hook/config", input={"url": bad})
        assert (status, error["message"]) == (422, "Validation Failed"), bad
    assert as_app(integration, "GET", "/app/hook/config")[2]["url"] == receiver.url

    token = mint(integration)["token"]
    for credential in (None, f"Bearer {token}", f"token {TOKENS['alice']}"):
        headers = {"Authorization": credential} if credential else {}
        for method in ("GET", "PATCH"):
            refused = requests.request(
                method, f"{url}/api/v3/app/hook/config", headers=headers, json={}, timeout=10
            )
            assert refused.status_code == 401, (credential, method)
            assert refused.json()["message"] == JWT_REFUSAL


def test_app_webhook_deliveries_are_listed_read_and_sent_again(server, integration):
    sim, url = server
    with WebhookReceiver() as receiver, WebhookReceiver() as repo_receiver:
        changed = {"url": receiver.url, "secret": SECRET}
        as_app(integration, "PATCH", "/app/hook/config", input=changed)
        repo_hook = sim.create_hook("acme/widgets", repo_receiver.url, events=["issues"])
        sim.create_issue("acme/widgets", "bob", "Seen by the App")
        sim.create_issue("acme/widgets", "bob", "Seen by the App too")
        assert sim.wait_idle()

        status, headers, listed = as_app(
            integration, "GET", "/app/hook/deliveries", parameters={"per_page": 1}
        )
        assert status == 200
        assert 'rel="next"' in headers["link"]
        (latest,) = listed
        assert set(latest) >= DELIVERY_KEYS
        assert (latest["event"], latest["action"], latest["redelivery"]) == (
            "issues",
            "opened",
            False,
        )
        assert latest["installation_id"] == INSTALLATION_ID
        assert latest["repository_id"] == sim.repo("acme/widgets").id
        assert (latest["status"], latest["status_code"]) == ("OK", 200)
        _, _, both = as_app(integration, "GET", "/app/hook/deliveries")
        assert [d["id"] for d in both] == sorted((d["id"] for d in both), reverse=True)
        assert both[0] == latest

        path = f"/app/hook/deliveries/{latest['id']}"
        _, _, detail = as_app(integration, "GET", path)
        assert {key: detail[key] for key in latest} == latest
        assert detail["request"]["payload"]["installation"]["id"] == INSTALLATION_ID
        assert detail["request"]["payload"]["issue"]["title"] == "Seen by the App too"
        assert detail["request"]["headers"]["X-GitHub-Delivery"] == latest["guid"]
        assert detail["response"]["payload"] == "ok"
        assert detail["response"]["headers"]["Content-Type"] == "text/plain"

        status, _, accepted = as_app(integration, "POST", f"{path}/attempts")
        assert (status, accepted) == (202, {})
        assert sim.wait_idle()
        first, again = receiver.events("issues")[-2:]
        assert first.headers["X-GitHub-Delivery"] == again.headers["X-GitHub-Delivery"]
        assert again.headers["X-GitHub-Delivery"] == latest["guid"]
        assert verified(again) == verified(first)
        _, _, after = as_app(integration, "GET", "/app/hook/deliveries")
        assert after[0]["id"] not in {d["id"] for d in both}
        assert (after[0]["guid"], after[0]["redelivery"]) == (latest["guid"], True)

        (repo_delivery, *_) = sim.deliveries(hook_id=repo_hook.id)
        for method, suffix in (("GET", ""), ("POST", "/attempts")):
            other = f"/app/hook/deliveries/{repo_delivery.id}{suffix}"
            assert as_app(integration, method, other)[0] == 404
        assert len(repo_receiver.events("issues")) == 2  # not sent again

    for method, unsigned in (
        ("GET", "/app/hook/deliveries"),
        ("GET", path),
        ("POST", f"{path}/attempts"),
    ):
        refused = requests.request(method, f"{url}/api/v3{unsigned}", timeout=10)
        assert (refused.status_code, refused.json()["message"]) == (401, JWT_REFUSAL)
    assert len(sim.deliveries(hook_id=sim.store.app.hook.id)) == len(after)
