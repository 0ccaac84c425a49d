"""The actor's backend operations: load, verify and unload, as plain async functions.

Each runs as a child task of one model's actor and *returns* the report message
(``LoadOk``, ``VerifyFailed``, ``UnloadDone`` ...); the actor posts it to its own
mailbox. None of them reads or writes the actor's state, so the actor stays the
only writer and this module does not import it. Their log lines carry the model
through the actor's context variables (bound in ``ModelActor.run`` and inherited
by its child tasks), never by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
import trio

from orchestrator import messages as m
from orchestrator.backend_health import BackendHealthState
from orchestrator.backends.base import Backend
from orchestrator.capacity import CapacityPool
from orchestrator.config import Config
from orchestrator.effects import StartLoad, StartUnload
from orchestrator.errors import (
    BackendError,
    BackendTimeout,
    LoadFailed,
    OrchestratorError,
    VerifyFailed,
    is_outage,
    is_transient,
)
from orchestrator.lifecycle import State
from orchestrator.metrics import Metrics
from orchestrator.retry import with_retries

__all__ = ["Operand", "load", "unload", "unload_on_stop", "verify"]

T = TypeVar("T")
_log = structlog.get_logger("orchestrator.actor")


@dataclass(frozen=True)
class Operand:
    """What the operations act on and with: one model and the actor's collaborators.

    Attributes:
        model: the model key (also the backend identifier).
        backend: the backend holding it.
        config: timeouts, retry and verification settings.
        pool: the shared capacity pool (a load reserves a slot first).
        metrics: where to count.
        health: the backend's health, which outage errors feed (not the breaker).
        size_bytes: the model's size, for the memory budget.
    """

    model: str
    backend: Backend
    config: Config
    pool: CapacityPool
    metrics: Metrics
    health: BackendHealthState
    size_bytes: int | None = None

    async def retrying(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` with the configured retries for transient errors."""
        return await with_retries(self.config, operation, call, self.metrics.retry)


async def load(on: Operand, effect: StartLoad, started: float) -> m.LoadOk | m.LoadFailed:
    """Reserve room, then load the model (or adopt the copy the backend already holds).

    ``started`` is when the actor decided to load (trio time), for the duration metric.
    """
    model = on.model
    result = "failed"
    error: OrchestratorError | None = None
    try:
        await on.pool.reserve(model, on.size_bytes, effect.wait_s)
        adopted = await _load_when_up(on, effect, started + effect.wait_s)
        result = "adopted" if adopted else "ok"
        return m.LoadOk(op=effect.op, adopted=adopted)
    except trio.Cancelled:
        result = "cancelled"
        raise
    except OrchestratorError as exc:
        error = exc
        return m.LoadFailed(op=effect.op, error=exc)
    except Exception as exc:  # noqa: BLE001 (a backend bug fails this load, not the actor)
        _log.exception("load_crashed")
        error = LoadFailed(model, f"unexpected error loading {model!r}: {exc!r}")
        return m.LoadFailed(op=effect.op, error=error)
    finally:
        elapsed = trio.current_time() - started
        on.metrics.load_attempts.labels(model=model, result=result).inc()
        on.metrics.load_duration.labels(model=model).observe(elapsed)
        _log.log(
            logging.WARNING if error is not None else logging.INFO,
            "load",
            result=result,
            ttl_s=effect.ttl_s,
            duration_s=round(elapsed, 6),
            error=None if error is None else str(error),
        )


async def _load_when_up(on: Operand, effect: StartLoad, deadline: float) -> bool:
    """Load (or find it loaded: True), waiting until ``deadline`` while the backend is down.

    Raises:
        BackendUnreachable: the backend was still down at ``deadline``.
    """
    model = on.model
    while True:
        with trio.move_on_at(deadline):
            await on.health.wait_up()  # probes it, half-open, while it is down
        if not on.health.up:
            raise on.health.error()
        try:
            loaded = await on.retrying("list_loaded", on.backend.list_loaded)
            if any(x.identifier == model for x in loaded):
                return True  # already there (loaded behind our back): no second copy
            await on.retrying(
                "load",
                lambda: on.backend.load(
                    model,
                    identifier=model,
                    ttl_s=effect.ttl_s,
                    context_length=effect.context_length,
                ),
            )
        except OrchestratorError as exc:
            if not (is_outage(exc) and await on.health.confirm_down(exc)):
                raise
            # The backend is down: wait for it (within the deadline), then load again.
        else:
            on.health.answered()
            return False


async def verify(on: Operand, op: int, started: float) -> m.VerifyOk | m.VerifyFailed:
    """Poll the backend (backing off) until it lists the model as loaded, or give up."""
    cfg = on.config
    interval = cfg.verify_initial_interval_s
    problem, reason = "was not listed as loaded", "absent"
    with trio.move_on_after(cfg.verify_deadline_s):
        while True:
            try:
                loaded = await on.backend.list_loaded()
            except OrchestratorError as exc:
                if not is_transient(exc):
                    return _verify_failed(on, op, f"could not be verified: {exc}", "error")
                problem, reason = f"could not be checked ({exc})", "unreachable"
                if is_outage(exc):
                    on.health.failed(exc)
            else:
                on.health.answered()
                entry = next((x for x in loaded if x.identifier == on.model), None)
                if entry is not None and entry.status == "loaded":
                    elapsed = trio.current_time() - started
                    on.metrics.verify_duration.labels(model=on.model).observe(elapsed)
                    return m.VerifyOk(op=op, context_length=entry.context_length)
                if entry is not None:
                    problem, reason = "was still loading", "still_loading"
            await trio.sleep(interval)
            interval = min(interval * 2, cfg.verify_max_interval_s)
    if not on.health.up:  # the backend's outage, not the model's failure: no breaker count
        on.metrics.verification_failures.labels(model=on.model, reason=reason).inc()
        return m.VerifyFailed(op=op, error=on.health.error())
    detail = f"reported loaded but {problem} after {cfg.verify_deadline_s:g}s"
    return _verify_failed(on, op, detail, reason)


def _verify_failed(on: Operand, op: int, detail: str, reason: str) -> m.VerifyFailed:
    on.metrics.verification_failures.labels(model=on.model, reason=reason).inc()
    error = VerifyFailed(on.model, f"model {on.model!r} {detail}")
    return m.VerifyFailed(op=op, error=error)


async def unload(on: Operand, effect: StartUnload) -> m.UnloadDone:
    """Unload the model and confirm it gone, bounded by ``unload_timeout_s``.

    The slot is freed on the report, so the backend must confirm: an instance
    still listed after the unload answered is a failure (retried by the policy),
    as is a listing that fails. A failure is reported, not raised.
    """
    model = on.model
    timeout_s = on.config.unload_timeout_s
    error: OrchestratorError | None = None
    started = trio.current_time()
    try:
        with trio.fail_after(timeout_s):
            await on.retrying("unload", lambda: on.backend.unload(model))
            loaded = await on.retrying("list_loaded", on.backend.list_loaded)
        if any(x.identifier == model for x in loaded):
            error = BackendError(f"{model!r} is still loaded after its unload answered")
    except trio.TooSlowError:
        error = BackendTimeout(f"unload of {model!r} did not finish in {timeout_s:g}s")
    except OrchestratorError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 (a backend bug fails this unload, not the actor)
        _log.exception("unload_crashed")
        error = BackendError(f"unexpected error unloading {model!r}: {exc!r}")
    _log.log(
        logging.WARNING if error is not None else logging.INFO,
        "unload",
        reason=effect.reason,
        duration_s=round(trio.current_time() - started, 6),
        error=None if error is None else str(error),
    )
    return m.UnloadDone(op=effect.op, error=error)


async def unload_on_stop(on: Operand, state: State) -> None:
    """Unload what this server loaded as its actor stops, bounded by ``shutdown_timeout_s``.

    Run shielded by the caller; failures are logged, never raised (stopping goes on).
    """
    timeout_s = on.config.shutdown_timeout_s
    with trio.move_on_after(timeout_s) as scope:
        try:
            await on.backend.unload(on.model)
            on.metrics.unloads.labels(model=on.model, reason="shutdown").inc()
            _log.info("unload", reason="shutdown", state=state.value)
        except OrchestratorError as exc:
            _log.warning("unload_on_exit_failed", error=str(exc))
    if scope.cancelled_caught:
        _log.warning("unload_on_exit_timed_out", timeout_s=timeout_s)
