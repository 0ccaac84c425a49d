"""The reconciler (issue 16): what the backend lists corrects what the actors believe.

On the fake backend with trio's virtual clock; the same facts on the LM Studio
simulator are in ``tests/e2e/lmstudio/test_backend_truth.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from orchestrator import Config, Orchestrator, State, open_orchestrator
from orchestrator.backends.base import WatchesInstances
from orchestrator.status import ModelStatus, Owner
from orchestrator.testing import FakeBackend

INTERVAL = 5.0
CONFIG = Config(
    reconcile_interval_s=INTERVAL,
    retry_attempts=1,
    retry_initial_s=0.0,
    retry_jitter_s=0.0,
    verify_deadline_s=2.0,
)


def status_of(orch: Orchestrator, model: str) -> ModelStatus | None:
    return next((s for s in orch.status() if s.model == model), None)


async def settle_within(seconds: float, done: Callable[[], bool]) -> None:
    """Let virtual time pass (bounded) until ``done()``."""
    with trio.fail_after(seconds):
        while not done():
            await trio.sleep(0.1)


async def test_a_model_gone_from_the_backend_leaves_ready_within_one_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, CONFIG) as orch:
        await orch.ensure_loaded("m")
        backend.vanish("m")  # LM Studio restarted, or its own TTL fired
        start = trio.current_time()
        await settle_within(2 * INTERVAL, lambda: orch.status()[0].state is State.UNLOADED)
        assert trio.current_time() - start <= INTERVAL + 0.2
        assert "not listed" in (orch.status()[0].last_error or "")
        # The next request loads it again, through us (no JIT load behind our back).
        assert (await orch.ensure_loaded("m")).state is State.READY
        assert backend.count("load", "m") == 2


async def test_a_model_loaded_by_another_client_is_discovered_as_foreign(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m", "n"])
    async with open_orchestrator(backend, CONFIG) as orch:
        backend.preload("m")  # loaded by hand after we started
        await settle_within(2 * INTERVAL, lambda: status_of(orch, "m") is not None)
        await settle_within(1.0, lambda: orch.status()[0].state is State.READY)
        status = orch.status()[0]
        assert status.owner is Owner.FOREIGN
        assert status.expires_in_s is None  # its TTL is the backend's, not ours
        await trio.sleep(10 * CONFIG.default_ttl_s)  # no idle TTL of ours unloads it
        assert backend.count("unload", "m") == 0
        assert "m" in backend.loaded


async def test_one_listing_per_interval_and_none_per_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, CONFIG) as orch:
        await orch.ensure_loaded("m")
        before = backend.count("list_loaded")
        start = trio.current_time()
        for _ in range(1000):
            async with orch.lease("m"):
                pass
        await trio.sleep(60.0 - (trio.current_time() - start))
        assert backend.count("list_loaded") - before == pytest.approx(60 / INTERVAL, abs=1)


async def test_a_failing_listing_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, CONFIG) as orch:
        await orch.ensure_loaded("m", ttl_s=3600.0)
        backend.unreachable = True
        await trio.sleep(5 * INTERVAL)
        assert orch.status()[0].state is State.READY
        backend.unreachable = False
        backend.vanish("m")
        await settle_within(2 * INTERVAL, lambda: orch.status()[0].state is State.UNLOADED)


class WatchingBackend(FakeBackend):
    """A fake backend that sees an instance end at once, as the llama.cpp backend does."""

    def __init__(self, models: list[str]) -> None:
        super().__init__(models)
        self.died = trio.Event()
        self.watching = 0

    async def watch_instances(self, lost: Callable[[str, str], None]) -> None:
        self.watching += 1
        await self.died.wait()
        self.loaded.pop("m", None)
        lost("m", "worker exited with status -9")
        await trio.sleep_forever()


async def test_a_backend_that_watches_its_instances_reports_a_death_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = WatchingBackend(["m"])
    assert isinstance(backend, WatchesInstances)
    # A listing interval so long that only the watch can explain the change.
    async with open_orchestrator(backend, Config(reconcile_interval_s=3600.0)) as orch:
        await orch.ensure_loaded("m")
        assert backend.watching == 1
        start = trio.current_time()
        backend.died.set()
        await trio.testing.wait_all_tasks_blocked()
        assert orch.status()[0].state is State.UNLOADED
        assert trio.current_time() == start  # at once: no listing, no timer
        assert orch.status()[0].last_error == "worker exited with status -9"
