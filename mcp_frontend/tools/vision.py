"""The vision tool: describe, read (OCR), compare, list objects, or answer a question.

One tool with a ``mode`` replaces the previous bridge's six vision tools
(analyze, describe, compare, extract text, identify objects, answer).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

from mcp_frontend.checks.images import load_images
from mcp_frontend.checks.prompt_size import check_prompt_size
from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError
from mcp_frontend.tools import chat
from mcp_frontend.tools.inference import (
    MaxTokens,
    ModelOpt,
    Temperature,
    require_model_fits,
    resolve_model,
    run_inference,
)
from mcp_frontend.tools.io_types import ImageOut, VisionOut
from orchestrator import ModelInfo
from orchestrator.inference import ChatMessage, ChatRequest, ImagePart, ImageUrl, TextPart

__all__ = ["instruction", "register", "sees_images"]

Mode = Literal["describe", "ocr", "compare", "objects", "question"]
Style = Literal["detailed", "brief", "technical", "creative"]

_DESCRIBE = {
    "detailed": "Describe this image in detail: subjects, setting, colours, composition, "
    "and any text.",
    "brief": "Describe this image in one or two sentences.",
    "technical": "Describe this image technically: composition, lighting, perspective, "
    "quality, and any visible artefacts.",
    "creative": "Describe this image vividly, as a storyteller would.",
}
_PROMPTS = {
    "ocr": "Extract all text visible in the image, verbatim, preserving line breaks and "
    "layout where possible. Answer with the text only.",
    "compare": "Compare these images: list what they have in common, then how they differ.",
    "objects": "List every distinct object in the image, one per line, with its position.",
}


def instruction(mode: Mode, style: Style, question: str | None, images: int) -> str:
    """Return the instruction for ``mode``.

    Raises:
        ToolError: the mode's requirements are not met (a question, two images).
    """
    if mode == "question":
        if not question:
            raise ToolError("mode 'question' needs 'question'")
        return question
    if mode == "compare" and images < 2:
        raise ToolError(f"mode 'compare' needs at least 2 images, got {images}")
    base = _DESCRIBE[style] if mode == "describe" else _PROMPTS[mode]
    # Outside question mode, a question refines the canned instruction.
    return f"{base}\n\n{question}" if question else base


def sees_images(info: ModelInfo) -> bool:
    """Whether the catalogue says ``info`` takes images."""
    return info.type == "vlm" or "vision" in info.capabilities


def register(mcp: MCPServer[Any], deps: Deps) -> None:
    """Register ``analyze_image`` on ``mcp``."""
    annotations = ToolAnnotations(
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=False,
        open_world_hint=deps.settings.allow_remote_images,
    )

    @mcp.tool(title="Analyze images", annotations=annotations)
    async def analyze_image(
        ctx: Context[Any, Any],
        images: str | list[str],
        mode: Mode = "describe",
        question: str | None = None,
        style: Style = "detailed",
        model: ModelOpt = None,
        detail: Literal["auto", "low", "high"] = "auto",
        max_tokens: MaxTokens = None,
        temperature: Temperature = None,
    ) -> VisionOut:
        """Look at one or more images with a vision model.

        Images are file paths inside the allowed roots, data:image/...;base64 URLs, or
        (only when enabled) public http(s) URLs; PNG, JPEG, GIF or WebP, size-capped.
        Modes: describe (style: detailed, brief, technical, creative), ocr, compare
        (2+ images), objects, question (needs 'question').
        """
        sources = [images] if isinstance(images, str) else images
        text = instruction(mode, style, question, len(sources))
        check_prompt_size(deps, text)
        loaded = await load_images(sources, deps.settings, deps.fetcher)
        parts = [ImagePart(image_url=ImageUrl(url=i.data_url(), detail=detail)) for i in loaded]
        message = ChatMessage(role="user", content=[TextPart(text=text), *parts])
        request = ChatRequest(messages=[message], max_tokens=max_tokens, temperature=temperature)
        name = await resolve_model(deps, model)
        await require_model_fits(deps, name, sees_images, "takes no images", "vision models")
        call = functools.partial(deps.inference.get().chat, request=request)
        answer, target = await run_inference(deps, name, "vision", call, ctx=ctx)
        out = chat.chat_out(answer, target, None)
        return VisionOut(
            model=out["model"],
            identifier=out["identifier"],
            mode=mode,
            content=out["content"],
            reasoning=out["reasoning"],
            finish_reason=out["finish_reason"],
            images=[
                ImageOut(source=i.source, mime_type=i.mime_type, size_bytes=len(i.data))
                for i in loaded
            ],
            usage=out["usage"],
        )
