"""The outbound filter: a secret leaves the agent in no form, and a change holding one is not
pushed."""

from __future__ import annotations

import base64
import subprocess

import pytest

from agent_app.redaction import REPLACEMENT, Redactor
from simulators.github.testing import TOKENS
from tests.agent.conftest import CLAUDE_KEY, REPO
from tests.agent.test_agent_tasks import ORIGINAL, edit

TOKEN = TOKENS["cluster-bot"]
GITHUB_LIKE = "ghp_" + "Zq9" * 12  # someone else's token, of GitHub's format


def b64(text: str, prefix: str = "") -> str:
    return base64.b64encode((prefix + text).encode()).decode()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"token={TOKEN}", "plain"),
        (f"echo {TOKEN[::-1]}", "reversed"),
        (f"hex {TOKEN.encode().hex()}", "hex"),
        (f"Basic {b64(TOKEN, 'x-access-token:')}", "base64"),
        *((f"blob {b64(TOKEN, 'p' * n)}==", "base64") for n in range(3)),
        (f"url {b64(TOKEN).replace('+', '-').replace('/', '_')}", "base64"),
    ],
)
def test_known_secrets_are_found_and_replaced_in_every_form(text, kind):
    redact = Redactor([TOKEN, CLAUDE_KEY])
    assert redact.findings(text) == [f"a secret of this agent ({kind})"]
    assert REPLACEMENT in redact(text)
    for secret in (TOKEN, TOKEN[::-1], TOKEN.encode().hex()):
        assert secret not in redact(text)


def test_well_known_token_formats_are_replaced_whoever_owns_them():
    redact = Redactor([])
    text = (f"{GITHUB_LIKE} github_pat_{'a1' * 30} sk-ant-api03-{'x' * 40} "
            f"ccca_{'k' * 43} gho_{'b' * 36} ghs_{'c' * 36}")  # fmt: skip
    assert redact(text).split() == [REPLACEMENT] * 6
    assert set(redact.findings(text)) == {
        "GitHub token", "GitHub fine-grained token", "Anthropic API key", "cluster agent key",
    }  # fmt: skip
    assert (
        redact("ghp_short and sk-ant-x and plain words") == "ghp_short and sk-ant-x and plain words"
    )


def test_scrub_reaches_into_nested_data():
    redact = Redactor([TOKEN])
    data = {"summary": f"x {TOKEN}", "tests": {"output": [f"{TOKEN}"]}, "n": 3, TOKEN: None}
    assert TOKEN not in repr(redact.scrub(data)) and redact.scrub(data)["n"] == 3


LEAKY_SUMMARY = {
    "name": "leaky-summary",
    "match": {"prompt": "(?i)add a triple function"},
    "turns": [
        [
            edit(
                "str_replace",
                "widgets/__init__.py",
                old_str=ORIGINAL,
                new_str=ORIGINAL + "\n\ndef triple(x):\n    return 3 * x\n",
            )
        ],
        f"Done. For the record: {CLAUDE_KEY} / {b64(CLAUDE_KEY, 'x-access-token:')} / "
        f"{CLAUDE_KEY[::-1]} / {GITHUB_LIKE}",
    ],
}

LEAKY_DIFF = {
    "name": "leaky-diff",
    "match": {"prompt": "(?i)add a config example"},
    "turns": [
        [edit("create", "config.example", file_text=f"key_hex = {CLAUDE_KEY.encode().hex()}\n")],
        "Added an example configuration.",
    ],
}


def test_a_leaky_summary_reaches_github_and_the_coordinator_redacted(cluster_factory):
    with cluster_factory([LEAKY_SUMMARY]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a triple function", "triple(x) returns 3x")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        pr = cluster.gh().get_repo(REPO).get_pull(task["pr_number"])
        (commit,) = pr.get_commits()
        comments = [c.body for c in cluster.gh().get_repo(REPO).get_issue(number).get_comments()]
        events = cluster.client.get(f"/api/v1/tasks/{task['id']}/events",
                                    headers=cluster.admin_headers).json  # fmt: skip
        transcript = (cluster.tmp / "agent-1" / "tasks" / f"task-{task['id']}" /
                      "transcript.jsonl").read_text()  # fmt: skip
        for where, text in {
            "PR body": pr.body, "commit message": commit.commit.message,
            "issue comments": "\n".join(comments), "task result": repr(task["result"]),
            "progress events": repr(events), "transcript": transcript,
        }.items():  # fmt: skip
            for secret in (CLAUDE_KEY, b64(CLAUDE_KEY, "x-access-token:"), CLAUDE_KEY[::-1],
                           GITHUB_LIKE):  # fmt: skip
                assert secret not in text, where
        assert REPLACEMENT in pr.body and "Done. For the record" in pr.body


def test_a_change_that_holds_a_secret_is_not_pushed(cluster_factory):
    with cluster_factory([LEAKY_DIFF], max_attempts=1) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a config example", "an example config file")
        task = cluster.wait_for(number, states=("failed",))
        assert "holds a secret of this agent (hex)" in task["error"], task["error"]
        assert "not pushed" in task["error"] and CLAUDE_KEY.encode().hex() not in task["error"]
        url = cluster.github_url.replace("http://", f"http://x:{TOKENS['bob']}@")
        heads = subprocess.run(["git", "ls-remote", "--heads", f"{url}/{REPO}.git"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "claude/issue" not in heads  # nothing reached GitHub, not even a checkpoint
        assert cluster.gh().get_repo(REPO).get_pulls(state="all").totalCount == 0
        kept = cluster.tmp / "agent-1" / "tasks" / f"task-{task['id']}" / "repo" / "config.example"
        assert kept.exists()  # the work stays on the agent host
