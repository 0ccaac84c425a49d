"""A user of the previous bridge keeps their ``.mcp.json`` env block: it still works, and says how.

The old bridge read ``LMSTUDIO_HOST``, ``LMSTUDIO_PORT``, ``DEFAULT_MODEL``,
``MCP_JSON_PATH`` and ``WORKING_DIR``; each is honoured for one release with one
warning on stderr naming the new setting.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio
from mcp import Client, StdioServerParameters

from orchestrator import Config
from orchestrator.agent import AgentSettings
from tests.agents.agent_support import toy_entry, write_mcp_json
from tests.fakes import Reply, open_simulator
from tests.mcp_frontend.mcp_support import QWEN, ok
from tests.reliability.server_process import LMSORCH, server_env


async def test_lmsorch_serve_with_only_the_old_variables_chats_and_warns(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.log"
    async with open_simulator() as sim:  # JIT on, as LM Studio ships; no lms on PATH
        sim.preload(QWEN)  # loaded by hand in LM Studio, as the old bridge expected
        sim.script(QWEN, Reply(content="hello from the old setup"))
        url = urlsplit(sim.base_url)
        servers = write_mcp_json(tmp_path / "old-mcp.json", {"toy": toy_entry()})
        env = server_env(
            tmp_path,
            PATH="/usr/bin:/bin",
            LMSTUDIO_HOST=str(url.hostname),
            LMSTUDIO_PORT=str(url.port),
            DEFAULT_MODEL=QWEN,
            MCP_JSON_PATH=str(servers),
            WORKING_DIR=str(tmp_path),
        )
        params = StdioServerParameters(
            command="/bin/sh", args=["-c", f'exec "{LMSORCH}" serve 2>"{stderr}"'], env=env
        )
        with trio.fail_after(60):
            async with Client(params) as client:
                answer = ok(await client.call_tool("chat_completion", {"prompt": "hi"}))
                status = ok(await client.call_tool("lms_server_status", {}))  # an old name
                mcps = ok(await client.call_tool("list_available_mcps", {"check": False}))
    assert answer["content"] == "hello from the old setup"
    assert answer["model"] == QWEN
    assert status["backend"] == "lmstudio"
    assert mcps["source"] == str(servers)
    assert [s["name"] for s in mcps["servers"]] == ["toy"]
    warnings = [line for line in stderr.read_text().splitlines() if "deprecated" in line]
    assert warnings == [
        "lmsorch: warning: DEFAULT_MODEL is deprecated; set LMSORCH_DEFAULT_MODEL instead",
        "lmsorch: warning: MCP_JSON_PATH is deprecated; set LMSORCH_AGENT_MCP_CONFIG instead",
        "lmsorch: warning: WORKING_DIR is deprecated; set LMSORCH_AGENT_ROOTS instead",
        f"lmsorch: warning: LMSTUDIO_HOST is deprecated; set LMSTUDIO_BASE_URL={sim.base_url} "
        "instead",
        f"lmsorch: warning: LMSTUDIO_PORT is deprecated; set LMSTUDIO_BASE_URL={sim.base_url} "
        "instead",
        "lmsorch: warning: tool lms_server_status is deprecated; call health_check instead "
        "(docs/migration.md)",
    ]


def test_each_old_variable_maps_to_its_new_setting(tmp_path: Path) -> None:
    config = Config.load(env={"LMSTUDIO_PORT": "4321", "DEFAULT_MODEL": "m"})
    assert config.lmstudio.base_url == "http://localhost:4321"
    assert config.backend == "lmstudio"  # the old bridge spoke only to LM Studio
    assert config.default_model == "m"
    agent = AgentSettings.from_env(
        {"MCP_JSON_PATH": str(tmp_path / "mcp.json"), "WORKING_DIR": str(tmp_path)}
    )
    assert agent.mcp_config == str(tmp_path / "mcp.json")
    assert agent.roots == (str(tmp_path),)


def test_the_new_setting_wins_over_the_old_one(tmp_path: Path) -> None:
    config = Config.load(
        env={
            "LMSTUDIO_HOST": "old-host",
            "LMSTUDIO_BASE_URL": "http://127.0.0.1:1234",
            "LMSORCH_BACKEND": "llamacpp",
            "DEFAULT_MODEL": "old",
            "LMSORCH_DEFAULT_MODEL": "new",
        }
    )
    assert config.lmstudio.base_url == "http://127.0.0.1:1234"
    assert config.backend == "llamacpp"
    assert config.default_model == "new"


@pytest.mark.parametrize("old", ["DEFAULT_MODEL", "LMSTUDIO_PORT"])
def test_an_empty_old_variable_is_ignored(old: str) -> None:
    config = Config.load(env={old: ""})
    assert config.default_model is None
    assert config.backend == "llamacpp"
