"""Orchestrator errors as tool errors: one actionable line the calling model can act on.

A tool result never carries a traceback. Anticipated failures (every
:class:`~orchestrator.OrchestratorError`) become :class:`ToolError`, which
the SDK returns as ``is_error=True`` with our message; anything else is a bug,
which the SDK reports as a bare "Error executing tool ..." and logs (with its
traceback) to stderr only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from orchestrator import (
    ActorStopped,
    BackendAuthError,
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    BreakerOpen,
    CapacityExhausted,
    ConnectionDropped,
    ModelBusy,
    ModelNotLoaded,
    OrchestratorError,
    Overloaded,
    StreamCut,
    UnknownModel,
    WaitTimeout,
)
from orchestrator.agent import McpServerFailed, UnknownMcpServer

__all__ = ["ToolError", "message_for", "tool_errors"]

# What the caller can do next, by error class (the first match in MRO order wins).
_HINTS: dict[type[OrchestratorError], str] = {
    UnknownModel: "call list_models to see every model and its state",
    BreakerOpen: "wait, or call reset_breaker once the cause is fixed",
    WaitTimeout: "the load continues in the background; call model_status, then retry",
    ModelBusy: "model_status shows its state and requests in flight; retry when it is idle",
    CapacityExhausted: "unload a model (unload_model) or wait for one to go idle",
    Overloaded: "too many queued requests for this model; retry shortly",
    ModelNotLoaded: "the backend dropped the model twice in a row; retry, or check its logs",
    BackendUnreachable: "is the model server running? see health_check",
    ConnectionDropped: "the model server dropped the request; if it keeps failing see health_check",
    StreamCut: "the answer is incomplete; call again",
    BackendTimeout: "the model server did not answer in time; see health_check",
    BackendAuthError: "set LMSTUDIO_API_TOKEN to the server's API token",
    ActorStopped: "the server is shutting down",
    UnknownMcpServer: "call list_available_mcps to see the configured servers",
    McpServerFailed: "list_available_mcps shows whether each server starts; check its entry",
}


def message_for(exc: OrchestratorError) -> str:
    """Return the message a calling model should read for ``exc``: what failed and what to do."""
    text = str(exc) or type(exc).__name__
    for cls in type(exc).__mro__:
        hint = _HINTS.get(cls)
        if hint is not None:
            return f"{text} ({hint})"
    if isinstance(exc, BackendError):
        return f"backend error: {text}"
    return text


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn any :class:`~orchestrator.OrchestratorError` raised in the block into a ToolError."""
    try:
        yield
    except OrchestratorError as exc:
        raise ToolError(message_for(exc)) from exc
