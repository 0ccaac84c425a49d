"""Backend health is the backend's; the breaker is the model's (issue 16, item 4).

On virtual time over FakeBackend: an outage of N seconds (``unreachable``)
never counts in a model's breaker, and a model requested during it loads
within 2 s of the backend answering again, without ``reset_breaker``.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestrator import BackendSilent, BackendUnreachable, Config, State, open_orchestrator
from orchestrator.feed import TransitionEvent
from orchestrator.testing import FakeBackend

# breaker_threshold=1: a single counted failure would open the breaker for 10 min.
STRICT = Config(
    retry_initial_s=1.0, retry_jitter_s=0.0, breaker_threshold=1, breaker_cooldown_s=600.0
)


async def back_after(backend: FakeBackend, outage_s: float, back: list[float]) -> None:
    await trio.sleep(outage_s)
    backend.unreachable = False
    back.append(trio.current_time())


@pytest.mark.parametrize("outage_s", [10.0, 25.0, 120.0])  # longer than the retries (1+2 s)
async def test_a_model_requested_during_an_outage_loads_within_2s_of_the_backend_return(
    autojump_clock: trio.testing.MockClock, outage_s: float
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, STRICT) as orch:
        await orch.catalog()  # known before the outage (a stale catalogue still names it)
        backend.unreachable = True
        back: list[float] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(back_after, backend, outage_s, back)
            status = await orch.ensure_loaded("m", timeout_s=outage_s + 60)
            ready_at = trio.current_time()
        assert status.state is State.READY
        assert ready_at - back[0] <= 2.0
        assert status.consecutive_failures == 0
        seen = orch.backend_health()
        assert (seen.up, seen.outages, seen.down_since) == (True, 1, None)
        metrics = orch.metrics
        assert metrics.backend_up.labels(backend="fake")._value.get() == 1
        assert metrics.backend_outages.labels(backend="fake")._value.get() == 1
        # Half-open: once down, only the cheap health probe went out, every 0.5 s.
        probes = metrics.backend_probes.labels(backend="fake", reachable="false")._value.get()
        assert 0 < probes <= outage_s / 0.5 + 1
        assert backend.count("load", "m") == 1  # no load was wasted on a dead backend


async def test_a_request_whose_wait_runs_out_gets_the_outage_error_and_no_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, STRICT) as orch:
        await orch.ensure_loaded("m")
        await orch.unload("m")
        backend.unreachable = True
        async with orch.watch() as changes:
            with pytest.raises(BackendUnreachable, match=r"unreachable, retrying; last seen \d"):
                await orch.ensure_loaded("m", timeout_s=5)
            with trio.fail_after(5):  # the load gives up waiting for the backend too
                async for change in changes:
                    if isinstance(change, TransitionEvent) and change.src is State.LOADING:
                        break
        (status,) = orch.status()
        assert status.state is State.UNLOADED  # not BREAKER_OPEN
        assert status.consecutive_failures == 0
        assert orch.backend_health().up is False
        backend.unreachable = False
        started = trio.current_time()
        assert (await orch.ensure_loaded("m")).state is State.READY  # no reset_breaker
        assert trio.current_time() - started <= 2.0


async def test_a_silent_backend_does_not_open_a_model_s_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Silent loads from a backend whose health route answers: the route is stuck,
    # not the model broken. Before, one BackendSilent opened the breaker (threshold 1).
    backend = FakeBackend(["m"])
    backend.script("m").fail_times = 1
    backend.script("m").error = lambda: BackendSilent("no answer within 5s")
    async with open_orchestrator(backend, STRICT) as orch:
        with pytest.raises(BackendSilent):
            await orch.ensure_loaded("m")
        (status,) = orch.status()
        assert (status.state, status.consecutive_failures) == (State.UNLOADED, 0)
        assert (await orch.ensure_loaded("m")).state is State.READY
