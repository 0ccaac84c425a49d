"""Capturing every log line the process writes, structlog and stdlib alike."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.logs import configure_logging

__all__ = ["captured_logs"]


class _NotPrefixed(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self._prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(self._prefixes)


@contextmanager
def captured_logs(*, ignore: tuple[str, ...] = ()) -> Iterator[io.StringIO]:
    """Collect all logs at debug level (stdlib records with their arguments).

    Args:
        ignore: stdlib logger name prefixes to leave out (e.g. the test's own
            HTTP client, which logs the URLs it requests).
    """
    out = io.StringIO()
    configure_logging("debug", stream=out, json=True)
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    handler.addFilter(_NotPrefixed(ignore))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        # Back to what tests/conftest.py configures: quiet, in memory.
        configure_logging("warning", stream=io.StringIO(), json=True)
