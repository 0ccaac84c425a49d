"""The shipped Grafana dashboard, Prometheus example and metrics reference match the code."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from orchestrator import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
_NAME = re.compile(r"\blmsorch_[a-z_]+\b")
_SELECTOR = re.compile(r"\b(lmsorch_[a-z_]+)\{([^}]*)\}")


def _families() -> dict[str, tuple[str, set[str]]]:
    """Every exported family: name -> (type, label names), read back from the exposition."""
    metrics = Metrics()
    metrics.register_model("m")  # families built at scrape time show their labels on samples
    parsed = list(text_string_to_metric_families(metrics.exposition().decode()))
    families = {f.name: f.type for f in parsed}
    labels = {
        collected.name: set(getattr(metric, "_labelnames", ()))
        for metric in metrics.__dict__.values()
        if hasattr(metric, "_labelnames")
        for collected in metric.collect()
    }
    for family in parsed:
        for sample in family.samples:
            labels.setdefault(family.name, set()).update(sample.labels)
    return {name: (kind, labels.get(name, set())) for name, kind in families.items()}


def _sample_names() -> dict[str, str]:
    """Every sample name a query may use -> its family."""
    return {
        family + suffix: family
        for family, (kind, _labels) in _families().items()
        for suffix in _SUFFIXES[kind]
    }


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_the_dashboard_is_valid_json_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert dashboard["title"]
    assert dashboard["uid"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = _exprs(dashboard)
    assert exprs
    samples = _sample_names()
    families = _families()
    used: set[str] = set()
    for expr in exprs:
        names = _NAME.findall(expr)
        assert names, f"no lmsorch metric in {expr!r}"
        for name in names:
            assert name in samples, f"{name!r} (in {expr!r}) is not exported"
            used.add(samples[name])
        for name, matchers in _SELECTOR.findall(expr):
            family = samples[name]
            for matcher in filter(None, (m.strip() for m in matchers.split(","))):
                label = re.split(r"[=!~]", matcher, maxsplit=1)[0].strip()
                assert label in families[family][1], f"{family} has no label {label!r}"
        assert expr.count("(") == expr.count(")"), expr
    assert used == set(families), f"not on the dashboard: {set(families) - used}"


def test_the_metrics_reference_lists_every_metric_and_label() -> None:
    reference = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for family, (kind, labels) in _families().items():
        name = family + ("_total" if kind == "counter" else "")
        row = next((line for line in reference.splitlines() if f"`{name}`" in line), None)
        assert row is not None, f"{name} is not in docs/metrics.md"
        assert f"| {kind} |" in row, name
        for label in labels:
            assert f"`{label}`" in row, f"{name}: label {label} is not documented"


def _logger_name(node: ast.expr) -> str | None:
    """``_log`` for ``_log``, ``_log.bind(...)``, ``log.bind(...).bind(...)``; else None."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr != "bind":
            return None
        node = node.func.value
    return node.id if isinstance(node, ast.Name) else None


def _loggers(tree: ast.Module) -> set[str]:
    """The names a module binds to a structlog logger, whatever they are called.

    ``x = structlog.get_logger(...)``, then (to a fixed point) ``y = x.bind(...)``.
    """
    assigns = [
        (target.id, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    found = {
        name
        for name, value in assigns
        if isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "get_logger"
    }
    while grown := {name for name, value in assigns if _logger_name(value) in found} - found:
        found |= grown
    return found


def _emitted_events() -> dict[str, list[str]]:
    """Every event logged in orchestrator/ and mcp_frontend/ -> where (file:line)."""
    events: dict[str, list[str]] = {}
    for package in ("orchestrator", "mcp_frontend"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            loggers = _loggers(tree)
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _LOG_METHODS
                    and _logger_name(node.func.value) in loggers
                ):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                args = node.args[1:] if node.func.attr == "log" else node.args  # log(level, ev)
                event = args[0] if args else None
                literal = event.value if isinstance(event, ast.Constant) else None
                assert isinstance(literal, str), f"{where}: the event must be a string literal"
                events.setdefault(literal, []).append(where)
    return events


def test_the_event_scan_finds_loggers_whatever_their_name() -> None:
    tree = ast.parse(
        "import structlog\n"
        "logger = structlog.get_logger('x')\n"
        "def f():\n"
        "    bound = logger.bind(model='m')\n"
        "    bound.bind(a=1).warning('seen', n=1)\n"
        "    parser.error('--flag is required')\n"
    )
    assert _loggers(tree) == {"logger", "bound"}


def _documented_events() -> set[str]:
    """The events of the table under "## Log events" in docs/metrics.md."""
    reference = (DOCS / "metrics.md").read_text(encoding="utf-8")
    section = reference.split("\n## Log events\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_the_log_events_reference_matches_the_code_both_ways() -> None:
    emitted = _emitted_events()
    documented = _documented_events()
    assert {"transition", "load", "lmstudio_load", "inference_error"} <= emitted.keys()
    undocumented = {event: emitted[event] for event in emitted.keys() - documented}
    assert not undocumented, f"not in docs/metrics.md: {undocumented}"
    assert not documented - emitted.keys(), (
        f"documented, never logged: {documented - emitted.keys()}"
    )


def test_every_metric_the_reference_names_is_exported() -> None:
    reference = (DOCS / "metrics.md").read_text(encoding="utf-8")
    known = set(_sample_names()) | set(_families())  # histograms are documented by family
    named = set(_NAME.findall(reference))
    assert "lmsorch_model_load_duration_seconds_bucket" in named  # the scan sees the queries
    assert not named - known, f"in docs/metrics.md, not exported: {named - known}"


def test_the_prometheus_example_scrapes_metrics_without_inlining_a_token() -> None:
    text = (DOCS / "prometheus.yml").read_text(encoding="utf-8")
    assert text.count("metrics_path: /metrics") == 2
    assert "credentials_file:" in text
    assert "credentials:" not in text.replace("credentials_file:", "")
    assert "\t" not in text  # YAML forbids tabs for indentation
