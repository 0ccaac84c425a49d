"""The one way a tool runs inference: under a lease, with one retry when the model was lost.

Every inference tool goes through :func:`run_inference`, so these rules hold
for all of them:

- the model is held by a lease for the whole call, so it cannot expire or be
  evicted under the request;
- when the backend answers "model not loaded" (LM Studio evicted it, a worker
  died), the lease reports it lost, which sends the model back to UNLOADED,
  and the call is retried once under a fresh lease, which reloads it;
- waits for a load report MCP progress;
- every call is counted in the inference metrics (a model this server does not
  manage is counted as ``(other)``) and every failed one is logged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
import trio
from mcp.server.mcpserver import Context

from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError, tool_errors
from mcp_frontend.progress import with_progress
from orchestrator import ModelNotLoaded
from orchestrator.inference import InferenceClient

__all__ = ["Target", "check_prompt_size", "resolve_model", "run_inference"]

T = TypeVar("T")
_log = structlog.get_logger("mcp_frontend.inference")


@dataclass(frozen=True)
class Target:
    """Where one inference request goes.

    Attributes:
        model: the model key the caller asked for.
        identifier: the backend instance serving it (what requests name).
        base_url: the OpenAI-compatible endpoint, ending in ``/v1``.
        headers: headers the backend requires (e.g. its API token).
        ttl: the model's TTL in whole seconds, sent with requests so that a
            just-in-time reload by the server still unloads by itself.
    """

    model: str
    identifier: str
    base_url: str
    headers: Mapping[str, str]
    ttl: int


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


@asynccontextmanager
async def _leased(
    deps: Deps, model: str, ctx: Context[Any, Any] | None
) -> AsyncIterator[tuple[Target, Callable[[str], None]]]:
    orch = deps.orch
    async with AsyncExitStack() as stack:
        lease = await with_progress(
            ctx,
            orch,
            model,
            lambda: stack.enter_async_context(orch.lease(model)),
            interval_s=deps.settings.progress_interval_s,
        )
        backend = orch.backend
        yield (
            Target(
                model=model,
                identifier=lease.identifier,
                base_url=backend.base_url(lease.identifier),
                headers=backend.http_headers(),
                ttl=max(1, round(lease.status.ttl_s)),
            ),
            lease.lost,
        )


async def run_inference(
    deps: Deps,
    model: str,
    endpoint: str,
    call: Callable[[InferenceClient, Target], Awaitable[T]],
    *,
    ctx: Context[Any, Any] | None = None,
) -> tuple[T, Target]:
    """Run ``call`` against ``model`` under a lease; retry once on a fresh lease if it was lost.

    Args:
        deps: the server's dependencies.
        model: the model key (already resolved).
        endpoint: metrics label, e.g. ``"chat"``.
        call: performs the request with the client and the target.
        ctx: the tool's context, for progress while the model loads.

    Returns:
        The call's result and the target that served it.

    Raises:
        ToolError: every orchestrator or backend failure, with an actionable message.
    """
    metrics = deps.orch.metrics
    for attempt in (1, 2):
        started = trio.current_time()
        outcome = "error"
        with tool_errors():
            try:
                async with _leased(deps, model, ctx) as (target, lost):
                    try:
                        result = await call(deps.inference.get(), target)
                    except ModelNotLoaded as exc:
                        outcome = "lost"
                        lost(f"inference said: {exc}")
                        if attempt == 2:
                            raise
                        continue
                    outcome = "ok"
                    return result, target
            except Exception as exc:
                _log.warning(
                    "inference_error",
                    model=metrics.model_label(model),
                    endpoint=endpoint,
                    attempt=attempt,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
                raise
            finally:
                metrics.inference(model, endpoint, outcome, trio.current_time() - started)
    raise AssertionError("unreachable: the second attempt returns or raises")


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
