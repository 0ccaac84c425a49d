"""The model catalogue, cached and fetched once however many callers ask."""

from __future__ import annotations

import trio

from orchestrator.backends.base import Backend, ModelInfo
from orchestrator.config import Config
from orchestrator.errors import OrchestratorError, UnknownModel, is_outage
from orchestrator.retry import OnRetry, with_retries

__all__ = ["Catalog"]


class Catalog:
    """The backend's model list, cached for ``config.catalog_ttl_s``.

    Concurrent callers share one fetch; a failed fetch is reported to every
    caller waiting on it and is not cached. While the backend is down (an
    outage error), the last catalogue fetched is used as it was: a model known
    before the outage can still be asked for, and its load waits for the
    backend (``orchestrator.backend_health``).
    """

    def __init__(self, backend: Backend, config: Config, on_retry: OnRetry | None = None) -> None:
        self._backend = backend
        self._on_retry = on_retry
        self._config = config
        self._models: list[ModelInfo] = []
        self._fetched_at: float | None = None
        self._inflight: trio.Event | None = None
        self._error: OrchestratorError | None = None

    async def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Return the catalogue, fetching it when stale or when ``refresh`` is set."""
        now = trio.current_time()
        fresh = self._fetched_at is not None and now - self._fetched_at < self._config.catalog_ttl_s
        if fresh and not refresh:
            return self._models
        if self._inflight is not None:
            done = self._inflight
            await done.wait()
            if self._error is not None:
                raise self._error
            return self._models
        self._inflight = trio.Event()
        self._error = None
        try:
            models = await with_retries(
                self._config, "list_available", self._backend.list_available, self._on_retry
            )
        except OrchestratorError as exc:
            if is_outage(exc) and self._fetched_at is not None:
                return self._models  # stale but known; fetched again once it answers
            self._error = exc
            raise
        else:
            self._models, self._fetched_at = models, trio.current_time()
            return models
        finally:
            self._inflight.set()
            self._inflight = None

    async def lookup(self, model: str) -> ModelInfo:
        """Return the catalogue entry for ``model``.

        Raises:
            UnknownModel: not in the catalogue, even after one refresh.
        """
        for refresh in (False, True):
            for info in await self.models(refresh=refresh):
                if info.key == model:
                    return info
            if self._fetched_at is not None and trio.current_time() - self._fetched_at < 1.0:
                break  # just fetched: a refresh would ask the backend the same question
        why = self._backend.catalog_problem()
        raise UnknownModel(model, [info.key for info in self._models], why=why)
