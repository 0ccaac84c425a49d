"""``python -m mutation``: mutation testing of the core (see ``docs/mutation.md``).

Usage::

    python -m mutation                 # every target; writes docs/mutation.md and the JSON
    python -m mutation --quick         # a fixed sample of 40 mutants; writes nothing
    python -m mutation --module orchestrator.names --jobs 2
    python -m mutation --list          # the mutants only, nothing is run
    python -m mutation --rerender      # the report again from the JSON (after a new verdict)

The exit code is 1 when a module misses its target or a mutant survives unjudged.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from mutation.operators import Mutant, enum_members, generate
from mutation.report import Row, Score, from_json, render_markdown, score, splice, to_json
from mutation.runner import preload, run_baseline, run_mutants
from mutation.targets import TARGETS, Target
from mutation.verdicts import EQUIVALENT

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "mutation.md"
JSON = ROOT / "docs" / "mutation.json"
QUICK = 40


def _mutants(target: Target, seed: int) -> list[Mutant]:
    enums = enum_members(sorted((ROOT / "orchestrator").glob("*.py")))
    mutants = generate(target.module, ROOT / target.path, enums)
    if target.sample is not None and target.sample < len(mutants):
        chosen = random.Random(seed).sample(mutants, target.sample)
        mutants = sorted(chosen, key=lambda m: m.index)
    return mutants


def _choose(targets: list[Target], seed: int, quick: bool) -> dict[str, list[Mutant]]:
    chosen = {t.module: _mutants(t, seed) for t in targets}
    if quick:
        pool = [m for ms in chosen.values() for m in ms]
        keep = {id(m) for m in random.Random(seed).sample(pool, min(QUICK, len(pool)))}
        chosen = {k: [m for m in ms if id(m) in keep] for k, ms in chosen.items()}
    return chosen


def _run(targets: list[Target], chosen: dict[str, list[Mutant]], jobs: int) -> list[Row]:
    preload()
    rows: list[Row] = []
    for target in targets:
        mutants = chosen[target.module]
        if not mutants:
            continue
        baseline = run_baseline(ROOT, ROOT / target.path, target.tests, timeout_s=600)
        # Generous: a loaded machine slows a child down; a hang still ends in seconds.
        timeout = 2 * baseline + 10
        print(f"{target.module}: {len(mutants)} mutants, baseline {baseline:.1f}s", flush=True)
        found = run_mutants(ROOT, ROOT / target.path, target.tests, mutants, timeout, jobs)
        rows += [Row.of(r) for r in found]
    return rows


def _scores(targets: list[Target], rows: list[Row], sampled: bool) -> list[Score]:
    return [
        score(
            t.module,
            [r for r in rows if r.module == t.module],
            EQUIVALENT.get(t.module, {}),
            t.target,
            sampled or t.sample is not None,
        )
        for t in targets
        if any(r.module == t.module for r in rows)
    ]


def _summary(scores: list[Score], count: int, seconds: float) -> None:
    for s in scores:
        status = "ok" if s.passed else "FAIL"
        print(f"{s.module}: {s.percent:.1f}% of {s.total} (target {s.target:.0f}%) {status}")
        for r in s.unjudged:
            print(f"  survived, not judged: line {r.line}: {r.source} | {r.edit}")
        for key in s.stale:
            print(f"  stale verdict: {key}")
    print(f"{count} mutants in {seconds:.0f}s")


def main(argv: list[str] | None = None) -> int:
    """Run the mutation pass; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"a sample of {QUICK} mutants")
    parser.add_argument("--module", action="append", help="only this module (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    parser.add_argument("--seed", type=int, default=23, help="for the samples")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--rerender", action="store_true", help="the report again from the JSON")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.module or t.module in args.module]
    write = not (args.quick or args.no_write)
    if args.rerender:
        targets = list(TARGETS)
        rows, seconds = from_json(JSON.read_text())
    else:
        chosen = _choose(targets, args.seed, args.quick)
        if args.list:
            for m in (m for ms in chosen.values() for m in ms):
                print(f"{m.module}:{m.line} [{m.kind}] {m.description}")
            return 0
        started = time.monotonic()
        rows = _run(targets, chosen, args.jobs)
        seconds = time.monotonic() - started
        if write and args.module and JSON.exists():  # some modules again: keep the others
            kept, before = from_json(JSON.read_text())
            rows = [r for r in kept if r.module not in args.module] + rows
            order = {t.module: i for i, t in enumerate(TARGETS)}
            rows.sort(key=lambda r: order[r.module])
            seconds += before
            targets = list(TARGETS)
        if write:
            JSON.write_text(to_json(rows, seconds))
    scores = _scores(targets, rows, args.quick)
    _summary(scores, len(rows), seconds)
    if write:
        splice(DOC, render_markdown(scores, rows, EQUIVALENT, seconds))
    return 0 if all(s.passed for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
