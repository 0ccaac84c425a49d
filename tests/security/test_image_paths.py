"""Image files: nothing outside the allowed roots, nothing hidden, no broad implicit root.

The previous bridge's deny-list allowed the home directory (``~/.ssh``
included). Here the roots are an allow-list, symlinks are resolved before the
check, hidden paths below a root are never read, and when no root is set the
current directory serves only if it is narrower than the home directory.
Every test runs with a fake ``HOME`` in a temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_frontend.checks import images
from mcp_frontend.checks.remote_images import RemoteFetcher
from mcp_frontend.errors import ToolError
from mcp_frontend.settings import FrontendSettings

from .server_thread import PNG_1PX, ServerThread, message, serve_in_thread


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake home: pictures, credentials (some disguised as PNGs), a project, and links out."""
    home = tmp_path_factory.mktemp("home")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(PNG_1PX)
    for rel in ("pictures/cat.png", ".ssh/id_rsa.png", ".aws/credentials.png", "project/.env.png"):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_bytes(PNG_1PX)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (home / "pictures" / "link-out.png").symlink_to(outside / "secret.png")
    (home / "pictures" / "link-to-key.png").symlink_to(home / ".ssh" / "id_rsa.png")
    (home / "pictures" / "dir-out").symlink_to(outside, target_is_directory=True)
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ServerThread]:
    # The broadest root a user might set: their whole home directory.
    with serve_in_thread(home, allowed_image_roots=(str(home),)) as running:
        yield running


VISION = "google/gemma-3-4b"  # the default model takes no images, so it would be refused


def look(server: ServerThread, image: str) -> tuple[bool, str]:
    result = server.call("analyze_image", {"images": image, "model": VISION})
    return bool(result.is_error), message(result)


def test_a_picture_inside_the_root_is_read(server: ServerThread, home: Path) -> None:
    assert look(server, str(home / "pictures" / "cat.png")) == (False, "")
    assert look(server, "~/pictures/cat.png") == (False, "")


@pytest.mark.parametrize(
    "rel",
    [
        ".ssh/id_rsa",
        ".ssh/id_rsa.png",
        ".aws/credentials.png",
        "project/.env.png",
        "pictures/link-to-key.png",
    ],
)
def test_credentials_are_never_read_even_under_a_broad_root(
    server: ServerThread, home: Path, rel: str
) -> None:
    failed, text = look(server, str(home / rel))

    assert failed
    assert "hidden paths are never read" in text


@pytest.mark.parametrize(
    "path",
    [
        "pictures/link-out.png",
        "pictures/dir-out/secret.png",
        "pictures/../../outside/secret.png",
        "../outside/secret.png",
        "/etc/passwd",
        "/proc/self/environ",
        "/dev/zero",
    ],
)
def test_escapes_by_traversal_and_symlink_are_refused(
    server: ServerThread, home: Path, path: str
) -> None:
    failed, text = look(server, path if path.startswith("/") else str(home / path))

    assert failed
    assert "outside the allowed roots" in text


def test_an_overlong_path_is_refused_before_touching_the_filesystem(server: ServerThread) -> None:
    failed, text = look(server, "/" + "a/" * 3000)

    assert failed
    assert "at most 4096 characters" in text


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home" / "me"
    (home / "project").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize("cwd", ["/", "HOME", "HOME/.."])
def test_no_implicit_root_when_the_current_directory_is_too_broad(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch, cwd: str
) -> None:
    monkeypatch.chdir(cwd.replace("HOME", str(fake_home)))

    assert FrontendSettings().image_roots() == ()


def test_a_project_directory_is_the_implicit_root(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(fake_home / "project")

    assert FrontendSettings().image_roots() == ((fake_home / "project").resolve(),)


def test_explicit_roots_are_used_as_given(fake_home: Path) -> None:
    settings = FrontendSettings(allowed_image_roots=(str(fake_home), "~/project"))

    assert settings.image_roots() == (fake_home.resolve(), (fake_home / "project").resolve())


def test_without_a_root_image_files_are_off(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(fake_home)
    (fake_home / "cat.png").write_bytes(PNG_1PX)
    with serve_in_thread(fake_home, allowed_image_roots=()) as server:  # HOME is fake_home
        failed, text = look(server, str(fake_home / "cat.png"))

    assert failed
    assert "image files are off" in text


async def test_a_directory_swapped_for_a_link_after_the_check_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "album").mkdir(parents=True)
    outside.mkdir()
    (root / "album" / "cat.png").write_bytes(PNG_1PX)
    (outside / "cat.png").write_bytes(PNG_1PX)
    checked = images._resolve

    def check_then_swap(raw: str, roots: tuple[Path, ...]) -> Path:
        # The race: the path passes the check, then the directory becomes a link out.
        resolved = checked(raw, roots)
        (root / "album").rename(root / "old-album")
        (root / "album").symlink_to(outside, target_is_directory=True)
        return resolved

    monkeypatch.setattr(images, "_resolve", check_then_swap)
    settings = FrontendSettings(allowed_image_roots=(str(root),))

    with pytest.raises(ToolError, match="outside the allowed roots"):
        await images.load_images([str(root / "album" / "cat.png")], settings, RemoteFetcher())
