"""The acceptance figures over a cluster's known history: seven pull requests in two
repositories, opened, merged, rejected and left open at known times after known follow-ups and
costs; every figure checked exactly for each grouping, through the API and in /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from cluster_core.states import TaskKind, TaskState
from coordinator_app.api.schemas import ACCEPTANCE
from coordinator_app.models import PullRequest, Task, utcnow


@dataclass
class History:
    """A pull request the cluster opened, in seconds after the start of the history."""

    repository: str
    number: int
    issue: int
    specialty: str
    agent: str | None  # None: not recorded (opened before the figures existed)
    executor: str | None
    state: str  # open, merged or closed
    created: int  # the trigger: its opening task's creation
    opened: int
    decided: int | None = None
    cost: str = "0"  # of the opening task, all its attempts
    follow_ups: list[tuple[int, str]] = field(default_factory=list)  # (created, cost)
    quiet_since: timedelta | None = None  # open: its last activity, before now
    reminded: bool = False


# The numbers repeat across the repositories: a task belongs to a repository's pull request.
HISTORY = [
    # Merged after two follow-ups; a third one, made after the merge, is no round (it was
    # cancelled) but its cost counts.
    History(
        "acme/widgets", 10, 1, "backend", "be-1", "messages-api", "merged", 0, 1500, 8700,
        cost="1.5", follow_ups=[(3600, "0.25"), (5400, "0.25"), (9600, "0.125")],
    ),
    History(
        "acme/widgets", 11, 2, "backend", "be-2", "messages-api", "merged", 3600, 7200, 93600,
        cost="2", follow_ups=[(10000, "0.375")],
    ),
    History(
        "acme/widgets", 12, 3, "frontend", "fe-1", "claude-code", "closed", 7200, 7800, 22200,
        cost="0.75", follow_ups=[(9000, "0.25")],
    ),
    # Quiet for a little over stale_review_seconds (3 days), not reminded yet.
    History(
        "acme/api", 13, 10, "frontend", "fe-2", "messages-api", "open", 1000, 4500,
        cost="0.125", quiet_since=timedelta(days=3, hours=1),
    ),
    # Quiet since a day after its opening, and reminded: listed before the one above.
    History(
        "acme/api", 10, 7, "backend", "be-1", "claude-code", "open", 0, 3000,
        cost="0.5", quiet_since=None, reminded=True,
    ),
    History(
        "acme/api", 11, 8, "backend", None, None, "merged", 600, 1800, 12600,
        cost="1", follow_ups=[(5000, "0.5")],
    ),
    # Reviewed an hour ago: not waiting.
    History(
        "acme/api", 12, 9, "frontend", "fe-1", "messages-api", "open", 900, 1800,
        cost="0.375", quiet_since=timedelta(hours=1),
    ),
]  # fmt: skip


def record_history(ccc) -> datetime:
    """The tasks and pull requests of ``HISTORY`` (plus a task that failed before opening
    any pull request, whose cost no figure counts); returns the start of the history."""
    now = utcnow()
    start = now - timedelta(days=30)

    def at(seconds: int) -> datetime:
        return start + timedelta(seconds=seconds)

    def task(pull: History, created: int, cost: str, **more) -> Task:
        return Task(
            repository=pull.repository,
            issue_number=pull.issue,
            title=f"Issue {pull.issue}",
            requested_by="bob",
            specialty=pull.specialty,
            executor=pull.executor,
            pr_number=pull.number,
            cost_usd=Decimal(cost),
            created_at=at(created),
            **more,
        )

    final = {"merged": TaskState.COMPLETED, "closed": TaskState.FAILED, "open": TaskState.REVIEW}
    with ccc.database.session() as session:
        for pull in HISTORY:
            opener = task(pull, pull.created, pull.cost, state=final[pull.state].value)
            session.add(opener)
            for created, cost in pull.follow_ups:
                decided = pull.decided is not None and created > pull.decided
                state = TaskState.CANCELLED if decided else final[pull.state]
                kind = TaskKind.FOLLOW_UP.value
                session.add(task(pull, created, cost, kind=kind, state=state.value))
            session.flush()
            if pull.quiet_since is not None:
                last_activity = now - pull.quiet_since
            else:
                last_activity = at(pull.opened + 86400)
            session.add(
                PullRequest(
                    repository=pull.repository,
                    number=pull.number,
                    url=f"https://github.com/{pull.repository}/pull/{pull.number}",
                    branch=f"claude/issue-{pull.issue}",
                    issue_number=pull.issue,
                    task_id=opener.id,
                    specialty=pull.specialty,
                    agent=pull.agent,
                    executor=pull.executor,
                    state=pull.state,
                    opened_at=at(pull.opened),
                    decided_at=at(pull.decided) if pull.decided is not None else None,
                    decided_by="carol" if pull.decided is not None else None,
                    last_activity_at=last_activity,
                    reminded_at=last_activity + timedelta(days=3) if pull.reminded else None,
                )
            )
        session.add(
            Task(
                repository="acme/widgets",
                issue_number=4,
                title="Issue 4",
                requested_by="bob",
                specialty="backend",
                state=TaskState.FAILED.value,
                cost_usd=Decimal(3),
                created_at=at(0),
            )
        )
    return start


COLUMNS = (
    "group",
    "opened",
    "merged",
    "rejected",
    "open",
    "merge_rate",
    "median_seconds_to_first_pr",
    "median_seconds_to_merge",
    "follow_up_rounds",
    "cost_usd",
    "cost_per_merged_pr",
)
# All seven: 3 merged, 1 rejected, 3 open. Times to the pull request 600, 900, 1200, 1500,
# 3000, 3500 and 3600 s; to merge 7200, 10800 and 86400 s; 2 + 1 + 1 rounds before the merges;
# 8 dollars of work (the failed task's 3 not among them).
TOTAL = ("all", 7, 3, 1, 3, 3 / 4, 1500, 10800, 4 / 3, 8, 8 / 3)
EXPECTED = {
    "repository": [
        ("acme/api", 4, 1, 0, 3, 1, (1200 + 3000) / 2, 10800, 1, 2.5, 2.5),
        ("acme/widgets", 3, 2, 1, 0, 2 / 3, 1500, (7200 + 86400) / 2, 3 / 2, 5.5, 5.5 / 2),
    ],
    "specialty": [
        ("backend", 4, 3, 0, 1, 1, (1500 + 3000) / 2, 10800, 4 / 3, 6.5, 6.5 / 3),
        ("frontend", 3, 0, 1, 2, 0, 900, None, None, 1.5, None),
    ],
    "agent": [
        ("be-1", 2, 1, 0, 1, 1, (1500 + 3000) / 2, 7200, 2, 2.625, 2.625),
        ("be-2", 1, 1, 0, 0, 1, 3600, 86400, 1, 2.375, 2.375),
        ("fe-1", 2, 0, 1, 1, 0, (600 + 900) / 2, None, None, 1.375, None),
        ("fe-2", 1, 0, 0, 1, None, 3500, None, None, 0.125, None),
        ("unknown", 1, 1, 0, 0, 1, 1200, 10800, 1, 1.5, 1.5),
    ],
    "executor": [
        ("claude-code", 2, 0, 1, 1, 0, (600 + 3000) / 2, None, None, 1.5, None),
        ("messages-api", 4, 2, 0, 2, 1, (1500 + 3500) / 2, (7200 + 86400) / 2, 3 / 2, 5, 2.5),
        ("unknown", 1, 1, 0, 0, 1, 1200, 10800, 1, 1.5, 1.5),
    ],
}


def as_rows(answer: dict) -> tuple[list[tuple], tuple]:
    """The API's answer as rows of ``COLUMNS``: (groups, total)."""

    def row(figures: dict) -> tuple:
        assert set(figures) == set(COLUMNS)
        return tuple(figures[column] for column in COLUMNS)

    return [row(g) for g in answer["groups"]], row(answer["total"])


@pytest.mark.parametrize("by", list(EXPECTED))
def test_every_figure_of_every_grouping(ccc, client, admin_headers, by):
    record_history(ccc)
    answer = client.get(f"/api/v1/acceptance?by={by}", headers=admin_headers)
    assert answer.status_code == 200, answer.json
    Draft202012Validator(ACCEPTANCE).validate(answer.json)  # the documented answer
    assert answer.json["by"] == by
    groups, total = as_rows(answer.json)
    assert groups == EXPECTED[by]
    assert total == TOTAL


def test_grouping_defaults_to_the_repository_and_is_checked(ccc, client, admin_headers):
    record_history(ccc)
    default = client.get("/api/v1/acceptance", headers=admin_headers)
    assert default.json["by"] == "repository"
    assert as_rows(default.json) == (EXPECTED["repository"], TOTAL)
    for wrong in ("state", "Repository", "repository;drop", "1"):
        answer = client.get(f"/api/v1/acceptance?by={wrong}", headers=admin_headers)
        assert answer.status_code == 400, wrong
        assert answer.json["error"]["code"] == "invalid_request", answer.json


def test_a_cluster_without_pull_requests_has_a_total_of_nothing(client, admin_headers):
    answer = client.get("/api/v1/acceptance?by=agent", headers=admin_headers)
    assert answer.status_code == 200, answer.json
    groups, total = as_rows(answer.json)
    assert groups == []
    assert total == ("all", 0, 0, 0, 0, None, None, None, None, 0, None)


def test_agents_may_not_read_the_figures(ccc, client, make_agent):
    record_history(ccc)
    agent = make_agent("be-1")
    answer = client.get("/api/v1/acceptance", headers=agent.headers)
    assert answer.status_code == 403
    assert client.get("/api/v1/acceptance").status_code == 401


def test_the_document_declares_the_grouping_and_the_answer(client):
    document = client.get("/api/v1/openapi.json").json
    operation = document["paths"]["/api/v1/acceptance"]["get"]
    assert operation["x-allowed-callers"] == ["admin"]
    (by,) = operation["parameters"]
    assert by["in"] == "query"
    assert by["schema"]["enum"] == ["repository", "specialty", "agent", "executor"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "429"}
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/Acceptance"}


# /metrics: raw counts and sums; the ratios are derived as PromQL would -----------------------

WIDGETS_BE_1 = {
    "repository": "acme/widgets",
    "specialty": "backend",
    "agent": "be-1",
    "executor": "messages-api",
}
API_UNKNOWN = {
    "repository": "acme/api",
    "specialty": "backend",
    "agent": "unknown",
    "executor": "unknown",
}


def scrape(client, headers) -> dict[str, list]:
    """/metrics as {family name: its samples}."""
    text = client.get("/metrics", headers=headers).get_data(as_text=True)
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples, name: str, **labels: str) -> float:
    """The one sample ``name`` with exactly ``labels``."""
    (found,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


def total(samples, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` that have ``labels`` (PromQL's ``sum(name{labels})``)."""
    chosen = [s for s in samples if s.name == name]
    return sum(s.value for s in chosen if labels.items() <= s.labels.items())


def test_metrics_count_and_sum_per_group_and_state(ccc, client, admin_headers):
    record_history(ccc)
    families = scrape(client, admin_headers)

    counts = families["claude_pull_requests"]
    # Every state of each of the seven groups (each pull request here has its own).
    assert len(counts) == 7 * 3
    merged = total(counts, "claude_pull_requests", state="merged")
    rejected = total(counts, "claude_pull_requests", state="rejected")
    assert (merged, rejected, total(counts, "claude_pull_requests", state="open")) == (3, 1, 3)
    assert value(counts, "claude_pull_requests", **WIDGETS_BE_1, state="merged") == 1
    assert value(counts, "claude_pull_requests", **WIDGETS_BE_1, state="rejected") == 0
    assert value(counts, "claude_pull_requests", **API_UNKNOWN, state="merged") == 1
    widgets = total(counts, "claude_pull_requests", repository="acme/widgets", state="merged")
    widgets_rejected = total(
        counts, "claude_pull_requests", repository="acme/widgets", state="rejected"
    )
    assert widgets / (widgets + widgets_rejected) == 2 / 3  # the API's merge rate
    assert merged / (merged + rejected) == 3 / 4

    cost = families["claude_pull_request_cost_dollars"]
    name = "claude_pull_request_cost_dollars"
    assert value(cost, name, **WIDGETS_BE_1, state="merged") == 2.125  # after the merge too
    assert total(cost, name) == 8  # not the 3 dollars of the task without a pull request
    assert total(cost, name, state="rejected") == 1
    assert total(cost, name) / merged == 8 / 3  # cost per merged pull request

    rounds = families["claude_pull_request_follow_up_rounds"]
    name = "claude_pull_request_follow_up_rounds"
    assert value(rounds, name, **WIDGETS_BE_1, state="merged") == 2  # not the late one
    assert total(rounds, name, state="rejected") == 1
    assert total(rounds, name, state="merged") / merged == 4 / 3


def test_metrics_histograms_of_time_to_pull_request_and_to_merge(ccc, client, admin_headers):
    record_history(ccc)
    families = scrape(client, admin_headers)

    merge = families["claude_pull_request_time_to_merge_seconds"]
    name = "claude_pull_request_time_to_merge_seconds"
    # Only the merged pull requests, each in its own group here.
    assert total(merge, f"{name}_count") == 3
    assert total(merge, f"{name}_sum") == 7200 + 10800 + 86400
    assert value(merge, f"{name}_count", **WIDGETS_BE_1) == 1
    assert value(merge, f"{name}_bucket", **WIDGETS_BE_1, le="3600.0") == 0
    assert value(merge, f"{name}_bucket", **WIDGETS_BE_1, le="7200.0") == 1
    assert value(merge, f"{name}_bucket", **API_UNKNOWN, le="7200.0") == 0
    assert value(merge, f"{name}_bucket", **API_UNKNOWN, le="14400.0") == 1
    assert total(merge, f"{name}_bucket", le="86400.0") == 3
    assert total(merge, f"{name}_bucket", le="28800.0") == 2
    assert total(merge, f"{name}_bucket", le="+Inf") == 3

    first = families["claude_pull_request_time_to_open_seconds"]
    name = "claude_pull_request_time_to_open_seconds"
    assert total(first, f"{name}_count") == 7
    assert total(first, f"{name}_sum") == 1500 + 3600 + 600 + 3500 + 3000 + 1200 + 900
    assert total(first, f"{name}_bucket", le="900.0") == 2
    assert total(first, f"{name}_bucket", le="1800.0") == 4
    assert total(first, f"{name}_bucket", le="3600.0") == 7
