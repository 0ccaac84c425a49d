"""Inference routes of the simulator, and the load step shared by every load path.

Each inference request resolves its ``model`` to a loaded instance, JIT-loading
a downloaded one when JIT is on (auto-evicting other JIT loads first), marks
the instance busy while it answers (so ``lms ps`` says ``generating`` and the
idle TTL does not run), honours the first-token gate and the eviction fault,
then answers from the model's script, an upstream server, or an echo.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import trio

from .sim_http import Answer, StreamAnswer, json_answer
from .sim_scripts import (
    Reply,
    chat_body,
    chat_frames,
    completion_body,
    completion_frames,
    content_text,
    embeddings_body,
    last_user_text,
    response_body,
    response_frames,
    response_id,
    sse,
)
from .sim_state import JIT_DEFAULT_TTL_S, SimError, SimInstance

if TYPE_CHECKING:
    from .lmstudio_sim import Simulator

__all__ = ["NO_MODELS_LOADED", "ROUTES", "StoredResponse", "model_not_found", "perform_load"]

NO_MODELS_LOADED = (
    "No models loaded. Please load a model in the developer page or use the 'lms load' command."
)


class StoredResponse(msgspec.Struct, kw_only=True):
    """A stored ``/v1/responses`` result (the server-side conversation history)."""

    id: str
    model: str
    previous: str | None
    input: Any
    output: list[Any]


def model_not_found(sim: Simulator, name: str, status: int = 400) -> SimError:
    """LM Studio's 2025-2026 answer for a model it does not have."""
    examples = ", ".join(list(sim.state.catalog)[:3])
    return SimError(
        f'Invalid model identifier "{name}". Please specify a valid downloaded model '
        f"(e.g., {examples}).",
        status=status,
        code="model_not_found",
        param="model",
    )


async def perform_load(
    sim: Simulator,
    key: str,
    *,
    identifier: str | None,
    ttl_s: float | None,
    context_length: int | None,
    via: Literal["cli", "rest", "jit"],
) -> SimInstance:
    """Load ``key`` through the load faults: hold, fail, or succeed-but-vanish.

    A load runs to its end even when its client hangs up: LM Studio completes a
    load whose HTTP request or ``lms`` websocket was dropped (findings F8 [inf]);
    only ``lms load``'s SIGINT cancels it (see ``tests/fakes/bin/lms``).
    ``sim.loads_in_flight`` counts the loads not finished yet.
    """
    faults = sim.faults
    sim.loads_in_flight += 1
    try:
        if faults.load_delay_s:
            await trio.sleep(faults.load_delay_s)
        if key in faults.load_gates:
            await faults.load_gates[key].wait()
        if key in faults.load_errors:
            raise SimError(
                faults.load_errors[key],
                status=faults.load_error_status,
                type="model_load_failed",
                code="model_load_failed",
            )
        inst = sim.state.add_instance(
            key,
            identifier=identifier,
            ttl_s=ttl_s,
            context_length=context_length,
            jit=via == "jit",
            via=via,
        )
        if key in faults.load_absent:
            del sim.state.instances[inst.identifier]  # reported loaded, never there
        return inst
    finally:
        sim.loads_in_flight -= 1
        sim.notify()


async def resolve(
    sim: Simulator, body: dict[str, Any], kind: Literal["llm", "embedding"]
) -> SimInstance:
    """Find (or JIT-load) the instance a request names."""
    state = sim.state
    name = body.get("model")
    if name is None or name == "":
        inst = next(iter(state.instances.values()), None)
        if inst is None:
            raise SimError(NO_MODELS_LOADED, param="model")
        return inst
    if not isinstance(name, str):
        raise SimError("'model' must be a string", param="model")
    inst = state.instance(name)
    if inst is None:
        model = state.model(name)
        if model is None or not state.jit:
            if not state.instances:
                raise SimError(NO_MODELS_LOADED, param="model")
            raise model_not_found(sim, name)
        # No coalescing: concurrent first requests each JIT-load the cold model, as
        # key, key:2, ... (BT#1751, LM Studio 0.4.9-0.4.16; openclaw#68363 on 0.4.12).
        ttl = body.get("ttl")
        if state.auto_evict:
            state.evict_jit_models()
        inst = await perform_load(
            sim,
            model.key,
            identifier=None,
            ttl_s=float(ttl) if isinstance(ttl, int | float) else JIT_DEFAULT_TTL_S,
            context_length=None,
            via="jit",
        )
    model_type = state.catalog[inst.key].type
    if kind == "embedding" and model_type != "embedding":
        raise SimError(f'Model "{inst.identifier}" is not an embedding model.', param="model")
    if kind == "llm" and model_type == "embedding":
        raise SimError(f'Model "{inst.identifier}" is an embedding model.', param="model")
    return inst


@asynccontextmanager
async def busy(sim: Simulator, inst: SimInstance) -> AsyncIterator[None]:
    """Mark ``inst`` busy (no idle TTL, ``generating`` in ``lms ps``) for the block."""
    inst.active += 1
    sim.state.touch(inst)
    try:
        yield
    finally:
        inst.active -= 1
        sim.state.touch(inst)


async def _first_token(sim: Simulator, inst: SimInstance) -> None:
    faults = sim.faults
    if faults.answer_delay_s:
        await trio.sleep(faults.answer_delay_s)
    for name in (inst.identifier, inst.key):
        if name in faults.first_token_gates:
            await faults.first_token_gates[name].wait()
    if {inst.identifier, inst.key} & faults.unload_during_inference:
        sim.state.evict(inst.identifier)
        raise SimError("Model unloaded", param="model")


async def _frames(sim: Simulator, inst: SimInstance, frames: list[bytes]) -> AsyncGenerator[bytes]:
    async with busy(sim, inst):
        try:
            await _first_token(sim, inst)
        except SimError as err:
            # Eviction mid-generation: a first token, then an error frame.
            yield frames[0]
            yield sse({"error": {"message": err.message, "type": err.type, "code": err.code}})
            return
        for frame in frames:
            yield frame


async def _forward(
    sim: Simulator, path: str, body: dict[str, Any], stream: bool
) -> Answer | StreamAnswer:
    assert sim.upstream is not None
    url = sim.upstream.rstrip("/") + path
    if not stream:
        r = await sim.http.post(url, json=body, timeout=120)
        return Answer(status=r.status_code, body=r.content, content_type=r.headers["content-type"])

    async def frames() -> AsyncGenerator[bytes]:
        async with sim.http.stream("POST", url, json=body, timeout=120) as r:
            async for chunk in r.aiter_raw():
                yield chunk

    return StreamAnswer(frames())


async def chat(sim: Simulator, body: dict[str, Any], v0: bool) -> Answer | StreamAnswer:
    """``POST /v1/chat/completions`` (and ``/api/v0/chat/completions``)."""
    inst = await resolve(sim, body, "llm")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in ("json_schema", "text"):
        raise SimError("'response_format.type' must be 'json_schema' or 'text'")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise SimError("'messages' is required", param="messages")
    stream = body.get("stream") is True
    reply = sim.scripts.pop(inst.identifier, inst.key)
    if reply is None and sim.upstream:
        return await _forward(sim, "/chat/completions", body, stream)
    reply = reply or Reply(content="echo: " + last_user_text(messages))
    if stream:
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = chat_frames(inst.identifier, reply, include_usage=include)
        return StreamAnswer(_frames(sim, inst, frames))
    async with busy(sim, inst):
        await _first_token(sim, inst)
    return json_answer(chat_body(inst.identifier, reply, v0=v0, prompt_tokens=len(messages) * 9))


async def completions(sim: Simulator, body: dict[str, Any], v0: bool) -> Answer | StreamAnswer:
    """``POST /v1/completions``: no prompt template."""
    inst = await resolve(sim, body, "llm")
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list):
        raise SimError("'prompt' is required", param="prompt")
    stream = body.get("stream") is True
    reply = sim.scripts.pop(inst.identifier, inst.key)
    if reply is None and sim.upstream:
        return await _forward(sim, "/completions", body, stream)
    text = (reply.content or "") if reply else "echo: " + content_text(prompt)
    finish = (reply.finish_reason if reply else None) or "stop"
    if stream:
        return StreamAnswer(_frames(sim, inst, completion_frames(inst.identifier, text, finish)))
    async with busy(sim, inst):
        await _first_token(sim, inst)
    return json_answer(completion_body(inst.identifier, text, finish))


async def embeddings(sim: Simulator, body: dict[str, Any], v0: bool) -> Answer | StreamAnswer:
    """``POST /v1/embeddings``."""
    inst = await resolve(sim, body, "embedding")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
        raise SimError("'input' must be a string or an array of strings", param="input")
    if sim.upstream:
        return await _forward(sim, "/embeddings", body, False)
    async with busy(sim, inst):
        await _first_token(sim, inst)
    dims = sim.state.catalog[inst.key].embedding_dims
    return json_answer(embeddings_body(inst.identifier, inputs, dims))


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    last = value[-1] if isinstance(value, list) and value else {}
    if isinstance(last, dict) and last.get("type") == "function_call_output":
        return str(last.get("output", ""))
    return last_user_text(value)


async def responses(sim: Simulator, body: dict[str, Any], v0: bool) -> Answer | StreamAnswer:
    """``POST /v1/responses``: stateful through ``previous_response_id``."""
    previous = body.get("previous_response_id")
    if previous is not None and previous not in sim.responses:
        raise SimError(
            f"Prediction history node with id '{previous}' not found",
            code="previous_response_not_found",
            param="previous_response_id",
        )
    inst = await resolve(sim, body, "llm")
    given = body.get("input")
    if not isinstance(given, str | list):
        raise SimError("Required", param="input", code="missing_required_parameter")
    reply = sim.scripts.pop(inst.identifier, inst.key) or Reply(
        content="echo: " + _input_text(given)
    )
    # Effort "none" switches reasoning off here (BT#988 comment, 2026-08); on chat
    # completions reasoning_effort "off" is accepted and ignored (BT#2413), so chat keeps it.
    if (body.get("reasoning") or {}).get("effort") == "none":
        reply = msgspec.structs.replace(reply, reasoning=None)
    rid = response_id()
    out = response_body(rid, inst.identifier, reply, previous)
    if body.get("store") is not False:
        sim.responses[rid] = StoredResponse(
            id=rid, model=inst.identifier, previous=previous, input=given, output=out["output"]
        )
    if body.get("stream") is True:
        return StreamAnswer(_frames(sim, inst, response_frames(out)))
    async with busy(sim, inst):
        await _first_token(sim, inst)
    return json_answer(out)


Route = Callable[["Simulator", dict[str, Any], bool], Awaitable[Answer | StreamAnswer]]

ROUTES: dict[str, Route] = {
    "/v1/chat/completions": chat,
    "/v1/completions": completions,
    "/v1/embeddings": embeddings,
    "/v1/responses": responses,
}
