"""Fixtures of the observability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.logs import configure_logging
from tests.observability.support import LogCapture, restore_test_logging


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    configure_logging("debug", stream=capture.stream, json=True)
    yield capture
    restore_test_logging()
