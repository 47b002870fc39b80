"""A task in review until GitHub decides: merged, closed without merge, reopened, pushed to by
people, decided while its webhook was lost, quiet too long. The GitHub simulator sends the real
`pull_request` payloads to a running coordinator, and people act through PyGithub."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, select, text

from coordinator_app import migrate, reviews, schedules, tasks
from coordinator_app.api.schemas import task_json
from coordinator_app.branches import branch_name
from coordinator_app.intake import Intake
from coordinator_app.models import Agent, ProgressEvent, PullRequest, Task, WebhookDelivery, utcnow
from coordinator_app.webhooks.payloads import VALIDATORS
from simulators.github.testing import push_commit
from tests.coordinator.conftest import REPO, labels, make_due, settle, tasks_for

TITLE = "Add a /health endpoint"


def push(url: str, login: str, branch: str, path: str, workdir, *, new: bool = False) -> str:
    return push_commit(url, REPO, login, branch, path, workdir, new=new)


def in_review(world, tmp_path, title: str = TITLE):
    """An issue whose task's run opened its pull request, as an agent's result leaves it:
    (issue, pull request, task id). The branch is the one the coordinator names."""
    sim, ccc, as_user, url = world
    issue = as_user("bob").get_repo(REPO).create_issue(title, body="api server")
    issue.add_to_labels("claude")
    settle(sim, ccc)
    (task,) = tasks_for(ccc, issue.number)
    branch = branch_name(issue.number, title)
    head = push(url, "cluster-bot", branch, "health.py", tmp_path, new=True)
    pr = (
        as_user("cluster-bot")
        .get_repo(REPO)
        .create_pull(title=title, body=f"Closes #{issue.number}", head=branch, base="main")
    )
    with ccc.database.session() as session:
        row = session.get(Task, task.id)
        row.state, row.branch, row.pr_number, row.pr_url = "testing", branch, pr.number, pr.html_url
        row.executor, row.result = "messages-api", {"pushed_commit": head}
        reviews.opened(session, row, actor="agent:be-1")
    settle(sim, ccc)
    return issue, pr, task.id


def task_of(ccc, task_id: int) -> Task:
    with ccc.database.session() as session:
        task = session.get(Task, task_id)
        task.detail = task_json(task, detail=True)  # read while the session is open
        return task


def comments_on(gh, number: int) -> list[str]:
    return [c.body for c in gh.get_repo(REPO).get_issue(number).get_comments()]


def test_a_merged_pull_request_completes_its_task(world, tmp_path):
    sim, ccc, as_user, _ = world
    issue, pr, task_id = in_review(world, tmp_path)
    bob = as_user("bob")
    assert task_of(ccc, task_id).state == "review"
    assert "claude:review" in labels(bob, issue.number)
    bob.get_repo(REPO).get_pull(pr.number).merge()
    settle(sim, ccc)
    task = task_of(ccc, task_id)
    assert task.state == "completed"
    assert task.detail["history"][-1]["reason"] == f"PR #{pr.number} merged by @bob"
    assert task.detail["history"][-1]["actor"] == "github:bob"
    pull = task.detail["pull_request"]
    assert (pull["state"], pull["decided_by"]) == ("merged", "bob")
    assert 0 <= pull["seconds_to_merge"] < 60
    assert "claude:done" in labels(bob, issue.number)


def test_a_pull_request_closed_without_merge_fails_its_task_for_good(world, tmp_path):
    sim, ccc, as_user, _ = world
    issue, pr, task_id = in_review(world, tmp_path)
    bob = as_user("bob")
    bob.get_repo(REPO).get_pull(pr.number).edit(state="closed")
    settle(sim, ccc)
    task = task_of(ccc, task_id)
    assert (task.state, task.error, task.retry_at) == (
        "failed",
        "pull request closed without merge",
        None,
    )
    assert task.detail["pull_request"]["state"] == "closed"
    assert task.detail["pull_request"]["seconds_to_merge"] is None
    assert "claude:rejected" in labels(bob, issue.number)
    assert any("closed without merge by @bob" in c for c in comments_on(bob, issue.number))
    # No retry by itself, however long one waits.
    with ccc.database.session() as session:
        assert tasks.retry_due(session, utcnow() + timedelta(days=30)) == []
    # A new trigger starts over, on a fresh branch: not on the rejected work.
    bob.get_repo(REPO).get_issue(issue.number).create_comment("@claude try again")
    settle(sim, ccc)
    first, second = tasks_for(ccc, issue.number)
    assert (first.id, second.state) == (task_id, "queued")
    with ccc.database.session() as session:
        agent = Agent(name="be-1", key_hash="0" * 64, specialties=["backend", "general"])
        session.add(agent)
        session.flush()
        claimed = tasks.claim_task(session, ccc.config, second.id, agent, utcnow())
        assert claimed.branch == branch_name(issue.number, TITLE) + "-2"


def test_a_reopened_pull_request_is_in_review_again(world, tmp_path):
    sim, ccc, as_user, _ = world
    issue, pr, task_id = in_review(world, tmp_path)
    bob = as_user("bob")
    pull = bob.get_repo(REPO).get_pull(pr.number)
    pull.edit(state="closed")
    settle(sim, ccc)
    pull.edit(state="open")
    settle(sim, ccc)
    task = task_of(ccc, task_id)
    assert (task.state, task.error) == ("review", None)
    assert task.detail["history"][-1]["reason"] == f"PR #{pr.number} reopened by @bob"
    assert task.detail["pull_request"]["state"] == "open"
    assert "claude:review" in labels(bob, issue.number)
    pull.merge()
    settle(sim, ccc)
    assert task_of(ccc, task_id).state == "completed"


def test_a_push_by_someone_else_is_recorded_and_the_follow_up_builds_on_it(world, tmp_path):
    sim, ccc, as_user, url = world
    issue, pr, task_id = in_review(world, tmp_path)
    branch = task_of(ccc, task_id).branch
    theirs = push(url, "bob", branch, "fix.py", tmp_path)
    settle(sim, ccc)
    ours = push(url, "cluster-bot", branch, "more.py", tmp_path)
    settle(sim, ccc)
    with ccc.database.session() as session:
        events = session.scalars(
            select(ProgressEvent).where(ProgressEvent.task_id == task_id)
        ).all()
        pull = reviews.find(session, REPO, pr.number)
        assert pull.head_sha == ours
    # Bob's push is on the task; the cluster's own is not a person's.
    assert [(e.kind, e.data["by"], e.data["head"]) for e in events] == [
        ("pushed_by_person", "bob", theirs)
    ]
    # Review feedback starts a follow-up beside the task in review, on the same branch, whose
    # head holds Bob's commit (agents never force-push).
    as_user("bob").get_repo(REPO).get_issue(pr.number).create_comment("@claude rename it")
    settle(sim, ccc)
    parent, follow_up = tasks_for(ccc, issue.number)
    assert (parent.state, follow_up.kind, follow_up.state) == ("review", "follow_up", "queued")
    assert (follow_up.branch, follow_up.pr_number) == (branch, pr.number)


def test_a_new_trigger_while_the_pull_request_is_in_review_starts_nothing(world, tmp_path):
    sim, ccc, as_user, _ = world
    issue, pr, task_id = in_review(world, tmp_path)
    as_user("bob").get_repo(REPO).get_issue(issue.number).create_comment("@claude again")
    settle(sim, ccc)
    assert [t.id for t in tasks_for(ccc, issue.number)] == [task_id]
    with ccc.database.session() as session:
        outcomes = session.scalars(
            select(WebhookDelivery.outcome).where(WebhookDelivery.event == "issue_comment")
        ).all()
    assert f"duplicate: #{issue.number} has PR #{pr.number} in review" in outcomes


def test_a_merge_ends_the_follow_ups_still_waiting_to_run(world, tmp_path):
    sim, ccc, as_user, _ = world
    issue, pr, _task_id = in_review(world, tmp_path)
    bob = as_user("bob")
    bob.get_repo(REPO).get_issue(pr.number).create_comment("@claude also log it")
    settle(sim, ccc)
    bob.get_repo(REPO).get_pull(pr.number).merge()
    settle(sim, ccc)
    parent, follow_up = tasks_for(ccc, issue.number)
    assert (parent.state, follow_up.state) == ("completed", "cancelled")
    # Review feedback on a merged pull request starts nothing.
    bob.get_repo(REPO).get_issue(pr.number).create_comment("@claude one more thing")
    settle(sim, ccc)
    assert len(tasks_for(ccc, issue.number)) == 2


def test_a_merge_whose_webhook_was_lost_is_read_back_from_github(world, tmp_path):
    sim, ccc, as_user, _ = world
    _issue, pr, task_id = in_review(world, tmp_path)
    as_user("bob").get_repo(REPO).get_pull(pr.number).merge()
    assert sim.wait_idle(10)
    with ccc.database.session() as session:  # the deliveries never arrived
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.status == "received"))
    ccc.processor.run_once()
    assert task_of(ccc, task_id).state == "review"  # checked recently: not yet asked
    with ccc.database.session() as session:
        reviews.find(session, REPO, pr.number).checked_at = utcnow() - timedelta(hours=1)
    make_due(ccc, schedules.REVIEWS)  # look now, not in 10 s
    assert ccc.processor.follow_reviews_if_due() >= 1
    task = task_of(ccc, task_id)
    assert task.state == "completed"
    assert task.detail["pull_request"]["decided_by"] == "bob"


def test_a_quiet_pull_request_gets_one_reminder(world, tmp_path):
    sim, ccc, as_user, _ = world
    _issue, pr, _task_id = in_review(world, tmp_path)
    bob = as_user("bob")
    with ccc.database.session() as session:
        pull = reviews.find(session, REPO, pr.number)
        pull.last_activity_at = utcnow() - timedelta(days=4)
        # Not yet confirmed open on GitHub (its decision's webhook may be lost): no reminder.
        assert reviews.remind_stale(session, 3 * 86400, utcnow()) == 0
        pull.checked_at = utcnow()
    for _ in range(2):
        make_due(ccc, schedules.REVIEWS)
        ccc.processor.follow_reviews_if_due()
        settle(sim, ccc)
    reminders = [c for c in comments_on(bob, pr.number) if "without activity" in c]
    assert len(reminders) == 1 and "waited 4 days" in reminders[0]
    with ccc.database.session() as session:
        assert [p.number for p in reviews.stale_reviews(session, 3 * 86400, utcnow())] == [
            pr.number
        ]
    # Someone acts: no longer stale.
    bob.get_repo(REPO).get_issue(pr.number).create_comment("Looking at it now")
    settle(sim, ccc)
    with ccc.database.session() as session:
        assert reviews.stale_reviews(session, 3 * 86400, utcnow()) == []
        assert reviews.find(session, REPO, pr.number).reminded_at is None


def test_the_real_payload_of_a_merge_completes_the_task(world, tmp_path, webhook_fixtures):
    _sim, ccc, _as_user, _ = world
    _issue, pr, task_id = in_review(world, tmp_path)
    payload = json.loads((webhook_fixtures / "pull_request" / "closed.json").read_text())
    payload["repository"]["full_name"] = REPO
    payload["number"] = payload["pull_request"]["number"] = pr.number
    assert not list(VALIDATORS["pull_request"].iter_errors(payload))
    with ccc.database.session() as session:  # opened when the payload's pull request was
        reviews.find(session, REPO, pr.number).opened_at = datetime(
            2022, 7, 9, 2, 19, 53, tzinfo=UTC
        )
        outcome, _ = Intake(session, ccc.config, ccc.gateway).handle("pull_request", payload)
    assert outcome == f"PR #{pr.number} merged by @{payload['sender']['login']}"
    assert task_of(ccc, task_id).detail["pull_request"]["seconds_to_merge"] == 35 * 60 + 26
    task = task_of(ccc, task_id)
    assert task.state == "completed"
    with ccc.database.session() as session:
        assert reviews.find(session, REPO, pr.number).decided_at == datetime(
            2022, 7, 9, 2, 55, 19, tzinfo=UTC
        )
    # The same decision again (a redelivery, or a read-back) changes nothing.
    with ccc.database.session() as session:
        outcome, _ = Intake(session, ccc.config, ccc.gateway).handle("pull_request", payload)
    assert outcome == f"PR #{pr.number} already merged"


@pytest.mark.parametrize("action", ["closed", "synchronize", "reopened", "edited"])
def test_events_on_pull_requests_the_cluster_did_not_open_change_nothing(world, action):
    _sim, ccc, _as_user, _ = world
    payload = {
        "action": action,
        "number": 99,
        "after": "a" * 40,
        "pull_request": {"number": 99, "merged": True, "merged_at": None, "closed_at": None},
        "repository": {"full_name": REPO},
        "sender": {"login": "bob", "id": 2, "type": "User"},
    }
    with ccc.database.session() as session:
        outcome, task = Intake(session, ccc.config, ccc.gateway).handle("pull_request", payload)
        assert session.scalar(select(PullRequest)) is None
    assert task is None
    assert outcome.startswith("ignored")


def test_an_upgrade_records_the_pull_requests_of_earlier_tasks(postgres_url):
    """Migration 0008 on a database with work done before it: each pull request the cluster
    opened is recorded, open, for the processor to read back; the downgrade restores."""
    migrate.upgrade(postgres_url, "0007")
    engine = create_engine(postgres_url)
    insert = text(
        "INSERT INTO tasks (kind, repository, issue_number, title, body, requested_by, state, "
        "security_level, analysis, depends_on, budget, attempts, input_tokens, output_tokens, "
        "cost_usd, result, created_at, updated_at, branch, pr_number, pr_url, specialty) "
        "VALUES (:kind, 'octo/app', :issue, 't', '', 'bob', :state, 'standard', '{}', '{}', "
        "'{}', 1, 0, 0, 0, '{}', now(), now(), :branch, :pr, :url, 'backend')"
    )
    rows = [  # a done task with its PR, its follow-up on the same PR, one with no PR
        ("issue", 1, "completed", "claude/issue-1-a", 4),
        ("follow_up", 1, "completed", "claude/issue-1-a", 4),
        ("issue", 2, "failed", None, None),
    ]
    with engine.begin() as conn:
        for kind, issue, state, branch, pr in rows:
            url = pr and f"https://github.com/octo/app/pull/{pr}"
            values = {"kind": kind, "issue": issue, "state": state, "branch": branch, "pr": pr}
            conn.execute(insert, {**values, "url": url})
    migrate.upgrade(postgres_url)
    with engine.connect() as conn:
        recorded = conn.execute(
            text("SELECT number, issue_number, state, task_id, branch FROM pull_requests")
        ).all()
        first = conn.execute(text("SELECT min(id) FROM tasks")).scalar()
    assert [tuple(r) for r in recorded] == [(4, 1, "open", first, "claude/issue-1-a")]
    command.downgrade(migrate.alembic_config(postgres_url), "0007")
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT to_regclass('pull_requests')")).scalar()
    assert tables is None
    engine.dispose()
