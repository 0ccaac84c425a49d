"""The runner: ``python -m benchmarks [--quick] [--case NAME ...] [--check] [--json PATH]``.

Every repetition of a case runs in a fresh ``trio.run``; each figure is
summarised as the median of the repetitions, with min and max, and judged
against its target. The table goes to stdout (headed by the run's total wall
time, followed by which targets were met), the results to JSON. ``--check``
turns a missed target into a non-zero exit code, for use as a gate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks.core import Case, Skipped, summarise
from benchmarks.report import markdown_table, text_table

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


CASE_NAMES = (
    "coalescing",
    "hot_path",
    "verification",
    "scale",
    "mcp",
    "real_model",
    "storm",
    "startup",
    "swap",
    "agent",
    "memory",
    "names",
)
"""Every case, in the issue's order (listed here so ``--help`` imports no case)."""


def all_cases() -> list[Case]:
    """Every case, in :data:`CASE_NAMES` order."""
    from benchmarks import (
        case_agent,
        case_coalescing,
        case_hot_path,
        case_mcp,
        case_memory,
        case_names,
        case_real_model,
        case_scale,
        case_startup,
        case_storm,
        case_swap,
        case_verification,
    )

    cases = [
        case_coalescing.CASE,
        case_hot_path.CASE,
        case_verification.CASE,
        case_scale.CASE,
        case_mcp.CASE,
        case_real_model.CASE,
        case_storm.CASE,
        case_startup.CASE,
        case_swap.CASE,
        case_agent.CASE,
        case_memory.CASE,
        case_names.CASE,
    ]
    assert tuple(c.name for c in cases) == CASE_NAMES
    return cases


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the runner's options."""
    names = CASE_NAMES
    parser.add_argument(
        "--quick", action="store_true", help="few repetitions and small sizes (a smoke test)"
    )
    parser.add_argument(
        "--case",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this case (repeatable): {', '.join(names)}",
    )
    parser.add_argument(
        "--runs", type=int, metavar="N", help="repetitions per case (default: per case)"
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, metavar="PATH", help="where to write results"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit {MISSED_EXIT} if a judged target is missed (default: missed targets are "
        "reported only)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown (for the docs)"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="run nothing: print (and --update-doc with) the results saved in PATH",
    )
    parser.add_argument(
        "--update-doc",
        type=Path,
        metavar="MD",
        help="also replace the results table in this Markdown file (e.g. docs/performance.md)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile each case once (cProfile; tracemalloc sites for scale)",
    )


def run_case(case: Case, *, quick: bool, runs: int | None, profile: bool = False) -> dict[str, Any]:
    """Run ``case``'s repetitions; return its JSON entry (figures, or why it failed)."""
    import trio

    count = runs or (case.runs[1] if quick else case.runs[0])
    started = time.perf_counter()
    entry: dict[str, Any] = {"title": case.title, "notes": case.notes, "runs": count}
    samples: list[dict[str, float]] = []
    try:
        for _ in range(count):
            samples.append(trio.run(partial(case.run, quick)))
    except Skipped as exc:
        entry["skipped"] = str(exc)
    except Exception as exc:  # noqa: BLE001 (one broken case must not hide the others' figures)
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc()
    if profile and "error" not in entry and "skipped" not in entry:
        from benchmarks import profiling

        entry["profile"] = profiling.cpu_profile(case, quick=quick)
        if case.name == "scale":
            entry["profile"] += "\n\n" + profiling.actor_allocations(100 if quick else 1000)
    figures = summarise(case.metrics, samples, case.zero_when_absent) if samples else []
    entry["figures"] = {f.key: f.to_json() for f in figures}
    entry["seconds"] = round(time.perf_counter() - started, 2)
    entry["load_average_after"] = machine.load_average()
    return entry


def run(
    cases: Sequence[Case],
    *,
    quick: bool,
    runs: int | None,
    profile: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``cases`` and return the whole result document."""
    started = time.perf_counter()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "machine": machine.describe(),
        "load_average_before": machine.load_average(),
        "cases": {},
    }
    for case in cases:
        if progress:
            print(f"running {case.name} ...", file=sys.stderr, flush=True)
        result["cases"][case.name] = run_case(case, quick=quick, runs=runs, profile=profile)
    result["load_average_after"] = machine.load_average()
    # The whole run's wall time (cases, profiles, the runner's own work): what a full run costs.
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


DOC_START = "<!-- benchmark results: start (generated by python -m benchmarks --update-doc) -->"
DOC_END = "<!-- benchmark results: end -->"


def update_doc(path: Path, table: str) -> None:
    """Replace the text between the result markers in ``path`` with ``table``.

    Raises:
        ValueError: the file lacks the markers.
    """
    text = path.read_text(encoding="utf-8")
    start, end = text.find(DOC_START), text.find(DOC_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no results markers ({DOC_START!r} ... {DOC_END!r})")
    head = text[: start + len(DOC_START)]
    path.write_text(f"{head}\n\n{table}\n\n{text[end:]}", encoding="utf-8")


MISSED_EXIT = 3
"""The exit code of ``--check`` when a target was missed (1: a case failed to run)."""


def judged(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(met, missed)``: every judged figure of ``result`` as ``"case: label"``.

    A skipped case or one that failed has no figures to judge (it shows in the
    table, and a failed case sets the exit code on its own).
    """
    met: list[str] = []
    missed: list[str] = []
    for name, entry in result["cases"].items():
        for key, figure in entry.get("figures", {}).items():
            if figure["target"] is not None:
                (met if figure["met"] else missed).append(f"{name}: {figure['label']} ({key})")
    return met, missed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; exit 1 if a case failed, 3 with ``--check`` if a target was missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add_arguments(parser)
    return execute(parser.parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    """Run with parsed arguments (``python -m benchmarks``)."""
    from orchestrator.logs import configure_logging

    # Transition logs would interleave with the table and cost time the figures should not include.
    configure_logging("error")
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        selected = [c for c in all_cases() if not args.case or c.name in args.case]
        result = run(selected, quick=args.quick, runs=args.runs, profile=args.profile)
    print(markdown_table(result) if args.markdown else text_table(result))
    for name, entry in result["cases"].items():
        if "profile" in entry:
            print(f"\n## profile: {name}\n\n{entry['profile']}")
    if args.from_json is None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.json}", file=sys.stderr)
    if args.update_doc is not None:
        update_doc(args.update_doc, markdown_table(result))
        print(f"results table replaced in {args.update_doc}", file=sys.stderr)
    met, missed = judged(result)
    print(f"\ntargets: {len(met)} met, {len(missed)} missed")
    for label in missed:
        print(f"  MISSED {label}")
    failed = [name for name, entry in result["cases"].items() if "error" in entry]
    for name in failed:
        print(f"case {name} failed: {result['cases'][name]['error']}", file=sys.stderr)
    if failed:
        return 1
    return MISSED_EXIT if args.check and missed else 0
