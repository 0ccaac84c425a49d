"""LM Studio's HTTP routes as typed calls: one pooled client, the token header, the timeouts.

It also knows which native REST API the server offers (:meth:`LMStudioRest.api_level`,
probed once and forgotten when a route vanishes, e.g. after an upgrade).

Every answer is converted to its wire type (:mod:`orchestrator.backends.lmstudio_wire`)
and every failure is one of the orchestrator's errors, naming the server and
the route (see :mod:`orchestrator.backends.http_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
import structlog
import trio

from orchestrator.backends.http_errors import EndpointNotSupported, convert, request_json
from orchestrator.backends.lmstudio_support import ApiLevel
from orchestrator.backends.lmstudio_wire import V0ModelList, V1ModelList
from orchestrator.config import LMStudioSettings
from orchestrator.errors import OrchestratorError

__all__ = ["LMStudioRest"]

T = TypeVar("T")
_log = structlog.get_logger("orchestrator.backends.lmstudio")


class LMStudioRest:
    """The HTTP side of one LM Studio server.

    Args:
        root: the server root, e.g. ``http://127.0.0.1:1234``.
        settings: the token and the control-plane timeouts.
        http: a client to use instead of an own pooled one (not closed by us).
    """

    def __init__(
        self,
        root: str,
        settings: LMStudioSettings,
        *,
        http: httpx.AsyncClient | None,
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
        self._api_level: ApiLevel | None = None
        self._probe_lock = trio.Lock()
        self._probes_done = 0
        self._probe_error: OrchestratorError | None = None

    async def api_level(self) -> ApiLevel:
        """Which REST API the server offers, probed once (a failed probe is not cached).

        Raises:
            BackendError: the server could not be probed.
        """
        if self._api_level is None:
            asked = self._probes_done
            async with self._probe_lock:
                if self._api_level is None:
                    if self._probes_done != asked and self._probe_error is not None:
                        # The probe we queued behind just failed: share its answer rather
                        # than wait as long again (a silent server would double the wait).
                        raise self._probe_error
                    try:
                        self._api_level = await self._detect_api()
                    except OrchestratorError as exc:
                        self._probe_error = exc
                        raise
                    finally:
                        self._probes_done += 1
                    _log.info("lmstudio_api", base_url=self.root, api_level=self._api_level.value)
        return self._api_level

    async def _detect_api(self) -> ApiLevel:
        try:
            await self.get("/api/v1/models", V1ModelList)
            return ApiLevel.REST_V1
        except EndpointNotSupported:
            pass
        try:
            await self.get("/api/v0/models", V0ModelList)
            return ApiLevel.REST_V0
        except EndpointNotSupported:
            return ApiLevel.OPENAI_ONLY

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
            self._api_level = None  # the server may have been replaced: probe again next time
            raise

    async def aclose(self) -> None:
        """Close the pooled client (only if this object created it)."""
        if self._owns_http:
            await self._http.aclose()
