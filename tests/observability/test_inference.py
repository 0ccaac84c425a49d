"""Inference attempts are counted by outcome; a caller giving up is ``cancelled``, not ``error``."""

from __future__ import annotations

import trio
import trio.testing

from orchestrator import InferenceTarget, Orchestrator, hold_model, open_orchestrator
from orchestrator.testing import FakeBackend

from .support import LogCapture


def _requests(orch: Orchestrator) -> dict[str, float]:
    """``lmsorch_inference_requests_total`` for model ``m``, endpoint ``chat``, by outcome."""
    counts: dict[str, float] = {}
    for outcome in ("ok", "lost", "error", "cancelled"):
        labels = {"model": "m", "endpoint": "chat", "outcome": outcome}
        found = orch.metrics.registry.get_sample_value("lmsorch_inference_requests_total", labels)
        if found is not None:
            counts[outcome] = found
    return counts


async def _answer(target: InferenceTarget) -> str:
    await trio.lowlevel.checkpoint()
    return target.identifier


async def test_a_request_cancelled_by_its_caller_is_counted_as_cancelled(
    logs: LogCapture,
) -> None:
    with trio.fail_after(10):
        async with open_orchestrator(FakeBackend(["m"])) as orch:
            async with hold_model(orch, "m", endpoint="chat") as held:
                with trio.CancelScope() as scope:

                    async def gives_up(_target: InferenceTarget) -> str:
                        scope.cancel()  # as a client timeout or a closed session would
                        await trio.sleep_forever()
                        raise AssertionError("unreachable")

                    await held.send(gives_up)
                assert scope.cancelled_caught
                with trio.CancelScope() as scope:

                    async def gives_up_in_a_nursery(_target: InferenceTarget) -> str:
                        async with trio.open_nursery() as nursery:  # e.g. streaming with progress
                            nursery.start_soon(trio.sleep_forever)
                            scope.cancel()  # the nursery raises a group of Cancelled
                            await trio.sleep_forever()
                        raise AssertionError("unreachable")

                    await held.send(gives_up_in_a_nursery)
                assert scope.cancelled_caught
                assert await held.send(_answer) == "m"  # the lease still serves
            counts = _requests(orch)
    assert counts == {"cancelled": 2, "ok": 1}
    assert logs.events("inference_error") == []  # giving up is not a failure


async def test_a_lease_wait_cancelled_by_its_caller_is_counted_as_cancelled(
    logs: LogCapture, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").hang = True  # the load never finishes: the caller gives up waiting
    async with open_orchestrator(backend) as orch:
        with trio.move_on_after(5) as scope:  # a client's timeout, on the virtual clock
            async with hold_model(orch, "m", endpoint="chat"):
                raise AssertionError("the lease cannot be taken")
        assert scope.cancelled_caught
        assert backend.count("load", "m") == 1
        counts = _requests(orch)
    assert counts == {"cancelled": 1}
    assert logs.events("inference_error") == []
