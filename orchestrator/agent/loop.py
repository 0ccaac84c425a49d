"""The agent loop: a local model works with MCP tools until the task is done, within bounds.

One implementation for both wire modes (:mod:`orchestrator.agent.wire`)::

    async with open_toolbox(specs, settings) as tools:
        result = await run_agent(orch, client, tools, "Summarise the last commit",
                                 model="qwen/qwen3-4b", settings=settings)
    print(result.answer, result.trace.stop_reason)

Each round sends the conversation to the model (which holds a lease for the
whole run); if it asks for tools, they run concurrently and their results
(errors clearly marked as such) go back to it in the wire mode's proper shape.
The run ends when the model answers without calling a tool, or at a bound:

- ``max_rounds`` model requests (default ``settings.max_rounds``; a request
  above ``settings.max_rounds_cap`` is refused); tool calls the model asks
  for in the last allowed round are not run;
- ``settings.deadline_s`` for the whole run, model load included;
- ``settings.context_budget_chars`` (see :mod:`orchestrator.agent.wire`).

A bound, or a model-server failure after the first round has started, ends
the run with a stop reason and the partial trace rather than an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

import structlog
import trio

from orchestrator.agent.settings import AgentSettings
from orchestrator.agent.trace import AgentResult, AgentTrace, Api, StopReason, ToolCallTrace
from orchestrator.agent.wire import Call, ChatWire, ResponsesWire, Turn, Wire
from orchestrator.api import Orchestrator
from orchestrator.errors import InvalidRequest, OrchestratorError, excerpt
from orchestrator.held_model import HeldModel, hold_model
from orchestrator.inference import InferenceClient, ResponsesTool, Tool

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "TOOL_ERROR_PREFIX",
    "AgentTools",
    "Progress",
    "ToolOutcome",
    "check_rounds",
    "run_agent",
]

_log = structlog.get_logger("orchestrator.agent")

TOOL_ERROR_PREFIX: Final = "TOOL ERROR: "
"""Starts every tool result that reports a failure, so the model cannot take it for data."""

DEFAULT_INSTRUCTIONS: Final = (
    "You complete the user's task using tools from these MCP servers: {servers}. "
    "Call a tool when it helps, read its result, and continue. A result starting with "
    f"'{TOOL_ERROR_PREFIX.strip()}' means the call failed: fix the arguments or try "
    "another way. When the task is done, reply with the final answer as plain text "
    "and call no more tools."
)
"""The default system prompt (chat) or ``instructions`` (responses)."""

Progress = Callable[[int, int, str], Awaitable[None]]
"""``progress(round, max_rounds, message)``: called before the model is leased
(round 0) and after every round."""


class ToolOutcome(Protocol):
    """A tool call's result, as :class:`~orchestrator.agent.tool_results.ToolResult` has it."""

    @property
    def text(self) -> str:
        """The result text (an error's message when ``is_error``)."""
        ...

    @property
    def is_error(self) -> bool:
        """The call failed; ``text`` says why (or asks for corrected arguments)."""
        ...

    @property
    def truncated(self) -> bool:
        """The text was cut to ``max_result_chars``."""
        ...


class AgentTools(Protocol):
    """The tools a run may use (:class:`~orchestrator.agent.toolbox.Toolbox`)."""

    @property
    def servers(self) -> tuple[str, ...]:
        """The MCP servers whose tools are offered."""
        ...

    def chat_tools(self) -> list[Tool]:
        """The tools in chat-completions form."""
        ...

    def responses_tools(self) -> list[ResponsesTool]:
        """The tools in the Responses API's flat form."""
        ...

    async def call(self, name: str, arguments: str) -> ToolOutcome:
        """Call a tool with the model's raw JSON arguments; tool problems come back as errors."""
        ...


def check_rounds(max_rounds: int | None, settings: AgentSettings) -> int:
    """Return the round limit for a run: ``max_rounds``, or the configured default.

    Raises:
        InvalidRequest: ``max_rounds`` is below 1 or above ``settings.max_rounds_cap``.
    """
    rounds = settings.max_rounds if max_rounds is None else max_rounds
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InvalidRequest(f"max_rounds must be a whole number of at least 1, got {rounds!r}")
    if rounds > settings.max_rounds_cap:
        raise InvalidRequest(
            f"max_rounds {rounds} is above the cap of {settings.max_rounds_cap} "
            "(LMSORCH_AGENT_MAX_ROUNDS_CAP); ask for fewer rounds"
        )
    return rounds


def _check_task(task: str, settings: AgentSettings) -> None:
    if not isinstance(task, str) or not task.strip():
        raise InvalidRequest("the task is empty; say what the agent should do")
    if len(task) > settings.context_budget_chars:
        raise InvalidRequest(
            f"the task is {len(task)} characters; the context budget is "
            f"{settings.context_budget_chars} (LMSORCH_AGENT_CONTEXT_BUDGET_CHARS)"
        )


async def run_agent(
    orch: Orchestrator,
    client: InferenceClient,
    tools: AgentTools,
    task: str,
    *,
    model: str,
    settings: AgentSettings,
    api: Api = "chat",
    max_rounds: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    instructions: str | None = None,
    progress: Progress | None = None,
) -> AgentResult:
    """Let ``model`` work on ``task`` with ``tools`` until it answers or a bound stops it.

    Args:
        orch: leases the model for the whole run.
        client: sends the inference requests.
        tools: the open toolbox (the caller opens and closes it).
        task: what to do, as the user message.
        model: the model key.
        settings: limits (rounds, deadline, context budget).
        api: ``chat`` (chat completions with tools) or ``responses`` (Responses API).
        max_rounds: model requests allowed; ``settings.max_rounds`` when omitted.
        max_tokens: most tokens per model answer.
        temperature: sampling temperature.
        instructions: the system prompt; :data:`DEFAULT_INSTRUCTIONS` when omitted.
        progress: told about each round.

    Returns:
        The answer, its reasoning and the trace; see :class:`AgentTrace` for stop reasons.

    Raises:
        InvalidRequest: bad arguments (empty task, rounds out of range); nothing ran.
        OrchestratorError: the model could not be leased (unknown model, breaker
            open, load failed ...); no round ran.
    """
    limit = check_rounds(max_rounds, settings)
    _check_task(task, settings)
    if api not in ("chat", "responses"):
        raise InvalidRequest(f"api must be 'chat' or 'responses', got {api!r}")
    servers = tools.servers
    trace = AgentTrace(model=model, api=api, servers=servers)
    prompt = instructions or DEFAULT_INSTRUCTIONS.format(servers=", ".join(servers) or "none")
    wire: Wire
    if api == "chat":
        wire = ChatWire(
            client,
            task=task,
            instructions=prompt,
            tools=tools.chat_tools(),
            max_tokens=max_tokens,
            temperature=temperature,
        )
    else:
        wire = ResponsesWire(
            client,
            task=task,
            instructions=prompt,
            tools=tools.responses_tools(),
            max_tokens=max_tokens,
            temperature=temperature,
        )
    run = _Run(tools, wire, trace, limit, settings, progress)
    started = trio.current_time()
    finished = False
    try:
        with trio.move_on_after(settings.deadline_s) as deadline:
            await run.report(0, f"waiting for model {model}")
            async with hold_model(orch, model, endpoint=api) as held:
                await run.drive(held)
        if deadline.cancelled_caught:
            trace.stop_reason = "deadline"
            trace.errors.append(
                f"deadline of {settings.deadline_s:g}s passed (LMSORCH_AGENT_DEADLINE_S)"
            )
        finished = True
    finally:
        trace.elapsed_s = round(trio.current_time() - started, 3)
        _record(orch, trace, finished)
    return AgentResult(answer=run.answer, reasoning=run.reasoning, trace=trace)


def _record(orch: Orchestrator, trace: AgentTrace, finished: bool) -> None:
    success = finished and trace.success
    # One observation per server (names come from the configuration: a bounded set),
    # not one per combination of servers.
    for server in trace.servers or ("none",):
        orch.metrics.agent_runs.labels(server=server, success=str(success).lower()).observe(
            trace.elapsed_s
        )
    # No task, answer, arguments or tool output here: they may hold anything.
    _log.info(
        "agent_run",
        model=trace.model,
        api=trace.api,
        servers=list(trace.servers),
        rounds=trace.rounds,
        tool_calls=len(trace.tool_calls),
        tool_errors=sum(not c.ok for c in trace.tool_calls),
        stop_reason=trace.stop_reason if finished else "aborted",
        elapsed_s=trace.elapsed_s,
        dropped_outputs=trace.dropped_outputs,
    )


class _Run:
    """The state of one run between rounds."""

    def __init__(
        self,
        tools: AgentTools,
        wire: Wire,
        trace: AgentTrace,
        limit: int,
        settings: AgentSettings,
        progress: Progress | None,
    ) -> None:
        self.tools = tools
        self.wire = wire
        self.trace = trace
        self.limit = limit
        self.budget = settings.context_budget_chars
        self.progress = progress
        self.answer = ""
        self.reasoning: str | None = None

    async def report(self, round_: int, message: str) -> None:
        if self.progress is not None:
            await self.progress(round_, self.limit, message)

    def _stop(self, reason: StopReason, turn: Turn | None = None) -> None:
        self.trace.stop_reason = reason
        if turn is not None:
            self.reasoning = turn.reasoning

    async def drive(self, held: HeldModel) -> None:
        trace = self.trace
        for round_ in range(1, self.limit + 1):
            fits, dropped = self.wire.fit(self.budget)
            trace.dropped_outputs += dropped
            if not fits:
                trace.errors.append(
                    f"the conversation outgrew the context budget of {self.budget} characters "
                    "(LMSORCH_AGENT_CONTEXT_BUDGET_CHARS)"
                )
                self._stop("context_budget")
                return
            try:
                turn = await self.wire.ask(held, round_)
            except OrchestratorError as exc:
                trace.errors.append(f"round {round_}: {excerpt(str(exc))}")
                self._stop("error")
                return
            trace.rounds = round_
            trace.finish_reason = turn.finish
            if turn.text:
                self.answer = turn.text
            if not turn.calls:
                self._stop(turn.outcome, turn)
                await self.report(round_, f"round {round_}: answered ({turn.outcome})")
                return
            names = ", ".join(c.name for c in turn.calls)
            if round_ == self.limit:
                trace.errors.append(
                    f"round limit ({self.limit}) reached; not run: {excerpt(names)}"
                )
                self._stop("max_rounds", turn)
                await self.report(round_, f"round {round_}: round limit reached")
                return
            outputs = await self._call_all(round_, turn.calls)
            self.wire.answer(turn.calls, outputs)
            await self.report(round_, f"round {round_}: called {excerpt(names, 120)}")

    async def _call_all(self, round_: int, calls: Sequence[Call]) -> list[str]:
        """Run the calls concurrently; return their outputs in call order."""
        outputs = [""] * len(calls)
        records: list[ToolCallTrace | None] = [None] * len(calls)

        async def one(i: int, call: Call) -> None:
            started = trio.current_time()
            try:
                result = await self.tools.call(call.name, call.arguments)
                text, is_error, truncated = result.text, result.is_error, result.truncated
            except OrchestratorError as exc:  # e.g. the server process died
                text, is_error, truncated = str(exc), True, False
            except Exception as exc:  # noqa: BLE001 (a bug must not end the run; Cancelled is not one)
                # The type only: the message may quote the arguments.
                _log.warning("agent_tool_call_crashed", tool=call.name, error=type(exc).__name__)
                text = f"the call failed unexpectedly ({type(exc).__name__}: {excerpt(str(exc))})"
                is_error, truncated = True, False
            outputs[i] = TOOL_ERROR_PREFIX + text if is_error else text
            records[i] = ToolCallTrace(
                round=round_,
                name=call.name,
                ok=not is_error,
                duration_s=round(trio.current_time() - started, 3),
                error=excerpt(text) if is_error else None,
                truncated=truncated,
            )

        async with trio.open_nursery() as nursery:
            for i, call in enumerate(calls):
                nursery.start_soon(one, i, call)
        for record in records:
            assert record is not None
            self.trace.tool_calls.append(record)
            if not record.ok:
                self.trace.errors.append(f"{record.name}: {record.error}")
        return outputs
