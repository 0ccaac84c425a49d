"""The ``lmsorch`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only lists them, so ``lmsorch --help`` stays
fast (modules are imported only when their command runs).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# (command, module, one-line help)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("statechart", "mcp_frontend.commands.statechart", "render the model lifecycle statechart"),
    (
        "tool-reference",
        "mcp_frontend.commands.tool_reference",
        "render the argument-level tool reference from the live schemas",
    ),
    ("status", "mcp_frontend.commands.status", "show a running server's models (--watch: live)"),
    ("models", "mcp_frontend.commands.models", "manage model files (fetch-demo)"),
    ("serve", "mcp_frontend.commands.serve", "run the MCP server (stdio, or HTTP with --http)"),
    ("demo", "mcp_frontend.commands.demo", "run the demo: real model, orchestrator and MCP"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmsorch",
        description="Local models for AI agents: an MCP server over an actor/state-machine "
        "orchestrator (LM Studio or embedded llama.cpp).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lmsorch``; returns the process exit code.

    An expected failure of any command (a bad setting: exit 2; a file that cannot
    be read or written, a backend error: exit 1) is one line on stderr, never a
    traceback; anything else is a bug and keeps its traceback.
    """
    args = _parser().parse_args(argv)
    from orchestrator import ConfigError, OrchestratorError  # after --help: it stays fast

    try:
        code: int = importlib.import_module(args._module).run(args)
    except (OrchestratorError, OSError) as exc:
        print(f"lmsorch {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
