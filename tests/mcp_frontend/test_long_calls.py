"""Long calls stay alive: heartbeats with elapsed time while a load or an agent round runs."""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from mcp_frontend.tools.agents import RoundProgress
from tests.mcp_frontend.mcp_support import Fake, mcp_client, ok


async def test_a_long_load_sends_heartbeats_with_the_elapsed_time(fake: Fake) -> None:
    gate = fake.backend.script("model-a").gate = trio.Event()
    settings = msgspec.structs.replace(fake.settings, progress_heartbeat_s=0.01)
    seen: list[tuple[float, float | None, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message or ""))
        if sum("still LOADING after" in m for _, _, m in seen) >= 2:
            gate.set()  # two heartbeats seen: let the load finish

    with trio.fail_after(10):
        async with mcp_client(fake.orch, settings) as client:
            result = await client.call_tool(
                "load_model", {"model": "model-a"}, progress_callback=on_progress
            )

    assert ok(result)["status"]["state"] == "READY"
    messages = [m for _, _, m in seen]
    assert messages[0] == "model-a: LOADING"
    assert messages[-1] == "model-a: READY"
    beats = [m for m in messages if m.startswith("model-a: still LOADING after ")]
    assert len(beats) >= 2
    assert all(m.endswith("s") for m in beats)
    values = [p for p, _, _ in seen]
    assert values == sorted(values)
    assert len(set(values)) == len(values)  # progress grows with every notification


class _Ctx:
    def __init__(self) -> None:
        self.sent: list[tuple[float, float | None, str | None]] = []

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        self.sent.append((progress, total, message))


async def test_agent_heartbeats_stay_between_rounds_and_carry_the_total() -> None:
    ctx = _Ctx()
    progress = RoundProgress(ctx)  # type: ignore[arg-type]

    await progress.report(1, 4, "round 1/4: asking the model")
    await progress.beat()
    await progress.beat()
    await progress.report(2, 4, "round 2/4: asking the model")
    await progress.beat()

    values = [p for p, _, _ in ctx.sent]
    assert values == [1, 1.5, 1.75, 2, 2.5]
    assert {t for _, t, _ in ctx.sent} == {4}
    messages: list[Any] = [m for _, _, m in ctx.sent]
    assert messages[1].startswith("round 1/4: asking the model (")
    assert messages[1].endswith("s elapsed)")
