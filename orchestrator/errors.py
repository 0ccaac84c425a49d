"""The orchestrator's exceptions, one tree rooted at :class:`OrchestratorError`.

The tree separates *your request is invalid* from *the model is not available
now* from *the backend misbehaved*::

    OrchestratorError
    ├── ConfigError              # bad configuration (file, env or argument)
    ├── InvalidModelName         # also a ValueError; raised before any backend call
    ├── InvalidRequest           # also a ValueError; e.g. a negative TTL
    ├── UnknownModel             # .available: the models the backend offers
    ├── DownloadsDisabled        # allow_downloads is off, or the backend cannot download
    ├── UnknownDownload          # no download job has this id
    ├── InvalidTransition        # a bug: an input the lifecycle table does not allow
    ├── ModelUnavailable         # request-level outcomes a caller can act on
    │   ├── BreakerOpen          # .retry_after_s
    │   ├── LoadFailed           # the backend refused or failed the load
    │   ├── VerifyFailed         # load reported success but the model never appeared
    │   ├── CapacityExhausted    # max_loaded_models / memory budget held by models in use
    │   ├── ModelBusy            # e.g. unload while requests are in flight
    │   ├── NotOwned             # unload of an instance another client loaded
    │   ├── WaitTimeout          # the caller's own timeout ran out; the load goes on
    │   └── Overloaded           # the model's mailbox stayed full for the whole wait
    ├── ActorStopped             # the orchestrator stopped before answering
    └── BackendError             # .transient says whether a retry may help
        ├── BackendUnreachable   # transient: connection refused, DNS, reset
        │   ├── NotAnswered      # no answer byte came back (refused): retried once if gone
        │   │   └── ConnectionDropped  # accepted, then closed before answering
        │   └── StreamCut        # a streamed answer stopped mid-way: not retried
        ├── BackendTimeout       # transient: the backend did not answer in time
        ├── BackendServerError   # transient: HTTP 5xx
        ├── BackendAuthError     # permanent: HTTP 401/403, wrong or missing token
        ├── BackendProtocolError # permanent: malformed JSON or an unexpected shape
        ├── BackendRejected      # permanent: the backend said no (bad request, guardrail)
        │   └── DownloadFailed   # a download failed (checksum, disk full, server said failed)
        └── ModelNotLoaded       # the backend no longer has the model (LOST)

Foreign exceptions (httpx, subprocess, msgspec) are translated only at the
backend seam, with :func:`map_exceptions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar

__all__ = [
    "ActorStopped",
    "BackendAuthError",
    "BackendError",
    "BackendProtocolError",
    "BackendRejected",
    "BackendServerError",
    "BackendSilent",
    "BackendTimeout",
    "BackendUnreachable",
    "BreakerOpen",
    "CapacityExhausted",
    "ConfigError",
    "ConnectionDropped",
    "DownloadFailed",
    "DownloadsDisabled",
    "InvalidModelName",
    "InvalidRequest",
    "InvalidTransition",
    "LoadFailed",
    "ModelBusy",
    "ModelNotLoaded",
    "ModelUnavailable",
    "NotAnswered",
    "NotOwned",
    "OrchestratorError",
    "Overloaded",
    "StreamCut",
    "UnknownDownload",
    "UnknownModel",
    "VerifyFailed",
    "WaitTimeout",
    "excerpt",
    "is_outage",
    "is_transient",
    "map_exceptions",
]

EXCERPT_LIMIT = 200


def excerpt(text: str | bytes, limit: int = EXCERPT_LIMIT) -> str:
    """Return a short, single-line excerpt of ``text`` for error messages.

    Bodies from a misbehaving server can be huge or binary; messages must stay
    bounded and readable.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class ConfigError(OrchestratorError):
    """The configuration (file, environment or argument) is invalid."""


class InvalidModelName(OrchestratorError, ValueError):
    """A model name failed validation; no backend was called."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid model name {excerpt(repr(name), 80)}: {reason}")


class InvalidRequest(OrchestratorError, ValueError):
    """A request argument is out of range or malformed; nothing was changed."""


class UnknownModel(OrchestratorError):
    """The backend does not offer this model. ``available`` lists what it offers."""

    def __init__(self, model: str, available: list[str], *, why: str | None = None) -> None:
        self.model = model
        self.available = sorted(available)
        shown = ", ".join(self.available[:20]) or "none"
        more = f" (and {len(self.available) - 20} more)" if len(self.available) > 20 else ""
        # Bounded: the name is whatever a caller sent (10 000 characters, say).
        name = excerpt(repr(model), 80)
        note = f" ({why})" if why else ""  # why the catalogue may be short
        super().__init__(f"unknown model {name}; available models: {shown}{more}{note}")


class DownloadsDisabled(OrchestratorError):
    """A download was refused: ``allow_downloads`` is off, or the backend cannot download."""


class UnknownDownload(OrchestratorError):
    """No download job has this id (finished jobs are kept only for a while)."""


class InvalidTransition(OrchestratorError):
    """The lifecycle table has no transition for this (state, input): a bug."""

    def __init__(self, state: str, input: str) -> None:
        self.state = state
        self.input = input
        super().__init__(f"no transition from {state} on {input}")


class ModelUnavailable(OrchestratorError):
    """The model cannot serve this request now; the message says why."""

    def __init__(self, model: str, message: str) -> None:
        self.model = model
        super().__init__(message)


class BreakerOpen(ModelUnavailable):
    """Recent loads failed repeatedly; requests fail fast until ``retry_after_s``."""

    def __init__(self, model: str, retry_after_s: float, last_error: str | None) -> None:
        self.retry_after_s = max(0.0, retry_after_s)
        cause = f"; last error: {last_error}" if last_error else ""
        super().__init__(
            model,
            f"circuit breaker open for {model!r} after repeated failures; "
            f"retry in {self.retry_after_s:.1f}s or reset the breaker{cause}",
        )


class LoadFailed(ModelUnavailable):
    """The backend failed to load the model; the backend's message is kept."""


class VerifyFailed(ModelUnavailable):
    """The load reported success but the model did not become available."""


class CapacityExhausted(ModelUnavailable):
    """No room to load: the limit is held by models that are in use."""


class ModelBusy(ModelUnavailable):
    """The request conflicts with work in progress (loading, or requests in flight)."""


class NotOwned(ModelUnavailable):
    """The instance was loaded by another client (or by hand): this server does not unload it."""

    def __init__(self, model: str, identifier: str) -> None:
        super().__init__(
            model,
            f"model {model!r} (instance {identifier!r}) was loaded by another client or by "
            "hand, not by this server, so it is left loaded; unload it where it was loaded "
            f"(e.g. `lms unload {identifier}` or the LM Studio app), or set "
            "manage_foreign = true (LMSORCH_MANAGE_FOREIGN=1) to let this server manage it",
        )


class WaitTimeout(ModelUnavailable):
    """The caller's timeout ran out; the load itself goes on for later callers."""


class Overloaded(ModelUnavailable):
    """The model's mailbox stayed full for the caller's whole deadline; retry shortly."""


class ActorStopped(OrchestratorError):
    """The orchestrator stopped (or the model's actor crashed) before answering."""


class BackendError(OrchestratorError):
    """The backend failed. ``transient`` errors may succeed when retried."""

    transient: ClassVar[bool] = False


class BackendUnreachable(BackendError):
    """The backend could not be reached (connection refused, reset, DNS)."""

    transient = True


class NotAnswered(BackendUnreachable):
    """No byte of an answer came back: the connection was refused, or closed first.

    Nothing of the answer was lost, so an inference request is retried once on a
    fresh instance when the backend confirms the instance it named is gone (a
    killed llama.cpp worker, a restarted server); never otherwise.
    """


class ConnectionDropped(NotAnswered):
    """The server took the connection and closed it before answering (it died or restarted)."""


class StreamCut(BackendUnreachable):
    """A streamed answer stopped mid-way: the connection closed after part of it arrived.

    Not retried: the caller already has part of the answer.
    """


class BackendTimeout(BackendError):
    """The backend did not answer in time."""

    transient = True


class BackendSilent(BackendTimeout):
    """The backend accepted the connection but sent no answer in time.

    Still transient (it is the server's state, not the model's fault), but not
    retried within one call: a retry would wait the whole timeout again, turning
    one stuck server into minutes per call.
    """


class BackendServerError(BackendError):
    """The backend answered with a server error (HTTP 5xx)."""

    transient = True


class BackendAuthError(BackendError):
    """The backend refused our credentials (HTTP 401/403)."""


class BackendProtocolError(BackendError):
    """The backend answered with something we cannot parse; an excerpt is kept."""


class BackendRejected(BackendError):
    """The backend understood the request and refused it; its message is kept."""


class DownloadFailed(BackendRejected):
    """A download failed for good: a checksum or size mismatch, a full disk, the server said so.

    Nothing is left under a model name; what can be resumed is kept hidden.
    """


class ModelNotLoaded(BackendError):
    """The backend says the model is not loaded (it was evicted or crashed)."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: only the transient backend errors are."""
    return isinstance(exc, BackendError) and exc.transient


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the backend is down (unreachable or silent), not that a model failed.

    Such errors feed the one backend health state (``orchestrator.backend_health``),
    never a model's breaker.
    """
    return isinstance(exc, BackendUnreachable | BackendSilent)


@contextmanager
def map_exceptions(
    mapping: Mapping[type[Exception], type[BackendError]],
) -> Iterator[None]:
    """Translate foreign exceptions into ours, keeping the original as ``__cause__``.

    The first matching entry of ``mapping`` (in insertion order) wins; our own
    errors and unmatched exceptions pass through unchanged.

    Args:
        mapping: foreign exception type to our exception type.
    """
    try:
        yield
    except OrchestratorError:
        raise
    except Exception as exc:
        for src, dst in mapping.items():
            if isinstance(exc, src):
                raise dst(excerpt(str(exc) or type(exc).__name__)) from exc
        raise
