"""What the ``lms`` CLI prints, and what the backend makes of it.

Every text matched here is quoted from ``lmstudio-ai/lms`` at ``07b7252``; the
table in ``docs/backends.md`` ("How the backend runs ``lms``") lists each with
its source file. ``lms`` writes messages to stderr (``logger.error`` prefixes
``Error:``, ``errorWithoutPrefix`` does not) and JSON to stdout.
"""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec

from orchestrator.backends.http_errors import MESSAGE_LIMIT
from orchestrator.errors import (
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnreachable,
    ModelNotLoaded,
    excerpt,
)

__all__ = ["CliResult", "cli_error", "parse_json_array", "parse_version"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# The texts real lms prints when it cannot reach LM Studio (lms src/createClient.ts
# @07b7252; docs/backends.md has the table): transient, never a rejection.
_UNREACHABLE = re.compile(
    r"failed to start or connect to local lm studio api server|"
    r"the server does not appear to be running at|failed to connect using"
)
# lms src/subcommands/load.ts @07b7252: the titled "Model not found" block ("No model
# found that matches model key ...", or "... with path being exactly ..." for --exact).
_NOT_FOUND = re.compile(r"model not found|no model found")
_VERSION = re.compile(r"(?:LM Studio|llmster) v(\S+) is running")


class CliResult(msgspec.Struct, frozen=True, kw_only=True):
    """One finished ``lms`` run."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    def message(self) -> str:
        """Return the CLI's error message: its ``Error:`` line, or its last output."""
        text = _ANSI.sub("", (self.stderr or self.stdout).decode("utf-8", errors="replace"))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for i, line in enumerate(lines):
            if line.startswith("Error:"):
                return excerpt(" ".join(lines[i:])[6:].strip(), MESSAGE_LIMIT)
        return excerpt(" ".join(lines[-5:]), MESSAGE_LIMIT) or f"exit status {self.returncode}"


def parse_json_array(stdout: bytes, *, what: str) -> list[Any]:
    """Decode the JSON array ``lms`` printed, skipping any banner lines before it.

    Some captures show ``Waking up LM Studio service...`` on stdout before the
    JSON (``reference/lmstudio-api.md`` §6.4); a banner line may itself start
    with ``[``, so each line that does is tried in turn.
    """
    starts = [i for i, line in _line_starts(stdout) if line.lstrip().startswith(b"[")]
    if not starts:
        raise BackendProtocolError(f"{what}: expected a JSON array, got: {excerpt(stdout)}")
    first_error: msgspec.DecodeError | None = None
    for start in starts:
        try:
            # A document that starts with "[" decodes to a list or not at all.
            return cast(list[Any], msgspec.json.decode(stdout[start:]))
        except msgspec.DecodeError as exc:
            first_error = first_error or exc
    raise BackendProtocolError(
        f"{what}: malformed JSON ({first_error}): {excerpt(stdout[starts[0] :])}"
    ) from first_error


def _line_starts(data: bytes) -> list[tuple[int, bytes]]:
    starts, offset = [], 0
    for line in data.splitlines(keepends=True):
        starts.append((offset, line))
        offset += len(line)
    return starts


def cli_error(result: CliResult, *, what: str) -> BackendError:
    """Translate a failed ``lms`` run into our error, keeping its message."""
    message = result.message()
    text = message.lower()
    said = f"{what} failed (exit {result.returncode}): {message}"
    if "insufficient system resources" in text:
        return BackendRejected(said)
    if _UNREACHABLE.search(text):
        return BackendUnreachable(said)
    if "timed out" in text or "timeout" in text:
        return BackendTimeout(said)
    if _NOT_FOUND.search(text):
        return ModelNotLoaded(said)
    return BackendRejected(said)


def parse_version(result: CliResult) -> str | None:
    """The version in ``lms daemon status`` output (``LM Studio v0.4.23 is running ...``)."""
    found = _VERSION.search(_ANSI.sub("", result.stdout.decode("utf-8", errors="replace")))
    return found.group(1) if found else None
