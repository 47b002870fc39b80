"""``/metrics`` in Prometheus format.

Task, agent, token, cost and pull request figures are read from PostgreSQL at scrape time, so
they are the cluster's truth whichever coordinator process answers; request counts are per
process. The pull request families are raw counts and sums per repository, specialty, agent and
executor (coordinator_app.acceptance defines them): rates and means are PromQL's to derive.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select

from cluster_core.states import RUNNING_STATES, AgentState, TaskState
from coordinator_app import acceptance, agents
from coordinator_app.auth import current_principal
from coordinator_app.models import Task, TaskTransition, utcnow
from coordinator_app.services import services

bp = Blueprint("metrics", __name__)
DURATION_BUCKETS = (60, 300, 600, 1200, 1800, 3600, 7200, 14400, 86400, 259200, 604800)
# From a quick fix opened in minutes to a review that waits for weeks.
REVIEW_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800, 1209600)
PR_LABELS = list(acceptance.GROUPINGS)


class ClusterCollector:
    """Collects the cluster-wide metrics from the database on each scrape."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        ccc = self.app.extensions["ccc"]
        with ccc.database.session() as session:
            entered = dict(
                session.execute(
                    select(TaskTransition.to_state, func.count()).group_by(TaskTransition.to_state)
                ).all()
            )
            tasks_total = CounterMetricFamily(
                "claude_tasks", "Tasks that entered each state", labels=["state"]
            )
            for state in TaskState:
                tasks_total.add_metric([state.value], entered.get(state.value, 0))
            yield tasks_total

            active = session.scalar(
                select(func.count()).where(Task.state.in_([s.value for s in RUNNING_STATES]))
            )
            yield GaugeMetricFamily("claude_active_tasks", "Tasks held by agents now", value=active)

            yield self._durations(session)

            states = agents.states_by_agent(session, ccc.config, utcnow())
            by_state = GaugeMetricFamily("claude_agents_total", "Agents by state", labels=["state"])
            load = GaugeMetricFamily(
                "claude_agent_load", "Reported load per agent", labels=["agent"]
            )
            for state in AgentState:
                by_state.add_metric(
                    [state.value], sum(1 for _, s, _ in states.values() if s is state)
                )
            for agent, _, _ in states.values():
                load.add_metric([agent.name], float(agent.load or 0))
            yield by_state
            yield load

            tokens_in, tokens_out, cost = session.execute(
                select(
                    func.coalesce(func.sum(Task.input_tokens), 0),
                    func.coalesce(func.sum(Task.output_tokens), 0),
                    func.coalesce(func.sum(Task.cost_usd), 0),
                )
            ).one()
            tokens = CounterMetricFamily("claude_tokens", "Model tokens used", labels=["direction"])
            tokens.add_metric(["input"], tokens_in)
            tokens.add_metric(["output"], tokens_out)
            yield tokens
            yield CounterMetricFamily("claude_cost_dollars", "Model cost in USD", value=float(cost))

            yield from self._pull_requests(session)

    def _durations(self, session) -> HistogramMetricFamily:
        seconds = func.extract("epoch", Task.updated_at - Task.created_at)
        *counts, total = session.execute(
            select(*_bucket_counts(seconds, DURATION_BUCKETS)).where(
                Task.state == TaskState.COMPLETED.value
            )
        ).one()
        return HistogramMetricFamily(
            "claude_task_duration_seconds",
            "Time from a task's creation to its completion (its pull request merged)",
            buckets=list(zip(_bounds(DURATION_BUCKETS), counts, strict=True)),
            sum_value=float(total or 0),
        )

    def _pull_requests(self, session):
        """Pull requests by state (open, merged, rejected), the cost and follow-up rounds of
        each state's, and how long they took to open and to merge."""
        pull = acceptance.per_pull_request()
        labels = [pull.c[name] for name in PR_LABELS]
        rows = session.execute(
            select(
                *labels,
                pull.c.state,
                func.count(),
                func.sum(pull.c.cost),
                func.sum(pull.c.follow_ups),
            ).group_by(*labels, pull.c.state)
        ).all()
        found = {(tuple(row[:-4]), acceptance.STATES[row[-4]]): row[-3:] for row in rows}
        counts = GaugeMetricFamily(
            "claude_pull_requests",
            "Pull requests the cluster opened, by GitHub's decision",
            labels=[*PR_LABELS, "state"],
        )
        cost = GaugeMetricFamily(
            "claude_pull_request_cost_dollars",
            "Model cost in USD of the tasks that worked on the pull requests",
            labels=[*PR_LABELS, "state"],
        )
        rounds = GaugeMetricFamily(
            "claude_pull_request_follow_up_rounds",
            "Follow-up tasks of the pull requests, created before GitHub's decision",
            labels=[*PR_LABELS, "state"],
        )
        # Every state of a group, 0 included: a ratio over states then exists for each group.
        for group in sorted({group for group, _ in found}):
            for state in acceptance.STATES.values():
                number, dollars, follow_ups = found.get((group, state), (0, 0, 0))
                counts.add_metric([*group, state], number)
                cost.add_metric([*group, state], float(dollars))
                rounds.add_metric([*group, state], int(follow_ups))
        yield counts
        yield cost
        yield rounds
        yield self._histogram(
            session,
            pull.c.seconds_to_first_pr,
            "claude_pull_request_time_to_open_seconds",
            "Time from the trigger (the opening task's creation) to the pull request",
        )
        yield self._histogram(
            session,
            pull.c.seconds_to_merge,
            "claude_pull_request_time_to_merge_seconds",
            "Time from a merged pull request's opening to its merge",
        )

    def _histogram(self, session, seconds, name: str, documentation: str):
        """A histogram of ``seconds`` (a column of per_pull_request) per group, its buckets
        counted by PostgreSQL."""
        pull = seconds.table
        labels = [pull.c[label] for label in PR_LABELS]
        rows = session.execute(
            select(*labels, *_bucket_counts(seconds, REVIEW_BUCKETS))
            .where(seconds.is_not(None))
            .group_by(*labels)
            .order_by(*labels)
        ).all()
        family = HistogramMetricFamily(name, documentation, labels=PR_LABELS)
        for row in rows:
            group, counts, total = row[: len(labels)], row[len(labels) : -1], row[-1]
            buckets = list(zip(_bounds(REVIEW_BUCKETS), counts, strict=True))
            family.add_metric(list(group), buckets, float(total))
        return family


def _bucket_counts(seconds, bounds) -> list:
    """Columns counting ``seconds`` at or below each bound, then all of them (+Inf), then their
    sum: a histogram counted by PostgreSQL, not by loading every row."""
    return [
        *(func.count().filter(seconds <= bound) for bound in bounds),
        func.count(),
        func.sum(seconds),
    ]


def _bounds(bounds) -> list[str]:
    return [*map(floatToGoString, bounds), "+Inf"]


def init_app(app: Flask) -> None:
    """Per-app registry with the request metrics and the cluster collector."""
    registry = CollectorRegistry()
    requests = Counter(
        "claude_api_requests",
        "HTTP requests served",
        ["method", "endpoint", "status"],
        registry=registry,
    )
    durations = Histogram(
        "claude_api_duration_seconds", "HTTP request duration", ["endpoint"], registry=registry
    )
    registry.register(ClusterCollector(app))
    app.extensions["ccc_metrics"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _count(response):
        endpoint = request.endpoint or "unknown"
        requests.labels(request.method, endpoint, str(response.status_code)).inc()
        if "request_started" in g:
            durations.labels(endpoint).observe(time.perf_counter() - g.request_started)
        return response


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition, for the scrape token or any API token."""
    token = services().config.metrics_token
    header = request.headers.get("Authorization", "")
    if not (token and hmac.compare_digest(header, f"Bearer {token}")):
        current_principal()  # raises 401 unless an agent or admin token
    return Response(
        generate_latest(current_app.extensions["ccc_metrics"]), mimetype=CONTENT_TYPE_LATEST
    )
