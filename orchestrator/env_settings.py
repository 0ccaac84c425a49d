"""Settings Structs read from ``<PREFIX><FIELD>`` environment variables.

The frontend's ``LMSORCH_MCP_*`` and the agent layer's ``LMSORCH_AGENT_*``
settings follow one rule: every variable under the prefix must name a field
(a typo is an error, never silently ignored), values are converted by the
Struct's types, and a few fields take lists split from one string.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from orchestrator.errors import ConfigError

__all__ = ["names_list", "paths_list", "settings_from_env"]

S = TypeVar("S", bound=msgspec.Struct)


def paths_list(value: str) -> list[str]:
    """Split a path list on ``os.pathsep``; empty pieces are dropped."""
    return [p for p in value.split(os.pathsep) if p]


def names_list(value: str) -> list[str]:
    """Split a name list on ``,`` or ``os.pathsep``; blanks are dropped."""
    return [p.strip() for p in re.split(rf"[,{os.pathsep}]", value) if p.strip()]


def settings_from_env(
    cls: type[S],
    prefix: str,
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any],
    *,
    what: str,
    parsers: Mapping[str, Callable[[str], Any]] | None = None,
) -> S:
    """Build ``cls`` from the ``prefix`` variables of ``environ``, then ``overrides``.

    Args:
        cls: the settings Struct.
        prefix: e.g. ``LMSORCH_MCP_``.
        environ: the environment (``os.environ`` when None).
        overrides: field values that win over the environment.
        what: names the settings in errors, e.g. ``"MCP frontend setting"``.
        parsers: per-field conversion of the raw string (lists, optional paths).

    Raises:
        ConfigError: a variable names no field, or a value is invalid.
    """
    environ = os.environ if environ is None else environ
    parsers = parsers or {}
    fields = {f.upper(): f for f in cls.__struct_fields__}
    data: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(prefix):
            continue
        name = fields.get(key[len(prefix) :])
        if name is None:
            known = [prefix + f for f in sorted(fields)]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"unknown setting {key}; {hint}known: {', '.join(known)}")
        parse = parsers.get(name)
        data[name] = value if parse is None else parse(value)
    data.update(overrides)
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid {what}: {exc}") from exc
