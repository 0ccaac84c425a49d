"""Level 2: command sequences against the real actor (trio, FakeBackend), checked
against a small reference model after every command.

Time is a manual MockClock: nothing moves unless a command jumps it, and after
each command ``wait_all_tasks_blocked`` lets the actor settle.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
import trio.testing
from hypothesis import example, given
from hypothesis import strategies as st

from orchestrator import BackendRejected, BreakerOpen, Config, ModelBusy, State, open_orchestrator
from orchestrator.testing import FakeBackend

TTL = 100.0


def config(threshold: int, cooldown: float) -> Config:
    return Config(
        default_ttl_s=TTL,
        breaker_cooldown_s=cooldown,
        breaker_threshold=threshold,
        adopt_loaded=False,
        request_timeout_s=1e6,
    )


@dataclass
class Reference:
    threshold: int
    cooldown: float
    state: State = State.UNLOADED
    failures: int = 0
    leases: int = 0
    loads: int = 0
    idle_deadline: float = 0.0
    cooldown_end: float = 0.0

    def request(self, now: float, lease: bool, fail: bool) -> str:
        if self.state is State.BREAKER_OPEN:
            return "breaker"
        if self.state is State.UNLOADED:
            self.loads += 1
            if fail:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.state, self.cooldown_end = State.BREAKER_OPEN, now + self.cooldown
                return "failed"
            self.state, self.failures = State.READY, 0
        if lease:
            self.leases += 1
        elif self.leases == 0:
            self.idle_deadline = now + TTL
        return "ok"

    def release(self, now: float) -> None:
        self.leases -= 1
        if self.leases == 0 and self.state is State.READY:
            self.idle_deadline = now + TTL

    def advance(self, now: float) -> None:
        if self.state is State.READY and self.leases == 0 and now >= self.idle_deadline:
            self.state = State.UNLOADED
        if self.state is State.BREAKER_OPEN and now >= self.cooldown_end:
            self.state = State.UNLOADED

    def unload(self) -> str:
        if self.state is State.READY:
            if self.leases:
                return "busy"
            self.state = State.UNLOADED
        return "ok"

    def reset(self) -> None:
        if self.state in (State.BREAKER_OPEN, State.UNLOADED):
            self.state, self.failures = State.UNLOADED, 0

    def lost(self) -> None:
        if self.state is State.READY:
            self.state = State.UNLOADED


commands = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.booleans(), st.booleans()),
        st.tuples(st.just("release")),
        st.tuples(st.just("advance"), st.sampled_from([1.0, 30.0, 61.0, 101.0, 250.0])),
        st.tuples(st.just("unload")),
        st.tuples(st.just("reset")),
        st.tuples(st.just("lost")),
    ),
    min_size=10,
    max_size=60,
)


async def run_commands(
    cmds: list[tuple[object, ...]], clock: trio.testing.MockClock, threshold: int, cooldown: float
) -> None:
    backend = FakeBackend(["m"])
    backend.script("m").error = lambda: BackendRejected("scripted failure")
    ref = Reference(threshold, cooldown)
    held: list[trio.Event] = []
    cfg = config(threshold, cooldown)
    async with trio.open_nursery() as nursery, open_orchestrator(backend, cfg) as orch:

        async def hold(granted: trio.Event, release: trio.Event, outcome: list[str]) -> None:
            try:
                async with orch.lease("m"):
                    outcome.append("ok")
                    granted.set()
                    await release.wait()
            except BackendRejected:
                outcome.append("failed")
            except BreakerOpen:
                outcome.append("breaker")
            granted.set()

        for cmd in cmds:
            now = trio.current_time()
            match cmd:
                case ("request", lease, fail):
                    backend.script("m").fail_times = 1 if fail else 0
                    expected = ref.request(now, bool(lease), bool(fail))
                    outcome: list[str] = []
                    if lease:
                        granted, release = trio.Event(), trio.Event()
                        nursery.start_soon(hold, granted, release, outcome)
                        await granted.wait()
                        if outcome == ["ok"]:
                            held.append(release)
                    else:
                        try:
                            await orch.ensure_loaded("m")
                            outcome.append("ok")
                        except BackendRejected:
                            outcome.append("failed")
                        except BreakerOpen:
                            outcome.append("breaker")
                    backend.script("m").fail_times = 0
                    assert outcome == [expected], (cmd, outcome, expected)
                case ("release",):
                    if held:
                        held.pop().set()
                        await trio.testing.wait_all_tasks_blocked()
                        ref.release(trio.current_time())
                case ("advance", dt):
                    assert isinstance(dt, float)
                    clock.jump(dt)
                    await trio.testing.wait_all_tasks_blocked()
                    ref.advance(trio.current_time())
                case ("unload",):
                    expected = ref.unload()
                    try:
                        await orch.unload("m")
                        got = "ok"
                    except ModelBusy:
                        got = "busy"
                    assert got == expected
                case ("reset",):
                    await orch.reset_breaker("m")
                    ref.reset()
                case ("lost",):
                    if ref.state is State.READY:
                        async with orch.lease("m") as lease:
                            backend.vanish("m")
                            lease.lost()
                        ref.lost()
            await trio.testing.wait_all_tasks_blocked()
            status = orch.status()[0] if orch.status() else None
            state = status.state if status else State.UNLOADED
            assert state is ref.state, (cmd, state, ref)
            assert (status.in_flight if status else 0) == ref.leases
            assert (status.consecutive_failures if status else 0) == ref.failures
            assert backend.count("load") == ref.loads
            assert ("m" in backend.loaded) == (ref.state is State.READY)
            assert max(backend.max_concurrent_loads.values(), default=0) <= 1
        for release in held:
            release.set()


# The breaker opens, a request fails fast, the cooldown ends, the probe fails and it reopens
# for a full cooldown, then a reset closes it: in every run, whatever Hypothesis draws.
BREAKER = [
    ("request", False, True),
    ("request", True, False),
    ("advance", 30.0),
    ("request", False, False),
    ("advance", 30.0),
    ("request", False, True),
    ("advance", 30.0),
    ("request", False, False),
    ("reset",),
    ("request", True, False),
    ("release",),
]


# Threshold and cooldown are drawn too: low enough that the breaker opens within a run.
@given(
    cmds=commands,
    threshold=st.integers(1, 3),
    cooldown=st.sampled_from([30.0, 60.0, 200.0]),
)
@example(cmds=BREAKER, threshold=1, cooldown=60.0)
def test_actor_matches_the_reference_model(
    cmds: list[tuple[object, ...]], threshold: int, cooldown: float
) -> None:
    clock = trio.testing.MockClock()
    trio.run(run_commands, cmds, clock, threshold, cooldown, clock=clock)
