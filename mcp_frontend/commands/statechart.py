"""``lmsorch statechart``: render the lifecycle table as Mermaid, DOT or SVG."""

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
    svg = subprocess.run(
        [dot, "-Tsvg"], input=render_dot(), capture_output=True, text=True, check=True
    )
    sys.stdout.write(svg.stdout)
    return 0
