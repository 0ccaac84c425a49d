"""The embedded backend's catalogue, GGUF vetting and refusals that need no worker process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from orchestrator.backends import llamacpp_host
from orchestrator.backends.gguf import GGUFError, read_gguf_info
from orchestrator.backends.llamacpp import LlamaCppBackend, estimate_memory_bytes
from orchestrator.backends.llamacpp_catalog import model_key
from orchestrator.config import LlamaCppSettings
from orchestrator.errors import BackendRejected, ConfigError, InvalidRequest, UnknownModel

from .llamacpp_support import Procs, write_gguf

LLAMA_META: dict[str, str | int] = {
    "general.architecture": "llama",
    "llama.context_length": 4096,
    "llama.block_count": 2,
    "llama.embedding_length": 64,
    "llama.attention.head_count": 4,
}


@pytest.mark.parametrize(
    ("relative", "key"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct.q4_1"),
        ("Qwen/Qwen2.5 0.5B-Instruct-Q4_K_M.GGUF", "qwen/qwen2.5-0.5b-instruct-q4_k_m"),
        ("big-model-00001-of-00003.gguf", "big-model"),
        ("big-model-00002-of-00003.gguf", None),
        ("weird+name (copy).gguf", "weird-name-copy"),
        ("notes.txt", None),
        ("-.gguf", None),
    ],
)
def test_key_scheme(relative: str, key: str | None) -> None:
    assert model_key(relative) == key


def test_gguf_reader_reads_metadata_and_refuses_junk(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", LLAMA_META))
    assert (info.version, info.architecture, info.context_length) == (3, "llama", 4096)
    assert not info.is_embedding
    bert = read_gguf_info(write_gguf(tmp_path / "b.gguf", {"general.architecture": "bert"}))
    assert bert.is_embedding

    (tmp_path / "text.gguf").write_text("hello, not a model")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf_info(tmp_path / "text.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((tmp_path / "m.gguf").read_bytes()[:40])
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf_info(cut)
    with pytest.raises(GGUFError, match="no tensors"):
        read_gguf_info(write_gguf(tmp_path / "empty.gguf", LLAMA_META, tensors=0))


async def test_catalogue_lists_gguf_files_with_size_type_and_context(tmp_path: Path) -> None:
    write_gguf(tmp_path / "Tiny-Chat.Q8_0.gguf", LLAMA_META)
    (tmp_path / "sub").mkdir()
    write_gguf(tmp_path / "sub" / "nomic-embed-text.gguf", {"general.architecture": "nomic-bert"})
    (tmp_path / "broken.gguf").write_text("junk")
    (tmp_path / ".partial.gguf.part").write_text("temp")
    write_gguf(tmp_path / "mmproj-tiny.gguf", LLAMA_META)
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(tmp_path)))

    models = {m.key: m for m in await backend.list_available()}

    assert sorted(models) == ["broken", "sub/nomic-embed-text", "tiny-chat.q8_0"]
    chat = models["tiny-chat.q8_0"]
    assert (chat.type, chat.max_context_length) == ("llm", 4096)
    assert chat.size_bytes == (tmp_path / "Tiny-Chat.Q8_0.gguf").stat().st_size
    assert models["sub/nomic-embed-text"].type == "embedding"
    # A bad file is listed (so loading it can say what is wrong), without header facts.
    assert models["broken"].max_context_length is None


async def test_missing_models_dir_is_an_empty_catalogue(tmp_path: Path) -> None:
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(tmp_path / "nope")))
    assert await backend.list_available() == []


async def test_bad_files_and_unknown_keys_fail_before_any_process(
    tmp_path: Path, procs: Procs
) -> None:
    (tmp_path / "text.gguf").write_text("hello, not a model")
    cut = write_gguf(tmp_path / "cut.gguf", LLAMA_META)
    cut.write_bytes(cut.read_bytes()[:30])
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(tmp_path)))

    with pytest.raises(BackendRejected, match=r"'text'.*not a GGUF file"):
        await backend.load("text", identifier="text", ttl_s=60)
    with pytest.raises(BackendRejected, match=r"'cut'.*truncated GGUF header"):
        await backend.load("cut", identifier="cut", ttl_s=60)
    with pytest.raises(UnknownModel) as info:
        await backend.load("missing", identifier="missing", ttl_s=60)
    assert info.value.available == ["cut", "text"]
    with pytest.raises(InvalidRequest, match="ttl_s"):
        await backend.load("cut", identifier="cut", ttl_s=float("inf"))

    assert await backend.list_loaded() == []
    assert procs.workers_of_me() == []


async def test_not_enough_memory_is_refused_up_front(
    tmp_path: Path, procs: Procs, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_gguf(tmp_path / "tiny.gguf", LLAMA_META)
    monkeypatch.setattr(llamacpp_host, "available_memory_bytes", lambda: 1 << 20)
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(tmp_path)))

    with pytest.raises(BackendRejected, match=r"not enough memory to load 'tiny'.*1 MiB"):
        await backend.load("tiny", identifier="tiny", ttl_s=60)
    assert procs.workers_of_me() == []


async def test_no_free_port_is_a_clear_error(tmp_path: Path, procs: Procs) -> None:
    write_gguf(tmp_path / "tiny.gguf", LLAMA_META)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        backend = LlamaCppBackend(
            LlamaCppSettings(models_dir=str(tmp_path), port_min=port, port_max=port)
        )
        with pytest.raises(BackendRejected, match=f"no free loopback port in {port}-{port}"):
            await backend.load("tiny", identifier="tiny", ttl_s=60)
    assert procs.workers_of_me() == []


def test_memory_estimate_counts_weights_and_kv_cache(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", LLAMA_META))
    small, large = estimate_memory_bytes(1000, info, 512), estimate_memory_bytes(1000, info, 4096)
    # K and V, f16, 2 layers, head dim 16 x 4 heads = 64 per token.
    assert large - small == 2 * 2 * 2 * (4096 - 512) * 64
    assert estimate_memory_bytes(1000, None, 512) > 1000


def test_invalid_port_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"port_min = 19000 exceeds llamacpp\.port_max = 18000"):
        LlamaCppBackend(LlamaCppSettings(port_min=19000, port_max=18000))


def test_a_missing_server_binary_is_refused_by_the_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server_binary = .*must be the path of an executable"):
        LlamaCppSettings(server_binary=str(tmp_path / "llama-server"))


async def test_health_reports_a_server_binary_removed_after_start(tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    missing = LlamaCppBackend(LlamaCppSettings(server_binary=str(binary)))
    binary.unlink()
    health = await missing.health()
    assert not health.reachable
    assert "not found" in health.detail
