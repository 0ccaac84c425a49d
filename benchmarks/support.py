"""Shared helpers: the LM Studio simulator from ``tests/fakes``, a fake ``lms``, timing.

The simulator is test code (``tests/fakes``), not part of the installed
packages; the benchmarks run from a source checkout, so the runner puts
``tests/`` on ``sys.path`` once (see :func:`use_test_fakes`) and imports it
from there, exactly as pytest's ``pythonpath`` does for the tests.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"


def use_test_fakes() -> None:
    """Make ``import fakes`` (the LM Studio simulator) work, as pytest's pythonpath does."""
    if not (TESTS / "fakes").is_dir():
        raise RuntimeError(
            f"the LM Studio simulator is not at {TESTS / 'fakes'}: the benchmarks need a "
            "source checkout of lmstudio-orchestrator"
        )
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


@contextmanager
def fake_lms() -> Iterator[str]:
    """Install the simulator's fake ``lms`` (first on PATH) for the block; yield its path."""
    use_test_fakes()
    from fakes.fixtures import install_fake_lms

    with (
        tempfile.TemporaryDirectory(prefix="lmsorch-bench-") as tmp,
        pytest.MonkeyPatch.context() as mp,
    ):
        yield install_fake_lms(mp, Path(tmp))
