"""One trio task per model: the only writer of that model's state.

The actor receives messages from its mailbox, applies the pure
:func:`~orchestrator.policy.decide` and carries out the effects. Loads,
verifications and unloads run as the actor's child tasks and report back
through the same mailbox, so status, unload and new requests stay answerable
while a load runs, and a load belongs to the actor, not to whoever asked.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import assert_never

import structlog
import trio

from orchestrator import messages as m
from orchestrator import operations
from orchestrator.backend_health import BackendHealthState
from orchestrator.backends.base import Backend, KeepsAlive
from orchestrator.capacity import CapacityPool, Resident
from orchestrator.config import Config
from orchestrator.effects import (
    ArmTimer,
    BreakerChange,
    CapacityChanged,
    Effect,
    HoldCapacity,
    ReleaseCapacity,
    SendReply,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
    Transitioned,
)
from orchestrator.errors import ActorStopped
from orchestrator.feed import ChangeFeed, TransitionEvent
from orchestrator.lifecycle import State
from orchestrator.metrics import Metrics
from orchestrator.policy import Core, Limits, decide, new_core, snapshot, unload_on_stop
from orchestrator.policy_core import owns
from orchestrator.status import ModelStatus, Owner
from orchestrator.timer import RestartableTimer

__all__ = ["ModelActor"]

_log = structlog.get_logger("orchestrator.actor")


class ModelActor:
    """The actor owning one model's lifecycle.

    Args:
        model: the model key (also used as the backend identifier).
        backend: the backend to load it on.
        config: policies and limits.
        pool: the shared capacity pool.
        metrics: where to count.
        health: the backend's health state (shared by every actor of the backend).
        size_bytes: the model's size, for the memory budget.
        on_exit: called with the actor once it has stopped (normally or after a crash).
        feed: where to publish state changes (see :mod:`orchestrator.feed`).
    """

    def __init__(
        self,
        *,
        model: str,
        backend: Backend,
        config: Config,
        pool: CapacityPool,
        metrics: Metrics,
        health: BackendHealthState,
        size_bytes: int | None = None,
        on_exit: Callable[[ModelActor], None] | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        self.model = model
        self._config = config
        self._pool = pool
        self._metrics = metrics
        self._operand = operations.Operand(
            model=model,
            backend=backend,
            config=config,
            pool=pool,
            metrics=metrics,
            health=health,
            size_bytes=size_bytes,
        )
        self._on_exit = on_exit
        self._feed = feed
        limits = Limits.from_config(config, backend_ttl=isinstance(backend, KeepsAlive))
        self._core: Core = new_core(model, limits)
        # Unbounded so the actor's own reports and releases never block or get lost;
        # admission control for callers is done in submit().
        self._send, self._recv = trio.open_memory_channel[m.Message](math.inf)
        self._timers = {
            Timer.IDLE: RestartableTimer(lambda g: self.post(m.IdleTimeout(generation=g))),
            Timer.COOLDOWN: RestartableTimer(lambda g: self.post(m.CooldownOver(generation=g))),
            Timer.UNLOAD_RETRY: RestartableTimer(lambda g: self.post(m.UnloadRetry(generation=g))),
        }
        self._scope = trio.CancelScope()
        # Callers waiting for room in a full mailbox, woken in arrival order.
        self._room = trio.lowlevel.ParkingLot()
        self._nursery: trio.Nursery | None = None
        self._entered_at = 0.0
        self._current: m.Message | None = None
        self._started = False
        self.stopped = False
        # Label lookups cost ~1.7 µs each; these are touched on every message.
        self._in_flight_gauge = metrics.in_flight.labels(model=model)
        self._depth_gauge = metrics.mailbox_depth.labels(model=model)
        self._coalesced = metrics.coalesced.labels(model=model)
        metrics.register_model(model)

    # -- read-only views (for status, metrics and the capacity pool; never to decide) --

    def snapshot(self) -> ModelStatus:
        """Return the model's status now."""
        return snapshot(self._core, trio.current_time())

    def resident(self) -> Resident:
        """Return what the capacity pool needs to pick an eviction victim."""
        core = self._core
        return Resident(
            model=core.model,
            state=core.state.value,
            # Only what we own may be evicted; a foreign instance holds its slot.
            idle=core.state is State.READY and core.in_flight == 0 and owns(core),
            in_flight=core.in_flight,
            last_used_at=core.last_used_at,
            foreign=core.owner is Owner.FOREIGN,
            size_bytes=self._operand.size_bytes,
        )

    # -- the mailbox --

    async def submit(self, msg: m.Message) -> None:
        """Queue a caller's request, waiting (first come, first served) while the mailbox is full.

        A full mailbox is back-pressure, not a refusal: a burst of callers that
        all arrive before the actor runs (1,000 asking for one cold model) only
        waits for the actor to drain the queue, which takes microseconds per
        message. The caller's own deadline bounds the wait (see ``Orchestrator``).

        Raises:
            ActorStopped: the actor has stopped (or stops while we wait).
        """
        while True:
            if self.stopped:
                raise ActorStopped(f"the actor for {self.model!r} has stopped")
            if self._recv.statistics().current_buffer_used < self._config.mailbox_size:
                self.post(msg)
                return
            await self._room.park()

    def post(self, msg: m.Message) -> None:
        """Queue a message that must not be refused (reports, releases, timers)."""
        # Once stopped, pending requests were already answered with ActorStopped.
        with contextlib.suppress(trio.ClosedResourceError):
            self._send.send_nowait(msg)

    def stop(self) -> None:
        """Ask the actor to stop; pending requests get ``ActorStopped``."""
        self._scope.cancel()

    # -- the loop --

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox until stopped; never raises (one-for-one isolation)."""
        # The one way the model reaches log lines: bound in this task's context, so the
        # actor's children (loads, verifies, unloads, retries) inherit it and other tasks
        # never see it.
        structlog.contextvars.bind_contextvars(model=self.model, identifier=self.model)
        self._entered_at = trio.current_time()
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for timer in self._timers.values():
                        nursery.start_soon(timer.run)
                    self._started = True
                    task_status.started()
                    async for msg in self._recv:
                        self._step(msg)
        except Exception:  # noqa: BLE001
            # The sanctioned top-level catch: a crash stays in this model's actor.
            self._metrics.actor_crashes.labels(model=self.model).inc()
            _log.exception("actor_crashed", state=self._core.state.value)
        finally:
            self.stopped = True
            self._room.unpark_all()  # they see `stopped` and get ActorStopped
            self._send.close()
            self._answer_pending()
            if unload_on_stop(self._core):
                with trio.CancelScope(shield=True):
                    await operations.unload_on_stop(self._operand, self._core.state)
            self._pool.release(self.model)
            self._in_flight_gauge.set(0)
            self._depth_gauge.set(0)
            self._metrics.actor_stopped(self.model)
            if self._on_exit is not None:
                self._on_exit(self)
            if not self._started:
                task_status.started()

    def _step(self, msg: m.Message) -> None:
        if isinstance(msg, m.EnsureLoaded) and self._core.state in (
            State.LOADING,
            State.VERIFYING,
        ):
            self._coalesced.inc()
        now = trio.current_time()
        self._current = msg  # answered with ActorStopped if deciding it crashes
        self._core, effects = decide(self._core, msg, now)
        self._current = None
        for effect in effects:
            self._apply(effect, now)
        self._in_flight_gauge.set(self._core.in_flight)
        depth = self._recv.statistics().current_buffer_used
        self._depth_gauge.set(depth)
        if self._room and depth < self._config.mailbox_size:
            self._room.unpark(count=self._config.mailbox_size - depth)

    def _apply(self, effect: Effect, now: float) -> None:
        assert self._nursery is not None
        match effect:
            case SendReply():
                try:
                    effect.reply.send_nowait(effect.result)
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
                    if effect.lease and isinstance(effect.result, ModelStatus):
                        self.post(m.Release())  # the caller left: give the lease back
            case ArmTimer():
                self._timers[effect.timer].arm(effect.deadline, effect.generation)
            case StartLoad():
                load = partial(operations.load, self._operand, effect, now)
                self._nursery.start_soon(self._report, load, name=operations.load)
            case StartVerify():
                verify = partial(operations.verify, self._operand, effect.op, now)
                self._nursery.start_soon(self._report, verify, name=operations.verify)
            case StartUnload():
                self._metrics.unloads.labels(model=self.model, reason=effect.reason).inc()
                unload = partial(operations.unload, self._operand, effect)
                self._nursery.start_soon(self._report, unload, name=operations.unload)
            case HoldCapacity():
                self._pool.adopt(self.model, self._operand.size_bytes)
            case ReleaseCapacity():
                self._pool.release(self.model)
            case CapacityChanged():
                self._pool.changed()
            case Transitioned():
                self._transitioned(effect, now)
            case _:
                assert_never(effect)

    async def _report(self, operation: Callable[[], Awaitable[m.Message]]) -> None:
        """Run one backend operation and post its report to the mailbox."""
        self.post(await operation())

    def _transitioned(self, effect: Transitioned, now: float) -> None:
        """Count, log and publish one transition (exactly one event per state change)."""
        src, dst, inp = effect.src, effect.dst, effect.input
        self._metrics.transition(self.model, src, dst, inp)
        if effect.breaker is BreakerChange.RESET:
            _log.info("breaker_reset", src=src.value)
        if src is dst:
            return
        core = self._core  # already the post-transition core: effects run after decide
        duration = round(now - self._entered_at, 6)
        self._entered_at = now
        _log.info("transition", src=src.value, dst=dst.value, input=inp.value, duration_s=duration)
        match effect.breaker:
            case BreakerChange.OPENED:
                _log.warning(
                    "breaker_opened",
                    consecutive_failures=core.failures,
                    retry_after_s=self._config.breaker_cooldown_s,
                    last_error=core.last_error,
                )
            case BreakerChange.HALF_OPEN:
                _log.info("breaker_half_open")
            case BreakerChange.CLOSED:
                _log.info("breaker_closed")
            case BreakerChange.RESET | None:
                pass
            case _:
                assert_never(effect.breaker)
        if self._feed is not None and self._feed.subscribers:
            self._feed.publish(
                TransitionEvent(
                    model=self.model,
                    src=src,
                    dst=dst,
                    input=inp,
                    duration_s=duration,
                    at=time.time(),
                    consecutive_failures=core.failures,
                    last_error=core.last_error,
                )
            )

    # -- stopping --

    def _answer_pending(self) -> None:
        stopped = ActorStopped(f"the orchestrator stopped before {self.model!r} was ready")
        replies = [w.reply for w in self._core.waiters] + list(self._core.unload_waiters)
        pending = [self._current] if self._current is not None else []
        while True:
            try:
                pending.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        replies += [
            msg.reply
            for msg in pending
            if isinstance(msg, m.EnsureLoaded | m.Unload | m.ResetBreaker)
        ]
        for reply in replies:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                reply.send_nowait(stopped)
        self._recv.close()
