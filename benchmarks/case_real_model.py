"""Case 6, real model: SmolLM2-135M on the embedded llama.cpp backend, orchestrator vs direct.

Cold start to first token: from nothing loaded to the first streamed token,
(a) direct: ``LlamaCppBackend.load`` then a raw ``httpx`` stream to the
worker; (b) through the orchestrator: ``orch.lease`` (catalogue, load,
verification) then ``InferenceClient.stream_chat``, the path every MCP
inference tool takes. Each is the mean of two fresh workers, started in the
order direct, orchestrator, orchestrator, direct (after one unmeasured start).
Tokens/s: with the model loaded (the first orchestrator worker), alternately one
direct stream and one orchestrator stream (lease included) to the same
llama.cpp worker, completion tokens over the whole request time.

Ratios are "orchestrator speed / direct speed": direct cold time over
orchestrator cold time, and orchestrator tokens/s over direct tokens/s
(target >= 0.95 for both: at most ~5 % slower). Quick mode starts one worker
(no direct cold start, so no cold ratio). The model comes from
``lmsorch models fetch-demo`` (fetched here if missing, as the e2e tests do).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import httpx

from benchmarks.core import Case, Metric, Skipped, at_least
from orchestrator import Config, Orchestrator, OrchestratorError, open_orchestrator
from orchestrator.config import LlamaCppSettings
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient, InferenceTarget

MODEL = "smollm2-135m-instruct.q4_1"
PROMPT = "Count from 1 to 100, separated by spaces."


def _models_dir() -> Path:
    from orchestrator.backends.provision import fetch_demo_model

    directory = Config.load().llamacpp.resolved_models_dir()
    try:
        import xllamacpp  # noqa: F401
    except ImportError as exc:
        raise Skipped("xllamacpp is not installed (pip install '.[embedded]')") from exc
    try:
        fetch_demo_model(directory)
    except OrchestratorError as exc:
        raise Skipped(f"the demo model is not available: {exc}") from exc
    return directory


class _Stream:
    """Timestamps of one streamed answer."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first: float | None = None
        self.tokens = 0
        self.ended = 0.0

    def token(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.tokens += 1

    @property
    def first_token_s(self) -> float:
        assert self.first is not None, "the model produced no token"
        return self.first - self.started

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / (self.ended - self.started)


async def _direct_stream(
    http: httpx.AsyncClient, base_url: str, max_tokens: int, started: float
) -> _Stream:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    out = _Stream(started)
    # A fresh connection per request (and a client of its own, see run()): the llama.cpp
    # worker may drop a kept-alive connection after a stream, and a request sent on it
    # fails with "Server disconnected without sending a response".
    headers = {"Connection": "close"}
    url = f"{base_url}/chat/completions"
    async with http.stream("POST", url, json=body, headers=headers) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                if choice.get("delta", {}).get("content"):
                    out.token()
    out.ended = time.perf_counter()
    return out


async def _orch_stream(
    orch: Orchestrator, client: InferenceClient, max_tokens: int, started: float
) -> _Stream:
    request = ChatRequest(
        messages=[ChatMessage(role="user", content=PROMPT)], max_tokens=max_tokens, temperature=0
    )
    out = _Stream(started)
    async with orch.lease(MODEL) as lease:
        backend = orch.backend
        target = InferenceTarget(
            model=MODEL,
            identifier=lease.identifier,
            base_url=backend.base_url(lease.identifier),
            headers=backend.http_headers(),
        )
        async with client.stream_chat(target, request) as events:
            async for chunk in events:
                if any(c.delta.content for c in chunk.choices):
                    out.token()
    out.ended = time.perf_counter()
    return out


async def _direct_cold(
    settings: LlamaCppSettings, http: httpx.AsyncClient, max_tokens: int
) -> _Stream:
    from orchestrator.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(settings)
    try:
        started = time.perf_counter()
        await backend.load(MODEL, identifier=MODEL, ttl_s=600)
        return await _direct_stream(http, backend.base_url(MODEL), max_tokens, started)
    finally:
        await backend.aclose()


async def _warm(
    orch: Orchestrator,
    client: InferenceClient,
    http: httpx.AsyncClient,
    url: str,
    max_tokens: int,
    pairs: int,
) -> tuple[list[_Stream], list[_Stream]]:
    """Alternate one direct and one orchestrator stream, ``pairs`` times, on a loaded worker."""
    direct: list[_Stream] = []
    through: list[_Stream] = []
    for _ in range(pairs):
        direct.append(await _direct_stream(http, url, max_tokens, time.perf_counter()))
        through.append(await _orch_stream(orch, client, max_tokens, time.perf_counter()))
    return direct, through


COLD_ORDER = "DOOD"
"""Direct (D) and orchestrator (O) cold starts in full mode, ABBA: both paths have the same
mean position, so what drifts over a run (the file cache, the machine's load) favours neither."""


async def run(quick: bool) -> dict[str, float]:
    from orchestrator.backends.llamacpp import LlamaCppBackend

    settings = LlamaCppSettings(models_dir=str(_models_dir()))
    max_tokens, pairs = (8, 1) if quick else (64, 4)
    config = Config(default_model=MODEL, adopt_loaded=False)
    # Quick mode starts one worker only (it is a smoke test): no direct cold start.
    order = "O" if quick else COLD_ORDER
    direct_cold: list[_Stream] = []
    orch_cold: list[_Stream] = []
    direct: list[_Stream] = []
    through: list[_Stream] = []

    async with httpx.AsyncClient(trust_env=False, timeout=120) as http:
        if not quick:
            # An unmeasured start first: the first worker of a process pays one-off costs
            # (imports, the file cache) that would otherwise land on whichever path runs first.
            await _direct_cold(settings, http, max_tokens)
        for path in order:
            if path == "D":
                direct_cold.append(await _direct_cold(settings, http, max_tokens))
                continue
            backend = LlamaCppBackend(settings)
            try:
                async with (
                    InferenceClient(timeout_s=120) as client,
                    open_orchestrator(backend, config) as orch,
                ):
                    started = time.perf_counter()
                    orch_cold.append(await _orch_stream(orch, client, max_tokens, started))
                    if not through:  # the warm streams need one loaded worker, not one per start
                        url = backend.base_url(MODEL)
                        direct, through = await _warm(orch, client, http, url, max_tokens, pairs)
            finally:
                await backend.aclose()

    direct_tps = sum(s.tokens for s in direct) / sum(s.ended - s.started for s in direct)
    orch_tps = sum(s.tokens for s in through) / sum(s.ended - s.started for s in through)
    orch_cold_s = statistics.fmean(s.first_token_s for s in orch_cold)
    result = {
        "orch_cold_first_token_s": orch_cold_s,
        "direct_tokens_per_s": direct_tps,
        "orch_tokens_per_s": orch_tps,
        "tokens_per_s_ratio": orch_tps / direct_tps,
        "tokens_per_answer": float(through[-1].tokens),
    }
    if direct_cold:
        direct_cold_s = statistics.fmean(s.first_token_s for s in direct_cold)
        result["direct_cold_first_token_s"] = direct_cold_s
        result["cold_ratio"] = direct_cold_s / orch_cold_s
    return result


CASE = Case(
    name="real_model",
    title="SmolLM2-135M on embedded llama.cpp: orchestrator vs direct",
    metrics=(
        Metric("direct_cold_first_token_s", "cold start to first token, direct", "s"),
        Metric("orch_cold_first_token_s", "cold start to first token, orchestrator", "s"),
        Metric("cold_ratio", "cold start speed, orchestrator / direct", "x", at_least(0.95)),
        Metric("direct_tokens_per_s", "tokens/s, direct", "1/s"),
        Metric("orch_tokens_per_s", "tokens/s, orchestrator (lease included)", "1/s"),
        Metric("tokens_per_s_ratio", "tokens/s, orchestrator / direct", "x", at_least(0.95)),
        Metric("tokens_per_answer", "completion tokens per answer", ""),
    ),
    run=run,
    runs=(3, 1),
)
