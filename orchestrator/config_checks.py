"""The validation rules of every configuration section, each refusal one actionable line.

A refusal names the key (``llamacpp.port_min``), the value it got, what is
allowed and where the value can be set (the environment variable or the TOML
key), so a user can fix it without reading code. The rules bound every number
on both sides: a sign error, a zero and an absurdly large value are all refused
at start, never discovered later as a hung unload or a cryptic load failure.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.errors import ConfigError

__all__ = ["LMSTUDIO_ENV", "Checker"]

LIMIT_S = 30 * 24 * 3600.0  # no timeout, TTL or interval here needs to be longer
LMSTUDIO_ENV: Mapping[str, str] = {
    "base_url": "LMSTUDIO_BASE_URL",
    "api_token": "LMSTUDIO_API_TOKEN",
    "lms_cli": "LMS_CLI",
}


class Checker:
    """Checks the fields of one section; ``section`` is ``""`` for the top level."""

    def __init__(self, section: str) -> None:
        self._section = section

    def where(self, name: str) -> str:
        """Where ``name`` of this section is set: its variable and its TOML key."""
        if not self._section:
            return f"LMSORCH_{name.upper()}, or {name} in the config file"
        if self._section == "llamacpp":
            return f"LMSORCH_LLAMACPP_{name.upper()}, or {name} under [llamacpp]"
        env = LMSTUDIO_ENV.get(name)
        return f"{env}, or {name} under [lmstudio]" if env else f"{name} under [lmstudio]"

    def fail(self, name: str, value: object, allowed: str) -> ConfigError:
        """The error for ``name = value``: what is allowed and where to set it."""
        key = f"{self._section}.{name}" if self._section else name
        return ConfigError(f"{key} = {value!r}: {allowed} (set by {self.where(name)})")

    def seconds(self, name: str, value: float, *, zero: bool = False) -> None:
        """A duration: positive (or zero when ``zero``), finite, at most 30 days."""
        low_ok = value >= 0 if zero else value > 0
        if not (low_ok and math.isfinite(value) and value <= LIMIT_S):
            sign = "zero or more" if zero else "more than zero"
            raise self.fail(name, value, f"must be {sign} seconds, at most {LIMIT_S:g}")

    def factor(self, name: str, value: float, high: float) -> None:
        """A multiplier: finite, from 0 to ``high``."""
        if not (math.isfinite(value) and 0 <= value <= high):
            raise self.fail(name, value, f"must be a number from 0 to {high:g}")

    def count(self, name: str, value: int, low: int, high: int) -> None:
        """A whole number in ``low..high``."""
        if not low <= value <= high:
            raise self.fail(name, value, f"must be a whole number from {low} to {high}")

    def port(self, name: str, value: int) -> None:
        """A TCP port an unprivileged process may listen on."""
        if not 1024 <= value <= 65535:
            raise self.fail(name, value, "must be a port from 1024 to 65535")

    def not_blank(self, name: str, value: str | None) -> None:
        """An optional string that, when given, says something."""
        if value is not None and not value.strip():
            raise self.fail(name, value, "must not be empty (leave it unset instead)")

    def directory(self, name: str, path: Path) -> None:
        """A directory that, if it exists already, is a readable directory.

        A missing one is allowed: the server starts empty and says so (``list_models``
        repeats why), since ``lmsorch models fetch-demo`` or a download fills it later.
        """
        if path.exists() and not path.is_dir():
            raise self.fail(name, str(path), "must be a directory, not a file")
        if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
            raise self.fail(name, str(path), "must be a directory this user can read")

    def http_url(self, name: str, value: str) -> None:
        """An ``http(s)://host[:port]`` URL."""
        try:
            parts = urlsplit(value)
            port = parts.port  # raises ValueError when out of range or not a number
        except ValueError:
            parts, port = None, None
        ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        if not ok or (port is not None and port == 0):
            raise self.fail(
                name, value, "must be an http:// or https:// URL with a host and a port in 1-65535"
            )

    def executable(self, name: str, value: str | None) -> None:
        """An optional program: a path to an executable file, or a name found on PATH."""
        if value is None:
            return
        self.not_blank(name, value)
        if os.sep in value or (os.altsep and os.altsep in value):
            path = Path(value).expanduser()
            if not path.is_file() or not os.access(path, os.X_OK):
                raise self.fail(name, value, "must be the path of an executable file")
        elif shutil.which(value) is None:
            raise self.fail(name, value, "must be an executable on PATH, or a path to one")

    def ordered(self, low: str, low_value: float, high: str, high_value: float) -> None:
        """``low`` must not exceed ``high``; the error names both, since either may be wrong."""
        if low_value > high_value:
            prefix = f"{self._section}." if self._section else ""
            raise ConfigError(
                f"{prefix}{low} = {low_value!r} exceeds {prefix}{high} = {high_value!r}: "
                f"{low} must not exceed {high} (set by {self.where(low)}; {self.where(high)})"
            )
