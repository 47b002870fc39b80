"""Task workspaces: a bare mirror per repository and a cheap checkout per task.

Layout under the workspace root (the seed's):
    mirrors/<owner>__<repo>.git      one `git clone --mirror`, then `git fetch` per task
    tasks/task-<id>/repo/            the checkout the model works in (its .git is a file)
    tasks/task-<id>/git/             its git directory (objects shared with the mirror): the
                                     sandbox may read it, only the agent writes it
    tasks/task-<id>/metadata.json    what the task is and where it stands
    tasks/task-<id>/transcript.jsonl every model request, tool call and result
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_app.exceptions import PublishError, WorkspaceError
from agent_app.gitcmd import Git, GitError
from agent_app.github_retry import patiently

logger = logging.getLogger(__name__)


@dataclass
class TaskWorkspace:
    """One task's folder."""

    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def git_dir(self) -> Path:
        return self.root / "git"

    @property
    def transcript(self) -> Path:
        return self.root / "transcript.jsonl"

    @property
    def metadata_file(self) -> Path:
        return self.root / "metadata.json"

    def write_metadata(self, **fields: Any) -> None:
        """Merge ``fields`` into metadata.json (written atomically)."""
        current = self.read_metadata()
        current.update(fields)
        tmp = self.metadata_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
        tmp.replace(self.metadata_file)

    def read_metadata(self) -> dict[str, Any]:
        try:
            return json.loads(self.metadata_file.read_text())
        except (OSError, ValueError):
            return {}


class Workspaces:
    """Prepares, lists and cleans task workspaces under ``root``."""

    def __init__(self, root: str | Path, git: Git) -> None:
        self.root = Path(root)
        self.git = git
        (self.root / "mirrors").mkdir(parents=True, exist_ok=True)
        (self.root / "tasks").mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self.root / "mirrors", self.root / "tasks"):
            folder.chmod(0o750)

    def mirror_path(self, repository: str) -> Path:
        return self.root / "mirrors" / (repository.replace("/", "__") + ".git")

    @contextlib.contextmanager
    def _locked(self, path: Path):
        # A file lock, so two task threads (or two processes) never fetch one mirror at once.
        with open(path.with_suffix(".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def update_mirror(self, repository: str, clone_url: str, token: str) -> Path:
        """Clone the mirror the first time, fetch into it afterwards (with the task's token).
        GitHub's refusal raises GitHubRefused; an outage is waited out a while."""
        mirror = self.mirror_path(repository)

        def update() -> None:
            if (mirror / "HEAD").exists():
                self.git("remote", "set-url", "origin", clone_url, cwd=mirror)
                self.git("fetch", "--prune", "--quiet", "origin", cwd=mirror, token=token)
            else:
                shutil.rmtree(mirror, ignore_errors=True)  # a half-made clone
                self.git("clone", "--mirror", "--quiet", clone_url, str(mirror), token=token)

        with self._locked(mirror):
            try:
                patiently(f"fetching {repository}", update)
            except PublishError as exc:  # gave up waiting
                raise WorkspaceError(f"cannot update the mirror of {repository}: {exc}") from exc
        return mirror

    def prepare(
        self,
        task_id: int,
        repository: str,
        clone_url: str,
        branch: str,
        base: str | None,
        token: str,
    ) -> TaskWorkspace:
        """A fresh checkout of ``branch`` (existing on the remote) or a new branch from ``base``."""
        mirror = self.update_mirror(repository, clone_url, token)
        workspace = TaskWorkspace(self.root / "tasks" / f"task-{task_id}")
        for previous in (workspace.repo, workspace.git_dir):  # an earlier attempt: start clean
            shutil.rmtree(previous, ignore_errors=True)
        workspace.root.mkdir(parents=True, exist_ok=True)
        repo, git_dir = workspace.repo, workspace.git_dir
        try:
            # --shared borrows the mirror's objects: no copy, no download. The git directory
            # stays outside the checkout, where commands in the sandbox cannot write.
            self.git("clone", "--quiet", "--shared", "--no-checkout",
                     f"--separate-git-dir={git_dir}", str(mirror), str(repo))  # fmt: skip
            self.git("remote", "set-url", "origin", clone_url, cwd=repo, git_dir=git_dir)
            if self._has_ref(workspace, f"refs/remotes/origin/{branch}"):
                # A follow-up or a retry: continue on the branch and its pushed work.
                self.git("checkout", "--quiet", "-B", branch, f"origin/{branch}",
                         cwd=repo, git_dir=git_dir)  # fmt: skip
            else:
                start = f"origin/{base}" if base else "origin/HEAD"
                self.git("checkout", "--quiet", "-b", branch, start, cwd=repo, git_dir=git_dir)
        except GitError as exc:
            raise WorkspaceError(f"cannot check out {branch} of {repository}: {exc}") from exc
        workspace.write_metadata(
            task_id=task_id, repository=repository, branch=branch, prepared_at=time.time()
        )
        return workspace

    def _has_ref(self, workspace: TaskWorkspace, ref: str) -> bool:
        try:
            self.git("rev-parse", "--verify", "--quiet", ref, cwd=workspace.repo,
                     git_dir=workspace.git_dir)  # fmt: skip
        except GitError:
            return False
        return True

    def cleanup(self, retention_days: float, keep: set[int] = frozenset()) -> list[int]:
        """Delete task folders finished more than ``retention_days`` ago; returns their ids."""
        cutoff = time.time() - retention_days * 86400
        removed = []
        for folder in sorted((self.root / "tasks").glob("task-*")):
            task_id = int(folder.name.removeprefix("task-"))
            finished = TaskWorkspace(folder).read_metadata().get("finished_at")
            if task_id in keep or finished is None or finished > cutoff:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(task_id)
        if removed:
            logger.info("Removed %s old task workspace(s): %s", len(removed), removed)
        return removed

    def disk_usage(self) -> dict[str, int]:
        """Bytes used by mirrors and by task folders."""
        return {
            part: sum(f.stat().st_size for f in (self.root / part).rglob("*") if f.is_file())
            for part in ("mirrors", "tasks")
        }
