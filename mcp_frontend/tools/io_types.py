"""What the tools take and return: TypedDicts, so every tool has an input and output schema.

``typing_extensions.TypedDict`` rather than ``typing.TypedDict``: pydantic
(which the MCP SDK uses to derive schemas) requires it on Python < 3.12.
Outputs are built explicitly from the facade's Structs by the ``*_out``
converters, so a field added to a Struct never leaks into a schema unseen.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import WithJsonSchema
from typing_extensions import TypedDict

from orchestrator import LoadedModel, ModelInfo, ModelStatus, SchedulerStatus
from orchestrator.inference import ResponseUsage, Usage

__all__ = [
    "ChatMessageIn",
    "ChatOut",
    "EmbeddingsOut",
    "HealthOut",
    "ImageOut",
    "JsonSchemaIn",
    "LoadOut",
    "ModelEntryOut",
    "ModelListOut",
    "ModelStatusOut",
    "ModelTotalsOut",
    "ResponseFormatIn",
    "ResponseOut",
    "ResponseUsageOut",
    "SchedulerOut",
    "SchemaCheckOut",
    "SlotQueueOut",
    "StatusListOut",
    "TextOut",
    "UsageOut",
    "VisionOut",
    "entry_out",
    "response_usage_out",
    "scheduler_out",
    "status_out",
    "usage_out",
]

# Any JSON value, spelled out: an empty schema ({}) is "anything" too, but strict
# clients (the MCP Inspector) warn about an untyped property.
_JSON_VALUE: dict[str, Any] = {
    "type": ["object", "array", "string", "number", "integer", "boolean", "null"]
}

# -- inputs --


class ChatMessageIn(TypedDict):
    """One message of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


class JsonSchemaIn(TypedDict):
    """A named JSON schema the answer must follow."""

    name: str
    schema: dict[str, Any]
    strict: NotRequired[bool]


class ResponseFormatIn(TypedDict):
    """Structured output, OpenAI style. LM Studio accepts ``json_schema`` and ``text`` only."""

    type: Literal["json_schema", "text"]
    json_schema: NotRequired[JsonSchemaIn]


# -- lifecycle outputs --


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


class UsageOut(TypedDict):
    """Token counts."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseUsageOut(TypedDict):
    """Token counts of a Responses-API call."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


class ChatOut(TypedDict):
    """A chat answer; reasoning is kept apart from the answer."""

    model: str
    identifier: str
    content: str
    reasoning: str | None
    finish_reason: str | None
    usage: UsageOut | None
    parsed: Annotated[Any, WithJsonSchema(_JSON_VALUE)]
    """The answer decoded as JSON, when a ``json_schema`` response format was asked for."""
    schema_errors: list[str]
    """Where the decoded answer breaks the schema (empty when it conforms)."""
    warning: str | None
    """Set when the token limit ran out before any answer (reasoning used it all)."""


class TextOut(TypedDict):
    """A raw text completion."""

    model: str
    identifier: str
    text: str
    finish_reason: str | None
    usage: UsageOut | None


class ResponseOut(TypedDict):
    """A Responses-API answer; ``id`` continues the conversation."""

    id: str
    model: str
    identifier: str
    output_text: str
    reasoning: str | None
    status: str | None
    previous_response_id: str | None
    usage: ResponseUsageOut | None
    warning: str | None
    """Set when the token limit ran out before any answer (reasoning used it all)."""


class EmbeddingsOut(TypedDict):
    """Embedding vectors, in input order."""

    model: str
    identifier: str
    dimensions: int
    embeddings: list[list[float]]
    usage: UsageOut | None


class ImageOut(TypedDict):
    """An image as it was sent (never its bytes)."""

    source: str
    mime_type: str
    size_bytes: int


class VisionOut(TypedDict):
    """What the model saw in the images."""

    model: str
    identifier: str
    mode: str
    content: str
    reasoning: str | None
    finish_reason: str | None
    images: list[ImageOut]
    usage: UsageOut | None


class SchemaCheckOut(TypedDict):
    """Whether a JSON schema is usable as a response format."""

    valid: bool
    errors: list[str]
    warnings: list[str]
    depth: int
    size_bytes: int


# -- converters --


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


def usage_out(u: Usage | None) -> UsageOut | None:
    """Convert token counts."""
    if u is None:
        return None
    return UsageOut(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
    )


def response_usage_out(u: ResponseUsage | None) -> ResponseUsageOut | None:
    """Convert Responses-API token counts."""
    if u is None:
        return None
    return ResponseUsageOut(
        input_tokens=u.input_tokens, output_tokens=u.output_tokens, total_tokens=u.total_tokens
    )
