"""The product over the LM Studio simulator, for the scenario tests.

An orchestrator on the real LM Studio backend (the fake ``lms`` on PATH,
JIT off so nothing loads behind the orchestrator's back), with an inference
client and an in-memory MCP session on the real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from mcp import Client
from mcp.types import CallToolResult, TextContent

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import Config, Orchestrator, State, open_orchestrator
from orchestrator.agent import AgentSettings
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient
from tests.fakes import Simulator
from tests.fakes.fixtures import make_backend

from .chaos import RecordingBackend

__all__ = ["FAST", "GEMMA", "GPT", "QWEN", "Stack", "chat_request", "open_stack", "tool_text"]

QWEN = "qwen/qwen3-4b"
GEMMA = "google/gemma-3-4b"
GPT = "openai/gpt-oss-20b"

FAST = Config(
    backend="lmstudio",
    default_model=QWEN,
    retry_attempts=1,
    retry_initial_s=0.0,
    retry_jitter_s=0.0,
    verify_initial_interval_s=0.01,
    verify_max_interval_s=0.05,
    verify_deadline_s=0.5,
    breaker_threshold=3,
    breaker_cooldown_s=600.0,
    request_timeout_s=10.0,
    unload_timeout_s=5.0,
    shutdown_timeout_s=5.0,
)
"""Test-sized bounds; one attempt, so each scenario counts its backend calls exactly."""


@dataclass
class Stack:
    """What a scenario drives and inspects."""

    sim: Simulator
    backend: RecordingBackend
    orch: Orchestrator
    inference: InferenceClient
    mcp: Client

    def state(self, model: str) -> State | None:
        """The model's lifecycle state, or None when it has no actor yet."""
        return next((s.state for s in self.orch.status() if s.model == model), None)


def chat_request(text: str = "hi") -> ChatRequest:
    """A one-message chat request."""
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], max_tokens=8)


def tool_text(result: CallToolResult) -> str:
    """The text of a tool result's first block."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@asynccontextmanager
async def open_stack(
    sim: Simulator,
    tmp_path: Path,
    *,
    lms_cli: str | None = None,
    agent_settings: AgentSettings | None = None,
    **config: Any,
) -> AsyncIterator[Stack]:
    """Run the orchestrator (``FAST`` with ``config`` overrides) and an MCP session on ``sim``.

    The agent tools find their MCP servers through ``agent_settings`` (none by default).
    """
    inner = make_backend(sim, lms_cli=lms_cli, load_timeout_s=2.0, cli_timeout_s=2.0)
    conf = msgspec.structs.replace(FAST, **config)
    backend = RecordingBackend(inner, max_ttl_s=conf.max_ttl_s)
    settings = FrontendSettings(allowed_image_roots=(str(tmp_path),), progress_interval_s=0.02)
    try:
        async with (
            InferenceClient(timeout_s=5) as inference,
            open_orchestrator(backend, conf) as orch,
            Client(
                build_server(
                    orch,
                    settings=settings,
                    inference_client=inference,
                    agent_settings=agent_settings or AgentSettings(roots=(str(tmp_path),)),
                )
            ) as mcp,
        ):
            yield Stack(sim=sim, backend=backend, orch=orch, inference=inference, mcp=mcp)
    finally:
        await backend.aclose()
    assert backend.violations == []
