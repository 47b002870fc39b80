"""remove_agent.yml and autoscale.yml with ansible-playbook against a real coordinator.

The "hosts" are this machine (local connection); the coordinator runs on a socket. What needs
lab hosts (provisioning an agent, firewall) is left to the lab tests: here the plays that
drain, deregister, decide and edit the inventory run for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from werkzeug.security import generate_password_hash

from tests.test_module_cluster_agent import PASSWORD, task_in_progress

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(), reason="ansible-playbook is not installed"
)


@pytest.fixture
def coordinator(database_url, redis_url):
    """The coordinator on a socket (floor: one backend agent), and a test client of it."""
    from coordinator_app.app import create_app
    from coordinator_app.models import AdminUser
    from simulators.server import BackgroundServer
    from tests.coordinator.conftest import make_config

    config = make_config(database_url, redis_url, scaling={"floors": {"backend": 1}})
    app = create_app(config)
    ccc = app.extensions["ccc"]
    ccc.queues.ensure()
    with ccc.database.session() as session:
        session.add(AdminUser(username="alice", password_hash=generate_password_hash(PASSWORD)))
    try:
        with BackgroundServer(app) as server:
            yield server.url, app.test_client(), ccc
    finally:
        ccc.database.dispose()
        ccc.redis.close()
        ccc.gateway.close()


def live_agent(client, name: str) -> int:
    """Register an agent through the API and heartbeat once, so it is live; its id."""
    token = client.post(
        "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}
    ).json["token"]
    created = client.post(
        "/api/v1/agents",
        json={"name": name, "specialties": ["backend"], "max_tasks": 1},
        headers={"Authorization": f"Bearer {token}"},
    ).json
    agent_token = client.post("/api/v1/agents/token", json={"name": name, "key": created["key"]})
    answer = client.post(
        f"/api/v1/agents/{created['id']}/heartbeat",
        json={"state": "idle", "tasks": []},
        headers={"Authorization": f"Bearer {agent_token.json['token']}"},
    )
    assert answer.status_code == 200, answer.json
    return created["id"]


def write_inventory(path: Path, agents: list[str]) -> None:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path.write_text(
        "---\n# A test cluster on this machine.\n"
        + yaml.safe_dump(
            {
                "all": {
                    "hosts": {"coord": local, **{a: dict(local) for a in agents}},
                    "children": {
                        "coordinator": {"hosts": {"coord": None}},
                        "agents": {"hosts": dict.fromkeys(agents)},
                    },
                }
            },
            sort_keys=False,
        )
    )


def playbook(name: str, inventory: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    variables = {
        "cluster_coordinator_url": url,
        "coordinator_admin_user": "alice",
        "coordinator_admin_password": PASSWORD,
        "remove_agent_update_firewall": False,
        "remove_agent_stop_service": False,  # no systemd here
        "drain_timeout": 1,
    }
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCALHOST_WARNING="false",
        NO_COLOR="1",
    )
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(ROOT / "playbooks" / name),
            "-e",
            yaml.safe_dump(variables, default_flow_style=True),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-8000:]
    # The admin password reaches the modules through module_defaults; no_log keeps it out.
    assert PASSWORD not in done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_remove_agent_hands_a_busy_agents_task_back(coordinator, tmp_path):
    from coordinator_app.models import Agent, Task

    url, client, ccc = coordinator
    agent_id = live_agent(client, "agent9")
    task_id = task_in_progress(ccc, agent_id)
    inventory = tmp_path / "hosts.yml"
    write_inventory(inventory, ["agent9"])

    # -vvv: every module's arguments and results are printed.
    done = playbook("remove_agent.yml", inventory, url, "-e", "host=agent9", "-vvv")
    assert "admin_password: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in done.stdout

    with ccc.database.session() as session:
        assert session.get(Agent, agent_id) is None
        assert session.get(Task, task_id).state == "queued"
    text = inventory.read_text()
    assert "agent9" not in text and text.startswith("---\n# A test cluster")


@pytest.mark.slow
def test_autoscale_moves_a_surplus_agent_to_spare(coordinator, tmp_path):
    url, client, _ = coordinator
    live_agent(client, "agent1")
    live_agent(client, "agent2")
    inventory = tmp_path / "hosts.yml"
    write_inventory(inventory, ["agent1", "agent2"])

    done = playbook("autoscale.yml", inventory, url)

    groups = yaml.safe_load(inventory.read_text())["all"]["children"]
    # Idle backend agents over a floor of 1: one goes to the spare pool, one stays.
    assert list(groups["agents"]["hosts"]) == ["agent1"]
    assert list(groups["spare"]["hosts"]) == ["agent2"]
    assert "remove agent2" in done.stdout
    agents = client.get(
        "/api/v1/agents",
        headers={
            "Authorization": "Bearer "
            + client.post(
                "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}
            ).json["token"]
        },
    ).json["items"]
    assert [a["name"] for a in agents] == ["agent1"]
