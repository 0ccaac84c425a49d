"""The ``lms`` CLI, run as a child process: argv lists, deadlines, bounded output.

Every call runs ``lms`` with an argv list (never a shell), stdin closed (an
interactive picker fails instead of waiting for a keypress), and a deadline;
a CLI that outlives it is interrupted (SIGINT), terminated, then killed, and
reaped, so no process is left behind. Output is read concurrently and bounded, because ``lms``
prints progress to stderr and JSON to stdout and either can be large.

``lms`` writes messages to stderr and exits 1 on most failures; ``lms unload``
of an unknown identifier exits 0 (``reference/lmstudio-api.md`` §6.2), so
callers that care verify with ``ps`` afterwards. What ``lms`` prints is parsed
in :mod:`orchestrator.backends.lmstudio_cli_text`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit

import structlog
import trio

from orchestrator.backends.http_errors import convert
from orchestrator.backends.lmstudio_cli_text import (
    CliResult,
    cli_error,
    parse_json_array,
    parse_version,
)
from orchestrator.backends.lmstudio_home import lmstudio_home
from orchestrator.backends.lmstudio_wire import CliInstance, CliModel
from orchestrator.errors import BackendRejected, BackendTimeout

__all__ = ["CliMissing", "CliResult", "LmsCli", "cli_route", "resolve_cli"]

T = TypeVar("T")

STDOUT_LIMIT: Final = 8 * 1024 * 1024
STDERR_LIMIT: Final = 256 * 1024
INTERRUPT_GRACE_S: Final = 2.0
"""How long an interrupted (SIGINT) ``lms`` may take to cancel and exit before SIGTERM."""
KILL_GRACE_S: Final = 2.0
"""How long a terminated ``lms`` may take to exit before it is killed."""
DRAIN_GRACE_S: Final = 0.5
"""After ``lms`` exits, how long a grandchild may keep its pipes open before we stop reading."""

_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})
"""Hosts ``lms`` reaches without ``--host`` (it connects to 127.0.0.1 then)."""
_DEFAULT_PORT: Final = 1234

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
    # LM Studio installs lms under its home (lms.exe on Windows).
    name = "lms.exe" if sys.platform == "win32" else "lms"
    home_cli = lmstudio_home() / "bin" / name
    return str(home_cli) if os.access(home_cli, os.X_OK) else None


def cli_route(base_url: str, *, token: bool) -> tuple[list[str] | None, str]:
    """Return the global options that point ``lms`` at our server, or ``None`` if it cannot.

    ``lms`` (``src/createClient.ts`` @07b7252) connects over plain ``ws://``;
    without ``--host`` it is the privileged local client (127.0.0.1, the key in
    LM Studio's home), with ``--host`` (even ``127.0.0.1``) an unprivileged
    ``lms-cli-remote-*`` guest that has no way to carry an API token. So:

    - an ``https`` URL never goes to ``lms`` (it cannot speak TLS);
    - the local host passes only ``--port`` (nothing for the default 1234, so
      an ``lms`` without these hidden options still works there);
    - another host passes ``--host``/``--port``, unless a token is configured:
      then authentication is on and a guest would be refused.

    Args:
        base_url: the server root.
        token: whether an API token is configured.

    Returns:
        The options (``None``: do not use ``lms``) and one line saying why,
        for ``health_check``.
    """
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return None, "lms not used: it speaks plain ws:// and cannot reach an https URL"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    if host in _LOCAL_HOSTS:
        if port == _DEFAULT_PORT:
            return [], "lms as the local client"
        return ["--port", str(port)], f"lms as the local client with --port {port}"
    if token:
        return None, (
            f"lms not used: for {host} it would need --host, which makes it an "
            "unprivileged remote client that cannot send the API token"
        )
    return ["--host", host, "--port", str(port)], f"lms with --host {host} --port {port}"


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
        host_args: the global options from :func:`cli_route` appended to every run.
    """

    def __init__(self, path: str, host_args: Sequence[str] = ()) -> None:
        self.path = path
        self._host_args = tuple(host_args)

    def __repr__(self) -> str:
        return f"LmsCli(path={self.path!r})"

    @property
    def local(self) -> bool:
        """Whether ``lms`` runs as LM Studio's local client (no ``--host``)."""
        return "--host" not in self._host_args

    async def run(
        self, args: Sequence[str], *, timeout_s: float, host_args: bool = True
    ) -> CliResult:
        """Run ``lms ARGS`` and return its exit status and bounded output.

        Args:
            args: the subcommand and its arguments.
            timeout_s: the deadline.
            host_args: append the ``--host``/``--port`` options (subcommands that
                only talk to the local LM Studio do not accept them).

        Raises:
            BackendTimeout: it ran past ``timeout_s``; it was killed and reaped.
            CliMissing: the executable could not be started.
        """
        argv = (self.path, *args, *(self._host_args if host_args else ()))
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
        """``lms unload ID``, after ``lms ps`` shows ``ID`` loaded exactly once.

        With LM Link the same identifier can be loaded on several devices, and
        then ``lms unload ID`` opens an interactive picker (``lms``
        ``src/subcommands/unload.ts`` @07b7252) that has no option to preselect
        and fails on our closed stdin; we refuse that case with what to do.

        Raises:
            BackendRejected: ``ID`` is loaded on several devices.
        """
        matches = [i for i in await self.ps(timeout_s=timeout_s) if i.identifier == identifier]
        if not matches:
            return  # lms unload would print "Model Not Found" and exit 0
        if len(matches) > 1:
            devices = ", ".join(i.device_identifier or "this machine" for i in matches)
            raise BackendRejected(
                f"cannot unload {identifier!r} with lms: it is loaded on several LM Link "
                f"devices ({devices}) and lms unload would ask which one interactively; "
                "unload it in LM Studio"
            )
        result = await self.run(["unload", identifier], timeout_s=timeout_s)
        if result.returncode != 0:
            raise cli_error(result, what=f"`lms unload {identifier}`")

    async def server_version(self, *, timeout_s: float) -> str | None:
        """LM Studio's version from ``lms daemon status``, or ``None`` if it does not say.

        ``lms`` ``src/subcommands/daemon/status.ts`` @07b7252 prints
        ``LM Studio v<version> is running (PID: <pid>)`` (``llmster v...`` for the
        headless daemon) on stdout; its ``--json`` form has no version. It asks
        the local LM Studio only, so it takes no ``--host``/``--port``.
        """
        result = await self.run(["daemon", "status"], timeout_s=timeout_s, host_args=False)
        return parse_version(result) if result.returncode == 0 else None

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


async def _terminate(proc: trio.Process) -> None:
    # SIGINT first: lms load listens only for SIGINT and then aborts the load inside
    # LM Studio (lms src/subcommands/load.ts @07b7252, sigintListener); SIGTERM just
    # drops the websocket, and the server may finish the load anyway.
    for send, grace in ((_interrupt, INTERRUPT_GRACE_S), (trio.Process.terminate, KILL_GRACE_S)):
        send(proc)
        with trio.move_on_after(grace):
            await proc.wait()
            return
    proc.kill()
    await proc.wait()


def _interrupt(proc: trio.Process) -> None:
    if sys.platform == "win32":  # no SIGINT for another process there
        proc.terminate()
    else:
        proc.send_signal(signal.SIGINT)
