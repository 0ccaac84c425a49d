"""The shipped Grafana dashboard, Prometheus example and metrics reference match the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from orchestrator import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
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


def test_the_prometheus_example_scrapes_metrics_without_inlining_a_token() -> None:
    text = (DOCS / "prometheus.yml").read_text(encoding="utf-8")
    assert text.count("metrics_path: /metrics") == 2
    assert "credentials_file:" in text
    assert "credentials:" not in text.replace("credentials_file:", "")
    assert "\t" not in text  # YAML forbids tabs for indentation
