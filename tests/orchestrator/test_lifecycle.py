"""The lifecycle table: exhaustive (State x Input), determinism, reachability."""

from __future__ import annotations

import itertools
import logging

import pytest

from orchestrator.errors import InvalidTransition
from orchestrator.lifecycle import TRANSITIONS, Guard, Input, State, next_state


def expected(state: State, inp: Input, tripped: bool) -> State | None:
    for edge in TRANSITIONS:
        if (edge.source, edge.input) != (state, inp):
            continue
        if edge.guard is None or edge.guard is (Guard.TRIPPED if tripped else Guard.NOT_TRIPPED):
            return edge.dest
    return None


@pytest.mark.parametrize(
    ("state", "inp", "tripped"), list(itertools.product(State, Input, (False, True)))
)
def test_every_state_and_input_either_follows_the_table_or_raises(
    state: State, inp: Input, tripped: bool
) -> None:
    dest = expected(state, inp, tripped)
    if dest is None:
        with pytest.raises(InvalidTransition) as info:
            next_state(state, inp, tripped=tripped)
        assert (info.value.state, info.value.input) == (state.value, inp.value)
    else:
        assert next_state(state, inp, tripped=tripped) is dest


def test_the_table_is_deterministic_guards_come_in_complementary_pairs() -> None:
    by_key: dict[tuple[State, Input], list[Guard | None]] = {}
    for edge in TRANSITIONS:
        by_key.setdefault((edge.source, edge.input), []).append(edge.guard)
    for key, guards in by_key.items():
        assert guards == [None] or sorted(g.value for g in guards if g) == sorted(
            g.value for g in Guard
        ), key


def test_every_state_is_reachable_and_can_get_back_to_unloaded() -> None:
    graph: dict[State, set[State]] = {s: set() for s in State}
    for edge in TRANSITIONS:
        graph[edge.source].add(edge.dest)

    def reach(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    assert reach(State.UNLOADED) == set(State)
    assert all(State.UNLOADED in reach(s) for s in State)


def test_ready_is_entered_only_from_verifying() -> None:
    assert {
        e.source for e in TRANSITIONS if e.dest is State.READY and e.source is not State.READY
    } == {State.VERIFYING}


def test_the_breaker_opens_only_on_a_tripped_failure() -> None:
    into_breaker = [
        e
        for e in TRANSITIONS
        if e.dest is State.BREAKER_OPEN and e.source is not State.BREAKER_OPEN
    ]
    assert into_breaker
    assert all(e.guard is Guard.TRIPPED for e in into_breaker)


def test_a_failure_without_the_tripped_guard_does_not_trip() -> None:
    assert next_state(State.LOADING, Input.LOAD_FAILED) is State.UNLOADED
    assert next_state(State.EXPIRING, Input.UNLOAD_DONE) is State.UNLOADED
    assert next_state(State.EXPIRING, Input.LOST) is State.UNLOADED
    # A failed verification is cleaned up first (issue 16): the guard applies once it is gone.
    assert next_state(State.VERIFYING, Input.VERIFY_FAILED) is State.EXPIRING


def test_firing_logs_nothing_of_the_transitions_library(caplog: pytest.LogCaptureFixture) -> None:
    # Our log has one event per transition; the library's own INFO lines would double it.
    with caplog.at_level(logging.INFO):
        next_state(State.UNLOADED, Input.REQUESTED)
    assert [r for r in caplog.records if r.name.startswith("transitions")] == []
