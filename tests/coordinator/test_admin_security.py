"""Attacks on the admin pages and on what agents report: a script URL in pr_url, guessing
passwords, a stolen session after a password change, framing; and the cookie flags."""

from __future__ import annotations

import re
import time

import pytest
from werkzeug.security import generate_password_hash

from coordinator_app import ratelimit
from coordinator_app.app import create_app
from coordinator_app.github_gateway import web_url
from coordinator_app.models import AdminUser, Task
from tests.coordinator.conftest import ADMIN_PASSWORD, make_config
from tests.coordinator.test_api_tasks import claim_next, create


@pytest.fixture(autouse=True)
def fresh_login_limits(ccc):
    """Every test starts with no log-in attempts counted (Redis outlives a test)."""
    keys = ccc.redis.keys("ccc:ratelimit:login-*")
    if keys:
        ccc.redis.delete(*keys)


def log_in(client, password=ADMIN_PASSWORD, username="alice", address="127.0.0.1"):
    """Log in through the form from ``address`` (the test client's own address by default:
    the session is bound to it)."""
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.mark.parametrize(
    "pr_url",
    [
        "javascript:fetch('/admin/')//{web}/octo/app/pull/1",
        "{web}/octo/other/pull/1",  # another repository
        "https://evil.example/octo/app/pull/1",  # another host
        "{web}/octo/app/pull/2",  # another pull request
    ],
)
def test_an_agent_cannot_report_a_foreign_or_script_pr_url(ccc, client, admin_headers,
                                                           make_agent, pr_url):  # fmt: skip
    web = web_url(ccc.config.github_api_url)
    pr_url = pr_url.format(web=web)
    task = create(client, admin_headers)
    agent = make_agent("be-1")
    assert claim_next(ccc, client, agent).status_code == 200
    answer = client.patch(f"/api/v1/tasks/{task['id']}", json={"pr_number": 1, "pr_url": pr_url},
                          headers=agent.reporting(task["id"]))  # fmt: skip
    assert answer.status_code == 400
    assert "pr_url must be the pull request #1 of octo/app" in answer.json["error"]["message"]
    good = {"pr_number": 1, "pr_url": f"{web}/octo/app/pull/1"}
    assert client.patch(f"/api/v1/tasks/{task['id']}", json=good,
                        headers=agent.reporting(task["id"])).status_code == 200  # fmt: skip


def test_pages_never_link_a_stored_script_url_and_forbid_scripts(ccc, client, admin_headers):
    task = create(client, admin_headers)
    with ccc.database.session() as session:  # as if it got in before the API checked it
        session.get(Task, task["id"]).pr_url = "javascript:alert(document.cookie)"
    assert log_in(client).status_code == 302
    for page in (f"/admin/tasks/{task['id']}", "/admin/tasks"):
        answer = client.get(page)
        assert (answer.status_code == 200 and f"Task {task['id']}" in answer.get_data(True)) or (
            page == "/admin/tasks" and answer.status_code == 200
        )
        assert "javascript:" not in answer.get_data(as_text=True)
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "frame-ancestors 'none'" in policy and answer.headers["X-Frame-Options"] == "DENY"


def at_the_start_of_a_rate_window(room: float = 30) -> None:
    """Wait, if need be, until ``room`` seconds are left in the limiter's fixed window: a burst
    that straddled two windows would be counted half in each (a loaded machine's password
    checks took a burst of ten across a boundary once)."""
    left = ratelimit.WINDOW_SECONDS - time.time() % ratelimit.WINDOW_SECONDS
    if left < room:
        time.sleep(left + 0.1)


def test_password_guessing_is_limited_per_address_and_per_user(ccc, client, admin_user):
    limit = ccc.config.login_attempts_per_minute
    at_the_start_of_a_rate_window()
    for _ in range(limit):
        assert log_in(client, "wrong", address="192.0.2.1").status_code == 200
    refused = log_in(client, ADMIN_PASSWORD, address="192.0.2.1")
    assert refused.status_code == 429 and "Too many log-in attempts" in refused.get_data(True)
    # The same user from another address is limited too (per user), another user is not.
    assert log_in(client, ADMIN_PASSWORD, address="198.51.100.7").status_code == 429
    with ccc.database.session() as session:
        session.add(AdminUser(username="bob", password_hash=generate_password_hash("bob pass x")))
    assert log_in(client, "bob pass x", username="bob", address="198.51.100.8").status_code == 302


def test_an_unknown_user_costs_a_password_check_too(ccc, client, admin_user, monkeypatch):
    from coordinator_app.admin import views

    checked = []
    original = views.check_password_hash
    monkeypatch.setattr(views, "check_password_hash",
                        lambda h, p: checked.append(h) or original(h, p))  # fmt: skip
    unknown = log_in(client, "x", username="mallory")
    wrong = log_in(client, "x", username="alice")

    def page(answer) -> str:  # the CSRF token carries a timestamp: a new second, a new token
        return re.sub(r'name="csrf_token" value="[^"]+"', "", answer.get_data(as_text=True))

    assert len(checked) == 2 and page(unknown) == page(wrong)


def test_a_password_change_ends_existing_sessions_and_logout_ends_this_one(ccc, client,
                                                                           admin_user):  # fmt: skip
    assert log_in(client).status_code == 302
    assert client.get("/admin/").status_code == 200
    with ccc.database.session() as session:
        user = session.query(AdminUser).filter_by(username="alice").one()
        user.password_hash = generate_password_hash("a brand new password")
    assert client.get("/admin/").status_code == 302  # back to the log-in page
    assert log_in(client, "a brand new password").status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/admin/logout", data={"csrf_token": token})
    assert client.get("/admin/").status_code == 302


def test_the_session_cookie_is_secure_httponly_and_samesite_by_default(database_url, redis_url,
                                                                       admin_user):  # fmt: skip
    config = make_config(database_url, redis_url)
    config.secure_cookies = True  # the default of a real configuration
    app = create_app(config)
    try:
        answer = log_in(app.test_client())
        cookie = answer.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        app.extensions["ccc"].database.dispose()
        app.extensions["ccc"].redis.close()
        app.extensions["ccc"].gateway.close()


def test_odd_input_to_the_pages_is_no_500(ccc, client, admin_user):
    # Found while fuzzing the API: a NUL that PostgreSQL refuses, a page past its offsets.
    assert log_in(client, username="al\x00ice").status_code == 200  # the form again
    assert log_in(client).status_code == 302
    for path in ("/admin/tasks?page=99999999999999999999", "/admin/tasks?state=%00"):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/tasks/99999999999").status_code == 400
