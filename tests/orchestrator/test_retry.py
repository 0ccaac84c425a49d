"""Retries: transient backend errors are retried with backoff; what surfaces is the backend's error.

Run on trio's autojump clock, so the backoff sleeps take no real time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from orchestrator.config import Config
from orchestrator.errors import BackendRejected, BackendUnreachable
from orchestrator.retry import with_retries

CONFIG = Config(retry_attempts=3, retry_initial_s=1.0, retry_max_s=4.0, retry_jitter_s=0.0)


class Flaky:
    """Fails with ``errors`` in turn, then answers ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_a_transient_error_is_retried_with_backoff_and_logged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = Flaky(BackendUnreachable("refused"), BackendUnreachable("reset"))
    seen: list[tuple[str, int]] = []
    start = trio.current_time()
    with capture_logs() as logs:
        result = await with_retries(CONFIG, "load", call, lambda op, n: seen.append((op, n)))
    assert result == "ok"
    assert call.calls == 3
    assert seen == [("load", 1), ("load", 2)]
    assert trio.current_time() - start == pytest.approx(1.0 + 2.0)
    retries = [e for e in logs if e["event"] == "retry"]
    assert [(e["operation"], e["attempt"], e["error"]) for e in retries] == [
        ("load", 1, "refused"),
        ("load", 2, "reset"),
    ]
    assert [e["wait_s"] for e in retries] == [1.0, 2.0]


async def test_the_logged_wait_is_rounded_to_the_millisecond(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(retry_attempts=2, retry_initial_s=0.0012345, retry_jitter_s=0.0)
    with capture_logs() as logs:
        await with_retries(config, "load", Flaky(BackendUnreachable("refused")))
    assert [e["wait_s"] for e in logs if e["event"] == "retry"] == [0.001]


async def test_when_every_attempt_fails_the_last_backend_error_surfaces_unchanged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    last = BackendUnreachable("still refused")
    call = Flaky(BackendUnreachable("refused"), BackendUnreachable("reset"), last)
    with pytest.raises(BackendUnreachable) as info:
        await with_retries(CONFIG, "load", call)
    assert info.value is last  # not tenacity's RetryError wrapping it
    assert call.calls == CONFIG.retry_attempts


async def test_a_permanent_error_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    refused = BackendRejected("no such model")
    call = Flaky(refused)
    start = trio.current_time()
    with pytest.raises(BackendRejected) as info:
        await with_retries(CONFIG, "load", call)
    assert info.value is refused
    assert call.calls == 1
    assert trio.current_time() == start
