"""Image inputs for the vision tool: files inside allowed roots, data URLs, remote URLs.

Whatever the source, an image is accepted only if its bytes start like a
PNG, JPEG, GIF or WebP file (the magic bytes decide, never the name or a
declared type) and it is within ``max_image_bytes``. Files are checked after
resolving symlinks, so a link inside a root cannot point outside it, and again
after opening, where the system says the open file is (Linux), so swapping a
directory for a link between the check and the open does not help. Nothing
hidden below a root (a ``.ssh``, ``.aws`` or ``.git`` directory, a ``.env``
file) is read. Files are opened without following a final symlink and without
blocking (a FIFO is refused, not waited on).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

from mcp_frontend.checks.remote_images import RemoteFetcher
from mcp_frontend.errors import ToolError
from mcp_frontend.settings import FrontendSettings

__all__ = ["Image", "load_images", "sniff"]

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_ACCEPTED = "PNG, JPEG, GIF or WebP"
# Those signatures (and WebP's RIFF) in base64: the raw base64 the previous bridge took.
_RAW_BASE64 = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR")
_MAX_PATH = 4096  # PATH_MAX on Linux


@dataclass(frozen=True)
class Image:
    """An accepted image.

    Attributes:
        source: how the caller named it (a path, ``data URL`` or the URL).
        mime_type: the type its bytes show.
        data: the image bytes.
    """

    source: str
    mime_type: str
    data: bytes

    def data_url(self) -> str:
        """Return the image as a ``data:`` URL (what vision models accept)."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def sniff(data: bytes) -> str | None:
    """Return the image MIME type the bytes show, or None if they are no image we accept."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _accept(source: str, data: bytes, limit: int) -> Image:
    if len(data) > limit:
        raise ToolError(f"image {source} is {len(data)} bytes; the limit is {limit}")
    mime = sniff(data)
    if mime is None:
        raise ToolError(f"{source} is not an image ({_ACCEPTED} expected, by content)")
    return Image(source=source, mime_type=mime, data=data)


def _from_data_url(url: str, limit: int) -> Image:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ToolError("a data URL must look like data:image/png;base64,<data>")
    payload = "".join(payload.split())
    if len(payload) > (limit + 2) // 3 * 4:
        raise ToolError(f"the data URL image is over the {limit}-byte limit")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ToolError(f"the data URL is not valid base64: {exc}") from exc
    return _accept("data URL", data, limit)


def _resolve(raw: str, roots: tuple[Path, ...]) -> Path:
    if "\x00" in raw:
        raise ToolError("an image path must not contain NUL")
    if len(raw) > _MAX_PATH:
        raise ToolError(f"an image path must be at most {_MAX_PATH} characters")
    if not roots:
        raise ToolError(
            "image files are off: no LMSORCH_MCP_ALLOWED_IMAGE_ROOTS is set and the current "
            "directory is too broad to serve as one (/, the home directory or above); set "
            "LMSORCH_MCP_ALLOWED_IMAGE_ROOTS, or pass a data URL"
        )
    # resolve() follows every symlink, so the root check sees the real location.
    resolved = Path(raw).expanduser().resolve()
    _check_inside(resolved, roots, raw[:200])
    return resolved


def _check_inside(resolved: Path, roots: tuple[Path, ...], shown: str) -> None:
    """Refuse a real path outside every root, or hidden below its root."""
    root = next((r for r in roots if resolved.is_relative_to(r)), None)
    if root is None:
        listed = ", ".join(str(r) for r in roots)
        raise ToolError(
            f"image path {shown!r} is outside the allowed roots ({listed}); "
            "set LMSORCH_MCP_ALLOWED_IMAGE_ROOTS to allow more"
        )
    # Credentials live in hidden directories (~/.ssh, ~/.aws, ~/.gnupg, ~/.config,
    # .git, .env): never read below a root through one, even when a root is broad.
    if any(part.startswith(".") for part in resolved.relative_to(root).parts):
        raise ToolError(
            f"image path {shown!r} is in a hidden file or directory under {root}; "
            "hidden paths are never read (credentials live there)"
        )


def _opened_path(fd: int) -> Path | None:
    """Where an open file really is (Linux ``/proc``); None where that cannot be known."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _read_file(path: Path, limit: int, roots: tuple[Path, ...]) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ToolError(f"no such image file: {path}") from None
    except OSError as exc:
        raise ToolError(f"cannot open image {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        # A directory swapped for a symlink between the check and the open would
        # land elsewhere: check again where the opened file really is.
        opened = _opened_path(f.fileno())
        if opened is not None:
            _check_inside(opened, roots, str(path))
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ToolError(f"image {path} is {info.st_size} bytes; the limit is {limit}")
        return f.read(limit + 1)


async def _load(source: str, settings: FrontendSettings, fetcher: RemoteFetcher) -> Image:
    limit = settings.max_image_bytes
    if source.startswith("data:"):
        return _from_data_url(source, limit)
    if source.startswith(("http://", "https://")):
        if not settings.allow_remote_images:
            raise ToolError(
                "remote images are disabled; pass a file path or a data URL, or set "
                "LMSORCH_MCP_ALLOW_REMOTE_IMAGES=1 to allow public http(s) URLs"
            )
        data = await fetcher.fetch(source, limit=limit, timeout_s=settings.remote_image_timeout_s)
        return _accept(source[:200], data, limit)
    if source.startswith(_RAW_BASE64):
        raise ToolError(
            "this looks like raw base64 image data; pass it as a data URL "
            "(data:image/png;base64,<data>, or image/jpeg, image/gif, image/webp)"
        )
    if "://" in source:
        raise ToolError(f"unsupported image source {source[:80]!r}: use a path, data: or http(s)")
    roots = settings.image_roots()
    path = _resolve(source, roots)
    return _accept(str(path), await trio.to_thread.run_sync(_read_file, path, limit, roots), limit)


async def load_images(
    sources: list[str], settings: FrontendSettings, fetcher: RemoteFetcher
) -> list[Image]:
    """Load and check every image, in order; the first bad one fails the call.

    Raises:
        ToolError: a source is not allowed, unreadable, too large or not an image.
    """
    if not 1 <= len(sources) <= settings.max_images:
        raise ToolError(f"give 1 to {settings.max_images} images, got {len(sources)}")
    return [await _load(s, settings, fetcher) for s in sources]
