"""The :class:`Backend` protocol and the wire Structs every backend speaks.

A backend knows how to list, load and unload models on one model server and
where that server answers OpenAI-compatible inference. It knows nothing of
actors, TTL timers, retries or breakers: those belong to the core.

Error contract: a backend raises only :class:`~orchestrator.errors.OrchestratorError`
subclasses (translated at this seam with ``map_exceptions``). Transient
failures raise a :class:`~orchestrator.errors.BackendError` whose
``transient`` is true; the core retries those and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, Protocol, runtime_checkable

import msgspec

__all__ = [
    "Backend",
    "BackendHealth",
    "ConfirmsLoss",
    "DownloadProgress",
    "DownloadStatus",
    "Downloads",
    "KeepsAlive",
    "KnowsParallelism",
    "LoadedModel",
    "ModelInfo",
    "WatchesInstances",
]


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A model the backend can load (an entry of its catalogue).

    Attributes:
        key: the backend's model key, used to load it.
        type: ``"llm"``, ``"vlm"`` or ``"embedding"``.
        size_bytes: size on disk, when known (used by the memory budget).
        max_context_length: the model's maximum context, when known.
        capabilities: e.g. ``("tool_use", "vision")``, when the backend says.
        problem: why the model cannot be loaded (e.g. a corrupt file), when known;
            it is still listed so a user sees it and the reason.
        architecture: e.g. ``"llama"``, ``"qwen3"``, when known.
        quantization: e.g. ``"Q4_K_M"``, when known.
    """

    key: str
    type: str = "llm"
    size_bytes: int | None = None
    max_context_length: int | None = None
    capabilities: tuple[str, ...] = ()
    problem: str | None = None
    architecture: str | None = None
    quantization: str | None = None
    params: str | None = None
    """The parameter count as the backend writes it (``"4B"``, ``"135M"``), when known."""


class LoadedModel(msgspec.Struct, frozen=True, kw_only=True):
    """A model instance the backend currently holds.

    Attributes:
        identifier: the instance identifier (what inference requests name).
        key: the model key it was loaded from.
        ttl_s: the backend's idle TTL for it, when known.
        status: ``"loaded"`` or ``"loading"`` (backends that report progress).
        context_length: the context it was really loaded with, when the backend
            says (LM Studio may fit it below what was asked).
        device: the LM Link device holding it; ``None`` is this machine.
    """

    identifier: str
    key: str
    ttl_s: float | None = None
    status: str = "loaded"
    context_length: int | None = None
    device: str | None = None


class BackendHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What a health probe found.

    Attributes:
        reachable: whether the backend answered at all.
        backend: the backend's kind, e.g. ``"lmstudio"``.
        version: the server's version string, when it tells.
        detail: one human-readable line (why it is unreachable, or extra facts).
    """

    reachable: bool
    backend: str
    version: str | None = None
    detail: str = ""


@runtime_checkable
class Backend(Protocol):
    """What the orchestrator needs from a model server.

    All methods may raise :class:`~orchestrator.errors.BackendError` subclasses;
    ``load`` may also raise :class:`~orchestrator.errors.UnknownModel` or
    :class:`~orchestrator.errors.BackendRejected` (permanent). Cancellation is
    honoured by every async method: a cancelled call leaves no child process or
    open request behind.
    """

    name: str

    async def list_available(self) -> list[ModelInfo]:
        """Return the catalogue: every model this backend can load."""
        ...

    async def list_loaded(self) -> list[LoadedModel]:
        """Return the model instances the backend holds right now."""
        ...

    def catalog_problem(self) -> str | None:
        """Why the catalogue may be missing models (e.g. no models directory), or None."""
        ...

    async def load(
        self,
        key: str,
        *,
        identifier: str,
        ttl_s: float,
        context_length: int | None = None,
    ) -> None:
        """Load ``key`` as instance ``identifier`` with an idle TTL the backend enforces.

        Returning means the backend accepted and finished the load; the core
        still verifies that ``identifier`` appears in :meth:`list_loaded`.
        """
        ...

    async def unload(self, identifier: str) -> None:
        """Unload instance ``identifier``; unloading an absent model is not an error."""
        ...

    def base_url(self, identifier: str) -> str:
        """Return the OpenAI-compatible base URL (ending in ``/v1``) serving ``identifier``."""
        ...

    def http_headers(self) -> Mapping[str, str]:
        """Return headers inference requests must carry (e.g. ``Authorization``)."""
        ...

    async def health(self) -> BackendHealth:
        """Probe the backend; never raises for an unreachable server, reports it."""
        ...

    async def aclose(self) -> None:
        """Release the backend's own resources (HTTP pools, worker processes)."""
        ...


@runtime_checkable
class KeepsAlive(Protocol):
    """A backend whose own idle TTL runs between requests, which a lease must refresh.

    LM Studio's idle timer "resets every time the model receives a request" and
    knows nothing of our leases (docs ``0_core/ttl-and-auto-evict.md``), so a
    lease longer than the TTL (an agent run with slow tool calls) would see the
    model unloaded between its requests (issue 17, F10).
    """

    async def keep_alive(self, info: ModelInfo, identifier: str, ttl_s: float) -> None:
        """Reset the backend's idle timer of ``identifier``; failures are not raised."""
        ...


@runtime_checkable
class WatchesInstances(Protocol):
    """A backend that sees an instance end the moment it ends (issue 16).

    The embedded llama.cpp backend owns its worker processes, so it learns of a
    worker's death from the process itself (a waiter task), not from the next
    listing. The supervisor's reconciler runs :meth:`watch_instances` beside its
    periodic listing and turns each report into a ``Lost`` fact for the actor.
    """

    async def watch_instances(self, lost: Callable[[str, str], None]) -> None:
        """Run until cancelled; call ``lost(identifier, reason)`` when an instance ends.

        ``lost`` is synchronous and must not block; it is called after the
        process has been reaped (no zombie is left behind).
        """
        ...


@runtime_checkable
class ConfirmsLoss(Protocol):
    """A backend that can tell, from its own truth, whether an instance is gone (issue 16).

    Asked after a request got no answer (refused, or closed before answering):
    only a confirmed loss lets the request be retried on a fresh instance. A
    backend without it is asked through :meth:`Backend.list_loaded`.
    """

    async def confirm_lost(self, identifier: str) -> str | None:
        """Return why ``identifier`` is gone, or None while it is still served.

        May wait briefly (bounded) for an instance whose connection just closed to
        finish exiting; never raises.
        """
        ...


@runtime_checkable
class KnowsParallelism(Protocol):
    """A backend that knows how many requests an instance serves at once (issue 16).

    The core then lets at most that many requests of an instance be in flight and
    queues the rest itself, first come first served, instead of opening a
    connection per waiter that the server would only queue.
    """

    def max_parallel(self, identifier: str) -> int | None:
        """Return the requests ``identifier`` serves at once; None when unknown (no cap)."""
        ...


DownloadStatus = Literal["downloading", "paused", "completed", "already_downloaded"]
"""What a backend reports of a download in progress or done (LM Studio's own values,
docs ``1_developer/2_rest/download.md``; ``failed`` is raised, not reported)."""


class DownloadProgress(msgspec.Struct, frozen=True, kw_only=True):
    """One report of a download (issue 18).

    Attributes:
        status: where the download is.
        downloaded_bytes: bytes on disk so far, when known.
        total_bytes: the download's size, when known.
        bytes_per_second: the current rate, when the backend measures it.
        model_key: the catalogue key to load once it is done, when the backend knows it.
    """

    status: DownloadStatus
    downloaded_bytes: int | None = None
    total_bytes: int | None = None
    bytes_per_second: float | None = None
    model_key: str | None = None


@runtime_checkable
class Downloads(Protocol):
    """A backend that can fetch a model onto its own disk (issue 18).

    Optional, like :class:`KeepsAlive`: the orchestrator refuses a download on a
    backend without it. ``stops_on_cancel`` says whether cancelling
    :meth:`download` stops the transfer itself (the embedded backend) or only
    our wait for it (LM Studio goes on downloading: REST v1 has no cancel route).
    """

    stops_on_cancel: bool

    async def download(
        self,
        source: str,
        *,
        quantization: str | None,
        report: Callable[[DownloadProgress], None],
    ) -> DownloadProgress:
        """Download ``source`` (a catalogue key or a URL); return the final report.

        ``report`` is called with each progress report; it is synchronous and
        must not block. The result's status is ``completed`` or
        ``already_downloaded``; a failed download raises an
        :class:`~orchestrator.errors.OrchestratorError` saying why.
        """
        ...
