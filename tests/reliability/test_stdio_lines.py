"""Line framing of the stdio transport (``mcp_frontend.transports.stdio``) over a real pipe."""

from __future__ import annotations

import os

import trio
import trio.testing

from mcp_frontend.transports.stdio import _Lines


async def test_lines_are_framed_across_chunks_and_a_last_partial_line_is_kept() -> None:
    read_fd, write_fd = os.pipe()
    long_line = "x" * 200_000  # spans several reads
    async with trio.lowlevel.FdStream(read_fd) as stream:
        lines = _Lines(stream, None)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:

                async def writer() -> None:
                    async with trio.lowlevel.FdStream(write_fd) as out:
                        for piece in (
                            b'{"a":',
                            b' 1}\n{"b": "\xc3',
                            b'\xa9"}\n',
                            long_line.encode(),
                        ):
                            await out.send_all(piece)
                        await out.send_all(b"\n\xff tail without newline")

                nursery.start_soon(writer)
                got = [line async for line in lines]
    assert got == ['{"a": 1}\n', '{"b": "é"}\n', long_line + "\n", "\ufffd tail without newline"]


async def test_cancelling_a_blocked_read_returns_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    read_fd, write_fd = os.pipe()
    try:
        async with trio.lowlevel.FdStream(read_fd) as stream:
            lines = _Lines(stream, None)
            with trio.move_on_after(5) as scope:
                await lines.__anext__()  # nothing written: blocks until cancelled
            assert scope.cancelled_caught
    finally:
        os.close(write_fd)
