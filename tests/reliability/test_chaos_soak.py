"""The chaos soak (see :mod:`reliability.soak` and ``docs/reliability.md``).

Bounded for CI (about 15 s of chaos); set ``LMSORCH_SOAK_SECONDS`` for a longer
run, ``LMSORCH_SOAK_SEED`` to replay one, and ``LMSORCH_SOAK_REPORT`` to keep
the figures' JSON at a path of your choice (it is always written to the test's
tmp dir and printed).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from fakes.fixtures import install_fake_lms

from .chaos import FAULT_KINDS
from .soak import run_soak

CI_SECONDS = 9.0


# httpx leaves a request body's async generator to the GC when the server drops the
# connection mid-send, and trio warns (encode/httpx#3686, fix pending in #3777).
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <async_generator object ByteStream\.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
async def test_chaos_soak_keeps_every_invariant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_lms(monkeypatch, tmp_path)
    seconds = float(os.environ.get("LMSORCH_SOAK_SECONDS", CI_SECONDS))
    seed = int(os.environ.get("LMSORCH_SOAK_SEED", random.randrange(2**32)))
    rounds = max(3, round(seconds / 3))
    figures = await run_soak(tmp_path, seconds=seconds, rounds=rounds, clients=16, seed=seed)

    report = json.dumps(figures.json(), indent=2)
    (tmp_path / "soak-figures.json").write_text(report)
    if target := os.environ.get("LMSORCH_SOAK_REPORT"):
        Path(target).write_text(report)
    with capsys.disabled():
        print(f"\nchaos soak figures:\n{report}")

    assert figures.violations == [], report
    assert figures.leaks == {
        "tasks": 0,
        "fds": 0,
        "child_processes": [],
        "lms_processes_alive": [],
        "traced_growth_bytes": figures.leaks["traced_growth_bytes"],
    }, report
    assert figures.leaks["traced_growth_bytes"] < 3 * 1024 * 1024, report
    assert figures.requests_answered == figures.requests_issued > 0
    # Every fault kind was injected at least once (seeds are random; CI runs long enough).
    assert set(figures.faults_injected) == set(FAULT_KINDS), report
    assert max(figures.max_loads_in_flight_per_model.values()) == 1, report
