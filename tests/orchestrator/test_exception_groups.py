"""``unwrap_group``: the one look inside exception groups, in each of the ways its callers use."""

from __future__ import annotations

import trio

from orchestrator.exception_groups import unwrap_group

FIRST = ValueError("first")
SECOND = KeyError("second")


def test_a_bare_exception_is_its_own_leaf() -> None:
    assert unwrap_group(FIRST) is FIRST
    assert unwrap_group(FIRST, sole=True, depth=1) is FIRST


def test_the_first_leaf_depth_first() -> None:
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [FIRST, SECOND]), SECOND])

    assert unwrap_group(nested) is FIRST


def test_prefer_not_passes_over_cancellations_while_another_leaf_exists() -> None:
    cancelled = trio.Cancelled._create()  # trio makes them only through a private constructor
    group = BaseExceptionGroup("g", [BaseExceptionGroup("i", [cancelled]), SECOND])

    assert unwrap_group(group, prefer_not=trio.Cancelled) is SECOND
    only_cancelled = BaseExceptionGroup("g", [cancelled])
    assert unwrap_group(only_cancelled, prefer_not=trio.Cancelled) is cancelled


def test_sole_opens_only_groups_of_one() -> None:
    inner = ExceptionGroup("inner", [FIRST, SECOND])
    several = ExceptionGroup("several", [FIRST, SECOND])

    assert unwrap_group(ExceptionGroup("a", [ExceptionGroup("b", [FIRST])]), sole=True) is FIRST
    assert unwrap_group(ExceptionGroup("a", [inner]), sole=True) is inner
    assert unwrap_group(several, sole=True) is several


def test_depth_limits_how_many_levels_are_opened() -> None:
    inner = ExceptionGroup("inner", [FIRST])
    outer = ExceptionGroup("outer", [inner])

    assert unwrap_group(outer, sole=True, depth=1) is inner
    assert unwrap_group(outer, depth=2) is FIRST
    assert unwrap_group(outer, depth=0) is outer
