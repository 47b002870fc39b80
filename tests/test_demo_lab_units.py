"""`ccc-demo --lab` without lab hosts: its spec, its settings for site.yml, its pid files."""

from __future__ import annotations

import subprocess
import sys

import yaml

from lab.config import LabConfig
from lab.demo_cluster import APP_ID, PROJECT, write_app_key
from lab.demo_lab import LabCluster, Timing, demo_spec, read_pid, start_background, stop_background
from lab.process import is_alive


def test_demo_spec_puts_the_services_on_one_host_and_two_different_agents():
    spec = demo_spec("d")
    assert [(h.name, h.roles) for h in spec.hosts] == [
        ("d1", ("database", "redis", "coordinator")),
        ("d2", ("agents",)),
        ("d3", ("agents",)),
    ]
    specialties = [h.vars["agent_specialties"] for h in spec.hosts[1:]]
    assert specialties == [["backend", "general"], ["documentation", "testing", "general"]]


def test_extra_vars_point_the_cluster_at_the_simulators(tmp_path):
    cluster = LabCluster(
        config=LabConfig(state_dir=tmp_path), timing=Timing(lease_seconds=20, heartbeat_seconds=4)
    )
    cluster.urls = {"github": "http://10.9.0.1:1", "claude": "http://10.9.0.1:2"}
    cluster.app_key_file = write_app_key(tmp_path / "app.pem")
    extra = cluster.extra_vars("sk-key")
    assert extra["coordinator_github_api_url"] == "http://10.9.0.1:1/api/v3"
    # The coordinator is the simulator's App; the agents get no GitHub setting at all.
    assert extra["coordinator_github_app"] == {
        "id": APP_ID,
        "private_key": cluster.app_key_file.read_text(),
    }
    assert not [name for name in extra if name.startswith("agent_github")]
    assert extra["agent_anthropic_base_url"] == "http://10.9.0.1:2"
    assert extra["coordinator_admin_password"] == extra["agent_coordinator_admin_password"]
    assert extra["coordinator_lease_seconds"] == 20
    assert extra["agent_settings"] == {"heartbeat_seconds": 4}
    # Without a timing of its own a lab runs the roles' shipped lease and heartbeat.
    shipped = LabCluster(config=LabConfig(state_dir=tmp_path))
    shipped.urls, shipped.app_key_file = cluster.urls, cluster.app_key_file
    plain = shipped.extra_vars("sk-key")
    assert not {"coordinator_lease_seconds", "coordinator_heartbeat_seconds"} & set(plain)
    assert plain["agent_settings"] == {}
    # The seed repository's tests need pytest on the agents: the role's default gives it.
    assert "agent_packages" not in extra and "agent_toolchain_packages" not in extra
    defaults = yaml.safe_load((PROJECT / "roles/agent/defaults/main.yml").read_text())
    assert "python3-pytest" in defaults["agent_toolchain_packages"]


def test_stop_background_stops_only_simulators(tmp_path):
    pid = start_background("ccc-sim-lookalike", ["sleep", "30"], tmp_path)
    assert read_pid(tmp_path / "ccc-sim-lookalike.pid") == pid
    stop_background(tmp_path, echo=lambda message: None)
    # Not a ccc-sim (a reused PID, say): the record goes, the process stays.
    assert not (tmp_path / "ccc-sim-lookalike.pid").exists()
    assert is_alive(pid)
    subprocess.run(["kill", str(pid)], check=True)

    script = tmp_path / "ccc-sim"
    script.write_text("import time\ntime.sleep(30)\n")
    pid = start_background("claude-sim", [sys.executable, str(script)], tmp_path)
    stop_background(tmp_path, echo=lambda message: None)
    assert not is_alive(pid)
    assert not list(tmp_path.glob("*.pid"))
