"""``python -m mutation``: mutation testing of the core (see ``docs/mutation.md``).

Usage::

    python -m mutation                 # every target, writes docs/mutation.md and the JSON
    python -m mutation --quick         # a fixed sample of 40 mutants, writes nothing
    python -m mutation --module orchestrator.names --jobs 2
    python -m mutation --list          # the mutants only, nothing is run

The exit code is 1 when a module misses its target or a mutant survives unjudged.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from mutation.operators import Mutant, enum_members, generate
from mutation.report import render_markdown, score, splice, to_json
from mutation.runner import Result, preload, run_baseline, run_mutants
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


def main(argv: list[str] | None = None) -> int:
    """Run the mutation pass; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"a sample of {QUICK} mutants")
    parser.add_argument("--module", action="append", help="only this module (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    parser.add_argument("--seed", type=int, default=23, help="for the samples")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.module or t.module in args.module]
    chosen = {t.module: _mutants(t, args.seed) for t in targets}
    if args.quick:
        pool = [m for ms in chosen.values() for m in ms]
        keep = {id(m) for m in random.Random(args.seed).sample(pool, min(QUICK, len(pool)))}
        chosen = {k: [m for m in ms if id(m) in keep] for k, ms in chosen.items()}
    if args.list:
        for ms in chosen.values():
            for m in ms:
                print(f"{m.module}:{m.line} [{m.kind}] {m.description}")
        return 0
    preload()
    started = time.monotonic()
    results: list[Result] = []
    scores = []
    for target in targets:
        mutants = chosen[target.module]
        if not mutants:
            continue
        baseline = run_baseline(ROOT, ROOT / target.path, target.tests, timeout_s=600)
        timeout = 3 * baseline + 10
        print(f"{target.module}: {len(mutants)} mutants, baseline {baseline:.1f}s", flush=True)
        found = run_mutants(ROOT, ROOT / target.path, target.tests, mutants, timeout, args.jobs)
        results += found
        verdicts = EQUIVALENT.get(target.module, {})
        sampled = target.sample is not None or args.quick
        scores.append(score(target.module, found, verdicts, target.target, sampled))
    seconds = time.monotonic() - started
    for s in scores:
        status = "ok" if s.passed else "FAIL"
        print(f"{s.module}: {s.percent:.1f}% of {s.total} (target {s.target:.0f}%) {status}")
        for r in s.unjudged:
            print(f"  survived, not judged: line {r.mutant.line}: {r.mutant.description}")
        for key in s.stale:
            print(f"  stale verdict: {key}")
    print(f"{len(results)} mutants in {seconds:.0f}s")
    if not (args.quick or args.module or args.no_write):
        JSON.write_text(to_json(results, EQUIVALENT))
        splice(DOC, render_markdown(scores, results, EQUIVALENT, seconds))
    return 0 if all(s.passed for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
