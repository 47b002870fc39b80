"""What every demo cluster shares: the demo world, the APIs it is driven through, the summary.

A :class:`DemoCluster` knows the coordinator's and the simulators' URLs and drives them only
through their public APIs (PyGithub as a maintainer, the coordinator's REST API as admin), so
the local processes of ``ccc-demo --local`` and the lab hosts of ``ccc-demo --lab`` are watched
and summarised by the same code.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import github
import requests
import yaml

from coordinator_app import test_results
from coordinator_app.reviews import REJECTED
from lab.admin_api import ADMIN, AdminApi
from lab.services import ServiceError, wait_http
from simulators.claude.cli import EXAMPLE_SCENARIOS
from simulators.github.cli import DEMO_SEED
from simulators.github.seed import generate_private_key

SEED = DEMO_SEED
SCENARIOS = EXAMPLE_SCENARIOS / "demo"
APP_ID = yaml.safe_load(SEED.read_text())["app"]["id"]
REPO = "octo-org/textstats"  # the Python library most issues are on
WEB_REPO = "octo-org/pricetag"  # the Node.js module of the frontend issue
MAINTAINER = "alice"
# A run is over: its pull request awaits GitHub's decision, or it failed or was cancelled.
RUN_ENDS = ("review", "failed", "cancelled")
DECIDED = ("completed", "failed", "cancelled")  # GitHub decided (or nothing is left to decide)
# What the maintainer does with each issue's pull request, in the order of ISSUES; the rest stay
# in review.
DECISIONS = ("merge", "close")
# How the issues' tasks end once the coordinator recorded those decisions: (state, error).
EXPECTED_ENDS = [("completed", None), ("failed", REJECTED), ("review", None), ("review", None)]


class Issue(NamedTuple):
    """A demo issue: what the maintainer files, and where."""

    title: str
    body: str
    labels: list[str]
    repo: str = REPO


ISSUES = [
    Issue(
        "Add a character count function",
        "textstats counts words; it should also count characters: `char_count(text, spaces=True)`.",
        ["claude", "backend"],
    ),
    Issue(
        "Document top_words in the README",
        "The README only shows an example. Document `words`, `word_count` and `top_words` "
        "(how are ties ordered?).",
        ["claude", "docs"],
    ),
    Issue(
        "Add tests for punctuation-only input",
        "What do `words`, `word_count` and `top_words` return for text like `?!, ...`? "
        "Pin it down with tests in tests/test_edge_cases.py.",
        ["claude"],
    ),
    Issue(
        "Group the thousands in displayed prices",
        "The cart shows `123456.78 EUR`; shoppers read `123,456.78 EUR` far more easily. "
        "formatPrice should group the thousands with commas.",
        ["claude", "frontend"],
        WEB_REPO,
    ),
]
# An issue as the demo follows it: its repository and number.
IssueRef = tuple[str, int]


def issue_ref(issue: IssueRef | int) -> IssueRef:
    """``issue`` as (repository, number); a bare number is one of REPO's."""
    return (REPO, issue) if isinstance(issue, int) else issue


def issue_name(repository: str, number: int) -> str:
    """``textstats#3``: short, and unique across the demo's repositories."""
    return f"{repository.rpartition('/')[2]}#{number}"


@dataclass
class DemoCluster:
    """A running demo cluster seen from outside: URLs, credentials, the calls that drive it."""

    echo: Callable[[str], None] = print
    # "coordinator", "github" (simulator root), "claude" (simulator root).
    urls: dict[str, str] = field(default_factory=dict)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    # GitHub simulator tokens by login (from the seed).
    tokens: dict[str, str] = field(default_factory=dict)
    # What requests verifies the coordinator's certificate with (a CA file for HTTPS).
    verify: str | bool = True
    # The private key (PEM file) of the simulator's GitHub App, which the coordinator is.
    app_key_file: Path | None = None
    _admin: AdminApi | None = None

    def check(self) -> None:
        """Raise ServiceError when a part of the cluster has died (polled while waiting)."""

    def wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        """Poll ``url`` until it answers below 500, checking the cluster meanwhile."""
        wait_http(url, what, self.check, self.verify, timeout)

    # GitHub -----------------------------------------------------------------------------

    def github(self, login: str = MAINTAINER) -> github.Github:
        """PyGithub against the simulator, as ``login``."""
        return github.Github(
            base_url=f"{self.urls['github']}/api/v3",
            auth=github.Auth.Token(self.tokens[login]),
            seconds_between_requests=0,
            seconds_between_writes=0,
        )

    def app_api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A call to an App endpoint of the GitHub simulator, with the App's JWT."""
        jwt = github.Auth.AppAuth(APP_ID, self.app_key_file.read_text()).create_jwt()
        answer = requests.request(
            method,
            f"{self.urls['github']}/api/v3{path}",
            headers={"Authorization": f"Bearer {jwt}", "Accept": "application/vnd.github+json"},
            timeout=30,
            **kwargs,
        )
        answer.raise_for_status()
        return answer

    def set_app_webhook(self, secret: str) -> None:
        """Point the App's webhook at the coordinator (the App's settings page on GitHub)."""
        config = {"url": f"{self.urls['coordinator']}/webhooks/github", "content_type": "json"}
        self.app_api("PATCH", "/app/hook/config", json={**config, "secret": secret})

    def file_issue(self, title: str, body: str, labels: list[str], repo: str = REPO) -> int:
        """Open an issue on ``repo`` as the maintainer: triage labels first, then the trigger
        label. Returns its number."""
        issue = self.github().get_repo(repo).create_issue(title, body=body, labels=labels[1:])
        issue.add_to_labels(labels[0])
        name = issue_name(repo, issue.number)
        self.echo(f"filed {name} {title!r} with labels {', '.join(labels)}")
        return issue.number

    def file_issues(self) -> list[IssueRef]:
        """Open the demo issues and label them for the cluster."""
        return [(i.repo, self.file_issue(i.title, i.body, i.labels, i.repo)) for i in ISSUES]

    # Coordinator ------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call the coordinator's REST API as the admin user."""
        if self._admin is None:
            self._admin = AdminApi(
                self.urls["coordinator"], ADMIN, self.admin_password, self.verify
            )
        return self._admin.call(method, path, body)

    def tasks(self) -> list[dict]:
        """Every task the coordinator knows (the first 100)."""
        return self.api("GET", "/api/v1/tasks?per_page=100")["items"]

    def wait(
        self, issues: list[IssueRef | int], timeout: float, ends: tuple[str, ...] = RUN_ENDS
    ) -> list[dict]:
        """Print state changes until every issue's task (``issues``: (repository, number),
        or a number of REPO's) is in one of ``ends`` (by default: its run is over); returns
        the tasks in detail."""
        refs = [issue_ref(issue) for issue in issues]
        deadline = time.monotonic() + timeout
        seen: dict[IssueRef, str] = {}
        while True:
            self.check()
            tasks: dict[IssueRef, dict] = {}
            for task in self.tasks():  # newest first: follow-ups shadow the original task
                tasks.setdefault((task["repository"], task["issue_number"]), task)
            for ref in refs:
                task = tasks.get(ref)
                state = task["state"] if task else "waiting for webhook"
                if seen.get(ref) != state:
                    agent = f" ({task['agent']})" if task and task["agent"] else ""
                    self.echo(f"  {issue_name(*ref)}: {state}{agent}")
                    seen[ref] = state
            if all(ref in tasks and tasks[ref]["state"] in ends for ref in refs):
                return [self.api("GET", f"/api/v1/tasks/{tasks[r]['id']}") for r in refs]
            if time.monotonic() > deadline:
                raise ServiceError(f"issues not finished after {timeout:.0f}s: {seen}")
            time.sleep(1)

    def decide(self, tasks: list[dict], timeout: float) -> list[dict]:
        """Act as the maintainer, by issue order (:data:`DECISIONS`): merge the first issue's
        pull request, close the second's without merging, leave the others in review; wait until
        the coordinator recorded the decisions. Returns the tasks again, in detail."""
        decided = []
        for task, decision in zip(tasks, DECISIONS, strict=False):
            ref = (task["repository"], task["issue_number"])
            issue, number = issue_name(*ref), task["pr_number"]
            if task["state"] != "review" or not number:
                self.echo(f"maintainer cannot {decision} the PR of {issue}: it is {task['state']}")
                continue
            pull = self.github(MAINTAINER).get_repo(task["repository"]).get_pull(number)
            if decision == "merge":
                self.echo(f"maintainer merges PR #{number} (issue {issue})")
                pull.merge()
            else:
                self.echo(f"maintainer closes PR #{number} without merging (issue {issue})")
                pull.edit(state="closed")
            decided.append(ref)
        if decided:
            self.wait(decided, timeout, ends=DECIDED)
        return [self.api("GET", f"/api/v1/tasks/{t['id']}") for t in tasks]


def seed_tokens() -> dict[str, str]:
    """The GitHub simulator tokens of the demo seed's users, by login."""
    seed = yaml.safe_load(SEED.read_text())
    return {user["login"]: user["token"] for user in seed["users"] if user.get("token")}


def write_app_key(path: Path) -> Path:
    """A new private key for the demo's GitHub App (0600), given to the simulator and the
    coordinator alike, as GitHub's App settings page hands one out."""
    path.write_text(generate_private_key())
    path.chmod(0o600)
    return path


def summary(tasks: list[dict]) -> str:
    """The table the demo ends with, and the merge rate."""
    head = ("ISSUE", "SPECIALTY", "AGENT", "STATE", "TESTS", "PR", "TOKENS", "COST", "TO PR")
    rows = [(*head, "OUTCOME")]
    for task in tasks:
        verdict = test_results.short((task.get("result") or {}).get("tests"))
        rows.append(
            (
                issue_name(task["repository"], task["issue_number"]),
                task["specialty"] or "-",
                task["agent"] or "-",
                task["state"],
                verdict,
                task["pr_url"] or "-",
                str(task["input_tokens"] + task["output_tokens"]),
                f"${task['cost_usd']:.4f}",
                f"{task_seconds(task):.1f}s",
                outcome(task),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    table = "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + f"  {row[-1]}"
        for row in rows
    )
    return f"{table}\n\n{merge_rate(tasks)}"


def outcome(task: dict) -> str:
    """What became of the task's work, in words."""
    pull = task.get("pull_request") or {}
    if task["state"] == "completed" and pull.get("seconds_to_merge") is not None:
        return f"merged by {pull['decided_by']} {pull['seconds_to_merge']:.1f}s after it opened"
    if task["state"] == "review":
        return "pull request open, awaiting review"
    return task.get("error") or task["state"]


def merge_rate(tasks: list[dict]) -> str:
    """``merge rate: 50% (1 merged, 1 closed without merge, 1 in review)``."""
    states = [(t.get("pull_request") or {}).get("state") for t in tasks]
    merged, closed, waiting = (states.count(s) for s in ("merged", "closed", "open"))
    rate = f"{merged / (merged + closed):.0%}" if merged + closed else "-"
    return (
        f"merge rate: {rate} ({merged} merged, {closed} closed without merge, {waiting} in review)"
    )


def task_seconds(task: dict) -> float:
    """Seconds from a task's first recorded state to its pull request (its first review), or
    to its last state when it has none."""
    history = task["history"]
    end = next((h for h in history if h["to"] == "review"), history[-1])
    return (
        datetime.fromisoformat(end["at"]) - datetime.fromisoformat(history[0]["at"])
    ).total_seconds()
