"""The chaos rig: a backend that records loads, and a fault injector for the simulator.

:class:`RecordingBackend` wraps the real LM Studio backend and checks, on every
call, two rules the orchestrator promises: at most one load in flight per
model, and every load carries an explicit, bounded TTL.

:class:`Chaos` switches the simulator's faults on and off at random, several
at once, until told to stop; :meth:`Chaos.calm` switches everything off and
brings a stopped server back.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import trio

from orchestrator.backends.base import Backend, BackendHealth, LoadedModel, ModelInfo
from tests.fakes import GUARDRAIL_MESSAGE, Simulator

__all__ = ["FAULT_KINDS", "NOT_INJECTED", "SIM_FAULTS", "Chaos", "RecordingBackend"]

FAULT_KINDS = (
    "slow_load",
    "failing_load",
    "transient_load_failure",
    "absent_after_load",
    "eviction",
    "ttl_expiry",
    "unload_mid_inference",
    "slow_first_token",
    "http_500",
    "error_body_200",
    "malformed_json",
    "huge_body",
    "hung_route",
    "hung_cli",
    "server_restart",
    "foreign_load",
    "jit_reload",
)
"""Every fault the simulator offers that the soak injects (``docs/reliability.md``)."""

SIM_FAULTS: dict[str, str] = {
    # fakes.sim_faults.Faults switches
    "load_gates": "slow_load",
    "load_errors": "failing_load",
    "cli_fail": "transient_load_failure",
    "load_absent": "absent_after_load",
    "unload_during_inference": "unload_mid_inference",
    "first_token_gates": "slow_first_token",
    "route_status": "http_500",
    "route_error_200": "error_body_200",
    "route_raw": "malformed_json",
    "route_chunked": "huge_body",
    "route_gates": "hung_route",
    "cli_hang": "hung_cli",
    # fakes.Simulator and its state
    "Simulator.evict": "eviction",
    "SimState.advance": "ttl_expiry",
    "Simulator.stop": "server_restart",
    "Simulator.preload": "foreign_load",
    "Simulator.restart": "jit_reload",
}
"""Each of the simulator's fault switches -> the soak fault kind that throws it."""

NOT_INJECTED: dict[str, str] = {
    "load_error_status": "the HTTP status of a refused REST load; the soak loads with `lms`",
    "cli_stdout": "replaces `lms ps`/`ls` output, which the soak's backend never reads (it "
    "lists over REST); tests/backends/test_lmstudio_cli.py feeds it malformed output",
    "load_delay_s": "timing, not a fault: the swap benchmark's load cost (slow loads are "
    "`slow_load`)",
    "answer_delay_s": "timing, not a fault: the swap benchmark's answer time (a slow answer is "
    "`slow_first_token`)",
}
"""Switches the soak leaves alone, and why (a new switch must land in one of the two)."""

# Routes the control plane and inference use; HTTP faults pick among them: a 5xx or a hang on
# the unload route is a failing unload (it keeps its slot and is retried), a hang on the model
# list during a load is a listing too slow for verification (cleaned up, issue 16).
_ROUTES = ("/api/v1/models", "/api/v1/models/unload", "/v1/chat/completions")

FOREIGN = "text-embedding-nomic-embed-text-v1.5"
"""The model another client loads "by hand" (no soak client asks for it): never ours to unload."""


class RecordingBackend:
    """A :class:`~orchestrator.backends.Backend` that checks per-model load overlap and TTLs.

    Args:
        inner: the backend that does the work.
        max_ttl_s: the largest TTL a load may carry.
    """

    def __init__(self, inner: Backend, *, max_ttl_s: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_ttl_s = max_ttl_s
        self.loads_in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.loads: Counter[str] = Counter()
        self.violations: list[str] = []
        self._seen_down = trio.Event()

    async def seen_down(self) -> None:
        """Wait until a health probe found the backend unreachable (bound it)."""
        await self._seen_down.wait()

    async def list_available(self) -> list[ModelInfo]:
        """Delegate."""
        return await self.inner.list_available()

    def catalog_problem(self) -> str | None:
        """Delegate."""
        return self.inner.catalog_problem()

    async def list_loaded(self) -> list[LoadedModel]:
        """Delegate."""
        return await self.inner.list_loaded()

    async def load(
        self, key: str, *, identifier: str, ttl_s: float, context_length: int | None = None
    ) -> None:
        """Delegate, counting the loads of ``key`` in flight around the call."""
        if not (isinstance(ttl_s, int | float) and 0 < ttl_s <= self.max_ttl_s):
            self.violations.append(f"load of {key!r} with ttl_s={ttl_s!r}")
        if math.isinf(ttl_s):
            self.violations.append(f"load of {key!r} without a finite TTL")
        self.loads[key] += 1
        self.loads_in_flight[key] += 1
        if self.loads_in_flight[key] > 1:
            self.violations.append(f"{self.loads_in_flight[key]} loads of {key!r} in flight")
        self.max_in_flight[key] = max(self.max_in_flight[key], self.loads_in_flight[key])
        try:
            await self.inner.load(
                key, identifier=identifier, ttl_s=ttl_s, context_length=context_length
            )
        finally:
            self.loads_in_flight[key] -= 1

    async def unload(self, identifier: str) -> None:
        """Delegate."""
        await self.inner.unload(identifier)

    def base_url(self, identifier: str) -> str:
        """Delegate."""
        return self.inner.base_url(identifier)

    def http_headers(self) -> Mapping[str, str]:
        """Delegate."""
        return self.inner.http_headers()

    async def health(self) -> BackendHealth:
        """Delegate, noting an unreachable answer (see :meth:`seen_down`)."""
        health = await self.inner.health()
        if not health.reachable:
            self._seen_down.set()
        return health

    async def aclose(self) -> None:
        """Delegate."""
        await self.inner.aclose()


class Chaos:
    """Injects the simulator's faults at random, overlapping, for random short spells.

    Args:
        sim: the simulator to disturb.
        models: the model keys load faults pick from.
        rng: the random source (seeded by the test, printed with the figures).
        spell_s: (shortest, longest) time one fault stays on.
        hang_s: (shortest, longest) time a hung route or a held first token stays
            on: long enough, some of the time, to outlast the client's deadline.
        gap_s: (shortest, longest) pause between two injections.
        max_ttl_s: how far LM Studio's clock jumps for ``ttl_expiry`` (every TTL runs out).
    """

    def __init__(
        self,
        sim: Simulator,
        models: tuple[str, ...],
        rng: random.Random,
        *,
        spell_s: tuple[float, float] = (0.05, 0.8),
        hang_s: tuple[float, float] = (0.5, 3.0),
        gap_s: tuple[float, float] = (0.0, 0.15),
        max_ttl_s: float = 3600.0,
    ) -> None:
        self.sim = sim
        self.models = models
        self.rng = rng
        self.spell_s = spell_s
        self.hang_s = hang_s
        self.gap_s = gap_s
        self.max_ttl_s = max_ttl_s
        self.injected: Counter[str] = Counter()
        self.not_ours: set[str] = set()  # instances chaos loaded behind the orchestrator
        self._restarting = False
        self.calmed_at = 0.0
        self._actions: dict[str, Callable[[], Callable[[], None] | None]] = {
            "slow_load": self._slow_load,
            "failing_load": self._failing_load,
            "transient_load_failure": self._transient_load_failure,
            "absent_after_load": self._absent_after_load,
            "eviction": self._eviction,
            "ttl_expiry": self._ttl_expiry,
            "unload_mid_inference": self._unload_mid_inference,
            "slow_first_token": self._slow_first_token,
            "http_500": self._http_500,
            "error_body_200": self._error_body_200,
            "malformed_json": self._malformed_json,
            "huge_body": self._huge_body,
            "hung_route": self._hung_route,
            "hung_cli": self._hung_cli,
            "foreign_load": self._foreign_load,
        }
        self._long = {"slow_first_token", "hung_route"}

    async def run(self, until: float) -> None:
        """Inject faults until trio time ``until``, then :meth:`calm` at once.

        Kinds not injected yet come first, so a short run still covers them all;
        each fault reverts after its spell.
        """
        async with trio.open_nursery() as nursery:
            while trio.current_time() < until:
                pending = [k for k in FAULT_KINDS if not self.injected[k]]
                kind = self.rng.choice(pending or FAULT_KINDS)
                if kind in ("server_restart", "jit_reload"):
                    if not self._restarting:
                        self._restarting = True
                        self.injected[kind] += 1
                        restart = self._restart if kind == "server_restart" else self._jit_reload
                        nursery.start_soon(restart, self._spell() / 2)
                else:
                    undo = self._actions[kind]()
                    if undo is not None:
                        self.injected[kind] += 1
                        spell = (
                            self.rng.uniform(*self.hang_s) if kind in self._long else self._spell()
                        )
                        nursery.start_soon(self._revert_after, undo, spell)
                # A soak runs on the wall clock (the fake lms is a real process):
                # the pauses between faults are the point, not a synchronisation.
                await trio.sleep(self.rng.uniform(*self.gap_s))
            nursery.cancel_scope.cancel()
        await self.calm()
        self.calmed_at = trio.current_time()

    async def calm(self) -> None:
        """Switch every fault off, release hung runs and held loads, and bring the server up."""
        self.sim.faults.clear()
        await self.sim.start()

    def _spell(self) -> float:
        return self.rng.uniform(*self.spell_s)

    async def _revert_after(self, undo: Callable[[], None], spell_s: float) -> None:
        try:
            await trio.sleep(spell_s)
        finally:
            undo()

    async def _restart(self, down_s: float) -> None:
        try:
            await self.sim.stop(keep_loaded=self.rng.random() < 0.3)
            await trio.sleep(down_s)
        finally:
            with trio.CancelScope(shield=True):
                await self.sim.start()
            self._restarting = False

    async def _jit_reload(self, spell_s: float) -> None:
        # LM Studio restarts, then just-in-time loads what was loaded again on the next
        # requests, before (or after) the orchestrator's reconciler sees the gap (issue 16).
        loaded = [i for i in self.sim.loaded() if ":" not in i]
        try:
            await self.sim.restart()
            for identifier in loaded:
                self.sim.preload(identifier, identifier=identifier, ttl_s=self.max_ttl_s, jit=True)
                self.not_ours.add(identifier)
            await trio.sleep(spell_s)
        finally:
            self._forget(loaded)
            self._restarting = False

    def _forget(self, identifiers: list[str]) -> None:
        """Unload by hand what chaos loaded, if still there (a user's own clean-up)."""
        for identifier in identifiers:
            if identifier in self.not_ours:
                self.not_ours.discard(identifier)
                if identifier in self.sim.loaded():
                    self.sim.evict(identifier)

    # -- the faults: each switches one on and returns how to switch it off --

    def _foreign_load(self) -> Callable[[], None] | None:
        if FOREIGN in self.sim.loaded():
            return None
        self.sim.preload(FOREIGN, identifier=FOREIGN, ttl_s=self.max_ttl_s)
        self.not_ours.add(FOREIGN)
        return lambda: self._forget([FOREIGN])

    def _model(self) -> str:
        return self.rng.choice(self.models)

    def _slow_load(self) -> Callable[[], None]:
        key = self._model()
        return _release(self.sim.faults.load_gates, key, self.sim.faults.hold_load(key))

    def _failing_load(self) -> Callable[[], None]:
        key = self._model()
        self.sim.faults.load_errors[key] = GUARDRAIL_MESSAGE
        return _drop(self.sim.faults.load_errors, key)

    def _transient_load_failure(self) -> Callable[[], None]:
        self.sim.faults.cli_fail["load"] = (1, "Error: connect ECONNREFUSED 127.0.0.1:1234\n")
        return _drop(self.sim.faults.cli_fail, "load")

    def _absent_after_load(self) -> Callable[[], None]:
        key = self._model()
        self.sim.faults.load_absent.add(key)
        return lambda: self.sim.faults.load_absent.discard(key)

    def _eviction(self) -> Callable[[], None] | None:
        loaded = self.sim.loaded()
        if not loaded:
            return None
        self.sim.evict(self.rng.choice(loaded))
        return lambda: None

    def _ttl_expiry(self) -> Callable[[], None] | None:
        # LM Studio's clock jumps past every TTL: what is idle unloads by itself.
        if not self.sim.loaded():
            return None
        self.sim.state.advance(self.max_ttl_s)
        return lambda: None

    def _unload_mid_inference(self) -> Callable[[], None]:
        key = self._model()
        self.sim.faults.unload_during_inference.add(key)
        return lambda: self.sim.faults.unload_during_inference.discard(key)

    def _slow_first_token(self) -> Callable[[], None]:
        key = self._model()
        return _release(
            self.sim.faults.first_token_gates, key, self.sim.faults.hold_first_token(key)
        )

    def _http_500(self) -> Callable[[], None]:
        path = self.rng.choice(_ROUTES)
        self.sim.faults.route_status[path] = self.rng.choice((500, 502, 503))
        return _drop(self.sim.faults.route_status, path)

    def _error_body_200(self) -> Callable[[], None]:
        path = self.rng.choice(_ROUTES)
        self.sim.faults.route_error_200[path] = "Unexpected error (simulated)"
        return _drop(self.sim.faults.route_error_200, path)

    def _malformed_json(self) -> Callable[[], None]:
        path = self.rng.choice(_ROUTES)
        self.sim.faults.route_raw[path] = (200, "application/json", b'{"models": [trunc')
        return _drop(self.sim.faults.route_raw, path)

    def _huge_body(self) -> Callable[[], None]:
        # 10 MiB of JSON whitespace with no Content-Length: past every body limit (8 MiB).
        path = self.rng.choice(_ROUTES)
        self.sim.faults.route_chunked[path] = (b" " * 65536, 160)
        return _drop(self.sim.faults.route_chunked, path)

    def _hung_route(self) -> Callable[[], None]:
        path = self.rng.choice(_ROUTES)
        return _release(self.sim.faults.route_gates, path, self.sim.faults.hold_route(path))

    def _hung_cli(self) -> Callable[[], None]:
        # Runs hung meanwhile stay hung: the backend must kill them at its load deadline.
        self.sim.faults.cli_hang.add("load")
        return lambda: self.sim.faults.cli_hang.discard("load")


def _drop(mapping: dict[str, Any], key: str) -> Callable[[], None]:
    def undo() -> None:
        mapping.pop(key, None)

    return undo


def _release(gates: dict[str, trio.Event], key: str, gate: trio.Event) -> Callable[[], None]:
    """Set ``gate`` and forget it, unless another spell has put its own gate there since."""

    def undo() -> None:
        gate.set()
        if gates.get(key) is gate:
            del gates[key]

    return undo
