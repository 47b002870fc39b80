"""Benchmarks: scripts that start what they measure, print figures, and leave nothing behind.

Run one as ``python -m bench.<name> --help``. Results are recorded in docs/BENCHMARKS.md.
"""
