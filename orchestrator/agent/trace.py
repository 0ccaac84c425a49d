"""What an agent run returns: the answer, the reasoning, and a compact trace.

The trace is small on purpose (it goes back to the calling model): per tool
call only its name, round, outcome and duration, never its arguments or
output; errors are one-line excerpts. Example (``msgspec.json.encode``)::

    {"model": "qwen/qwen3-4b", "api": "chat", "servers": ["git"], "rounds": 3,
     "tool_calls": [{"round": 1, "name": "git_status", "ok": true, "duration_s": 0.041},
                    {"round": 2, "name": "git_log", "ok": false, "duration_s": 0.012,
                     "error": "argument 'max_count': expected integer"}],
     "errors": [], "stop_reason": "answer", "finish_reason": "stop",
     "elapsed_s": 2.317, "dropped_outputs": 0}
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["AgentResult", "AgentTrace", "Api", "StopReason", "ToolCallTrace"]

Api = Literal["chat", "responses"]
"""The wire mode: chat completions with ``tools``, or the stateful Responses API."""

StopReason = Literal[
    "answer", "length", "content_filter", "max_rounds", "deadline", "context_budget", "error"
]
"""Why a run ended.

- ``answer``: the model answered without calling a tool (``finish_reason`` ``stop``).
- ``length``: the answer was cut by the token limit (``max_tokens``); it is partial.
- ``content_filter``: the server withheld or cut the answer.
- ``max_rounds``: the round limit was reached while the model still called tools.
- ``deadline``: the overall deadline passed; the answer is whatever text there was.
- ``context_budget``: the conversation outgrew ``context_budget_chars`` even after
  dropping old tool outputs (chat) or at all (responses, whose history is on the server).
- ``error``: the model server failed mid-run; ``errors`` says how.
"""


class ToolCallTrace(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tool call the model made.

    Attributes:
        round: the round (1-based) whose model answer asked for the call.
        name: the tool name as the model saw it (``server__tool`` when namespaced).
        ok: False when the result went back to the model as an error.
        duration_s: how long the call took.
        error: a one-line excerpt of the error, when not ok.
        truncated: the result was cut to ``max_result_chars``.
    """

    round: int
    name: str
    ok: bool
    duration_s: float
    error: str | None = None
    truncated: bool = False


class AgentTrace(msgspec.Struct, kw_only=True):
    """How a run went.

    Attributes:
        model: the model key that ran the task.
        api: the wire mode used.
        servers: the MCP servers whose tools were offered.
        rounds: model requests made.
        tool_calls: every tool call, in the order the model made them.
        errors: one-line notes on what went wrong (tool errors included).
        stop_reason: why the run ended (see :data:`StopReason`).
        finish_reason: the last model answer's ``finish_reason`` (responses:
            ``completed`` / ``incomplete`` status), if any answer came.
        elapsed_s: wall time of the run, model wait included.
        dropped_outputs: old tool outputs replaced by a note to fit the context budget.
    """

    model: str
    api: Api
    servers: tuple[str, ...]
    rounds: int = 0
    tool_calls: list[ToolCallTrace] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)
    stop_reason: StopReason = "error"
    finish_reason: str | None = None
    elapsed_s: float = 0.0
    dropped_outputs: int = 0

    @property
    def success(self) -> bool:
        """The model gave a complete answer."""
        return self.stop_reason == "answer"


class AgentResult(msgspec.Struct, kw_only=True):
    """The outcome of a run.

    Attributes:
        answer: the model's final text (partial, or empty, unless the stop reason is ``answer``).
        reasoning: the final answer's reasoning, when the model produced any.
        trace: how the run went.
    """

    answer: str
    reasoning: str | None
    trace: AgentTrace
