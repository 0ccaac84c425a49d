"""What a benchmark case is, how its figures are summarised and judged against targets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["<=", ">=", "=="]


@dataclass(frozen=True)
class Target:
    """A threshold a figure's median must meet."""

    op: Op
    value: float

    def met(self, figure: float) -> bool:
        if self.op == "<=":
            return figure <= self.value
        if self.op == ">=":
            return figure >= self.value
        return figure == self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Metric:
    """A declared figure: its key in a run's result, label, unit and optional target."""

    key: str
    label: str
    unit: str = ""
    target: Target | None = None


class Skipped(Exception):
    """Raised by a case that cannot run here (e.g. the real model is missing); says why."""


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes:
        name: the ``--case`` name.
        title: one line for the table.
        metrics: declared figures, in display order (a run may add undeclared ones).
        run: one repetition; gets ``quick`` and returns figures by key. Run under
            ``trio.run`` afresh for every repetition.
        runs: repetitions in full mode and in quick mode.
        notes: what the figures mean, for the report.
        zero_when_absent: key prefixes of counts and rates a run reports only when
            they occurred (e.g. one error rate per exception class); a run without
            such a key counts as 0 (see :func:`summarise`).
    """

    name: str
    title: str
    metrics: Sequence[Metric]
    run: Callable[[bool], Awaitable[dict[str, float]]]
    runs: tuple[int, int] = (5, 1)
    notes: str = ""
    zero_when_absent: tuple[str, ...] = ()


@dataclass
class Figure:
    """A figure summarised over repetitions."""

    key: str
    label: str
    unit: str
    samples: list[float]
    target: Target | None = None
    median: float = field(init=False)
    min: float = field(init=False)
    max: float = field(init=False)

    def __post_init__(self) -> None:
        self.median = statistics.median(self.samples)
        self.min = min(self.samples)
        self.max = max(self.samples)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.median)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "samples": self.samples,
            "target": None
            if self.target is None
            else {"op": self.target.op, "value": self.target.value},
            "met": self.met,
        }


def summarise(
    metrics: Sequence[Metric],
    runs: Sequence[dict[str, float]],
    zero_when_absent: tuple[str, ...] = (),
) -> list[Figure]:
    """Return one figure per key seen in ``runs``: declared ones first, in order.

    A key starting with one of ``zero_when_absent`` is 0 in a run that lacks it,
    so its median, min and max are over every run: taken only over the runs where
    it occurred, a rare error would look as frequent as where it happened. Other
    keys are summarised over the runs that have them (a figure only full mode
    produces is in every full run and in no quick one).
    """
    declared = {m.key: m for m in metrics}
    keys = [m.key for m in metrics if any(m.key in r for r in runs)]
    keys += sorted({k for r in runs for k in r} - set(keys))
    figures = []
    for key in keys:
        meta = declared.get(key, Metric(key, key))
        if key.startswith(zero_when_absent):
            samples = [r.get(key, 0.0) for r in runs]
        else:
            samples = [r[key] for r in runs if key in r]
        figures.append(Figure(key, meta.label, meta.unit, samples, meta.target))
    return figures


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def at_most(value: float) -> Target:
    return Target("<=", value)


def at_least(value: float) -> Target:
    return Target(">=", value)


def exactly(value: float) -> Target:
    return Target("==", value)
