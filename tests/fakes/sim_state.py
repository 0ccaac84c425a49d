"""The simulator's model state: catalogue, loaded instances, identifiers, idle TTL, JIT.

Plain synchronous data, shared by the HTTP routes and the fake ``lms``. Time
is ``trio.current_time()`` plus an offset that :meth:`SimState.advance` moves,
so a test can expire an idle TTL without sleeping. Expiry is lazy: it happens
whenever the state is read through the routes or ``advance`` is called.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import trio

__all__ = [
    "DEFAULT_MODELS",
    "JIT_DEFAULT_TTL_S",
    "LoadRecord",
    "SimError",
    "SimInstance",
    "SimModel",
    "SimState",
]

JIT_DEFAULT_TTL_S = 3600.0
"""LM Studio's idle TTL for a JIT load whose request names none (60 min)."""


class SimError(Exception):
    """An error the simulator reports: an HTTP error body, or a failing ``lms`` run.

    Args:
        message: LM Studio's message.
        status: the HTTP status to answer with.
        code: the structured error ``code`` (e.g. ``model_not_found``).
        type: the structured error ``type``.
        param: the structured error ``param``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str | None = None,
        type: str | None = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.param = param


class SimModel(msgspec.Struct, kw_only=True):
    """A downloaded model in the simulator's catalogue."""

    key: str
    type: Literal["llm", "vlm", "embedding"] = "llm"
    size_bytes: int = 2_497_280_256
    max_context_length: int = 32768
    publisher: str = "lmstudio-community"
    arch: str = "qwen3"
    quantization: str = "Q4_K_M"
    params: str | None = "4B"
    tool_use: bool = True
    reasoning: bool = False
    embedding_dims: int = 8
    device: str | None = None
    """The LM Link device holding it (``None``: this machine); ``lms ls/ps --json``
    carry it as ``deviceIdentifier`` (lmstudio-js ``ModelInfoBase.ts`` @6ec11db)."""
    fit_context: int | None = None
    """LM Studio 0.4.12+ auto-fits context to memory and loads less than asked without
    an error (BT#1902, BT#2174 "Model context auto-fit: ... fitted=4,096"): a load
    asking for more gets this much."""

    @property
    def vision(self) -> bool:
        """Whether it is a vision model."""
        return self.type == "vlm"


DEFAULT_MODELS: tuple[SimModel, ...] = (
    SimModel(key="qwen/qwen3-4b"),
    SimModel(key="google/gemma-3-4b", type="vlm", arch="gemma3", tool_use=False),
    SimModel(key="openai/gpt-oss-20b", arch="gpt-oss", reasoning=True, size_bytes=12_000_000_000),
    SimModel(
        key="text-embedding-nomic-embed-text-v1.5",
        type="embedding",
        arch="nomic-bert",
        size_bytes=84_106_624,
        max_context_length=2048,
        tool_use=False,
    ),
)


class SimInstance(msgspec.Struct, kw_only=True):
    """A loaded instance: ``identifier`` is what requests name."""

    identifier: str
    key: str
    context_length: int
    ttl_s: float | None
    last_used: float
    jit: bool = False
    active: int = 0
    device: str | None = None

    @property
    def status(self) -> str:
        """``lms ps`` status: ``idle`` or ``generating`` (never "loading"/"loaded")."""
        return "generating" if self.active else "idle"


class LoadRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One load the simulator performed (or was asked to), for assertions."""

    key: str
    identifier: str
    ttl_s: float | None
    via: Literal["cli", "rest", "jit", "test"]
    context_length: int | None = None


class SimState:
    """Catalogue and loaded instances.

    Args:
        models: the catalogue.
        jit: Just-in-Time loading on inference requests (LM Studio's default: on).
        auto_evict: a JIT load first unloads other JIT-loaded instances (default: on).
    """

    def __init__(self, models: tuple[SimModel, ...], *, jit: bool, auto_evict: bool) -> None:
        # Copies: a test that changes one simulator's model (say its fit_context) must not
        # change the shared DEFAULT_MODELS every later simulator starts from.
        self.catalog: dict[str, SimModel] = {m.key: msgspec.structs.replace(m) for m in models}
        self.instances: dict[str, SimInstance] = {}
        self.jit = jit
        self.auto_evict = auto_evict
        self.loads: list[LoadRecord] = []
        self.unloads: list[str] = []
        self.evictions: list[str] = []
        self._offset = 0.0

    # -- time --

    def now(self) -> float:
        """The simulator's clock (trio time plus what :meth:`advance` added)."""
        return trio.current_time() + self._offset

    def advance(self, seconds: float) -> list[str]:
        """Move the clock forward and unload what expired; return their identifiers."""
        self._offset += seconds
        return self.expire()

    def expire(self) -> list[str]:
        """Unload idle instances whose TTL ran out (busy ones never expire)."""
        now = self.now()
        gone = [
            i.identifier
            for i in self.instances.values()
            if i.ttl_s is not None and not i.active and now - i.last_used >= i.ttl_s
        ]
        for identifier in gone:
            del self.instances[identifier]
            self.evictions.append(identifier)
        return gone

    # -- lookups --

    def model(self, name: str) -> SimModel | None:
        """The catalogue entry for a key, or for a ``key@variant``."""
        return self.catalog.get(name) or self.catalog.get(name.partition("@")[0])

    def instance(self, name: str) -> SimInstance | None:
        """The instance named by identifier, else the first instance of that key."""
        self.expire()
        if name in self.instances:
            return self.instances[name]
        return next((i for i in self.instances.values() if i.key == name), None)

    def loaded_ids(self) -> list[str]:
        """Identifiers of the loaded instances."""
        self.expire()
        return list(self.instances)

    def next_identifier(self, key: str) -> str:
        """LM Studio's naming: the key, then ``key:2``, ``key:3`` ..."""
        if key not in self.instances:
            return key
        n = 2
        while f"{key}:{n}" in self.instances:
            n += 1
        return f"{key}:{n}"

    # -- changes --

    def add_instance(
        self,
        key: str,
        *,
        identifier: str | None = None,
        ttl_s: float | None = None,
        context_length: int | None = None,
        jit: bool = False,
        via: Literal["cli", "rest", "jit", "test"] = "test",
    ) -> SimInstance:
        """Load ``key`` now (no delay, no faults): the final step of every load path.

        Raises:
            SimError: unknown key, or the identifier is taken.
        """
        model = self.model(key)
        if model is None:
            raise SimError(f"Model not found: {key}", status=404, code="model_not_found")
        ident = identifier or self.next_identifier(model.key)
        if ident in self.instances:
            raise SimError(f'An instance with identifier "{ident}" already exists.')
        context = context_length or min(4096, model.max_context_length)
        if model.fit_context is not None:
            context = min(context, model.fit_context)
        inst = SimInstance(
            identifier=ident,
            key=model.key,
            context_length=context,
            ttl_s=ttl_s,
            last_used=self.now(),
            jit=jit,
            device=model.device,
        )
        self.instances[ident] = inst
        self.loads.append(
            LoadRecord(
                key=model.key, identifier=ident, ttl_s=ttl_s, via=via, context_length=context_length
            )
        )
        return inst

    def remove(self, identifier: str) -> bool:
        """Unload ``identifier``; return whether it was loaded."""
        if self.instances.pop(identifier, None) is None:
            return False
        self.unloads.append(identifier)
        return True

    def evict(self, identifier: str) -> None:
        """Unload behind the client's back (LM Studio's auto-evict, a crash, a user)."""
        if self.instances.pop(identifier, None) is not None:
            self.evictions.append(identifier)

    def evict_jit_models(self, keep: str | None = None) -> None:
        """Auto-evict: unload every JIT-loaded instance except ``keep``."""
        for inst in list(self.instances.values()):
            if inst.jit and inst.identifier != keep:
                self.evict(inst.identifier)

    def touch(self, inst: SimInstance) -> None:
        """Reset the idle timer of ``inst`` (every request does)."""
        inst.last_used = self.now()
