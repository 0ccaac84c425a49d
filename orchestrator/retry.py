"""Retries for transient backend errors only (tenacity on trio)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from orchestrator.config import Config
from orchestrator.errors import BackendSilent, is_transient

__all__ = ["OnRetry", "with_retries"]

T = TypeVar("T")
OnRetry = Callable[[str, int], None]
"""Called as ``on_retry(operation, attempt)`` before each backoff sleep."""

_log = structlog.get_logger("orchestrator.retry")


async def with_retries(
    config: Config,
    operation: str,
    call: Callable[[], Awaitable[T]],
    on_retry: OnRetry | None = None,
) -> T:
    """Await ``call()``, retrying transient backend errors with jittered backoff.

    Backoff doubles from ``retry_initial_s`` up to ``retry_max_s`` (1 s, 2 s, 4 s
    by default) plus up to ``retry_jitter_s`` of jitter, for at most
    ``retry_attempts`` attempts. Permanent errors and cancellation pass through
    at once; after the last attempt the last error is raised unchanged.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None:
            on_retry(operation, state.attempt_number)
        _log.warning(
            "retry",
            operation=operation,
            attempt=state.attempt_number,
            error=str(exc),
            wait_s=round(state.upcoming_sleep, 3),
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(config.retry_attempts),
        wait=wait_exponential(multiplier=config.retry_initial_s, max=config.retry_max_s)
        + wait_random(0, config.retry_jitter_s),
        # A silent server is not asked again within one call: that would wait as long again.
        retry=retry_if_exception(lambda e: is_transient(e) and not isinstance(e, BackendSilent)),
        reraise=True,
        before_sleep=before_sleep,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises after the last attempt")
