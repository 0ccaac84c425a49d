"""The actor carries out the policy's effects: what a caller sees through the facade.

Each test states one behaviour of the receive loop that the policy alone cannot
show: a reply nobody takes, a backend operation that overruns its bound, stopping
with requests still queued, by a crash or under an outside cancellation.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestrator import ActorStopped, BackendTimeout, Config, State, open_orchestrator
from orchestrator import messages as m
from orchestrator.testing import FakeBackend

CONFIG = Config(default_ttl_s=100.0, retry_jitter_s=0.0, adopt_loaded=False)


async def test_a_lease_granted_to_a_caller_that_already_left_is_handed_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").load_delay_s = 10.0
    async with open_orchestrator(backend, CONFIG) as orch:
        with trio.move_on_after(1.0) as scope:  # the caller gives up while the model loads
            async with orch.lease("m"):
                pytest.fail("the lease cannot be granted before the load ends")
        assert scope.cancelled_caught
        await trio.sleep(20.0)  # the load ends; the lease it grants has no taker
        [status] = orch.status()
        assert status.state is State.READY
        assert status.in_flight == 0  # handed back, so the model can expire
        assert status.expires_in_s is not None
        await trio.sleep(status.expires_in_s + 1.0)
        assert orch.status()[0].state is State.UNLOADED


async def test_a_granted_lease_is_counted_until_its_block_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    async with open_orchestrator(backend, CONFIG) as orch:
        async with orch.lease("m"), orch.lease("m"):
            assert orch.status()[0].in_flight == 2
            await trio.sleep(1000.0)  # longer than the TTL: a leased model never expires
            assert orch.status()[0].state is State.READY
        await trio.testing.wait_all_tasks_blocked()  # the releases are posted, then applied
        assert orch.status()[0].in_flight == 0


async def test_an_unload_that_overruns_its_timeout_is_reported_as_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").unload_delay_s = 100.0
    config = Config(default_ttl_s=100.0, unload_timeout_s=5.0, adopt_loaded=False)
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded("m")
        start = trio.current_time()
        with pytest.raises(BackendTimeout, match=r"unload of 'm' did not finish in 5s"):
            await orch.unload("m")
        assert trio.current_time() - start == pytest.approx(5.0)


async def test_stopping_answers_what_is_queued_refuses_what_comes_later_and_zeroes_gauges(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    config = Config(mailbox_size=4, adopt_loaded=False)
    async with open_orchestrator(backend, config) as orch, orch.lease("m"):
        [actor] = orch._sup.actors()
        assert orch.metrics.in_flight.labels(model="m")._value.get() == 1  # the lease
        receivers = []
        # Queued without letting the actor run: submit does not yield while there is room.
        # The first message goes straight to the actor's waiting receive, so it is one that
        # asks nothing (an eviction of a leased model is refused).
        await actor.submit(m.Evict())
        for make in (m.EnsureLoaded, m.Unload, m.ResetBreaker):
            send, recv = trio.open_memory_channel[m.Reply](1)
            receivers.append(recv)
            await actor.submit(make(reply=send))
        actor.stop()
        with trio.fail_after(5):
            answers = [await recv.receive() for recv in receivers]
        assert [type(a) for a in answers] == [ActorStopped] * 3
        send, _ = trio.open_memory_channel[m.Reply](1)
        with pytest.raises(ActorStopped):
            await actor.submit(m.EnsureLoaded(reply=send))
        await trio.testing.wait_all_tasks_blocked()
        assert orch.metrics.in_flight.labels(model="m")._value.get() == 0
        assert orch.metrics.mailbox_depth.labels(model="m")._value.get() == 0
    # The lease ends after its actor stopped: its release is dropped, never raised.


async def test_a_plain_request_whose_caller_left_hands_back_no_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").load_delay_s = 10.0
    async with open_orchestrator(backend, CONFIG) as orch:

        async def give_up() -> None:
            with trio.move_on_after(1.0):  # leaves before the load ends, asking no lease
                await orch.ensure_loaded("m")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(give_up)
            async with orch.lease("m"):  # granted with the same load, at 10 s
                await trio.testing.wait_all_tasks_blocked()
                assert orch.status()[0].in_flight == 1  # nothing was given back for the other
                await trio.sleep(1000.0)  # longer than the TTL: a leased model never expires
                assert orch.status()[0].state is State.READY


async def test_an_orchestrator_cancelled_from_outside_still_unloads_what_it_loaded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").unload_delay_s = 1.0
    with trio.move_on_after(50.0) as scope:  # the orchestrator's owner is cancelled
        async with open_orchestrator(backend, CONFIG) as orch:
            await orch.ensure_loaded("m")
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert backend.count("unload", "m") == 1
    assert "m" not in backend.loaded  # the unload ran to its end despite the cancellation


async def test_a_crashed_actor_gives_back_the_room_its_model_held(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import actor

    backend = FakeBackend(["a", "b"])
    config = Config(max_loaded_models=1, adopt_loaded=False)
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded("a")
        original = actor.decide  # type: ignore[attr-defined]

        def crash(core, msg, now):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

        monkeypatch.setattr(actor, "decide", crash)
        with pytest.raises(ActorStopped):
            await orch.ensure_loaded("a")
        monkeypatch.setattr(actor, "decide", original)
        await trio.testing.wait_all_tasks_blocked()
        assert "a" not in backend.loaded  # ours, so unloaded as its actor stopped
        metrics = orch.metrics.registry
        assert metrics.get_sample_value("lmsorch_loaded_models") == 0
        assert (
            metrics.get_sample_value("lmsorch_model_state", {"model": "a", "state": "READY"})
            is None
        )
        start = trio.current_time()
        assert (await orch.ensure_loaded("b", timeout_s=30)).state is State.READY
        assert trio.current_time() - start < 30  # no wait for room a no longer holds
