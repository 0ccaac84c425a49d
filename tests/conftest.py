"""Shared test configuration: Hypothesis profiles and quiet, stderr-only logs."""

from __future__ import annotations

import io
import os

from hypothesis import HealthCheck, settings

from orchestrator.logs import configure_logging

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
