"""A small MCP server for the agent tests, run as ``python toy_server.py [mode]``.

Modes: none (serve), ``exit`` (write to stderr and exit 3 before serving),
``hang`` (never answer initialize), ``noise`` (print non-JSON on stdout, then hang).
The server may sleep (``slow``, ``hang``); the tests never do.
"""

from __future__ import annotations

import os
import sys
import time
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
    mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if mode == "exit":
        print("toy: refusing to start (mode=exit)", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "noise":
        print("this is not JSON-RPC", flush=True)
    if mode in ("hang", "noise"):
        print(f"toy: hanging (mode={mode})", file=sys.stderr, flush=True)
        time.sleep(3600)
    anyio.run(app.run_stdio_async, backend="trio")


if __name__ == "__main__":
    main()
