"""One task from claim to pull request: workspace, Claude, tests, commit, push, PR, report.

Whatever stops the work early (a limit, a cancellation, a stop of the agent) ends the same
way: the changes so far are committed and pushed to the task branch, and the coordinator is
told where they are. Except when the run's attempt is over (its lease was reaped, the task
claimed again): then it stops at once and pushes and reports nothing.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial
from glob import escape as glob_escape
from pathlib import Path

from agent_app import prompts, repo_setup, repo_tests, sandbox
from agent_app.agent_loop import Budget, Usage
from agent_app.config import AgentConfig
from agent_app.coordinator_client import CoordinatorClient
from agent_app.dependency_cache import DependencyCache
from agent_app.exceptions import (
    AgentError,
    AttemptOver,
    Cancelled,
    CoordinatorUnavailable,
    GitHubRefused,
    LimitExceeded,
)
from agent_app.executor import Executor
from agent_app.github_access import Grant, TaskAccess
from agent_app.model import Conversation
from agent_app.publisher import Publisher
from agent_app.repo_config import RepoConfigError
from agent_app.repo_setup import SetupFailed
from agent_app.sandbox import CommandRunner
from agent_app.tools import ToolSet
from agent_app.workspace import TaskWorkspace, Workspaces

logger = logging.getLogger(__name__)
TEST_FIX_ROUNDS = 2  # times the model is shown failing tests after it said it was done


class StopRequested(AgentError):
    """The agent is stopping: checkpoint the task and hand it back to the queue."""


@dataclass
class RunningTask:
    """A task as the worker tracks it: its id, the attempt its claim began, the GitHub grant
    it came with (kept apart from the task's data, which is shown and logged), and the events
    that stop it."""

    id: int
    attempt: str
    data: dict
    grant: dict = field(default_factory=dict, repr=False)
    cancel: threading.Event = field(default_factory=threading.Event)
    handback: threading.Event = field(default_factory=threading.Event)
    # The coordinator no longer counts this attempt: stop, push and report nothing.
    over: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"


class TaskRunner:
    """Runs tasks; one instance per agent, shared by its task threads."""

    def __init__(
        self,
        config: AgentConfig,
        coordinator: CoordinatorClient,
        workspaces: Workspaces,
        executor: Executor,
        hidden: list[Path],
    ) -> None:
        """``hidden``: paths commands must not see (the agent's configuration folder)."""
        self.config = config
        limits = config.limits
        self.policy = sandbox.Policy(
            mode=config.sandbox,
            hidden=(*hidden, workspaces.root),
            path=config.command_path,
            rlimits=command_rlimits(limits),
            egress_socket=config.egress_proxy_socket,
            tmp_bytes=limits.command_tmp_mb * 2**20,
            disk_bytes=limits.workspace_mb * 2**20,
        )
        self.coordinator = coordinator
        self.workspaces = workspaces
        self.executor = executor
        self.caches = DependencyCache(workspaces.root / "caches", limits.setup_cache_mb * 2**20)

    def sandbox_problem(self) -> str | None:
        """Why commands cannot run safely here, or None: the sandbox is probed with the very
        command line tasks use (see agent_app.sandbox.probe)."""
        scratch = self.workspaces.root / "tasks" / "sandbox-probe"
        sockets = self.config.egress_repository_sockets.values()
        try:
            for policy in (self.policy, *(replace(self.policy, egress_socket=s) for s in sockets)):
                sandbox.probe(policy, scratch)
        except sandbox.SandboxUnavailable as exc:
            return str(exc)
        return None

    def budget(self, task: dict) -> Budget:
        """The task's budget, never above this agent's own ceilings."""
        given, ceiling = task.get("budget") or {}, self.config.limits
        return Budget(
            max_turns=min(given.get("max_turns", ceiling.max_turns), ceiling.max_turns),
            max_tokens=min(given.get("max_tokens", ceiling.max_tokens), ceiling.max_tokens),
            max_dollars=min(given.get("max_dollars", ceiling.max_dollars), ceiling.max_dollars),
            max_seconds=min(given.get("max_seconds", ceiling.max_seconds), ceiling.max_seconds),
        )

    def run(self, running: RunningTask) -> None:
        """Work on the task and report the outcome; never raises."""
        task = running.data
        report = Reports(self.coordinator, running)
        usage = Usage()
        workspace: TaskWorkspace | None = None
        publisher: Publisher | None = None
        try:
            publisher = self.publisher(running, report)
            grant = publisher.access.grant
            clone_url, default_branch = publisher.clone_url()
            running.phase = "preparing workspace"
            workspace = self.workspaces.prepare(
                task["id"],
                grant.repository,
                clone_url,
                grant.branch,
                default_branch,
                publisher.access.token(),
            )
            report.state("in_progress", branch=grant.branch)
            tests, summary = self._work(running, report, workspace, grant.branch, usage)
            self._finish(
                running, report, publisher, workspace, default_branch, usage, tests, summary
            )
        except (
            AttemptOver,
            LimitExceeded,
            Cancelled,
            StopRequested,
            GitHubRefused,
            SetupFailed,
        ) as exc:
            self._checkpoint(running, report, publisher, workspace, usage, exc)
        except Exception as exc:
            logger.exception("Task %s: failed: %s", task["id"], exc)
            self._checkpoint(running, report, publisher, workspace, usage, exc)
        finally:
            if workspace is not None:
                workspace.write_metadata(finished_at=time.time(), usage=usage.__dict__)
            if publisher is not None:
                publisher.close(revoke=True)

    def publisher(self, running: RunningTask, report: Reports) -> Publisher:
        """The task's way to GitHub, with the grant it was claimed with (renewed from the
        coordinator for this task's branch when it runs low)."""
        access = TaskAccess(Grant.from_json(running.grant), renew=report.github_token)
        return Publisher(self.workspaces.git, access, self.config.secrets)

    # Phases ------------------------------------------------------------------------------

    def _work(
        self,
        running: RunningTask,
        report: Reports,
        workspace: TaskWorkspace,
        branch: str,
        usage: Usage,
    ) -> tuple[repo_tests.TestRun | None, str]:
        """Claude's loop, then the tests (with fix rounds); returns (tests, Claude's summary)."""
        task = running.data
        runner = self.command_runner(task, workspace)
        self._setup(running, report, workspace, runner)
        tools = ToolSet(workspace.repo, runner, self.config.limits.command_timeout, running.cancel)
        # The model's shell lives for the task; closing ends it and whatever it left running.
        with contextlib.closing(tools):
            conversation = Conversation(
                system=prompts.system_blocks(
                    task["repository"], task.get("specialty") or "general"
                ),
                messages=[
                    {"role": "user", "content": prompts.task_message(task, workspace.repo, branch)}
                ],
            )
            budget = self.budget(task)
            command = repo_tests.detect(workspace.repo)
            test_run = None
            for round_number in range(TEST_FIX_ROUNDS + 1):
                running.phase = "working with Claude"
                self._guard(running)
                self.executor.run(
                    conversation,
                    tools,
                    budget,
                    usage,
                    running.started,
                    workspace.transcript,
                    running.cancel,
                    report.progress,
                )
                if command is None:
                    return None, conversation.summary
                running.phase = "running tests"
                report.state("testing")
                test_run = repo_tests.run(
                    runner, workspace.repo, command, self.config.limits.test_timeout, running.cancel
                )
                report.progress(
                    {
                        "kind": "tests",
                        "data": {k: v for k, v in test_run.as_dict().items() if k != "output"},
                    }
                )
                if test_run.environment_error:
                    # Nothing ran: the model cannot fix a missing runner, and must not try.
                    logger.warning(
                        "Task %s: the tests could not run: %s",
                        task["id"],
                        test_run.environment_error,
                    )
                    return test_run, conversation.summary
                if test_run.ok or round_number == TEST_FIX_ROUNDS:
                    return test_run, conversation.summary
                report.state("in_progress", reason="tests failed; fixing")
                conversation.messages.append(
                    {
                        "role": "user",
                        "content": prompts.tests_failed_message(command, test_run.output[-6000:]),
                    }
                )
            return test_run, conversation.summary

    def _setup(
        self,
        running: RunningTask,
        report: Reports,
        workspace: TaskWorkspace,
        runner: CommandRunner,
    ) -> None:
        """The repository's setup (agent_app.repo_setup), from the cache when its files hash
        as a kept one did; its event reported either way. SetupFailed ends the task."""
        repo, repository = workspace.repo, running.data["repository"]
        try:
            plan = repo_setup.plan(
                repo, lambda tool: shutil.which(tool, path=self.policy.path) is not None
            )
        except RepoConfigError as exc:
            raise SetupFailed(f"setup failed: {exc}", permanent=True) from exc
        if plan is None:
            return
        running.phase = "setting up"
        self._guard(running)
        started, key = time.monotonic(), plan.key(repo)
        outputs = self.caches.restore(repository, key, repo)
        result = repo_setup.SetupResult(plan, "hit", 0.0)
        if outputs is None:
            try:
                result.steps = repo_setup.run_steps(
                    runner, repo, plan.commands, self.config.limits.setup_timeout, running.cancel
                )
            except SetupFailed as exc:
                result.cache, result.steps = "miss", exc.steps
                result.seconds = time.monotonic() - started
                report.progress(result.event())
                raise
            outputs = self._setup_outputs(workspace)
            kept = bool(outputs) and self.caches.save(repository, key, repo, outputs)
            result.cache = "miss" if kept else "off"
        self._exclude(workspace, outputs)
        result.seconds = time.monotonic() - started
        report.progress(result.event())
        logger.info(
            "Task %s: setup %s in %.1fs (cache %s)",
            running.id, " && ".join(plan.commands), result.seconds, result.cache,
        )  # fmt: skip

    def _setup_outputs(self, workspace: TaskWorkspace) -> list[str]:
        """What setup left in the checkout (untracked paths, folders whole); its changes to
        tracked files (a lockfile rewritten) are undone, so they never reach the change."""
        git = partial(self.workspaces.git, cwd=workspace.repo, git_dir=workspace.git_dir)
        status = git("status", "--porcelain=v1", "-z", "--ignored", "--untracked-files=normal")
        outputs, touched = [], []
        for entry in filter(None, status.split("\0")):
            code, path = entry[:2], entry[3:]
            (outputs if code in ("??", "!!") else touched).append(path.rstrip("/"))
        if touched:
            logger.info("Setup changed tracked files, restored: %s", ", ".join(touched))
            git("checkout", "--quiet", "HEAD", "--", *touched)
        return outputs

    @staticmethod
    def _exclude(workspace: TaskWorkspace, outputs: list[str]) -> None:
        """Keep setup's outputs out of every commit (the git directory's own exclude file,
        which commands cannot write)."""
        exclude = workspace.git_dir / "info" / "exclude"
        exclude.parent.mkdir(exist_ok=True)
        lines = "".join(f"/{glob_escape(path)}\n" for path in outputs)
        with exclude.open("a") as handle:
            handle.write("# left by the repository's setup\n" + lines)

    def _finish(
        self,
        running: RunningTask,
        report: Reports,
        publisher: Publisher,
        workspace: TaskWorkspace,
        base: str,
        usage: Usage,
        tests: repo_tests.TestRun | None,
        summary: str,
    ) -> None:
        task = running.data
        branch = publisher.access.grant.branch
        running.phase = "publishing"
        self._guard(running)
        commit = publisher.commit_all(workspace, _commit_message(task, summary))
        mirror = self.workspaces.mirror_path(task["repository"])
        pushed = publisher.push(mirror, workspace)
        if commit.sha is None and task.get("kind") != "follow_up" and not task.get("pr_number"):
            raise AgentError("Claude finished without changing anything that may be pushed")
        failing = tests is not None and not tests.ok
        grant = publisher.access.grant
        body = _pr_body(task, summary, tests, usage, commit.left_out, grant.may_change_workflows)
        if grant.requester and not publisher.protected(base):
            body += _review_note(grant.requester, base)
        pr = publisher.open_or_update_pr(base, title=task["title"], body=body, draft=failing)
        report.update(pr_number=pr.number, pr_url=pr.url)  # known at once, should the end fail
        report.final(
            "finish",
            outcome="completed",
            executor=self.executor.name,
            branch=branch,
            pr_number=pr.number,
            pr_url=pr.url,
            summary=summary,
            pushed_commit=pushed,
            tests=tests.as_dict() | {"output": ""} if tests else None,
        )
        logger.info(
            "Task %s: PR %s (%s), tests %s, $%.4f",
            task["id"],
            pr.url,
            "new" if pr.created else "updated",
            "none" if tests is None else tests.status,
            usage.cost_usd,
        )

    def _checkpoint(
        self,
        running: RunningTask,
        report: Reports,
        publisher: Publisher | None,
        workspace: TaskWorkspace | None,
        usage: Usage,
        why: Exception,
    ) -> None:
        """Keep the work: commit and push what exists, then tell the coordinator. After
        GitHub's refusal nothing is pushed (it would be refused again) and there is no retry;
        once the attempt is over (the coordinator says so at the push), nothing is reported."""
        task = running.data
        if isinstance(why, AttemptOver) or running.over.is_set():
            running.over.set()
            logger.warning("Task %s: attempt over (%s): stopped, nothing pushed", task["id"], why)
            return
        pushed = None
        refused = isinstance(why, GitHubRefused)
        nothing_done = isinstance(why, SetupFailed)  # the model never started
        if (
            publisher
            and workspace is not None
            and workspace.repo.exists()
            and not (refused or nothing_done)
        ):
            try:
                publisher.commit_all(workspace, f"WIP: {task['title']}\n\nCheckpoint: {why}")
                pushed = publisher.push(self.workspaces.mirror_path(task["repository"]), workspace)
            except AttemptOver as exc:
                running.over.set()
                logger.warning("Task %s: attempt over: checkpoint not pushed: %s", task["id"], exc)
                return
            except AgentError as exc:
                logger.error("Task %s: checkpoint could not be pushed: %s", task["id"], exc)
        note = f"{why}; work pushed to {pushed}" if pushed else str(why)
        logger.warning("Task %s: stopped: %s", task["id"], note)
        try:
            if isinstance(why, StopRequested) or running.handback.is_set():
                report.final("release", f"agent stopping: {note}")
            elif isinstance(why, Cancelled):
                return  # the coordinator cancelled it: nothing to report back
            else:
                report.final(
                    "finish",
                    outcome="failed",
                    error=note,
                    pushed_commit=pushed,
                    limit=getattr(why, "limit", None),
                    permanent=refused or getattr(why, "permanent", False),
                )
        except AgentError as exc:
            # The lease will expire and the coordinator will queue the task again.
            logger.error("Task %s: could not report the stop: %s", task["id"], exc)

    # Helpers -----------------------------------------------------------------------------

    def command_runner(self, task: dict, workspace: TaskWorkspace) -> CommandRunner:
        """How ``task``'s commands run: they see the checkout (writable), its git directory and
        the repository's mirror (read-only: `git log` and `git diff` work, nothing can be
        written there), and reach the network through the repository's egress proxy."""
        readable = (workspace.git_dir, self.workspaces.mirror_path(task["repository"]))
        tools, tool_env = self.caches.tools(task["repository"])
        # What setup installs comes first: the checkout's virtualenv and node tools.
        local_bins = f"{workspace.repo}/.venv/bin:{workspace.repo}/node_modules/.bin"
        policy = replace(
            self.policy.reading(*readable),
            writable=(tools,),
            env=tuple(tool_env.items()),
            path=f"{local_bins}:{self.policy.path}",
        )
        own_proxy = self.config.egress_repository_sockets.get(task["repository"])
        if own_proxy:  # a proxy that also allows this repository's own hosts
            policy = replace(policy, egress_socket=own_proxy)
        return CommandRunner(policy, self.config.secrets, self.config.limits.output_chars)

    def _guard(self, running: RunningTask) -> None:
        if running.over.is_set():
            raise AttemptOver(409, f"task {running.id}: the coordinator ended this attempt")
        if running.cancel.is_set():
            raise Cancelled("cancelled")
        if running.handback.is_set():
            raise StopRequested("the agent is stopping")


class Reports:
    """What one run tells the coordinator about its task, each report naming the run's attempt.

    Progress is best effort (an unreachable coordinator does not stop the work); the final
    report rides out a coordinator restart. A report refused because the attempt is over
    raises AttemptOver: the run stops there.
    """

    def __init__(self, coordinator: CoordinatorClient, running: RunningTask) -> None:
        self.coordinator, self.running = coordinator, running

    def state(self, state: str, **fields) -> None:
        self.update(state=state, **fields)

    def update(self, **fields) -> None:
        self._best_effort(self.coordinator.update, **fields)

    def progress(self, event: dict) -> None:
        self._best_effort(self.coordinator.events, [event])

    def github_token(self, ref: str) -> dict:
        return self.final("github_token", ref)

    def final(self, call: str, *args, attempts: int = 6, **kwargs):
        """``call`` (finish, release, github_token), retried with backoff while the
        coordinator cannot answer."""
        method = getattr(self.coordinator, call)
        for attempt in range(attempts):
            try:
                return method(self.running.id, self.running.attempt, *args, **kwargs)
            except CoordinatorUnavailable:
                if attempt == attempts - 1:
                    raise
                time.sleep(min(2**attempt, 30))
        return None

    def _best_effort(self, method, *args, **kwargs) -> None:
        try:
            method(self.running.id, self.running.attempt, *args, **kwargs)
        except CoordinatorUnavailable as exc:
            logger.warning("Coordinator unreachable, continuing: %s", exc)


def command_rlimits(limits) -> tuple[tuple[str, int], ...]:
    """The per-command resource limits of an agent's configuration, as prlimit names them."""
    return (
        ("cpu", limits.command_cpu_seconds),
        ("nproc", limits.command_processes),
        ("fsize", limits.command_file_mb * 2**20),
        ("data", limits.command_memory_mb * 2**20),
    )


def _commit_message(task: dict, summary: str) -> str:
    subject = (
        task["title"]
        if task.get("kind") != "follow_up"
        else f"Address review feedback (#{task['issue_number']})"
    )
    return f"{subject[:72]}\n\n{summary.strip()[:3000]}\n\nIssue #{task['issue_number']}\n"


def _pr_body(
    task: dict, summary: str, tests, usage: Usage, left_out: list[str], workflows_pushable: bool
) -> str:
    if tests is None:
        test_line = "No test suite was found in the repository."
    elif tests.ok:
        test_line = f"✅ {tests.summary()}."
    elif tests.environment_error:
        test_line = (
            f"⚠️ {tests.summary()}. The agent host lacks what the test suite needs, so this "
            "change is untested; this pull request stays a draft until the tests run and pass."
        )
    else:
        test_line = f"❌ {tests.summary()} (this pull request is a draft until they pass)."
    if left_out:
        test_line += "\n\n**Left out of this pull request** (the changes stay on the agent " + (
            "host): " + ", ".join(f"`{path}`" for path in left_out) + "."
        )
        if any(path.startswith(".github/workflows/") for path in left_out):
            test_line += _workflow_note(workflows_pushable)
    return (
        f"Closes #{task['issue_number']}\n\n{summary.strip()}\n\n**Tests:** {test_line}\n\n"
        f"<sub>Claude Code Cluster · {usage.turns} turns · "
        f"{usage.input_tokens + usage.cache_creation_tokens + usage.cache_read_tokens} input / "
        f"{usage.output_tokens} output tokens · ${usage.cost_usd:.4f}</sub>"
    )


def _review_note(requester: str, base: str) -> str:
    """Said where GitHub would let the person who asked for the change approve it alone."""
    return (
        f"\n\n**Review:** @{requester} asked for this change, and `{base}` has no branch "
        f"protection here: a maintainer other than @{requester} should review and approve it "
        "before it is merged."
    )


def _workflow_note(may_change_workflows: bool) -> str:
    """Why workflow files were left out."""
    if not may_change_workflows:
        return (
            " Workflow files run with the repository's secrets: the cluster's GitHub tokens never "
            "carry the `workflows` permission, so a maintainer applies such changes."
        )
    return (
        " Workflow files are pushed only where the repository's `.claude-cluster.toml` (on its "
        "default branch) sets `allow_workflow_changes = true`."
    )
