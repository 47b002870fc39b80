"""End to end on lab hosts: site.yml converges one cluster for the module, issues become PRs.

Three hosts as in `ccc-demo --lab` (t1: PostgreSQL, Redis, coordinator; t2: backend + general;
t3: frontend + documentation + testing + general, with Node.js), the simulators on the test
bridge, the shipped lease and heartbeat. The full fault suite is tests/faults (make
test-faults). Each test files its own issues; the slow ones use a scripted conversation that
pauses in bash so a fault can strike mid-task.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lab.demo_cluster import ISSUES, MAINTAINER, REPO, issue_name, task_seconds
from lab.demo_lab import Timing, demo_spec
from lab.testing import isolated_config, lab_cluster, skip_reason
from tests import redteam
from tests.lab_checks import (
    MEMO,
    agent_states,
    assert_one_pull_request,
    memo,
    pulls_for,
    running_task,
    task_of,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.lab]

BOT = "claude-code-cluster[bot]"  # the demo seed's App

HAPPY_PATH = [
    "pending", "analyzing", "queued", "assigned", "in_progress", "testing", "review",
]  # fmt: skip
# Review feedback on any PR: one more file on the same branch.
REVIEW = {
    "name": "e2e-review",
    "priority": 10,
    "match": {"first_user": r"(?i)review feedback on the pull request for issue #(?P<issue>\d+)"},
    "turns": [
        [
            {
                "tool_use": {
                    "name": "str_replace_based_edit_tool",
                    "input": {
                        "command": "create",
                        "path": "memos/review-${issue}.txt",
                        "file_text": "Addressed the review of #${issue}.\n",
                    },
                }
            }
        ],
        ["Addressed the review."],
    ],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One converged lab cluster for the module; simulators and hosts always torn down."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    with lab_cluster(
        tmp_path_factory.mktemp("scenarios"),
        [MEMO, REVIEW, redteam.SCENARIO],
        demo_spec(config.host_prefix),
        config,
        timing=Timing(),  # the shipped lease and heartbeat: failover as production has it
        agent_limits=redteam.AGENT_LIMITS,
    ) as cluster:
        yield cluster


def test_every_demo_issue_becomes_one_pull_request(cluster):
    issues = cluster.file_issues()
    tasks = cluster.wait(issues, 240)
    expected = {
        ISSUES[0].title: ("backend", "textstats/__init__.py"),
        ISSUES[1].title: ("documentation", "README.md"),
        ISSUES[2].title: ("testing", "tests/test_edge_cases.py"),
        # The Node.js repository's issue, on the agent that has Node.js: its tests passed.
        ISSUES[3].title: ("frontend", "test/thousands.test.js"),
    }
    maintainer = cluster.github().get_user(MAINTAINER)
    for task in tasks:
        specialty, path = expected[task["title"]]
        assert task["state"] == "review", task
        assert task["specialty"] == specialty
        assert task["result"]["tests"]["status"] == "passed", task["result"]
        assert [h["to"] for h in task["history"]] == HAPPY_PATH
        assert_one_pull_request(cluster, task["issue_number"], path, repo=task["repository"])
        name = issue_name(task["repository"], task["issue_number"])
        print(f"label to PR, {name} ({specialty}): {task_seconds(task):.1f}s")
        # The App's bot made the PR and its commits, crediting the maintainer who asked.
        pull = cluster.github().get_repo(task["repository"]).get_pull(task["pr_number"])
        assert pull.user.login == BOT
        for commit in pull.get_commits():
            assert commit.commit.author.name == BOT, commit.commit.author
            trailer = f"Co-authored-by: {MAINTAINER} <{maintainer.id}+{MAINTAINER}@users.noreply."
            assert trailer in commit.commit.message, commit.commit.message
    # The coordinator comments on each issue with its PR (through its outbox, so a bit later).
    for task in tasks:
        issue = cluster.github().get_repo(task["repository"]).get_issue(task["issue_number"])
        wait_until(
            f"the comment on #{issue.number}",
            lambda issue=issue, url=task["pr_url"]: any(
                url in c.body for c in issue.get_comments()
            ),
            timeout=30,
        )
    # The maintainer merges the first: its task is completed, and the issue says so.
    repo = cluster.github().get_repo(REPO)
    merged = tasks[0]
    repo.get_pull(merged["pr_number"]).merge()
    wait_until(
        "the merged task completed",
        lambda: task_of(cluster, merged["issue_number"])["state"] == "completed",
        timeout=30,
    )
    done = cluster.api("GET", f"/api/v1/tasks/{merged['id']}")
    assert done["pull_request"]["state"] == "merged", done
    assert done["pull_request"]["seconds_to_merge"] >= 0
    assert "claude:done" in {lbl.name for lbl in repo.get_issue(merged["issue_number"]).labels}


def test_agent_hosts_hold_no_github_credential(cluster):
    """After real tasks: no GitHub token nor the App's key in the agent hosts' files, in the
    agent's environment or in its log (each task's token lived in memory only)."""
    key_line = cluster.app_key_file.read_text().splitlines()[1]
    tokens = r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    for host in (h.name for h in cluster.spec.hosts if "agents" in h.roles):
        found = cluster.ssh(
            host,
            f"grep -rIlE '{tokens}' /etc /var/lib/claude-agent /root /tmp 2>/dev/null; "
            f"grep -rIlF '{key_line}' /etc /var/lib/claude-agent /root /tmp 2>/dev/null; "
            "pid=$(systemctl show -p MainPID --value claude-agent); "
            f"tr '\\0' '\\n' < /proc/$pid/environ | grep -iE 'github|{tokens}'; "
            f"journalctl -u claude-agent --no-pager -o cat | grep -cE '{tokens}'; true",
        )
        assert found.strip() == "0", f"{host}: {found}"
        config = cluster.ssh(host, "cat /etc/claude-agent/agent.toml")
        assert "github" not in config.lower(), config


def test_review_comment_adds_a_commit_to_the_same_pull_request(cluster):
    number = memo(cluster, "review", 1)
    first = assert_one_pull_request(cluster, number, "memos/review.txt")
    pull = cluster.github().get_repo(REPO).get_pull(first["pr_number"])
    commits = pull.get_commits().totalCount
    pull.create_review_comment("Please record the review too.", pull.get_commits()[0],
                               "memos/review.txt", line=1)  # fmt: skip
    wait_until("the follow-up task", lambda: task_of(cluster, number)["kind"] == "follow_up")
    (follow_up,) = cluster.wait([number], 180)
    assert follow_up["state"] == "review", follow_up
    assert (follow_up["branch"], follow_up["pr_number"]) == (first["branch"], first["pr_number"])
    pull = cluster.github().get_repo(REPO).get_pull(first["pr_number"])
    assert pull.get_commits().totalCount == commits + 1
    assert f"memos/review-{number}.txt" in {f.filename for f in pull.get_files()}
    assert len(pulls_for(cluster, first["branch"])) == 1


def test_agent_status_line_names_its_task(cluster):
    number = memo(cluster, "status", 10)
    task = running_task(cluster, number)
    status = cluster.ssh(task["agent"], "systemctl status claude-agent --no-pager --lines=0")
    assert "Active: active (running)" in status, status
    assert f"task {task['id']} ({REPO}#{number}" in status, status
    assert_one_pull_request(cluster, number, "memos/status.txt")


def test_crashed_agent_host_task_completes_elsewhere(cluster):
    number = memo(cluster, "failover", 25)
    task = running_task(cluster, number)
    victim = task["agent"]
    crashed = time.monotonic()
    cluster.lab.crash(victim)

    def elsewhere() -> dict | None:
        now = task_of(cluster, number)
        running = now["state"] in ("assigned", "in_progress", "testing", "review")
        return now if running and now["agent"] not in (None, victim) else None

    moved = wait_until("the task on another agent", elsewhere, timeout=90)
    print(f"failover: crash to running on {moved['agent']} in {time.monotonic() - crashed:.1f}s")
    done = assert_one_pull_request(cluster, number, "memos/failover.txt")
    assert done["agent"] != victim
    reasons = " ".join(h["reason"] or "" for h in done["history"])
    assert "lease" in reasons, done["history"]

    cluster.lab.restart(victim)
    wait_until(f"{victim} idle again", lambda: agent_states(cluster).get(victim) == "idle")


def test_coordinator_and_redis_restarts_lose_nothing(cluster):
    number = memo(cluster, "restarts", 15)
    running_task(cluster, number)
    coordinator = cluster.host_of("coordinator").name
    cluster.ssh(coordinator, "systemctl restart claude-coordinator")
    cluster.ssh(coordinator, "systemctl restart redis-server")
    cluster.wait_http(f"{cluster.urls['coordinator']}/readyz", "coordinator")
    after = memo(cluster, "after-restarts", 1)
    assert_one_pull_request(cluster, number, "memos/restarts.txt")
    assert_one_pull_request(cluster, after, "memos/after-restarts.txt")


def test_duplicate_and_concurrent_webhooks_make_one_task(cluster):
    number = memo(cluster, "duplicates", 8)
    running_task(cluster, number)
    # The App's webhook deliveries, as GitHub lists them to the App.
    api = "/app/hook/deliveries"
    labeled = None
    for summary in cluster.app_api("GET", api, params={"per_page": 100}).json():
        if (summary["event"], summary["action"]) != ("issues", "labeled"):
            continue
        detail = cluster.app_api("GET", f"{api}/{summary['id']}").json()
        if detail["request"]["payload"]["issue"]["number"] == number:
            labeled = detail
            break
    assert labeled, "the labeled delivery of the issue"
    body = json.dumps(labeled["request"]["payload"]).encode()
    signature = hmac.new(cluster.webhook_secret.encode(), body, hashlib.sha256).hexdigest()

    def redeliver(_: int) -> int:
        return cluster.app_api("POST", f"{api}/{labeled['id']}/attempts").status_code

    def fresh_delivery(_: int) -> int:  # the same event under a new delivery id
        return requests.post(
            f"{cluster.urls['coordinator']}/webhooks/github",
            data=body,
            timeout=10,
            verify=cluster.verify,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        ).status_code

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: (redeliver if i % 2 else fresh_delivery)(i), range(10)))
    assert all(200 <= code < 300 for code in answers), answers
    assert_one_pull_request(cluster, number, "memos/duplicates.txt")
    time.sleep(3)  # nothing queued behind it either
    assert len([t for t in cluster.tasks() if t["issue_number"] == number]) == 1


# Last in the module: it leaves the repository hostile for any task after it.
def test_a_hostile_repository_and_task_get_nowhere(cluster, tmp_path):
    secrets = redteam.agent_secrets(cluster)
    assert len(secrets) >= 4, "the agents' keys, tokens and Redis password"
    redteam.push_hostile_repository(cluster, tmp_path / "hostile")
    number = cluster.file_issue("Red team the sandbox", "Try every way out.", ["claude"])
    task = assert_one_pull_request(cluster, number, "redteam/model.txt", "redteam/tests.txt")
    clone = tmp_path / "pushed"  # what the agent pushed
    subprocess.run(["git", "clone", "-q", "--branch", task["branch"],
                    redteam.remote(cluster), str(clone)], check=True, timeout=60)  # fmt: skip
    expected = 10 + len(redteam.targets(cluster)["tcp"]) + len(redteam.targets(cluster)["urls"])
    for who in ("model", "tests"):  # the model's command, the repository's conftest.py
        report = (clone / "redteam" / f"{who}.txt").read_text()
        print(f"==> red team, {who}:\n{report}")
        *attempts, registry = report.strip().splitlines()
        assert len(attempts) == expected, report
        escaped = [line for line in attempts if ": blocked (" not in line]
        assert not escaped, report
        assert ": reachable (HTTP" in registry, registry  # allowed hosts still answer
    for host in redteam.agent_hosts(cluster):  # no injected git config or hook ran
        assert cluster.ssh(host.name, f"test -e {redteam.MARKER} && echo yes || echo no") == "no\n"
    # Nothing the simulators or the coordinator received holds a secret.
    repo = cluster.github().get_repo(REPO)
    (pull,) = pulls_for(cluster, task["branch"])
    pushed = subprocess.run(["git", "-C", str(clone), "log", "-p", "--all"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    received = [
        requests.get(f"{cluster.urls['claude']}/_sim/requests", timeout=30).text,
        pull.title, pull.body or "", pushed,
        *[c.body for c in repo.get_issue(number).get_comments()],
        json.dumps(cluster.api("GET", f"/api/v1/tasks/{task['id']}/events")),
    ]  # fmt: skip
    assert "Red team the sandbox" in received[0]  # the model's requests are in there
    for secret in secrets:
        assert not [text for text in received if secret in text]
    # The agents go on serving.
    later = memo(cluster, "after-red-team", 0)
    assert_one_pull_request(cluster, later, "memos/after-red-team.txt")
