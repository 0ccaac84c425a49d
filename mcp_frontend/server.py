"""``build_server(orch)``: the MCP server over an orchestrator.

The server is built per orchestrator (no module globals), so tests hand it an
orchestrator over a fake backend and talk to it in memory::

    async with open_orchestrator(FakeBackend(["qwen"])) as orch:
        async with mcp.Client(build_server(orch)) as client:
            result = await client.call_tool("load_model", {"model": "qwen"})
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import metadata
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer

from mcp_frontend import completions, notifications, resources
from mcp_frontend.checks.legacy_tools import LegacyToolCalls
from mcp_frontend.checks.remote_images import RemoteFetcher
from mcp_frontend.checks.unknown_arguments import UnknownArgumentGuard
from mcp_frontend.deps import Deps, InferenceHolder
from mcp_frontend.notifications import watch_connection
from mcp_frontend.settings import FrontendSettings
from mcp_frontend.tools import agents, downloads, inference, lifecycle, schema_validation, vision
from mcp_frontend.tools.schema_cache import SchemaCache, SchemaCachingToolManager, default_cache_dir
from orchestrator import SERVER_NAME, Orchestrator
from orchestrator.agent import AgentSettings, McpRegistry
from orchestrator.inference import InferenceClient
from orchestrator.response_chains import ResponseChains

__all__ = ["SERVER_NAME", "build_server"]


INSTRUCTIONS = """\
Local models (LM Studio or embedded llama.cpp), each managed by a lifecycle
actor: a model loads once however many calls ask for it, stays loaded while in
use, and unloads after its idle TTL. Start with list_models. Inference tools
(chat_completion, text_completion, create_response, generate_embeddings,
analyze_image) take an optional `model`; omitted means the configured default.
They load the model when needed and report progress while it loads. Errors say
what to do next (an unknown model lists the available ones; an open circuit
breaker says when to retry). Autonomous tools (autonomous_with_mcp and
friends) let a local model work on a task with other MCP servers' tools, within
round, time and context limits; list_available_mcps shows those servers.
"""


# The SDK configures stdlib logging (its own, httpx's, transitions') from this level;
# below debug that is one line per HTTP request and transition, so only warnings pass.
# Our own events are structlog's, at the configured level.
_STDLIB_LEVELS: dict[str, Literal["DEBUG", "WARNING", "ERROR"]] = {
    "debug": "DEBUG",
    "info": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
}


class _Server(MCPServer[Any]):
    """The SDK's server, registering tools through ``schemas``.

    See :class:`~mcp_frontend.tools.schema_cache.SchemaCachingToolManager`: schemas
    kept across starts, descriptions as written.
    """

    def __init__(self, name: str, *, schemas: SchemaCache, **options: Any) -> None:
        super().__init__(name, **options)
        # The SDK offers no seam for how tools are registered; its manager is replaced
        # before any is, by one that differs only in the schemas' source and descriptions.
        self._tool_manager = SchemaCachingToolManager(
            schemas, warn_on_duplicate_tools=self.settings.warn_on_duplicate_tools
        )


def _drop_prompts(server: MCPServer[Any]) -> None:
    """Stop serving prompts: with no prompt to offer, the capability would be a dead end.

    The SDK always registers ``prompts/list`` and ``prompts/get`` and derives the
    advertised capabilities from the handlers present; ``prompts/get`` on an empty
    catalogue answered with error code 0 and a logged traceback. Without the
    handlers, no prompts capability is advertised and both methods answer
    "method not found". (The SDK has no public way to remove a handler.)
    """
    handlers = server._lowlevel_server._request_handlers
    for method in ("prompts/list", "prompts/get"):
        handlers.pop(method, None)


def _lifespan(
    holder: InferenceHolder, orch: Orchestrator
) -> Callable[[MCPServer[Any]], AbstractAsyncContextManager[dict[str, Any]]]:
    """One connection's lifespan: the inference client's, and its notification tasks."""

    @asynccontextmanager
    async def lifespan(server: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        async with holder.lifespan(server) as state, watch_connection(orch) as conn:
            yield state | {"notifications": conn}

    return lifespan


def _version() -> str:
    try:
        return metadata.version("lmstudio-orchestrator")
    except metadata.PackageNotFoundError:
        return "0"


def build_server(
    orch: Orchestrator,
    *,
    settings: FrontendSettings | None = None,
    inference_client: InferenceClient | None = None,
    fetcher: RemoteFetcher | None = None,
    agent_settings: AgentSettings | None = None,
    schemas: SchemaCache | None = None,
) -> MCPServer[Any]:
    """Build the MCP server: every tool and resource, over ``orch``.

    Args:
        orch: the orchestrator the tools drive.
        settings: input limits and permissions; read from ``LMSORCH_MCP_*`` when omitted.
        inference_client: the inference client to use (not closed by us); when
            omitted the server creates one and closes it after its last connection.
        fetcher: fetches remote images (tests pass one over a mock transport).
        agent_settings: where the agent tools find MCP servers and their limits; read
            from ``LMSORCH_AGENT_*`` when omitted.
        schemas: where the tools' schemas are kept across starts; the user's cache
            directory when omitted.

    Raises:
        ConfigError: a settings argument was omitted and the environment holds an
            invalid one.
    """
    settings = settings if settings is not None else FrontendSettings.from_env()
    agent_settings = agent_settings if agent_settings is not None else AgentSettings.from_env()
    holder = InferenceHolder(inference_client)
    deps = Deps(
        orch=orch,
        settings=settings,
        inference=holder,
        fetcher=fetcher or RemoteFetcher(),
        started_at=time.monotonic(),
        chains=ResponseChains(
            ttl_s=settings.response_chain_ttl_s,
            max_chains=settings.max_response_chains,
            max_chars=settings.max_response_chain_chars,
        ),
    )
    guard = UnknownArgumentGuard()
    schemas = schemas if schemas is not None else SchemaCache(default_cache_dir())
    server: MCPServer[Any] = _Server(
        SERVER_NAME,
        schemas=schemas,
        title="LM Studio orchestrator",
        version=_version(),
        instructions=INSTRUCTIONS,
        lifespan=_lifespan(holder, orch),
        middleware=[LegacyToolCalls(), guard],  # outermost first: the guard sees new names
        log_level=_STDLIB_LEVELS[orch.config.log_level],
        # No change feed is offered over subscriptions/listen, so the stateless
        # (2026-07-28) discovery answer must not claim subscribe or listChanged.
        subscriptions=False,
    )
    _drop_prompts(server)
    for module in (lifecycle, downloads, inference, vision, schema_validation, resources):
        module.register(server, deps)
    registry = McpRegistry(agent_settings)
    agents.register(server, deps, settings=agent_settings, registry=registry)
    completions.register(server, deps, registry)
    notifications.register(server)
    guard.bind(server)
    schemas.save()
    return server
