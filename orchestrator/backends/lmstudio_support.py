"""Pure helpers of the LM Studio backend: API levels, URL and TTL rules, JIT requests.

Nothing here does I/O; :mod:`orchestrator.backends.lmstudio` uses it.
"""

from __future__ import annotations

import enum
import math
from typing import Any
from urllib.parse import urlsplit

from orchestrator.backends.base import ModelInfo
from orchestrator.errors import ConfigError, InvalidRequest, UnknownModel

__all__ = [
    "INSTALL_HINT",
    "ApiLevel",
    "find_model",
    "jit_request",
    "normalize_base_url",
    "ttl_seconds",
]

INSTALL_HINT = (
    "install the `lms` CLI (it ships with LM Studio: run `npx lmstudio install-cli`, "
    "or set LMS_CLI to its path, usually ~/.lmstudio/bin/lms) or upgrade LM Studio to 0.4+"
)


class ApiLevel(enum.Enum):
    """Which native REST API the server offers (detected once, then cached)."""

    REST_V1 = "rest-v1"
    """0.4+: ``/api/v1/models`` with ``loaded_instances``, load and unload."""
    REST_V0 = "rest-v0"
    """0.3.6-0.3.x: ``/api/v0/models`` with ``state``; no load or unload route."""
    OPENAI_ONLY = "openai-only"
    """Older: only the OpenAI-compatible ``/v1/*`` routes."""


def jit_request(info: ModelInfo, ttl: int) -> tuple[str, dict[str, Any]]:
    """Return the path and body of the cheapest inference request that JIT-loads ``info``.

    LM Studio applies the request's ``ttl`` only when that request loads the
    model; one token (or one tiny embedding) keeps the cost negligible.
    """
    if info.type == "embedding":
        return "/v1/embeddings", {"model": info.key, "input": ".", "ttl": ttl}
    return "/v1/chat/completions", {
        "model": info.key,
        "messages": [{"role": "user", "content": "."}],
        "max_tokens": 1,
        "temperature": 0,
        "stream": False,
        "ttl": ttl,
    }


def normalize_base_url(url: str) -> str:
    """Return the server root: no trailing ``/`` or ``/v1``.

    Raises:
        ConfigError: not an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"LMSTUDIO_BASE_URL must be an http(s) URL, got {url!r}")
    root = url.strip().rstrip("/")
    # Accept the OpenAI-style ".../v1" people copy from LM Studio's UI.
    return root.removesuffix("/v1")


def ttl_seconds(ttl_s: float) -> int:
    """Return ``ttl_s`` as the whole seconds LM Studio takes (at least 1).

    Raises:
        InvalidRequest: not a positive, finite number.
    """
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
        raise InvalidRequest(f"ttl_s must be a positive, finite number of seconds, got {ttl_s!r}")
    # LM Studio takes whole seconds, at least 1.
    return max(1, math.ceil(ttl_s))


def find_model(catalog: list[ModelInfo], key: str) -> ModelInfo:
    """Return the catalogue entry for ``key``.

    Raises:
        InvalidRequest: ``key`` is ``base@variant`` of a listed ``base``. ``lms load``
            fuzzy-matches its argument against base model keys only, so a variant
            matches nothing and fails "Model not found" (``lmstudio-ai/lms``
            ``src/subcommands/load.ts`` @07b7252; findings F4); REST and JIT
            variant loads are unverified. Refused up front, naming what to load.
        UnknownModel: no such model; ``available`` lists the catalogue.
    """
    for info in catalog:
        if info.key == key:
            return info
    base, _, variant = key.partition("@")
    if variant and any(info.key == base for info in catalog):
        raise InvalidRequest(
            f"{key!r} names the {variant!r} variant of {base!r}, and LM Studio's lms load "
            f"cannot load a variant by name: load {base!r} instead (LM Studio loads the "
            "variant selected for it; change the selection in LM Studio's My Models)"
        )
    # lms fuzzy-matches keys: an unknown one could silently load another model.
    raise UnknownModel(key, [m.key for m in catalog])
