"""The admin pages in a real browser (headless Chromium), and CSRF on every form."""

from __future__ import annotations

import re
import shutil
import tempfile

import pytest
import requests

from coordinator_app.admin.views import duration
from tests.coordinator.conftest import ADMIN_PASSWORD
from tests.coordinator.test_api_tasks import create

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="ccc-chromium-")
    # Without the background-networking flags Chromium keeps dialling out of a closed network.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_operator_logs_in_inspects_and_acts(server, browser, client, admin_headers, make_agent):
    from selenium.webdriver.common.by import By

    task = create(client, admin_headers, title="Add /health endpoint", body="api server")
    make_agent("be-1").heartbeat()

    browser.get(f"{server.url}/admin/")
    assert "/admin/login" in browser.current_url  # pages are behind the login

    def log_in(password: str) -> None:
        browser.find_element(By.NAME, "username").send_keys("alice")
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    log_in("not the password")
    wait_for_text(browser, "Wrong username or password.")
    log_in(ADMIN_PASSWORD)
    cards = browser.find_element(By.ID, "task-states").text  # waits for the overview
    assert browser.current_url.rstrip("/").endswith("/admin")
    assert re.search(r"queued\s+1", cards), cards
    assert "be-1" in browser.find_element(By.ID, "agents").text
    assert "idle" in browser.find_element(By.ID, "agents").text
    assert "No processor is active" in browser.find_element(By.ID, "processor").text

    browser.find_element(By.LINK_TEXT, "Tasks").click()
    browser.find_element(By.LINK_TEXT, str(task["id"])).click()
    assert "chose backend" in browser.find_element(By.ID, "reasons").text
    browser.find_element(By.XPATH, "//button[text()='Cancel']").click()
    wait_for_text(browser, f"Task {task['id']}: cancel done.")
    timeline = browser.find_element(By.ID, "timeline").text
    assert "cancelled admin:alice cancelled in the admin pages" in timeline

    browser.find_element(By.LINK_TEXT, "Agents").click()
    browser.find_element(By.XPATH, "//button[text()='Drain']").click()
    wait_for_text(browser, "Agent be-1: draining.")
    assert "maintenance" in browser.find_element(By.ID, "agents").text

    browser.find_element(By.LINK_TEXT, "Audit log").click()
    audit = browser.find_element(By.ID, "audit").text
    for action in ("login", "task.cancel", "agent.drain"):
        assert f"admin:alice {action}" in audit


def wait_for_text(browser, text: str, timeout: float = 10) -> None:
    """Wait for a page (after a form post and its redirect) to show ``text``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda driver: text in driver.page_source)


def login_form(session: requests.Session, url: str) -> str:
    """The CSRF token of the login form (the session keeps its cookie)."""
    page = session.get(f"{url}/admin/login", timeout=5).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def admin_session(
    url: str, username: str = "alice", password: str = ADMIN_PASSWORD
) -> requests.Session:
    """A session logged in to the admin pages (as alice unless told), through the form."""
    session = requests.Session()
    login = {
        "username": username,
        "password": password,
        "csrf_token": login_form(session, url),
    }
    answer = session.post(f"{url}/admin/login", data=login, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return session


def test_forms_without_a_csrf_token_are_refused(server, admin_user):
    session = requests.Session()
    token = login_form(session, server.url)
    credentials = {"username": "alice", "password": ADMIN_PASSWORD}
    refused = session.post(f"{server.url}/admin/login", data=credentials, timeout=5)
    assert refused.status_code == 400 and "CSRF" in refused.text
    accepted = session.post(
        f"{server.url}/admin/login",
        data={**credentials, "csrf_token": token},
        allow_redirects=False,
        timeout=5,
    )
    assert accepted.status_code == 302
    # Logged in, an action without the token is still refused.
    assert session.post(f"{server.url}/admin/tasks/1/cancel", timeout=5).status_code == 400
    session.close()


def test_login_redirect_stays_on_this_site(server, admin_user):
    session = requests.Session()
    token = login_form(session, server.url)
    answer = session.post(
        f"{server.url}/admin/login?next=https://evil.example/",
        data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.headers["Location"].endswith("/admin/")
    session.close()


def test_operator_enables_autoscaling_and_sees_why_it_cannot_run_here(server, browser, admin_user):
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/admin/login")
    browser.find_element(By.NAME, "username").send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.find_element(By.LINK_TEXT, "Scaling").click()
    assert "disabled" in browser.find_element(By.ID, "autoscale-state").text
    # No Ansible project configured on this coordinator: it says so, and "Run now" is off.
    assert (
        "autoscale.project_dir is not set"
        in browser.find_element(By.ID, "autoscale-unavailable").text
    )
    assert not browser.find_element(By.ID, "autoscale-run").is_enabled()
    assert "backend" in browser.find_element(By.ID, "decision").text
    assert "No scaling runs yet." in browser.find_element(By.ID, "runs").text

    browser.find_element(By.ID, "autoscale-toggle").click()
    wait_for_text(browser, "Autoscaling enabled.")
    assert "enabled" in browser.find_element(By.ID, "autoscale-state").text
    browser.find_element(By.LINK_TEXT, "Audit log").click()
    assert "admin:alice autoscale.enable" in browser.find_element(By.ID, "audit").text


def test_operator_reads_the_acceptance_figures_and_the_reviews_waiting(
    server, browser, ccc, admin_user
):
    from selenium.webdriver.common.by import By

    from tests.coordinator.test_acceptance import record_history

    dash = "\N{EN DASH}"  # what a figure shows while it does not exist
    record_history(ccc)
    browser.get(f"{server.url}/admin/login")
    browser.find_element(By.NAME, "username").send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.find_element(By.LINK_TEXT, "Acceptance").click()

    def table() -> list[list[str]]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#figures tr")
        return [
            [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")] for row in rows
        ]

    def bars() -> dict[str, tuple[float, str]]:
        """Each bar of the chart: its group -> (its length, its label)."""
        found = {}
        for bar in browser.find_elements(By.CSS_SELECTOR, "#merge-rates g"):
            name = bar.find_element(By.CSS_SELECTOR, "text").text
            (rect,) = bar.find_elements(By.CSS_SELECTOR, "rect.bar")
            label = bar.find_element(By.CSS_SELECTOR, "text.label").text
            found[name] = (float(rect.get_attribute("width")), label)
        return found

    header = ["Repository", "Opened", "Merged", "Rejected", "Open", "Merge rate"]
    header += ["Median time to PR", "Median time to merge", "Follow-up rounds", "Cost"]
    assert table() == [
        [*header, "Cost per merged PR"],
        ["acme/api", "4", "1", "0", "3", "100%", "35 min", "3 h", "1.0", "$2.50", "$2.50"],
        ["acme/widgets", "3", "2", "1", "0", "67%", "25 min", "13 h", "1.5", "$5.50", "$2.75"],
        ["all", "7", "3", "1", "3", "75%", "25 min", "3 h", "1.3", "$8.00", "$2.67"],
    ]
    assert bars() == {
        "acme/api": (400, "1/1 merged (100%)"),
        "acme/widgets": (266.7, "2/3 merged (67%)"),
    }
    assert browser.find_element(By.CSS_SELECTOR, "#grouping strong").text == "repository"

    browser.find_element(By.LINK_TEXT, "agent").click()
    wait_for_text(browser, "be-2")
    assert [row[:6] + row[8:] for row in table()[1:]] == [
        ["be-1", "2", "1", "0", "1", "100%", "2.0", "$2.62", "$2.62"],
        ["be-2", "1", "1", "0", "0", "100%", "1.0", "$2.38", "$2.38"],
        ["fe-1", "2", "0", "1", "1", "0%", dash, "$1.38", dash],
        ["fe-2", "1", "0", "0", "1", dash, dash, "$0.12", dash],
        ["unknown", "1", "1", "0", "0", "100%", "1.0", "$1.50", "$1.50"],
        ["all", "7", "3", "1", "3", "75%", "1.3", "$8.00", "$2.67"],
    ]
    assert [row[6:8] for row in table()[1:3]] == [["37 min 30 s", "2 h"], ["1 h", "1 d"]]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#merge-rates rect.bar")) == 5
    assert bars() == {
        "be-1": (400, "1/1 merged (100%)"),
        "be-2": (400, "1/1 merged (100%)"),
        "fe-1": (0, "0/1 merged (0%)"),
        "fe-2": (0, "nothing decided, 1 open"),
        "unknown": (400, "1/1 merged (100%)"),
    }

    # Open and quiet for more than stale_review_seconds (3 days), the quietest first.
    waiting = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#reviews-waiting tbody tr")
    ]
    assert [row[:3] for row in waiting] == [
        ["acme/api#10", "#7", "be-1"],
        ["acme/api#13", "#10", "fe-2"],
    ]
    assert waiting[0][4].endswith("(28 d 23 h ago)") and waiting[1][4].endswith("(3 d 1 h ago)")
    assert waiting[0][5].endswith(" UTC") and waiting[1][5] == "not yet"
    link = browser.find_element(By.LINK_TEXT, "acme/api#10")
    assert link.get_attribute("href") == "https://github.com/acme/api/pull/10"


def test_acceptance_page_of_a_cluster_without_pull_requests(server, admin_user):
    session = admin_session(server.url)
    page = session.get(f"{server.url}/admin/acceptance?by=<script>", timeout=5)
    assert page.status_code == 200
    assert "<script>" not in page.text  # an unknown grouping is the default one, not echoed
    assert '<strong aria-current="page">repository</strong>' in page.text
    assert "No pull requests yet." in page.text and "<svg" not in page.text
    assert "None: every open pull request saw activity in the last 3 d." in page.text
    session.close()


def test_a_merged_pull_requests_task_page_shows_its_time_to_merge(server, ccc, admin_user):
    from sqlalchemy import select

    from coordinator_app.models import PullRequest
    from tests.coordinator.test_acceptance import record_history

    record_history(ccc)
    with ccc.database.session() as session:
        pull = session.scalar(
            select(PullRequest).where(PullRequest.state == "merged").order_by(PullRequest.id)
        )
        task_id, merge = pull.task_id, (pull.decided_at - pull.opened_at).total_seconds()
    session = admin_session(server.url)
    page = session.get(f"{server.url}/admin/tasks/{task_id}", timeout=5)
    assert page.status_code == 200
    shown = re.search(r'<p id="pull-request">(.*?)</p>', page.text, re.DOTALL).group(1)
    assert f"Pull request #{pull.number}: merged" in shown
    assert f"time to merge {duration(merge)}" in shown
    session.close()
