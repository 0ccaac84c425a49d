"""The change feed: every state change reaches every subscriber; slow ones drop and are told."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestrator import Input, State, open_orchestrator
from orchestrator.feed import ChangeFeed, Dropped, TransitionEvent
from orchestrator.testing import FakeBackend


def _event(n: int) -> TransitionEvent:
    return TransitionEvent(
        model=f"m{n}",
        src=State.UNLOADED,
        dst=State.LOADING,
        input=Input.REQUESTED,
        duration_s=float(n),
        at=0.0,
    )


async def test_a_slow_subscriber_loses_the_oldest_events_and_is_told_how_many() -> None:
    feed = ChangeFeed()
    async with feed.subscribe(buffer=2) as slow, feed.subscribe(buffer=10) as fast:
        for n in range(5):
            feed.publish(_event(n))  # never blocks, whoever reads slowly
        assert slow.get_nowait() == Dropped(count=3)
        assert [slow.get_nowait(), slow.get_nowait(), slow.get_nowait()] == [
            _event(3),
            _event(4),
            None,
        ]
        assert slow.dropped == 3
        assert [fast.get_nowait() for _ in range(5)] == [_event(n) for n in range(5)]
        assert fast.dropped == 0
    assert feed.subscribers == 0


async def test_closing_the_feed_ends_iteration_after_what_was_buffered() -> None:
    feed = ChangeFeed()
    received: list[object] = []
    async with feed.subscribe() as sub:
        feed.publish(_event(1))
        feed.close()
        with trio.fail_after(5):
            received.extend([item async for item in sub])
    assert received == [_event(1)]
    async with feed.subscribe() as late:  # subscribing to a closed feed ends at once
        with trio.fail_after(5):
            assert [item async for item in late] == []
    with pytest.raises(ValueError, match="buffer"):
        async with feed.subscribe(buffer=0):
            pass


async def test_watch_streams_transitions_and_a_stuck_watcher_never_blocks_actors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["a"])
    async with (
        open_orchestrator(backend) as orch,
        orch.watch(buffer=3) as stuck,
        orch.watch() as live,
    ):
        received: list[tuple[str, str]] = []

        async def follow() -> None:
            async for item in live:
                assert isinstance(item, TransitionEvent)
                received.append((item.src.value, item.dst.value))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            with trio.fail_after(60):
                for _ in range(3):  # 3 x 5 transitions; "stuck" never reads
                    await orch.ensure_loaded("a")
                    await orch.unload("a")
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        cycle = [
            ("UNLOADED", "LOADING"),
            ("LOADING", "VERIFYING"),
            ("VERIFYING", "READY"),
            ("READY", "EXPIRING"),
            ("EXPIRING", "UNLOADED"),
        ]
        assert received == cycle * 3
        assert stuck.get_nowait() == Dropped(count=12)
        assert stuck.dropped == 12
    # The orchestrator stopped: the feed is closed.
    async with orch.watch() as after:
        with trio.fail_after(5):
            assert [item async for item in after] == []
