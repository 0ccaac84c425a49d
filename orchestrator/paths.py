"""The implicit root a file-reading feature falls back to when none is configured."""

from __future__ import annotations

from pathlib import Path

__all__ = ["implicit_root"]


def implicit_root() -> Path | None:
    """Return the current directory, resolved, unless it is too broad to be a root.

    MCP clients often start servers in ``/`` or the home directory; taking that
    as the root would open every file of the user's. So the filesystem root, the
    home directory and its ancestors give ``None``: the caller then refuses file
    access until roots are configured explicitly.
    """
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if cwd == Path(cwd.anchor) or home.is_relative_to(cwd):
        return None
    return cwd
