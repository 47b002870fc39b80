"""The benchmarks run from the project alone, as in a user's clone (no ../shared beside it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_no_benchmark_reads_files_from_outside_the_project():
    for module in BENCH.glob("*.py"):
        assert "shared/" not in module.read_text(), f"{module.name} reads ../shared"


@pytest.mark.slow
def test_the_webhook_benchmark_runs_on_the_simulators_payload():
    argv = ["--seconds", "1", "--warmup", "0.5", "--baseline-seconds", "1", "--events", "5",
            "--rate", "20", "--clients", "2"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "bench.webhook_ingest", *argv],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| tasks seen queued                | 5" in done.stdout, done.stdout


def test_a_missing_payload_file_is_a_clear_error():
    argv = ["--fixture", "/nonexistent.json"]
    done = subprocess.run([sys.executable, "-m", "bench.webhook_ingest", *argv],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode != 0
    assert "--fixture /nonexistent.json: no such file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(
    not (shutil.which("bwrap") and shutil.which("socat")), reason="bubblewrap or socat missing"
)
def test_the_sandbox_benchmark_runs():
    done = subprocess.run([sys.executable, "-m", "bench.sandbox_overhead", "--runs", "3"],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| bwrap view + rlimits + egress relay + disk guard (what tasks use) |" in done.stdout


def test_the_token_minting_benchmark_runs():
    done = subprocess.run([sys.executable, "-m", "bench.token_minting", "--claims", "3"],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| App mode: a token minted for the task's repository |" in done.stdout, done.stdout


def test_the_context_benchmark_runs_and_management_bills_less():
    done = subprocess.run([sys.executable, "-m", "bench.context_management", "--turns", "40"],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| ")]
    cost = {(row[1].strip(), row[2].strip()): float(row[9]) for row in rows[1:]}
    assert len(cost) == 6, done.stdout
    unmanaged = cost[("none (recovery from refusals only)", "off")]
    assert cost[("API context editing (default)", "on")] < unmanaged / 2, done.stdout


@pytest.mark.slow
def test_the_setup_benchmark_runs_and_the_next_task_runs_no_step():
    done = subprocess.run([sys.executable, "-m", "bench.setup_cache", "--requirements", "idna"],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| next task (snapshot)            | 0 " in done.stdout, done.stdout
