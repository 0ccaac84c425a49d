"""structlog configuration: JSON lines to stderr (readable text on a terminal), secrets redacted.

Logs never go to stdout: in stdio mode stdout is the MCP JSON-RPC wire.
Context bound with ``structlog.contextvars`` is per trio task (children inherit
a copy), so an actor's bindings never leak into another's.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "redact"]

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api[_-]?key)", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
REDACTED = "[REDACTED]"


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: hide values of secret-looking keys and bearer tokens in text."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event[key] = REDACTED
        elif isinstance(value, str) and "earer" in value:
            event[key] = _BEARER.sub(rf"\1{REDACTED}", value)
    return event


def configure_logging(
    level: str = "info", *, stream: TextIO | None = None, json: bool | None = None
) -> None:
    """Configure structlog for the process.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: where to write; stderr by default (never stdout).
        json: JSON lines (default when ``stream`` is not a terminal) or console text.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
