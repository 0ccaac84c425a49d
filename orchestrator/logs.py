"""structlog configuration: JSON lines to stderr (readable text on a terminal), secrets redacted.

Logs never go to stdout: in stdio mode stdout is the MCP JSON-RPC wire.
Context bound with ``structlog.contextvars`` is per trio task (children inherit
a copy), so an actor's bindings (``model``, ``identifier``) never leak into
another's.

Two promises hold whatever is logged:

- secrets do not reach the sink: values of secret-looking keys (at any depth of
  nested dicts and lists), ``Bearer`` (in any case) and ``Basic``/``Token``
  credentials, passwords in URLs (``http://user:secret@host``), ``key=value``,
  ``key: value``, ``"key": "value"`` and ``key='value'`` pairs with a secret-looking
  key inside text (exception text and the repr of any other object included), and
  every value registered with :func:`register_secret` are replaced by
  ``[REDACTED]``;
- logging never fails the caller: a sink that raises ``OSError`` or
  ``ValueError`` (a closed pipe, a full disk, a closed file) loses the line,
  not the request. Lost lines are counted in :data:`dropped_lines`.

Stdlib loggers (hypercorn, the MCP SDK) get the same redaction and renderer:
:func:`configure_logging` routes the root logger through a
:class:`structlog.stdlib.ProcessorFormatter`. ``docs/metrics.md`` lists every event.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = [
    "REDACTED",
    "LogTap",
    "add_log_tap",
    "configure_logging",
    "dropped_lines",
    "redact",
    "register_secret",
]

# A key is secret when a secret word is one of its words (snake_case, kebab-case,
# camelCase: ``api_key``, ``X-Api-Key``, ``accessToken``) and the last such word is not
# followed by a word saying the value only describes the secret (``token_count``,
# ``auth_type``). ``tokens``, ``tokenizer`` or ``author`` are other words: counts such
# as ``max_tokens`` or ``prompt_tokens`` stay.
_SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "passphrase", "authorization", "auth", "cookie"}
    | {"credential", "credentials", "apikey", "privatekey"}
)
_DESCRIPTORS = frozenset(
    {"count", "counts", "len", "length", "limit", "budget", "usage", "type", "kind", "scheme"}
    | {"name", "id", "url", "uri", "endpoint", "file", "path", "env", "ttl", "expiry", "expires"}
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Other HTTP credentials ("Basic dXNlcjpwdw=="); capitalised and 8+ characters, so
# prose such as "basic idea" or "token budget" is left alone.
_SCHEMES = re.compile(r"\b((?:Basic|Token|Digest)\s+)[A-Za-z0-9._~+/=-]{8,}")
# The password of a URL's userinfo: http://user:secret@host/.
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")
# key=value, key: value, "key": "value", key='a b' inside free text; the key decides
# (see _is_secret_key). A key starts a word, so a long blob is scanned once.
_PAIR = re.compile(
    r"""(?<![\w.-])(?P<key>[\w.-]+)(?P<sep>\\*["']?\s*[:=]\s*)"""
    r"""(?:"(?P<dq>[^"\\]*(?:\\.[^"\\]*)*)"|'(?P<sq>[^'\\]*(?:\\.[^'\\]*)*)'"""
    r"""|(?P<open>\\*["']?)(?P<scheme>(?:Bearer|Basic|Token|Digest)\s+)?(?P<bare>[^\s"'\\,;}&)]+))"""
)
# A bare Cookie header value is a list of pairs whose names say nothing ("theme=dark;
# sid=s3cret"): everything to the end of the line or the enclosing quote is secret.
_COOKIE_REST = re.compile(r"""\s*;[^\n\r"'}]*""")
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


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Whether a value under ``key`` is a secret (see :data:`_SECRET_WORDS`)."""
    words: list[str] = []
    for word in map(str.lower, _WORD.findall(key)):
        if word == "key" and words and words[-1] in ("api", "private"):
            words[-1] += word
        else:
            words.append(word)
    last = max((i for i, word in enumerate(words) if word in _SECRET_WORDS), default=None)
    return last is not None and (last + 1 == len(words) or words[last + 1] not in _DESCRIPTORS)


def _redact_pairs(text: str) -> str:
    # Not re.sub: a pair whose key is not secret gives back its value, which may hold
    # pairs of its own ("url=https://h/?api_key=k": the value of "https" holds one).
    out: list[str] = []
    pos = 0
    while (match := _PAIR.search(text, pos)) is not None:
        out.append(text[pos : match.end("sep")])
        pos = match.end("sep")
        if not _is_secret_key(match["key"]):
            continue
        if match["dq"] is not None:
            out.append(f'"{REDACTED}"')
        elif match["sq"] is not None:
            out.append(f"'{REDACTED}'")
        else:
            out.append(f"{match['open']}{match['scheme'] or ''}{REDACTED}")
            if "cookie" in match["key"].lower() and (rest := _COOKIE_REST.match(text, match.end())):
                pos = rest.end()
                continue
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _scrub_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _SCHEMES.sub(rf"\1{REDACTED}", _BEARER.sub(rf"\1{REDACTED}", text))
    if "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    return _redact_pairs(text)


def _scrub_item(key: object, value: Any, depth: int) -> Any:
    if isinstance(key, str) and value is not None and _is_secret_key(key):
        return REDACTED
    return _scrub(value, depth)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if value is None or isinstance(value, int | float):  # bool is an int
        return value
    if isinstance(value, BaseException):
        return _scrub_text(f"{type(value).__name__}: {value}")
    if depth <= 8:  # deeper than any event we log: do not recurse without bound
        if isinstance(value, dict):
            return {k: _scrub_item(k, v, depth + 1) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(_scrub(v, depth + 1) for v in value)
    # Anything else (a dataclass, a set, an object, a too-deep container) is logged as
    # its scrubbed repr: the JSON renderer would print the repr, secrets and all.
    return _scrub_text(repr(value))


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: hide secrets in keys, nested values and text (see module doc)."""
    for key, value in list(event.items()):
        event[key] = _scrub_item(key, value, 0)
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


class _StdlibHandler(logging.Handler):
    """Root handler for stdlib loggers (hypercorn, the MCP SDK): formatted and written like ours."""

    def __init__(self, stream: TextIO, formatter: logging.Formatter, level: int) -> None:
        super().__init__(level)
        self.setFormatter(formatter)
        self._sink = SafeWriteLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` (redacted) and write it; a failing sink loses the line."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 (as logging.Handler: a bad record is reported)
            self.handleError(record)
            return
        self._sink.msg(line)


LogTap = Callable[[Mapping[str, Any]], None]
"""Sees each structlog event (redacted, before rendering); must not block or raise."""

_taps: list[LogTap] = []


def add_log_tap(tap: LogTap) -> Callable[[], None]:
    """Let ``tap`` see every event that passes the configured level; return its remover.

    The MCP server forwards events to clients that asked for log messages; a tap
    gets a copy of each event after redaction, so secrets never reach it.
    """
    _taps.append(tap)
    return lambda: _taps.remove(tap) if tap in _taps else None


def _tap(_logger: object, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for tap in list(_taps):
        tap(dict(event))
    return event


def configure_logging(
    level: str = "info",
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    secrets: tuple[str | None, ...] = (),
) -> None:
    """Configure structlog, and the stdlib root logger, for the process.

    Stdlib loggers (hypercorn, the MCP SDK, ``transitions``) go through the same
    redaction and renderer (with a ``logger`` field naming them), at ``debug``
    when ``level`` is ``debug`` and otherwise at ``warning`` or above: their
    info lines are chatter. Calling it again replaces the previous setup.

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
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, redact, _tap, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_SafeWriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
    )
    library_level = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(_StdlibHandler(stream, formatter, library_level))
    root.setLevel(library_level)
