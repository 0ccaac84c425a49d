"""Shared helpers: the LM Studio simulator from ``tests/fakes``, a fake ``lms``, timing.

The simulator is test code (``tests.fakes``), not part of the installed
packages; the benchmarks run from a source checkout (``python -m benchmarks``
in its root), where ``tests`` is a package beside ``benchmarks``: nothing edits
``sys.path``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.fixtures import install_fake_lms

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def fake_lms() -> Iterator[str]:
    """Install the simulator's fake ``lms`` (first on PATH) for the block; yield its path."""
    with (
        tempfile.TemporaryDirectory(prefix="lmsorch-bench-") as tmp,
        pytest.MonkeyPatch.context() as mp,
    ):
        yield install_fake_lms(mp, Path(tmp))
