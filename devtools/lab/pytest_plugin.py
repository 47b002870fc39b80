"""pytest fixtures for lab hosts; register with ``pytest_plugins = ["lab.pytest_plugin"]``.

A test module sets ``LAB_SPEC`` (a host count or a :class:`lab.spec.LabSpec`, default 2) and
asks for ``lab_session``; the hosts come up once for the module and are always destroyed after
it, also when a test fails or the run is interrupted. Without root or nspawn the tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.testing import LabSession, running_lab, skip_reason

DEFAULT_LAB_SPEC = 2


@pytest.fixture(scope="module")
def lab_session(request: pytest.FixtureRequest) -> Iterator[LabSession]:
    """Lab hosts for the requesting test module (``LAB_SPEC`` in the module, default 2)."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    spec = getattr(request.module, "LAB_SPEC", DEFAULT_LAB_SPEC)
    with running_lab(spec) as session:
        yield session
