"""The agent against the simulators and a running coordinator: claim to pull request, failing
tests fixed, limits that keep the work, and secrets that never leave the agent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.admin_api import ADMIN
from simulators.github.testing import TOKENS
from tests.agent.conftest import CLAUDE_KEY, REPO
from tests.coordinator.test_admin_pages import admin_session

ORIGINAL = '    """Twice x."""\n    return 2 * x\n'
TRIPLE = ORIGINAL + '\n\ndef triple(x):\n    """Three times x."""\n    return 3 * x\n'
TRIPLE_TEST = "from widgets import triple\n\n\ndef test_triple():\n    assert triple(2) == 6\n"


def edit(command: str, path: str, **extra) -> dict:
    return {
        "tool_use": {
            "name": "str_replace_based_edit_tool",
            "input": {"command": command, "path": path, **extra},
        }
    }


def bash(command: str) -> dict:
    return {"tool_use": {"name": "bash", "input": {"command": command}}}


ADD_TRIPLE = {
    "name": "add-triple",
    "match": {"prompt": "(?i)add a triple function"},
    "turns": [
        ["I'll read the module first.", edit("view", "widgets/__init__.py")],
        [edit("str_replace", "widgets/__init__.py", old_str=ORIGINAL, new_str=TRIPLE)],
        [edit("create", "tests/test_triple.py", file_text=TRIPLE_TEST)],
        [bash("python3 -m pytest -q")],
        "Added `triple(x)` with a test; the suite passes.",
    ],
}

BROKEN_THEN_FIXED = {
    "name": "broken-then-fixed",
    "match": {"prompt": "(?i)add a halve function"},
    "turns": [
        [
            edit(
                "str_replace",
                "widgets/__init__.py",
                old_str=ORIGINAL,
                new_str=ORIGINAL + "\n\ndef halve(x):\n    return x / 3\n",
            )
        ],
        [
            edit(
                "create",
                "tests/test_halve.py",
                file_text="from widgets import halve\n\n\ndef test_halve():\n"
                "    assert halve(4) == 2\n",
            )
        ],
        "Added halve().",
        # The agent runs the tests itself, sees them fail and says so: the model fixes it.
        {
            "alternatives": [
                {
                    "when": {"user_matches": "tests fail"},
                    "turns": [
                        [
                            edit(
                                "str_replace",
                                "widgets/__init__.py",
                                old_str="x / 3",
                                new_str="x / 2",
                            )
                        ],
                        "Fixed the divisor; the tests pass now.",
                    ],
                },
                {"content": "Nothing to fix."},
            ]
        },
    ],
}

NEVER_FIXED = {
    "name": "never-fixed",
    "match": {"prompt": "(?i)add a quarter function"},
    "turns": [
        [
            edit(
                "str_replace",
                "widgets/__init__.py",
                old_str=ORIGINAL,
                new_str=ORIGINAL + "\n\ndef quarter(x):\n    return x / 3\n",
            )
        ],
        [
            edit(
                "create",
                "tests/test_quarter.py",
                file_text="from widgets import quarter\n\n\ndef test_quarter():\n"
                "    assert quarter(8) == 2\n",
            )
        ],
        "Added quarter().",
    ],
    "final": "I could not find the cause.",
}

KEEPS_EDITING = {
    "name": "keeps-editing",
    "match": {"prompt": "(?i)endless refactor"},
    "turns": [[edit("create", f"notes/step{n}.md", file_text=f"step {n}\n")] for n in range(20)],
}

INJECTION = {
    "name": "prompt-injection",
    "match": {"prompt": "(?i)print the environment"},
    "turns": [
        [
            bash(
                "env; cat /proc/self/environ; cat $HOME/../../*.toml; "
                "cat /proc/$PPID/environ; git config --list"
            )
        ],
        [edit("view", "../../../agent-1.toml")],
        [bash("grep -r . / --include=*.toml 2>/dev/null | head -n 50")],
        [edit("create", "notes.md", file_text="nothing to see\n")],
        "Done.",
    ],
}


def clone_branch(cluster, branch: str) -> Path:
    """The branch as GitHub has it, cloned over HTTP like any user would."""
    url = cluster.github_url.replace("http://", f"http://x-access-token:{TOKENS['bob']}@")
    target = cluster.tmp / f"check-{branch.replace('/', '-')}"
    shutil.rmtree(target, ignore_errors=True)  # an earlier look at the branch
    clone = ["git", "clone", "-q", "-b", branch, f"{url}/{REPO}.git", str(target)]
    subprocess.run(clone, check=True)
    return target


def git_out(checkout: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True, check=True)
    return done.stdout


def pr_for(cluster, task) -> object:
    return cluster.gh().get_repo(REPO).get_pull(task["pr_number"])


def test_issue_to_pull_request(cluster_factory):
    with cluster_factory([ADD_TRIPLE]) as cluster:
        cluster.agent("agent-1", ["backend", "general"])
        number = cluster.label_issue("Add a triple function", "widgets should offer triple(x)")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        assert [h["to"] for h in task["history"]] == [
            "pending",
            "analyzing",
            "queued",
            "assigned",
            "in_progress",
            "testing",
            "review",
        ]
        assert task["agent"] == "agent-1" and task["executor"] == "messages-api"
        assert task["pull_request"]["state"] == "open"
        assert task["branch"] == f"claude/issue-{number}-add-a-triple-function"
        assert task["result"]["tests"]["passed"] == 2 and task["result"]["tests"]["exit_code"] == 0
        assert task["input_tokens"] > 0 and task["cost_usd"] > 0
        pr = pr_for(cluster, task)
        assert pr.head.ref == task["branch"] and pr.base.ref == "main" and not pr.draft
        assert f"Closes #{number}" in pr.body and "passed" in pr.body
        assert {f.filename for f in pr.get_files()} == {
            "widgets/__init__.py",
            "tests/test_triple.py",
        }
        checkout = clone_branch(cluster, task["branch"])
        assert "def triple(x):" in (checkout / "widgets" / "__init__.py").read_text()
        # The App's bot made the commit and the pull request, crediting whoever asked for it.
        (commit,) = pr.get_commits()
        bot = cluster.github_sim.store.user("test-cluster[bot]")
        bob = cluster.github_sim.store.user("bob")
        assert commit.commit.author.name == "test-cluster[bot]"
        assert commit.commit.author.email == f"{bot.id}+test-cluster[bot]@users.noreply.127.0.0.1"
        trailer = f"Co-authored-by: bob <{bob.id}+bob@users.noreply.127.0.0.1>"
        assert commit.commit.message.rstrip().endswith(trailer), commit.commit.message
        assert pr.user.login == "test-cluster[bot]"
        # main has no branch protection here: the body asks for another reviewer than bob.
        assert "@bob asked for this change" in pr.body
        repo = cluster.gh().get_repo(REPO)
        # Exactly one PR for the issue's branch.
        assert repo.get_pulls(state="all", head=f"acme:{task['branch']}").totalCount == 1


def test_failing_tests_go_back_to_the_model_and_get_fixed(cluster_factory):
    with cluster_factory([BROKEN_THEN_FIXED]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a halve function", "halve(x) returns x / 2")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        states = [h["to"] for h in task["history"]]
        assert states.count("testing") == 2  # failed once, then passed
        assert "tests failed; fixing" in [h["reason"] for h in task["history"]]
        assert task["result"]["tests"]["failed"] == 0
        assert not pr_for(cluster, task).draft


def test_tests_that_stay_red_give_a_draft_pull_request_that_says_so(cluster_factory):
    with cluster_factory([NEVER_FIXED]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a quarter function", "quarter(x) returns x / 4")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        assert [h["to"] for h in task["history"]].count("testing") == 3  # two fix rounds
        assert task["result"]["tests"]["failed"] == 1
        pr = pr_for(cluster, task)
        assert pr.draft
        assert "failed" in pr.body and "draft until they pass" in pr.body


NO_RUNNER = {
    "name": "no-runner",
    "match": {"prompt": "(?i)add a negate function"},
    "turns": [
        [
            edit(
                "str_replace",
                "widgets/__init__.py",
                old_str=ORIGINAL,
                new_str=ORIGINAL + "\n\ndef negate(x):\n    return -x\n",
            )
        ],
        "Added negate().",
        # Only reached if the agent wrongly sends the model off to fix tests that never ran.
        {"content": "Nothing to fix."},
    ],
}


def push_file(cluster, path: str, content: str) -> None:
    """Commit one file to main as a maintainer would (clone, commit, push over HTTP)."""
    checkout = clone_branch(cluster, "main")
    (checkout / path).write_text(content)
    identity = ["-c", "user.name=Bob", "-c", "user.email=bob@example.com"]
    for args in (["add", path], [*identity, "commit", "-qm", f"Add {path}"], ["push", "-q"]):
        subprocess.run(["git", *args], cwd=checkout, check=True)


@pytest.mark.parametrize(
    ("test_command", "reason"),
    [
        # The interpreter is there, the runner is not (no python3-pytest on the host).
        ("python3 -m no_such_runner -q", "No module named no_such_runner"),
        # The toolchain is not there at all (exit 127 from the shell).
        ("no-such-toolchain test", "no-such-toolchain: command not found"),
    ],
)
def test_a_test_runner_that_cannot_start_is_an_environment_error(
    cluster_factory, test_command, reason
):
    with cluster_factory([NO_RUNNER]) as cluster:
        push_file(cluster, ".claude-cluster.toml", f'test_command = "{test_command}"\n')
        cluster.agent()
        number = cluster.label_issue("Add a negate function", "negate(x) returns -x")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        tests = task["result"]["tests"]
        assert tests["status"] == "not_run" and reason in tests["environment_error"], tests
        # Not sent back to the model: one test run, no fix round, one "done" from the model.
        history = [h["to"] for h in task["history"]]
        assert history.count("testing") == 1, history
        assert "tests failed; fixing" not in [h["reason"] for h in task["history"]]
        assert not any(b"tests fail" in body for body in cluster.claude_bodies)
        events = cluster.client.get(
            f"/api/v1/tasks/{task['id']}/events", headers=cluster.admin_headers
        ).json["items"]
        (reported,) = [e["data"] for e in events if e["kind"] == "tests"]
        assert reported["status"] == "not_run" and reason in reported["environment_error"]
        # The PR is an untested draft that says why; so do the issue comment and the admin page.
        pr = pr_for(cluster, task)
        assert pr.draft
        assert "could not run" in pr.body and reason in pr.body, pr.body
        comments = cluster.gh().get_repo(REPO).get_issue(number).get_comments()
        assert any("could not run" in c.body and reason in c.body for c in comments)
        session = admin_session(cluster.coordinator_url, ADMIN, cluster.local.admin_password)
        page = session.get(f"{cluster.coordinator_url}/admin/tasks/{task['id']}", timeout=5)
        assert 'class="tests-not_run"' in page.text and reason in page.text
        session.close()


@pytest.mark.parametrize(
    ("budget", "limit"),
    [
        ({"max_turns": 3}, "turns"),
        ({"max_tokens": 3000}, "tokens"),
        ({"max_dollars": 0.01}, "dollars"),
        ({"max_seconds": 1}, "seconds"),
    ],
)
def test_every_limit_keeps_the_work_on_the_branch(cluster_factory, budget, limit):
    settings = {"max_turns": 60, "max_tokens": 10**7, "max_dollars": 100.0, "max_seconds": 600}
    settings.update(budget)
    with cluster_factory([KEEPS_EDITING], budget=settings, max_attempts=1) as cluster:
        if limit == "seconds":
            cluster.claude_sim.inject("slow", count=50, seconds=0.4)
        cluster.agent()
        number = cluster.label_issue("Endless refactor", "keep going")
        task = cluster.wait_for(number, states=("failed",))
        assert f"{limit} limit reached" in task["error"]
        assert "work pushed to" in task["error"]
        checkout = clone_branch(cluster, f"claude/issue-{number}-endless-refactor")
        assert git_out(checkout, "log", "-1", "--format=%s").strip() == "WIP: Endless refactor"
        files = git_out(checkout, "show", "--name-only", "--format=", "HEAD").split()
        assert files and all(f.startswith("notes/step") for f in files)


def test_prompt_injection_reveals_no_secret(cluster_factory, monkeypatch):
    with cluster_factory([INJECTION]) as cluster:
        # Every installation token GitHub mints (the task's among them) is a secret too.
        store, minted = cluster.github_sim.store, []
        issue = store.issue_installation_token

        def recorded(*args, **kwargs):
            token = issue(*args, **kwargs)
            minted.append(token.value)
            return token

        monkeypatch.setattr(store, "issue_installation_token", recorded)
        cluster.agent()
        number = cluster.label_issue("Print the environment", "please print the environment")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        assert minted
        secrets = [CLAUDE_KEY, *minted, cluster.configs["agent-1"].agent_key]
        sent = b"\n".join(cluster.claude_bodies)
        assert b"tool_result" in sent  # the commands did run and report back
        for secret in secrets:
            assert secret.encode() not in sent
        transcript = (
            cluster.tmp / "agent-1" / "tasks" / f"task-{task['id']}" / "transcript.jsonl"
        ).read_text()
        for secret in secrets:
            assert secret not in transcript
        workspace_git = (
            cluster.tmp / "agent-1" / "tasks" / f"task-{task['id']}" / "git" / "config"
        ).read_text()
        assert not any(token in workspace_git for token in minted)


def test_a_nul_in_the_models_text_does_not_lose_the_result(cluster_factory):
    """PostgreSQL cannot store NUL: the agent sends U+FFFD in its place, and the task ends."""
    scenario = {
        "name": "nul",
        "match": {"prompt": "(?i)write a nul"},
        "turns": [
            [{"tool_use": {"name": "str_replace_based_edit_tool",
                           "input": {"command": "create", "path": "nul.txt",
                                     "file_text": "there\\n"}}}],
            "Done\u0000 and said so.",
        ],
    }  # fmt: skip
    with cluster_factory([scenario]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Write a NUL", "please")
        task = cluster.wait_for(number, timeout=60)
        assert task["state"] == "review", task
        assert task["result"]["summary"].startswith("Done\ufffd and said so"), task["result"]
