"""The acceptance figures: do people merge the pull requests the cluster opens, how soon, after
how many rounds of review, and at what cost.

They are counted over the pull requests the cluster opened (``pull_requests``), grouped by the
repository, specialty, agent or executor of the run that opened each one ("unknown" when it was
not recorded, e.g. pull requests opened before these figures existed), with a total over all:

- ``opened``: pull requests opened; of them ``merged``, ``rejected`` (closed without merge) and
  ``open`` (awaiting GitHub's decision). A reopened pull request is open again.
- ``merge_rate``: merged / (merged + rejected); open ones are not decided yet and do not count.
  None while nothing was decided.
- ``median_seconds_to_first_pr``: the median, over pull requests, of the time from the trigger
  (the creation of the task whose run opened it) to the pull request's opening.
- ``median_seconds_to_merge``: the median, over merged pull requests, of the time from opening
  to merge.
- ``follow_up_rounds``: the mean, over merged pull requests, of their follow-up tasks (runs that
  addressed review comments) created before the merge. 0 means merged as first opened.
- ``cost_usd``: the model cost of every task that worked on the group's pull requests (merged,
  rejected or open; every attempt of each), and ``cost_per_merged_pr`` = cost_usd / merged:
  what a merge costs, the rejected and pending work included. None without a merge.

The cost of runs that never opened a pull request (failed before) is in none of these: see
``claude_cost_dollars_total`` for the cluster's whole spend.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Double, Subquery, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from cluster_core.states import TaskKind
from coordinator_app.models import PullRequest, Task

GROUPINGS = ("repository", "specialty", "agent", "executor")
UNKNOWN = "unknown"  # the group of pull requests whose run did not record it
TOTAL = "all"  # the name of the total row
# pull_requests.state -> the figures' name for it.
STATES = {"open": "open", "merged": "merged", "closed": "rejected"}


@dataclass(frozen=True)
class Figures:
    """The acceptance figures of one group (or of all pull requests: ``total``)."""

    group: str
    total: bool
    opened: int
    merged: int
    rejected: int
    open: int
    median_seconds_to_first_pr: float | None
    median_seconds_to_merge: float | None
    merged_follow_ups: int  # follow-up tasks of the merged pull requests, before their merge
    cost_usd: float

    @property
    def merge_rate(self) -> float | None:
        decided = self.merged + self.rejected
        return self.merged / decided if decided else None

    @property
    def follow_up_rounds(self) -> float | None:
        return self.merged_follow_ups / self.merged if self.merged else None

    @property
    def cost_per_merged_pr(self) -> float | None:
        return self.cost_usd / self.merged if self.merged else None


def _seconds(interval):
    return cast(func.extract("epoch", interval), Double)


def per_pull_request() -> Subquery:
    """One row per pull request: its groups ("unknown" for none), its state, how long it took
    to open and to merge, its follow-up rounds and the cost of its tasks (the unit every
    figure and metric sums)."""
    # The tasks that worked on a pull request share its repository and number.
    work = (
        select(
            PullRequest.id,
            func.sum(Task.cost_usd).label("cost"),
            func.count()
            .filter(
                Task.kind == TaskKind.FOLLOW_UP.value,
                or_(PullRequest.decided_at.is_(None), Task.created_at < PullRequest.decided_at),
            )
            .label("follow_ups"),
        )
        .join(
            Task,
            and_(Task.repository == PullRequest.repository, Task.pr_number == PullRequest.number),
        )
        .group_by(PullRequest.id)
        .subquery("work")
    )
    opener = aliased(Task, name="opener")
    merged = PullRequest.state == "merged"
    return (
        select(
            *(func.coalesce(getattr(PullRequest, name), UNKNOWN).label(name) for name in GROUPINGS),
            PullRequest.state,
            _seconds(PullRequest.opened_at - opener.created_at).label("seconds_to_first_pr"),
            case((merged, _seconds(PullRequest.decided_at - PullRequest.opened_at))).label(
                "seconds_to_merge"
            ),
            func.coalesce(work.c.follow_ups, 0).label("follow_ups"),
            func.coalesce(work.c.cost, 0).label("cost"),
        )
        .outerjoin(opener, opener.id == PullRequest.task_id)  # none when its task was deleted
        .outerjoin(work, work.c.id == PullRequest.id)
        .subquery("pull")
    )


def figures(session: Session, by: str) -> list[Figures]:
    """The figures of each value of ``by`` (one of ``GROUPINGS``), by name with "unknown"
    last, then the total."""
    if by not in GROUPINGS:
        raise ValueError(f"figures are grouped by one of {GROUPINGS}, not {by!r}")
    pull = per_pull_request()
    group = pull.c[by]
    is_total = func.grouping(group)  # 1 on the rollup's total row
    rows = session.execute(
        select(
            group.label("group"),
            is_total.label("total"),
            func.count().label("opened"),
            *(func.count().filter(pull.c.state == s).label(name) for s, name in STATES.items()),
            func.percentile_cont(0.5)
            .within_group(pull.c.seconds_to_first_pr)
            .label("median_seconds_to_first_pr"),
            func.percentile_cont(0.5)
            .within_group(pull.c.seconds_to_merge)
            .label("median_seconds_to_merge"),
            func.coalesce(func.sum(pull.c.follow_ups).filter(pull.c.state == "merged"), 0).label(
                "merged_follow_ups"
            ),
            func.coalesce(func.sum(pull.c.cost), 0).label("cost_usd"),
        )
        .group_by(func.rollup(group))
        .order_by(is_total, group == UNKNOWN, group)
    ).all()
    return [
        Figures(
            **{
                **row._asdict(),
                "group": TOTAL if row.total else row.group,
                "total": bool(row.total),
                "merged_follow_ups": int(row.merged_follow_ups),  # a sum of counts: numeric
                "cost_usd": float(row.cost_usd),
            }
        )
        for row in rows
    ]
