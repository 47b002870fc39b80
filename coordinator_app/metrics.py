"""``/metrics`` in Prometheus format.

Task, agent, token and cost figures are read from PostgreSQL at scrape time, so they are the
cluster's truth whichever coordinator process answers; request counts are per process.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from coordinator_app import agents
from coordinator_app.auth import current_principal
from coordinator_app.models import Task, TaskTransition, utcnow
from coordinator_app.services import services
from coordinator_app.states import RUNNING_STATES, AgentState, TaskState

bp = Blueprint("metrics", __name__)
DURATION_BUCKETS = (60, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))


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

    def _durations(self, session) -> HistogramMetricFamily:
        seconds = session.scalars(
            select(func.extract("epoch", Task.updated_at - Task.created_at)).where(
                Task.state == TaskState.COMPLETED.value
            )
        ).all()
        buckets, total = [], 0.0
        for bound in DURATION_BUCKETS:
            buckets.append(
                (
                    str(bound) if bound != float("inf") else "+Inf",
                    sum(1 for s in seconds if float(s) <= bound),
                )
            )
        total = sum(float(s) for s in seconds)
        return HistogramMetricFamily(
            "claude_task_duration_seconds",
            "Time from task creation to completion",
            buckets=buckets,
            sum_value=total,
        )


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
