"""Fault switches and call records of the simulator.

Every switch is a plain attribute a test sets before (or while) it drives the
client; "hold" switches are ``trio.Event`` gates the simulator waits on, so a
test controls timing with events instead of sleeps. All gates open when the
simulator shuts down, so nothing hangs past a test.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

__all__ = ["GUARDRAIL_MESSAGE", "CliCall", "Faults", "HttpCall"]

GUARDRAIL_MESSAGE = (
    "Model loading was stopped due to insufficient system resources. Under the current "
    "settings, this model requires approximately 22.92 GB of memory, and continuing to load "
    "it would likely overload your system and cause it to freeze. If you think this is "
    "incorrect, you can adjust the model loading guardrails in settings."
)
"""LM Studio's memory-guardrail refusal, verbatim (``reference/lmstudio-api.md`` §7)."""


class HttpCall(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request the simulator received."""

    method: str
    path: str
    body: Any = None
    authorization: str | None = None


class CliCall(msgspec.Struct, frozen=True, kw_only=True):
    """One run of the fake ``lms``: its argv (without the program) and process id."""

    argv: tuple[str, ...]
    pid: int


class Faults:
    """Switches that make the simulator misbehave, per model key or per route path.

    Attributes:
        load_gates: key -> gate; a load of that key waits until the gate is set (slow load).
        load_errors: key -> message; a load of that key fails with it (e.g. ``GUARDRAIL_MESSAGE``).
        load_error_status: HTTP status REST loads answer for ``load_errors`` (default 400).
        load_absent: keys whose load reports success but leaves nothing loaded.
        route_status: path -> HTTP status answered with an error body (e.g. 500).
        route_error_200: path -> message answered as HTTP 200 ``{"error": message}``.
        route_raw: path -> (status, content type, body) answered verbatim
            (malformed JSON, HTML, a huge body ...).
        route_chunked: path -> (chunk, count): HTTP 200 JSON sent as ``count`` chunks
            without a Content-Length (a huge streamed body).
        route_gates: path -> gate; requests to that path wait until it is set (hung route).
        first_token_gates: model -> gate; inference answers (or their first streamed
            token) wait until it is set (slow first token).
        unload_during_inference: models unloaded while answering, which then fails
            with "Model unloaded" (eviction mid-generation).
        cli_hang: ``lms`` subcommands (``"load"``, ``"ps"`` ...; ``"*"`` for all) that
            hang until killed.
        cli_fail: subcommand -> (exit code, stderr) to fail with.
        cli_stdout: subcommand -> stdout printed instead of the real output (exit 0).
        load_delay_s: every load takes this long (timing only, no LM Studio behaviour:
            the swap benchmark's cost of a load).
        answer_delay_s: every inference answer (or its first token) takes this long.
    """

    def __init__(self) -> None:
        self._hang = trio.Event()
        self._reset()

    def _reset(self) -> None:
        self.load_gates: dict[str, trio.Event] = {}
        self.load_errors: dict[str, str] = {}
        self.load_error_status = 400
        self.load_absent: set[str] = set()
        self.route_status: dict[str, int] = {}
        self.route_error_200: dict[str, str] = {}
        self.route_raw: dict[str, tuple[int, str, bytes]] = {}
        self.route_chunked: dict[str, tuple[bytes, int]] = {}
        self.route_gates: dict[str, trio.Event] = {}
        self.first_token_gates: dict[str, trio.Event] = {}
        self.unload_during_inference: set[str] = set()
        self.cli_hang: set[str] = set()
        self.cli_fail: dict[str, tuple[int, str]] = {}
        self.cli_stdout: dict[str, str] = {}
        self.load_delay_s = 0.0
        self.answer_delay_s = 0.0

    def hold_load(self, key: str) -> trio.Event:
        """Make loads of ``key`` wait; set the returned event to let them finish."""
        return self.load_gates.setdefault(key, trio.Event())

    def hold_route(self, path: str) -> trio.Event:
        """Make requests to ``path`` wait; set the returned event to release them."""
        return self.route_gates.setdefault(path, trio.Event())

    def hold_first_token(self, model: str) -> trio.Event:
        """Make inference on ``model`` wait before its first token."""
        return self.first_token_gates.setdefault(model, trio.Event())

    async def hang(self) -> None:
        """Wait until :meth:`release_hung` or shutdown (a hung CLI or route)."""
        await self._hang.wait()

    def release_hung(self) -> None:
        """Let every CLI run hung so far answer (an error); later ones hang again."""
        self._hang.set()
        self._hang = trio.Event()

    def clear(self) -> None:
        """Switch every fault off: open the gates, free hung runs, reset every switch."""
        self.release_all()
        self._hang = trio.Event()
        self._reset()

    def release_all(self) -> None:
        """Open every gate (done at shutdown so no request outlives the test)."""
        for gate in (
            *self.load_gates.values(),
            *self.route_gates.values(),
            *self.first_token_gates.values(),
        ):
            gate.set()
        self._hang.set()
