"""Reading a checkout's files on the agent's side of the sandbox.

A repository (or a command run in it) can make ``CLAUDE.md`` a link to the agent's own
configuration, or a FIFO that blocks whoever opens it. What the agent reads from a checkout is
therefore only a regular file inside it, reached without following any link; anything else is
ignored with a logged reason.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)


def read_text(checkout: Path, relative: str, limit: int = 1_000_000) -> str | None:
    """The first ``limit`` bytes of ``checkout/relative`` as text, or None when it is missing,
    a link (at any step), not a regular file, or unreadable."""
    parts = PurePosixPath(relative).parts
    if not parts or any(part in ("..", "/") for part in parts):
        raise ValueError(f"{relative!r} is not a path inside the checkout")
    opened: list[int] = []
    try:
        opened.append(os.open(checkout, os.O_RDONLY | os.O_DIRECTORY))
        for part in parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
            opened.append(os.open(part, flags, dir_fd=opened[-1]))
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # a FIFO must not block us
        opened.append(os.open(parts[-1], flags, dir_fd=opened[-1]))
        if not stat.S_ISREG(os.fstat(opened[-1]).st_mode):
            logger.warning("Checkout file %s ignored: not a regular file", relative)
            return None
        with os.fdopen(opened.pop(), "rb") as handle:
            return handle.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        # ELOOP / ENOTDIR: a link where a file or folder was expected.
        logger.warning("Checkout file %s ignored: %s", relative, exc.strerror)
        return None
    finally:
        for fd in opened:
            os.close(fd)
