"""What every benchmark's ``main`` does first."""

from __future__ import annotations

import signal


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, ``kill``) into SystemExit, so the servers a benchmark started
    are stopped by its ``with`` blocks instead of being left running."""
    signal.signal(signal.SIGTERM, _exit)
