"""Triggers end to end over the wire: the GitHub simulator delivers real webhooks to a running
coordinator, which creates, refuses, follows up and cancels through the real PyGithub client."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from sqlalchemy import select

from cluster_core.states import TaskState
from coordinator_app.github_auth import TokenAuth
from coordinator_app.github_gateway import GitHubGateway
from coordinator_app.models import Task, WebhookDelivery, utcnow
from coordinator_app.processor import Processor
from coordinator_app.tasks import fail_task, transition
from simulators.github.testing import TOKENS
from tests.coordinator.conftest import REPO, labels, settle, tasks_for


def test_label_from_a_writer_creates_a_queued_task_and_labels_the_issue(world):
    sim, ccc, as_user, _ = world
    bob = as_user("bob")
    issue = bob.get_repo(REPO).create_issue("Add a /health endpoint", body="api server route")
    issue.add_to_labels("claude")
    settle(sim, ccc)
    settle(sim, ccc)  # the cluster's own label change comes back as an event
    (task,) = tasks_for(ccc, issue.number)
    assert task.state == "queued" and task.specialty == "backend" and task.requested_by == "bob"
    assert labels(bob, issue.number) == {"claude", "claude:queued"}
    with ccc.database.session() as session:
        outcomes = {
            (d.action, d.status, d.outcome)
            for d in session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.event == "issues")
            )
        }
    assert ("labeled", "processed", f"created task {task.id}") in outcomes
    # The cluster's own state label comes back as an event too, and changes nothing.
    assert ("labeled", "ignored", "ignored: label 'claude:queued' is not the trigger") in outcomes


def test_other_labels_do_nothing(world):
    sim, ccc, as_user, _ = world
    issue = as_user("bob").get_repo(REPO).create_issue("Something")
    issue.add_to_labels("bug")
    settle(sim, ccc)
    assert tasks_for(ccc, issue.number) == []


def test_trigger_phrase_from_a_reader_is_refused_politely(world):
    sim, ccc, as_user, _ = world
    carol = as_user("carol")
    issue = carol.get_repo(REPO).create_issue("Please fix the docs")
    issue.create_comment("@claude can you take this?")
    settle(sim, ccc)
    assert tasks_for(ccc, issue.number) == []
    comments = [c.body for c in carol.get_repo(REPO).get_issue(issue.number).get_comments()]
    assert any("Only collaborators with write access" in c for c in comments)


def test_trigger_phrase_from_a_writer_starts_work(world):
    sim, ccc, as_user, _ = world
    bob = as_user("bob")
    issue = bob.get_repo(REPO).create_issue("Typo in README", body="README.md says teh")
    issue.create_comment("@Claude please fix")
    settle(sim, ccc)
    (task,) = tasks_for(ccc, issue.number)
    assert task.specialty == "documentation"


def test_many_events_for_one_issue_make_one_task(world):
    sim, ccc, as_user, _ = world
    bob = as_user("bob")
    issue = bob.get_repo(REPO).create_issue("Add caching", body="backend api")
    issue.add_to_labels("claude")
    for _ in range(3):
        issue.create_comment("@claude go")
    issue.remove_from_labels("claude")
    issue.add_to_labels("claude")
    settle(sim, ccc)
    assert len(tasks_for(ccc, issue.number)) == 1


def test_closing_the_issue_cancels_its_task(world):
    sim, ccc, as_user, _ = world
    bob = as_user("bob")
    issue = bob.get_repo(REPO).create_issue("Add caching", body="backend api")
    issue.add_to_labels("claude")
    settle(sim, ccc)
    issue.edit(state="closed")
    settle(sim, ccc)
    (task,) = tasks_for(ccc, issue.number)
    assert task.state == "cancelled"
    assert "claude:queued" not in labels(bob, issue.number)


def test_dependency_holds_the_task_until_the_other_issue_closes(world):
    sim, ccc, as_user, _ = world
    repo = as_user("bob").get_repo(REPO)
    first = repo.create_issue("Part one")
    second = repo.create_issue("Part two", body=f"Depends on #{first.number}")
    second.add_to_labels("claude")
    settle(sim, ccc)
    (task,) = tasks_for(ccc, second.number)
    assert task.state == "pending"
    first.edit(state="closed")
    with ccc.database.session() as session:  # skip the recheck delay
        session.get(Task, task.id).updated_at = task.updated_at.replace(year=2000)
    settle(sim, ccc)
    (task,) = tasks_for(ccc, second.number)
    assert task.state == "queued"


def _push_branch(url: str, branch: str, workdir) -> None:
    remote = url.replace("http://", f"http://x-access-token:{TOKENS['cluster-bot']}@")
    checkout = workdir / "checkout"
    subprocess.run(["git", "clone", "-q", f"{remote}/{REPO}.git", str(checkout)], check=True)
    (checkout / "health.py").write_text("def health():\n    return 'ok'\n")
    env = {
        "GIT_AUTHOR_NAME": "bot",
        "GIT_AUTHOR_EMAIL": "bot@example.invalid",
        "GIT_COMMITTER_NAME": "bot",
        "GIT_COMMITTER_EMAIL": "bot@example.invalid",
        "PATH": "/usr/bin:/bin",
    }
    for args in (
        ["checkout", "-q", "-b", branch],
        ["add", "."],
        ["commit", "-q", "-m", "health"],
        ["push", "-q", "origin", branch],
    ):
        subprocess.run(["git", *args], cwd=checkout, check=True, env=env)


def test_review_comment_on_the_clusters_pr_becomes_a_follow_up(world, tmp_path):
    sim, ccc, as_user, url = world
    bob = as_user("bob")
    issue = bob.get_repo(REPO).create_issue("Add a /health endpoint", body="api server")
    issue.add_to_labels("claude")
    settle(sim, ccc)
    (task,) = tasks_for(ccc, issue.number)
    # What an agent does: push the branch, open the PR, report completion.
    _push_branch(url, "claude/issue-1-health", tmp_path)
    pr = (
        as_user("cluster-bot")
        .get_repo(REPO)
        .create_pull(
            title="Add /health",
            body=f"Closes #{issue.number}",
            head="claude/issue-1-health",
            base="main",
        )
    )
    with ccc.database.session() as session:
        row = session.get(Task, task.id)
        row.state, row.branch, row.pr_number, row.pr_url = (
            "completed",
            "claude/issue-1-health",
            pr.number,
            pr.html_url,
        )
    commit = bob.get_repo(REPO).get_pull(pr.number).get_commits()[0]
    bob.get_repo(REPO).get_pull(pr.number).create_review_comment(
        "Please return JSON", commit, "health.py", line=2
    )
    settle(sim, ccc)
    parent, follow_up = tasks_for(ccc, issue.number)
    assert follow_up.kind == "follow_up" and follow_up.parent_id == parent.id
    assert follow_up.branch == "claude/issue-1-health" and follow_up.pr_number == pr.number
    assert "Please return JSON" in follow_up.body and "health.py:2" in follow_up.body
    assert follow_up.state == "queued"


def test_review_on_someone_elses_pr_is_ignored(world, tmp_path):
    sim, ccc, as_user, url = world
    _push_branch(url, "feature", tmp_path)
    bob = as_user("bob")
    pr = bob.get_repo(REPO).create_pull(title="Mine", body="", head="feature", base="main")
    pr.create_issue_comment("@claude look")
    settle(sim, ccc)
    assert tasks_for(ccc, pr.number) == []


def test_polling_finds_labelled_issues_without_webhooks_and_never_duplicates(world):
    sim, ccc, as_user, _ = world
    for hook in list(sim.repo(REPO).hooks):
        sim.delete_hook(REPO, hook)  # GitHub cannot reach this coordinator
    issue = (
        as_user("bob")
        .get_repo(REPO)
        .create_issue("Add caching", body="backend api", labels=["claude"])
    )
    ccc.config.poll_repositories = [REPO]
    assert ccc.processor.poll() == 1
    assert ccc.processor.poll() == 0
    (task,) = tasks_for(ccc, issue.number)
    assert task.requested_by == "bob" and task.state == "queued"


def test_github_outage_keeps_the_delivery_for_later(world):
    sim, ccc, as_user, _ = world
    issue = as_user("bob").get_repo(REPO).create_issue("Add caching", body="backend")
    issue.add_to_labels("claude")
    assert sim.wait_idle(10)
    unreachable = GitHubGateway(TokenAuth("http://127.0.0.1:9/api/v3", "token"))
    cut_off = Processor(ccc.database, ccc.config, ccc.queues, unreachable)
    cut_off.process_deliveries()
    unreachable.close()
    assert tasks_for(ccc, issue.number) == []
    with ccc.database.session() as session:
        waiting = session.scalars(
            select(WebhookDelivery.status).where(WebhookDelivery.action == "labeled")
        ).all()
    assert waiting == ["received"]
    settle(sim, ccc)  # GitHub is back
    (task,) = tasks_for(ccc, issue.number)
    assert task.state == "queued"


def test_malformed_event_is_recorded_as_failed(world):
    _, ccc, _, _ = world
    with ccc.database.session() as session:
        session.add(
            WebhookDelivery(
                id="broken-1",
                event="issues",
                action="labeled",
                payload={
                    "action": "labeled",
                    "repository": {"full_name": REPO},
                    "label": {"name": "claude"},
                },
            )
        )
    ccc.processor.process_deliveries()
    with ccc.database.session() as session:
        failed = session.get(WebhookDelivery, "broken-1")
    assert failed.status == "failed" and failed.outcome == "error: 'issue'"


def fail_for_retry(ccc, task_id: int, retry_in: timedelta) -> None:
    """What an agent's failed run leaves: the task failed, its retry scheduled."""
    with ccc.database.session() as session:
        task = session.get(Task, task_id)
        transition(session, task, TaskState.ASSIGNED, actor="agent:a")
        task.attempts += 1
        fail_task(session, ccc.config, task, actor="agent:a", error="tests never passed")
        task.retry_at = utcnow() + retry_in


def test_a_re_trigger_retries_the_failed_task_and_jams_no_other(world):
    sim, ccc, as_user, _ = world
    repo = as_user("bob").get_repo(REPO)
    first, second = (repo.create_issue(t, body="api server") for t in ("Add caching", "Add logs"))
    for issue in (first, second):
        issue.add_to_labels("claude")
    settle(sim, ccc)
    (one,), (two,) = tasks_for(ccc, first.number), tasks_for(ccc, second.number)
    fail_for_retry(ccc, one.id, timedelta(hours=1))  # waits for its retry
    fail_for_retry(ccc, two.id, timedelta(seconds=-1))  # due now
    # Removing and adding the trigger label again: the waiting task is retried now, and no
    # second task is made for the issue (before, the two clashed on every retry pass).
    first.remove_from_labels("claude")
    first.add_to_labels("claude")
    settle(sim, ccc)
    (again,) = tasks_for(ccc, first.number)
    assert (again.id, again.state, again.retry_at) == (one.id, "queued", None)
    with ccc.database.session() as session:
        last = session.get(Task, one.id).transitions[-1]
        assert (last.to_state, last.reason) == ("queued", "re-triggered: labelled claude")
    (due,) = tasks_for(ccc, second.number)
    assert due.state == "queued"  # its retry went ahead in the same pass
    settle(sim, ccc)
    comments = [c.body for c in first.get_comments()]
    assert any(c.startswith("Retrying now, as @bob asked (attempt 2)") for c in comments), comments
