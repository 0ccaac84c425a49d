"""The model lifecycle: states, inputs and the one transition table.

Theory of operation
-------------------
Rule 1: every change of a model's :class:`State` goes through :data:`TRANSITIONS`
and :func:`next_state`. The table is the single source of truth: the
``transitions`` library is built from it and is the engine that fires inputs,
the statecharts in ``statecharts/`` are rendered from it, and an input the table
does not list for a state raises :class:`~orchestrator.errors.InvalidTransition`.

Rule 2: this module doesn't know who calls it. It imports no trio, does no I/O
and reads no clock; guards are plain booleans passed in by the policy
(``orchestrator.policy``), which owns the extended state (in-flight count,
failure count, timers) and decides which input to feed.

The hot path (a lease on a READY model and its release) changes extended state
only: READY on REQUESTED is an internal transition, so the policy may skip
firing it (a trigger costs about 20 µs; a lease must cost less than 100 µs).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from transitions import EventData, Machine, MachineError

from orchestrator.errors import InvalidTransition

__all__ = [
    "TRANSITIONS",
    "Edge",
    "Guard",
    "Input",
    "State",
    "next_state",
    "render_dot",
    "render_mermaid",
]


class State(enum.StrEnum):
    """Where a model is in its lifecycle."""

    UNLOADED = "UNLOADED"
    LOADING = "LOADING"
    VERIFYING = "VERIFYING"
    READY = "READY"
    EXPIRING = "EXPIRING"
    BREAKER_OPEN = "BREAKER_OPEN"


class Input(enum.StrEnum):
    """Facts fed to the lifecycle: requests and outcomes."""

    REQUESTED = "REQUESTED"
    LOAD_OK = "LOAD_OK"
    LOAD_FAILED = "LOAD_FAILED"
    VERIFY_OK = "VERIFY_OK"
    VERIFY_FAILED = "VERIFY_FAILED"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    UNLOAD_REQUESTED = "UNLOAD_REQUESTED"
    UNLOAD_DONE = "UNLOAD_DONE"
    UNLOAD_FAILED = "UNLOAD_FAILED"
    LOST = "LOST"
    DISCOVERED = "DISCOVERED"
    COOLDOWN_OVER = "COOLDOWN_OVER"
    RESET = "RESET"


class Guard(enum.StrEnum):
    """Conditions an edge may require; the policy computes them."""

    TRIPPED = "tripped"  # this failure reaches the breaker threshold
    NOT_TRIPPED = "not tripped"


class Edge(NamedTuple):
    """One row of the table: ``source --input [guard]--> dest``."""

    source: State
    input: Input
    dest: State
    guard: Guard | None = None


S, I, G = State, Input, Guard  # noqa: E741 (short names keep the table readable)

TRANSITIONS: Final[tuple[Edge, ...]] = (
    Edge(S.UNLOADED, I.REQUESTED, S.LOADING),
    Edge(S.UNLOADED, I.DISCOVERED, S.VERIFYING),
    Edge(S.UNLOADED, I.UNLOAD_REQUESTED, S.UNLOADED),
    Edge(S.UNLOADED, I.RESET, S.UNLOADED),
    Edge(S.LOADING, I.REQUESTED, S.LOADING),
    Edge(S.LOADING, I.LOAD_OK, S.VERIFYING),
    Edge(S.LOADING, I.LOAD_FAILED, S.BREAKER_OPEN, G.TRIPPED),
    Edge(S.LOADING, I.LOAD_FAILED, S.UNLOADED, G.NOT_TRIPPED),
    Edge(S.VERIFYING, I.REQUESTED, S.VERIFYING),
    Edge(S.VERIFYING, I.VERIFY_OK, S.READY),
    # A failed verification may leave the model loading or loaded on the backend: it is
    # cleaned up (unloaded, keeping its slot) before it settles (issue 16).
    Edge(S.VERIFYING, I.VERIFY_FAILED, S.EXPIRING),
    Edge(S.READY, I.REQUESTED, S.READY),
    Edge(S.READY, I.IDLE_TIMEOUT, S.EXPIRING),
    Edge(S.READY, I.UNLOAD_REQUESTED, S.EXPIRING),
    Edge(S.READY, I.LOST, S.UNLOADED),
    Edge(S.EXPIRING, I.REQUESTED, S.EXPIRING),
    Edge(S.EXPIRING, I.UNLOAD_REQUESTED, S.EXPIRING),
    Edge(S.EXPIRING, I.UNLOAD_DONE, S.BREAKER_OPEN, G.TRIPPED),
    Edge(S.EXPIRING, I.UNLOAD_DONE, S.UNLOADED, G.NOT_TRIPPED),
    # A failed unload keeps the slot and is retried with backoff (issue 16).
    Edge(S.EXPIRING, I.UNLOAD_FAILED, S.EXPIRING),
    # The reconciler saw the instance gone: the unload's outcome no longer matters.
    Edge(S.EXPIRING, I.LOST, S.BREAKER_OPEN, G.TRIPPED),
    Edge(S.EXPIRING, I.LOST, S.UNLOADED, G.NOT_TRIPPED),
    Edge(S.BREAKER_OPEN, I.REQUESTED, S.BREAKER_OPEN),
    Edge(S.BREAKER_OPEN, I.UNLOAD_REQUESTED, S.BREAKER_OPEN),
    Edge(S.BREAKER_OPEN, I.COOLDOWN_OVER, S.UNLOADED),
    Edge(S.BREAKER_OPEN, I.RESET, S.UNLOADED),
)
"""The lifecycle, complete: no state changes anywhere else."""

del S, I, G


def _tripped(event: EventData) -> bool:
    return bool(event.kwargs.get("tripped", False))


class _Probe:
    """The one model object the shared machine fires on.

    The core is pure, so the state is set before each firing and read back after.
    """

    state: str


def _build_machine() -> tuple[Machine, _Probe]:
    # transitions logs every callback at INFO; our own log has one event per transition.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    probe = _Probe()
    machine = Machine(
        model=probe,
        states=[s.value for s in State],
        initial=State.UNLOADED.value,
        auto_transitions=False,
        send_event=True,
    )
    for edge in TRANSITIONS:
        conditions: list[Any] = []
        unless: list[Any] = []
        if edge.guard is Guard.TRIPPED:
            conditions.append(_tripped)
        elif edge.guard is Guard.NOT_TRIPPED:
            unless.append(_tripped)
        machine.add_transition(
            edge.input.value,
            edge.source.value,
            edge.dest.value,
            conditions=conditions,
            unless=unless,
        )
    return machine, probe


_MACHINE, _PROBE = _build_machine()


def next_state(state: State, input: Input, *, tripped: bool = False) -> State:
    """Return the state reached from ``state`` on ``input``.

    Args:
        state: the current state.
        input: the fact to feed.
        tripped: for a failure input, whether it reaches the breaker threshold.

    Raises:
        InvalidTransition: the table has no edge for ``(state, input)``.
    """
    _MACHINE.set_state(state.value, model=_PROBE)
    try:
        _MACHINE.events[input.value].trigger(_PROBE, tripped=tripped)
    except (MachineError, KeyError) as exc:
        raise InvalidTransition(state.value, input.value) from exc
    return State(_PROBE.state)


def _edges_sorted() -> list[Edge]:
    order = {s: i for i, s in enumerate(State)}
    inputs = {s: i for i, s in enumerate(Input)}
    return sorted(TRANSITIONS, key=lambda e: (order[e.source], inputs[e.input], order[e.dest]))


def _label(edge: Edge) -> str:
    return f"{edge.input.value} [{edge.guard.value}]" if edge.guard else edge.input.value


def render_mermaid(models_by_state: Mapping[State, Sequence[str]] | None = None) -> str:
    """Render the table as a Mermaid ``stateDiagram-v2``.

    Args:
        models_by_state: when given, states holding models are highlighted and
            annotated with the models' names (the live statechart).
    """
    lines = ["stateDiagram-v2", "    direction LR", "    [*] --> UNLOADED"]
    lines += [f"    {e.source} --> {e.dest}: {_label(e)}" for e in _edges_sorted()]
    if models_by_state:
        lines.append("    classDef active fill:#f9d976,stroke:#c77d00,stroke-width:2px")
        for state in State:
            models = sorted(models_by_state.get(state, ()))
            if models:
                lines.append(f"    class {state} active")
                lines.append(f"    note right of {state}: {', '.join(models)}")
    return "\n".join(lines) + "\n"


def render_dot() -> str:
    """Render the table as Graphviz DOT source."""
    lines = [
        "digraph model_lifecycle {",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded"];',
        "    __start [shape=point];",
        "    __start -> UNLOADED;",
    ]
    lines += [f'    {e.source} -> {e.dest} [label="{_label(e)}"];' for e in _edges_sorted()]
    lines.append("}")
    return "\n".join(lines) + "\n"
