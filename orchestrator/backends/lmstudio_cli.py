"""The ``lms`` CLI, run as a child process: argv lists, deadlines, bounded output.

Every call runs ``lms`` with an argv list (never a shell), stdin closed (an
interactive picker fails instead of waiting for a keypress), and a deadline;
a CLI that outlives it is terminated, then killed, and reaped, so no process
is left behind. Output is read concurrently and bounded, because ``lms``
prints progress to stderr and JSON to stdout and either can be large.

``lms`` writes messages to stderr and exits 1 on most failures; ``lms unload``
of an unknown identifier exits 0 (``reference/lmstudio-api.md`` §6.2), so
callers that care verify with ``ps`` afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import msgspec
import structlog
import trio

from orchestrator.backends.http_errors import MESSAGE_LIMIT, convert
from orchestrator.backends.lmstudio_wire import CliInstance, CliModel
from orchestrator.errors import (
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnreachable,
    ModelNotLoaded,
    excerpt,
)

__all__ = ["CliMissing", "CliResult", "LmsCli", "resolve_cli"]

T = TypeVar("T")

STDOUT_LIMIT: Final = 8 * 1024 * 1024
STDERR_LIMIT: Final = 256 * 1024
KILL_GRACE_S: Final = 2.0
"""How long a terminated ``lms`` may take to exit before it is killed."""
DRAIN_GRACE_S: Final = 0.5
"""After ``lms`` exits, how long a grandchild may keep its pipes open before we stop reading."""

_DEFAULT_HOSTS: Final = {("127.0.0.1", 1234), ("localhost", 1234)}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_UNREACHABLE = re.compile(
    r"econnrefused|failed to connect|could not connect|cannot connect|not reachable|"
    r"is lm studio running|connection refused"
)
_NOT_FOUND = re.compile(
    r"model not found|cannot find a model|no model found|no (?:downloaded )?model match"
)

_log = structlog.get_logger("orchestrator.backends.lmstudio")


class CliMissing(BackendRejected):
    """The ``lms`` executable could not be found or started."""


def resolve_cli(configured: str | None) -> str | None:
    """Return the ``lms`` executable to run, or ``None`` when there is none.

    Args:
        configured: ``LMS_CLI`` / ``settings.lms_cli``: a path, or a name looked
            up on PATH. ``None`` looks for ``lms`` on PATH, then in
            ``~/.lmstudio/bin`` (where LM Studio installs it).
    """
    if configured:
        found = shutil.which(configured)
        return str(Path(found).absolute()) if found else None
    found = shutil.which("lms")
    if found:
        return str(Path(found).absolute())
    home_cli = Path.home() / ".lmstudio" / "bin" / "lms"
    return str(home_cli) if os.access(home_cli, os.X_OK) else None


def host_args(base_url: str) -> list[str]:
    """Return ``--host``/``--port`` so ``lms`` talks to the server we do.

    Without them ``lms`` talks to the LM Studio on this machine at its own
    default port, which is the wrong server when ``LMSTUDIO_BASE_URL`` points
    elsewhere. They are omitted for the default server, so an ``lms`` that
    lacks these (hidden) options still works there.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if (host, port) in _DEFAULT_HOSTS:
        return []
    return ["--host", host, "--port", str(port)]


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


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = trio.Event()

    async def drain(self, stream: trio.abc.ReceiveStream | None) -> None:
        try:
            if stream is None:
                return
            while chunk := await stream.receive_some():
                # Keep reading past the limit so the child never blocks on a full pipe.
                if self.size < self.limit:
                    self.chunks.append(bytes(chunk[: self.limit - self.size]))
                self.size += len(chunk)
        finally:
            self.done.set()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class LmsCli:
    """Runs ``lms`` subcommands against one LM Studio server.

    Args:
        path: the resolved ``lms`` executable.
        base_url: the server root; non-default hosts are passed as ``--host``/``--port``.
    """

    def __init__(self, path: str, base_url: str) -> None:
        self.path = path
        self._host_args = host_args(base_url)

    def __repr__(self) -> str:
        return f"LmsCli(path={self.path!r})"

    async def run(self, args: Sequence[str], *, timeout_s: float) -> CliResult:
        """Run ``lms ARGS`` and return its exit status and bounded output.

        Raises:
            BackendTimeout: it ran past ``timeout_s``; it was killed and reaped.
            CliMissing: the executable could not be started.
        """
        argv = (self.path, *args, *self._host_args)
        what = f"`lms {' '.join(args[:2])}`"
        out, err = _Capture(STDOUT_LIMIT), _Capture(STDERR_LIMIT)
        try:
            with trio.fail_after(timeout_s):
                returncode = await self._spawn(argv, out, err)
        except trio.TooSlowError as exc:
            raise BackendTimeout(
                f"{what} did not finish within {timeout_s:g}s and was killed"
            ) from exc
        except OSError as exc:
            raise CliMissing(f"cannot run the lms CLI at {self.path!r}: {exc}") from exc
        result = CliResult(argv=argv, returncode=returncode, stdout=out.data, stderr=err.data)
        _log.debug("lms", args=list(args), returncode=returncode)
        return result

    async def _spawn(self, argv: tuple[str, ...], out: _Capture, err: _Capture) -> int:
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        proc = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(out.drain, proc.stdout)
                nursery.start_soon(err.drain, proc.stderr)
                returncode = await proc.wait()
                with trio.move_on_after(DRAIN_GRACE_S):
                    await out.done.wait()
                    await err.done.wait()
                nursery.cancel_scope.cancel()
            return returncode
        finally:
            if proc.returncode is None:
                with trio.CancelScope(shield=True):
                    await _terminate(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    await trio.aclose_forcefully(stream)

    # -- subcommands --

    async def load(
        self,
        key: str,
        *,
        identifier: str,
        ttl_s: int,
        context_length: int | None,
        timeout_s: float,
    ) -> None:
        """``lms load KEY --identifier ID --ttl N -y [-c CTX]``.

        Raises:
            ModelNotLoaded: ``lms`` found no such model (the caller names the available ones).
            BackendRejected: e.g. the memory guardrail refused; its message is kept.
        """
        args = [
            "load",
            key,
            "--identifier",
            identifier,
            "--ttl",
            str(ttl_s),
            "-y",
        ]
        if context_length is not None:
            args += ["-c", str(context_length)]
        result = await self.run(args, timeout_s=timeout_s)
        if result.returncode != 0:
            raise cli_error(result, what=f"`lms load {key}`")

    async def unload(self, identifier: str, *, timeout_s: float) -> None:
        """``lms unload ID`` (exit 0 also when it was not loaded)."""
        result = await self.run(["unload", identifier], timeout_s=timeout_s)
        if result.returncode != 0:
            raise cli_error(result, what=f"`lms unload {identifier}`")

    async def ps(self, *, timeout_s: float) -> list[CliInstance]:
        """``lms ps --json``: the loaded instances."""
        return await self._json_list(["ps", "--json"], CliInstance, timeout_s=timeout_s)

    async def ls(self, *, timeout_s: float) -> list[CliModel]:
        """``lms ls --json``: the downloaded models."""
        return await self._json_list(["ls", "--json"], CliModel, timeout_s=timeout_s)

    async def _json_list(self, args: list[str], type_: type[T], *, timeout_s: float) -> list[T]:
        what = f"`lms {' '.join(args)}`"
        result = await self.run(args, timeout_s=timeout_s)
        if result.returncode != 0:
            raise cli_error(result, what=what)
        return [
            convert(item, type_, what=what) for item in parse_json_array(result.stdout, what=what)
        ]


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


async def _terminate(proc: trio.Process) -> None:
    proc.terminate()
    with trio.move_on_after(KILL_GRACE_S):
        await proc.wait()
        return
    proc.kill()
    await proc.wait()
