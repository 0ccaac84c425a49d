"""One trio task per model: the only writer of that model's state.

The actor receives messages from its mailbox, applies the pure
:func:`~orchestrator.policy.decide` and carries out the effects. Loads,
verifications and unloads run as the actor's child tasks and report back
through the same mailbox, so status, unload and new requests stay answerable
while a load runs, and a load belongs to the actor, not to whoever asked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import trio

from orchestrator import messages as m
from orchestrator.backends.base import Backend
from orchestrator.capacity import CapacityPool, Resident
from orchestrator.config import Config
from orchestrator.effects import (
    ArmTimer,
    Effect,
    SendReply,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
    Transitioned,
)
from orchestrator.errors import (
    ActorStopped,
    BackendError,
    BackendTimeout,
    CapacityExhausted,
    LoadFailed,
    OrchestratorError,
    VerifyFailed,
    is_transient,
)
from orchestrator.feed import ChangeFeed, TransitionEvent
from orchestrator.lifecycle import Input, State
from orchestrator.metrics import Metrics
from orchestrator.policy import Core, Limits, decide, new_core, snapshot
from orchestrator.retry import with_retries
from orchestrator.status import ModelStatus

__all__ = ["ModelActor"]

T = TypeVar("T")
_log = structlog.get_logger("orchestrator.actor")
_SETTLED_WITHOUT_ROOM = (State.UNLOADED, State.BREAKER_OPEN)


class _Timer:
    """A restartable timer: one task whose cancel-scope deadline is moved, not restarted."""

    def __init__(self, fire: Callable[[int], None]) -> None:
        self._fire = fire
        self._deadline = math.inf
        self._generation = 0
        self._scope: trio.CancelScope | None = None

    def arm(self, deadline: float | None, generation: int) -> None:
        self._deadline = math.inf if deadline is None else deadline
        self._generation = generation
        if self._scope is not None:
            self._scope.deadline = self._deadline

    async def run(self) -> None:
        while True:
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            self._deadline = math.inf
            self._fire(self._generation)


class ModelActor:
    """The actor owning one model's lifecycle.

    Args:
        model: the model key (also used as the backend identifier).
        backend: the backend to load it on.
        config: policies and limits.
        pool: the shared capacity pool.
        metrics: where to count.
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
        size_bytes: int | None = None,
        on_exit: Callable[[ModelActor], None] | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        self.model = model
        self._backend = backend
        self._config = config
        self._pool = pool
        self._metrics = metrics
        self._size = size_bytes
        self._on_exit = on_exit
        self._feed = feed
        limits = Limits(
            default_ttl_s=config.default_ttl_s,
            max_ttl_s=config.max_ttl_s,
            breaker_threshold=config.breaker_threshold,
            breaker_cooldown_s=config.breaker_cooldown_s,
        )
        self._core: Core = new_core(model, limits)
        # Unbounded so the actor's own reports and releases never block or get lost;
        # admission control for callers is done in submit().
        self._send, self._recv = trio.open_memory_channel[m.Message](math.inf)
        self._timers = {
            Timer.IDLE: _Timer(lambda g: self.post(m.IdleTimeout(generation=g))),
            Timer.COOLDOWN: _Timer(lambda g: self.post(m.CooldownOver(generation=g))),
        }
        self._scope = trio.CancelScope()
        # Callers waiting for room in a full mailbox, woken in arrival order.
        self._room = trio.lowlevel.ParkingLot()
        self._nursery: trio.Nursery | None = None
        self._entered_at = 0.0
        self._load_started_at = 0.0
        self._loaded_by_us = False
        self._breaker_opened = False  # since the last success, for the breaker_closed event
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
            idle=core.state is State.READY and core.in_flight == 0,
            in_flight=core.in_flight,
            last_used_at=core.last_used_at,
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
        # Bound in this task's context: the actor's children (loads, verifies, unloads,
        # retries) inherit it, other tasks never see it.
        structlog.contextvars.bind_contextvars(model=self.model, identifier=self.model)
        log = _log.bind(model=self.model)
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
        except Exception:
            # The sanctioned top-level catch: a crash stays in this model's actor.
            self._metrics.actor_crashes.labels(model=self.model).inc()
            log.exception("actor_crashed", state=self._core.state.value)
        finally:
            self.stopped = True
            self._room.unpark_all()  # they see `stopped` and get ActorStopped
            self._send.close()
            self._answer_pending()
            with trio.CancelScope(shield=True):
                await self._unload_on_exit(log)
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
        core = self._core
        if core.state in _SETTLED_WITHOUT_ROOM and self._pool.holds(self.model):
            self._pool.release(self.model)
        elif core.state is State.READY and core.in_flight == 0:
            self._pool.changed()
        self._in_flight_gauge.set(core.in_flight)
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
                self._load_started_at = now
                self._nursery.start_soon(self._load, effect)
            case StartVerify():
                self._nursery.start_soon(self._verify, effect.op, now)
            case StartUnload():
                self._metrics.unloads.labels(model=self.model, reason=effect.reason).inc()
                self._nursery.start_soon(self._unload, effect)
            case Transitioned():
                self._transitioned(effect, now)

    def _transitioned(self, effect: Transitioned, now: float) -> None:
        """Count, log and publish one transition (exactly one event per state change)."""
        src, dst, inp = effect.src, effect.dst, effect.input
        self._metrics.transition(self.model, src, dst, inp)
        if inp is Input.RESET:
            _log.info("breaker_reset", model=self.model, src=src.value)
            self._breaker_opened = False
        if src is dst:
            return
        core = self._core  # already the post-transition core: effects run after decide
        duration = round(now - self._entered_at, 6)
        self._entered_at = now
        _log.info(
            "transition",
            model=self.model,
            src=src.value,
            dst=dst.value,
            input=inp.value,
            duration_s=duration,
        )
        if dst is State.BREAKER_OPEN:
            self._breaker_opened = True
            _log.warning(
                "breaker_opened",
                model=self.model,
                consecutive_failures=core.failures,
                retry_after_s=self._config.breaker_cooldown_s,
                last_error=core.last_error,
            )
        elif src is State.BREAKER_OPEN and inp is Input.COOLDOWN_OVER:
            _log.info("breaker_half_open", model=self.model)
        elif dst is State.READY and self._breaker_opened:
            self._breaker_opened = False
            _log.info("breaker_closed", model=self.model)
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

    # -- child tasks: they only report back through the mailbox --

    async def _load(self, effect: StartLoad) -> None:
        result = "failed"
        error: BaseException | None = None
        try:
            await self._pool.reserve(self.model, self._size, effect.wait_s)
            loaded = await self._retrying("list_loaded", self._backend.list_loaded)
            if any(x.identifier == self.model for x in loaded):
                result = "adopted"  # already there (loaded behind our back): no second copy
            else:
                await self._retrying(
                    "load",
                    lambda: self._backend.load(
                        self.model, identifier=self.model, ttl_s=effect.ttl_s
                    ),
                )
                self._loaded_by_us = True
                result = "ok"
        except trio.Cancelled:
            result = "cancelled"
            raise
        except CapacityExhausted as exc:
            error = exc
            self.post(m.LoadFailed(op=effect.op, error=exc, counts=False))
        except OrchestratorError as exc:
            error = exc
            self.post(m.LoadFailed(op=effect.op, error=exc))
        except Exception as exc:  # noqa: BLE001 (a backend bug fails this load, not the actor)
            _log.exception("load_crashed", model=self.model)
            error = LoadFailed(self.model, f"unexpected error loading {self.model!r}: {exc!r}")
            self.post(m.LoadFailed(op=effect.op, error=error))
        else:
            self.post(m.LoadOk(op=effect.op))
        finally:
            elapsed = trio.current_time() - self._load_started_at
            self._metrics.load_attempts.labels(model=self.model, result=result).inc()
            self._metrics.load_duration.labels(model=self.model).observe(elapsed)
            _log.log(
                logging.WARNING if error is not None else logging.INFO,
                "load",
                model=self.model,
                result=result,
                ttl_s=effect.ttl_s,
                duration_s=round(elapsed, 6),
                error=None if error is None else str(error),
            )

    async def _verify(self, op: int, started: float) -> None:
        cfg = self._config
        interval = cfg.verify_initial_interval_s
        problem, reason = "was not listed as loaded", "absent"
        with trio.move_on_after(cfg.verify_deadline_s):
            while True:
                try:
                    loaded = await self._backend.list_loaded()
                except OrchestratorError as exc:
                    if not is_transient(exc):
                        self._verify_failed(op, f"could not be verified: {exc}", "error")
                        return
                    problem, reason = f"could not be checked ({exc})", "unreachable"
                else:
                    entry = next((x for x in loaded if x.identifier == self.model), None)
                    if entry is not None and entry.status == "loaded":
                        elapsed = trio.current_time() - started
                        self._metrics.verify_duration.labels(model=self.model).observe(elapsed)
                        self.post(m.VerifyOk(op=op))
                        return
                    if entry is not None:
                        problem, reason = "was still loading", "still_loading"
                await trio.sleep(interval)
                interval = min(interval * 2, cfg.verify_max_interval_s)
        self._verify_failed(
            op, f"reported loaded but {problem} after {cfg.verify_deadline_s:g}s", reason
        )

    def _verify_failed(self, op: int, detail: str, reason: str) -> None:
        self._metrics.verification_failures.labels(model=self.model, reason=reason).inc()
        error = VerifyFailed(self.model, f"model {self.model!r} {detail}")
        self.post(m.VerifyFailed(op=op, error=error))

    async def _unload(self, effect: StartUnload) -> None:
        error: OrchestratorError | None = None
        started = trio.current_time()
        try:
            with trio.fail_after(self._config.unload_timeout_s):
                await self._retrying("unload", lambda: self._backend.unload(self.model))
        except trio.TooSlowError:
            error = BackendTimeout(
                f"unload of {self.model!r} did not finish in {self._config.unload_timeout_s:g}s"
            )
        except OrchestratorError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 (a backend bug fails this unload, not the actor)
            _log.exception("unload_crashed", model=self.model)
            error = BackendError(f"unexpected error unloading {self.model!r}: {exc!r}")
        self._loaded_by_us = False
        _log.log(
            logging.WARNING if error is not None else logging.INFO,
            "unload",
            model=self.model,
            reason=effect.reason,
            duration_s=round(trio.current_time() - started, 6),
            error=None if error is None else str(error),
        )
        self.post(m.UnloadDone(op=effect.op, error=error))

    async def _retrying(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(self._config, operation, call, self._metrics.retry)

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

    async def _unload_on_exit(self, log: structlog.typing.FilteringBoundLogger) -> None:
        state = self._core.state
        if not self._loaded_by_us and state is not State.LOADING:
            return
        if state in _SETTLED_WITHOUT_ROOM:
            return
        with trio.move_on_after(self._config.shutdown_timeout_s) as scope:
            try:
                await self._backend.unload(self.model)
                self._metrics.unloads.labels(model=self.model, reason="shutdown").inc()
                log.info("unload", reason="shutdown", state=state.value)
            except OrchestratorError as exc:
                log.warning("unload_on_exit_failed", error=str(exc))
        if scope.cancelled_caught:
            log.warning("unload_on_exit_timed_out", timeout_s=self._config.shutdown_timeout_s)
