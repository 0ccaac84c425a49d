"""Lifecycle tools: list, status, load, unload, reset the breaker, health."""

from __future__ import annotations

import time
from importlib import metadata
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError, message_for, tool_errors
from mcp_frontend.tools.lifecycle_types import (
    HealthOut,
    LoadOut,
    ModelEntryOut,
    ModelListOut,
    ModelStatusOut,
    ModelTotalsOut,
    StatusListOut,
    entry_out,
    scheduler_out,
    status_out,
)
from mcp_frontend.tools.progress import model_progress
from orchestrator import LoadedModel, ModelInfo, OrchestratorError, State, UnknownModel

__all__ = ["model_list", "register", "status_list"]

ModelArg = Annotated[str, Field(description="Model key, as list_models shows it.")]
Seconds = Annotated[float | None, Field(gt=0, description="Seconds; must be positive.")]

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
# Lifecycle changes touch only the local model server, never the outside world.
_LOCAL_CHANGE = ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def register(mcp: MCPServer[Any], deps: Deps) -> None:
    """Register the lifecycle tools on ``mcp``."""
    orch, config = deps.orch, deps.orch.config

    @mcp.tool(title="List models", annotations=_READ)
    async def list_models(
        kind: Literal["llm", "vlm", "embedding"] | None = None,
        refresh: bool = False,
        key_contains: Annotated[
            str | None, Field(description="Only keys containing this text (any case).")
        ] = None,
    ) -> ModelListOut:
        """List the downloaded models, what is loaded, and each one's state, with totals.

        Each entry has type, size on disk, context length, capabilities, architecture,
        quantisation and parameter count where known, whether it is downloaded and
        loaded, its loaded instances, and this server's lifecycle state (null: never
        used here). Totals sum disk and the memory of loaded weights. key_contains
        searches the keys; download_model fetches a model that is not there.
        """
        return await model_list(deps, kind=kind, refresh=refresh, key_contains=key_contains)

    @mcp.tool(title="Model status", annotations=_READ)
    async def model_status(model: str | None = None) -> StatusListOut:
        """Show the lifecycle status of every managed model, or of one.

        State, TTL, seconds until idle expiry, requests in flight, consecutive
        failures and, when the breaker is open, seconds until a retry is allowed.
        """
        return await status_list(deps, model)

    @mcp.tool(
        title="Load a model",
        annotations=_LOCAL_CHANGE,
    )
    async def load_model(
        model: ModelArg,
        ctx: Context[Any, Any],
        ttl_s: Seconds = None,
        keep_loaded: bool | None = None,
        timeout_s: Seconds = None,
        context_length: Annotated[int | None, Field(ge=1)] = None,
    ) -> LoadOut:
        """Load a model (or join its load in progress) and wait until it is READY.

        The idle TTL is ``ttl_s`` if given (capped at the configured maximum); else
        keep_loaded=true asks for the longest TTL allowed and keep_loaded=false for the
        short temporary one; else the default. context_length applies when this call
        loads the model (LM Studio may fit it lower: list_models shows what it loaded).
        Waits report progress.
        """
        if ttl_s is not None and keep_loaded is not None:
            raise ToolError("give ttl_s or keep_loaded, not both")
        if keep_loaded is not None:
            ttl_s = config.max_ttl_s if keep_loaded else config.temporary_ttl_s
        before = next((s for s in orch.status() if s.model == model), None)
        started = time.monotonic()
        quiet_s, beat_s = deps.settings.progress_interval_s, deps.settings.progress_heartbeat_s
        with tool_errors():
            async with model_progress(ctx, orch, model, interval_s=quiet_s, heartbeat_s=beat_s):
                status = await orch.ensure_loaded(
                    model, ttl_s=ttl_s, timeout_s=timeout_s, context_length=context_length
                )
        return LoadOut(
            status=status_out(status),
            was_ready=before is not None and before.state is State.READY,
            waited_s=round(time.monotonic() - started, 3),
        )

    @mcp.tool(
        title="Unload a model",
        annotations=ToolAnnotations(
            destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def unload_model(model: ModelArg) -> ModelStatusOut:
        """Unload a model now, freeing its memory. Refused while requests use it."""
        with tool_errors():
            return status_out(await orch.unload(model))

    @mcp.tool(
        title="Reset the circuit breaker",
        annotations=_LOCAL_CHANGE,
    )
    async def reset_breaker(model: ModelArg) -> ModelStatusOut:
        """Close a model's circuit breaker and forget its failures.

        The next request may then load it at once; use after fixing the cause
        (for example after freeing memory).
        """
        with tool_errors():
            return status_out(await orch.reset_breaker(model))

    @mcp.tool(title="Health check", annotations=_READ)
    async def health_check() -> HealthOut:
        """Check that the model server answers; report versions, uptime and model counts."""
        health = await orch.backend.health()
        # The state loads wait on (an outage is the backend's, not each model's breaker).
        seen = orch.backend_health()
        statuses = orch.status()
        return HealthOut(
            reachable=health.reachable,
            backend=health.backend,
            backend_version=health.version,
            detail=health.detail,
            backend_up=seen.up,
            backend_last_seen_at=seen.last_seen_at,
            backend_down_since=seen.down_since,
            backend_outages=seen.outages,
            server_version=_version("lmstudio-orchestrator"),
            mcp_version=_version("mcp"),
            uptime_s=round(time.monotonic() - deps.started_at, 3),
            models_managed=len(statuses),
            models_ready=sum(s.state is State.READY for s in statuses),
        )


async def model_list(
    deps: Deps, *, kind: str | None = None, refresh: bool = False, key_contains: str | None = None
) -> ModelListOut:
    """Return the catalogue with loaded instances, our states and totals (``list_models``).

    Models loaded but not in the catalogue (loaded by someone else from
    elsewhere) are listed too, as not downloaded, unless a ``kind`` is asked.

    Raises:
        ToolError: the catalogue could not be read.
    """
    orch, config = deps.orch, deps.orch.config
    with tool_errors():
        catalog = await orch.catalog(refresh=refresh)
    loaded: dict[str, list[LoadedModel]] = {}
    loaded_error = None
    try:
        for inst in await orch.backend.list_loaded():
            loaded.setdefault(inst.key, []).append(inst)
    except OrchestratorError as exc:
        loaded_error = message_for(exc)
    states = {s.model: s.state.value for s in orch.status()}
    known = {m.key for m in catalog}
    strays = [ModelInfo(key=k) for k in sorted(loaded) if k not in known and kind is None]
    needle = (key_contains or "").lower()
    models = [
        entry_out(m, loaded.get(m.key, []), states.get(m.key), downloaded=m.key in known)
        for m in [*catalog, *strays]
        if (kind is None or m.type == kind) and needle in m.key.lower()
    ]
    return ModelListOut(
        backend=orch.backend.name,
        default_model=config.default_model,
        default_embedding_model=config.default_embedding_model,
        models=models,
        totals=_totals(models, loaded),
        loaded_error=loaded_error,
        catalog_problem=orch.backend.catalog_problem(),
    )


def _totals(models: list[ModelEntryOut], loaded: dict[str, list[LoadedModel]]) -> ModelTotalsOut:
    # Instances on another LM Link device take that device's memory, not ours.
    def local(key: str) -> int:
        return sum(inst.device is None for inst in loaded.get(key, []))

    return ModelTotalsOut(
        models=len(models),
        loaded_models=sum(m["loaded"] for m in models),
        disk_bytes=sum(m["size_bytes"] or 0 for m in models if m["downloaded"]),
        loaded_bytes=sum((m["size_bytes"] or 0) * local(m["key"]) for m in models),
    )


async def status_list(deps: Deps, model: str | None = None) -> StatusListOut:
    """Return every managed model's status, or ``model``'s (``model_status``).

    A model in the catalogue that this server never used is reported UNLOADED.

    Raises:
        ToolError: ``model`` is not in the catalogue (the message lists what is).
    """
    orch = deps.orch
    snapshots = [status_out(s) for s in orch.status() if model in (None, s.model)]
    scheduler = scheduler_out(orch.scheduler_status())
    if model is None or snapshots:
        return StatusListOut(models=snapshots, scheduler=scheduler)
    with tool_errors():
        keys = [m.key for m in await orch.catalog()]
        if model not in keys:
            raise UnknownModel(model, keys)
    return StatusListOut(
        models=[_never_used(model, orch.config.default_ttl_s)], scheduler=scheduler
    )


def _never_used(model: str, ttl_s: float) -> ModelStatusOut:
    # A model this server has not touched yet: its actor would start UNLOADED.
    return ModelStatusOut(
        model=model,
        state=State.UNLOADED.value,
        identifier="",
        ttl_s=ttl_s,
        expires_in_s=None,
        in_flight=0,
        consecutive_failures=0,
        retry_after_s=None,
        last_error=None,
        context_length=None,
        warning=None,
        owner=None,
    )
