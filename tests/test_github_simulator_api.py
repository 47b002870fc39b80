"""The GitHub simulator's REST API, driven by the real PyGithub client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from github import Auth, Github, GithubIntegration
from github.GithubException import BadCredentialsException, GithubException, UnknownObjectException

from simulators.github import SimulatorConfig
from simulators.github.seed import generate_private_key
from simulators.github.testing import (
    APP_ID,
    INSTALLATION_ID,
    TOKENS,
    pygithub,
    running_simulator,
    sample_seed,
)


@pytest.fixture
def server(tmp_path):
    """A running simulator with the sample seed: (simulator, base URL)."""
    config = SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "data")
    with running_simulator(config) as running:
        yield running


@pytest.fixture
def client(server):
    """A PyGithub client factory: ``client(login)`` (closed after the test)."""
    _, url = server
    opened: list[Github] = []

    def make(login: str = "bob", token: str | None = None) -> Github:
        gh = pygithub(url, token or TOKENS[login])
        opened.append(gh)
        return gh

    yield make
    for gh in opened:
        gh.close()


def test_authenticated_user_and_repository(client, server):
    _, url = server
    gh = client("bob")
    assert gh.get_user().login == "bob"
    repo = gh.get_repo("acme/widgets")
    assert repo.full_name == "acme/widgets"
    assert repo.private is True
    assert repo.default_branch == "main"
    assert repo.url == f"{url}/api/v3/repos/acme/widgets"
    assert repo.clone_url == f"{url}/acme/widgets.git"
    assert repo.permissions.push is True
    assert repo.permissions.admin is False
    assert repo.owner.login == "acme"
    assert gh.get_user("carol").login == "carol"


def test_issue_labels_comments_and_state(client):
    repo = client("bob").get_repo("acme/widgets")
    issue = repo.create_issue("Crash on start", body="Traceback ...", labels=["bug"])
    assert issue.number == 1
    assert [label.name for label in issue.labels] == ["bug"]

    issue.add_to_labels("claude", "backend")  # unknown labels are created, as on GitHub
    assert {label.name for label in repo.get_issue(1).labels} == {"bug", "claude", "backend"}
    assert repo.get_label("backend").color == "ededed"
    issue.remove_from_labels("backend")
    with pytest.raises(GithubException) as raised:
        issue.remove_from_labels("backend")  # no longer on the issue
    assert (raised.value.status, raised.value.data["message"]) == (404, "Label does not exist")
    issue.set_labels("claude")
    assert [label.name for label in repo.get_issue(1).get_labels()] == ["claude"]

    comment = issue.create_comment("Looking into it")
    comment.edit("Looking into it now")
    assert [c.body for c in issue.get_comments()] == ["Looking into it now"]
    assert repo.get_issue(1).get_comment(comment.id).user.login == "bob"
    second = issue.create_comment("temporary")
    second.delete()
    assert repo.get_issue(1).comments == 1

    issue.edit(title="Crash on start-up", state="closed", state_reason="not_planned")
    closed = repo.get_issue(1)
    assert (closed.title, closed.state, closed.state_reason) == (
        "Crash on start-up",
        "closed",
        "not_planned",
    )
    assert closed.closed_by.login == "bob"
    assert [i.number for i in repo.get_issues(state="closed")] == [1]
    assert list(repo.get_issues(state="open")) == []
    closed.edit(state="open")
    assert repo.get_issue(1).state_reason == "reopened"

    events = [
        (e.event, e.actor.login, e.label.name if e.label else None) for e in issue.get_events()
    ]
    assert events == [
        ("labeled", "bob", "bug"),
        ("labeled", "bob", "claude"),
        ("labeled", "bob", "backend"),
        ("unlabeled", "bob", "backend"),
        ("unlabeled", "bob", "bug"),
        ("renamed", "bob", None),
        ("closed", "bob", None),
        ("reopened", "bob", None),
    ]


def test_issue_list_filters(client, server):
    sim, _ = server
    repo = client("bob").get_repo("acme/widgets")
    sim.create_issue("acme/widgets", "carol", "first")
    labelled = sim.create_issue("acme/widgets", "bob", "second", labels=["claude"])
    cutoff = datetime.now(UTC) + timedelta(seconds=5)
    labelled.updated_at = cutoff + timedelta(seconds=1)
    assert [i.title for i in repo.get_issues(labels=["claude"])] == ["second"]
    assert [i.title for i in repo.get_issues(since=cutoff)] == ["second"]
    assert [i.title for i in repo.get_issues(creator="carol")] == ["first"]
    # A reader may open issues but labels they ask for are dropped, as on GitHub.
    reader_issue = client("carol").get_repo("acme/widgets").create_issue("x", labels=["bug"])
    assert reader_issue.labels == []


def test_pagination_over_many_issues(client, server):
    sim, url = server
    for n in range(35):
        sim.create_issue("acme/widgets", "bob", f"issue {n}")
    repo = client("bob").get_repo("acme/widgets")
    issues = list(repo.get_issues())
    assert len(issues) == 35
    assert [i.number for i in issues] == list(range(35, 0, -1))  # newest first
    assert repo.get_issues().totalCount == 35

    response = requests.get(
        f"{url}/api/v3/repos/acme/widgets/issues",
        params={"per_page": 10, "page": 2},
        headers={"Authorization": f"token {TOKENS['bob']}"},
        timeout=10,
    )
    assert len(response.json()) == 10
    links = requests.utils.parse_header_links(response.headers["Link"])
    by_rel = {link["rel"]: link["url"] for link in links}
    assert set(by_rel) == {"prev", "next", "last", "first"}
    assert by_rel["next"] == f"{url}/api/v3/repos/acme/widgets/issues?per_page=10&page=3"
    assert by_rel["last"].endswith("page=4")


def test_collaborator_permission(client):
    repo = client("bob").get_repo("acme/widgets")
    expected = {"alice": "admin", "bob": "write", "carol": "read", "dave": "none"}
    for login, permission in expected.items():
        assert repo.get_collaborator_permission(login) == permission
    _, data = repo._requester.requestJsonAndCheck(
        "GET", f"{repo.url}/collaborators/alice/permission"
    )
    assert data["role_name"] == "admin"
    assert data["user"]["permissions"]["push"] is True
    with pytest.raises(GithubException) as raised:
        client("carol").get_repo("acme/widgets").get_collaborator_permission("bob")
    assert raised.value.status == 403

    admin_repo = client("alice").get_repo("acme/widgets")
    admin_repo.add_to_collaborators("dave", permission="triage")
    _, data = admin_repo._requester.requestJsonAndCheck(
        "GET", f"{repo.url}/collaborators/dave/permission"
    )
    assert (data["permission"], data["role_name"]) == ("read", "triage")


def test_errors_raise_the_pygithub_exceptions(client, server):
    _, url = server
    with pytest.raises(BadCredentialsException):
        client(token="ghp_not_a_real_token").get_repo("acme/widgets")
    with pytest.raises(UnknownObjectException):
        client("bob").get_repo("acme/missing")
    with pytest.raises(UnknownObjectException):
        client("dave").get_repo("acme/widgets")  # private: hidden from outsiders
    assert client("dave").get_repo("acme/public-site").private is False

    reader = client("carol").get_repo("acme/widgets")
    issue = reader.create_issue("reader's issue")
    with pytest.raises(GithubException) as raised:
        issue.add_to_labels("bug")
    assert raised.value.status == 403

    writer = client("bob").get_repo("acme/widgets")
    with pytest.raises(GithubException) as raised:
        writer.create_label("bug", "ff0000")
    assert raised.value.status == 422
    assert raised.value.data["message"] == "Validation Failed"
    assert raised.value.data["errors"] == [
        {"resource": "Label", "code": "already_exists", "field": "name"}
    ]
    with pytest.raises(GithubException) as raised:
        writer.create_hook("web", {"url": "http://127.0.0.1:9/"})
    assert raised.value.status == 404  # hooks are admin-only and hidden from others

    response = requests.get(f"{url}/api/v3/nowhere", timeout=10)
    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"
    assert "documentation_url" in response.json()
    response = requests.post(
        f"{url}/api/v3/repos/acme/widgets/issues",
        data="{not json",
        headers={"Authorization": f"token {TOKENS['bob']}"},
        timeout=10,
    )
    assert (response.status_code, response.json()["message"]) == (400, "Problems parsing JSON")


def test_github_headers_and_rate_limit(client, server):
    _, url = server
    response = requests.get(
        f"{url}/api/v3/repos/acme/widgets",
        headers={"Authorization": f"Bearer {TOKENS['bob']}"},
        timeout=10,
    )
    assert response.status_code == 200
    for header in ("X-GitHub-Request-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining"):
        assert header in response.headers
    assert int(response.headers["X-RateLimit-Remaining"]) < 5000
    core = client("bob").get_rate_limit().resources.core
    assert core.limit == 5000
    assert core.remaining <= 4999


def test_app_installation_token(server):
    sim, url = server
    app_key = sim.store.app.private_key_pem
    with GithubIntegration(
        auth=Auth.AppAuth(APP_ID, app_key), base_url=f"{url}/api/v3"
    ) as integration:
        assert integration.get_app().slug == "test-cluster"
        installation = integration.get_repo_installation("acme", "widgets")
        assert installation.id == INSTALLATION_ID
        token = integration.get_access_token(INSTALLATION_ID)
    assert token.token.startswith("ghs_")
    assert token.expires_at > datetime.now(UTC) + timedelta(minutes=50)

    with Github(
        base_url=f"{url}/api/v3", auth=Auth.Token(token.token), seconds_between_writes=0
    ) as gh:
        issue = gh.get_repo("acme/widgets").create_issue("Filed by the App")
        assert issue.user.login == "test-cluster[bot]"
        assert issue.user.type == "Bot"

    forged = Auth.AppAuth(APP_ID, generate_private_key())
    with (
        GithubIntegration(auth=forged, base_url=f"{url}/api/v3") as integration,
        pytest.raises(GithubException) as raised,
    ):
        integration.get_access_token(INSTALLATION_ID)
    assert raised.value.status == 401


def test_unknown_route_method_is_json(server):
    _, url = server
    response = requests.delete(f"{url}/api/v3/rate_limit", timeout=10)
    assert response.status_code == 405
    assert response.json()["message"] == "Method Not Allowed"
