"""What the tools share: the orchestrator, settings, and clients with managed lifetimes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from mcp_frontend.checks.remote_images import RemoteFetcher
from mcp_frontend.settings import FrontendSettings
from orchestrator import Orchestrator
from orchestrator.inference import InferenceClient
from orchestrator.response_chains import ResponseChains

__all__ = ["Deps", "InferenceHolder"]


class InferenceHolder:
    """The inference client: the one given, or one owned per connection period.

    An owned client is created on first use and closed when the last MCP
    connection using this server ends (see :meth:`lifespan`), so nothing is
    left open however the server is run.
    """

    def __init__(self, client: InferenceClient | None = None) -> None:
        self._given = client
        self._owned: InferenceClient | None = None
        self._connections = 0

    def get(self) -> InferenceClient:
        """Return the client to use now."""
        if self._given is not None:
            return self._given
        if self._owned is None:
            self._owned = InferenceClient()
        return self._owned

    @asynccontextmanager
    async def lifespan(self, _server: object) -> AsyncIterator[dict[str, Any]]:
        """An MCP server lifespan: counts connections, closes an owned client after the last."""
        self._connections += 1
        try:
            yield {}
        finally:
            self._connections -= 1
            if self._connections == 0 and self._owned is not None:
                owned, self._owned = self._owned, None
                with trio.CancelScope(shield=True):
                    await owned.aclose()


@dataclass(frozen=True)
class Deps:
    """What the tools need, passed to each tool module's ``register``.

    Attributes:
        orch: the orchestrator facade.
        settings: input limits and permissions.
        inference: the inference client holder.
        fetcher: fetches remote images (when allowed).
        started_at: ``time.monotonic()`` when the server was built (for uptime).
        chains: response chains kept for backends whose Responses API keeps none.
    """

    orch: Orchestrator
    settings: FrontendSettings
    inference: InferenceHolder
    fetcher: RemoteFetcher
    started_at: float
    chains: ResponseChains
