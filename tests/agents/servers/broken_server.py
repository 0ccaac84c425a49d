"""A would-be MCP server that never becomes one: ``python broken_server.py MODE``.

Modes: ``exit`` (write to stderr and exit 3), ``hang`` (never answer
initialize), ``noise`` (print non-JSON on stdout, then hang). No MCP imports,
so it starts fast. The process may sleep; the tests never do.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "exit"
    if mode == "exit":
        print("broken: refusing to start (mode=exit)", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "noise":
        print("this is not JSON-RPC", flush=True)
    print(f"broken: hanging (mode={mode})", file=sys.stderr, flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
