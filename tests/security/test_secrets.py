"""Secrets stay secret: the LM Studio API token never reaches a log line or a tool answer.

The server runs over a simulator that requires an API token, with every log
(structlog at debug, and the standard library's: the SDK, httpx, httpcore,
hypercorn) captured. Neither the right token nor a wrong one may appear in
the logs, in a tool result, or in a tool error, and the token is not
registered with the redactor, so this proves nothing logs it in the first
place. The redactor itself is then checked on the shapes a credential takes
in text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult

from orchestrator.logs import REDACTED, redact

from .capture import captured_logs
from .server_thread import serve_in_thread

TOKEN = "sk-lm-SECRET-0f3c9a7e5d"
WRONG = "sk-lm-WRONG-77aa01bb"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything logged, structlog and stdlib alike, at debug level."""
    with captured_logs() as out:
        yield out


def dump(result: CallToolResult) -> str:
    return json.dumps(result.model_dump(mode="json"))


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("list_models", {"refresh": True}),
    ("health_check", {}),
    ("load_model", {"model": "qwen/qwen3-4b"}),
    ("chat_completion", {"prompt": "say hi"}),
    ("create_response", {"input_text": "say hi"}),
    ("generate_embeddings", {"text": "embed me"}),
    ("model_status", {}),
    ("load_model", {"model": "no/such-model"}),
    ("unload_model", {"model": "qwen/qwen3-4b"}),
]


def test_the_api_token_is_never_logged_or_returned(tmp_path: Path, logs: io.StringIO) -> None:
    with serve_in_thread(tmp_path, sim_token=TOKEN, backend_token=TOKEN) as server:
        answers = [server.call(tool, args) for tool, args in CALLS]

    assert not answers[3].is_error, dump(answers[3])  # the token works
    for answer in answers:
        assert TOKEN not in dump(answer)
    text = logs.getvalue()
    assert "chat" in text or "transition" in text  # something was logged
    assert TOKEN not in text


def test_a_rejected_token_is_reported_without_being_shown(
    tmp_path: Path, logs: io.StringIO
) -> None:
    with serve_in_thread(tmp_path, sim_token=TOKEN, backend_token=WRONG) as server:
        answers = [server.call(tool, args) for tool, args in CALLS]

    errors = [a for a in answers if a.is_error]
    assert errors  # the wrong token failed calls
    assert any("API token" in dump(e) for e in errors)
    for answer in answers:
        assert WRONG not in dump(answer)
        assert TOKEN not in dump(answer)
    assert WRONG not in logs.getvalue()
    assert TOKEN not in logs.getvalue()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("authorization: BEARER abc.def-123", "abc.def-123"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("GET http://user:hunter22secret@lmstudio.local:1234/v1/models", "hunter22secret"),
        ("https://x.example/?api_key=k-123456&q=1", "k-123456"),
        ('{"access_token": "tok-98765"}', "tok-98765"),
        ("LMSTUDIO_API_TOKEN=sk-lm-abcdef", "sk-lm-abcdef"),
    ],
)
def test_credentials_in_text_are_redacted(text: str, secret: str) -> None:
    event = redact(None, "info", {"event": "x", "detail": text, "nested": {"list": [text]}})

    assert secret not in json.dumps(event)
    assert REDACTED in event["detail"]


@pytest.mark.parametrize(
    "text",
    [
        "basic idea",
        "Token budget",
        "max_tokens=512",
        "mail me at ada@example.com",
        "prompt_tokens: 12",
    ],
)
def test_prose_and_token_counts_are_left_alone(text: str) -> None:
    assert redact(None, "info", {"event": "x", "detail": text})["detail"] == text


def test_secret_looking_keys_are_redacted_at_any_depth() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "headers": {"Authorization": "Bearer z", "X-Api-Key": "k"},
            "api_token": "t",
        },
    )

    assert event["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    assert event["api_token"] == REDACTED
