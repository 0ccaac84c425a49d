"""Tool schemas kept across starts (issue 20, start-up): the same tools, never a wrong one.

The figure (start to the first ``tools/list``) is measured in
``benchmarks/case_startup.py``; this checks what the cache must never change: the
listed tools, their calls and argument errors, and that a changed signature, a
corrupt file or an unwritable directory only cost time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import trio
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_frontend.server import build_server
from mcp_frontend.tools.schema_cache import SchemaCache, SchemaCachingToolManager, fingerprint
from tests.mcp_frontend.mcp_support import Fake, error, ok
from tests.reliability.server_process import lmsorch_serve, server_env


async def _listed(server: MCPServer[Any]) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in await server.list_tools()]


async def test_cached_schemas_list_the_tools_the_sdk_derives(fake: Fake, tmp_path: Path) -> None:
    derived, first = SchemaCache(None), SchemaCache(tmp_path)
    expected = await _listed(build_server(fake.orch, settings=fake.settings, schemas=derived))
    cold = await _listed(build_server(fake.orch, settings=fake.settings, schemas=first))
    second = SchemaCache(tmp_path)  # the next start: reads what the first wrote
    warm = await _listed(build_server(fake.orch, settings=fake.settings, schemas=second))

    assert len(expected) > 15
    assert (first.hits, first.derived) == (0, len(expected))
    assert (second.hits, second.derived) == (len(expected), 0)
    assert cold == expected
    assert warm == expected  # every schema, description and annotation, in order


async def test_a_cached_tool_calls_and_reports_argument_errors_as_a_derived_one(
    fake: Fake, tmp_path: Path
) -> None:
    build_server(fake.orch, settings=fake.settings, schemas=SchemaCache(tmp_path))
    warm = SchemaCache(tmp_path)
    async with Client(build_server(fake.orch, settings=fake.settings, schemas=warm)) as client:
        assert warm.hits > 15
        loaded = ok(await client.call_tool("load_model", {"model": "model-a"}))
        bad = error(await client.call_tool("chat_completion", {"messages": "hi", "top_k": 3}))

    assert loaded["status"]["state"] == "READY"
    assert list(fake.backend.loaded) == ["model-a"]  # the backend's truth, not only ours
    # The same text as the derived tool gives (tests/mcp_frontend/test_arguments.py).
    derived = error(await fake.client.call_tool("chat_completion", {"messages": "hi", "top_k": 3}))
    assert bad == derived
    assert bad.startswith("Error executing tool chat_completion:")


def _tool(x: int) -> int:
    """A tool."""
    return x


def _retyped(x: str) -> int:
    """The same tool, its argument retyped."""
    return len(x)


def _cached(cache: SchemaCache, fn: Any) -> dict[str, Any]:
    tool = cache.tool(
        fn,
        name="t",
        title=None,
        description=None,
        annotations=None,
        icons=None,
        meta=None,
        structured_output=None,
    )
    cache.save()
    return tool.parameters


def test_a_changed_signature_is_derived_again_and_rewritten(tmp_path: Path) -> None:
    assert _cached(SchemaCache(tmp_path), _tool)["properties"]["x"]["type"] == "integer"

    changed = SchemaCache(tmp_path)
    assert _cached(changed, _retyped)["properties"]["x"]["type"] == "string"
    assert (changed.hits, changed.derived) == (0, 1)

    after = SchemaCache(tmp_path)
    assert _cached(after, _retyped)["properties"]["x"]["type"] == "string"
    assert (after.hits, after.derived) == (1, 0)


def test_a_corrupt_file_is_derived_again_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / f"tool-schemas-{fingerprint()}.json"
    path.write_text('{"t": {"signature": 3}')  # cut short, and of the wrong shape

    cache = SchemaCache(tmp_path)
    assert _cached(cache, _tool)["required"] == ["x"]

    assert (cache.hits, cache.derived) == (0, 1)
    assert set(json.loads(path.read_text())) == {"t"}


def test_an_unwritable_cache_directory_costs_only_time(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    for _ in range(2):
        cache = SchemaCache(blocker / "cache")
        assert _cached(cache, _tool)["required"] == ["x"]
        assert cache.derived == 1


def test_a_name_registered_twice_keeps_the_first_tool(tmp_path: Path) -> None:
    manager = SchemaCachingToolManager(SchemaCache(tmp_path))
    first = manager.add_tool(_tool, name="t")

    again = manager.add_tool(_retyped, name="t")

    assert again is first
    assert [t.fn for t in manager.list_tools()] == [_tool]


def test_only_the_newest_fingerprints_are_kept(tmp_path: Path) -> None:
    for age in range(12):
        old = tmp_path / f"tool-schemas-old{age:02d}.json"
        old.write_text("{}")
        os.utime(old, (1_000_000 + age, 1_000_000 + age))

    _cached(SchemaCache(tmp_path), _tool)

    kept = sorted(p.name for p in tmp_path.glob("tool-schemas-*.json"))
    assert len(kept) == 8
    assert f"tool-schemas-{fingerprint()}.json" in kept
    assert "tool-schemas-old11.json" in kept  # the newest old ones stay
    assert "tool-schemas-old04.json" not in kept


async def _serve_and_list(tmp_path: Path, run: int) -> tuple[list[dict[str, Any]], str]:
    """Start ``lmsorch serve`` (home: ``tmp_path``), list its tools, stop; the tools and stderr."""
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models), LMSORCH_LOG_LEVEL="debug")
    log = tmp_path / f"stderr-{run}.log"
    argv = [sys.executable, "-m", "mcp_frontend", "--backend", "llamacpp"]
    with trio.fail_after(60):
        async with lmsorch_serve(env, log, argv) as server:
            listed = await server.reply(await server.send("tools/list"))
            assert server.proc.stdin is not None
            await server.proc.stdin.aclose()
    assert server.proc.returncode == 0
    tools: list[dict[str, Any]] = listed["result"]["tools"]
    return tools, log.read_text(encoding="utf-8")


def _schema_counts(stderr: str) -> tuple[int, int]:
    [line] = [json.loads(x) for x in stderr.splitlines() if '"tool_schemas"' in x]
    return line["cached"], line["derived"]


async def test_a_second_start_lists_the_same_tools_from_the_cache(tmp_path: Path) -> None:
    first, first_log = await _serve_and_list(tmp_path, 1)
    second, second_log = await _serve_and_list(tmp_path, 2)

    assert _schema_counts(first_log) == (0, len(first))
    assert _schema_counts(second_log) == (len(first), 0)
    assert second == first
    assert list((tmp_path / ".cache" / "lmstudio-orchestrator").glob("tool-schemas-*.json"))
