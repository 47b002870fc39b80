"""The coordinator running playbooks/autoscale.yml through ansible-runner, and its record.

The real playbook runs against this coordinator served on a socket, with an inventory whose
hosts are this machine (local connection), as in tests/test_module_playbooks.py: the plays
that decide, drain, deregister and edit the inventory run for real.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text

from coordinator_app import autoscaler, schedules
from coordinator_app.autoscaler import LOCK_KEY, AutoscaleBusy, AutoscaleUnavailable
from coordinator_app.cli import main as ccc_cli
from coordinator_app.models import Agent, AuditEntry, ScalingEvent, ScalingRun, utcnow
from simulators.server import BackgroundServer
from tests.coordinator.conftest import ADMIN_PASSWORD, make_config, make_due
from tests.test_module_playbooks import BIN, write_inventory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (BIN / "ansible-playbook").exists(), reason="ansible-playbook is not installed"
    ),
]


@pytest.fixture
def config(database_url, redis_url, tmp_path):
    """Autoscaling set up on this coordinator: the project, an inventory, a vars file."""
    return make_config(
        database_url,
        redis_url,
        scaling={"floors": {"backend": 1}},
        autoscale={
            "project_dir": str(ROOT),
            "inventory": str(tmp_path / "hosts.yml"),
            "extra_vars_file": str(tmp_path / "autoscale-vars.yml"),
            "data_dir": str(tmp_path / "runs"),
            "interval_seconds": 3600,
            "timeout_seconds": 300,
        },
    )


@pytest.fixture
def cluster(app, ccc, admin_user, make_agent, tmp_path):
    """Two idle backend agents over a floor of one, the coordinator listening, vars written."""
    for name in ("agent1", "agent2"):
        make_agent(name).heartbeat()
    write_inventory(Path(ccc.config.autoscale.inventory), ["agent1", "agent2"])
    with BackgroundServer(app) as server:
        write_vars(ccc.config.autoscale.extra_vars_file, server.url)
        yield server


def write_vars(path: str, url: str) -> None:
    """The playbook's variables as an operator would keep them: owner-only, with the password."""
    Path(path).write_text(
        yaml.safe_dump(
            {
                "cluster_coordinator_url": url,
                "coordinator_admin_user": "alice",
                "coordinator_admin_password": ADMIN_PASSWORD,
                "remove_agent_stop_service": False,  # no systemd here
                "remove_agent_update_firewall": False,
                "drain_timeout": 1,
            }
        )
    )
    Path(path).chmod(0o600)


def log_in(client) -> None:
    """Log the test client in to the admin pages (CSRF itself: test_admin_pages.py)."""
    client.application.config["WTF_CSRF_ENABLED"] = False
    client.post("/admin/login", data={"username": "alice", "password": ADMIN_PASSWORD})


def the_run(ccc, run_id: int) -> ScalingRun:
    with ccc.database.session() as session:
        run = session.get(ScalingRun, run_id)
        run.events  # noqa: B018 (load them before the session closes)
        return run


def test_a_run_acts_on_the_decision_and_records_it(ccc, cluster, client):
    printed: list[str] = []
    run_id = ccc.autoscaler.run("cli", "cli:test", echo=printed.append)

    run = the_run(ccc, run_id)
    assert (run.status, run.rc, run.error) == ("successful", 0, None)
    # The plan the playbook read, the moves it made, the recap.
    assert (run.scale_up, run.scale_down) == ([], ["agent2"])
    assert any("remove agent2" in reason for reason in run.reasons)
    assert run.recap and run.recap[0][1]["failures"] == 0
    groups = yaml.safe_load(Path(ccc.config.autoscale.inventory).read_text())["all"]["children"]
    assert list(groups["spare"]["hosts"]) == ["agent2"]
    with ccc.database.session() as session:
        assert session.scalars(select(Agent.name)).all() == ["agent1"]
    # Every event with output is kept, in order, and shown as it came; no secret among them.
    tasks = [e.stdout for e in run.events if e.event == "playbook_on_task_start"]
    assert any("Read the scaling decision" in t for t in tasks), tasks
    assert [e.seq for e in run.events] == sorted(e.seq for e in run.events)
    assert printed == [e.stdout for e in run.events]
    assert not any(ADMIN_PASSWORD in e.stdout for e in run.events)
    artifacts = Path(ccc.config.autoscale.data_dir)
    assert artifacts.stat().st_mode & 0o077 == 0
    assert not any(
        ADMIN_PASSWORD in p.read_text(errors="replace") for p in artifacts.rglob("*") if p.is_file()
    )

    # The admin pages list the run and show its plan and events.
    log_in(client)
    page = client.get("/admin/scaling").get_data(as_text=True)
    assert f"#{run_id}" in page and "successful" in page and "agent2" in page
    detail = client.get(f"/admin/scaling/runs/{run_id}").get_data(as_text=True)
    assert "remove agent2: backend have agents to spare" in detail
    assert "Read the scaling decision" in detail


def test_a_failed_run_says_why(ccc, cluster):
    write_vars(ccc.config.autoscale.extra_vars_file, "http://127.0.0.1:9")  # nothing listens

    run = the_run(ccc, ccc.autoscaler.run("cli", "cli:test"))

    assert run.status == "failed" and run.rc != 0
    assert "cannot reach the coordinator at http://127.0.0.1:9" in run.error
    assert "Read the scaling decision" in run.error
    assert any(e.failed for e in run.events)
    # Nothing was moved: the inventory is as it was.
    groups = yaml.safe_load(Path(ccc.config.autoscale.inventory).read_text())["all"]["children"]
    assert list(groups["agents"]["hosts"]) == ["agent1", "agent2"]


def test_a_run_over_its_time_is_stopped_and_recorded(database_url, redis_url, tmp_path):
    from coordinator_app.app import create_app

    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "playbooks" / "autoscale.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Take too long\n      ansible.builtin.command: sleep 60\n"
    )
    (project / "ansible.cfg").write_text("[defaults]\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("localhost ansible_connection=local\n")
    config = make_config(
        database_url,
        redis_url,
        autoscale={
            "project_dir": str(project),
            "inventory": str(inventory),
            "data_dir": str(tmp_path / "runs"),
            "timeout_seconds": 3,
        },
    )
    app = create_app(config)
    ccc = app.extensions["ccc"]
    try:
        run = the_run(ccc, ccc.autoscaler.run("admin", "admin:alice"))
    finally:
        ccc.database.dispose()
    assert run.status == "timeout"
    assert "stopped after 3s" in run.error
    assert run.finished_at is not None


def test_one_run_at_a_time_and_lost_runs_are_closed(ccc, cluster, database_url):
    with ccc.database.session() as session:
        # Left "running" two hours ago by a coordinator that died.
        started = utcnow() - timedelta(hours=2)
        session.add(
            ScalingRun(
                trigger="schedule", requested_by="system", status="running", started_at=started
            )
        )
    engine = create_engine(database_url)
    with engine.connect() as other:  # another coordinator process, mid-run
        assert other.execute(select(func.pg_try_advisory_lock(LOCK_KEY))).scalar()
        with pytest.raises(AutoscaleBusy, match="another scaling run is in progress"):
            ccc.autoscaler.run("cli", "cli:test")
        with ccc.database.session() as session:
            autoscaler.set_enabled(session, True, "admin:alice")
        assert ccc.autoscaler.start_if_due() is None
        other.execute(text(f"SELECT pg_advisory_unlock({LOCK_KEY})"))
    engine.dispose()

    run_id = ccc.autoscaler.start_if_due()  # enabled, and no run has started for an hour
    assert run_id is not None
    assert ccc.autoscaler.start_if_due() is None  # one at a time
    ccc.autoscaler.stop(timeout=300)  # cancels it: the coordinator is stopping
    with ccc.database.session() as session:
        runs = {r.id: r for r in session.scalars(select(ScalingRun))}
    (lost,) = [r for r in runs.values() if r.id != run_id]
    assert lost.status == "lost" and "process running it stopped" in lost.error
    assert runs[run_id].status in ("canceled", "successful")  # it may have been quick enough
    assert runs[run_id].trigger == "schedule"
    assert ccc.autoscaler.start_if_due() is None  # not due again before interval_seconds


def test_scheduled_runs_wait_for_an_admin_to_enable_them(ccc, cluster):
    assert ccc.processor.autoscale_if_due() == 0
    with ccc.database.session() as session:
        assert session.scalar(select(func.count()).select_from(ScalingRun)) == 0
        autoscaler.set_enabled(session, True, "admin:alice")
    make_due(ccc, schedules.AUTOSCALE)
    assert ccc.processor.autoscale_if_due() == 1
    ccc.autoscaler._thread.join(300)
    with ccc.database.session() as session:
        (run,) = session.scalars(select(ScalingRun)).all()
        assert (run.trigger, run.status) == ("schedule", "successful")
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "autoscale.enable" in actions


def test_unset_or_broken_setups_are_refused_with_the_reason(ccc, tmp_path):
    settings = ccc.config.autoscale
    assert "inventory" in autoscaler.unavailable_reason(settings)  # not written yet
    with pytest.raises(AutoscaleUnavailable, match="does not exist"):
        ccc.autoscaler.run("cli", "cli:test")
    for change, reason in (
        ({"project_dir": ""}, "autoscale.project_dir is not set"),
        ({"playbook": "playbooks/nope.yml"}, "playbooks/nope.yml does not exist"),
        ({"extra_vars_file": str(tmp_path / "none.yml")}, "none.yml does not exist"),
    ):
        broken = type(settings)(**{**vars(settings), "inventory": __file__, **change})
        assert reason in autoscaler.unavailable_reason(broken)
    with ccc.database.session() as session:
        assert session.scalar(select(func.count()).select_from(ScalingRun)) == 0


def test_admin_pages_enable_and_run(ccc, cluster, client):
    log_in(client)
    assert "Autoscaling is <strong>disabled" in client.get("/admin/scaling").get_data(True)
    client.post("/admin/scaling/enable")
    page = client.get("/admin/scaling").get_data(as_text=True)
    assert "Autoscaling is <strong>enabled" in page and "every 3600 s" in page
    started = client.post("/admin/scaling/run")
    assert started.status_code == 302 and "/admin/scaling/runs/" in started.location
    # The web worker only recorded the request; the processor's next pass starts it.
    assert ccc.autoscaler._thread is None
    assert 'id="run-status" class="state state-requested"' in client.get(started.location).get_data(
        as_text=True
    )
    again = client.post("/admin/scaling/run", follow_redirects=True).get_data(as_text=True)
    assert "is already requested" in again
    assert ccc.processor.autoscale_if_due() == 1  # due at once: the request made it so
    ccc.autoscaler._thread.join(300)
    detail = client.get(started.location).get_data(as_text=True)
    assert "successful" in detail and "admin:alice" in detail
    with ccc.database.session() as session:
        audited = session.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.target))
        audited = set(audited.all())
    run_id = started.location.rsplit("/", 1)[1]
    assert {("admin:alice", "autoscale.enable", ""), ("admin:alice", "autoscale.run", run_id)} <= (
        audited
    )


def test_cli_enables_runs_and_reports(ccc, cluster, config, tmp_path):
    file = tmp_path / "coordinator.toml"
    settings = config.autoscale
    file.write_text(
        f'database_url = "{config.database_url}"\n[scaling]\nfloors = {{backend = 1}}\n'
        f'[autoscale]\nproject_dir = "{settings.project_dir}"\n'
        f'inventory = "{settings.inventory}"\nextra_vars_file = "{settings.extra_vars_file}"\n'
        f'data_dir = "{settings.data_dir}"\n'
    )
    runner = CliRunner()

    def ccc_command(*args: str):
        return runner.invoke(ccc_cli, ["--config", str(file), "scale", *args])

    plan = ccc_command("plan")
    assert plan.exit_code == 0 and '"desired": 1' in plan.output and "backend:" in plan.output
    assert "autoscaling enabled" in ccc_command("enable").output
    ran = ccc_command("run")
    assert ran.exit_code == 0, ran.output
    assert "Read the scaling decision" in ran.output and "successful" in ran.output
    status = ccc_command("status")
    assert "autoscaling enabled" in status.output and "runs here: yes" in status.output
    assert "cli by cli:" in status.output and "successful -agent2" in status.output
    assert "autoscaling disabled" in ccc_command("disable").output
    # A second run right away has nothing left to remove, and says so.
    again = ccc_command("run")
    assert again.exit_code == 0 and "nothing to scale" in again.output


def test_runs_are_kept_up_to_keep_runs(ccc, cluster):
    ccc.config.autoscale.keep_runs = 1
    first = ccc.autoscaler.run("cli", "cli:test")
    second = ccc.autoscaler.run("cli", "cli:test")
    with ccc.database.session() as session:
        assert session.scalars(select(ScalingRun.id)).all() == [second]
        assert set(session.scalars(select(ScalingEvent.run_id))) == {second}
    assert first < second


def test_a_request_this_processor_cannot_run_ends_with_the_reason(ccc, cluster):
    with ccc.database.session() as session:
        run_id = autoscaler.request_run(session, ccc.config.autoscale, "admin:alice")
    ccc.config.autoscale.project_dir = ""  # e.g. the processor's host lost the project
    assert ccc.autoscaler.start_if_due() is None
    with ccc.database.session() as session:
        run = session.get(ScalingRun, run_id)
        assert (run.status, run.finished_at is not None) == ("error", True)
        assert "autoscale.project_dir is not set" in run.error
        with pytest.raises(AutoscaleUnavailable, match="project_dir is not set"):
            autoscaler.request_run(session, ccc.config.autoscale, "admin:alice")
