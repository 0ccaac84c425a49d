"""The benchmark runner works: ``python -m benchmarks --quick`` yields every case's figures.

A smoke test of the runner, not of speed: it asserts that the figures are
consistent (counts add up, rates are rates, one load per burst), nothing about
how fast anything is (the figures are in ``docs/performance.md``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.case_storm import ERROR_RATE_OF
from benchmarks.core import Metric, summarise
from benchmarks.runner import CASE_NAMES, DOC_END, DOC_START, MISSED_EXIT

REPO = Path(__file__).resolve().parent.parent


def test_quick_run_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--markdown", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
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
    assert {"to_load_ms", "fanout_ms", "overhead_ms"} <= figures["coalescing"]
    assert {"p50_us", "p99_us", "leases_per_s"} <= figures["hot_path"]
    assert {"bridge_sleep_s", "lag_0ms_ms", "lag_0ms_bridge_ms", "lag_0ms_ratio"} <= figures[
        "verification"
    ]
    assert {"kb_per_actor_10", "leases_per_s_100"} <= figures["scale"]
    assert {"memory_added_p50_ms", "stdio_added_p50_ms"} <= figures["mcp"]
    assert {"orch_cold_first_token_s", "tokens_per_s_ratio"} <= figures["real_model"]
    assert {"requests", "answered", "error_rate", "wait_p99_ms", "loads_total"} <= figures["storm"]
    assert {"uniform_completed_ratio", "uniform_p99_ratio", "uniform_max_wait_over_bound"} <= (
        figures["swap"]
    )
    assert {"round_trip_p50_us", "lease_over_round_trip"} <= figures["hot_path"]
    assert {"p50_s", "p95_s", "p99_s", "runs_per_s"} <= figures["agent"]
    assert {"orch_rss_mb", "workers_pss_mb", "total_pss_mb"} <= figures["memory"]
    assert {"typical_us", "longest_us", "refused_us"} <= figures["names"]
    # The run ends with how many judged targets were met (a miss is no error without --check).
    verdicts = [f["met"] for e in result["cases"].values() for f in e["figures"].values()]
    met, missed = verdicts.count(True), verdicts.count(False)
    assert f"targets: {met} met, {missed} missed" in done.stdout
    _assert_sane(result)

    # The run's wall time is recorded, covers every case, and heads the table.
    assert sum(e["seconds"] for e in result["cases"].values()) <= result["seconds"] + 0.1
    wall = f"{result['seconds']:g} s in all"
    assert wall in done.stdout

    # --update-doc writes the same table, wall time included, between the markers.
    doc = tmp_path / "performance.md"
    doc.write_text(f"# before\n\n{DOC_START}\nold table\n{DOC_END}\n\nafter\n", encoding="utf-8")
    rendered = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--from-json", str(out), "--update-doc", str(doc)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    text = doc.read_text(encoding="utf-8")
    assert "old table" not in text
    assert text.startswith("# before\n")
    assert text.endswith("after\n")
    assert wall in text.split(DOC_START, 1)[1].split(DOC_END, 1)[0]


POSITIVE = {
    "coalescing": ("answered", "answered_default"),
    "hot_path": ("p50_us", "leases_per_s", "leases_per_cpu_s"),
    "verification": ("lag_0ms_ms", "lag_0ms_ratio"),
    "scale": ("kb_metrics_per_actor_10", "leases_per_s_10", "leases_per_s_100"),
    "mcp": ("memory_direct_p50_ms", "stdio_direct_p50_ms", "memory_mcp_p50_ms", "stdio_mcp_p50_ms"),
    "real_model": ("orch_cold_first_token_s", "direct_tokens_per_s", "orch_tokens_per_s"),
    "storm": ("answered", "answered_per_s"),
    "startup": ("bare_s", "lmsorch_s", "ratio"),
    "swap": ("uniform_fifo_per_min", "uniform_swap_aware_per_min", "uniform_completed_ratio"),
    "agent": ("p50_s", "runs_per_s", "bare_session_p50_s"),
    "memory": ("orch_idle_rss_mb", "orch_pss_mb", "workers_pss_mb", "model_file_mb"),
    "names": ("typical_us", "longest_us", "refused_us"),
}
"""Figures that are above 0 in any working run (something was answered, measured, streamed)."""

NON_NEGATIVE = {
    "coalescing": ("refused", "refused_default", "to_load_ms", "fanout_ms"),
    "storm": ("faults_injected", "loads_min_per_model", "wait_p50_ms"),
}

ORDERED = [
    ("hot_path", ("p50_us", "p99_us")),
    ("agent", ("p50_s", "p95_s", "p99_s")),
    ("memory", ("workers_pss_mb", "workers_rss_mb")),
    ("memory", ("orch_pss_mb", "orch_rss_mb")),
    ("memory", ("workers_pss_mb", "total_pss_mb")),
    ("mcp", ("memory_mcp_p50_ms", "memory_mcp_p99_ms")),
    ("mcp", ("stdio_mcp_p50_ms", "stdio_mcp_p99_ms")),
    ("scale", ("kb_metrics_per_actor_10", "kb_per_actor_10")),
    ("storm", ("answered", "requests")),
    ("storm", ("wait_p50_ms", "wait_p99_ms")),
    ("storm", ("loads_min_per_model", "loads_max_per_model", "loads_total")),
    ("swap", ("uniform_fifo_wait_p50_s", "uniform_fifo_wait_p99_s", "uniform_fifo_wait_max_s")),
    (
        "swap",
        (
            "uniform_swap_aware_wait_p50_s",
            "uniform_swap_aware_wait_p99_s",
            "uniform_swap_aware_wait_max_s",
        ),
    ),
]
"""Figures that cannot decrease left to right (a part and its whole, a p50 and its p99)."""


def _assert_sane(result: dict[str, Any]) -> None:
    """Whatever the machine's speed: counts add up, rates are rates, one load per burst."""

    def get(case: str, key: str) -> float:
        value: float = result["cases"][case]["figures"][key]["median"]
        return value

    for case, keys in POSITIVE.items():
        for key in keys:
            assert get(case, key) > 0, (case, key)
    for case, keys in NON_NEGATIVE.items():
        for key in keys:
            assert get(case, key) >= 0, (case, key)
    for case, keys in ORDERED:
        values = [get(case, key) for key in keys]
        assert values == sorted(values), (case, keys, values)

    # Swap: one slot, so the backend never held more than one model, whichever the policy.
    for policy in ("fifo", "swap_aware"):
        assert get("swap", f"uniform_{policy}_most_loaded") == 1
        assert get("swap", f"uniform_{policy}_errors") == 0

    # Coalescing: one load per burst, and the overhead is exactly its two parts.
    assert get("coalescing", "loads") == get("coalescing", "loads_default") == 1
    parts = get("coalescing", "to_load_ms") + get("coalescing", "fanout_ms")
    assert math.isclose(get("coalescing", "overhead_ms"), parts, rel_tol=1e-6, abs_tol=1e-6)

    # Verification: the fixed-sleep verifier was run (not computed): it waited out its sleep.
    sleep_ms = get("verification", "bridge_sleep_s") * 1e3
    for key in result["cases"]["verification"]["figures"]:
        if key.endswith("_bridge_ms"):
            lag_ms = float(key.removeprefix("lag_").removesuffix("ms_bridge_ms"))
            # 1 ms of slack: trio's clock and perf_counter may round a sleep's end differently.
            assert get("verification", key) >= sleep_ms - lag_ms - 1, key

    assert get("real_model", "tokens_per_answer") >= 1

    # Storm: every request answered or failed by kind; rates in [0, 1] that add up.
    kinds = [k for k in result["cases"]["storm"]["figures"] if k.startswith(ERROR_RATE_OF)]
    for key in ["error_rate", *kinds]:
        assert 0 <= get("storm", key) <= 1, key
    failed = get("storm", "requests") - get("storm", "answered")
    assert math.isclose(get("storm", "error_rate") * get("storm", "requests"), failed)
    assert math.isclose(sum(get("storm", k) for k in kinds), get("storm", "error_rate"))


def test_a_kind_absent_from_a_run_counts_as_zero() -> None:
    # A rare error (one run in three) must not get the median of the run where it occurred.
    kind = f"{ERROR_RATE_OF}X"
    runs = [{"rate": 0.5, kind: 0.3}, {"rate": 0.4}, {"rate": 0.6}]
    rate, x = summarise([Metric("rate", "rate")], runs, (ERROR_RATE_OF,))
    assert (rate.median, rate.samples) == (0.5, [0.5, 0.4, 0.6])
    assert (x.median, x.min, x.max, x.samples) == (0.0, 0.0, 0.3, [0.3, 0.0, 0.0])
    # Without the prefix a figure is summarised over the runs that have it (mode-dependent ones).
    plain = {f.key: f for f in summarise([], runs)}
    assert plain[kind].samples == [0.3]


def _document(met: bool) -> dict[str, Any]:
    """A saved result with one judged figure, met or not, and one without a target."""

    def figure(value: float, target: dict[str, Any] | None) -> dict[str, Any]:
        ok = None if target is None else met
        return {
            "label": "x", "unit": "", "median": value, "min": value, "max": value,
            "samples": [value], "target": target, "met": ok,
        }  # fmt: skip

    return {
        "started_at": "2026-12-04T00:00:00+00:00",
        "mode": "quick",
        "machine": {"nproc": 1, "cpu_model": "cpu", "ram_gib": 1, "python": "CPython"},
        "load_average_before": [0, 0, 0],
        "load_average_after": [0, 0, 0],
        "cases": {
            "names": {
                "runs": 1,
                "figures": {
                    "typical_us": figure(1.0 if met else 200.0, {"op": "<=", "value": 100}),
                    "other": figure(5.0, None),
                },
            }
        },
    }


def test_check_exits_non_zero_only_when_a_judged_target_is_missed(tmp_path: Path) -> None:
    codes = {}
    for met in (True, False):
        saved = tmp_path / f"{met}.json"
        saved.write_text(json.dumps(_document(met)), encoding="utf-8")
        for check in (False, True):
            argv = ["--from-json", str(saved), *(["--check"] if check else [])]
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks", *argv],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            codes[met, check] = done.returncode
            expected = "targets: 1 met, 0 missed" if met else "targets: 0 met, 1 missed"
            assert expected in done.stdout, done.stdout
            assert ("MISSED names: x (typical_us)" in done.stdout) is not met

    assert codes == {
        (True, False): 0,
        (True, True): 0,
        (False, False): 0,
        (False, True): MISSED_EXIT,
    }
