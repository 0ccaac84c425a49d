"""The LM Studio backend: REST where the server offers it, the ``lms`` CLI for TTL'd loads.

Which route serves what (``docs/backends.md`` has the version table,
``docs/decisions/0002-lmstudio-load-path.md`` the reasoning):

============  ==========================================================================
operation     route, in order of preference
============  ==========================================================================
catalogue     ``lms ls --json`` if ``prefer_cli``; REST v1 ``GET /api/v1/models``;
              ``lms ls --json``; REST v0 ``GET /api/v0/models``; ``GET /v1/models``
loaded list   ``lms ps --json`` if ``prefer_cli``; REST v1; ``lms ps --json``; REST v0 ``state``
load          ``lms load KEY --identifier ID --ttl N -y [-c CTX]`` whenever ``lms`` exists;
              else a JIT load: a one-token inference request carrying ``ttl``
unload        ``lms unload ID`` if ``prefer_cli``; ``POST /api/v1/models/unload``; ``lms unload``
download      REST v1 ``POST /api/v1/models/download`` + status; ``lms get NAME -y``
              (``key@quant``, or no REST v1): see ``lmstudio_download``
health        ``GET /lmstudio-greeting``
============  ==========================================================================

REST v1 ``POST /api/v1/models/load`` takes neither a TTL nor an identifier, so
it would leave a model loaded forever if this process died; it is used only
when explicitly allowed (``allow_untimed_rest_load=True``).

The server's API level (REST v1, REST v0 only, or the OpenAI routes only) is
detected once and cached. Every failure is one of the orchestrator's errors
(see :mod:`orchestrator.backends.http_errors`); the API token is sent as a
bearer header and never logged or shown in ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import msgspec
import structlog
import trio

from orchestrator.backends.base import BackendHealth, DownloadProgress, LoadedModel, ModelInfo
from orchestrator.backends.lmstudio_cli import LmsCli, cli_route, resolve_cli
from orchestrator.backends.lmstudio_download import download_model
from orchestrator.backends.lmstudio_load import (
    AbandonedLoads,
    load_jit,
    load_rest_v1,
    warn_if_fitted,
)
from orchestrator.backends.lmstudio_rest import LMStudioRest
from orchestrator.backends.lmstudio_support import (
    INSTALL_HINT,
    ApiLevel,
    find_model,
    jit_request,
    normalize_base_url,
    ttl_seconds,
)
from orchestrator.backends.lmstudio_wire import (
    OpenAIModelList,
    V0ModelList,
    V1ModelList,
    V1UnloadResult,
    local_first,
)
from orchestrator.config import LMStudioSettings
from orchestrator.errors import (
    BackendAuthError,
    BackendError,
    BackendRejected,
    BackendTimeout,
    InvalidRequest,
    ModelNotLoaded,
    OrchestratorError,
    UnknownModel,
    excerpt,
)
from orchestrator.names import validate_model_name

__all__ = ["INSTALL_HINT", "ApiLevel", "LMStudioBackend"]


_log = structlog.get_logger("orchestrator.backends.lmstudio")
_GREETING_TIMEOUT_S = 5.0


class LMStudioBackend:
    """A :class:`~orchestrator.backends.Backend` for one LM Studio server.

    Args:
        settings: where and how to reach LM Studio (defaults: 127.0.0.1:1234).
        http: a client to use instead of the backend's own pooled one (not closed by us).
        allow_untimed_rest_load: without ``lms``, load through REST v1 (no
            backend-side TTL; only this process's TTL unloads it) instead of a
            JIT load. Off by default: see the module docstring.

    Raises:
        ConfigError: ``settings.base_url`` is not an http(s) URL.
    """

    name = "lmstudio"
    stops_on_cancel = False  # REST v1 has no cancel route; LM Studio goes on downloading

    def __init__(
        self,
        settings: LMStudioSettings | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        allow_untimed_rest_load: bool = False,
    ) -> None:
        self._settings = settings or LMStudioSettings()
        self._root = normalize_base_url(self._settings.base_url)
        self._rest = LMStudioRest(self._root, self._settings, http=http)
        self._allow_untimed_rest_load = allow_untimed_rest_load
        self._lms: LmsCli | None = None
        self._lms_resolved = False
        self._lms_route = ""
        self._server_version: str | None = None
        self._abandoned = AbandonedLoads()

    def __repr__(self) -> str:
        token = "<set>" if self._settings.api_token else None
        cli = self._lms.path if self._lms else ("<unresolved>" if not self._lms_resolved else None)
        return (
            f"LMStudioBackend(base_url={self._root!r}, api_token={token}, lms={cli!r}, "
            f"prefer_cli={self._settings.prefer_cli})"
        )

    # -- addresses --

    @property
    def root_url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:1234``."""
        return self._root

    def base_url(self, identifier: str) -> str:
        """Return the OpenAI-compatible base URL (``<root>/v1``); one server serves all."""
        return f"{self._root}/v1"

    def http_headers(self) -> Mapping[str, str]:
        """Return the bearer header when an API token is configured."""
        return self._rest.headers()

    # -- discovery --

    def cli(self) -> LmsCli | None:
        """Return the ``lms`` runner, or ``None`` when no executable was found (cached)."""
        if not self._lms_resolved:
            host_args, self._lms_route = cli_route(self._root, token=bool(self._settings.api_token))
            path = resolve_cli(self._settings.lms_cli) if host_args is not None else None
            self._lms = LmsCli(path, host_args) if path and host_args is not None else None
            self._lms_resolved = True
            if host_args is None:
                _log.info("lms_cli_not_used", reason=self._lms_route)
            elif path is None and self._settings.lms_cli:
                _log.warning("lms_cli_not_found", configured=self._settings.lms_cli)
        return self._lms

    def load_route(self) -> str:
        """Say how loads reach LM Studio (``lms`` and how, or why not), for ``health_check``."""
        lms = self.cli()
        if lms is not None:
            return f"loads via {self._lms_route} ({lms.path})"
        fallback = "REST v1 (no TTL)" if self._allow_untimed_rest_load else "JIT loads with ttl"
        route = self._lms_route
        reason = route if route.startswith("lms not used") else "lms CLI not found"
        token = ", token sent" if self._settings.api_token else ""
        return f"loads via {fallback}{token}: {reason}"

    async def api_level(self) -> ApiLevel:
        """Return which REST API the server offers, probing it once.

        Raises:
            BackendError: the server could not be probed (not cached; tried again next time).
        """
        return await self._rest.api_level()

    # -- Backend protocol --

    async def list_available(self) -> list[ModelInfo]:
        """Return every model LM Studio can load."""
        lms, prefer = self.cli(), self._settings.prefer_cli
        if lms and prefer:
            return local_first(await lms.ls(timeout_s=self._settings.cli_timeout_s))
        level = await self.api_level()
        if level is ApiLevel.REST_V1:
            return [m.info() for m in (await self._rest.get("/api/v1/models", V1ModelList)).models]
        if lms:
            return local_first(await lms.ls(timeout_s=self._settings.cli_timeout_s))
        if level is ApiLevel.REST_V0:
            return (await self._rest.get("/api/v0/models", V0ModelList)).available()
        openai = await self._rest.get("/v1/models", OpenAIModelList)
        return [ModelInfo(key=m.id) for m in openai.data]

    def catalog_problem(self) -> str | None:
        """LM Studio keeps its own catalogue: nothing to add here."""
        return None

    async def list_loaded(self) -> list[LoadedModel]:
        """Return the loaded instances (busy ones included: busy is still loaded)."""
        lms, prefer = self.cli(), self._settings.prefer_cli
        if lms and prefer:
            return [m.loaded() for m in await lms.ps(timeout_s=self._settings.cli_timeout_s)]
        level = await self.api_level()
        if level is ApiLevel.REST_V1:
            return (await self._rest.get("/api/v1/models", V1ModelList)).loaded()
        if lms:
            return [m.loaded() for m in await lms.ps(timeout_s=self._settings.cli_timeout_s)]
        if level is ApiLevel.REST_V0:
            return (await self._rest.get("/api/v0/models", V0ModelList)).loaded()
        raise BackendRejected(
            f"cannot list loaded models: LM Studio at {self._root} has no REST API "
            f"(older than 0.3.6) and the lms CLI was not found; {INSTALL_HINT}"
        )

    async def load(
        self,
        key: str,
        *,
        identifier: str,
        ttl_s: float,
        context_length: int | None = None,
    ) -> None:
        """Load ``key`` as ``identifier`` with an idle TTL LM Studio enforces.

        Raises:
            InvalidModelName: ``key`` or ``identifier`` is not a valid name.
            InvalidRequest: ``ttl_s`` or ``context_length`` is out of range, or
                ``key`` is a ``key@variant`` (the message names the key to load).
            UnknownModel: LM Studio does not offer ``key``; ``available`` lists what it does.
            BackendRejected: LM Studio refused (e.g. the memory guardrail), or no
                route can load with a TTL here (the message says what to install).
            BackendError: transport and server failures.
        """
        validate_model_name(key)
        validate_model_name(identifier)
        ttl = ttl_seconds(ttl_s)
        if context_length is not None and context_length < 1:
            raise InvalidRequest(f"context_length must be at least 1, got {context_length}")
        catalog = await self.list_available()
        info = find_model(catalog, key)
        lms = self.cli()
        timeout = self._settings.load_timeout_s
        log = _log.bind(model=key, identifier=identifier, ttl_s=ttl)
        if lms is not None:
            log.info("lmstudio_load", via="lms")
            try:
                await lms.load(
                    key,
                    identifier=identifier,
                    ttl_s=ttl,
                    context_length=context_length,
                    timeout_s=timeout,
                )
            except ModelNotLoaded as exc:
                raise UnknownModel(key, [m.key for m in catalog]) from exc
            except (BackendTimeout, trio.Cancelled):
                # lms got SIGINT, which cancels the load inside LM Studio; one that
                # completed anyway must not stay loaded under our identifier.
                with trio.CancelScope(shield=True):
                    await self._drop_stray(identifier)
                raise
            if context_length is not None:
                await warn_if_fitted(self.list_loaded, identifier, context_length)
        elif self._allow_untimed_rest_load and await self.api_level() is ApiLevel.REST_V1:
            log.warning("lmstudio_load", via="rest-v1", note="LM Studio enforces no TTL")
            with self._abandoned.watch(identifier):
                await load_rest_v1(
                    self._rest, key, identifier, context_length, catalog, self.unload, timeout
                )
        else:
            log.info("lmstudio_load", via="jit")
            level = await self.api_level()
            with self._abandoned.watch(identifier):
                await load_jit(self._rest, level, info, identifier, ttl, context_length, timeout)

    async def download(
        self, source: str, *, quantization: str | None, report: Callable[[DownloadProgress], None]
    ) -> DownloadProgress:
        """Download a catalogue key, ``key@quant`` or a Hugging Face URL (``lmstudio_download``)."""
        poll_s, lms = self._settings.download_poll_s, self.cli()
        return await download_model(
            self._rest, lms, source, quantization=quantization, report=report, poll_s=poll_s
        )

    async def unload(self, identifier: str) -> None:
        """Unload instance ``identifier``; an absent one is not an error."""
        validate_model_name(identifier)
        lms, prefer = self.cli(), self._settings.prefer_cli
        timeout = self._settings.cli_timeout_s
        if lms and prefer:
            await lms.unload(identifier, timeout_s=timeout)
            return
        level = await self.api_level()
        if level is ApiLevel.REST_V1:
            body = msgspec.json.encode({"instance_id": identifier})
            try:
                await self._rest.post("/api/v1/models/unload", V1UnloadResult, body=body)
            except (ModelNotLoaded, BackendRejected):
                # An unknown instance id is an error to LM Studio but not to us.
                if await self._is_loaded(identifier):
                    raise
            else:
                self._abandoned.gone(identifier)  # it was there, and it is gone
            return
        if lms:
            await lms.unload(identifier, timeout_s=timeout)
            return
        if not await self._is_loaded(identifier):
            return
        raise BackendRejected(
            f"cannot unload {identifier!r}: LM Studio at {self._root} has no unload route "
            f"before 0.4 and the lms CLI was not found; {INSTALL_HINT} "
            "(the model unloads by itself when its TTL runs out)"
        )

    async def health(self) -> BackendHealth:
        """Probe ``GET /lmstudio-greeting``; report, never raise, when unreachable."""
        what = self._rest.what("GET", "/lmstudio-greeting")
        timeout = min(self._settings.http_timeout_s, _GREETING_TIMEOUT_S)
        try:
            body = await self._rest.call("GET", "/lmstudio-greeting", None, timeout)
        except BackendAuthError as exc:
            return BackendHealth(reachable=True, backend=self.name, detail=str(exc))
        except BackendError as exc:
            return BackendHealth(reachable=False, backend=self.name, detail=str(exc))
        if not (isinstance(body, dict) and body.get("lmstudio") is True):
            return BackendHealth(
                reachable=False,
                backend=self.name,
                detail=f"{what}: the server answered, but not as LM Studio: "
                f"{excerpt(msgspec.json.encode(body))}",
            )
        facts = [f"LM Studio at {self._root}"]
        try:
            facts.append(f"API {(await self.api_level()).value}")
        except OrchestratorError as exc:
            facts.append(f"API unknown ({exc})")
        facts.append(self.load_route())
        return BackendHealth(
            reachable=True,
            backend=self.name,
            version=await self._version(),
            detail="; ".join(facts),
        )

    async def keep_alive(self, info: ModelInfo, identifier: str, ttl_s: float) -> None:
        """Reset LM Studio's idle timer of ``identifier`` with a one-token request.

        LM Studio's idle timer resets on every request to the model (docs
        ``0_core/ttl-and-auto-evict.md``); the request carries our TTL so that, if
        LM Studio had unloaded it already, the JIT load it triggers expires too.
        Failures are logged, not raised: the lease's own next request finds them.
        """
        target = msgspec.structs.replace(info, key=identifier)
        path, payload = jit_request(target, ttl_seconds(ttl_s))
        try:
            await self._rest.call(
                "POST", path, msgspec.json.encode(payload), self._settings.http_timeout_s
            )
        except OrchestratorError as exc:
            _log.info("lmstudio_keep_alive_failed", identifier=identifier, error=str(exc))

    async def aclose(self) -> None:
        """Unload abandoned loads once listed (bound this), then close the pooled HTTP client.

        A REST or JIT load cancelled by a stop completes in LM Studio anyway (see
        :mod:`~orchestrator.backends.lmstudio_load`); the client is ours only if
        this backend created it.
        """
        try:
            await self._abandoned.settle(self.list_loaded, self.unload)
        finally:
            with trio.CancelScope(shield=True):  # closing is quick, even past the bound
                await self._rest.aclose()

    # -- helpers --

    async def _version(self) -> str | None:
        # Only the local lms client can ask (lms daemon status); cached once known.
        lms = self.cli()
        if self._server_version is None and lms is not None and lms.local:
            timeout = min(self._settings.cli_timeout_s, _GREETING_TIMEOUT_S)
            try:
                self._server_version = await lms.server_version(timeout_s=timeout)
            except OrchestratorError as exc:
                _log.debug("lmstudio_version_unknown", error=str(exc))
        return self._server_version

    async def _drop_stray(self, identifier: str) -> None:
        with trio.move_on_after(self._settings.cli_timeout_s):
            try:
                if await self._is_loaded(identifier):
                    await self.unload(identifier)
            except OrchestratorError as exc:
                _log.warning("lmstudio_stray_not_unloaded", identifier=identifier, error=str(exc))

    async def _is_loaded(self, identifier: str) -> bool:
        return any(m.identifier == identifier for m in await self.list_loaded())
