"""Tool-result shaping: what a tool call produced, as bounded, scrubbed text for the model.

:func:`bounded` cuts a result to ``max_result_chars`` (with a note saying so),
drops control characters and, for an error, scrubs the server's secrets;
:func:`describe` turns an exception into one such line. The toolbox
(:mod:`.toolbox`) and the child sessions (:mod:`.sessions`) both use them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import mcp_types as types
import msgspec
from mcp.shared.exceptions import MCPError

from orchestrator.errors import excerpt
from orchestrator.exception_groups import unwrap_group
from orchestrator.logs import REDACTED

__all__ = ["ToolResult", "bounded", "describe", "result_parts", "scrubbed"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one tool call produced, as text for the model.

    Attributes:
        text: the result (or the problem, when ``is_error``), at most
            ``max_result_chars`` plus a short note when cut.
        is_error: the call failed or was refused; ``text`` says why.
        truncated: ``text`` was cut to ``max_result_chars``.
    """

    text: str
    is_error: bool = False
    truncated: bool = False


def scrubbed(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by the logs' ``[REDACTED]`` marker."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """One line for an exception (secrets scrubbed), looking inside exception groups."""
    exc = unwrap_group(exc)
    if isinstance(exc, MCPError):
        return excerpt(scrubbed(exc.message or "MCP error", secrets), 300)
    text = str(exc) or type(exc).__name__
    return excerpt(scrubbed(f"{type(exc).__name__}: {text}", secrets), 300)


def _content_text(block: Any) -> str:
    """One content block as text; binary blocks become a short placeholder."""
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        return f"[{kind}: {block.mime_type}, {len(block.data)} base64 characters, not shown]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.uri} ({block.name})]"
    if isinstance(block, types.EmbeddedResource):
        res = block.resource
        if isinstance(res, types.TextResourceContents):
            return f"[resource {res.uri}]\n{res.text}"
        return f"[resource {res.uri}: {res.mime_type or 'binary'}, not shown]"
    return f"[{getattr(block, 'type', type(block).__name__)} content, not shown]"


def result_parts(result: types.CallToolResult) -> list[str]:
    """The result's content blocks as text, or its structured content when it has no text."""
    parts = [p for p in map(_content_text, result.content) if p]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False, default=str)]
    return parts


def _without_partial_secret(text: str, secrets: Sequence[str]) -> str:
    """``text`` less any start of a secret it ends with (a cut may have split one)."""
    cut = 0
    for secret in secrets:
        for k in range(len(secret) - 1, cut, -1):  # only a longer start than found so far
            if text.endswith(secret[:k]):
                cut = k
                break
    return text[: len(text) - cut]


def bounded(
    parts: Sequence[str],
    limit: int,
    *,
    lead: str = "",
    is_error: bool = False,
    secrets: Sequence[str] = (),
) -> ToolResult:
    """``lead`` and ``parts`` (joined by newlines) as a result of at most ``limit`` characters.

    Only what is kept is copied: the pieces are sliced before they are joined, so
    a 20 MB result costs microseconds here, not a join and a scan of all of it.
    Then control characters (NUL, ESC ...: they help no model and break some
    templates) are dropped, and an error is scrubbed of ``secrets``, a cut never
    leaving the start of one behind. A cut result ends with a note giving the
    full length.
    """
    total = len(lead) + sum(map(len, parts)) + max(len(parts) - 1, 0)
    truncated = total > limit
    if truncated:
        kept, room = [], limit - len(lead)
        for part in parts:
            if room <= 0:
                break
            kept.append(part[:room])
            room -= len(kept[-1]) + 1
        text = (lead + "\n".join(kept))[:limit]
    else:
        text = lead + "\n".join(parts)
    text = _CONTROL.sub("", text)
    if is_error:
        text = scrubbed(text, secrets)
        if truncated:
            text = _without_partial_secret(text, secrets)
    if not truncated:
        return ToolResult(text=text, is_error=is_error)
    note = (
        f"\n[result cut: showing {limit} of {total} characters; "
        "ask for a smaller part if you need the rest]"
    )
    return ToolResult(text=text + note, is_error=is_error, truncated=True)
