"""MCP over stdio with reads trio can cancel, so SIGINT and SIGTERM stop the server.

The SDK's ``stdio_server`` reads stdin in a worker thread (``anyio.wrap_file``).
A cancelled trio task has to wait for that thread, and the thread waits for
the client's next line: once a tool had been called, ``lmsorch serve`` ignored
SIGTERM for as long as the client kept stdin open, so it neither stopped nor
unloaded what it had loaded (found by ``tests/reliability/test_shutdown_restart.py``).

Here stdin and stdout are trio streams over duplicates of fds 0 and 1, handed
to the SDK's ``stdio_server`` as its explicit streams. Like the SDK, fd 0
reads the null device and fd 1 writes to stderr while serving, so child
processes and stray prints never touch the wire; both are restored after.
Only pipes and sockets take this path: a terminal or a regular file keeps
the SDK's own transport (a terminal must not be made non-blocking under the
user's shell, and epoll cannot wait on a regular file), and so does a stdout
that stderr shares.

With a :class:`~mcp_frontend.transports.drain.Drain`, stdin closing first
drains the calls in flight (each gets the "server is stopping" error, written
before the reader reports EOF), and the drain's end interrupts the read, so a
signal ends the session the same orderly way: the SDK's loop sees EOF, closes
its write stream, and the writer flushes every answer before returning.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import trio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from mcp_frontend.transports.drain import Drain

__all__ = ["serve_stdio"]

_CHUNK = 64 * 1024


class _Lines:
    """The lines of a byte stream, decoded as UTF-8 (what ``stdio_server`` iterates)."""

    def __init__(self, stream: trio.lowlevel.FdStream, drain: Drain | None) -> None:
        self._stream = stream
        self._drain = drain
        self._buffer = bytearray()
        self._scanned = 0  # no newline before this offset: never rescan a long line

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while (end := self._buffer.find(b"\n", self._scanned)) < 0:
            self._scanned = len(self._buffer)
            chunk = await self._receive()
            if not chunk:
                if self._drain is not None:
                    await self._drain.stop("stdin closed")  # answer everyone before the EOF
                if not self._buffer:
                    raise StopAsyncIteration
                end = len(self._buffer) - 1  # a last line without a newline
                break
            self._buffer += chunk
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        self._scanned = 0
        return line.decode("utf-8", errors="replace")

    async def _receive(self) -> bytes:
        """The next chunk; empty at EOF, and once the drain is over (the server stops)."""
        if self._drain is None:
            return await self._stream.receive_some(_CHUNK)
        chunk = b""  # unless read before the drain ends: what the client sends then is not read
        with self._drain.reading():
            chunk = await self._stream.receive_some(_CHUNK)
        return chunk


class _Writer:
    """``write`` and ``flush`` over a byte stream (what ``stdio_server`` calls)."""

    def __init__(self, stream: trio.lowlevel.FdStream, drain: Drain | None) -> None:
        self._stream = stream
        self._drain = drain

    async def write(self, text: str) -> None:
        try:
            await self._stream.send_all(text.encode("utf-8"))
        except trio.BrokenResourceError as exc:
            # The client closed its end: an OSError, as from the SDK's own transport,
            # which `lmsorch serve` reports in one line (after the usual clean-up).
            raise BrokenPipeError("stdout was closed by the MCP client") from exc
        if self._drain is not None:
            self._drain.written(text)

    async def flush(self) -> None:
        """Nothing is buffered here."""


def _streamable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextmanager
def _claimed_std_fds() -> Iterator[tuple[int, int]]:
    """Duplicate fds 0 and 1 for the wire, point them away meanwhile, restore them after."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        os.close(null)
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


def _same_file(a: int, b: int) -> bool:
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


async def serve_stdio(server: MCPServer[Any], drain: Drain | None = None) -> None:
    """Serve ``server`` over stdin and stdout until stdin closes, ``drain`` ends, or cancelled."""
    # stderr sharing stdout's pipe (2>&1) would turn non-blocking too and fail log writes.
    if not (_streamable(0) and _streamable(1)) or _same_file(1, 2):
        await server.run_stdio_async()
        return
    if drain is not None:
        drain.reports_writes = True
    with _claimed_std_fds() as (wire_in, wire_out):
        # FdStream owns (and closes) the duplicates; cancellation interrupts its reads.
        async with (
            trio.lowlevel.FdStream(wire_in) as stdin,
            trio.lowlevel.FdStream(wire_out) as stdout,
            stdio_server(
                stdin=cast(Any, _Lines(stdin, drain)), stdout=cast(Any, _Writer(stdout, drain))
            ) as (
                read_stream,
                write_stream,
            ),
        ):
            # The SDK's run_stdio_async does the same with its own streams.
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
