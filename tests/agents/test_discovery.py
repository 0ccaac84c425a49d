"""Discovery of MCP servers from mcp.json, and the agent settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator import ConfigError
from orchestrator.agent import AgentSettings, McpConfigError, McpRegistry, UnknownMcpServer
from orchestrator.agent.discovery import expand_vars
from tests.agents.agent_support import toy_entry, write_mcp_json


def registry(
    tmp_path: Path,
    servers: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
    **settings: Any,
) -> McpRegistry:
    config = write_mcp_json(tmp_path / "mcp.json", servers)
    return McpRegistry(
        AgentSettings(mcp_config=str(config), **settings),
        cwd=tmp_path / "cwd",
        home=tmp_path / "home",
        environ=environ or {},
    )


def test_lookup_order_explicit_then_project_then_lmstudio(tmp_path: Path) -> None:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    (home / ".lmstudio").mkdir(parents=True)
    cwd.mkdir()
    found = McpRegistry(AgentSettings(), cwd=cwd, home=home, environ={})
    assert [found.source] == [None]  # (a list: mypy would narrow the property for good)
    assert found.servers() == {}
    with pytest.raises(UnknownMcpServer, match=r"no MCP configuration file found.*\.mcp\.json"):
        found.get("git")

    write_mcp_json(home / ".lmstudio" / "mcp.json", {"lmstudio": toy_entry()})
    assert found.source == home / ".lmstudio" / "mcp.json"
    assert list(found.servers()) == ["lmstudio"]

    write_mcp_json(cwd / ".mcp.json", {"project": toy_entry()})
    assert found.source == cwd / ".mcp.json"
    assert list(found.servers()) == ["project"]

    explicit = write_mcp_json(tmp_path / "explicit.json", {"explicit": toy_entry()})
    chosen = McpRegistry(AgentSettings(mcp_config=str(explicit)), cwd=cwd, home=home, environ={})
    assert chosen.candidates() == (explicit,)
    assert list(chosen.servers()) == ["explicit"]


def test_lm_studios_file_is_found_through_its_home_pointer(tmp_path: Path) -> None:
    """F6: LM Studio's home is the pointer's target, else ~/.cache/lm-studio, else ~/.lmstudio."""
    cwd, home, moved = tmp_path / "cwd", tmp_path / "home", tmp_path / "moved"
    cwd.mkdir()
    (home / ".cache" / "lm-studio").mkdir(parents=True)
    write_mcp_json(home / ".cache" / "lm-studio" / "mcp.json", {"legacy": toy_entry()})
    found = McpRegistry(AgentSettings(), cwd=cwd, home=home, environ={})
    assert list(found.servers()) == ["legacy"]
    moved.mkdir()
    write_mcp_json(moved / "mcp.json", {"moved": toy_entry()})
    (home / ".lmstudio-home-pointer").write_text(str(moved))
    assert found.candidates()[:2] == (cwd / ".mcp.json", moved / "mcp.json")
    assert list(found.servers()) == ["moved"]


def test_an_oauth_entry_says_lm_studio_manages_its_auth(tmp_path: Path) -> None:
    """F12: LM Studio's ``auth`` object means LM Studio holds the token, not the file."""
    entry = {
        "url": "https://mcp.linear.app/mcp",
        "auth": {"CLIENT_ID": "x", "CLIENT_SECRET": "s3c"},
    }
    path = write_mcp_json(tmp_path / "mcp.json", {"linear": entry})
    spec = McpRegistry(AgentSettings(mcp_config=str(path)), environ={}).get("linear")
    assert spec.oauth
    assert spec.public()["auth"] == "OAuth, managed by LM Studio"
    assert "s3c" not in repr(spec.public())


def test_explicit_file_missing_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    write_mcp_json(tmp_path / ".mcp.json")
    missing = tmp_path / "nope.json"
    reg = McpRegistry(AgentSettings(mcp_config=str(missing)), cwd=tmp_path, environ={})
    with pytest.raises(McpConfigError, match=rf"{missing} does not exist"):
        reg.servers()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "top level must be an object"),
        (b'{"other": {}}', 'no "mcpServers"'),
        (b'{"mcpServers": []}', '"mcpServers" must be an object'),
        (b'{"mcpServers": {"\xff": {}}}', "not valid JSON"),
    ],
)
def test_broken_file_names_the_file_and_the_problem(
    tmp_path: Path, text: bytes, problem: str
) -> None:
    path = tmp_path / "mcp.json"
    path.write_bytes(text)
    reg = McpRegistry(AgentSettings(mcp_config=str(path)), environ={})
    with pytest.raises(McpConfigError) as info:
        reg.servers()
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_bad_entries_are_reported_and_the_good_ones_still_usable(tmp_path: Path) -> None:
    reg = registry(
        tmp_path,
        {
            "good": toy_entry(),
            "no_command": {"args": ["x"]},
            "args_not_list": {"command": "x", "args": "--flag"},
            "env_not_map": {"command": "x", "env": ["A=1"]},
            "sse": {"type": "sse", "url": "http://127.0.0.1:1/sse"},
            "not_object": 42,
            "http_no_url": {"type": "http"},
            "ftp": {"url": "ftp://host/mcp"},
        },
    )
    assert list(reg.servers()) == ["good"]
    invalid = reg.invalid()
    assert set(invalid) == {
        "no_command",
        "args_not_list",
        "env_not_map",
        "sse",
        "not_object",
        "http_no_url",
        "ftp",
    }
    assert "unsupported type 'sse'" in invalid["sse"]
    assert "args must be a list of strings" in invalid["args_not_list"]
    with pytest.raises(McpConfigError, match=r"server 'no_command' needs a 'command'"):
        reg.get("no_command")
    with pytest.raises(UnknownMcpServer) as info:
        reg.get("missing")
    assert info.value.available == ("good",)


def test_variables_are_expanded_with_defaults_and_undefined_ones_named(tmp_path: Path) -> None:
    environ = {"TOKEN": "s3cret", "EMPTY": "", "DIR": "sub"}
    reg = registry(
        tmp_path,
        {
            "stdio": {
                "command": "${BIN:-/usr/bin/env}",
                "args": ["--token=${TOKEN}", "${EMPTY:-fallback}", "${EMPTY}"],
                "env": {"API_KEY": "${TOKEN}", "PORT": 8080},
                "cwd": "${DIR}",
            },
            "http": {
                "type": "streamable-http",
                "url": "https://user:${TOKEN}@example.test/mcp?key=${TOKEN}",
                "headers": {"Authorization": "Bearer ${TOKEN}"},
            },
            "undefined": {"command": "x", "env": {"K": "${NOT_SET}"}},
        },
        environ=environ,
    )
    stdio = reg.get("stdio")
    assert stdio.command == "/usr/bin/env"
    assert stdio.args == ("--token=s3cret", "fallback", "")
    assert stdio.env == {"API_KEY": "s3cret", "PORT": "8080"}
    assert stdio.cwd == str(tmp_path / "sub")  # relative to the file's directory
    http = reg.get("http")
    assert http.transport == "http"
    assert http.headers == {"Authorization": "Bearer s3cret"}
    with pytest.raises(McpConfigError, match=r"'undefined'.*NOT_SET \(used in env\.K\)"):
        reg.get("undefined")

    # Secrets never show: not in public(), not in repr.
    for spec in (stdio, http):
        shown = json.dumps(spec.public()) + repr(spec) + repr(reg.servers())
        assert "s3cret" not in shown
    assert stdio.public() == {
        "name": "stdio",
        "transport": "stdio",
        "command": "/usr/bin/env",
        "args": ["--token=${TOKEN}", "${EMPTY:-fallback}", "${EMPTY}"],
        "cwd": str(tmp_path / "sub"),
        "env": ["API_KEY", "PORT"],
    }
    assert http.public() == {
        "name": "http",
        "transport": "http",
        "url": "https://example.test/mcp",
        "headers": ["Authorization"],
    }


def test_expand_vars_leaves_plain_dollars_alone() -> None:
    assert expand_vars("$HOME ${A}x${B:-b}", {"A": "a"}, server="s", field="f") == "$HOME axb"


@pytest.mark.parametrize(
    "entry",
    [
        {"command": "lmsorch", "args": ["serve"]},
        {"command": "/opt/venv/bin/lmsorch"},
        {"command": "python3", "args": ["-m", "mcp_frontend"]},
        {"command": "python", "args": ["-m", "mcp_frontend.cli", "serve"]},
        {"command": "uvx", "args": ["lmsorch==0.1.0", "serve"]},
        {"command": "uvx", "args": ["--from", "lmstudio-orchestrator", "lmsorch"]},
        {"command": "sh", "args": ["-c", "exec lmsorch serve --backend llamacpp"]},
    ],
)
def test_this_server_itself_is_never_offered(tmp_path: Path, entry: dict[str, Any]) -> None:
    reg = registry(tmp_path, {"me": entry, "other": toy_entry()})
    assert list(reg.servers()) == ["other"]
    with pytest.raises(McpConfigError, match="runs this orchestrator itself"):
        reg.get("me")


def test_similar_names_are_not_mistaken_for_this_server(tmp_path: Path) -> None:
    reg = registry(
        tmp_path,
        {
            "a": {"command": "lmsorch-helper"},
            "b": {"command": "python", "args": ["-m", "mcp"]},
            "c": {"command": "sh", "args": ["-c", "echo not-lmsorch"]},
        },
    )
    assert sorted(reg.servers()) == ["a", "b", "c"]


def test_allow_and_deny_lists_with_deny_winning(tmp_path: Path) -> None:
    servers = {name: toy_entry() for name in ("git", "fs", "shell")}
    reg = registry(tmp_path, servers, allow=("git", "shell"), deny=("shell",))
    assert list(reg.servers()) == ["git"]
    assert reg.invalid() == {}
    with pytest.raises(UnknownMcpServer, match="denied by LMSORCH_AGENT_DENY"):
        reg.get("shell")
    with pytest.raises(UnknownMcpServer, match="not in LMSORCH_AGENT_ALLOW"):
        reg.get("fs")


def test_disabled_entries_are_refused_and_never_parsed(tmp_path: Path) -> None:
    servers = {
        "on": toy_entry(disabled=False),
        "off": toy_entry(disabled=True),
        "off_broken": {"disabled": True, "command": "x", "env": {"K": "${UNSET_VAR_XYZ}"}},
        "odd": toy_entry(disabled="yes"),
    }
    reg = registry(tmp_path, servers, environ={})
    path = reg.candidates()[0]
    assert list(reg.servers()) == ["on"]
    assert set(reg.invalid()) == {"odd"}
    assert "disabled must be true or false" in reg.invalid()["odd"]
    for name in ("off", "off_broken"):
        with pytest.raises(UnknownMcpServer) as info:
            reg.get(name)
        assert f"MCP server {name!r} is disabled in {path}" in str(info.value)
        assert info.value.available == ("on",)


def test_the_file_is_re_read_when_it_changes(tmp_path: Path) -> None:
    reg = registry(tmp_path, {"one": toy_entry()})
    path = reg.candidates()[0]
    assert list(reg.servers()) == ["one"]
    before = path.stat().st_mtime_ns
    write_mcp_json(path, {"one": toy_entry(), "two": toy_entry()})
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))
    assert list(reg.servers()) == ["one", "two"]
    path.write_text("{broken")
    with pytest.raises(McpConfigError, match="not valid JSON"):
        reg.servers()


def test_settings_from_env() -> None:
    env = {
        "LMSORCH_AGENT_MCP_CONFIG": "~/x.json",
        "LMSORCH_AGENT_ROOTS": os.pathsep.join(["/a", "/b,c"]),
        "LMSORCH_AGENT_DENY": "shell, browser",
        "LMSORCH_AGENT_MAX_ROUNDS": "7",
        "LMSORCH_AGENT_CALL_TIMEOUT_S": "2.5",
        "UNRELATED": "1",
    }
    s = AgentSettings.from_env(env)
    assert s.mcp_config == "~/x.json"
    assert s.roots == ("/a", "/b,c")
    assert s.deny == ("shell", "browser")
    assert (s.max_rounds, s.call_timeout_s) == (7, 2.5)
    assert AgentSettings.from_env({}).resolved_roots() == (Path.cwd().resolve(),)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"LMSORCH_AGENT_MAX_ROUND": "3"},
            "unknown setting LMSORCH_AGENT_MAX_ROUND; did you mean LMSORCH_AGENT_MAX_ROUNDS?",
        ),
        ({"LMSORCH_AGENT_MAX_ROUNDS": "many"}, "invalid agent setting"),
        ({"LMSORCH_AGENT_MAX_ROUNDS": "0"}, "MAX_ROUNDS must be at least 1"),
        ({"LMSORCH_AGENT_DEADLINE_S": "inf"}, "DEADLINE_S must be a positive number"),
        ({"LMSORCH_AGENT_MAX_ROUNDS": "200"}, r"exceeds LMSORCH_AGENT_MAX_ROUNDS_CAP \(100\)"),
    ],
)
def test_bad_settings_are_config_errors(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        AgentSettings.from_env(env)
