"""Test helpers for code that uses the orchestrator: a scriptable :class:`FakeBackend`.

Example::

    backend = FakeBackend(["qwen", "llama"])
    backend.script("qwen").fail_times = 2          # two transient failures, then success
    backend.script("llama").never_listed = True     # load "succeeds" but never appears
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded("qwen")
    assert backend.count("load", "qwen") == 3

It implements :class:`~orchestrator.backends.base.Backend` in memory, records
every call, and honours trio cancellation (a hung load returns only when
cancelled), so tests can run on trio's virtual clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import trio

from orchestrator.backends.base import BackendHealth, LoadedModel, ModelInfo
from orchestrator.errors import BackendUnreachable, OrchestratorError, UnknownModel

__all__ = ["Call", "FakeBackend", "ModelScript"]


@dataclass(frozen=True)
class Call:
    """One recorded backend call."""

    method: str
    model: str | None
    at: float
    ttl_s: float | None = None


@dataclass
class ModelScript:
    """How the fake backend behaves for one model. Change fields at any time.

    Attributes:
        load_delay_s: time a load takes (virtual time under ``autojump_clock``).
        fail_times: the next this-many loads fail with ``error``.
        fail_always: every load fails with ``error``.
        error: makes the failure; a transient ``BackendUnreachable`` by default.
        hang: loads never finish (until cancelled).
        never_listed: loads succeed but the model never appears in ``list_loaded``.
        gate: when set, loads wait for this event before finishing.
        unload_delay_s: time an unload takes.
    """

    load_delay_s: float = 0.0
    fail_times: int = 0
    fail_always: bool = False
    error: Callable[[], OrchestratorError] = field(
        default=lambda: BackendUnreachable("connection refused (scripted)")
    )
    hang: bool = False
    never_listed: bool = False
    gate: trio.Event | None = None
    unload_delay_s: float = 0.0


class FakeBackend:
    """An in-memory, scriptable backend that records every call.

    Args:
        models: model keys (or full :class:`ModelInfo`) in the catalogue.
    """

    name = "fake"

    def __init__(self, models: Iterable[str | ModelInfo] = ("model-a",)) -> None:
        self.catalog: dict[str, ModelInfo] = {}
        for item in models:
            info = ModelInfo(key=item) if isinstance(item, str) else item
            self.catalog[info.key] = info
        self.loaded: dict[str, LoadedModel] = {}
        self.calls: list[Call] = []
        self.scripts: dict[str, ModelScript] = {}
        self.unreachable = False
        self.loads_in_flight: dict[str, int] = {}
        self.max_concurrent_loads: dict[str, int] = {}
        self.closed = False

    # -- scripting and inspection --

    def script(self, model: str) -> ModelScript:
        """Return (creating it) the script for ``model``."""
        return self.scripts.setdefault(model, ModelScript())

    def vanish(self, model: str) -> None:
        """Drop ``model`` from the loaded list, as an eviction behind our back would."""
        self.loaded.pop(model, None)

    def preload(self, model: str, ttl_s: float | None = None) -> None:
        """Mark ``model`` as already loaded (as if loaded before we started)."""
        self.loaded[model] = LoadedModel(identifier=model, key=model, ttl_s=ttl_s)

    def count(self, method: str, model: str | None = None) -> int:
        """Return how many calls of ``method`` (for ``model``, if given) were made."""
        return sum(1 for c in self.calls if c.method == method and model in (None, c.model))

    # -- the Backend protocol --

    def _record(self, method: str, model: str | None = None, ttl_s: float | None = None) -> None:
        self.calls.append(Call(method, model, trio.current_time(), ttl_s))
        if self.unreachable:
            raise BackendUnreachable("fake backend is unreachable (scripted)")

    async def list_available(self) -> list[ModelInfo]:
        """Return the catalogue."""
        self._record("list_available")
        await trio.lowlevel.checkpoint()
        return list(self.catalog.values())

    def catalog_problem(self) -> str | None:
        """The fake's catalogue is always complete."""
        return None

    async def list_loaded(self) -> list[LoadedModel]:
        """Return the loaded models."""
        self._record("list_loaded")
        await trio.lowlevel.checkpoint()
        return list(self.loaded.values())

    async def load(
        self, key: str, *, identifier: str, ttl_s: float, context_length: int | None = None
    ) -> None:
        """Load per the model's script."""
        self._record("load", key, ttl_s)
        if key not in self.catalog:
            raise UnknownModel(key, list(self.catalog))
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise AssertionError(f"load without a finite TTL: {ttl_s!r}")
        script = self.script(key)
        self.loads_in_flight[key] = self.loads_in_flight.get(key, 0) + 1
        self.max_concurrent_loads[key] = max(
            self.max_concurrent_loads.get(key, 0), self.loads_in_flight[key]
        )
        try:
            if script.hang:
                await trio.sleep_forever()
            if script.gate is not None:
                await script.gate.wait()
            await trio.sleep(script.load_delay_s)
            if script.fail_always:
                raise script.error()
            if script.fail_times > 0:
                script.fail_times -= 1
                raise script.error()
        finally:
            self.loads_in_flight[key] -= 1
        if not script.never_listed:
            self.loaded[identifier] = LoadedModel(identifier=identifier, key=key, ttl_s=ttl_s)

    async def unload(self, identifier: str) -> None:
        """Unload (absent is fine)."""
        self._record("unload", identifier)
        await trio.sleep(self.script(identifier).unload_delay_s)
        self.loaded.pop(identifier, None)

    def base_url(self, identifier: str) -> str:
        """Return a fake URL (nothing listens there)."""
        return "http://127.0.0.1:9/v1"

    def http_headers(self) -> Mapping[str, str]:
        """Return no headers."""
        return {}

    async def health(self) -> BackendHealth:
        """Report reachability per ``unreachable``."""
        await trio.lowlevel.checkpoint()
        return BackendHealth(reachable=not self.unreachable, backend="fake", version="0")

    async def aclose(self) -> None:
        """Mark the backend closed."""
        self.closed = True
        await trio.lowlevel.checkpoint()
