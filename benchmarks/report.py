"""Tables of a result document: plain text for the terminal, Markdown for the docs."""

from __future__ import annotations

from typing import Any

from benchmarks.core import Figure, Target


def figures_of(entry: dict[str, Any]) -> list[Figure]:
    """Rebuild the figures of one case entry from its JSON."""
    out = []
    for key, f in entry.get("figures", {}).items():
        target = None if f["target"] is None else Target(f["target"]["op"], f["target"]["value"])
        out.append(Figure(key, f["label"], f["unit"], f["samples"], target))
    return out


def number(value: float) -> str:
    """A figure with about three significant digits, no exponent for ordinary sizes."""
    if value == 0 or value != value:
        return f"{value:g}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _verdict(figure: Figure) -> str:
    if figure.target is None:
        return ""
    return f"{'met' if figure.met else 'MISSED'} ({figure.target} {figure.unit})".replace(" )", ")")


def _rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, entry in result["cases"].items():
        if "skipped" in entry:
            rows.append((name, f"skipped: {entry['skipped']}", "", "", "", "", ""))
            continue
        if "error" in entry:
            rows.append((name, f"FAILED: {entry['error']}", "", "", "", "", ""))
        for f in figures_of(entry):
            rows.append(
                (name, f.label, number(f.median), number(f.min), number(f.max), f.unit, _verdict(f))
            )
    return rows


_HEADER = ("case", "figure", "median", "min", "max", "unit", "target")


def _summary(result: dict[str, Any]) -> str:
    m = result["machine"]
    # Results saved before the runner recorded its wall time have none.
    wall = f"; {result['seconds']:g} s in all" if "seconds" in result else ""
    return (
        f"{result['mode']} run {result['started_at']}{wall}; {m['nproc']} CPUs "
        f"({m['cpu_model']}), {m['ram_gib']} GiB, {m['python']}; load average before "
        f"{result['load_average_before']}, after {result['load_average_after']}"
    )


def text_table(result: dict[str, Any]) -> str:
    """The results as an aligned plain-text table."""
    rows = [_HEADER, *_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = [
        "  ".join(
            cell.rjust(w) if 2 <= i <= 4 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([_summary(result), "", *lines])


def markdown_table(result: dict[str, Any]) -> str:
    """The results as a Markdown table (what ``docs/performance.md`` shows)."""
    lines = [
        _summary(result),
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---:", "---", "---"]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(result)]
    return "\n".join(lines)
