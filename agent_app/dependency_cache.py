"""What a repository's setup installs, kept on the agent host for its next task.

Per repository, under ``<workspace_root>/caches/<owner>__<name>/``:

    tools/               the package tools' own caches (pip, uv, npm, Go modules and builds,
                         cargo, Maven, Gradle), writable to that repository's tasks alone
    setup-<key>.tar      what a successful setup left in a checkout (.venv, node_modules...),
    setup-<key>.json     and where that checkout was; <key> hashes the setup's commands and
                         the files they read (agent_app.repo_setup.SetupPlan.key)

A task whose key is kept gets the snapshot unpacked into its checkout, the old checkout's
path replaced by its own in the unpacked files (a virtualenv's scripts and editable installs
name their folder), and runs no setup step. A repository's caches are its own: its setup runs
its own code anyway, so what one task leaves can only affect the same repository's tasks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from agent_app.sandbox import disk_use

logger = logging.getLogger(__name__)

# Each tool's cache, under tools/: the variable that points the tool there, and its folder.
TOOL_CACHES = {
    "PIP_CACHE_DIR": "pip",
    "UV_CACHE_DIR": "uv",
    "npm_config_cache": "npm",
    "GOPATH": "go",
    "GOMODCACHE": "go/pkg/mod",
    "GOCACHE": "go/build",
    "CARGO_HOME": "cargo",
    "GRADLE_USER_HOME": "gradle",
}
MAVEN_REPOSITORY = "m2"


class DependencyCache:
    """The per-repository caches under ``root``; snapshots above ``max_bytes`` are not kept."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o750)

    def folder(self, repository: str) -> Path:
        return self.root / repository.replace("/", "__")

    def tools(self, repository: str) -> tuple[Path, dict[str, str]]:
        """The repository's tool cache folder (created) and the variables that use it."""
        tools = self.folder(repository) / "tools"
        tools.mkdir(parents=True, exist_ok=True)
        env = {name: str(tools / sub) for name, sub in TOOL_CACHES.items()}
        env["MAVEN_OPTS"] = f"-Dmaven.repo.local={tools / MAVEN_REPOSITORY}"
        return tools, env

    def restore(self, repository: str, key: str, repo: Path) -> list[str] | None:
        """Unpack the snapshot of ``key`` into ``repo``; the paths it holds, or None when
        there is none (or it cannot be used: it is then dropped)."""
        archive, meta = self._files(repository, key)
        try:
            saved = json.loads(meta.read_text())
            subprocess.run(
                ["tar", "-C", str(repo), "-xf", str(archive)],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
        except FileNotFoundError:
            return None
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            logger.warning("Setup snapshot %s of %s unusable, dropped: %s", key, repository, exc)
            archive.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None
        os.utime(meta)  # recently used: kept longest
        relocate(repo, saved["paths"], saved["checkout"], str(repo))
        return saved["paths"]

    def save(self, repository: str, key: str, repo: Path, paths: list[str]) -> bool:
        """Keep ``paths`` (relative to ``repo``) as the snapshot of ``key``; False when they
        are too large to keep."""
        archive, meta = self._files(repository, key)
        partial = archive.with_suffix(f".{os.getpid()}.partial")
        try:
            size = disk_use([repo / p for p in paths])
            if size > self.max_bytes:
                logger.info("Setup output of %s (%s MiB) too big to keep", repository, size >> 20)
                return False
            subprocess.run(
                ["tar", "-C", str(repo), "-cf", str(partial), "--", *paths],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            partial.replace(archive)  # a reader sees the whole archive or none
            meta.write_text(json.dumps({"checkout": str(repo), "paths": paths, "bytes": size}))
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            # Only the next task's time is lost: this one goes on.
            logger.warning("Setup output of %s not kept: %s", repository, exc)
            partial.unlink(missing_ok=True)
            return False
        return True

    def prune(self, retention_days: float) -> list[Path]:
        """Drop snapshots unused for ``retention_days``; returns what was removed."""
        cutoff = time.time() - retention_days * 86400
        removed = []
        for meta in self.root.glob("*/setup-*.json"):
            if meta.stat().st_mtime < cutoff:
                meta.with_suffix(".tar").unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                removed.append(meta)
        return removed

    def clear(self, repository: str) -> None:
        """Forget everything kept for ``repository``."""
        shutil.rmtree(self.folder(repository), ignore_errors=True)

    def _files(self, repository: str, key: str) -> tuple[Path, Path]:
        folder = self.folder(repository)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"setup-{key}.tar", folder / f"setup-{key}.json"


def relocate(repo: Path, paths: list[str], old: str, new: str) -> int:
    """Replace ``old`` (a checkout's path) by ``new`` in the regular files and symbolic links
    under ``paths``; links are rewritten, never followed. Returns the files changed."""
    if old == new:
        return 0
    found = subprocess.run(
        ["grep", "-rlIFZ", "--", old, *paths],
        cwd=repo,
        capture_output=True,
        timeout=900,
        check=False,  # 1: nothing names the old path
    )
    changed = 0
    for name in filter(None, found.stdout.split(b"\0")):
        path = repo / os.fsdecode(name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # a link or gone: never written through
        with os.fdopen(fd, "r+b") as handle:
            data = handle.read().replace(old.encode(), new.encode())
            handle.seek(0)
            handle.write(data)
            handle.truncate()
        changed += 1
    for top in paths:
        for folder, dirs, files in os.walk(repo / top):
            for name in dirs + files:
                link = Path(folder, name)
                if link.is_symlink() and (target := os.readlink(link)).startswith(old):
                    link.unlink()
                    link.symlink_to(new + target[len(old) :])
                    changed += 1
    return changed
