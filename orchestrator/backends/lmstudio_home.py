"""Where LM Studio keeps its files, found the way LM Studio finds it.

LM Studio does not always live in ``~/.lmstudio``: lmstudio-js
``packages/lms-common-server/src/findLMStudioHome.ts`` (commit ``6ec11db``)
reads the directory named in ``~/.lmstudio-home-pointer`` when that file
exists, else uses the legacy ``~/.cache/lm-studio`` when that directory
exists, else ``~/.lmstudio``. The ``lms`` CLI derives every path from it
(``lmstudio-ai/lms`` ``src/lmstudioPaths.ts`` at ``07b7252``), so ``bin/lms``
and ``mcp.json`` are found under this home, not a hard-coded one.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["lmstudio_home"]

POINTER_NAME = ".lmstudio-home-pointer"
LEGACY_HOME = Path(".cache") / "lm-studio"


def lmstudio_home(home: Path | None = None) -> Path:
    """Return LM Studio's home directory for the user whose home is ``home``.

    Args:
        home: the user's home directory (default: :meth:`pathlib.Path.home`).

    Unlike LM Studio this never writes the pointer file: the orchestrator
    only reads LM Studio's files.
    """
    home = home or Path.home()
    try:
        pointed = (home / POINTER_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        pointed = ""
    if pointed:
        return Path(pointed).expanduser()
    legacy = home / LEGACY_HOME
    if legacy.is_dir():
        return legacy
    return home / ".lmstudio"
