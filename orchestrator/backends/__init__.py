"""Backends: the seam between the orchestrator and a model server."""

from orchestrator.backends.base import Backend, BackendHealth, LoadedModel, ModelInfo

__all__ = ["Backend", "BackendHealth", "LoadedModel", "ModelInfo"]
