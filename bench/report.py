"""Figures and tables: percentiles and the Markdown tables every benchmark prints."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds with a sensible number of digits."""
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable as plain text too) under a ``### title`` line."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"### {title}", "", line(cells[0]), rule, *map(line, cells[1:]), ""])


def machine() -> str:
    """One line naming when and where the figures were taken."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores ({cpu}), "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
