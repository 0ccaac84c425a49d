"""The simulator's routing, fault injection, auth, and control-plane routes.

Order per request: record it; private ``/__sim__/`` routes; auth; route
faults (hold, raw body, status, 200-with-error); the version gate (routes the
emulated version lacks get LM Studio's HTTP 200 ``Unexpected endpoint``); the
route itself. Routes raise :class:`SimError`, rendered in the configured
error style (``{"error": "text"}`` or ``{"error": {message, type, param, code}}``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import trio

from . import sim_inference
from .sim_cli import run_cli
from .sim_downloads import download_status, post_download
from .sim_faults import HttpCall
from .sim_http import Answer, Request, StreamAnswer, json_answer
from .sim_state import SimError, SimInstance, SimModel

if TYPE_CHECKING:
    from .lmstudio_sim import Simulator

__all__ = ["dispatch", "error_answer"]

AUTH_MESSAGE = (
    "An LM Studio API token is required to make requests to this server, but none was "
    "provided using the Authorization header using the 'Bearer' scheme (i.e., "
    "'Authorization: Bearer $LM_API_TOKEN'). Learn more at: "
    "https://lmstudio.ai/docs/developer/core/authentication."
)


def error_answer(sim: Simulator, err: SimError) -> Answer:
    """Render ``err`` in the simulator's error style."""
    if sim.error_style == "string":
        return json_answer({"error": err.message}, err.status)
    body = {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
    return json_answer({"error": body}, err.status)


def _supported(sim: Simulator, path: str) -> bool:
    if path.startswith("/api/v1/"):
        return sim.api == "v1"
    if path.startswith("/api/v0/") or path == "/v1/responses":
        return sim.api in ("v1", "v0")
    return True


async def dispatch(sim: Simulator, req: Request) -> Answer | StreamAnswer:
    """Answer one request."""
    path = req.path
    sim.calls.append(
        HttpCall(
            method=req.method,
            path=path,
            body=req.json(),
            authorization=req.headers.get("authorization"),
        )
    )
    sim.notify()
    if path == "/__sim__/lms" and req.method == "POST":
        return json_answer(await run_cli(sim, req.json_object()))
    if path == "/__sim__/lms-cancel" and req.method == "POST":
        pid = int(req.json_object().get("pid", 0))
        sim.cli_cancelled.append(pid)
        if pid in sim.cli_loads:
            sim.cli_loads[pid].cancel()
        sim.notify()
        return json_answer({})
    authorized = req.headers.get("authorization") == f"Bearer {sim.api_token}"
    if sim.api_token and path != "/lmstudio-greeting" and not authorized:
        body = {"message": AUTH_MESSAGE, "type": "invalid_request", "code": "invalid_api_key"}
        return json_answer({"error": {**body, "param": None}}, 401)
    faults = sim.faults
    if path in faults.route_gates:
        await faults.route_gates[path].wait()
    if path in faults.route_raw:
        status, content_type, raw = faults.route_raw[path]
        return Answer(status=status, body=raw, content_type=content_type)
    if path in faults.route_chunked:
        chunk, count = faults.route_chunked[path]
        return StreamAnswer(_repeat(chunk, count), content_type="application/json")
    if path in faults.route_status:
        status = faults.route_status[path]
        return error_answer(
            sim, SimError("Internal server error", status=status, type="internal_error")
        )
    if path in faults.route_error_200:
        return json_answer({"error": faults.route_error_200[path]})
    if not _supported(sim, path):
        return json_answer({"error": f"Unexpected endpoint or method. ({req.method} {path})"})
    try:
        return await _route(sim, req)
    except SimError as err:
        return error_answer(sim, err)
    except Exception as exc:
        # A simulator bug must fail the test, not pass for a simulated HTTP 500.
        sim.crashes.append(exc)
        raise


async def _repeat(chunk: bytes, count: int) -> AsyncGenerator[bytes]:
    for _ in range(count):
        yield chunk


async def _route(sim: Simulator, req: Request) -> Answer | StreamAnswer:
    method, path = req.method, req.path
    state = sim.state
    state.expire()
    sim.downloads.settle()
    if method == "GET":
        if path == "/lmstudio-greeting":
            return json_answer({"lmstudio": True})
        if path == "/v1/models":
            return json_answer(
                {"data": [_openai_entry(i) for i in _openai_ids(sim)], "object": "list"}
            )
        if path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            if name not in _openai_ids(sim):
                raise sim_inference.model_not_found(sim, name)
            return json_answer(_openai_entry(name))
        if path == "/api/v0/models":
            return json_answer({"data": _v0_entries(sim), "object": "list"})
        if path.startswith("/api/v0/models/"):
            name = path.removeprefix("/api/v0/models/")
            entry = next((e for e in _v0_entries(sim) if e["id"] == name), None)
            if entry is None:
                raise sim_inference.model_not_found(sim, name)
            return json_answer(entry)
        if path == "/api/v1/models":
            return json_answer({"models": [_v1_entry(sim, m) for m in state.catalog.values()]})
        if path.startswith("/api/v1/models/download/status/"):
            return json_answer(download_status(sim, path.rpartition("/")[2]))
    if method == "POST":
        if path == "/api/v1/models/load":
            return await _v1_load(sim, req.json_object())
        if path == "/api/v1/models/unload":
            return _v1_unload(sim, req.json_object())
        if path == "/api/v1/models/download":
            return json_answer(post_download(sim, req.json_object()))
        v0 = path.startswith("/api/v0/")
        route = "/v1" + path.removeprefix("/api/v0") if v0 else path
        handler = sim_inference.ROUTES.get(route)
        if handler is not None and not (v0 and route == "/v1/responses"):
            return await handler(sim, req.json_object(), v0)
    return json_answer({"error": f"Unexpected endpoint or method. ({method} {path})"})


# -- model lists --


def _openai_ids(sim: Simulator) -> list[str]:
    loaded = list(sim.state.instances)
    if not sim.state.jit:
        return loaded
    return [*sim.state.catalog, *(i for i in loaded if i not in sim.state.catalog)]


def _openai_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "owned_by": "organization_owner"}


def _v0_entries(sim: Simulator) -> list[dict[str, Any]]:
    entries = []
    for model in sim.state.catalog.values():
        inst = next((i for i in sim.state.instances.values() if i.key == model.key), None)
        if inst is None and not sim.state.jit:
            continue
        entry: dict[str, Any] = {
            "id": model.key,
            "object": "model",
            "type": "embeddings" if model.type == "embedding" else model.type,
            "publisher": model.publisher,
            "arch": model.arch,
            "compatibility_type": "gguf",
            "quantization": model.quantization,
            "state": "loaded" if inst else "not-loaded",
            "max_context_length": model.max_context_length,
        }
        if inst is not None:
            entry["loaded_context_length"] = inst.context_length
        if model.tool_use:
            entry["capabilities"] = ["tool_use"]
        entries.append(entry)
    return entries


def _v1_entry(sim: Simulator, model: SimModel) -> dict[str, Any]:
    instances = [i for i in sim.state.instances.values() if i.key == model.key]
    entry: dict[str, Any] = {
        "type": "embedding" if model.type == "embedding" else "llm",
        "publisher": model.publisher,
        "key": model.key,
        "display_name": model.key.rpartition("/")[2],
        "quantization": {"name": model.quantization, "bits_per_weight": 4},
        "size_bytes": model.size_bytes,
        "params_string": model.params,
        "loaded_instances": [_v1_instance(i) for i in instances],
        "max_context_length": model.max_context_length,
        "format": "gguf",
    }
    if model.type != "embedding":
        caps: dict[str, Any] = {"vision": model.vision, "trained_for_tool_use": model.tool_use}
        if model.reasoning:
            caps["reasoning"] = {"allowed_options": ["off", "on"], "default": "on"}
        entry |= {"architecture": model.arch, "capabilities": caps, "description": None}
    return entry


def _v1_instance(inst: SimInstance) -> dict[str, Any]:
    return {"id": inst.identifier, "config": {"context_length": inst.context_length}}


# -- REST v1 load / unload --


async def _v1_load(sim: Simulator, body: dict[str, Any]) -> Answer:
    key = body.get("model")
    if not isinstance(key, str) or not key:
        raise SimError(
            '"model" is required',
            type="invalid_request",
            code="missing_required_parameter",
            param="model",
        )
    model = sim.state.model(key)
    if model is None:
        raise sim_inference.model_not_found(sim, key, status=404)
    ctx = body.get("context_length")
    started = trio.current_time()
    inst = await sim_inference.perform_load(
        sim, model.key, identifier=None, ttl_s=None, context_length=ctx, via="rest"
    )
    answer: dict[str, Any] = {
        "type": "embedding" if model.type == "embedding" else "llm",
        "instance_id": inst.identifier,
        "load_time_seconds": round(trio.current_time() - started, 3),
        "status": "loaded",
    }
    if body.get("echo_load_config"):
        answer["load_config"] = {"context_length": inst.context_length}
    return json_answer(answer)


def _v1_unload(sim: Simulator, body: dict[str, Any]) -> Answer:
    ident = body.get("instance_id")
    if not isinstance(ident, str) or not sim.state.remove(ident):
        raise SimError(
            f"No model found with instance id {ident!r}",
            status=404,
            type="model_not_found",
            code="model_not_found",
            param="instance_id",
        )
    return json_answer({"instance_id": ident})
