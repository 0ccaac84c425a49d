"""LM Studio's HTTP routes as typed calls: one pooled client, the token header, the timeouts.

Every answer is converted to its wire type (:mod:`orchestrator.backends.lmstudio_wire`)
and every failure is one of the orchestrator's errors, naming the server and
the route (see :mod:`orchestrator.backends.http_errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from orchestrator.backends.http_errors import EndpointNotSupported, convert, request_json
from orchestrator.config import LMStudioSettings

__all__ = ["LMStudioRest"]

T = TypeVar("T")


class LMStudioRest:
    """The HTTP side of one LM Studio server.

    Args:
        root: the server root, e.g. ``http://127.0.0.1:1234``.
        settings: the token and the control-plane timeouts.
        http: a client to use instead of an own pooled one (not closed by us).
        on_unsupported: called when a route answers that it does not exist (the
            server may have been replaced by another version).
    """

    def __init__(
        self,
        root: str,
        settings: LMStudioSettings,
        *,
        http: httpx.AsyncClient | None,
        on_unsupported: Callable[[], None],
    ) -> None:
        self.root = root
        self._settings = settings
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            # A local model server: never route it through env proxies or .netrc.
            trust_env=False,
        )
        self._on_unsupported = on_unsupported

    def headers(self) -> Mapping[str, str]:
        """The bearer header when an API token is configured."""
        token = self._settings.api_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def what(self, method: str, path: str) -> str:
        """How errors name one route."""
        return f"LM Studio at {self.root}: {method} {path}"

    async def get(self, path: str, type_: type[T]) -> T:
        """``GET path`` within the read timeout, converted to ``type_``."""
        answer = await self.call("GET", path, None, self._settings.read_timeout_s)
        return convert(answer, type_, what=self.what("GET", path))

    async def post(
        self, path: str, type_: type[T], *, body: bytes, timeout_s: float | None = None
    ) -> T:
        """``POST path`` with a JSON ``body``, converted to ``type_``."""
        timeout_s = timeout_s or self._settings.http_timeout_s
        answer = await self.call("POST", path, body, timeout_s)
        return convert(answer, type_, what=self.what("POST", path))

    async def call(self, method: str, path: str, body: bytes | None, timeout_s: float) -> Any:
        """One request; the decoded JSON answer."""
        try:
            return await request_json(
                self._http,
                method,
                f"{self.root}{path}",
                what=self.what(method, path),
                headers=self.headers(),
                timeout_s=timeout_s,
                body=body,
            )
        except EndpointNotSupported:
            self._on_unsupported()
            raise

    async def aclose(self) -> None:
        """Close the pooled client (only if this object created it)."""
        if self._owns_http:
            await self._http.aclose()
