"""Ready-made servers (presets) and the previous bridge's mcp.json places."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import ConfigError
from orchestrator.agent import AgentSettings, McpConfigError, McpRegistry, UnknownMcpServer
from orchestrator.agent.presets import PRESETS
from tests.agents.agent_support import toy_entry, write_mcp_json


def test_no_preset_is_offered_unless_chosen(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    found = McpRegistry(AgentSettings(), cwd=tmp_path / "cwd", home=tmp_path, environ={})
    assert found.servers() == {}


def test_a_chosen_preset_is_the_old_bridges_server(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    settings = AgentSettings(presets=("filesystem", "memory", "fetch", "github"))
    environ = {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"}
    found = McpRegistry(settings, cwd=tmp_path / "cwd", home=tmp_path, environ=environ)
    servers = found.servers()
    assert found.source is None  # no file: presets alone
    assert sorted(servers) == ["fetch", "filesystem", "github", "memory"]
    fs = servers["filesystem"]
    assert (fs.command, fs.args) == ("npx", ("-y", "@modelcontextprotocol/server-filesystem", "."))
    assert fs.cwd is None  # runs in the run's working directory, which "." then names
    assert (servers["fetch"].command, servers["fetch"].args) == ("uvx", ("mcp-server-fetch",))
    assert servers["github"].env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"}
    assert servers["github"].public()["env"] == ["GITHUB_PERSONAL_ACCESS_TOKEN"]
    with pytest.raises(UnknownMcpServer, match="no MCP configuration file found"):
        found.get("git")


def test_the_github_preset_needs_its_token_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    found = McpRegistry(
        AgentSettings(presets=("github",)), cwd=tmp_path / "cwd", home=tmp_path, environ={}
    )
    assert found.servers() == {}
    with pytest.raises(McpConfigError, match=r"GITHUB_PERSONAL_ACCESS_TOKEN .* is not set"):
        found.get("github")


def test_the_files_entry_of_a_presets_name_wins(tmp_path: Path) -> None:
    config = write_mcp_json(tmp_path / "mcp.json", {"memory": toy_entry(), "git": toy_entry()})
    settings = AgentSettings(mcp_config=str(config), presets=("memory", "fetch"))
    servers = McpRegistry(settings, environ={}).servers()
    assert sorted(servers) == ["fetch", "git", "memory"]
    assert servers["memory"].command == toy_entry()["command"]
    assert servers["fetch"].command == "uvx"


def test_deny_applies_to_presets_too(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    settings = AgentSettings(presets=("fetch",), deny=("fetch",))
    found = McpRegistry(settings, cwd=tmp_path / "cwd", home=tmp_path, environ={})
    assert found.servers() == {}
    with pytest.raises(UnknownMcpServer, match="LMSORCH_AGENT_DENY"):
        found.get("fetch")


def test_an_unknown_preset_is_refused_at_start_with_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'filesytem'; did you mean 'filesystem'"):
        AgentSettings.from_env({"LMSORCH_AGENT_PRESETS": "filesytem"})
    chosen = AgentSettings.from_env({"LMSORCH_AGENT_PRESETS": "filesystem, memory"})
    assert chosen.presets == ("filesystem", "memory")
    assert set(chosen.presets) <= set(PRESETS)


@pytest.mark.parametrize("where", ["home", "parent"])
def test_the_previous_bridges_places_are_read_with_a_warning(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home, cwd = tmp_path / where / "home", tmp_path / where / "proj" / "cwd"
    home.mkdir(parents=True)
    cwd.mkdir(parents=True)
    old = home / ".mcp.json" if where == "home" else cwd.parent / ".mcp.json"
    write_mcp_json(old, {"old": toy_entry()})
    found = McpRegistry(AgentSettings(), cwd=cwd, home=home, environ={})
    assert list(found.servers()) == ["old"]
    assert found.source == old
    err = capsys.readouterr().err
    assert f"reading MCP servers from {old}, where the previous bridge looked" in err
    assert f"LMSORCH_AGENT_MCP_CONFIG={old}" in err
    # The new places come first: a project file there wins, without a warning.
    write_mcp_json(cwd / ".mcp.json", {"project": toy_entry()})
    assert list(found.servers()) == ["project"]
    assert capsys.readouterr().err == ""
