"""Review feedback continues on the same branch and PR; the mirror cache spares downloads;
the agent's own API (HTTPS from the cluster CA, a bearer token per agent)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time

import pytest
import requests

from agent_app.api import ApiServer, create_api, tls_context
from agent_app.gitcmd import Git
from agent_app.workspace import Workspaces
from lab.services import free_port
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, push_commit, running_simulator, sample_seed
from tests.agent.conftest import REPO
from tests.agent.test_agent_tasks import ADD_TRIPLE, NEVER_FIXED, edit
from tests.certificates import throwaway_ca

ADDRESS_REVIEW = {
    "name": "address-review",
    "match": {"prompt": "(?i)review feedback on PR"},
    "turns": [
        [
            edit(
                "str_replace",
                "widgets/__init__.py",
                old_str='"""Three times x."""',
                new_str='"""Three times x (for any number)."""',
            )
        ],
        "Clarified the docstring as the reviewer asked.",
    ],
}


def wait_for_follow_up(cluster, number: int) -> dict:
    """The follow-up task a review comment on issue ``number``'s PR made, once it ended."""
    deadline = time.monotonic() + 30
    while cluster.task(number)["kind"] != "follow_up" and time.monotonic() < deadline:
        time.sleep(0.3)
    return cluster.wait_for(number)


def test_review_comment_becomes_a_new_commit_on_the_same_pull_request(cluster_factory):
    with cluster_factory([ADD_TRIPLE, ADDRESS_REVIEW]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a triple function", "widgets should offer triple(x)")
        first = cluster.wait_for(number)
        assert first["state"] == "review", first
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        (commit,) = pr.get_commits()
        # A maintainer pushes a fix of their own to the branch before reviewing.
        theirs = push_commit(cluster.github_url, REPO, "bob", first["branch"], "NOTES.md",
                             cluster.tmp)  # fmt: skip
        pr.create_review_comment(
            "Say it works for any number", commit, "widgets/__init__.py", line=5
        )
        follow_up = wait_for_follow_up(cluster, number)
        assert follow_up["kind"] == "follow_up" and follow_up["state"] == "review", follow_up
        assert follow_up["branch"] == first["branch"]
        assert follow_up["pr_number"] == first["pr_number"]
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        commits = list(pr.get_commits())
        assert len(commits) == 3  # a new commit, same pull request
        # The follow-up built on the maintainer's push and kept it; the push is on the record.
        assert [c.sha for c in commits[1:]] == [theirs, follow_up["result"]["pushed_commit"]]
        assert commits[2].parents[0].sha == theirs
        pushes = [e for e in cluster.events(first["id"]) if e["kind"] == "pushed_by_person"]
        assert [(e["data"]["by"], e["data"]["head"]) for e in pushes] == [("bob", theirs)]
        pulls = cluster.gh().get_repo(REPO).get_pulls(state="all")
        assert [p.number for p in pulls if p.head.ref == first["branch"]] == [pr.number]


FIX_QUARTER = {
    "name": "fix-quarter",
    "match": {"prompt": "(?i)quarter divides by three"},
    "turns": [
        [edit("str_replace", "widgets/__init__.py", old_str="x / 3", new_str="x / 4")],
        "quarter() divides by four now; the tests pass.",
    ],
}


def test_a_draft_is_ready_for_review_once_a_follow_up_makes_the_tests_pass(cluster_factory):
    # The follow-up also names the issue's title: its own scenario must match first.
    with cluster_factory([FIX_QUARTER, NEVER_FIXED]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a quarter function", "quarter(x) returns x / 4")
        first = cluster.wait_for(number)
        assert first["result"]["tests"]["status"] == "failed", first
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        assert pr.draft
        (commit,) = pr.get_commits()
        pr.create_review_comment(
            "quarter divides by three; make it four", commit, "widgets/__init__.py", line=7
        )
        follow_up = wait_for_follow_up(cluster, number)
        assert follow_up["state"] == "review", follow_up
        assert follow_up["result"]["tests"]["status"] == "passed", follow_up
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        assert not pr.draft and "draft" not in pr.body
        # GitHub's own record of it: the ready_for_review event went to the webhook.
        actions = [d.action for d in cluster.github_sim.deliveries() if d.event == "pull_request"]
        assert actions.count("ready_for_review") == 1, actions


def test_the_second_task_on_a_repository_reuses_the_mirror(tmp_path):
    with running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "gh")) as (
        _sim,
        url,
    ):
        workspaces = Workspaces(tmp_path / "agent", Git())
        clone_url, token = f"{url}/{REPO}.git", TOKENS["cluster-bot"]
        first = workspaces.prepare(1, REPO, clone_url, "claude/issue-1-a", "main", token)
        mirror = workspaces.mirror_path(REPO)
        packs = sorted(p.name for p in (mirror / "objects" / "pack").glob("*.pack"))
        second = workspaces.prepare(2, REPO, clone_url, "claude/issue-2-b", "main", token)
        assert sorted(p.name for p in (mirror / "objects" / "pack").glob("*.pack")) == packs
        for workspace in (first, second):
            alternates = (workspace.git_dir / "objects" / "info" / "alternates").read_text()
            assert str(mirror) in alternates  # objects borrowed, not copied
            assert (workspace.repo / "widgets" / "__init__.py").exists()
            git_config = (workspace.git_dir / "config").read_text()
            assert TOKENS["cluster-bot"] not in git_config
        branch = subprocess.run(
            ["git", "branch", "--show-current"],
            cwd=second.repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert branch == "claude/issue-2-b"
        assert first.read_metadata()["task_id"] == 1


def test_finished_workspaces_are_removed_after_retention(tmp_path):
    workspaces = Workspaces(tmp_path, Git())
    for task_id, age_days in ((1, 10), (2, 1), (3, None)):
        folder = tmp_path / "tasks" / f"task-{task_id}"
        folder.mkdir(parents=True)
        if age_days is not None:
            (folder / "metadata.json").write_text(
                f'{{"finished_at": {time.time() - age_days * 86400}}}'
            )
    assert workspaces.cleanup(retention_days=7) == [1]
    assert sorted(p.name for p in (tmp_path / "tasks").iterdir()) == ["task-2", "task-3"]
    assert workspaces.disk_usage()["tasks"] > 0


def test_agent_api(cluster_factory):
    with cluster_factory([]) as cluster:
        port = free_port()
        worker = cluster.agent(api_token="agent-api-token", api_port=port)
        api = ApiServer(create_api(worker, "agent-api-token"), "127.0.0.1", port)
        api.start()
        try:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": "Bearer agent-api-token"}
            assert requests.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
            assert requests.get(f"{base}/status", timeout=5).status_code == 401
            status = requests.get(f"{base}/status", headers=auth, timeout=5).json()
            assert status["name"] == "agent-1" and status["tasks"] == []
            metrics = requests.get(f"{base}/metrics", headers=auth, timeout=5).text
            assert "claude_agent_running_tasks 0.0" in metrics
            assert (
                requests.post(f"{base}/cancel_task/99", headers=auth, timeout=5).status_code == 404
            )
            refused = requests.post(
                f"{base}/execute_task", json={"task_id": 12345}, headers=auth, timeout=5
            )
            assert refused.status_code == 409  # the coordinator decides: no such queued task
        finally:
            api.stop()


def plain_http_answer(port: int, token: str) -> bytes:
    """What the API port sends back to a plain-HTTP request carrying the right token."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(
            b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def test_agent_api_over_tls(cluster_factory, tmp_path):
    """`claude-agent run` with api_tls_* serves HTTPS only: the right token over a connection
    verified against the cluster CA gets the status; nothing else gets data."""
    files = throwaway_ca(tmp_path)
    token = "agent-1-own-api-token-0123456789"
    with cluster_factory([]) as cluster:
        port = free_port()
        agent = cluster.agent_process(
            api_token=token,
            api_port=port,
            api_tls_cert_file=str(files["cert"]),
            api_tls_key_file=str(files["key"]),
        )
        base, ca = f"https://127.0.0.1:{port}", str(files["ca"])
        deadline = time.monotonic() + 30
        while True:
            assert agent.poll() is None, (cluster.tmp / "agent-1.log").read_text()
            try:
                health = requests.get(f"{base}/health", verify=ca, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the API did not come up over HTTPS"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}  # unauthenticated, as before

        status = requests.get(
            f"{base}/status", headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=5
        )
        assert status.status_code == 200 and status.json()["name"] == "agent-1"

        for headers in (
            {"Authorization": "Bearer agent-2-own-api-token-0123456789"},  # another agent's
            {"Authorization": f"Bearer {token[:-1]}"},
            {"Authorization": token},  # no scheme
            {},
        ):
            refused = requests.get(f"{base}/status", headers=headers, verify=ca, timeout=5)
            assert refused.status_code == 401, headers
            assert "agent-1" not in refused.text

        # Plain HTTP, even with the right token: the connection closes without an answer.
        assert b"HTTP/" not in plain_http_answer(port, token)
        with pytest.raises(requests.ConnectionError):
            requests.get(
                f"http://127.0.0.1:{port}/status",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )

        # A client that trusts another CA, or only the public ones, refuses the server (and so
        # never sends its token).
        for verify in (str(files["other_ca"]), True):
            with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
                requests.get(f"{base}/health", verify=verify, timeout=5)

        # A client that connects and says nothing does not stall the others (werkzeug's own
        # TLS wrap would shake hands in accept(), one connection at a time).
        with socket.create_connection(("127.0.0.1", port)):
            started = time.monotonic()
            assert requests.get(f"{base}/health", verify=ca, timeout=5).status_code == 200
            assert time.monotonic() - started < 3
        assert agent.poll() is None


def test_agent_api_tls_context_refuses_old_protocols(tmp_path):
    files = throwaway_ca(tmp_path)
    context = tls_context(str(files["cert"]), str(files["key"]))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        tls_context(str(files["cert"]), str(files["other_ca"]))  # not the certificate's key
