"""The backend's health: one state per backend, apart from each model's breaker.

An unreachable or silent backend (:func:`~orchestrator.errors.is_outage`) is
not a model's fault. Counted in each model's breaker, a 25 s LM Studio
outage kept a model refused for 55 s after LM Studio was back (issue 16).
Instead, such an error marks the backend DOWN here, and the policy does not
count it (see ``policy.decide``); the breaker counts only the model's own
failures (a refused load, a failed verification, a crash on load).

While the backend is DOWN, a load does not hammer it: it waits, within the
budget of the request that started it (``wait_s``), for the backend to answer
again, and then goes on at once. Waiting is half-open probing: one waiter at
a time asks :meth:`~orchestrator.backends.base.Backend.health` (cheap: LM
Studio's greeting, the worker's ``/health``) every :data:`PROBE_INTERVAL_S`,
so recovery is seen within about that interval of the backend answering. A
request whose budget runs out first fails with :meth:`BackendHealthState.error`
("backend unreachable, retrying; last seen ..."), which does not count either.
"""

from __future__ import annotations

import time
from typing import Final

import msgspec
import structlog
import trio

from orchestrator.backends.base import Backend
from orchestrator.errors import BackendUnreachable, OrchestratorError
from orchestrator.metrics import Metrics

__all__ = ["PROBE_INTERVAL_S", "BackendHealthState", "HealthSnapshot"]

PROBE_INTERVAL_S: Final = 0.5
"""How often a DOWN backend is probed while a load waits for it."""

_log = structlog.get_logger("orchestrator.backend_health")


class HealthSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The backend's health as last seen (for status, ``health_check`` and metrics).

    Attributes:
        up: False from an outage error until a probe or a call succeeds again.
        last_seen_at: wall-clock time (epoch s) the backend last answered, if ever.
        down_since: wall-clock time (epoch s) the current outage was first seen.
        last_error: what the last failed call or probe said.
        outages: how many outages were seen since start.
    """

    up: bool
    last_seen_at: float | None
    down_since: float | None
    last_error: str | None
    outages: int


class BackendHealthState:
    """Whether one backend answers; loads wait here (bounded) while it does not.

    Args:
        backend: the backend whose ``health()`` is probed.
        metrics: where ``lmsorch_backend_up`` and the outage and probe counters live.
        probe_interval_s: the pause between two probes of a DOWN backend.
    """

    def __init__(
        self, backend: Backend, metrics: Metrics, *, probe_interval_s: float = PROBE_INTERVAL_S
    ) -> None:
        self._backend = backend
        self._interval = probe_interval_s
        self._up = True
        self._last_seen_at: float | None = None
        self._down_since: float | None = None
        self._last_error: str | None = None
        self._outages = 0
        self._probing = False
        self._changed = trio.Event()
        name = backend.name
        self._up_gauge = metrics.backend_up.labels(backend=name)
        self._outages_counter = metrics.backend_outages.labels(backend=name)
        self._probes = {
            answered: metrics.backend_probes.labels(backend=name, reachable=str(answered).lower())
            for answered in (True, False)
        }
        self._up_gauge.set(1)

    @property
    def up(self) -> bool:
        """Whether the backend answered the last call or probe that reported here."""
        return self._up

    def snapshot(self) -> HealthSnapshot:
        """The state now."""
        return HealthSnapshot(
            up=self._up,
            last_seen_at=self._last_seen_at,
            down_since=self._down_since,
            last_error=self._last_error,
            outages=self._outages,
        )

    def failed(self, error: OrchestratorError) -> None:
        """An outage error (see ``is_outage``) from a call: the backend is DOWN."""
        self._last_error = str(error)
        if self._up:
            self._up = False
            self._down_since = time.time()
            self._outages += 1
            self._up_gauge.set(0)
            self._outages_counter.inc()
            _log.warning("backend_down", backend=self._backend.name, error=self._last_error)
            self._wake()

    def answered(self) -> None:
        """A call or probe got an answer: the backend is UP."""
        self._last_seen_at = time.time()
        if not self._up:
            down_s = self._last_seen_at - (self._down_since or self._last_seen_at)
            self._up = True
            self._down_since = None
            self._up_gauge.set(1)
            _log.info("backend_up", backend=self._backend.name, down_s=round(down_s, 3))
            self._wake()

    async def confirm_down(self, error: OrchestratorError) -> bool:
        """After an outage ``error``, ask the backend once: True if it is down (now DOWN).

        False when it answers: only the route that failed cannot reach it (say,
        ``lms`` while LM Studio's HTTP server is up); waiting would not help then.
        """
        if self._up and await self._probe():
            return False
        self.failed(error)
        return True

    async def wait_up(self) -> None:
        """Return once the backend answers; probe it meanwhile (one prober at a time).

        Returns at once when UP. Bound it: an outage can last.
        """
        while not self._up:
            if self._probing:
                await self._changed.wait()  # another waiter probes; take over if it leaves
                continue
            self._probing = True
            try:
                await self._probe_until_up()
            finally:
                self._probing = False
                self._wake()

    def error(self) -> BackendUnreachable:
        """The error of a request that could not wait any longer for the backend."""
        if self._last_seen_at is None:
            seen = "not seen answering since this server started"
        else:
            seen = f"last seen {time.time() - self._last_seen_at:.1f}s ago"
        why = f": {self._last_error}" if self._last_error else ""
        return BackendUnreachable(f"{self._backend.name} unreachable, retrying; {seen}{why}")

    async def _probe_until_up(self) -> None:
        # Polling on purpose: nothing tells us when a remote server comes back.
        while True:
            if await self._probe():
                return
            await trio.sleep(self._interval)

    async def _probe(self) -> bool:
        """Ask the backend's cheap health route once; an answer marks it UP."""
        health = await self._backend.health()
        self._probes[health.reachable].inc()
        if health.reachable:
            self.answered()
        else:
            self._last_error = health.detail
        return health.reachable

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
