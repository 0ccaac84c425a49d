"""Resource probes for the reliability tests: trio tasks, file descriptors, child processes.

Each returns a plain value so a test can take a baseline, run, and compare;
:func:`counting_unraisable` keeps unraisable exceptions as text only.
"""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

__all__ = [
    "ACTOR_CHILD_TASKS",
    "EXPECTED_UNRAISABLE",
    "actor_child_tasks",
    "child_pids",
    "counting_unraisable",
    "open_fds",
    "pid_alive",
    "task_names",
    "traced_bytes",
]

ACTOR_CHILD_TASKS = ("operations.load", "operations.verify", "operations.unload")
"""The actor's per-operation child tasks: none may outlive a settled actor."""

# The simulator's server and connection tasks come and go with client connections;
# they belong to the test rig, not to the product, so task counts leave them out.
_RIG_PREFIXES = ("tests.fakes.", "hypercorn.")


def task_names(*, include_rig: bool = False) -> Counter[str]:
    """Count the live trio tasks of this run by name (the whole task tree)."""
    names: Counter[str] = Counter()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        if not include_rig and task.name.startswith(_RIG_PREFIXES):
            continue
        names[task.name] += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return names


def actor_child_tasks() -> list[str]:
    """Names of live load, verify and unload tasks of any actor."""
    return [
        name
        for name, count in task_names().items()
        for _ in range(count)
        if name.endswith(ACTOR_CHILD_TASKS)
    ]


def open_fds() -> int:
    """How many file descriptors this process has open.

    Collects garbage first: a socket or pipe an earlier test dropped without closing is
    closed only when it is collected, which would otherwise happen at a random point of
    the measured run and make a baseline one too high.
    """
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def child_pids() -> set[int]:
    """Direct child processes of this process (zombies included: they are leaks too)."""
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        pids.update(int(p) for p in children.read_text().split())
    return pids


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (a zombie counts as alive: not reaped)."""
    return Path(f"/proc/{pid}").exists()


EXPECTED_UNRAISABLE = {
    "Async generator 'httpx.": "response body generator finalized by trio",
    "Async generator 'httpcore.": "response body generator finalized by trio",
    "ByteStream.__aiter__": "request body generator left to the GC (encode/httpx#3686)",
}
"""Unraisable exceptions expected under faults, by a fragment of their text -> kind.

Both are httpx async generators left to the garbage collector when a body is
abandoned half-way: a response body cut at its limit or dropped by a restart
(trio finalizes it and warns), and a request body whose connection dropped
mid-send (encode/httpx#3686, fix pending in #3777)."""


@contextmanager
def counting_unraisable(counts: Counter[str], unexpected: list[str]) -> Iterator[None]:
    """Count the expected unraisable exceptions by kind; describe any other in ``unexpected``.

    Stands in for pytest's hook meanwhile: that one keeps every unraisable exception,
    traceback and all, until the test ends, and a traceback taken while a body was
    being read holds that frame, and so the body buffered so far (up to 8 MiB), which
    would count as the product's memory. This hook keeps one line of text.
    """

    def hook(unraisable: Any) -> None:
        text = f"{unraisable.err_msg or ''} {unraisable.object!r} {unraisable.exc_value!r}"
        kind = next((k for f, k in EXPECTED_UNRAISABLE.items() if f in text), None)
        if kind is None:
            unexpected.append(f"unraisable exception: {text[:300]}")
        else:
            counts[kind] += 1

    previous = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()  # what was left to the collector is reported here, not later
        sys.unraisablehook = previous


def traced_bytes(exclude: Sequence[str]) -> int:
    """Bytes ``tracemalloc`` traces after a full collection, less files matching ``exclude``.

    Each pattern is an :mod:`fnmatch` pattern over file names (the rig's own
    allocations, such as ``*/tests/fakes/*``); tracemalloc's own are always left out.
    """
    gc.collect()
    filters = [tracemalloc.Filter(False, pattern) for pattern in exclude]
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [*filters, tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))
