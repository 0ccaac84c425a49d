"""The chaos soak (see :mod:`reliability.soak` and ``docs/reliability.md``).

Bounded for CI (45 s of chaos, about a minute in all); set ``SOAK_SECONDS`` for a longer
run, ``SOAK_SEED`` to replay one, and ``SOAK_REPORT`` to keep
the figures' JSON at a path of your choice (it is always written to the test's
tmp dir and printed).
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from tests.fakes import Faults, Simulator
from tests.fakes.fixtures import install_fake_lms
from tests.fakes.sim_state import SimState

from .chaos import FAULT_KINDS, NOT_INJECTED, SIM_FAULTS
from .soak import MEMORY_TOLERANCE_BYTES, run_soak

CI_SECONDS = 45.0
ERRORS_DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_fault_the_simulator_offers_is_injected_or_excluded_with_a_reason() -> None:
    switches = {name for name in vars(Faults()) if not name.startswith("_")}
    methods = {
        "Simulator.evict": Simulator.evict,
        "SimState.advance": SimState.advance,
        "Simulator.stop": Simulator.stop,
        "Simulator.preload": Simulator.preload,
        "Simulator.restart": Simulator.restart,
    }

    assert switches | set(methods) == set(SIM_FAULTS) | set(NOT_INJECTED), (
        "a new simulator fault: inject it in reliability.chaos (SIM_FAULTS) or say why not "
        "(NOT_INJECTED)"
    )
    assert not set(SIM_FAULTS) & set(NOT_INJECTED)
    assert sorted(SIM_FAULTS.values()) == sorted(FAULT_KINDS)
    assert all(NOT_INJECTED.values())


async def test_chaos_soak_keeps_every_invariant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_lms(monkeypatch, tmp_path)
    seconds = float(os.environ.get("SOAK_SECONDS", CI_SECONDS))
    seed = int(os.environ.get("SOAK_SEED", random.randrange(2**32)))
    rounds = max(3, round(seconds / 3))
    figures = await run_soak(tmp_path, seconds=seconds, rounds=rounds, clients=16, seed=seed)

    report = json.dumps(figures.json(), indent=2)
    (tmp_path / "soak-figures.json").write_text(report)
    if target := os.environ.get("SOAK_REPORT"):
        Path(target).write_text(report)
    with capsys.disabled():
        print(f"\nchaos soak figures:\n{report}")

    assert figures.violations == [], report
    leaks = figures.leaks
    assert (leaks["tasks"], leaks["fds"]) == (0, 0), report
    assert (leaks["child_processes"], leaks["lms_processes_alive"]) == ([], []), report
    assert leaks["traced_peak_growth_bytes"] <= MEMORY_TOLERANCE_BYTES, report
    assert figures.requests_answered == figures.requests_issued > 0
    # Every fault kind was injected at least once (seeds are random; CI runs long enough).
    assert set(figures.faults_injected) == set(FAULT_KINDS), report
    assert max(figures.max_loads_in_flight_per_model.values()) == 1, report
    # "A documented error": every error class a caller got is in docs/errors.md.
    documented = set(re.findall(r"`(\w+)`", ERRORS_DOC.read_text(encoding="utf-8")))
    got = {o.removeprefix("error:") for o in figures.outcomes if o.startswith("error:")}
    assert got <= documented, f"undocumented errors: {sorted(got - documented)}"
