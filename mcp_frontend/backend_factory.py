"""The backend ``lmsorch serve`` runs on, built from the configuration.

Backend modules are imported only when chosen: the embedded llama.cpp one
pulls in its worker machinery, and neither is needed to print ``--help``.
"""

from __future__ import annotations

from orchestrator import Backend, Config, ConfigError

__all__ = ["BACKENDS", "make_backend"]

BACKENDS = ("lmstudio", "llamacpp")


def make_backend(config: Config, kind: str | None = None) -> Backend:
    """Return the backend named by ``kind`` (default: ``config.backend``), configured.

    Raises:
        ConfigError: ``kind`` names no backend.
    """
    kind = kind or config.backend
    if kind == "lmstudio":
        from orchestrator.backends.lmstudio import LMStudioBackend

        return LMStudioBackend(config.lmstudio)
    if kind == "llamacpp":
        from orchestrator.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(config.llamacpp)
    raise ConfigError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKENDS)}")
