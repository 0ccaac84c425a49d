"""Wire shapes of LM Studio's control plane, and their conversion to ours.

Each Struct decodes one answer from ``reference/lmstudio-api.md``: REST v1
``GET /api/v1/models`` (§5.1), ``POST /api/v1/models/load|unload`` (§5.2-5.3),
REST v0 ``GET /api/v0/models`` (§4), OpenAI ``GET /v1/models`` (§3.1) and the
``lms ls|ps --json`` arrays (§6.3-6.4). Every Struct ignores unknown fields and
gives optional ones a default, because LM Studio adds fields in most releases
and older releases omit newer ones.
"""

from __future__ import annotations

from typing import Any

import msgspec

from orchestrator.backends.base import LoadedModel, ModelInfo

__all__ = [
    "CliInstance",
    "CliModel",
    "OpenAIModelList",
    "V0ModelList",
    "V1LoadResult",
    "V1ModelList",
    "V1UnloadResult",
    "local_first",
]


def _model_type(raw: str, *, vision: bool = False) -> str:
    # v0 says "embeddings", v1 and lms say "embedding"; vision LLMs count as "vlm".
    if raw.startswith("embedding"):
        return "embedding"
    if raw == "vlm" or vision:
        return "vlm"
    return "llm"


# -- REST v1 (LM Studio 0.4+) --


class V1Instance(msgspec.Struct, kw_only=True):
    """One loaded instance inside a v1 model entry."""

    id: str
    config: dict[str, Any] | None = None

    def context_length(self) -> int | None:
        """``config.context_length``: the loaded context (docs ``2_rest/list.md``)."""
        value = (self.config or {}).get("context_length")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class Quantization(msgspec.Struct, kw_only=True):
    """A quantisation object, ``{"name": "Q4_K_M", ...}`` (REST v1 and ``lms ls --json``)."""

    name: str | None = None


def _quant(q: Quantization | None) -> str | None:
    return q.name if q is not None else None


class V1Capabilities(msgspec.Struct, kw_only=True):
    """A v1 model's capabilities (absent for embedding models)."""

    vision: bool = False
    trained_for_tool_use: bool = False
    reasoning: dict[str, Any] | None = None


class V1Model(msgspec.Struct, kw_only=True):
    """One entry of ``GET /api/v1/models``."""

    key: str
    type: str = "llm"
    size_bytes: int | None = None
    max_context_length: int | None = None
    loaded_instances: list[V1Instance] = msgspec.field(default_factory=list)
    capabilities: V1Capabilities | None = None
    variants: list[str] = msgspec.field(default_factory=list)
    architecture: str | None = None
    quantization: Quantization | None = None
    params_string: str | None = None

    def info(self) -> ModelInfo:
        """Return the catalogue entry."""
        caps = self.capabilities or V1Capabilities()
        names = [
            name
            for name, present in (
                ("tool_use", caps.trained_for_tool_use),
                ("vision", caps.vision),
                ("reasoning", caps.reasoning is not None),
            )
            if present
        ]
        return ModelInfo(
            key=self.key,
            type=_model_type(self.type, vision=caps.vision),
            size_bytes=self.size_bytes,
            max_context_length=self.max_context_length,
            capabilities=tuple(names),
            architecture=self.architecture,
            quantization=_quant(self.quantization),
            params=self.params_string,
        )


class V1ModelList(msgspec.Struct, kw_only=True):
    """``GET /api/v1/models``: every downloaded model, with its loaded instances."""

    models: list[V1Model]

    def loaded(self) -> list[LoadedModel]:
        """Return the loaded instances (REST v1 does not report their TTL)."""
        return [
            LoadedModel(identifier=inst.id, key=m.key, context_length=inst.context_length())
            for m in self.models
            for inst in m.loaded_instances
        ]


class V1LoadResult(msgspec.Struct, kw_only=True):
    """``POST /api/v1/models/load`` (it blocks until the model is loaded)."""

    instance_id: str
    type: str | None = None
    status: str | None = None
    load_time_seconds: float | None = None


class V1UnloadResult(msgspec.Struct, kw_only=True):
    """``POST /api/v1/models/unload``."""

    instance_id: str


# -- REST v0 (LM Studio 0.3.6+) --


class V0Model(msgspec.Struct, kw_only=True):
    """One entry of ``GET /api/v0/models``; ``state`` says whether it is loaded."""

    id: str
    type: str = "llm"
    state: str = "not-loaded"
    max_context_length: int | None = None
    loaded_context_length: int | None = None
    capabilities: list[str] = msgspec.field(default_factory=list)
    arch: str | None = None
    quantization: str | None = None


class V0ModelList(msgspec.Struct, kw_only=True):
    """``GET /api/v0/models``: downloaded models (only loaded ones when JIT is off)."""

    data: list[V0Model]

    def available(self) -> list[ModelInfo]:
        """Return the catalogue entries."""
        return [
            ModelInfo(
                key=m.id,
                type=_model_type(m.type),
                max_context_length=m.max_context_length,
                capabilities=tuple(m.capabilities),
                architecture=m.arch,
                quantization=m.quantization,
            )
            for m in self.data
        ]

    def loaded(self) -> list[LoadedModel]:
        """Return the models whose ``state`` is ``loaded``."""
        return [
            LoadedModel(identifier=m.id, key=m.id, context_length=m.loaded_context_length)
            for m in self.data
            if m.state == "loaded"
        ]


# -- OpenAI-compatible (every version) --


class OpenAIModel(msgspec.Struct, kw_only=True):
    """One entry of ``GET /v1/models``."""

    id: str


class OpenAIModelList(msgspec.Struct, kw_only=True):
    """``GET /v1/models``: ids only (downloaded models when JIT is on, else loaded)."""

    data: list[OpenAIModel]


# -- the lms CLI --


class CliModel(msgspec.Struct, kw_only=True, rename="camel"):
    """One element of ``lms ls --json``."""

    model_key: str
    type: str = "llm"
    size_bytes: int | None = None
    max_context_length: int | None = None
    vision: bool = False
    trained_for_tool_use: bool = False
    variants: list[str] = msgspec.field(default_factory=list)
    device_identifier: str | None = None
    """The LM Link device holding the file; ``None`` is this machine
    (lmstudio-js ``lms-shared-types/src/ModelInfoBase.ts`` @6ec11db)."""
    architecture: str | None = None
    quantization: Quantization | None = None
    params_string: str | None = None

    def info(self) -> ModelInfo:
        """Return the catalogue entry.

        A model on another LM Link device has no local size: it would not take
        this machine's memory, so the memory budget must not count it.
        """
        names = [
            name
            for name, present in (("tool_use", self.trained_for_tool_use), ("vision", self.vision))
            if present
        ]
        return ModelInfo(
            key=self.model_key,
            type=_model_type(self.type, vision=self.vision),
            size_bytes=self.size_bytes if self.device_identifier is None else None,
            max_context_length=self.max_context_length,
            capabilities=tuple(names),
            architecture=self.architecture,
            quantization=_quant(self.quantization),
            params=self.params_string,
        )


def local_first(models: list[CliModel]) -> list[ModelInfo]:
    """Return one catalogue entry per key, the local copy when there is one.

    With LM Link, ``lms ls --json`` lists a key once per device that has it.
    """
    chosen: dict[str, CliModel] = {}
    for model in models:
        if model.device_identifier is None or model.model_key not in chosen:
            chosen[model.model_key] = model
    return [m.info() for m in chosen.values()]


class CliInstance(msgspec.Struct, kw_only=True, rename="camel"):
    """One element of ``lms ps --json``.

    ``status`` is ``idle``, ``processingPrompt``, ``generating`` or
    ``computingEmbedding``: all of them mean *loaded* (a model still loading
    is not listed at all). The old bridge treated ``generating`` as
    unavailable and reloaded busy models; we do not.
    """

    identifier: str
    model_key: str
    ttl_ms: float | None = None
    status: str | None = None
    context_length: int | None = None
    device_identifier: str | None = None

    def loaded(self) -> LoadedModel:
        """Return the loaded instance: TTL in seconds, loaded context, LM Link device."""
        ttl = self.ttl_ms / 1000.0 if self.ttl_ms is not None else None
        return LoadedModel(
            identifier=self.identifier,
            key=self.model_key,
            ttl_s=ttl,
            context_length=self.context_length,
            device=self.device_identifier,
        )
