"""The benchmark runner works: ``python -m benchmarks --quick`` yields every case's figures.

A smoke test of the runner, not of speed: it asserts nothing about how fast
anything is (the figures are in ``docs/performance.md``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from benchmarks.runner import CASE_NAMES

REPO = Path(__file__).resolve().parent.parent


def test_quick_run_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--markdown", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))

    assert result["mode"] == "quick"
    assert result["machine"]["nproc"] >= 1
    assert len(result["load_average_before"]) == 3
    assert list(result["cases"]) == list(CASE_NAMES)
    for name, entry in result["cases"].items():
        assert "error" not in entry, (name, entry.get("traceback"))
        assert "skipped" not in entry, (name, entry["skipped"])
        assert entry["figures"], name
        for key, figure in entry["figures"].items():
            assert len(figure["samples"]) == entry["runs"] == 1, (name, key)
            assert all(math.isfinite(x) for x in figure["samples"]), (name, key)
            assert figure["min"] <= figure["median"] <= figure["max"], (name, key)
            assert (figure["met"] is None) == (figure["target"] is None), (name, key)
        # The Markdown table has a row per figure, each target judged met or MISSED.
        rows = [line for line in done.stdout.splitlines() if line.startswith(f"| {name} |")]
        assert len(rows) == len(entry["figures"]), name
        judged = [row for row in rows if "met (" in row or "MISSED (" in row]
        assert len(judged) == sum(f["target"] is not None for f in entry["figures"].values())

    # The figures a case must produce even in quick mode (its targets, mostly).
    figures = {name: set(entry["figures"]) for name, entry in result["cases"].items()}
    assert {"loads", "refused", "loads_default", "refused_default"} <= figures["coalescing"]
    assert {"p50_us", "p99_us", "leases_per_s"} <= figures["hot_path"]
    assert {"lag_0ms_ms", "lag_0ms_ratio"} <= figures["verification"]
    assert {"kb_per_actor_10", "leases_per_s_100"} <= figures["scale"]
    assert {"memory_added_p50_ms", "stdio_added_p50_ms"} <= figures["mcp"]
    assert {"orch_cold_first_token_s", "tokens_per_s_ratio"} <= figures["real_model"]
    assert {"requests", "answered", "error_rate", "wait_p99_ms", "loads_total"} <= figures["storm"]
    # The one-load-per-burst property holds whatever the machine's speed.
    assert result["cases"]["coalescing"]["figures"]["loads"]["median"] == 1
