"""Where the time and memory go: ``python -m benchmarks --profile`` adds these to a run.

``cpu_profile`` runs one extra repetition of a case under ``cProfile`` and
returns the top functions by own time (coroutine resumptions count as calls,
so ``ncalls`` overstates async functions) and that repetition's garbage
collections by generation. ``actor_allocations`` builds N idle
actors under ``tracemalloc`` and returns the top allocation sites per actor.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import time
import tracemalloc
from functools import partial

import trio

from benchmarks.core import Case
from orchestrator import Config, open_orchestrator
from orchestrator.testing import FakeBackend


def cpu_profile(case: Case, *, quick: bool, top: int = 25) -> str:
    """Run ``case`` once under cProfile; return the ``top`` functions by own time.

    The garbage collections of that run come after the table: cProfile charges a
    collection's pause to whichever function happened to allocate when it triggered.
    """
    profiler = cProfile.Profile()
    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    profiler.enable()
    try:
        trio.run(partial(case.run, quick))
    finally:
        profiler.disable()
        gc.callbacks.remove(pauses)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return f"{_trim(out.getvalue())}\n{pauses}"


class _GcPauses:
    """A ``gc.callbacks`` entry: how many collections of each generation, and their time."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.count[info["generation"]] += 1
        self.seconds[info["generation"]] += time.perf_counter() - self._started

    def __str__(self) -> str:
        parts = (
            f"generation {g}: {n} ({s * 1e3:.1f} ms)"
            for g, (n, s) in enumerate(zip(self.count, self.seconds, strict=True))
        )
        return f"garbage collections: {', '.join(parts)}"


def _trim(text: str) -> str:
    # Keep the table; drop the preamble's blank lines and shorten site-packages paths.
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(line.replace(_site_packages(), "") for line in lines)


def _site_packages() -> str:
    import trio as probe

    return str(probe.__file__).rsplit("trio/", 1)[0]


async def _allocations(models: int, top: int) -> str:
    names = [f"bench/alloc-{i:04d}" for i in range(models)]
    backend = FakeBackend(names)
    async with open_orchestrator(backend, Config(max_loaded_models=models)) as orch:
        await orch.catalog()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for name in names:
                await orch.ensure_loaded(name)
            backend.calls.clear()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    lines = [f"top allocation sites per idle actor ({models} actors):"]
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{frame.filename.replace(_site_packages(), '')}:{frame.lineno}"
        kb = stat.size_diff / models / 1024
        lines.append(f"  {kb:6.2f} KB  {stat.count_diff / models:5.1f} blocks  {where}")
    return "\n".join(lines)


def actor_allocations(models: int = 1000, top: int = 15) -> str:
    """Return the top ``tracemalloc`` sites of what one more idle actor costs."""
    return trio.run(_allocations, models, top)
