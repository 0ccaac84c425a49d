"""Shared constants and small helpers for the MCP frontend tests."""

from __future__ import annotations

import base64
import os
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import Config, Orchestrator, open_orchestrator
from orchestrator.inference import InferenceClient
from orchestrator.testing import FakeBackend
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend

DEMO = "smollm2-135m-instruct.q4_1"
QWEN = "qwen/qwen3-4b"
GEMMA = "google/gemma-3-4b"
EMBED = "text-embedding-nomic-embed-text-v1.5"

FAST = Config(
    retry_attempts=1,
    retry_initial_s=0.0,
    retry_jitter_s=0.0,
    verify_initial_interval_s=0.005,
    verify_max_interval_s=0.02,
    verify_deadline_s=2.0,
    breaker_threshold=2,
    breaker_cooldown_s=600.0,
    request_timeout_s=10.0,
    unload_timeout_s=5.0,
    shutdown_timeout_s=5.0,
)


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a server subprocess: no inherited LMSORCH_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMSORCH_", "LMSTUDIO_"))}
    return env | {"HOME": str(tmp_path), "LMSORCH_SHUTDOWN_TIMEOUT_S": "10"} | extra


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (fails the test on an error result)."""
    assert not result.is_error, text(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def text(result: CallToolResult) -> str:
    """The text of a result's first content block."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def error(result: CallToolResult) -> str:
    """The message of an error result (fails the test on success)."""
    assert result.is_error, result.structured_content
    return text(result)


def png(width: int = 1, height: int = 1) -> bytes:
    """A valid, tiny RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# -- the two stacks the tests run on --


@dataclass
class Fake:
    """An orchestrator over a FakeBackend (models ``model-a`` and ``model-b``), with a client."""

    backend: FakeBackend
    orch: Orchestrator
    client: Client
    settings: FrontendSettings


@dataclass
class LMStudio:
    """An orchestrator over the LM Studio simulator (JIT off, the fake ``lms``), with a client.

    Its default model is QWEN and its default embedding model EMBED.
    """

    sim: Simulator
    orch: Orchestrator
    client: Client
    settings: FrontendSettings
    inference: InferenceClient
    lms: str


def make_settings(tmp_path: Path, **overrides: Any) -> FrontendSettings:
    """Images only under ``tmp_path/images``; quick progress polling."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    fields: dict[str, Any] = {"allowed_image_roots": (str(images),), "progress_interval_s": 0.01}
    return FrontendSettings(**(fields | overrides))


@asynccontextmanager
async def mcp_client(
    orch: Orchestrator, settings: FrontendSettings, **kw: Any
) -> AsyncIterator[Client]:
    """An in-memory MCP client on ``build_server(orch, ...)``."""
    async with Client(build_server(orch, settings=settings, **kw)) as client:
        yield client


@asynccontextmanager
async def fake_stack(tmp_path: Path) -> AsyncIterator[Fake]:
    backend = FakeBackend(["model-a", "model-b"])
    settings = make_settings(tmp_path)
    async with open_orchestrator(backend, FAST) as orch, mcp_client(orch, settings) as client:
        yield Fake(backend=backend, orch=orch, client=client, settings=settings)


@asynccontextmanager
async def lmstudio_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LMStudio]:
    lms = install_fake_lms(monkeypatch, tmp_path)
    settings = make_settings(tmp_path)
    config = msgspec.structs.replace(FAST, default_model=QWEN, default_embedding_model=EMBED)
    # JIT off: a model the orchestrator did not load must not appear by itself.
    async with open_simulator(jit=False) as sim, InferenceClient(timeout_s=10) as inference:
        backend = make_backend(sim, lms_cli=lms)
        try:
            async with (
                open_orchestrator(backend, config) as orch,
                mcp_client(orch, settings, inference_client=inference) as client,
            ):
                yield LMStudio(
                    sim=sim,
                    orch=orch,
                    client=client,
                    settings=settings,
                    inference=inference,
                    lms=lms,
                )
        finally:
            await backend.aclose()
