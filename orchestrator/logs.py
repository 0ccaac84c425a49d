"""structlog configuration: JSON lines to stderr (readable text on a terminal), secrets redacted.

Logs never go to stdout: in stdio mode stdout is the MCP JSON-RPC wire.
Context bound with ``structlog.contextvars`` is per trio task (children inherit
a copy), so an actor's bindings (``model``, ``identifier``) never leak into
another's.

Two promises hold whatever is logged:

- secrets do not reach the sink: values of secret-looking keys (at any depth of
  nested dicts and lists), ``Bearer`` (in any case) and ``Basic``/``Token``
  credentials, passwords in URLs (``http://user:secret@host``), ``key=value`` / ``"key": "value"``
  pairs with a secret-looking key inside text (exception text included), and
  every value registered with :func:`register_secret` are replaced by
  ``[REDACTED]``;
- logging never fails the caller: a sink that raises ``OSError`` or
  ``ValueError`` (a closed pipe, a full disk, a closed file) loses the line,
  not the request. Lost lines are counted in :data:`dropped_lines`.

``docs/metrics.md`` lists every event.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["REDACTED", "configure_logging", "dropped_lines", "redact", "register_secret"]

_SECRET_KEYS = re.compile(
    r"(token(?!s)|secret|password|passwd|authorization|api[_-]?key|credential)", re.IGNORECASE
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Other HTTP credentials ("Basic dXNlcjpwdw=="); capitalised and 8+ characters, so
# prose such as "basic idea" or "token budget" is left alone.
_SCHEMES = re.compile(r"\b((?:Basic|Token|Digest)\s+)[A-Za-z0-9._~+/=-]{8,}")
# The password of a URL's userinfo: http://user:secret@host/.
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")
# key=value, key: value, "key": "value" with a secret-looking key, inside free text.
_PAIR = re.compile(
    r"""(["']?[\w-]*(?:token(?!s)|secret|password|passwd|api[_-]?key|credential)[\w-]*["']?"""
    r"""\s*[:=]\s*["']?)([^\s"',;}&]+)""",
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"

_secrets: set[str] = set()
_dropped = [0]


def register_secret(value: str | None) -> None:
    """Redact every occurrence of ``value`` in log lines from now on (ignores short values)."""
    if value is not None and len(value) >= 4:
        _secrets.add(value)


def dropped_lines() -> int:
    """Return how many log lines were lost because the sink failed."""
    return _dropped[0]


def _scrub_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _SCHEMES.sub(rf"\1{REDACTED}", _BEARER.sub(rf"\1{REDACTED}", text))
    if "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    return _PAIR.sub(rf"\1{REDACTED}", text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth > 8:  # deeper than any event we log; do not recurse without bound
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and _SECRET_KEYS.search(k) and v is not None
            else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    if isinstance(value, BaseException):
        return _scrub_text(f"{type(value).__name__}: {value}")
    return value


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: hide secrets in keys, nested values and text (see module doc)."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event[key] = REDACTED
        else:
            event[key] = _scrub(value)
    return event


class SafeWriteLogger(structlog.WriteLogger):
    """A :class:`structlog.WriteLogger` whose failing sink loses the line instead of raising."""

    def msg(self, message: str) -> None:
        """Write and flush ``message``; on ``OSError``/``ValueError`` count it as dropped."""
        try:
            super().msg(message)
        except (OSError, ValueError):
            _dropped[0] += 1

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _SafeWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> SafeWriteLogger:
        return SafeWriteLogger(self._file)


def configure_logging(
    level: str = "info",
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    secrets: tuple[str | None, ...] = (),
) -> None:
    """Configure structlog for the process.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: where to write; stderr by default (never stdout).
        json: JSON lines (default when ``stream`` is not a terminal) or console text.
        secrets: values to redact wherever they appear (e.g. API tokens).
    """
    stream = stream or sys.stderr
    for secret in secrets:
        register_secret(secret)
    if json is None:
        try:
            json = not stream.isatty()
        except (OSError, ValueError):  # a closed stream: it will drop lines anyway
            json = True
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
        logger_factory=_SafeWriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
