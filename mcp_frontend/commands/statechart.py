"""``lmsorch statechart``: render the lifecycle table as Mermaid, DOT or SVG.

SVG needs Graphviz's ``dot`` on PATH; without it the command says so and exits 2.
``--write DIR`` regenerates the committed ``statecharts/`` files (never hand-edit them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "write_files"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument(
        "--format", choices=("mermaid", "dot", "svg"), default="mermaid", help="output format"
    )
    parser.add_argument(
        "--write",
        metavar="DIR",
        help="write model_lifecycle.mmd and model_lifecycle.dot into DIR (e.g. statecharts/)",
    )


def write_files(directory: Path) -> list[Path]:
    """Write the committed statechart files into ``directory``; return their paths."""
    from orchestrator.lifecycle import render_dot, render_mermaid

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("model_lifecycle.mmd", render_mermaid()),
        ("model_lifecycle.dot", render_dot()),
    ):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    """Print (or write) the statechart."""
    from orchestrator.lifecycle import render_dot, render_mermaid

    if args.write:
        for path in write_files(Path(args.write)):
            print(f"wrote {path}")
        return 0
    if args.format == "mermaid":
        sys.stdout.write(render_mermaid())
        return 0
    if args.format == "dot":
        sys.stdout.write(render_dot())
        return 0
    dot = shutil.which("dot")
    if dot is None:
        print(
            "error: --format svg needs Graphviz's `dot` (Debian/Ubuntu: apt-get install graphviz); "
            "--format dot or mermaid need nothing",
            file=sys.stderr,
        )
        return 2
    try:
        svg = subprocess.run(
            [dot, "-Tsvg"], input=render_dot(), capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"error: could not run {dot}: {exc}", file=sys.stderr)
        return 1
    if svg.returncode != 0 or not svg.stdout:
        detail = " ".join(svg.stderr.split())[:500] or "no output"
        print(f"error: {dot} -Tsvg failed (exit {svg.returncode}): {detail}", file=sys.stderr)
        return 1
    sys.stdout.write(svg.stdout)
    return 0
