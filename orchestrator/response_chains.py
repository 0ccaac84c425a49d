"""Stateful Responses where the server keeps no state: a bounded store of response chains.

LM Studio keeps each response's conversation, so ``previous_response_id``
continues it. llama.cpp's ``/v1/responses`` is stateless: it hands out a
``resp_...`` id and refuses that id back ("llama.cpp does not support
'previous_response_id'"). :class:`ResponseChains` emulates the state: after
each answer it remembers the conversation so far (every user input and
assistant output, as ``message`` items) under the new response's id; a request
that continues an id is sent as that history plus its new input, with no
``previous_response_id``.

Bounds, so the store cannot grow without limit:

- ``ttl_s``: a chain not continued for this long is forgotten (default 1 h);
- ``max_chains``: at most this many response ids are kept; the least recently
  used goes first (default 256);
- ``max_chars``: the text a chain keeps; beyond it the oldest turns are
  dropped, so a long conversation goes on with a sliding window of recent
  turns, as a chat client with a context limit would (default 200 000).

A continued id that was never handed out, expired or was evicted is refused
with :class:`UnknownResponse`, naming these limits. The store lives in this
process only: a restart forgets every chain.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from orchestrator.errors import InvalidRequest
from orchestrator.inference import InputItem, InputMessage, ModelResponse, ResponsesRequest

__all__ = ["STATELESS_RESPONSE_BACKENDS", "ResponseChains", "UnknownResponse"]

STATELESS_RESPONSE_BACKENDS = frozenset({"llamacpp"})
"""Backends whose ``/v1/responses`` keeps no state, so chains are emulated."""


class UnknownResponse(InvalidRequest):
    """``previous_response_id`` names no kept chain (never handed out, expired or evicted)."""


@dataclass(frozen=True)
class _Chain:
    model: str
    turns: tuple[InputMessage, ...]
    used_at: float


def _chars(message: InputMessage) -> int:
    return len(message.content) if isinstance(message.content, str) else 0


class ResponseChains:
    """Conversations behind response ids, for a backend that keeps none.

    Args:
        ttl_s: seconds a chain is kept after it was last continued or created.
        max_chains: most response ids kept (least recently used evicted first).
        max_chars: most characters of text one chain keeps (oldest turns dropped).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        *,
        ttl_s: float = 3600.0,
        max_chains: int = 256,
        max_chars: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_chains < 1 or max_chars < 1:
            raise ValueError("ttl_s, max_chains and max_chars must be positive")
        self.ttl_s, self.max_chains, self.max_chars = ttl_s, max_chains, max_chars
        self._clock = clock
        self._chains: OrderedDict[str, _Chain] = OrderedDict()

    def __len__(self) -> int:
        return len(self._chains)

    def _prune(self, now: float) -> None:
        while self._chains:
            oldest = next(iter(self._chains.values()))
            if now - oldest.used_at < self.ttl_s and len(self._chains) <= self.max_chains:
                return
            self._chains.popitem(last=False)

    def expand(self, model: str, request: ResponsesRequest) -> ResponsesRequest:
        """Return ``request`` as a stateless backend must get it: the history, then the input.

        A request without ``previous_response_id`` is returned unchanged.

        Raises:
            UnknownResponse: the id names no kept chain, or a chain of another model.
        """
        previous = request.previous_response_id
        if previous is None:
            return request
        now = self._clock()
        self._prune(now)
        chain = self._chains.get(previous)
        if chain is None:
            raise UnknownResponse(
                f"unknown or expired response id {previous!r}: this backend keeps no "
                f"conversations, so lmsorch keeps the last {self.max_chains} for "
                f"{self.ttl_s:g}s; start a new one without previous_response_id"
            )
        if chain.model != model:
            raise UnknownResponse(
                f"response {previous!r} belongs to model {chain.model!r}, not {model!r}"
            )
        self._chains.move_to_end(previous)
        self._chains[previous] = _Chain(chain.model, chain.turns, now)
        new_input = _as_messages(request.input)
        return _replace(request, [*chain.turns, *new_input])

    def record(self, model: str, request: ResponsesRequest, answer: ModelResponse) -> None:
        """Remember the conversation ending in ``answer`` under its id.

        Args:
            model: the model key that answered.
            request: the request as sent (already expanded by :meth:`expand`).
            answer: the backend's response.
        """
        turns = [*_as_messages(request.input)]
        turns.append(InputMessage(role="assistant", content=answer.output_text))
        kept = self._window(turns)
        now = self._clock()
        self._chains.pop(answer.id, None)
        self._chains[answer.id] = _Chain(model, tuple(kept), now)
        self._prune(now)

    def _window(self, turns: list[InputMessage]) -> list[InputMessage]:
        """The most recent turns that fit ``max_chars`` (always the last one)."""
        kept: list[InputMessage] = []
        total = 0
        for message in reversed(turns):
            total += _chars(message)
            if kept and total > self.max_chars:
                break
            kept.append(message)
        return kept[::-1]


def _as_messages(value: str | list[InputItem]) -> list[InputMessage]:
    if isinstance(value, str):
        return [InputMessage(role="user", content=value)]
    return [item for item in value if isinstance(item, InputMessage)]


def _replace(request: ResponsesRequest, messages: list[InputMessage]) -> ResponsesRequest:
    items: list[InputItem] = list(messages)
    return msgspec.structs.replace(request, input=items, previous_response_id=None)
