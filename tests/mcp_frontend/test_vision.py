"""The vision tool: images from allowed roots, data URLs and (opt-in) public URLs only."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from mcp import Client

from mcp_frontend.checks.remote_images import RemoteFetcher
from mcp_frontend.settings import FrontendSettings
from tests.fakes import Reply, Simulator
from tests.mcp_frontend.mcp_support import (
    GEMMA,
    Fake,
    LMStudio,
    data_url,
    error,
    make_settings,
    mcp_client,
    ok,
    png,
)

PUBLIC = "93.184.216.34"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return tmp_path / "images"  # the allowed root of make_settings()


def image_parts(sim: Simulator) -> list[dict[str, Any]]:
    [call] = sim.requests("/v1/chat/completions")
    return list(call.body["messages"][0]["content"])


async def test_a_file_inside_the_allowed_root_is_sent_as_a_data_url(
    lm: LMStudio, images: Path
) -> None:
    picture = images / "red.png"
    picture.write_bytes(png())
    lm.sim.script(GEMMA, Reply(content="A red pixel."))

    out = ok(
        await lm.client.call_tool(
            "analyze_image", {"images": str(picture), "model": GEMMA, "style": "brief"}
        )
    )

    assert out["content"] == "A red pixel."
    assert out["mode"] == "describe"
    assert out["images"] == [
        {"source": str(picture.resolve()), "mime_type": "image/png", "size_bytes": len(png())}
    ]
    text, image = image_parts(lm.sim)
    assert text == {"type": "text", "text": "Describe this image in one or two sentences."}
    assert image == {"type": "image_url", "image_url": {"url": data_url(png()), "detail": "auto"}}


async def test_compare_takes_several_images_and_a_refining_question(
    lm: LMStudio, images: Path
) -> None:
    (images / "a.png").write_bytes(png(1, 1))
    sources = [str(images / "a.png"), data_url(png(2, 2))]

    out = ok(
        await lm.client.call_tool(
            "analyze_image",
            {"images": sources, "mode": "compare", "question": "Which is bigger?", "model": GEMMA},
        )
    )

    assert [i["source"] for i in out["images"]] == [str((images / "a.png").resolve()), "data URL"]
    parts = image_parts(lm.sim)
    assert parts[0]["text"].startswith("Compare these images")
    assert parts[0]["text"].endswith("Which is bigger?")
    assert len(parts) == 3


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"images": "x.png", "mode": "compare"}, "needs at least 2 images, got 1"),
        ({"images": "x.png", "mode": "question"}, "needs 'question'"),
        ({"images": ["x.png"] * 9}, "give 1 to 8 images, got 9"),
        ({"images": []}, "give 1 to 8 images, got 0"),
        ({"images": "data:image/png,raw"}, "must look like data:image/png;base64"),
        ({"images": "data:image/png;base64,!!!"}, "not valid base64"),
        ({"images": data_url(b"just text, no picture")}, "data URL is not an image"),
        ({"images": "ftp://example.com/x.png"}, "unsupported image source"),
        ({"images": "https://example.com/x.png"}, "remote images are disabled"),
        ({"images": "/etc/passwd"}, "is outside the allowed roots"),
        ({"images": "nul\x00.png"}, "must not contain NUL"),
    ],
)
async def test_bad_image_inputs_are_refused_before_the_backend(
    fake: Fake, arguments: dict[str, object], problem: str
) -> None:
    msg = error(await fake.client.call_tool("analyze_image", {**arguments, "model": "model-a"}))

    assert problem in msg
    assert fake.backend.count("load") == 0


async def test_a_symlink_inside_the_root_pointing_outside_is_refused(
    fake: Fake, images: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    (images / "innocent.png").symlink_to(secret)

    msg = error(
        await fake.client.call_tool(
            "analyze_image", {"images": str(images / "innocent.png"), "model": "model-a"}
        )
    )

    assert "outside the allowed roots" in msg
    assert fake.backend.count("load") == 0


async def test_a_relative_escape_is_refused(
    fake: Fake, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(images)

    msg = error(
        await fake.client.call_tool("analyze_image", {"images": "../x.png", "model": "model-a"})
    )

    assert "outside the allowed roots" in msg


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("fake.png", b"#!/bin/sh\necho not an image\n", "is not an image"),
        ("big.png", png() + b"\x00" * 2048, "bytes; the limit is 1024"),
        ("missing.png", None, "no such image file"),
    ],
)
async def test_files_are_checked_by_content_and_size(
    fake: Fake, images: Path, tmp_path: Path, name: str, content: bytes | None, problem: str
) -> None:
    if content is not None:
        (images / name).write_bytes(content)
    small = make_settings(tmp_path, max_image_bytes=1024)
    async with mcp_client(fake.orch, small) as c:
        msg = error(
            await c.call_tool("analyze_image", {"images": str(images / name), "model": "model-a"})
        )

    assert problem in msg
    assert fake.backend.count("load") == 0


async def test_a_fifo_is_refused_without_blocking(fake: Fake, images: Path) -> None:
    os.mkfifo(images / "pipe.png")

    with trio.fail_after(5):
        msg = error(
            await fake.client.call_tool(
                "analyze_image", {"images": str(images / "pipe.png"), "model": "model-a"}
            )
        )

    assert "not a regular file" in msg


# -- remote images (opt-in) --


def fetcher(routes: dict[str, httpx.Response], addresses: dict[str, str]) -> RemoteFetcher:
    def handle(request: httpx.Request) -> httpx.Response:
        # The fetcher connects to the address it checked and names the host in Host.
        url = f"{request.url.scheme}://{request.headers['host']}{request.url.raw_path.decode()}"
        return routes.get(url, httpx.Response(404))

    async def resolve(host: str, port: int) -> list[str]:
        await trio.lowlevel.checkpoint()
        if host not in addresses:
            raise OSError("Name or service not known")
        return [addresses[host]]

    return RemoteFetcher(transport=httpx.MockTransport(handle), resolve=resolve)


async def endless() -> AsyncIterator[bytes]:
    # A body with no Content-Length that never ends: the fetch must stop at the limit.
    yield png()
    while True:
        await trio.lowlevel.checkpoint()
        yield b"\0" * 1024


@pytest.fixture
async def remote_client(lm: LMStudio) -> AsyncIterator[Client]:
    routes = {
        "https://images.example/cat.png": httpx.Response(200, content=png()),
        "https://images.example/hop": httpx.Response(
            302, headers={"location": "http://intranet/x.png"}
        ),
        "https://images.example/page": httpx.Response(200, content=b"<html>hi</html>"),
        "https://images.example/huge.png": httpx.Response(200, content=png() + b"\0" * 5000),
        "https://images.example/endless.png": httpx.Response(200, content=endless()),
    }
    addresses = {"images.example": PUBLIC, "intranet": "10.0.0.7", "localhost": "127.0.0.1"}
    allowed = FrontendSettings(allow_remote_images=True, max_image_bytes=4096)
    async with mcp_client(
        lm.orch, allowed, inference_client=lm.inference, fetcher=fetcher(routes, addresses)
    ) as c:
        yield c


async def test_a_public_remote_image_is_fetched_when_allowed(
    lm: LMStudio, remote_client: Client
) -> None:
    out = ok(
        await remote_client.call_tool(
            "analyze_image",
            {"images": "https://images.example/cat.png", "model": GEMMA, "mode": "ocr"},
        )
    )

    assert out["images"][0]["source"] == "https://images.example/cat.png"
    assert image_parts(lm.sim)[1]["image_url"]["url"] == data_url(png())
    tools = {t.name: t for t in (await remote_client.list_tools()).tools}
    assert tools["analyze_image"].annotations is not None
    assert tools["analyze_image"].annotations.open_world_hint is True


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1/x.png", "not a public address"),
        ("http://[::1]/x.png", "not a public address"),
        ("http://localhost/x.png", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://images.example/hop", "'intranet': it is not a public address"),
        ("https://nowhere.example/x.png", "cannot resolve 'nowhere.example'"),
        ("https://user:pw@images.example/cat.png", "must not carry credentials"),
        ("https://images.example/page", "is not an image"),
        ("https://images.example/huge.png", "is 5069 bytes; the limit is 4096"),
        pytest.param(
            "https://images.example/endless.png",
            "over the 4096-byte limit",
            # Stopping at the limit abandons httpx's nested async generators (aiter_bytes,
            # aiter_raw, the stream wrappers), which no caller can close from outside;
            # trio finalizes them, closing the stream, and warns as it does. Nothing leaks.
            marks=pytest.mark.filterwarnings(
                "ignore:Async generator 'httpx.*garbage collected:ResourceWarning"
            ),
        ),
        ("https://images.example/gone.png", "answered HTTP 404"),
    ],
)
async def test_unsafe_or_bad_remote_images_are_refused(
    lm: LMStudio, remote_client: Client, url: str, problem: str
) -> None:
    msg = error(await remote_client.call_tool("analyze_image", {"images": url, "model": GEMMA}))

    assert problem in msg
    assert lm.sim.state.loads == []
