"""The embedded backend with the real SmolLM2-135M model: load, chat, stream, embed, unload.

Kept few and short (a load is ~0.5 s, a 16-token chat ~0.2 s on 2 cores).
Assertions are on structure, usage and finish_reason, never on exact text.
"""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
import trio

from orchestrator.backends.base import Backend, LoadedModel
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.errors import ModelNotLoaded

from .conftest import MakeSettings
from .llamacpp_support import DEMO_KEY, Procs

# Generous: on a busy 2-core machine llama.cpp's threads compete with everything
# else; the test's own trio.fail_after bounds the whole test anyway.
HTTP_TIMEOUT = 60.0
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16, "temperature": 0}


async def test_load_list_chat_and_unload(llama_backend: LlamaCppBackend, procs: Procs) -> None:
    assert isinstance(llama_backend, Backend)
    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="smol", ttl_s=120)
        assert await llama_backend.list_loaded() == [
            LoadedModel(identifier="smol", key=DEMO_KEY, ttl_s=120, status="loaded")
        ]
        base = llama_backend.base_url("smol")
        assert base.startswith("http://127.0.0.1:")
        assert base.endswith("/v1")
        async with httpx.AsyncClient(
            base_url=base, headers=dict(llama_backend.http_headers()), timeout=HTTP_TIMEOUT
        ) as http:
            models = (await http.get("/models")).json()
            assert [m["id"] for m in models["data"]] == ["smol"]
            reply = await http.post("/chat/completions", json={"model": "smol", **CHAT})
        assert reply.status_code == 200
        body = reply.json()
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["content"].strip()
        assert choice["finish_reason"] in ("stop", "length")
        usage = body["usage"]
        assert 0 < usage["completion_tokens"] <= 16
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        pid = llama_backend.worker_pid("smol")
        assert pid is not None
        await llama_backend.unload("smol")
        await procs.gone(pid)
        assert await llama_backend.list_loaded() == []
        await llama_backend.unload("smol")  # absent: not an error
        with pytest.raises(ModelNotLoaded):
            llama_backend.base_url("smol")


async def test_streaming_chat(llama_backend: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="stream", ttl_s=60)
        deltas: list[str] = []
        finish = None
        async with (
            httpx.AsyncClient(
                base_url=llama_backend.base_url("stream"), timeout=HTTP_TIMEOUT
            ) as http,
            http.stream(
                "POST", "/chat/completions", json={"model": "stream", "stream": True, **CHAT}
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        choice = json.loads(line.removeprefix("data: "))["choices"]
        if choice:
            deltas.append(choice[0]["delta"].get("content") or "")
            finish = choice[0]["finish_reason"] or finish
    assert "".join(deltas).strip()
    assert finish in ("stop", "length")


async def test_embeddings_are_opt_in_for_chat_models(
    llama_backend: LlamaCppBackend, make_settings: MakeSettings
) -> None:
    request = {"model": "e", "input": ["local models", "for agents"]}
    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="e", ttl_s=60)
        async with httpx.AsyncClient(
            base_url=llama_backend.base_url("e"), timeout=HTTP_TIMEOUT
        ) as http:
            refused = await http.post("/embeddings", json=request)
        assert refused.status_code == 501
        assert "does not support embeddings" in refused.json()["error"]["message"]

        embedding = LlamaCppBackend(make_settings(), llm_embeddings=True)
        try:
            await embedding.load(DEMO_KEY, identifier="e", ttl_s=60)
            async with httpx.AsyncClient(
                base_url=embedding.base_url("e"), timeout=HTTP_TIMEOUT
            ) as http:
                answer = await http.post("/embeddings", json=request)
                chat = await http.post("/chat/completions", json={"model": "e", **CHAT})
        finally:
            await embedding.aclose()
    assert answer.status_code == 200
    vectors = [item["embedding"] for item in answer.json()["data"]]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) == 576  # SmolLM2-135M's embedding width
    assert chat.status_code == 200  # chat still works with embeddings on


async def test_killed_worker_is_no_longer_listed(
    llama_backend: LlamaCppBackend, procs: Procs
) -> None:
    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="victim", ttl_s=60)
        await llama_backend.load(DEMO_KEY, identifier="victim", ttl_s=60)  # idempotent: same worker
        pid = llama_backend.worker_pid("victim")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await procs.gone(pid)
        assert await llama_backend.list_loaded() == []
        with pytest.raises(ModelNotLoaded):
            llama_backend.base_url("victim")
        # It can be loaded again afterwards.
        await llama_backend.load(DEMO_KEY, identifier="victim", ttl_s=60)
        assert [m.identifier for m in await llama_backend.list_loaded()] == ["victim"]


async def test_health_and_aclose_stops_every_worker(
    llama_backend: LlamaCppBackend, procs: Procs
) -> None:
    health = await llama_backend.health()
    assert health.reachable
    assert health.backend == "llamacpp"
    assert health.version
    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="one", ttl_s=60)
        await llama_backend.load(DEMO_KEY, identifier="two", ttl_s=60)
        pids = [llama_backend.worker_pid("one"), llama_backend.worker_pid("two")]
        assert llama_backend.base_url("one") != llama_backend.base_url("two")
        await llama_backend.aclose()
        for pid in pids:
            assert pid is not None
            await procs.gone(pid)
    assert await llama_backend.list_loaded() == []
