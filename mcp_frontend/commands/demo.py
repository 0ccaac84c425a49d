"""``lmsorch demo``: the whole product on a real model, in well under a minute.

It provisions SmolLM2-135M, starts the orchestrator on the embedded llama.cpp
backend, connects a real MCP client (full JSON-RPC session over memory streams)
to the MCP server and shows, with a timeline of state transitions: a cold load
coalesced across concurrent requests, a chat answer, a JSON-schema answer, idle
expiry, and a broken model tripping the breaker. It ends with measured figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

CONCURRENT = 5
BROKEN = "broken-model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--models-dir", help="where the demo model is kept (default: data dir)")
    parser.add_argument("--ttl", type=float, default=3.0, help="idle TTL shown expiring (s)")


class _Timeline:
    """Prints each lifecycle transition as it happens, with time since the start."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.waiting: dict[tuple[str, str], Any] = {}  # (model, state) -> trio.Event

    def reached(self, model: str, state: str) -> Any:
        """Return a trio.Event set when ``model`` next enters ``state``."""
        import trio

        return self.waiting.setdefault((model, state), trio.Event())

    def __call__(self, _logger: object, _name: str, event: MutableMapping[str, Any]) -> Any:
        import structlog

        if event.get("event") == "transition":
            self.events.append(dict(event))
            waiting = self.waiting.pop((event["model"], event["dst"]), None)
            if waiting is not None:
                waiting.set()
            print(
                f"  {self.elapsed():7.3f}s  {event['model']:<28} {event['src']:>12} → "
                f"{event['dst']:<12} ({event['input']})",
                flush=True,
            )
        raise structlog.DropEvent

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _say(text: str) -> None:
    print(f"\n▶ {text}", flush=True)


def _structured(result: Any) -> dict[str, Any]:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(text)
    data: dict[str, Any] = result.structured_content or {}
    return data


async def _demo(args: argparse.Namespace, timeline: _Timeline) -> dict[str, Any]:
    import trio
    from mcp import Client

    from mcp_frontend.server import build_server
    from orchestrator import Config, open_orchestrator
    from orchestrator.backends.llamacpp import LlamaCppBackend
    from orchestrator.backends.provision import fetch_demo_model
    from orchestrator.config import LlamaCppSettings

    figures: dict[str, Any] = {}
    settings = LlamaCppSettings(models_dir=args.models_dir)
    _say(f"Provisioning the demo model into {settings.resolved_models_dir()}")
    fetched = await trio.to_thread.run_sync(fetch_demo_model, settings.resolved_models_dir())
    print(f"  {fetched.path.name}: {fetched.action}", flush=True)

    with tempfile.TemporaryDirectory(prefix="lmsorch-demo-") as tmp:
        # A private models dir: the real model (linked) and one that cannot load.
        (Path(tmp) / fetched.path.name).symlink_to(fetched.path)
        (Path(tmp) / f"{BROKEN}.gguf").write_bytes(b"this is not a GGUF file\n" * 64)
        config = Config(
            backend="llamacpp",
            default_ttl_s=args.ttl,
            breaker_threshold=3,
            breaker_cooldown_s=30.0,
            retry_initial_s=0.2,
            llamacpp=LlamaCppSettings(models_dir=tmp, context_length=1024),
        )
        backend = LlamaCppBackend(config.llamacpp)
        try:
            async with (
                open_orchestrator(backend, config) as orch,
                Client(build_server(orch), mode="legacy") as client,
            ):
                keys = [m.key for m in await orch.catalog()]
                model = next(k for k in keys if k != BROKEN)
                tools = await client.list_tools()
                print(f"  MCP session up: {len(tools.tools)} tools; models: {', '.join(keys)}")

                _say(f"{CONCURRENT} concurrent load_model calls for cold model {model!r}")
                started = time.monotonic()
                results: list[dict[str, Any]] = []

                async def load() -> None:
                    results.append(
                        _structured(await client.call_tool("load_model", {"model": model}))
                    )

                async with trio.open_nursery() as nursery:
                    for _ in range(CONCURRENT):
                        nursery.start_soon(load)
                figures["time_to_ready_s"] = round(time.monotonic() - started, 3)
                loads = orch.metrics.load_attempts.labels(model=model, result="ok")._value.get()
                figures["loads"], figures["load_requests"] = int(loads), CONCURRENT
                print(f"  {CONCURRENT} requests answered READY, backend loads: {int(loads)}")

                _say("A chat answer from the model (through the chat_completion tool)")
                started = time.monotonic()
                chat = _structured(
                    await client.call_tool(
                        "chat_completion",
                        {
                            "model": model,
                            "prompt": "Say hello in one short sentence.",
                            "max_tokens": 32,
                            "temperature": 0,
                        },
                    )
                )
                elapsed = time.monotonic() - started
                tokens = int((chat.get("usage") or {}).get("completion_tokens") or 0)
                figures["chat_tokens"], figures["tokens_per_s"] = tokens, round(tokens / elapsed, 1)
                print(f"  answer: {chat.get('content')!r}  ({tokens} tokens in {elapsed:.2f}s)")

                _say("A structured answer (response_format json_schema, validated first)")
                schema = {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                    "required": ["city", "country"],
                }
                shaped = _structured(
                    await client.call_tool(
                        "chat_completion",
                        {
                            "model": model,
                            "prompt": "Name one city and its country.",
                            "max_tokens": 48,
                            "temperature": 0,
                            "response_format": {
                                "type": "json_schema",
                                "json_schema": {"name": "place", "schema": schema},
                            },
                        },
                    )
                )
                print(f"  answer: {shaped.get('content')}")

                _say(f"Idle expiry: nothing in flight, TTL {args.ttl:g}s")
                with trio.fail_after(args.ttl + 30):
                    await timeline.reached(model, "UNLOADED").wait()
                status = _structured(await client.call_tool("model_status", {"model": model}))
                print(f"  model_status says: {status['models'][0]['state']}")

                _say(f"A model that cannot load ({BROKEN!r}) trips the breaker")
                for attempt in range(1, 5):
                    result = await client.call_tool("load_model", {"model": BROKEN})
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    print(f"  attempt {attempt}: error: {text[:150]}")
                figures["broken_backend_loads"] = int(
                    orch.metrics.load_attempts.labels(model=BROKEN, result="failed")._value.get()
                )
        finally:
            await backend.aclose()
    return figures


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 on success."""
    import logging

    import structlog
    import trio

    # The timeline is the demo's output; library chatter (transitions, mcp) is not.
    logging.basicConfig(level=logging.ERROR, force=True)
    for name in ("transitions", "mcp"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    timeline = _Timeline()
    structlog.configure(
        # The actor binds its model as context (not per call): merge it in first.
        processors=[structlog.contextvars.merge_contextvars, timeline],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    print("lmstudio-orchestrator demo: real model, real orchestrator, real MCP round trip")
    print("  timeline of state transitions (seconds since start)")
    try:
        figures = trio.run(_demo, args, timeline)
    except Exception as exc:  # noqa: BLE001 (the demo reports any failure in one line)
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    figures["total_s"] = round(timeline.elapsed(), 2)
    figures["transitions"] = len(timeline.events)
    print("\n▶ Summary")
    print(f"  time to READY (cold, {CONCURRENT} coalesced requests): {figures['time_to_ready_s']}s")
    print(f"  backend loads for {figures['load_requests']} requests: {figures['loads']}")
    print(f"  chat: {figures['chat_tokens']} tokens, {figures['tokens_per_s']} tokens/s end to end")
    print(
        f"  broken model: {figures['broken_backend_loads']} backend loads for 4 requests (breaker)"
    )
    print(f"  {figures['transitions']} transitions in {figures['total_s']}s")
    print(json.dumps(figures))
    return 0
