"""Surviving mutants judged equivalent: no test could ever tell them from the original.

Keyed by module, then by :attr:`mutation.operators.Mutant.key` (the stripped
first source line of the edited statement and the edit), so the verdicts survive
edits elsewhere in the file. Every entry says why. A verdict for a mutant that
is killed, or that no longer exists, is reported as stale so this list cannot rot.
"""

from __future__ import annotations

__all__ = ["EQUIVALENT"]

_TABLE_ORDER = (
    "each NOT_TRIPPED edge follows its TRIPPED twin in TRANSITIONS and transitions tries "
    "edges in order, so an unguarded NOT_TRIPPED edge is reached exactly when not tripped"
)

EQUIVALENT: dict[str, dict[str, str]] = {
    "orchestrator.lifecycle": {
        'return bool(event.kwargs.get("tripped", False)) | `False` -> `True`': (
            "next_state always passes tripped, so the lookup's default is never used"
        ),
        "initial=State.UNLOADED.value, | `State.UNLOADED` -> `State.LOADING`": (
            "next_state sets the state before every firing; the initial state is never seen"
        ),
        "auto_transitions=False, | `False` -> `True`": (
            "adds to_<STATE> triggers that next_state never fires (it fires Input values only)"
        ),
        "elif edge.guard is Guard.NOT_TRIPPED: | `Guard.NOT_TRIPPED` -> `Guard.TRIPPED`": (
            _TABLE_ORDER
        ),
        "unless.append(_tripped) | `unless.append(_tripped)` dropped": _TABLE_ORDER,
    },
    "orchestrator.policy_core": {
        "ttl_s: float = 600.0 | `600.0` -> `601.0`": (
            "new_core, the only constructor the code uses, sets ttl_s from the limits"
        ),
        "last_used_at: float = 0.0 | `0.0` -> `1.0`": (
            "read only for an idle READY model (the eviction order), and every way into "
            "READY sets it to now"
        ),
        "timer_generation: int = 0 | `0` -> `1`": (
            "generations are only compared for equality and bumped before every arming; "
            "the first value is never shown"
        ),
        (
            "core: Core, inp: Input, fx: list[Effect], *, tripped: bool = False, "
            "**changes: object | `False` -> `True`"
        ): (
            "only LOAD_FAILED, UNLOAD_DONE and LOST have guarded edges, and _fail and _settle "
            "always pass tripped; for every other input the table never reads the flag"
        ),
        "return None | `return None` dropped": "the function's end returns None anyway",
        "unload_failures: int = 0 | `0` -> `1`": (
            "start_unload and cleanup, the only ways into EXPIRING, set it to 0, and only "
            "unload_done in EXPIRING reads it"
        ),
        "if src is State.BREAKER_OPEN and inp is Input.COOLDOWN_OVER: | `and` -> `or`": (
            "RESET returned earlier, and the table leaves BREAKER_OPEN for another state only "
            "on COOLDOWN_OVER, which it accepts nowhere else: either half implies the other"
        ),
    },
    "orchestrator.retry": {
        (
            'raise AssertionError("unreachable: tenacity re-raises after the last attempt") | '
            "`raise AssertionError('unreachable: tenacity re-raises after the last attempt')` "
            "dropped"
        ): (
            "with reraise=True tenacity returns the call's value or raises: the loop never "
            "ends normally"
        ),
    },
    "orchestrator.actor": {
        "self._started = False | `False` -> `True`": (
            "run() sets it before task_status.started() with nothing in between that can "
            "fail or checkpoint, so the finally block always reads True"
        ),
        "self._started = False | `self._started = False` dropped": (
            "run() sets it before the finally block can read it (see above)"
        ),
        "task_status.started() | `task_status.started()` dropped": (
            "reached only when run() stopped before starting, which cannot happen (see above)"
        ),
        "assert_never(effect) | `assert_never(effect)` dropped": (
            "the match has a case for every Effect type (mypy checks it is exhaustive), so "
            "the default case is never reached"
        ),
        "self._recv.close() | `self._recv.close()` dropped": (
            "the only send end is closed and the queue drained just before; closing the "
            "receive end as well changes nothing anyone can observe"
        ),
    },
}
