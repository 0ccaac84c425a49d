"""A scripted scenario on the virtual clock, then a real HTTP scrape with exact counter values."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from orchestrator import BackendRejected, BreakerOpen, VerifyFailed, open_orchestrator
from orchestrator.testing import FakeBackend

from .support import QUICK, get, parse_exposition, serving, value


async def test_scenario_counts_exactly_what_happened(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["a", "b", "c"])
    backend.script("a").load_delay_s = 2.0
    backend.script("a").fail_times = 1  # one transient failure: one retry
    backend.script("b").never_listed = True  # loads "fine", never verifies
    backend.script("c").fail_always = True
    backend.script("c").error = lambda: BackendRejected("not enough memory (scripted)")
    config = QUICK
    async with open_orchestrator(backend, config) as orch:
        # 1. A coalesced cold load: three callers, one load (after one retry).
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(lambda: orch.ensure_loaded("a", ttl_s=30))
        assert backend.count("load", "a") == 2
        # 2. A verification failure (below the breaker threshold of 2).
        with pytest.raises(VerifyFailed):
            await orch.ensure_loaded("b")
        # 3. The breaker opens on the second permanent failure; the third call fails fast.
        for _ in range(2):
            with pytest.raises(BackendRejected):
                await orch.ensure_loaded("c")
        with pytest.raises(BreakerOpen):
            await orch.ensure_loaded("c")
        assert backend.count("load", "c") == 2
        # 4. An expiry: "a" idles past its 30 s TTL.
        await trio.sleep(31)
        assert {s.model: s.state.value for s in orch.status()} == {
            "a": "UNLOADED",
            "b": "UNLOADED",
            "c": "BREAKER_OPEN",
        }

        # Now real time, so that the HTTP server and client can run.
        autojump_clock.autojump_threshold = math.inf
        autojump_clock.rate = 1.0
        async with serving(orch) as base:
            response = await get(f"{base}/metrics")
            status = (await get(f"{base}/status")).json()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse_exposition(response.text)

    def total(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    assert total("lmsorch_model_load_attempts_total", model="a", result="ok") == 1
    assert total("lmsorch_model_load_attempts_total", model="b", result="ok") == 1
    assert total("lmsorch_model_load_attempts_total", model="c", result="failed") == 2
    attempts = [k for k in samples if k[0] == "lmsorch_model_load_attempts_total"]
    assert len(attempts) == 3  # no other (model, result) pair
    assert total("lmsorch_retry_attempts_total", operation="load", attempt="1") == 1
    assert [k for k in samples if k[0] == "lmsorch_retry_attempts_total"] == [
        ("lmsorch_retry_attempts_total", (("attempt", "1"), ("operation", "load")))
    ]
    assert total("lmsorch_coalesced_waiters_total", model="a") == 2
    assert total("lmsorch_verification_failures_total", model="b", reason="absent") == 1
    assert total("lmsorch_breaker_opens_total", model="c") == 1
    assert [k for k in samples if k[0] == "lmsorch_breaker_opens_total"] == [
        ("lmsorch_breaker_opens_total", (("model", "c"),))
    ]
    assert total("lmsorch_unloads_total", model="a", reason="idle") == 1
    assert total("lmsorch_unloads_total", model="b", reason="verify_failed") == 1
    assert sorted(k for k in samples if k[0] == "lmsorch_unloads_total") == [
        ("lmsorch_unloads_total", (("model", "a"), ("reason", "idle"))),
        ("lmsorch_unloads_total", (("model", "b"), ("reason", "verify_failed"))),
    ]
    transitions = {
        (dict(k[1])["src"], dict(k[1])["dst"], dict(k[1])["input"]): v
        for k, v in samples.items()
        if k[0] == "lmsorch_transitions_total"
    }
    assert transitions == {
        ("UNLOADED", "LOADING", "REQUESTED"): 4,  # a, b, c twice
        ("LOADING", "LOADING", "REQUESTED"): 2,  # the two callers that joined a's load
        ("LOADING", "VERIFYING", "LOAD_OK"): 2,  # a, b
        ("VERIFYING", "READY", "VERIFY_OK"): 1,  # a
        ("VERIFYING", "EXPIRING", "VERIFY_FAILED"): 1,  # b: cleaned up first (issue 16)
        ("LOADING", "UNLOADED", "LOAD_FAILED"): 1,  # c, first failure
        ("LOADING", "BREAKER_OPEN", "LOAD_FAILED"): 1,  # c, second failure trips it
        ("BREAKER_OPEN", "BREAKER_OPEN", "REQUESTED"): 1,  # c, failed fast
        ("READY", "EXPIRING", "IDLE_TIMEOUT"): 1,  # a
        ("EXPIRING", "UNLOADED", "UNLOAD_DONE"): 2,  # a, b
    }
    # One-hot state per model, and nothing loaded, in flight or queued at the end.
    for model, state in (("a", "UNLOADED"), ("b", "UNLOADED"), ("c", "BREAKER_OPEN")):
        states = {
            dict(k[1])["state"]: v
            for k, v in samples.items()
            if k[0] == "lmsorch_model_state" and dict(k[1])["model"] == model
        }
        assert states[state] == 1
        assert sum(states.values()) == 1
        assert len(states) == 6
        assert total("lmsorch_in_flight_requests", model=model) == 0
        assert total("lmsorch_mailbox_depth", model=model) == 0
    assert total("lmsorch_loaded_models") == 0
    # Waits: three callers for a (all served), b failed once, c three times.
    assert total("lmsorch_model_wait_seconds_count", model="a", outcome="ok") == 3
    assert total("lmsorch_model_wait_seconds_count", model="b", outcome="error") == 1
    assert total("lmsorch_model_wait_seconds_count", model="c", outcome="error") == 3
    # Durations are virtual seconds: a's load took 2 s + 1 s backoff + 2 s.
    assert total("lmsorch_model_load_duration_seconds_count", model="a") == 1
    assert total("lmsorch_model_load_duration_seconds_sum", model="a") == pytest.approx(5.0)
    assert total("lmsorch_model_verify_duration_seconds_count", model="a") == 1
    assert not [k for k in samples if k[0] == "lmsorch_actor_crashes_total"]
    # The status endpoint agrees.
    assert status["running"] is True
    by_model = {s["model"]: s for s in status["models"]}
    assert by_model["c"]["state"] == "BREAKER_OPEN"
    assert by_model["c"]["consecutive_failures"] == 2
    assert by_model["c"]["retry_after_s"] > 0
    assert by_model["b"]["consecutive_failures"] == 1
