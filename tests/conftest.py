"""Shared test configuration: Hypothesis profiles, quiet stderr-only logs, the fake ``lms``."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from orchestrator.logs import configure_logging
from tests.fakes.fixtures import install_fake_lms

# "ci" runs hundreds of examples; "dev" is quicker for local iteration.
settings.register_profile(
    "ci",
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests must not write logs to stdout or the terminal; keep them in memory.
configure_logging("warning", stream=io.StringIO(), json=True)


@pytest.fixture
def lms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    return install_fake_lms(monkeypatch, tmp_path)
