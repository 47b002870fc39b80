"""A task's GitHub access: granted with the claim, held in memory, renewed for the task's own
branch before it runs out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from agent_app.exceptions import AgentError
from agent_app.github_access import RENEW_MARGIN, Grant, TaskAccess
from coordinator_app.models import AuditEntry
from tests.agent.conftest import REPO
from tests.agent.test_agent_tasks import ADD_TRIPLE, edit

GRANT = {
    "token": "ghs_first",
    "expires_at": None,
    "repository": REPO,
    "branch": "claude/issue-1-x",
    "api_url": "http://127.0.0.1:9/api/v3",
    "author": {"name": "test-cluster[bot]", "email": "1+test-cluster[bot]@users.noreply.x"},
    "co_authors": ["bob <2+bob@users.noreply.x>"],
    "permissions": {"contents": "write"},
}


def test_a_grant_is_read_whole_or_refused():
    grant = Grant.from_json(GRANT)
    assert (grant.branch, grant.co_authors, grant.may_change_workflows) == (
        "claude/issue-1-x",
        ("bob <2+bob@users.noreply.x>",),
        False,  # an App token without the workflows permission
    )
    assert "ghs_first" not in repr(grant)
    assert Grant.from_json({**GRANT, "permissions": None}).may_change_workflows  # token mode
    for broken in ({**GRANT, "token": ""}, {**GRANT, "author": None}, None, {}):
        with pytest.raises(AgentError, match="GitHub grant is incomplete"):
            Grant.from_json(broken)


def test_access_is_renewed_for_the_task_branch_when_it_runs_low():
    soon = datetime.now(UTC) + RENEW_MARGIN - timedelta(seconds=1)
    later = datetime.now(UTC) + timedelta(hours=1)
    asked = []

    def renew(ref):
        asked.append(ref)
        return {**GRANT, "token": "ghs_second", "expires_at": later.isoformat()}

    access = TaskAccess(Grant.from_json({**GRANT, "expires_at": soon.isoformat()}), renew)
    assert access.token() == "ghs_second" and access.token() == "ghs_second"
    assert asked == ["refs/heads/claude/issue-1-x"]  # once, for the task's own branch
    assert access.commit_trailers() == "Co-authored-by: bob <2+bob@users.noreply.x>\n"


SLOW = {
    "name": "slow-task",
    "match": {"prompt": "(?i)take your time"},
    "turns": [
        [{"tool_use": {"name": "bash", "input": {"command": "sleep 6; echo done"}}}],
        [edit("create", "notes/slow.md", file_text="slow and steady\n")],
        "Wrote the note.",
    ],
}


def test_a_task_that_outlives_its_token_renews_it_and_finishes(cluster_factory):
    # Tokens live 605 s: within RENEW_MARGIN (600 s) of expiry after 5 s.
    with cluster_factory([SLOW], github={"installation_token_seconds": 605}) as cluster:
        cluster.agent()
        number = cluster.label_issue("Take your time", "a slow task")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        with cluster.ccc.database.session() as session:
            renewals = session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "task.github_token", AuditEntry.target == str(task["id"])
                )
            ).all()
        assert renewals, "the agent never renewed its token"
        # Each task token was revoked on GitHub once done with: the first when its renewal
        # replaced it, the last at the task's end. None is left to steal.
        left = [t for t in cluster.github_sim.store.tokens.values() if t.repositories]
        assert left == []


def test_a_throttled_installation_slows_the_cluster_down_and_loses_nothing(cluster_factory, caplog):
    # The installation (the coordinator's calls and the task's token together) may make 10
    # requests per 4 s: less than one task needs.
    limits = {"rate_limit": 10, "rate_limit_window_seconds": 4}
    with cluster_factory([ADD_TRIPLE], github=limits) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a triple function", "widgets should offer triple(x)")
        task = cluster.wait_for(number, timeout=120)
        assert task["state"] == "review", task
        assert task["attempts"] == 1  # waited, never failed
        pulls = cluster.gh().get_repo(REPO).get_pulls(state="all")
        assert [p.number for p in pulls] == [task["pr_number"]]
    waits = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage().lower()]
    assert waits, "nobody ever waited for the rate limit"
    assert any(r.name.startswith("agent_app") for r in caplog.records if "rate limit" in
               r.getMessage().lower()), waits  # fmt: skip
