"""The shared error mapping, the SSE decoder and the lms output parsing, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.http_errors import (
    EndpointNotSupported,
    ErrorKind,
    ServerAnswerError,
    check_answer,
    classify,
    error_for,
    parse_error_body,
)
from orchestrator.backends.lmstudio_cli import resolve_cli
from orchestrator.backends.lmstudio_cli_text import CliResult, cli_error, parse_json_array
from orchestrator.backends.lmstudio_home import lmstudio_home
from orchestrator.errors import (
    BackendAuthError,
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    ModelNotLoaded,
)
from orchestrator.inference.sse import SSEDecoder, SSEEvent

WHAT = "LM Studio at http://h:1: GET /x"
GUARDRAIL = (
    "Model loading was stopped due to insufficient system resources. Under the current "
    "settings, this model requires approximately 22.92 GB of memory."
)


def answer(status: int, message: str, code: str | None = None) -> ServerAnswerError:
    return ServerAnswerError(status=status, message=message, code=code)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (answer(401, "An LM Studio API token is required"), ErrorKind.AUTH),
        (answer(400, "bad", code="invalid_api_key"), ErrorKind.AUTH),
        (answer(403, "forbidden"), ErrorKind.AUTH),
        (answer(400, GUARDRAIL), ErrorKind.GUARDRAIL),
        (answer(500, GUARDRAIL), ErrorKind.GUARDRAIL),
        (
            answer(200, "Unexpected endpoint or method. (GET /api/v1/models)"),
            ErrorKind.UNSUPPORTED_ROUTE,
        ),
        (answer(404, "Cannot GET /api/v1/models"), ErrorKind.UNSUPPORTED_ROUTE),
        (
            answer(400, 'Invalid model identifier "o4-mini". Please specify ...'),
            ErrorKind.MODEL_NOT_FOUND,
        ),
        (
            answer(404, 'Model "local model" not found. Please specify a valid model.'),
            ErrorKind.MODEL_NOT_FOUND,
        ),
        (answer(400, "whatever", code="model_not_found"), ErrorKind.MODEL_NOT_FOUND),
        (answer(400, "No models loaded. Please load a model ..."), ErrorKind.NO_MODEL_LOADED),
        (answer(400, "Model unloaded"), ErrorKind.MODEL_UNLOADED),
        (answer(500, "Model is unloaded."), ErrorKind.MODEL_UNLOADED),
        (answer(500, "Internal server error"), ErrorKind.SERVER),
        (answer(503, ""), ErrorKind.SERVER),
        (answer(400, "'response_format.type' must be 'json_schema' or 'text'"), ErrorKind.REJECTED),
        (
            answer(200, "Trying to keep the first 15857 tokens when context the overflows."),
            ErrorKind.CONTEXT_OVERFLOW,
        ),
        (answer(400, "Context size has been exceeded."), ErrorKind.CONTEXT_OVERFLOW),
        (answer(400, "Prediction history node with id 'resp_1' not found"), ErrorKind.REJECTED),
    ],
)
def test_classify(error: ServerAnswerError, kind: ErrorKind) -> None:
    assert classify(error) is kind


def test_both_error_body_shapes_are_understood() -> None:
    flat = parse_error_body(400, {"error": "No models loaded."}, b"")
    assert flat == ServerAnswerError(status=400, message="No models loaded.")
    nested = parse_error_body(
        400,
        {
            "error": {
                "message": "Invalid model identifier",
                "type": "invalid_request_error",
                "code": "model_not_found",
            }
        },
        b"",
    )
    assert nested is not None
    assert (nested.message, nested.code, nested.type) == (
        "Invalid model identifier",
        "model_not_found",
        "invalid_request_error",
    )
    # An error object without a message still yields something readable.
    odd = parse_error_body(500, {"error": {"code": 7}}, b"")
    assert odd is not None
    assert "7" in odd.message
    assert parse_error_body(200, {"data": []}, b"") is None
    assert parse_error_body(200, {"error": None}, b"") is None


def test_200_with_error_key_is_an_error_not_success() -> None:
    raw = b'{"error":"Unexpected endpoint or method. (POST /chat/completions)"}'
    with pytest.raises(EndpointNotSupported, match="Unexpected endpoint"):
        check_answer(200, "application/json", raw, what=WHAT, token_sent=False)
    with pytest.raises(BackendRejected, match="context"):
        check_answer(
            200,
            "application/json",
            b'{"error":"context length exceeded"}',
            what=WHAT,
            token_sent=False,
        )


def test_plain_text_error_bodies_are_classified() -> None:
    raw = (
        b"No models loaded. Please load a model in the developer page or use the `lms load` command"
    )
    with pytest.raises(ModelNotLoaded, match="No models loaded"):
        check_answer(404, "text/plain", raw, what=WHAT, token_sent=False)
    with pytest.raises(BackendServerError, match="boom"):
        check_answer(502, "text/plain", b"boom", what=WHAT, token_sent=False)


@pytest.mark.parametrize(
    ("raw", "content_type", "shape"),
    [
        (b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>", "text/html", "HTML"),
        (b'{"data": [', "application/json", "non-JSON"),
        (b"\x00\x01\x02", "application/octet-stream", "non-JSON"),
        (b"", "application/json", "non-JSON"),
    ],
)
def test_success_that_is_not_json_is_a_bounded_protocol_error(
    raw: bytes, content_type: str, shape: str
) -> None:
    with pytest.raises(BackendProtocolError, match=shape) as info:
        check_answer(200, content_type, raw, what=WHAT, token_sent=False)
    assert len(str(info.value)) < 400


def test_auth_errors_say_what_to_do_and_never_echo_the_token() -> None:
    error = answer(401, "An LM Studio API token is required")
    with pytest.raises(BackendAuthError, match="none was sent") as missing:
        check_answer(
            401,
            "application/json",
            b'{"error":"An LM Studio API token is required"}',
            what=WHAT,
            token_sent=False,
        )
    assert "LMSTUDIO_API_TOKEN" in str(missing.value)
    assert classify(error) is ErrorKind.AUTH
    with pytest.raises(BackendAuthError, match="rejected the API token"):
        check_answer(403, "application/json", b'{"error":"bad token"}', what=WHAT, token_sent=True)


def test_huge_messages_are_bounded() -> None:
    raw = b'{"error": "' + b"x" * 100_000 + b'"}'
    with pytest.raises(BackendRejected) as info:
        check_answer(400, "application/json", raw, what=WHAT, token_sent=False)
    assert len(str(info.value)) < 1200


# -- SSE --


def test_sse_decoder_splits_events_across_arbitrary_chunks() -> None:
    stream = (
        b'data: {"a":1}\n\nevent: response.created\ndata: {"b":2}\r\n\r\n'
        b": keep-alive\n\ndata: [DONE]\n\n"
    )
    decoder = SSEDecoder(what=WHAT)
    events: list[SSEEvent] = []
    for i in range(len(stream)):
        events += decoder.feed(stream[i : i + 1])
    events += decoder.close()
    assert events == [
        SSEEvent(data='{"a":1}'),
        SSEEvent(data='{"b":2}', event="response.created"),
        SSEEvent(data="[DONE]"),
    ]


def test_sse_decoder_joins_multiline_data_and_flushes_at_close() -> None:
    decoder = SSEDecoder(what=WHAT)
    assert decoder.feed(b"data: one\ndata: two\n") == []
    assert decoder.close() == [SSEEvent(data="one\ntwo")]


def test_sse_decoder_refuses_an_endless_line() -> None:
    decoder = SSEDecoder(what=WHAT, max_event_bytes=1000)
    with pytest.raises(BackendProtocolError, match="exceeds 1000 bytes"):
        decoder.feed(b"data: " + b"x" * 2000)
    decoder = SSEDecoder(what=WHAT, max_event_bytes=1000)
    for _ in range(10):
        decoder.feed(b"data: " + b"y" * 100 + b"\n")
    with pytest.raises(BackendProtocolError, match="exceeds"):
        decoder.feed(b"data: " + b"y" * 100 + b"\n")


# -- lms output --


def cli(returncode: int, stderr: bytes = b"", stdout: bytes = b"") -> CliResult:
    return CliResult(argv=("lms",), returncode=returncode, stdout=stdout, stderr=stderr)


def test_cli_errors_keep_the_message_and_pick_the_kind() -> None:
    guardrail = cli(
        1,
        b"Waking up LM Studio service...\nllmster started (PID: 24162).\nError: "
        + GUARDRAIL.encode(),
    )
    err = cli_error(guardrail, what="`lms load x`")
    assert isinstance(err, BackendRejected)
    assert "requires approximately 22.92 GB" in str(err)
    assert "Waking up" not in str(err)
    # The real texts of lms src/createClient.ts @07b7252 (findings F3): transient.
    for down in (
        b"Error: Failed to start or connect to local LM Studio API server.",
        b"Error: The server does not appear to be running at 10.0.0.5:1234. Please make sure "
        b"the server is running and accessible at the specified address.",
    ):
        unreachable = cli_error(cli(1, down), what="w")
        assert isinstance(unreachable, BackendUnreachable)
        assert unreachable.transient
    # lms src/subcommands/load.ts @07b7252: a titled block, no "Error:" prefix (F15).
    not_found = b'Model not found\n\nNo model found that matches model key "x".\n\n'
    not_found += b"To see a list of all downloaded models, run:\n\n    lms ls\n"
    assert isinstance(cli_error(cli(1, not_found), what="w"), ModelNotLoaded)
    assert isinstance(cli_error(cli(1, b"Error: Request timed out"), what="w"), BackendTimeout)
    runtime = cli_error(
        cli(1, b"Error: No runtime found for model format gguf, not found"), what="w"
    )
    assert not isinstance(runtime, ModelNotLoaded)
    generic = cli_error(cli(2, b"\x1b[31msomething odd\x1b[0m"), what="w")
    assert isinstance(generic, BackendRejected)
    assert "something odd" in str(generic)
    assert "\x1b" not in str(generic)
    assert "exit status 3" in str(cli_error(cli(3), what="w"))


def test_context_overflow_says_what_to_do() -> None:
    """F5: BT#546's text (HTTP 400; 200 with an error on 0.4.21, BT#2322) is a clear error."""
    text = (
        "Trying to keep the first 111490 tokens when context the overflows. However, the model "
        "is loaded with context length of only 32768 tokens, which is not enough."
    )
    err = error_for(answer(200, text), what=WHAT, token_sent=False)
    assert isinstance(err, BackendRejected)
    assert str(err).startswith("the prompt does not fit the context the model is loaded with")
    assert "only 32768 tokens" in str(err)


def test_json_array_output_tolerates_a_banner_and_refuses_garbage() -> None:
    assert parse_json_array(b'Waking up LM Studio service...\n[{"a": 1}]\n', what="w") == [{"a": 1}]
    banner = b'[INFO] Waking up LM Studio service...\n  [{"a": [1]}]\n'
    assert parse_json_array(banner, what="w") == [{"a": [1]}]
    with pytest.raises(BackendProtocolError, match="expected a JSON array"):
        parse_json_array(b"No models are currently loaded.", what="w")
    with pytest.raises(BackendProtocolError, match="malformed JSON"):
        parse_json_array(b"[{", what="w")


def test_resolve_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", str(home))
    assert resolve_cli(None) is None
    assert resolve_cli("/definitely/not/here/lms") is None
    installed = home / ".lmstudio" / "bin" / "lms"
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\n")
    installed.chmod(0o755)
    assert resolve_cli(None) == str(installed)
    assert resolve_cli(str(installed)) == str(installed)


def _install(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_lms_is_found_under_lm_studios_real_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F6: the home pointer first, then the legacy ~/.cache/lm-studio, then ~/.lmstudio."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    default = _install(tmp_path / ".lmstudio" / "bin" / "lms")
    assert lmstudio_home() == tmp_path / ".lmstudio"
    legacy = _install(tmp_path / ".cache" / "lm-studio" / "bin" / "lms")
    assert resolve_cli(None) == str(legacy)
    moved = _install(tmp_path / "elsewhere" / "lms-home" / "bin" / "lms")
    (tmp_path / ".lmstudio-home-pointer").write_text(f"{moved.parent.parent}\n")
    assert resolve_cli(None) == str(moved)
    (tmp_path / ".lmstudio-home-pointer").write_text("")
    assert resolve_cli(None) == str(legacy)
    assert default.exists()
