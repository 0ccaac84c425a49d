"""JSON log lines parse, carry the documented fields, hide secrets, never fail a request."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from mcp import Client

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import BackendRejected, BreakerOpen, Config, VerifyFailed, open_orchestrator
from orchestrator.feed import TransitionEvent
from orchestrator.logs import REDACTED, configure_logging, dropped_lines, register_secret
from orchestrator.testing import FakeBackend

from .support import QUICK, LogCapture, restore_test_logging


async def test_every_lifecycle_event_is_one_json_line_with_its_fields(
    logs: LogCapture, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(["a", "b", "c"])
    backend.script("a").fail_times = 1
    backend.script("b").never_listed = True
    backend.script("c").fail_times = 2
    backend.script("c").error = lambda: BackendRejected("not enough memory (scripted)")
    async with open_orchestrator(backend, QUICK) as orch, orch.watch() as feed:
        await orch.ensure_loaded("a", ttl_s=10)
        await trio.sleep(11)  # idle expiry
        with pytest.raises(VerifyFailed):
            await orch.ensure_loaded("b")
        for _ in range(2):
            with pytest.raises(BackendRejected):
                await orch.ensure_loaded("c")
        with pytest.raises(BreakerOpen):
            await orch.ensure_loaded("c")
        await trio.sleep(QUICK.breaker_cooldown_s + 1)  # cooldown over: half open
        await orch.ensure_loaded("c")  # the probe succeeds: closed
        await orch.unload("c")
        await orch.reset_breaker("b")
        changes: list[TransitionEvent] = []
        while (item := feed.get_nowait()) is not None:
            assert isinstance(item, TransitionEvent)  # nothing dropped
            changes.append(item)

    lines = logs.lines()  # every line parses as JSON
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    transitions = logs.events("transition")
    # Exactly one event per state change, in order, matching the change feed.
    assert [(t["model"], t["src"], t["dst"], t["input"]) for t in transitions] == [
        (c.model, c.src.value, c.dst.value, c.input.value) for c in changes
    ]
    # a: load+expiry; b: failed verify, cleaned up (issue 16); c: see above
    assert len(transitions) == 5 + 4 + 10
    for t in transitions:
        assert {"model", "identifier", "src", "dst", "input", "duration_s"} <= t.keys()
        assert t["identifier"] == t["model"]  # bound per actor task
        assert t["src"] != t["dst"]
        assert isinstance(t["duration_s"], float)
        assert t["duration_s"] >= 0
    expired = next(t for t in transitions if t["input"] == "IDLE_TIMEOUT")
    assert expired["duration_s"] == pytest.approx(10.0)  # time spent READY
    [retry] = logs.events("retry")
    assert (retry["model"], retry["operation"], retry["attempt"]) == ("a", "load", 1)
    assert "connection refused" in retry["error"]
    loads = {(e["model"], e["result"]) for e in logs.events("load")}
    assert loads == {("a", "ok"), ("b", "ok"), ("c", "failed"), ("c", "ok")}
    unloads = [(e["model"], e["reason"]) for e in logs.events("unload")]
    assert unloads == [("a", "idle"), ("b", "verify_failed"), ("c", "requested")]
    [opened] = logs.events("breaker_opened")
    assert (opened["model"], opened["consecutive_failures"]) == ("c", 2)
    assert "not enough memory" in opened["last_error"]
    assert [e["model"] for e in logs.events("breaker_half_open")] == ["c"]
    assert [e["model"] for e in logs.events("breaker_closed")] == ["c"]
    assert [(e["model"], e["src"]) for e in logs.events("breaker_reset")] == [("b", "UNLOADED")]
    # Bindings stay in the actor's tasks: nothing logged outside carries a model by accident.
    structlog.get_logger("test").info("outside")
    assert "model" not in logs.events("outside")[0]


async def test_durations_are_told_in_whole_microseconds(
    logs: LogCapture, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(["a"])
    backend.script("a").load_delay_s = 1.23456789  # finer than a microsecond
    async with open_orchestrator(backend, QUICK) as orch, orch.watch() as feed:
        await orch.ensure_loaded("a")
        changes = []
        while (item := feed.get_nowait()) is not None:
            assert isinstance(item, TransitionEvent)
            changes.append(item)
    [loading] = [c for c in changes if c.src.value == "LOADING"]
    assert loading.duration_s == 1.234568  # the time spent LOADING, in the change feed
    [logged] = [t for t in logs.events("transition") if t["src"] == "LOADING"]
    assert logged["duration_s"] == 1.234568  # and in its log line
    [load] = logs.events("load")
    assert load["duration_s"] == 1.234568  # as the load's own line says


def test_secrets_are_redacted_at_any_depth_and_in_text(logs: LogCapture) -> None:
    register_secret("lmstudio-secret-value-123")
    log = structlog.get_logger("test")
    try:
        raise RuntimeError("request failed with Authorization: Bearer abc.def-123 for user")
    except RuntimeError:
        log.exception(
            "boom",
            api_key="sk-top",
            headers={"Authorization": "Bearer xyz", "Accept": "json"},
            nested=[{"token": "t0k"}, "url?api_key=k3y&x=1", ("password=hunter2",)],
            note="the configured lmstudio-secret-value-123 leaked into text",
            max_tokens=128,
        )
    [line] = logs.events("boom")
    text = json.dumps(line)
    for secret in ("sk-top", "xyz", "t0k", "k3y", "hunter2", "abc.def-123", "secret-value-123"):
        assert secret not in text, secret
    assert line["api_key"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert line["nested"][0] == {"token": REDACTED}
    assert line["nested"][1] == f"url?api_key={REDACTED}&x=1"
    assert line["max_tokens"] == 128  # not a secret
    assert "RuntimeError" in line["exception"]
    assert f"Bearer {REDACTED}" in line["exception"]


def test_stdlib_records_are_redacted_json_lines_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("debug", secrets=("registered-secret-456",))  # stderr, not a tty: JSON
    library = logging.getLogger("hypercorn.error")  # hypercorn's; the MCP SDK's are alike
    try:
        try:
            raise ValueError("upstream said api_key='k-in-exc'")
        except ValueError:
            library.warning(
                "rejected %s with Authorization: Bearer sk-live-789",
                "registered-secret-456",
                exc_info=True,
            )
        library.debug("token_count=%d", 12)
    finally:
        restore_test_logging()
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is the MCP wire in stdio mode
    lines = [json.loads(text) for text in captured.err.splitlines()]  # every line is JSON
    [line, debug] = [line for line in lines if line.get("logger") == "hypercorn.error"]
    assert line["level"] == "warning"
    assert line["timestamp"]
    assert line["event"] == f"rejected {REDACTED} with Authorization: Bearer {REDACTED}"
    assert "ValueError" in line["exception"]
    assert f"api_key='{REDACTED}'" in line["exception"]
    text = json.dumps(line)
    for secret in ("registered-secret-456", "sk-live-789", "k-in-exc"):
        assert secret not in text, secret
    assert (debug["event"], debug["level"]) == ("token_count=12", "debug")


def test_library_info_lines_are_dropped_unless_debugging() -> None:
    capture = LogCapture()
    configure_logging("info", stream=capture.stream, json=True)
    try:
        library = logging.getLogger("tests.library")
        library.info("chatter")
        library.warning("worth seeing")
        structlog.get_logger("test").info("ours")
    finally:
        restore_test_logging()
    assert [line["event"] for line in capture.lines()] == ["worth seeing", "ours"]


@dataclass
class _Settings:
    api_key: str
    retries: int


class _Opaque:
    def __repr__(self) -> str:
        return "<Opaque password=hunter4 token='t-opaque'>"


def test_values_of_other_types_are_logged_as_their_redacted_repr(logs: LogCapture) -> None:
    deep: Any = "Bearer sk-deep"
    for _ in range(12):
        deep = {"level": deep}
    structlog.get_logger("test").warning(
        "objects",
        settings=_Settings("sk-dataclass", 3),
        tags={"password=hunter3"},
        opaque=_Opaque(),
        deep=deep,
        count=3,
        ratio=0.5,
        flag=True,
        missing=None,
    )
    [line] = logs.events("objects")
    assert line["settings"] == f"_Settings(api_key='{REDACTED}', retries=3)"
    assert line["tags"] == f"{{'password={REDACTED}'}}"
    assert line["opaque"] == f"<Opaque password={REDACTED} token='{REDACTED}'>"
    assert "sk-deep" not in json.dumps(line["deep"])
    assert (line["count"], line["ratio"], line["flag"], line["missing"]) == (3, 0.5, True, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"api_key": "abc def"}', f'{{"api_key": "{REDACTED}"}}'),
        ("token='abc'", f"token='{REDACTED}'"),
        ("authorization=xyz", f"authorization={REDACTED}"),
        ("Authorization: Basic dXNlcg", f"Authorization: Basic {REDACTED}"),
        ("cookie: sess-1; x=1", f"cookie: {REDACTED}"),
        ("Cookie: theme=dark; sid=s3cret\nnext", f"Cookie: {REDACTED}\nnext"),
        ('{"h": "Cookie: a=b; sid=s3cret", "n": 1}', f'{{"h": "Cookie: {REDACTED}", "n": 1}}'),
        ('{"cookie": "a=b; sid=s3", "n": 1}', f'{{"cookie": "{REDACTED}", "n": 1}}'),
        ("cookie=c1, theme=dark", f"cookie={REDACTED}, theme=dark"),
        ("Set-Cookie=sess-2", f"Set-Cookie={REDACTED}"),
        ("private_key='-----BEGIN'", f"private_key='{REDACTED}'"),
        ("auth: p4ss", f"auth: {REDACTED}"),
        ("X-Api-Key: k1 accessToken=k2", f"X-Api-Key: {REDACTED} accessToken={REDACTED}"),
        ('{\\"client_secret\\": \\"s1\\"}', f'{{\\"client_secret\\": \\"{REDACTED}\\"}}'),
        ("token_count=12 prompt_tokens=5", "token_count=12 prompt_tokens=5"),
        ('"max_tokens": 128, "total_tokens": 9', '"max_tokens": 128, "total_tokens": 9'),
        ("tokenizer=bpe author=ann auth_type=bearer", "tokenizer=bpe author=ann auth_type=bearer"),
        ("http://host.example:8080/v1", "http://host.example:8080/v1"),
        ("url=https://h.example/?token=t1&q=1", f"url=https://h.example/?token={REDACTED}&q=1"),
        ('"note": "api_key=k9"', f'"note": "api_key={REDACTED}"'),
    ],
)
def test_secret_pairs_in_text_are_redacted_and_counts_are_not(
    logs: LogCapture, text: str, expected: str
) -> None:
    structlog.get_logger("test").warning("text", note=text, prompt_tokens=5, token_count=7)
    [line] = logs.events("text")
    assert line["note"] == expected
    assert (line["prompt_tokens"], line["token_count"]) == (5, 7)  # keys decide the same way


class _Broken(io.TextIOBase):
    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def write(self, s: str) -> int:
        raise self.error("the sink is gone")

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("sink", ["oserror", "valueerror", "closed"])
async def test_a_broken_log_sink_never_fails_a_request(sink: str) -> None:
    stream: Any
    if sink == "closed":
        stream = io.StringIO()
        stream.close()
    else:
        stream = _Broken(OSError if sink == "oserror" else ValueError)
    configure_logging("debug", stream=stream)
    try:
        before = dropped_lines()
        backend = FakeBackend(["a"])
        backend.script("a").fail_times = 1
        config = Config(retry_initial_s=0.0, retry_jitter_s=0.0)
        with trio.fail_after(10):
            async with open_orchestrator(backend, config) as orch:
                status = await orch.ensure_loaded("a")
                await orch.unload("a")
        assert status.state.value == "READY"
        assert dropped_lines() > before  # transitions, the retry, load and unload were lost
        before = dropped_lines()
        logging.getLogger("tests.library").warning("a library line")  # does not raise
        assert dropped_lines() == before + 1
    finally:
        restore_test_logging()


def test_a_terminal_gets_readable_text_not_json() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    configure_logging("info", stream=stream)
    try:
        structlog.get_logger("test").info("hello", model="m", api_key="sk-1")
        structlog.get_logger("test").debug("hidden")  # below the level
    finally:
        restore_test_logging()
    out = stream.getvalue()
    assert "hello" in out
    assert "hidden" not in out
    assert "sk-1" not in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


async def test_an_inference_error_is_one_warning_with_its_fields(logs: LogCapture) -> None:
    async with (
        open_orchestrator(FakeBackend(["real"])) as orch,
        Client(build_server(orch, settings=FrontendSettings())) as client,
    ):
        with trio.fail_after(30):
            result = await client.call_tool(
                "chat_completion",
                {"model": "missing", "messages": [{"role": "user", "content": "hi"}]},
            )
    assert result.is_error
    [line] = logs.events("inference_error")
    assert line["level"] == "warning"
    assert (line["model"], line["endpoint"], line["attempt"]) == ("(other)", "chat", 1)
    assert line["error_type"] == "UnknownModel"
    assert "missing" in line["error"]
