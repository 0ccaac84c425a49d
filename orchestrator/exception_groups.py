"""Find the exception an exception group stands for.

Every trio nursery wraps what its tasks raise in an exception group, so code
that opens one often wants to hand its caller the one exception inside.
:func:`unwrap_group` is the single way this project looks inside a group.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["unwrap_group"]


def unwrap_group(
    exc: BaseException,
    *,
    sole: bool = False,
    depth: int | None = None,
    prefer_not: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> BaseException:
    """The exception inside (nested) exception groups that stands for ``exc``.

    The leaves of ``exc`` are found depth-first, in order; the first one that is
    not a ``prefer_not`` is returned, else the first leaf. An exception that is
    not a group is its own only leaf, so it is returned as it is.

    Args:
        exc: the exception, usually a group caught around a nursery.
        sole: open only groups holding exactly one exception; a group of several
            is then a leaf itself, so ``exc`` comes back unchanged when it is one.
        depth: open at most this many levels of groups (``None``: every level).
        prefer_not: leaves to pass over while another leaf exists (e.g.
            ``trio.Cancelled``, the tasks a failure cancelled).

    Returns:
        The leaf chosen; ``exc`` itself when nothing was opened.
    """
    leaves = list(_leaves(exc, sole=sole, depth=depth))
    return next((leaf for leaf in leaves if not isinstance(leaf, prefer_not)), leaves[0])


def _leaves(exc: BaseException, *, sole: bool, depth: int | None) -> Iterator[BaseException]:
    """The leaves under ``exc``, depth-first: groups not opened count as leaves."""
    if not isinstance(exc, BaseExceptionGroup) or depth == 0 or (sole and len(exc.exceptions) > 1):
        yield exc
        return
    for inner in exc.exceptions:
        yield from _leaves(inner, sole=sole, depth=None if depth is None else depth - 1)
