"""Operating the coordinator: Redis losing its data, health, metrics, and the `ccc` command."""

from __future__ import annotations

import json

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from coordinator_app.cli import main as ccc_cli
from coordinator_app.models import AdminUser, Agent, AuditEntry, Task
from tests.coordinator.test_api_tasks import claim_next, create


def test_redis_restart_loses_the_queues_and_they_are_rebuilt(
    ccc, client, admin_headers, make_agent, redis_server
):
    tasks = [create(client, admin_headers, number=n) for n in (1, 2)]
    assert ccc.processor.offer_queued() == 2
    redis_server.restart()  # no persistence: every stream, group and offer is gone
    assert not ccc.queues.intact()
    counts = ccc.processor.run_once()
    assert counts["rebuilt"] == 2 and counts["offered"] == 2
    agent = make_agent("be-1", max_tasks=2)
    claimed = {claim_next(ccc, client, agent).json["id"] for _ in tasks}
    assert claimed == {t["id"] for t in tasks}


def test_readyz_names_what_is_down(client, redis_server):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json["checks"] == {"postgresql": "ok", "redis": "ok"}
    redis_server._terminate()
    try:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json["checks"] == {"postgresql": "ok", "redis": "unreachable"}
        assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        redis_server.start()


def test_metrics_carry_the_documented_names(ccc, client, admin_headers, make_agent):
    create(client, admin_headers)
    agent = make_agent("be-1")
    agent.heartbeat()
    claim_next(ccc, client, agent)
    text = client.get("/metrics", headers=admin_headers).get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "claude_tasks",
        "claude_task_duration_seconds",
        "claude_active_tasks",
        "claude_agents_total",
        "claude_agent_load",
        "claude_api_requests",
        "claude_api_duration_seconds",
        "claude_tokens",
        "claude_cost_dollars",
    ):
        assert name in families, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("claude_active_tasks", ())] == 1
    assert samples[("claude_tasks_total", (("state", "assigned"),))] == 1
    assert samples[("claude_agents_total", (("state", "busy"),))] == 1


def test_cli_creates_admins_and_agents(config, ccc, tmp_path):
    file = tmp_path / "coordinator.toml"
    file.write_text(f'database_url = "{config.database_url}"\n')
    runner = CliRunner()
    env = {"CCC_ADMIN_PASSWORD": "a long enough password"}
    first = runner.invoke(ccc_cli, ["--config", str(file), "create-admin", "root"], env=env)
    assert first.exit_code == 0 and "admin root changed" in first.output
    again = runner.invoke(ccc_cli, ["--config", str(file), "create-admin", "root"], env=env)
    assert "admin root unchanged" in again.output
    short = runner.invoke(
        ccc_cli, ["--config", str(file), "create-admin", "x"], env={"CCC_ADMIN_PASSWORD": "short"}
    )
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    made = runner.invoke(
        ccc_cli,
        [
            "--config",
            str(file),
            "create-agent",
            "be-7",
            "--specialty",
            "backend",
            "--max-tasks",
            "3",
        ],
    )
    assert made.exit_code == 0, made.output
    key = json.loads(made.output.strip().splitlines()[-1])["key"]
    assert key.startswith("ccca_")
    with ccc.database.session() as session:
        assert session.scalar(select(AdminUser.username)) == "root"
        agent = session.scalar(select(Agent).where(Agent.name == "be-7"))
        assert agent.max_tasks == 3 and key not in agent.key_hash


def test_cli_reports_bad_configuration(tmp_path):
    file = tmp_path / "coordinator.toml"
    file.write_text("lease_seconds = 'soon'\n")
    result = CliRunner().invoke(ccc_cli, ["--config", str(file), "db", "upgrade"])
    assert result.exit_code != 0 and "setting lease_seconds" in result.output


def test_cli_cancels_and_retries_tasks_as_the_api_does(
    config, ccc, client, admin_headers, tmp_path
):
    file = tmp_path / "coordinator.toml"
    file.write_text(f'database_url = "{config.database_url}"\n')
    runner = CliRunner()
    task_id = create(client, admin_headers)["id"]
    cancelled = runner.invoke(ccc_cli, ["--config", str(file), "task", "cancel", str(task_id)])
    assert cancelled.exit_code == 0 and f"task {task_id}: cancelled" in cancelled.output
    # The same refusal the API gives: a cancelled task is final.
    again = runner.invoke(ccc_cli, ["--config", str(file), "task", "retry", str(task_id)])
    assert again.exit_code == 1 and "cannot go from cancelled to queued" in again.output
    missing = runner.invoke(ccc_cli, ["--config", str(file), "task", "cancel", "999999"])
    assert missing.exit_code == 1 and "task 999999 not found" in missing.output
    with ccc.database.session() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.target == str(task_id)))
        (entry,) = [e for e in entries if e.action == "task.cancel"]
        assert entry.actor.startswith("cli:")
        assert session.get(Task, task_id).state == "cancelled"
