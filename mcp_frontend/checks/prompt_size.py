"""The prompt-size limit: text beyond ``max_prompt_chars`` never reaches a model."""

from __future__ import annotations

from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError

__all__ = ["check_prompt_size"]


def check_prompt_size(deps: Deps, *texts: str | None) -> None:
    """Reject text beyond ``max_prompt_chars`` before any model is touched.

    Raises:
        ToolError: the texts together are too long.
    """
    total = sum(len(t) for t in texts if t)
    limit = deps.settings.max_prompt_chars
    if total > limit:
        raise ToolError(
            f"the input is {total} characters; the limit is {limit} (LMSORCH_MCP_MAX_PROMPT_CHARS)"
        )
