"""The previous bridge's tool calls, still answered for one release.

The previous bridge had 33 tools; 12 names live on here with the same role. Of
the other 21, those whose role one tool now plays with other arguments are
hidden aliases: a ``tools/call`` naming one is rewritten into a call of its
successor before anything else sees it, so it is validated, run and answered
as that tool, and ``tools/list`` never shows it (the SDK's server middleware
may rewrite a request's params before dispatch: ``ServerMiddleware`` in
``mcp/server/context.py``). Each alias is named once on stderr with its
replacement. The names with no successor answer with a tool error that names
what to use instead, not just "Unknown tool".

The old argument spellings the current tools would refuse are rewritten the
same way, on every tool: ``max_tokens: "auto"`` (the bridge's 8192) and
``model: "default"`` are dropped, so the configured default applies; and
``analyze_image``'s old ``image``/``prompt`` become ``images``/``question``.
``docs/migration.md`` maps every old tool and argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, TextContent

from orchestrator.legacy_env import warn_once

__all__ = ["ALIASES", "REMOVED", "LegacyToolCalls"]

Arguments = dict[str, Any]


class _Refused(Exception):
    """An old call that cannot be rewritten; the message says what to do instead."""


def _rename(**renames: str) -> Callable[[Arguments], Arguments]:
    """Arguments with some names changed (``new=old``), the rest as they were."""
    back = {old: new for new, old in renames.items()}
    return lambda args: {back.get(k, k): v for k, v in args.items()}


def _vision(mode: str, detail: str = "auto", **renames: str) -> Callable[[Arguments], Arguments]:
    """``analyze_image`` in ``mode``, with the old tool's ``detail`` default."""

    def rewrite(args: Arguments) -> Arguments:
        out = _rename(images="image", **renames)(args)
        return {"detail": detail, **out, "mode": mode}

    return rewrite


_COMPARISON = {
    "differences": "Focus on how they differ.",
    "similarities": "Focus on what they have in common.",
}


def _compare(args: Arguments) -> Arguments:
    out = {k: v for k, v in args.items() if k != "comparison_type"}
    focus = _COMPARISON.get(args.get("comparison_type", "differences"))
    return {**out, "mode": "compare", **({"question": focus} if focus else {})}


def _load(args: Arguments) -> Arguments:
    out = _rename(model="model_name")({k: v for k, v in args.items() if k != "keep_loaded"})
    # The old keep_loaded=true was a 600 s idle TTL (this server's default TTL);
    # false was the short temporary TTL, which keep_loaded=false still asks for.
    return {**out, "keep_loaded": False} if args.get("keep_loaded") is False else out


def _agent(server: str) -> Callable[[Arguments], Arguments]:
    def rewrite(args: Arguments) -> Arguments:
        if args.get("github_token"):
            raise _Refused(
                "github_token is no longer an argument (it would travel through the chat): "
                "set GITHUB_PERSONAL_ACCESS_TOKEN in this server's environment; the github "
                "preset reads it"
            )
        kept = {k: v for k, v in args.items() if k != "github_token"}
        return {"mcp_name": server, **kept}

    return rewrite


ALIASES: Mapping[str, tuple[str, Callable[[Arguments], Arguments]]] = {
    "lms_server_status": ("health_check", lambda args: args),
    "lms_list_loaded_models": ("list_models", lambda args: args),
    "lms_list_downloaded_models": ("list_models", lambda args: args),
    "lms_load_model": ("load_model", _load),
    "lms_ensure_model_loaded": ("load_model", _rename(model="model_name")),
    "lms_unload_model": ("unload_model", _rename(model="model_name")),
    "lms_download_model": ("download_model", _rename(model="model_key")),
    # The old search was a stub; its role is list_models' key filter (limit has no use there).
    "lms_search_models": (
        "list_models",
        lambda args: _rename(key_contains="query")({k: v for k, v in args.items() if k != "limit"}),
    ),
    "describe_image": ("analyze_image", _vision("describe")),
    "compare_images": ("analyze_image", _compare),
    "extract_text_from_image": ("analyze_image", _vision("ocr", detail="high")),
    "identify_objects": ("analyze_image", _vision("objects")),
    "answer_about_image": ("analyze_image", _vision("question")),
    "vision_analyze": ("analyze_image", _vision("question", question="task")),
    "autonomous_filesystem_full": ("autonomous_with_mcp", _agent("filesystem")),
    "autonomous_memory_full": ("autonomous_with_mcp", _agent("memory")),
    "autonomous_fetch_full": ("autonomous_with_mcp", _agent("fetch")),
    "autonomous_github_full": ("autonomous_with_mcp", _agent("github")),
}
"""Old name -> (its successor, the rewrite of its arguments)."""

REMOVED: Mapping[str, str] = {
    "get_current_model": "it ran an inference to ask the model its name; model_status and "
    "list_models (default_model) say which models are loaded and which one is the default",
    "lms_resolve_model": "no silent substitute is picked: a call naming an unknown model "
    "fails with the list of available ones (list_models)",
    "autonomous_persistent_session": "run each task with autonomous_with_mcp "
    "(mcp_name='filesystem', working_directory=...)",
}
"""Old names with no successor -> what to use instead."""


def _modernised(tool: str, args: Arguments) -> Arguments:
    """The old argument spellings every tool would refuse, rewritten (see module doc)."""
    out = dict(args)
    if out.get("max_tokens") == "auto":
        del out["max_tokens"]
    if out.get("model") == "default":
        del out["model"]
    if tool == "analyze_image" and "image" in out and "images" not in out:
        out["images"] = out.pop("image")
        if "prompt" in out:
            out["question"] = out.pop("prompt")
            out.setdefault("mode", "question")
    changed = sorted(k for k in args if k not in out or out[k] != args[k])
    if changed:
        warn_once(
            f"tool {tool} was called with the previous bridge's argument(s) "
            f"{', '.join(changed)}; see docs/migration.md"
        )
    return out


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class LegacyToolCalls:
    """Server middleware: rewrite the previous bridge's tool calls (see module doc).

    Register it before the other middleware, so they see the call as rewritten.
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Rewrite an old ``tools/call``, or answer it when its tool is gone."""
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, dict):
            return await call_next(ctx)
        name, args = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or not isinstance(args, dict | None):
            return await call_next(ctx)
        args = args or {}
        if name in REMOVED:
            return _error(
                f"Unknown tool: {name}. The previous bridge's {name} is gone: {REMOVED[name]} "
                "(docs/migration.md)"
            )
        if name in ALIASES:
            successor, rewrite = ALIASES[name]
            try:
                args = rewrite(args)
            except _Refused as exc:
                return _error(f"Error executing tool {name}: {exc}")
            warn_once(f"tool {name} is deprecated; call {successor} instead (docs/migration.md)")
            name = successor
        new_params = {**params, "name": name, "arguments": _modernised(name, args)}
        if new_params == params:
            return await call_next(ctx)
        return await call_next(dataclasses.replace(ctx, params=new_params))
