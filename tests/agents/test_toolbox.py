"""The toolbox against real child MCP servers: the toy server and the published mcp-server-git.

Every test checks that the server processes it started are gone afterwards.
Waits are bounded with ``trio.fail_after``; nothing here sleeps.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import mcp_types
import msgspec
import pytest
import trio

from mcp_frontend.transports.http import _serve_asgi, build_http_app, serve_http
from mcp_frontend.transports.serve import TOKEN_ENV as HTTP_TOKEN_ENV
from orchestrator.agent import (
    McpRegistry,
    McpServerFailed,
    PathNotAllowed,
    ServerSpec,
    Toolbox,
    open_toolbox,
    probe,
    sessions,
    tool_results,
)
from orchestrator.agent.schema_bridge import (
    MAX_ARGUMENT_DEPTH,
    BridgedTool,
    exposed_names,
    parse_arguments,
    schema_errors,
)
from orchestrator.agent.tool_results import result_parts
from orchestrator.identity import SERVER_NAME
from orchestrator.inference.responses_types import FunctionTool
from orchestrator.logs import REDACTED, redact
from tests.agents.agent_support import (
    child_pids,
    gone,
    leaky_spec,
    open_fds,
    toy_entry,
    toy_settings,
    toy_spec,
    write_mcp_json,
)
from tests.agents.servers.toy_server import app as toy_app

GIT_SERVER = Path(sys.executable).parent / "mcp-server-git"


async def server_pid(box: Toolbox, name: str = "pid") -> int:
    result = await box.call(name, "{}")
    assert not result.is_error, result.text
    return int(result.text)


async def test_tools_are_bridged_and_called(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], toy_settings(tmp_path)) as box:
            assert box.servers == ("toy",)
            names = box.tool_names()
            assert {"add", "echo", "fail", "slow", "huge", "read_file"} <= set(names)
            chat = {t.function.name: t for t in box.chat_tools()}
            add = chat["add"].function
            assert chat["add"].type == "function"
            assert add.description == "Add two integers."
            assert add.parameters["type"] == "object"
            assert add.parameters["required"] == ["a", "b"]
            assert add.parameters["properties"]["a"]["type"] == "integer"
            flat = {t.name: t for t in box.responses_tools() if isinstance(t, FunctionTool)}
            assert list(flat) == list(names)
            assert flat["add"].parameters == add.parameters

            assert (await box.call("add", '{"a": 2, "b": 40}')).text == "42"
            echoed = await box.call("echo", json.dumps({"text": "héllo\nworld"}))
            assert (echoed.text, echoed.is_error, echoed.truncated) == (
                "héllo\nworld",
                False,
                False,
            )
            pid = await server_pid(box)
    await gone(pid)
    assert pid not in child_pids()


async def test_the_orchestrator_s_own_tokens_are_not_passed_to_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = {"LMSTUDIO_API_TOKEN": "lms-own-s3cret", HTTP_TOKEN_ENV: "http-own-s3cret"}
    for name, value in own.items():
        monkeypatch.setenv(name, value)
    spec = msgspec.structs.replace(toy_spec(), env={"GIVEN_ON_PURPOSE": "yes-this-one"})
    with trio.fail_after(30):
        async with open_toolbox([spec], toy_settings(tmp_path)) as box:
            pid = await server_pid(box)
            environ = Path(f"/proc/{pid}/environ").read_bytes()
    await gone(pid)
    names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
    assert "GIVEN_ON_PURPOSE" in names  # the child's environment was read
    assert not names & set(own)
    for value in own.values():
        assert value.encode() not in environ


async def test_malformed_calls_get_a_correction_request(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], toy_settings(tmp_path)) as box:
            not_json = await box.call("add", '{"a": 1, "b": ')
            wrong_type = await box.call("add", '{"a": "one"}')
            not_object = await box.call("add", "[1, 2]")
            unknown = await box.call("subtract", "{}")
            empty = await box.call("huge", "")  # no arguments at all means {}
            pid = await server_pid(box)
    await gone(pid)
    assert not_json.is_error
    assert "not valid JSON" in not_json.text
    assert "Call it again with a JSON object matching this schema" in not_json.text
    assert '"required": ["a", "b"]' in not_json.text
    assert wrong_type.is_error
    assert "$['a']: 'one' is not of type 'integer'" in wrong_type.text
    assert "'b' is a required property" in wrong_type.text
    assert not_object.is_error
    assert "must be a JSON object, not list" in not_object.text
    assert unknown.is_error
    assert unknown.text.startswith("Unknown tool 'subtract'. Available tools: add, echo")
    assert not empty.is_error


async def test_deeply_nested_arguments_get_a_correction_request(tmp_path: Path) -> None:
    deep = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"  # beyond the decoder's recursion
    parseable = '{"text": ' + "[" * 100 + "]" * 100 + "}"  # decodes, but too deep to pass on
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], toy_settings(tmp_path)) as box:
            results = [await box.call("echo", deep), await box.call("echo", parseable)]
            fine = await box.call("echo", json.dumps({"text": "still here"}))
            pid = await server_pid(box)
    await gone(pid)
    for result in results:
        assert result.is_error
        assert "Invalid arguments for tool 'echo'" in result.text
        assert f"deeper than {MAX_ARGUMENT_DEPTH} levels" in result.text
    assert fine.text == "still here"
    nested: Any = "leaf"
    for _ in range(MAX_ARGUMENT_DEPTH - 1):
        nested = [nested]
    assert parse_arguments(json.dumps({"a": nested})) == ({"a": nested}, None)  # the limit itself


async def test_results_are_bounded_and_errors_survived(tmp_path: Path) -> None:
    settings = toy_settings(tmp_path, max_result_chars=1000)
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], settings) as box:
            huge = await box.call("huge", "{}")
            garbage = await box.call("garbage", "{}")
            failed = await box.call("fail", '{"message": "kaput"}')
            after = await box.call("add", '{"a": 1, "b": 1}')
            pid = await server_pid(box)
    await gone(pid)
    assert huge.truncated
    assert not huge.is_error
    assert huge.text.startswith("x" * 1000 + "\n[result cut: showing 1000 of 1000000 characters")
    assert len(huge.text) < 1200
    assert garbage.text == (
        "[31mred text\ufffd\n"  # control characters dropped
        "[image: image/png, 12 base64 characters, not shown]\n"
        "[resource link: file:///nowhere (nowhere)]"
    )
    assert failed.is_error
    assert failed.text.startswith("Tool fail reported an error:")
    assert after.text == "2"  # the server survived the failing tool


async def test_file_paths_outside_the_roots_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("inside")
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id_rsa").write_text("PRIVATE")
    (tmp_path / "outside.txt").write_text("OUTSIDE")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], toy_settings(root)) as box:
            inside = await box.call("read_file", '{"path": "docs/a.txt"}')  # relative to the root
            refused = [
                await box.call("read_file", json.dumps({"path": p}))
                for p in (str(tmp_path / "outside.txt"), "../outside.txt", "escape", ".ssh/id_rsa")
            ]
            pid = await server_pid(box)
    await gone(pid)
    assert (inside.text, inside.is_error) == ("inside", False)
    for result in refused:
        assert result.is_error
        assert "is not allowed" in result.text
        assert "OUTSIDE" not in result.text
        assert "PRIVATE" not in result.text


async def test_several_servers_open_concurrently_with_namespaced_tools(tmp_path: Path) -> None:
    specs = [toy_spec("one"), toy_spec("two.b")]
    with trio.fail_after(30):
        async with open_toolbox(specs, toy_settings(tmp_path)) as box:
            assert box.servers == ("one", "two.b")
            names = box.tool_names()
            assert {"one__add", "two_b__add", "one__pid", "two_b__pid"} <= set(names)
            assert len(names) == len(set(names))
            assert (await box.call("two_b__add", '{"a": 3, "b": 4}')).text == "7"
            assert (await box.call("add", '{"a": 3, "b": 4}')).is_error  # bare names are gone
            pids = [await server_pid(box, "one__pid"), await server_pid(box, "two_b__pid")]
            assert pids[0] != pids[1]
            assert set(pids) <= set(child_pids())
    for pid in pids:
        await gone(pid)


async def test_a_slow_call_times_out_and_the_server_stays_usable(tmp_path: Path) -> None:
    settings = toy_settings(tmp_path, call_timeout_s=0.5)
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], settings) as box:
            slow = await box.call("slow", "{}")
            after = await box.call("add", '{"a": 1, "b": 2}')
            pid = await server_pid(box)
    await gone(pid)
    assert slow.is_error
    assert "did not answer within 0.5 s" in slow.text
    assert after.text == "3"


async def test_cancellation_mid_call_leaves_no_process(tmp_path: Path) -> None:
    pid, fds = 0, open_fds()
    called = trio.Event()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:

            async def agent() -> None:
                nonlocal pid
                async with open_toolbox([toy_spec()], toy_settings(tmp_path)) as box:
                    pid = await server_pid(box)
                    called.set()
                    await box.call("slow", "{}")

            nursery.start_soon(agent)
            await called.wait()
            nursery.cancel_scope.cancel()
    await gone(pid)
    assert pid not in child_pids()
    assert open_fds() <= fds


async def test_an_error_in_the_block_stops_the_servers_and_comes_out_bare(tmp_path: Path) -> None:
    pids: list[int] = []

    async def agent() -> None:
        async with open_toolbox([toy_spec("a"), toy_spec("b")], toy_settings(tmp_path)) as box:
            pids.extend([await server_pid(box, "a__pid"), await server_pid(box, "b__pid")])
            raise KeyError("from the loop")

    with trio.fail_after(30), pytest.raises(KeyError, match="from the loop"):
        await agent()
    assert len(pids) == 2
    for pid in pids:
        await gone(pid)


async def test_a_server_dying_mid_call_is_reported(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_toolbox([toy_spec()], toy_settings(tmp_path)) as box:
            pid = await server_pid(box)
            with pytest.raises(McpServerFailed, match="the connection closed") as info:
                await box.call("crash", "{}")
            assert info.value.server == "toy"
            with pytest.raises(McpServerFailed):  # and stays reported
                await box.call("add", '{"a": 1, "b": 2}')
    await gone(pid)


async def test_a_server_that_exits_at_once_fails_with_its_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before, fds = set(child_pids()), open_fds()
    with trio.fail_after(30), pytest.raises(McpServerFailed) as info:
        async with open_toolbox([toy_spec("ok"), toy_spec("bad", "exit")], toy_settings(tmp_path)):
            pytest.fail("the toolbox must not open")
    assert info.value.server == "bad"
    assert "exited or closed the connection before it was ready" in info.value.reason
    assert "broken: refusing to start (mode=exit)" in info.value.reason  # its stderr
    assert set(child_pids()) <= before  # the good server was stopped too
    assert open_fds() <= fds  # and no pipe was left open
    out, err = capfd.readouterr()
    assert "refusing to start" not in out + err  # the child's stderr went to the capture only


async def test_a_child_echoing_its_env_secret_never_shows_it(tmp_path: Path) -> None:
    token = "leaky-s3cret-value"
    spec = leaky_spec(tmp_path, token)
    settings = toy_settings(tmp_path)
    with trio.fail_after(30), pytest.raises(McpServerFailed) as info:
        async with open_toolbox([spec], settings):
            pytest.fail("the toolbox must not open")
    assert f"leaky: my token is {REDACTED}" in info.value.reason  # the stderr tail, scrubbed
    assert token not in str(info.value)
    with trio.fail_after(30):
        reason = await probe(spec, settings)  # what list_available_mcps reports
    assert reason is not None
    assert REDACTED in reason
    assert token not in reason
    # And the value is registered with the log redaction.
    event = redact(None, "info", {"event": "mcp_failed", "detail": f"said {token}"})
    assert event["detail"] == f"said {REDACTED}"


async def test_the_stderr_of_a_server_that_died_mid_call_is_scrubbed(tmp_path: Path) -> None:
    token = "leaky-dying-s3cret"
    with trio.fail_after(30):
        async with open_toolbox(
            [leaky_spec(tmp_path, token, "serve")], toy_settings(tmp_path)
        ) as box:
            pid = await server_pid(box)
            with pytest.raises(McpServerFailed, match="the connection closed") as info:
                await box.call("crash", "{}")
            with pytest.raises(McpServerFailed) as again:
                await box.call("add", '{"a": 1, "b": 2}')
    await gone(pid)
    for exc in (info.value, again.value):
        assert f"leaky: my token is {REDACTED}" in str(exc)
        assert token not in str(exc)


async def test_a_server_that_says_it_is_this_orchestrator_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "impostor.py"
    script.write_text(
        "import sys, anyio\n"
        "from mcp.server.mcpserver import MCPServer\n"
        "app = MCPServer(sys.argv[1])\n"
        "app.tool(name='hidden')(lambda: 'never listed')\n"
        "anyio.run(app.run_stdio_async, backend='trio')\n"
    )
    spec = ServerSpec(
        name="innocent",
        transport="stdio",
        command=sys.executable,
        args=(str(script), SERVER_NAME),
    )
    before, fds = set(child_pids()), open_fds()
    with trio.fail_after(30), pytest.raises(McpServerFailed) as info:
        async with open_toolbox([spec], toy_settings(tmp_path)):
            pytest.fail("the toolbox must not open")
    assert info.value.server == "innocent"
    assert f"it is this orchestrator ({SERVER_NAME})" in info.value.reason
    assert set(child_pids()) <= before  # the session was closed and the process stopped
    assert open_fds() <= fds


async def test_skip_failed_opens_the_servers_that_start_and_says_why_the_others_did_not(
    tmp_path: Path,
) -> None:
    before = set(child_pids())
    outside = toy_spec("outside", cwd=tmp_path.parent)
    specs = [toy_spec("ok"), toy_spec("bad", "exit"), outside]
    with trio.fail_after(30):
        async with open_toolbox(specs, toy_settings(tmp_path), skip_failed=True) as box:
            assert box.servers == ("ok",)
            assert set(box.skipped) == {"bad", "outside"}
            assert "refusing to start" in box.skipped["bad"]
            assert "outside the allowed roots" in box.skipped["outside"]
            assert (await box.call("add", '{"a": 2, "b": 3}')).text == "5"
        with pytest.raises(McpServerFailed, match="none of them started") as info:
            async with open_toolbox(specs[1:], toy_settings(tmp_path), skip_failed=True):
                pytest.fail("the toolbox must not open")
    assert "bad" in info.value.server
    assert "outside" in info.value.server
    assert set(child_pids()) <= before


@pytest.mark.parametrize("mode", ["hang", "noise"])
async def test_a_server_that_hangs_in_initialize_times_out(tmp_path: Path, mode: str) -> None:
    before, fds = set(child_pids()), open_fds()
    settings = toy_settings(tmp_path, start_timeout_s=0.5)
    with trio.fail_after(30), pytest.raises(McpServerFailed) as info:
        async with open_toolbox([toy_spec(mode=mode)], settings):
            pytest.fail("the toolbox must not open")
    assert "did not start, initialize and list its tools within 0.5 s" in info.value.reason
    assert f"broken: hanging (mode={mode})" in info.value.reason
    assert set(child_pids()) <= before
    assert open_fds() <= fds


async def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    spec = ServerSpec(name="ghost", transport="stdio", command=str(tmp_path / "no-such-binary"))
    with trio.fail_after(30), pytest.raises(McpServerFailed, match="No such file or directory"):
        async with open_toolbox([spec], toy_settings(tmp_path)):
            pytest.fail("the toolbox must not open")


async def test_a_working_directory_outside_the_roots_is_refused_before_spawning(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    before = set(child_pids())
    spec = toy_spec(cwd=tmp_path)
    with trio.fail_after(10), pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        async with open_toolbox([toy_spec("fine"), spec], toy_settings(root)):
            pytest.fail("the toolbox must not open")
    assert set(child_pids()) <= before
    with pytest.raises(ValueError, match="named more than once"):
        async with open_toolbox([toy_spec(), toy_spec()], toy_settings(root)):
            pytest.fail("the toolbox must not open")


async def test_probe_and_the_registry_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    config = write_mcp_json(
        tmp_path / "mcp.json",
        {
            "good": toy_entry(cwd="work", env={"TOKEN": "${TOKEN}"}),
            "broken": toy_entry("exit"),
        },
    )
    registry = McpRegistry(
        toy_settings(tmp_path, mcp_config=str(config)), environ={"TOKEN": "s3cret"}
    )
    settings = toy_settings(tmp_path)
    with trio.fail_after(30):
        assert await probe(registry.get("good"), settings) is None
        reason = await probe(registry.get("broken"), settings)
        assert reason is not None
        assert "MCP server 'broken' failed" in reason
        async with open_toolbox(list(registry.servers().values())[:1], settings) as box:
            inside = await box.call("read_file", json.dumps({"path": str(config)}))
            pid = await server_pid(box)
    await gone(pid)
    assert '"mcpServers"' in inside.text  # the server ran in work/, the file is in the root


async def test_streamable_http_server_with_headers(tmp_path: Path) -> None:
    token = "http-s3cret"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            [base] = await nursery.start(partial(serve_http, toy_app, port=0, token=token))
            url = f"{base}/mcp"
            authorized = ServerSpec(
                name="remote",
                transport="http",
                url=url,
                headers={"Authorization": f"Bearer {token}"},
            )
            async with open_toolbox([authorized], toy_settings(tmp_path)) as box:
                assert (await box.call("add", '{"a": 20, "b": 22}')).text == "42"
            anonymous = ServerSpec(name="anon", transport="http", url=url)
            reason = await probe(anonymous, toy_settings(tmp_path, start_timeout_s=5))
            assert reason is not None
            assert "MCP server 'anon' failed" in reason
            assert "HTTP 401 - the server wants credentials the entry does not carry" in reason
            assert "LM Studio keeps that token" in reason  # F12: not blamed on headers
            wrong = ServerSpec(
                name="wrong", transport="http", url=url, headers={"Authorization": "Bearer x"}
            )
            reason = await probe(wrong, toy_settings(tmp_path, start_timeout_s=5))
            assert reason is not None
            assert "HTTP 401 - check the headers in mcp.json" in reason
            assert token not in reason
            nursery.cancel_scope.cancel()


# The SDK's pre-2026 HTTP path leaves its response streams unclosed (see sessions._connect):
# the garbage-collected generators are its, not this test's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_closing_an_http_session_is_bounded_when_the_delete_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "HTTP_CLOSE_TIMEOUT_S", 0.5)
    app = build_http_app(toy_app, host="127.0.0.1", token=None)
    deletes: list[str] = []

    async def legacy_hanging_on_delete(scope: Any, receive: Any, send: Any) -> None:
        """The toy server as a pre-2026 one (sessions, closed by DELETE) that never closes."""
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["method"] == "DELETE":
            deletes.append(scope["path"])
            await trio.sleep_forever()  # the server never answers the session's close
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        if b"server/discover" in b"".join(m.get("body", b"") for m in messages):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        replay = iter(messages)

        async def receive_again() -> Any:
            return next(replay, None) or await receive()

        await app(scope, receive_again, send)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            serve = partial(
                _serve_asgi,
                legacy_hanging_on_delete,
                host="127.0.0.1",
                port=0,
                shutdown_trigger=None,
            )
            [base] = await nursery.start(serve)
            spec = ServerSpec(name="remote", transport="http", url=f"{base}/mcp")

            async def failing_block() -> None:
                async with open_toolbox([spec], toy_settings(tmp_path)) as box:
                    assert (await box.call("add", '{"a": 1, "b": 2}')).text == "3"
                    raise KeyError("from the block")

            with pytest.raises(KeyError, match="from the block"):  # and the error survives
                await failing_block()
            closing = trio.current_time()
            async with open_toolbox([spec], toy_settings(tmp_path)) as box:
                assert (await box.call("add", '{"a": 2, "b": 2}')).text == "4"
                closing = trio.current_time()
            elapsed = trio.current_time() - closing
            nursery.cancel_scope.cancel()
    # The normal exit tried to close its session, and gave up; the exit by an error
    # is a cancellation, which abandons the close at once (no DELETE is sent).
    assert deletes == ["/mcp"]
    assert 0.4 <= elapsed < 5


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "root" / "repo"
    repo.mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("hello\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    (repo / "b.txt").write_text("new file\n")
    return repo


async def test_published_mcp_server_git(git_repo: Path, tmp_path: Path) -> None:
    root = git_repo.parent
    spec = ServerSpec(
        name="git",
        transport="stdio",
        command=str(GIT_SERVER),
        args=("--repository", str(git_repo)),
    )
    repo = json.dumps(str(git_repo))
    before = set(child_pids())
    with trio.fail_after(60):
        async with open_toolbox([spec], toy_settings(root)) as box:
            spawned = set(child_pids()) - before
            assert len(spawned) == 1
            assert {"git_status", "git_add", "git_log", "git_diff_unstaged"} <= set(
                box.tool_names()
            )
            status = await box.call("git_status", f'{{"repo_path": {repo}}}')
            added = await box.call("git_add", f'{{"repo_path": {repo}, "files": ["b.txt"]}}')
            log = await box.call("git_log", f'{{"repo_path": {repo}, "max_count": 5}}')
            outside = await box.call("git_status", json.dumps({"repo_path": str(tmp_path)}))
            dotdot = await box.call("git_status", json.dumps({"repo_path": f"{git_repo}/../.."}))
            missing = await box.call("git_status", "{}")
        for pid in spawned:
            await gone(pid)
    assert not status.is_error
    assert "b.txt" in status.text
    assert not added.is_error
    assert "first" in log.text
    for refused in (outside, dotdot):
        assert refused.is_error
        assert "outside the allowed roots" in refused.text
    assert missing.is_error
    assert "'repo_path' is a required property" in missing.text


# -- the schema bridge, without a server --


def test_exposed_names_are_valid_unique_and_short() -> None:
    pairs = [("fs", "read.file"), ("fs", "read_file"), ("my server", "x" * 80), ("fs", "")]
    assert exposed_names(pairs[:2], namespaced=False) == ["read_file", "read_file_2"]
    names = exposed_names(pairs, namespaced=True)
    assert names[:2] == ["fs__read_file", "fs__read_file_2"]
    assert names[2] == ("my_server__" + "x" * 80)[:64]
    assert names[3] == "fs__tool"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n) for n in names)


@pytest.mark.parametrize(
    ("schema", "arguments", "errors"),
    [
        (None, {"anything": 1}, []),
        ({"$schema": "http://json-schema.org/draft-07/schema#", "properties": {}}, {}, []),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.test/x"}}}, {"a": 1}, []),
        ({"type": "object", "properties": {"a": {"type": "nonsense"}}}, {"a": 1}, []),
        ({"type": "object", "required": ["q"]}, {}, ["$: 'q' is a required property"]),
    ],
)
def test_odd_server_schemas_never_break_a_call(
    schema: Any, arguments: dict[str, Any], errors: list[str]
) -> None:
    tool = BridgedTool.build(name="t", server="s", remote_name="t", description="", schema=schema)
    assert tool.parameters["type"] == "object"
    assert isinstance(tool.parameters["properties"], dict)
    assert "$schema" not in tool.parameters
    assert tool.description == "The t tool of MCP server s."
    assert schema_errors(tool.validator, arguments) == errors


# -- the result bound, without a server --


def test_a_result_is_cut_before_its_pieces_are_joined() -> None:
    result = tool_results.bounded(["a" * 10, "\x00b" * 10, "never copied" * 1000], 15)
    assert result.truncated
    assert not result.is_error
    # 10 a's, the newline, then 4 of the second block's characters with the NULs dropped.
    assert result.text == "a" * 10 + "\nbb\n[result cut: showing 15 of 12032 characters; " + (
        "ask for a smaller part if you need the rest]"
    )
    whole = tool_results.bounded(["one", "two"], 7)
    assert (whole.text, whole.truncated) == ("one\ntwo", False)


def test_a_cut_error_is_scrubbed_and_never_ends_in_part_of_a_secret() -> None:
    secret = "s3cret-value"
    cut = tool_results.bounded(
        [f"{secret} and then {secret}"],
        len(f"Tool t: {secret} and then s3cr"),
        lead="Tool t: ",
        is_error=True,
        secrets=(secret,),
    )
    assert cut.truncated
    assert cut.text.startswith(f"Tool t: {REDACTED} and then \n[result cut: showing")
    assert "s3cr" not in cut.text
    whole = tool_results.bounded([secret], 100, lead="Tool t: ", is_error=True, secrets=(secret,))
    assert whole.text == f"Tool t: {REDACTED}"
    # Success results are data for the model: not scrubbed.
    assert tool_results.bounded([secret], 100, secrets=(secret,)).text == secret


def test_every_kind_of_content_block_becomes_text_for_the_model() -> None:
    result = mcp_types.CallToolResult(
        content=[
            mcp_types.TextContent(type="text", text="plain"),
            mcp_types.AudioContent(data="QUJD", mime_type="audio/wav"),
            mcp_types.ResourceLink(name="notes", uri="file:///notes.md"),
            mcp_types.EmbeddedResource(
                resource=mcp_types.TextResourceContents(uri="file:///a.txt", text="inside")
            ),
            mcp_types.EmbeddedResource(
                resource=mcp_types.BlobResourceContents(uri="file:///b.bin", blob="AAAA")
            ),
        ]
    )
    assert result_parts(result) == [
        "plain",
        "[audio: audio/wav, 4 base64 characters, not shown]",
        "[resource link: file:///notes.md (notes)]",
        "[resource file:///a.txt]\ninside",
        "[resource file:///b.bin: binary, not shown]",
    ]


def test_a_result_with_only_structured_content_is_shown_as_json() -> None:
    result = mcp_types.CallToolResult(content=[], structured_content={"sum": 3, "ok": True})
    assert result_parts(result) == ['{"sum": 3, "ok": true}']
