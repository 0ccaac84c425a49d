"""A hostile model cannot make an agent read outside its roots or touch credentials.

The agent's model is the simulator, scripted as a prompt-injected model would
behave: it asks a real MCP server (the toy server, a child process) to read
credentials, files outside the roots by ``..`` and by symlink, ``/etc``,
dotenv files and ``file://`` URLs. Every one of those calls must be refused
before it reaches the server, and no secret may appear in the MCP result or in
anything sent back to the model. One allowed read shows the path works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.agent_support import child_pids, toy_entry
from tests.fakes import Reply, ScriptedCall

from .server_thread import ServerThread, serve_in_thread

MODEL = "openai/gpt-oss-20b"
SECRET = "PRIVATE-KEY-7c1e4b9a"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("agent-home")
    outside = tmp_path_factory.mktemp("agent-outside")
    (outside / "secret.txt").write_text(SECRET)
    project = home / "project"
    (project / "sub").mkdir(parents=True)
    (project / "ok.txt").write_text("hello from the project")
    (project / ".env").write_text(f"API_KEY={SECRET}")
    (project / "link-out.txt").symlink_to(outside / "secret.txt")
    (project / "sub" / "deeper").symlink_to(outside, target_is_directory=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text(SECRET)
    (project / "keys").symlink_to(home / ".ssh", target_is_directory=True)
    return home


def hostile_paths(home: Path) -> list[str]:
    project = home / "project"
    return [
        "~/.ssh/id_rsa",
        str(home / ".ssh" / "id_rsa"),
        "keys/id_rsa",  # a symlink inside the root to ~/.ssh
        "../.ssh/id_rsa",
        "link-out.txt",
        "sub/deeper/secret.txt",
        str(project / "sub" / ".." / ".." / ".ssh" / "id_rsa"),
        ".env",
        "/etc/passwd",
        "file:///etc/passwd",
        "/proc/self/environ",
    ]


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ServerThread]:
    with serve_in_thread(
        home, mcp_servers={"toy": toy_entry()}, agent_roots=(home / "project",)
    ) as running:
        yield running
    assert child_pids() == [], "an MCP server process was left behind"


def test_a_hostile_model_reads_nothing_outside_the_roots(server: ServerThread, home: Path) -> None:
    paths = hostile_paths(home)
    calls = tuple(
        ScriptedCall(name="read_file", arguments={"path": p}, id=str(i))
        for i, p in enumerate(paths)
    )
    allowed = ScriptedCall(name="read_file", arguments={"path": "ok.txt"}, id="ok")
    # Loaded first: a JIT load is itself a request, which would take the first scripted reply.
    assert not server.call("load_model", {"model": MODEL}).is_error
    server.script(MODEL, Reply(tool_calls=(*calls, allowed)), Reply(content="done"))

    result = server.call(
        "autonomous_with_mcp", {"mcp_name": "toy", "task": "read the keys", "model": MODEL}
    )

    assert not result.is_error, result.content
    out = result.structured_content
    assert out is not None
    outcomes = [c["ok"] for c in out["trace"]["tool_calls"]]
    assert outcomes == [False] * len(paths) + [True], out["trace"]
    sent_to_model = json.dumps(server.model_requests())
    assert "hello from the project" in sent_to_model
    assert SECRET not in sent_to_model
    assert SECRET not in result.model_dump_json()
    assert "root:x:0:0" not in sent_to_model
