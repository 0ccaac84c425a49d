"""What the lifecycle tools return: model status, the catalogue, the scheduler, health.

Split from :mod:`mcp_frontend.tools.io_types` (the inference tools' types) by
role; the same rules hold: ``typing_extensions.TypedDict`` for pydantic on
Python < 3.12, and outputs built explicitly by the ``*_out`` converters.
"""

from __future__ import annotations

from typing_extensions import TypedDict

from orchestrator import LoadedModel, ModelInfo, ModelStatus, SchedulerStatus

__all__ = [
    "HealthOut",
    "LoadOut",
    "LoadedInstanceOut",
    "ModelEntryOut",
    "ModelListOut",
    "ModelStatusOut",
    "ModelTotalsOut",
    "SchedulerOut",
    "SlotQueueOut",
    "StatusListOut",
    "entry_out",
    "scheduler_out",
    "status_out",
]


class ModelStatusOut(TypedDict):
    """One model as its actor last settled it."""

    model: str
    state: str
    identifier: str
    ttl_s: float
    expires_in_s: float | None
    in_flight: int
    consecutive_failures: int
    retry_after_s: float | None
    last_error: str | None
    context_length: int | None
    """The context the backend reports it loaded; null when unknown or not loaded."""
    warning: str | None
    """Set when the backend loaded less context than was asked (LM Studio fits it silently)."""
    owner: str | None
    """Who loaded the instance: ``ours``, ``foreign`` (another client; never unloaded by this
    server) or ``adopted`` (``manage_foreign``); null when nothing is loaded."""


class SlotQueueOut(TypedDict):
    """Requests for one model waiting for a slot (when the models do not all fit)."""

    model: str
    queued: int
    oldest_wait_s: float
    wait_bound_s: float
    """The wait at which a swap is forced for this model."""
    closed: str | None
    """Why this loaded model takes no new requests (it drains to be swapped out), else null."""


class SchedulerOut(TypedDict):
    """Who waits for a slot, and the swaps so far by reason."""

    policy: str
    queues: list[SlotQueueOut]
    swaps: dict[str, int]
    """Evictions to give a slot to another model, by reason (drained, fairness_bound,
    batch_limit, memory, fifo)."""


class StatusListOut(TypedDict):
    """Every model this server manages, and the slot scheduler's queues."""

    models: list[ModelStatusOut]
    scheduler: SchedulerOut


class LoadOut(TypedDict):
    """The outcome of a load: the model's status and how long the call waited."""

    status: ModelStatusOut
    was_ready: bool
    waited_s: float


class LoadedInstanceOut(TypedDict):
    """One loaded instance of a model, as the backend reports it."""

    identifier: str
    context_length: int | None
    """The context it was really loaded with (LM Studio may fit it below what was asked)."""
    device: str | None
    """The LM Link device holding it; null is the backend's own machine."""


class ModelEntryOut(TypedDict):
    """A model the backend offers, with what we know of it."""

    key: str
    type: str
    size_bytes: int | None
    """Size on disk."""
    max_context_length: int | None
    capabilities: list[str]
    downloaded: bool
    """On the backend's disk (false: loaded, but the catalogue does not list it)."""
    loaded: bool
    architecture: str | None
    quantization: str | None
    params: str | None
    """Parameter count as the backend writes it (4B, 135M), when known."""
    loaded_identifiers: list[str]
    loaded_instances: list[LoadedInstanceOut]
    state: str | None
    """Our lifecycle state; null when this server has not managed the model yet."""
    unusable: str | None
    """Why the model cannot be loaded (e.g. a corrupt file); null when it can."""


class ModelTotalsOut(TypedDict):
    """Sums over the listed models."""

    models: int
    loaded_models: int
    disk_bytes: int
    """Size on disk of the listed downloaded models (those whose size is known)."""
    loaded_bytes: int
    """Memory the loaded models' weights take (file size per instance on this machine)."""


class ModelListOut(TypedDict):
    """The catalogue and what is loaded."""

    backend: str
    default_model: str | None
    default_embedding_model: str | None
    models: list[ModelEntryOut]
    totals: ModelTotalsOut
    loaded_error: str | None
    """Why the loaded list could not be read (the catalogue is still shown)."""
    catalog_problem: str | None
    """Why the catalogue may be missing models (e.g. no models directory yet)."""


class HealthOut(TypedDict):
    """Whether the backend answers, and about this server."""

    reachable: bool
    backend: str
    backend_version: str | None
    detail: str
    backend_up: bool
    backend_last_seen_at: float | None
    backend_down_since: float | None
    backend_outages: int
    server_version: str
    mcp_version: str
    uptime_s: float
    models_managed: int
    models_ready: int


# -- inference outputs --


def status_out(s: ModelStatus) -> ModelStatusOut:
    """Convert a facade status snapshot."""
    return ModelStatusOut(
        model=s.model,
        state=s.state.value,
        identifier=s.identifier,
        ttl_s=s.ttl_s,
        expires_in_s=s.expires_in_s,
        in_flight=s.in_flight,
        consecutive_failures=s.consecutive_failures,
        retry_after_s=s.retry_after_s,
        last_error=s.last_error,
        context_length=s.context_length,
        warning=s.warning,
        owner=None if s.owner is None else s.owner.value,
    )


def scheduler_out(s: SchedulerStatus) -> SchedulerOut:
    """Convert the scheduler's status."""
    return SchedulerOut(
        policy=s.policy,
        queues=[
            SlotQueueOut(
                model=q.model,
                queued=q.queued,
                oldest_wait_s=q.oldest_wait_s,
                wait_bound_s=q.wait_bound_s,
                closed=q.closed,
            )
            for q in s.queues
        ],
        swaps=dict(s.swaps),
    )


def entry_out(
    info: ModelInfo, loaded: list[LoadedModel], state: str | None, *, downloaded: bool = True
) -> ModelEntryOut:
    """Convert a catalogue entry, with its loaded instances and our state."""
    instances = sorted(loaded, key=lambda m: m.identifier)
    return ModelEntryOut(
        key=info.key,
        type=info.type,
        size_bytes=info.size_bytes,
        max_context_length=info.max_context_length,
        capabilities=list(info.capabilities),
        downloaded=downloaded,
        loaded=bool(instances),
        architecture=info.architecture,
        quantization=info.quantization,
        params=info.params,
        loaded_identifiers=[m.identifier for m in instances],
        loaded_instances=[
            LoadedInstanceOut(
                identifier=m.identifier, context_length=m.context_length, device=m.device
            )
            for m in instances
        ],
        state=state,
        unusable=info.problem,
    )
