"""The orchestrator's lifecycle guarantees, end to end over FakeBackend on virtual time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from orchestrator import (
    BackendRejected,
    BreakerOpen,
    Config,
    InvalidModelName,
    InvalidRequest,
    ModelBusy,
    OrchestratorError,
    Overloaded,
    State,
    UnknownModel,
    VerifyFailed,
    WaitTimeout,
    open_orchestrator,
)
from orchestrator.messages import EnsureLoaded, Reply
from orchestrator.status import ModelStatus
from orchestrator.testing import FakeBackend

FAST = Config(retry_initial_s=1.0, retry_jitter_s=0.0)


def state_of(orch_status: list[ModelStatus], model: str) -> State:
    return next(s.state for s in orch_status if s.model == model)


async def test_hundred_concurrent_requests_for_a_cold_model_cause_one_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").load_delay_s = 5.0
    results: list[object] = []
    async with open_orchestrator(backend, FAST) as orch:

        async def call() -> None:
            results.append((await orch.ensure_loaded("m")).state)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(call)
        assert backend.count("load", "m") == 1
        assert backend.max_concurrent_loads["m"] == 1
        assert results == [State.READY] * 100
        coalesced = orch.metrics.coalesced.labels(model="m")._value.get()
        assert coalesced == 99


async def test_hundred_concurrent_requests_share_one_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").fail_always = True
    backend.script("m").error = lambda: BackendRejected("insufficient system resources")
    errors: list[BaseException] = []
    async with open_orchestrator(backend, FAST) as orch:

        async def call() -> None:
            try:
                await orch.ensure_loaded("m")
            except BackendRejected as exc:
                errors.append(exc)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(call)
    assert backend.count("load", "m") == 1
    assert len(errors) == 100
    assert {str(e) for e in errors} == {"insufficient system resources"}


async def test_a_caller_timing_out_does_not_cancel_the_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").load_delay_s = 10.0
    async with open_orchestrator(backend, FAST) as orch:
        with pytest.raises(WaitTimeout, match="goes on"):
            await orch.ensure_loaded("m", timeout_s=2.0)
        with trio.CancelScope() as scope:
            scope.cancel()
            await orch.ensure_loaded("m")
        with trio.fail_after(30):
            status = await orch.ensure_loaded("m")
        assert status.state is State.READY
        assert backend.count("load", "m") == 1


async def test_load_ok_but_absent_ends_in_verify_failed_never_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").never_listed = True
    async with open_orchestrator(backend, FAST) as orch:
        with trio.fail_after(120), pytest.raises(VerifyFailed, match="not listed"):
            await orch.ensure_loaded("m")
        # It may be on the backend all the same: cleaned up (unloaded) before it settles.
        await trio.testing.wait_all_tasks_blocked()
        assert state_of(orch.status(), "m") is State.UNLOADED
        assert backend.count("unload", "m") == 1
        assert orch.status()[0].consecutive_failures == 1
        polls = backend.count("list_loaded")
        assert polls > 5  # it polled with growing intervals, not once after a fixed sleep
        transitions = orch.metrics.transitions
        assert transitions.labels(src="VERIFYING", dst="READY", input="VERIFY_OK")._value.get() == 0


async def test_a_transient_failure_is_retried_and_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").fail_times = 2
    async with open_orchestrator(backend, FAST) as orch:
        start = trio.current_time()
        with trio.fail_after(60):
            status = await orch.ensure_loaded("m")
        assert status.state is State.READY
        assert status.consecutive_failures == 0
        assert backend.count("load", "m") == 3
        assert trio.current_time() - start == pytest.approx(3.0)  # backoff 1 s then 2 s
        assert orch.metrics.retries.labels(operation="load", attempt="1")._value.get() == 1


async def test_a_permanent_failure_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").fail_times = 1
    backend.script("m").error = lambda: BackendRejected("model file is corrupt")
    async with open_orchestrator(backend, FAST) as orch:
        with pytest.raises(BackendRejected, match="corrupt"):
            await orch.ensure_loaded("m")
        assert backend.count("load", "m") == 1


async def test_breaker_opens_after_five_failures_fails_fast_then_probes_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").fail_always = True
    backend.script("m").error = lambda: BackendRejected("boom")
    async with open_orchestrator(backend, FAST) as orch:
        for _ in range(4):
            with pytest.raises(BackendRejected):
                await orch.ensure_loaded("m")
            assert state_of(orch.status(), "m") is State.UNLOADED
        with pytest.raises(BackendRejected):
            await orch.ensure_loaded("m")
        assert state_of(orch.status(), "m") is State.BREAKER_OPEN
        calls_before = backend.count("load")

        await trio.sleep(20)
        with pytest.raises(BreakerOpen) as info:
            await orch.ensure_loaded("m")
        assert info.value.retry_after_s == pytest.approx(40.0)
        assert "boom" in str(info.value)
        assert backend.count("load") == calls_before  # fail fast: no load reached the backend

        await trio.sleep(41)  # cooldown over: half-open
        assert state_of(orch.status(), "m") is State.UNLOADED
        with pytest.raises(BackendRejected):
            await orch.ensure_loaded("m")  # the one probe
        assert backend.count("load", "m") == 6
        assert state_of(orch.status(), "m") is State.BREAKER_OPEN  # reopened at once
        with pytest.raises(BreakerOpen):
            await orch.ensure_loaded("m")
        assert backend.count("load", "m") == 6

        backend.script("m").fail_always = False
        status = await orch.reset_breaker("m")
        assert status.state is State.UNLOADED
        assert status.consecutive_failures == 0
        assert (await orch.ensure_loaded("m")).state is State.READY
        assert orch.metrics.breaker_opens.labels(model="m")._value.get() == 2


async def test_idle_expiry_counts_from_the_end_of_the_last_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, FAST) as orch:
        async with orch.lease("m", ttl_s=100) as lease:
            assert lease.status.state is State.READY
            await trio.sleep(500)  # far beyond the TTL, but a lease is held
            assert state_of(orch.status(), "m") is State.READY
            assert backend.count("unload") == 0
        released_at = trio.current_time()
        await trio.sleep(99)
        assert state_of(orch.status(), "m") is State.READY
        await trio.sleep(2)
        assert state_of(orch.status(), "m") is State.UNLOADED
        unload = next(c for c in backend.calls if c.method == "unload")
        assert unload.at == pytest.approx(released_at + 100)


async def test_a_request_during_expiring_is_served_by_a_reload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").unload_delay_s = 5.0
    async with open_orchestrator(backend, FAST) as orch:
        await orch.ensure_loaded("m", ttl_s=10)
        await trio.sleep(11)
        assert state_of(orch.status(), "m") is State.EXPIRING
        with trio.fail_after(30):
            status = await orch.ensure_loaded("m")
        assert status.state is State.READY
        assert backend.count("load", "m") == 2
        assert "m" in backend.loaded


async def test_a_lost_model_is_reloaded_on_the_next_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, FAST) as orch:
        async with orch.lease("m") as lease:
            backend.vanish("m")
            lease.lost()
        await trio.testing.wait_all_tasks_blocked()
        assert state_of(orch.status(), "m") is State.UNLOADED
        status = await orch.ensure_loaded("m")
        assert status.state is State.READY
        assert status.generation == lease.status.generation + 1
        assert backend.count("load", "m") == 2


async def test_a_stale_lost_report_does_not_unload_a_fresh_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, FAST) as orch:
        async with orch.lease("m") as old:
            old.lost()
        await orch.ensure_loaded("m")
        old.lost()  # a late report about the previous load
        await trio.testing.wait_all_tasks_blocked()
        assert state_of(orch.status(), "m") is State.READY


INVALID_NAMES = [
    "",
    "   ",
    "x" * 257,
    "-rf",
    "model\x00name",
    "model\nname",
    "a/../b",
    "..",
    "model name",
    "model;rm -rf /",
    "$(reboot)",
    "model`id`",
    "modèle",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
async def test_invalid_model_names_are_rejected_before_any_backend_call(name: str) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, Config(adopt_loaded=False)) as orch:
        calls: list[Callable[[], Awaitable[ModelStatus]]] = [
            lambda: orch.ensure_loaded(name),
            lambda: orch.unload(name),
            lambda: orch.reset_breaker(name),
        ]
        for call in calls:
            with pytest.raises(InvalidModelName) as info:
                await call()
            assert isinstance(info.value, ValueError)
        with pytest.raises(InvalidModelName):
            async with orch.lease(name):
                pass
        assert backend.calls == []
        assert orch.status() == []


@pytest.mark.parametrize("ttl", [-1.0, 0.0, float("nan")])
async def test_bad_ttls_are_rejected_and_change_nothing(ttl: float) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, Config(adopt_loaded=False)) as orch:
        with pytest.raises(InvalidRequest, match="ttl_s"):
            await orch.ensure_loaded("m", ttl_s=ttl)
        assert backend.calls == []


@pytest.mark.parametrize("ttl", [1e9, float("inf")])
async def test_huge_ttls_are_clamped_to_the_max(
    ttl: float, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, FAST) as orch:
        status = await orch.ensure_loaded("m", ttl_s=ttl)
        assert status.ttl_s == FAST.max_ttl_s
        load = next(c for c in backend.calls if c.method == "load")
        assert load.ttl_s == FAST.max_ttl_s  # the backend enforces it too


async def test_every_load_carries_the_default_ttl(autojump_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, FAST) as orch:
        await orch.ensure_loaded("m")
        assert [c.ttl_s for c in backend.calls if c.method == "load"] == [600.0]


async def test_an_unknown_model_lists_the_available_ones() -> None:
    backend = FakeBackend(["qwen", "llama"])
    async with open_orchestrator(backend, Config(adopt_loaded=False)) as orch:
        with pytest.raises(UnknownModel) as info:
            await orch.ensure_loaded("gpt-5")
        assert info.value.available == ["llama", "qwen"]
        assert "available models: llama, qwen" in str(info.value)
        assert backend.count("load") == 0
        assert orch.status() == []


async def test_a_burst_larger_than_the_mailbox_waits_for_room_and_is_all_answered() -> None:
    backend = FakeBackend(["m"])
    gate = backend.script("m").gate = trio.Event()
    config = Config(mailbox_size=3, adopt_loaded=False)
    outcomes: list[State | OrchestratorError] = []

    async def ask() -> None:
        try:
            outcomes.append((await orch.ensure_loaded("m")).state)
        except OrchestratorError as exc:
            outcomes.append(exc)

    async with open_orchestrator(backend, config) as orch:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(200):
                    nursery.start_soon(ask)
                await trio.testing.wait_all_tasks_blocked()
                actor = orch._sup.actors()[0]
                assert actor._recv.statistics().current_buffer_used <= 3
                gate.set()
    assert outcomes == [State.READY] * 200
    assert backend.count("load") == 1


async def test_a_mailbox_that_stays_full_for_the_whole_wait_is_overloaded() -> None:
    backend = FakeBackend(["m"])
    gate = backend.script("m").gate = trio.Event()
    config = Config(mailbox_size=3, adopt_loaded=False)
    async with open_orchestrator(backend, config) as orch:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(orch.ensure_loaded, "m")
            await trio.testing.wait_all_tasks_blocked()
            # Fill the mailbox without letting the actor run (submit does not
            # yield while there is room), then ask with a deadline that passes
            # before the actor's next turn.
            actor = orch._sup.actors()[0]
            receivers = []
            while actor._recv.statistics().current_buffer_used < 3:
                send, recv = trio.open_memory_channel[Reply](1)
                receivers.append(recv)
                await actor.submit(EnsureLoaded(reply=send))
            with pytest.raises(Overloaded, match="mailbox_size=3"):
                await orch.ensure_loaded("m", timeout_s=1e-9)
            gate.set()
        assert state_of(orch.status(), "m") is State.READY
        assert backend.count("load") == 1


async def test_unload_while_in_use_is_refused_and_the_model_stays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, FAST) as orch:
        async with orch.lease("m"):
            with pytest.raises(ModelBusy, match="in flight"):
                await orch.unload("m")
            assert state_of(orch.status(), "m") is State.READY
        status = await orch.unload("m")
        assert status.state is State.UNLOADED
        assert "m" not in backend.loaded


async def test_shutdown_unloads_what_it_loaded_and_fails_pending_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from orchestrator import ActorStopped

    backend = FakeBackend(["m", "slow"])
    backend.script("slow").hang = True
    outcome: list[BaseException] = []
    async with trio.open_nursery() as outer, open_orchestrator(backend, FAST) as orch:
        await orch.ensure_loaded("m")

        async def waiting() -> None:
            try:
                await orch.ensure_loaded("slow")
            except ActorStopped as exc:
                outcome.append(exc)

        outer.start_soon(waiting)
        await trio.testing.wait_all_tasks_blocked()
    assert len(outcome) == 1
    assert "m" not in backend.loaded
    assert backend.count("unload", "m") == 1
    assert backend.count("unload", "slow") == 1  # a load cut short is unloaded too


async def test_models_already_loaded_are_adopted_not_loaded_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.preload("m", ttl_s=600)
    async with open_orchestrator(backend, FAST) as orch:
        await trio.testing.wait_all_tasks_blocked()
        assert state_of(orch.status(), "m") is State.READY
        await orch.ensure_loaded("m")
        assert backend.count("load") == 0
    assert "m" in backend.loaded  # not ours to unload at shutdown


async def test_a_crash_in_one_actor_leaves_the_others_serving(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import ActorStopped, actor

    backend = FakeBackend(["a", "b"])
    async with open_orchestrator(backend, FAST) as orch:
        await orch.ensure_loaded("b")
        original: Callable[..., object] = actor.decide  # type: ignore[attr-defined]

        def crash_for_a(core, msg, now):  # type: ignore[no-untyped-def]
            if core.model == "a":
                raise RuntimeError("bug")
            return original(core, msg, now)

        monkeypatch.setattr(actor, "decide", crash_for_a)
        with capture_logs() as logs, pytest.raises(ActorStopped):
            await orch.ensure_loaded("a")
        [crashed] = [e for e in logs if e["event"] == "actor_crashed"]
        assert (crashed["log_level"], crashed["state"]) == ("error", "UNLOADED")
        monkeypatch.setattr(actor, "decide", original)
        await trio.testing.wait_all_tasks_blocked()
        assert [s.model for s in orch.status()] == ["b"]  # the crashed actor is gone
        assert orch.metrics.actor_crashes.labels(model="a")._value.get() == 1
        assert orch.metrics.actor_crashes.labels(model="b")._value.get() == 0
        assert (await orch.ensure_loaded("b")).state is State.READY
        assert (await orch.ensure_loaded("a")).state is State.READY  # a fresh actor


async def test_adoption_beside_a_request_for_the_same_model_starts_one_actor() -> None:
    # Adoption in the background shares the catalogue fetch with the first request, so
    # both reach the actor start together: one must wait for the other's actor.
    backend = FakeBackend(["a"])
    backend.preload("a")
    with trio.fail_after(10):  # two actors for one model: the second is never stopped
        async with open_orchestrator(backend, Config(), adopt_in_background=True) as orch:
            status = await orch.ensure_loaded("a")
            assert status.state is State.READY
            assert [s.model for s in orch.status()] == ["a"]
    assert backend.count("load") == 0  # adopted, never loaded a second copy
