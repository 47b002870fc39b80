"""GitHub's refusals and rate limits as the coordinator meets them: a permanent refusal stops
retrying and is shown; a rate limit slows the outbox down and loses nothing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from coordinator_app.app import create_app
from coordinator_app.github_gateway import send_outbox
from coordinator_app.models import OutboxMessage, utcnow
from simulators.github.app import create_app as create_github_app
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, sample_seed
from simulators.server import BackgroundServer
from tests.coordinator.conftest import make_config
from tests.coordinator.test_admin_security import log_in
from tests.coordinator.test_api_tasks import create

REPO = "acme/widgets"


class StatusCounter:
    """WSGI middleware counting the simulator's answers by status."""

    def __init__(self, app) -> None:
        self.app, self.statuses = app, []

    def __call__(self, environ, start_response):
        def recording(status, headers, exc_info=None):
            self.statuses.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        return self.app(environ, recording)


@pytest.fixture
def throttled(database_url, redis_url, tmp_path):
    """A coordinator against a GitHub that allows the cluster's token 6 requests per 3 s."""
    config = SimulatorConfig(
        seed=sample_seed(), data_dir=tmp_path / "gh", rate_limit=6, rate_limit_window_seconds=3
    )
    github_app = create_github_app(config)
    sim = github_app.extensions["github_sim"]
    counter = StatusCounter(github_app)
    with BackgroundServer(counter) as server:
        sim.remember_url(server.url)
        app = create_app(
            make_config(
                database_url,
                redis_url,
                github_api_url=f"{server.url}/api/v3",
                github_token=TOKENS["cluster-bot"],
            )
        )
        ccc = app.extensions["ccc"]
        ccc.queues.ensure()
        yield ccc, app, sim, counter
        ccc.gateway.close()
        ccc.database.dispose()
        ccc.redis.close()
    sim.close()


def outbox(ccc) -> list[OutboxMessage]:
    with ccc.database.session() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        session.expunge_all()
    return list(rows)


def test_a_refused_message_is_not_sent_again_and_the_admin_page_says_why(
    ccc, client, admin_headers
):
    # octo/app is served (configured) but does not exist on this GitHub: 404 for good.
    create(client, admin_headers)
    assert ccc.processor.send_outbox() == 0
    [message] = outbox(ccc)
    assert message.failed_at is not None and message.attempts == 1
    assert "GitHub answered 404" in message.last_error and "permanent" in message.last_error
    later = utcnow().replace(year=utcnow().year + 1)
    with ccc.database.session() as session:
        assert send_outbox(session, ccc.gateway, later) == 0  # never tried again
    assert outbox(ccc)[0].attempts == 1

    assert log_in(client).status_code == 302
    page = client.get("/admin/github").get_data(as_text=True)
    assert "octo/app#1" in page and "GitHub answered 404" in page
    assert "acme/widgets" in page  # served repositories are listed


def test_a_rate_limit_slows_the_outbox_down_and_loses_nothing(throttled, admin_headers_for):
    ccc, app, sim, counter = throttled
    client = app.test_client()
    headers = admin_headers_for(ccc, client)
    numbers = [sim.create_issue(REPO, "bob", f"Issue {n}").number for n in range(5)]
    for number in numbers:
        answer = client.post(
            "/api/v1/tasks",
            json={"repository": REPO, "issue_number": number, "title": f"Issue {number}"},
            headers=headers,
        )
        assert answer.status_code == 201, answer.json
    deferred = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ccc.processor.send_outbox()
        messages = outbox(ccc)
        deferred |= any(m.sent_at is None and m.attempts == 0 for m in messages)
        if all(m.sent_at for m in messages):
            break
        time.sleep(0.3)
    messages = outbox(ccc)
    assert all(m.sent_at and m.failed_at is None for m in messages), messages
    assert deferred, "the limit never made the outbox wait"
    # It waited for the window to reset instead of running into GitHub's refusals.
    assert 403 not in counter.statuses
    labels = {n: sim.repo(REPO).issues[n].labels for n in numbers}
    assert all(label == ["claude:queued"] for label in labels.values()), labels
