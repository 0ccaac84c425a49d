"""A small MCP server for the agent tests, run as ``python toy_server.py``.

The misbehaving start-up modes live in ``broken_server.py``. The server may
sleep (``slow``); the tests never do.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import trio
from mcp.server.mcpserver import MCPServer
from mcp_types import ImageContent, ResourceLink, TextContent

app: MCPServer = MCPServer("toy")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@app.tool()
def fail(message: str = "boom") -> str:
    """Always raise."""
    raise RuntimeError(message)


@app.tool()
async def slow() -> str:
    """Never finish (until cancelled)."""
    await trio.sleep_forever()


@app.tool()
def huge(size: int = 1_000_000) -> str:
    """Return ``size`` characters."""
    return "x" * size


@app.tool()
def garbage() -> list[TextContent | ImageContent | ResourceLink]:
    """Control characters, binary-looking text, an image that is not one, a bare link."""
    return [
        TextContent(text="\x00\x1b[31mred\x07\x08 text\ufffd\x7f"),
        ImageContent(data="iVBORw0KGgo=", mime_type="image/png"),
        ResourceLink(uri="file:///nowhere", name="nowhere"),
    ]


@app.tool()
def read_file(path: str) -> str:
    """Return the text of a file."""
    return Path(path).read_text()


@app.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@app.tool()
def crash() -> str:
    """Exit the server process in the middle of a call."""
    os._exit(7)


def main() -> None:
    anyio.run(app.run_stdio_async, backend="trio")


if __name__ == "__main__":
    main()
