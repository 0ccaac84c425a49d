"""Pure helpers of the LM Studio backend: API levels, URL and TTL rules, JIT requests.

Nothing here does I/O; :mod:`orchestrator.backends.lmstudio` uses it.
"""

from __future__ import annotations

import enum
import math
from typing import Any
from urllib.parse import urlsplit

import msgspec

from orchestrator.backends.base import ModelInfo
from orchestrator.errors import ConfigError, InvalidRequest

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


def find_model(catalog: list[ModelInfo], key: str) -> ModelInfo | None:
    """Return the catalogue entry for ``key`` (or for the model a ``key@variant`` names)."""
    for info in catalog:
        if info.key == key:
            return info
    # A variant ("publisher/model@q4_k_m") of a listed key is loadable too.
    base = key.partition("@")[0]
    if base != key:
        for info in catalog:
            if info.key == base:
                return msgspec.structs.replace(info, key=key)
    return None
