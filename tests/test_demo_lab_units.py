"""`ccc-demo` without a cluster: the lab's spec, its settings for site.yml, its pid files; the
maintainer's decisions and the summary both demos end with."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace

import yaml

from lab.config import LabConfig
from lab.demo_cluster import (
    APP_ID,
    DECIDED,
    EXPECTED_ENDS,
    REJECTED,
    REPO,
    WEB_REPO,
    DemoCluster,
    summary,
    write_app_key,
)
from lab.demo_lab import (
    SHARED_INVENTORY,
    LabCluster,
    Timing,
    demo_spec,
    read_pid,
    start_background,
    stop_background,
)
from lab.process import is_alive
from tests.ansible_modules import COLLECTION


def test_demo_spec_puts_the_services_on_one_host_and_two_different_agents():
    spec = demo_spec("d")
    assert [(h.name, h.roles) for h in spec.hosts] == [
        ("d1", ("database", "redis", "coordinator")),
        ("d2", ("agents",)),
        ("d3", ("agents",)),
    ]
    specialties = [h.vars["agent_specialties"] for h in spec.hosts[1:]]
    assert specialties == [
        ["backend", "general"],
        ["frontend", "documentation", "testing", "general"],
    ]
    # The frontend issue's repository is a Node.js one: its agent gets Node.js besides Python.
    assert spec.hosts[2].vars["agent_toolchains"] == ["python", "node"]


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
    # The seed repository's tests need pytest on the agents: the lab's python toolchain has it.
    assert "agent_packages" not in extra and "agent_toolchain_packages" not in extra
    shared = yaml.safe_load((SHARED_INVENTORY / "group_vars" / "all.yml").read_text())
    catalog = yaml.safe_load((COLLECTION / "roles/agent/vars/main.yml").read_text())
    assert shared["agent_toolchains"] == ["python"]
    assert "python3-pytest" in catalog["__agent_toolchain_catalog"]["python"]


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


def task(
    number: int, state: str, pull: dict | None = None, error: str | None = None, repo: str = REPO
) -> dict:
    """A task as GET /api/v1/tasks/<id> shows it: labelled at 0 s, pull request open at 12.5 s."""
    history = [("pending", "00:00:00"), ("in_progress", "00:00:02"), ("review", "00:00:12.5")]
    if state != "review":
        history.append((state, "00:00:40"))
    return {
        "id": number * 10,
        "repository": repo,
        "issue_number": number,
        "specialty": "backend",
        "agent": "agent-backend",
        "state": state,
        "error": error,
        "result": {"tests": {"passed": 4, "failed": 0, "exit_code": 0}},
        "pr_number": pull and pull["number"],
        "pr_url": pull and f"http://127.0.0.1:1/{repo}/pull/{pull['number']}",
        "pull_request": pull,
        "input_tokens": 1000,
        "output_tokens": 234,
        "cost_usd": 0.0123,
        "history": [{"to": to, "at": f"2026-01-01T{at}+00:00"} for to, at in history],
    }


def test_summary_shows_each_end_its_reason_and_the_merge_rate():
    merged = {"number": 4, "state": "merged", "decided_by": "alice", "seconds_to_merge": 27.5}
    tasks = [
        task(1, "completed", merged),
        task(2, "failed", {"number": 5, "state": "closed"}, error=REJECTED),
        task(3, "review", {"number": 6, "state": "open", "seconds_to_merge": None}),
        task(1, "review", {"number": 2, "state": "open"}, repo=WEB_REPO),
    ]
    assert [(t["state"], t["error"]) for t in tasks] == EXPECTED_ENDS
    text = summary(tasks)
    # The format tests/test_demo.py parses: one row per issue, the outcome in words last.
    rows = re.findall(
        r"^(\w+#\d+)\s+(\w+)\s+(agent-\w+)\s+(\w+)\s+(\d+) passed\s+(\S+/pull/\d+)"
        r"\s+(\d+)\s+(\S+)\s+(\S+)\s+(.+)$",
        text,
        re.MULTILINE,
    )
    assert [(r[0], r[3], r[5].rsplit("/", 1)[1], r[9].strip()) for r in rows] == [
        ("textstats#1", "completed", "4", "merged by alice 27.5s after it opened"),
        ("textstats#2", "failed", "5", "pull request closed without merge"),
        ("textstats#3", "review", "6", "pull request open, awaiting review"),
        ("pricetag#1", "review", "2", "pull request open, awaiting review"),
    ]
    # Tokens, cost, and the time from the label to the pull request (not to the decision).
    assert {(r[6], r[7], r[8]) for r in rows} == {("1234", "$0.0123", "12.5s")}
    assert text.endswith("\n\nmerge rate: 50% (1 merged, 1 closed without merge, 2 in review)")


def test_merge_rate_counts_only_pull_requests_github_decided():
    failed = task(2, "failed", error="tests failed three times")
    failed["history"] = [h for h in failed["history"] if h["to"] != "review"]
    text = summary([task(1, "review", {"number": 4, "state": "open"}), failed])
    assert text.endswith("merge rate: - (0 merged, 0 closed without merge, 1 in review)")
    row = next(line for line in text.splitlines() if line.startswith("textstats#2 "))
    assert row.split()[3:6] == ["failed", "4", "passed"] and " - " in row
    assert row.endswith("  tests failed three times") and "40.0s" in row


@dataclass(kw_only=True)
class MaintainerStub(DemoCluster):
    """A demo cluster whose GitHub and coordinator are recorded stubs."""

    done: list[tuple] = field(default_factory=list)

    def github(self, login: str = "alice") -> SimpleNamespace:
        def pull(number: int) -> SimpleNamespace:
            return SimpleNamespace(
                merge=lambda: self.done.append(("merge", login, number)),
                edit=lambda state: self.done.append(("edit", login, number, state)),
            )

        repos = {REPO: SimpleNamespace(get_pull=pull), WEB_REPO: SimpleNamespace(get_pull=pull)}
        return SimpleNamespace(get_repo=repos.__getitem__)

    def wait(self, numbers, timeout, ends=()):
        self.done.append(("wait", numbers, ends))
        return []

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        return {"fetched": path}


def test_the_maintainer_merges_the_first_issues_pull_request_and_closes_the_seconds():
    stub = MaintainerStub(echo=lambda message: None)
    tasks = [task(n, "review", {"number": n + 3, "state": "open"}) for n in (1, 2, 3)]
    again = stub.decide(tasks, 60)
    assert stub.done == [
        ("merge", "alice", 4),
        ("edit", "alice", 5, "closed"),
        ("wait", [(REPO, 1), (REPO, 2)], DECIDED),
    ]
    assert again == [{"fetched": f"/api/v1/tasks/{n * 10}"} for n in (1, 2, 3)]


def test_the_maintainer_decides_by_issue_order_not_by_which_pull_requests_exist():
    said: list[str] = []
    stub = MaintainerStub(echo=said.append)
    tasks = [
        task(1, "failed", error="tests failed"),
        task(2, "review", {"number": 5, "state": "open"}),
        task(3, "review", {"number": 6, "state": "open"}),
    ]
    stub.decide(tasks, 60)
    # The first issue's pull request is the one to merge: none is merged in its place.
    assert stub.done == [("edit", "alice", 5, "closed"), ("wait", [(REPO, 2)], DECIDED)]
    assert said == [
        "maintainer cannot merge the PR of textstats#1: it is failed",
        "maintainer closes PR #5 without merging (issue textstats#2)",
    ]
