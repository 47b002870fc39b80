"""The bare git repositories behind the simulated GitHub, driven through the git CLI."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from simulators.github.models import Repo

logger = logging.getLogger(__name__)

ZERO_SHA = "0" * 40
# Appends "<old> <new> <ref>" lines to the file the smart-HTTP view names for this one push, so
# the simulator learns exactly what each push changed, even when pushes run concurrently.
PUSH_LOG_ENV = "GHSIM_PUSH_LOG"
POST_RECEIVE_HOOK = f"""#!/bin/sh
if [ -n "${PUSH_LOG_ENV}" ]; then cat >> "${PUSH_LOG_ENV}"; fi
"""
# Set by the smart-HTTP view when the pusher may not touch .github/workflows/: the refusal GitHub
# prints, with "{{path}}" standing for the first workflow file the push adds, changes or deletes.
WORKFLOW_REFUSAL_ENV = "GHSIM_WORKFLOW_REFUSAL"
# Looks at the commits the push brings that no ref has yet (so a new branch is judged by its own
# commits only), and refuses every ref update if one of them touches a workflow.
PRE_RECEIVE_HOOK = f"""#!/bin/sh
[ -n "${WORKFLOW_REFUSAL_ENV}" ] || exit 0
changed="git diff-tree -r -m --root --no-commit-id --name-only"
refused=""
while read -r old new ref; do
  [ "$new" = "{ZERO_SHA}" ] && continue
  for commit in $(git rev-list "$new" --not --all); do
    path=$($changed "$commit" -- .github/workflows/ | head -n 1)
    if [ -n "$path" ] && [ -z "$refused" ]; then refused="$path"; fi
  done
done
[ -z "$refused" ] && exit 0
template="${WORKFLOW_REFUSAL_ENV}"
echo "${{template%%"{{path}}"*}}$refused${{template#*"{{path}}"}}" >&2
exit 1
"""


class GitError(RuntimeError):
    """A git command failed."""


class GitStorage:
    """Bare repositories under ``root/<owner>/<name>.git``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, repo: Repo) -> Path:
        """Where ``repo``'s bare repository lives."""
        return self.root / repo.owner / f"{repo.name}.git"

    def _git(self, repo: Repo | Path, *args: str, env: dict[str, str] | None = None) -> str:
        """Run git in ``repo`` and return its stdout."""
        git_dir = repo if isinstance(repo, Path) else self.path(repo)
        done = subprocess.run(
            ["git", f"--git-dir={git_dir}", *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if done.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def create(
        self,
        repo: Repo,
        *,
        files: dict[str, str] | None = None,
        import_dir: Path | None = None,
        author: tuple[str, str] = ("Simulator", "simulator@localhost"),
    ) -> None:
        """Create ``repo``'s bare repository, with a first commit of ``files``/``import_dir``."""
        path = self.path(repo)
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--bare", "--quiet", f"--initial-branch={repo.default_branch}", path],
            check=True,
        )
        # http-backend only serves pushes to authenticated users; we authenticate every push.
        self._git(repo, "config", "http.receivepack", "true")
        for name, script in (
            ("pre-receive", PRE_RECEIVE_HOOK),
            ("post-receive", POST_RECEIVE_HOOK),
        ):
            hook = path / "hooks" / name
            hook.write_text(script)
            hook.chmod(0o755)
        if files or import_dir:
            self._first_commit(repo, files or {}, import_dir, author)

    def _first_commit(
        self, repo: Repo, files: dict[str, str], import_dir: Path | None, author: tuple[str, str]
    ) -> None:
        """Commit the initial content on the default branch, without a clone."""
        with tempfile.TemporaryDirectory(prefix="ghsim-import-") as tmp:
            work = Path(tmp) / "work"
            if import_dir:
                shutil.copytree(import_dir, work, ignore=shutil.ignore_patterns(".git"))
            work.mkdir(exist_ok=True)
            for rel, content in files.items():
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
            name, email = author
            env = {
                "GIT_INDEX_FILE": str(Path(tmp) / "index"),
                "GIT_WORK_TREE": str(work),
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email,
            }
            self._git(repo, "add", "--all", ".", env=env)
            tree = self._git(repo, "write-tree", env=env).strip()
            commit = self._git(repo, "commit-tree", tree, "-m", "Initial commit", env=env).strip()
            self._git(repo, "update-ref", f"refs/heads/{repo.default_branch}", commit)
        logger.info("Repo %s: initial commit %s", repo.full_name, commit[:12])

    def merge(
        self, repo: Repo, base_ref: str, head: str, message: str, *, author: str, squash: bool
    ) -> str | None:
        """Merge ``head`` into branch ``base_ref`` without a work tree; the new sha, or None
        on conflicts. ``squash`` makes a single-parent commit instead of a merge commit."""
        base = self.branch_sha(repo, base_ref)
        if base is None:
            raise GitError(f"no branch {base_ref}")
        done = subprocess.run(
            ["git", f"--git-dir={self.path(repo)}", "merge-tree", "--write-tree", base, head],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 1:
            return None
        if done.returncode != 0:
            raise GitError(f"git merge-tree: {done.stderr.strip()}")
        tree = done.stdout.split()[0]
        parents = ["-p", base] if squash else ["-p", base, "-p", head]
        email = f"{author}@users.noreply.localhost"
        env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email}
        env |= {"GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email}
        commit = self._git(repo, "commit-tree", tree, *parents, "-m", message, env=env).strip()
        # Compare-and-swap: a push that moved the base meanwhile makes this fail, not vanish.
        self._git(repo, "update-ref", f"refs/heads/{base_ref}", commit, base)
        return commit

    def delete(self, repo: Repo) -> None:
        """Remove ``repo``'s bare repository."""
        shutil.rmtree(self.path(repo), ignore_errors=True)

    def refs(self, repo: Repo) -> dict[str, str]:
        """Every ref name → sha."""
        out = self._git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
        pairs = (line.split(" ", 1) for line in out.splitlines() if line)
        return {name: sha for name, sha in pairs}

    def branch_sha(self, repo: Repo, branch: str) -> str | None:
        """The commit ``branch`` points at, or None when there is no such branch."""
        return self.refs(repo).get(f"refs/heads/{branch}")

    def commits(self, repo: Repo, base: str, head: str) -> list[dict]:
        """Commits on ``head`` not on ``base``, oldest first: sha, author, date, message."""
        fmt = "%H%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%P%x1f%B%x1e"
        out = self._git(repo, "log", "--reverse", f"--format={fmt}", f"{base}..{head}")
        keys = ["sha", "author_name", "author_email", "author_date"]
        keys += ["committer_name", "committer_email", "committer_date", "parents", "message"]
        found = []
        for record in out.split("\x1e"):
            if record.strip():
                commit = dict(zip(keys, record.strip("\n").split("\x1f"), strict=True))
                commit["message"] = commit["message"].strip()
                found.append(commit)
        return found

    def files(self, repo: Repo, base: str, head: str) -> list[dict]:
        """Files changed from the merge base of ``base`` to ``head``, with line counts."""
        out = self._git(repo, "diff", "--numstat", "-z", "--no-renames", f"{base}...{head}")
        status = self._git(repo, "diff", "--name-status", "-z", "--no-renames", f"{base}...{head}")
        codes = status.split("\0")
        kinds = dict(zip(codes[1::2], codes[0::2], strict=False))
        found = []
        for entry in out.split("\0"):
            if not entry:
                continue
            added, deleted, path = entry.split("\t", 2)
            additions = int(added) if added.isdigit() else 0
            deletions = int(deleted) if deleted.isdigit() else 0
            found.append(
                {
                    "filename": path,
                    "status": {"A": "added", "D": "removed"}.get(kinds.get(path, "M"), "modified"),
                    "additions": additions,
                    "deletions": deletions,
                    "changes": additions + deletions,
                }
            )
        return found

    def diff(self, repo: Repo, base: str, head: str, path: str) -> str:
        """The unified diff of ``path`` from the merge base of ``base`` to ``head``."""
        return self._git(repo, "diff", f"{base}...{head}", "--", path)

    def diff_stats(self, repo: Repo, base: str, head: str) -> tuple[int, int, int, int]:
        """(commits, additions, deletions, changed_files) of ``head`` against ``base``."""
        try:
            files = self.files(repo, base, head)
            commits = int(self._git(repo, "rev-list", "--count", f"{base}..{head}").strip())
        except GitError:
            logger.debug("Repo %s: no diff stats for %s...%s", repo.full_name, base, head)
            return 0, 0, 0, 0
        additions = sum(f["additions"] for f in files)
        deletions = sum(f["deletions"] for f in files)
        return commits, additions, deletions, len(files)
