"""Model-name validation, done before any backend call.

Names reach the ``lms`` CLI as argv items and URLs as path or JSON values, so
we accept a conservative alphabet and refuse anything that could be read as an
option, a path escape or a control sequence. ``+`` and parentheses are in it
because LM Studio keys of user-imported models use them (issue 17, F14);
argv safety comes from the leading-``-`` rule and argv lists, never a shell.
"""

from __future__ import annotations

import re

from orchestrator.errors import InvalidModelName

__all__ = ["MAX_MODEL_NAME_LENGTH", "validate_model_name"]

MAX_MODEL_NAME_LENGTH = 256
_ALLOWED = re.compile(r"[A-Za-z0-9._\-/@:+()]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_model_name(name: object) -> str:
    """Return ``name`` unchanged if it is a valid model name.

    Raises:
        InvalidModelName: empty or whitespace, over 256 characters, a leading
            ``-``, control characters, a ``..`` segment, or characters outside
            letters, digits and ``._-/@:+()``.
    """
    if (
        isinstance(name, str)
        and len(name) <= MAX_MODEL_NAME_LENGTH
        and _ALLOWED.fullmatch(name)
        and not name.startswith("-")
        and not _dot_segment(name)
    ):
        # Every lease validates its name: a valid one passes in one regex match, since
        # the alphabet excludes whitespace and control characters. The checks below,
        # in order, say what is wrong with any other.
        return name
    if not isinstance(name, str):
        raise InvalidModelName(str(name), f"must be a string, not {type(name).__name__}")
    if not name.strip():
        raise InvalidModelName(name, "must not be empty")
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidModelName(name, f"longer than {MAX_MODEL_NAME_LENGTH} characters")
    if name.startswith("-"):
        raise InvalidModelName(name, "must not start with '-'")
    if _CONTROL.search(name):
        raise InvalidModelName(name, "contains control characters")
    if any(ch.isspace() for ch in name):
        raise InvalidModelName(name, "contains whitespace")
    if _dot_segment(name):
        raise InvalidModelName(name, "contains a '..' path segment")
    # The fast path accepted every name that passes the checks above and the alphabet, so
    # this one has a character outside it.
    bad = sorted({ch for ch in name if not _ALLOWED.fullmatch(ch)})
    more = "..." if len(bad) > 8 else ""  # the message stays one short line
    raise InvalidModelName(
        name, f"contains {''.join(bad[:8])!r}{more}; allowed: letters, digits and ._-/@:+()"
    )


def _dot_segment(name: str) -> bool:
    """Whether a segment of ``name`` between separators (slash, backslash, colon, at) is ``..``."""
    return ".." in name and ".." in re.split(r"[/\\:@]", name)
