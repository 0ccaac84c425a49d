"""The one way a tool runs inference: held by :func:`orchestrator.held_model.hold_model`.

Every inference tool goes through :func:`run_inference`, so the core's rules
(a lease for the whole call, one retry under a fresh lease when the backend
lost the model, every attempt counted and every failure logged) hold for all of
them; this module adds MCP progress while the model loads and turns failures
into tool errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import Context

from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError, tool_errors
from mcp_frontend.progress import with_progress
from orchestrator import InferenceCall, InferenceTarget, Lease, hold_model

__all__ = ["check_prompt_size", "resolve_model", "run_inference"]

T = TypeVar("T")


async def resolve_model(deps: Deps, model: str | None, *, embedding: bool = False) -> str:
    """Return ``model``, or the configured default when it is None.

    Raises:
        ToolError: no model given and no default configured; lists the candidates.
    """
    if model is not None:
        return model
    field = "default_embedding_model" if embedding else "default_model"
    default: str | None = getattr(deps.orch.config, field)
    if default is not None:
        return default
    with tool_errors():
        catalog = await deps.orch.catalog()
    keys = [m.key for m in catalog if (m.type == "embedding") == embedding] or [
        m.key for m in catalog
    ]
    raise ToolError(
        f"no model given and no {field} configured (set LMSORCH_{field.upper()}); "
        f"available: {', '.join(sorted(keys)) or 'none'}"
    )


async def run_inference(
    deps: Deps,
    model: str,
    endpoint: str,
    call: InferenceCall[T],
    *,
    ctx: Context[Any, Any] | None = None,
) -> tuple[T, InferenceTarget]:
    """Run ``call`` against ``model`` under a lease; retry once on a fresh lease if it was lost.

    Args:
        deps: the server's dependencies.
        model: the model key (already resolved).
        endpoint: metrics label, e.g. ``"chat"``.
        call: performs the request against the target (see ``orchestrator.chat_call``).
        ctx: the tool's context, for progress while the model loads.

    Returns:
        The call's result and the target that served it.

    Raises:
        ToolError: every orchestrator or backend failure, with an actionable message.
    """

    def wait(enter: Callable[[], Awaitable[Lease]]) -> Awaitable[Lease]:
        interval_s = deps.settings.progress_interval_s
        return with_progress(ctx, deps.orch, model, enter, interval_s=interval_s)

    with tool_errors():
        async with hold_model(deps.orch, model, endpoint=endpoint, wait=wait) as held:
            result = await held.send(call)
            return result, held.target


def check_prompt_size(deps: Deps, *texts: str | None) -> None:
    """Reject text beyond ``max_prompt_chars`` before any model is touched.

    Raises:
        ToolError: the texts together are too long.
    """
    total = sum(len(t) for t in texts if t)
    limit = deps.settings.max_prompt_chars
    if total > limit:
        raise ToolError(
            f"the input is {total} characters; the limit is {limit} (LMSORCH_MCP_MAX_PROMPT_CHARS)"
        )
