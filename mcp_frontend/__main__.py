"""``python -m mcp_frontend``: the same as ``lmsorch serve``."""

from __future__ import annotations

import argparse
import sys

from mcp_frontend.commands import serve


def _main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mcp_frontend", description="Serve the lmstudio-orchestrator MCP server."
    )
    serve.add_arguments(parser)
    return serve.run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(_main())
