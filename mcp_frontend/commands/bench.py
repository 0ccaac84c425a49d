"""``lmsorch bench``: run the benchmarks (``python -m benchmarks``) from a source checkout.

The benchmarks use the LM Studio simulator from ``tests/fakes`` and are not
part of the installed packages, so this command finds the checkout this
package was imported from and runs the runner there.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["add_arguments", "run"]

_CHECKOUT = Path(__file__).resolve().parents[2]


def _runner() -> ModuleType | None:
    if not (_CHECKOUT / "benchmarks" / "runner.py").is_file():
        return None
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    return importlib.import_module("benchmarks.runner")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the runner's options (the same as ``python -m benchmarks``)."""
    runner = _runner()
    if runner is not None:
        runner.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks; returns the exit code."""
    runner = _runner()
    if runner is None:
        print(
            "lmsorch bench: error: the benchmarks ship with the source checkout, not the "
            f"installed package (no benchmarks/ next to {_CHECKOUT / 'mcp_frontend'}); "
            "clone the repository and run `python -m benchmarks` there",
            file=sys.stderr,
        )
        return 2
    code: int = runner.execute(args)
    return code
