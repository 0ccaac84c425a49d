"""Helpers for the agent-loop tests: an orchestrator over the simulator, and a fake toolbox.

The fake toolbox stands in for :class:`~orchestrator.agent.toolbox.Toolbox`
where a test is about the loop itself (message shapes, bounds, concurrency);
the tests with real MCP servers use the real one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from orchestrator import Config, Orchestrator, open_orchestrator
from orchestrator.agent import AgentSettings
from orchestrator.inference import (
    FunctionDef,
    FunctionTool,
    InferenceClient,
    ResponsesTool,
    Tool,
)
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend

QWEN = "qwen/qwen3-4b"

FAST = Config(
    retry_attempts=1,
    retry_initial_s=0.0,
    retry_jitter_s=0.0,
    verify_initial_interval_s=0.005,
    verify_max_interval_s=0.02,
    verify_deadline_s=2.0,
    request_timeout_s=10.0,
    unload_timeout_s=5.0,
    shutdown_timeout_s=5.0,
)

SETTINGS = AgentSettings(deadline_s=20.0)


@dataclass(frozen=True)
class Result:
    """What a fake tool returns (the shape of ``ToolResult``)."""

    text: str
    is_error: bool = False
    truncated: bool = False


Handler = Callable[[dict[str, Any]], Awaitable[Result]]


@dataclass
class FakeTools:
    """A toolbox of in-process tools; records every call (name, raw arguments)."""

    handlers: dict[str, Handler]
    servers: tuple[str, ...] = ("fake",)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def chat_tools(self) -> list[Tool]:
        return [
            Tool(function=FunctionDef(name=n, description=f"the {n} tool")) for n in self.handlers
        ]

    def responses_tools(self) -> list[ResponsesTool]:  # the flat form
        return [FunctionTool(name=n, description=f"the {n} tool") for n in self.handlers]

    async def call(self, name: str, arguments: str) -> Result:
        self.calls.append((name, arguments))
        handler = self.handlers.get(name)
        if handler is None:
            return Result(f"unknown tool {name!r}", is_error=True)
        try:
            args = json.loads(arguments)
        except ValueError:
            return Result("arguments are not JSON", is_error=True)
        return await handler(args)


@dataclass
class Stack:
    """An orchestrator over the LM Studio simulator (JIT off) and an inference client."""

    sim: Simulator
    orch: Orchestrator
    client: InferenceClient


@asynccontextmanager
async def sim_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    """The simulator, an orchestrator over it, and a client; everything closed on exit."""
    lms = install_fake_lms(monkeypatch, tmp_path)
    async with open_simulator(jit=False) as sim, InferenceClient(timeout_s=10) as client:
        backend = make_backend(sim, lms_cli=lms)
        try:
            async with open_orchestrator(backend, FAST) as orch:
                yield Stack(sim=sim, orch=orch, client=client)
        finally:
            await backend.aclose()


def bodies(sim: Simulator, path: str) -> list[dict[str, Any]]:
    """The JSON bodies the model received on ``path``, in order."""
    found = []
    for call in sim.requests(path):
        body = call.body
        found.append(body if isinstance(body, dict) else msgspec.json.decode(body))
    return found
