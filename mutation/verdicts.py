"""Surviving mutants judged equivalent: no test could ever tell them from the original.

Keyed by module, then by :attr:`mutation.operators.Mutant.key` (the stripped
source line and the edit), so the verdicts survive edits elsewhere in the file.
Every entry says why. A verdict for a mutant that is killed, or that no longer
exists, is reported as stale so this list cannot rot.
"""

from __future__ import annotations

__all__ = ["EQUIVALENT"]

EQUIVALENT: dict[str, dict[str, str]] = {}
