"""Hostile GGUF files: the reader raises only its own error and allocates at most the file size.

One flipped bit in a real model's vocabulary (a string length, an array count)
used to make the header reader ask Python for 2**62 bytes, which killed
``lmsorch serve --backend llamacpp`` at start. Every length is now checked
against the bytes left in the file; a corrupt file is listed as unusable with
the reason, and the server serves the others.
"""

from __future__ import annotations

import struct
import sys
import tracemalloc
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters

from orchestrator.backends.gguf import GGUFError, GGUFInfo, read_gguf_info
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.config import LlamaCppSettings
from tests.mcp_frontend.mcp_support import DEMO, ok, server_env

HUGE = (1 << 62, (1 << 64) - 1, 1 << 40, 1 << 32, (1 << 24) + 1)
SLACK = 1 << 20  # Python's own objects while parsing; far below any runaway allocation


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def header_with_arrays(tokens: int = 50) -> bytes:
    """A GGUF v3 header as real ones are: scalars, a string array (vocabulary), a u32 array."""
    kvs = [
        _string("general.architecture") + struct.pack("<I", 8) + _string("llama"),
        _string("llama.context_length") + struct.pack("<II", 4, 2048),
        _string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, tokens)
        + b"".join(_string(f"tok{i}") for i in range(tokens)),
        _string("tokenizer.ggml.token_type")
        + struct.pack("<IIQ", 9, 4, tokens)
        + struct.pack(f"<{tokens}I", *range(tokens)),
    ]
    return b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)) + b"".join(kvs)


def _read_within_bounds(path: Path) -> GGUFInfo | GGUFError:
    """Read ``path``; return the info or the reader's own error, measuring the peak."""
    tracemalloc.start()
    try:
        return read_gguf_info(path)
    except GGUFError as exc:
        return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= path.stat().st_size + SLACK, f"allocated {peak} bytes"


def test_a_tiny_file_with_a_huge_string_in_an_array_is_refused(tmp_path: Path) -> None:
    # The reported crash: one string array whose element length is 2**62.
    body = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 1, 1)
        + _string("t")
        + struct.pack("<IIQ", 9, 8, 1)
        + struct.pack("<Q", 1 << 62)
    )
    path = tmp_path / "bad.gguf"
    path.write_bytes(body)  # 57 bytes
    with pytest.raises(GGUFError, match="corrupt"):
        read_gguf_info(path)


@pytest.mark.parametrize("huge", HUGE)
@pytest.mark.parametrize("field", ["tensor count", "kv count", "array count", "element length"])
def test_every_length_and_count_is_bounded(tmp_path: Path, field: str, huge: int) -> None:
    body = bytearray(header_with_arrays(3))
    vocab = body.index(b"tokenizer.ggml.tokens") + len("tokenizer.ggml.tokens")
    offset = {
        "tensor count": 8,
        "kv count": 16,
        "array count": vocab + 8,  # after the value type and element type
        "element length": vocab + 16,  # the first token's length
    }[field]
    body[offset : offset + 8] = struct.pack("<Q", huge)
    path = tmp_path / "m.gguf"
    path.write_bytes(bytes(body))
    assert isinstance(_read_within_bounds(path), GGUFError)


mutations = st.one_of(
    st.tuples(st.just("u64"), st.integers(0, 10**9), st.sampled_from(HUGE)),
    st.tuples(st.just("bit"), st.integers(0, 10**9), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 10**9), st.just(0)),
)


def _mutate(data: bytes, mutation: tuple[str, int, int]) -> bytes:
    kind, where, arg = mutation
    if not data:
        return data
    where %= len(data)
    match kind:
        case "u64":
            return data[:where] + struct.pack("<Q", arg) + data[where + 8 :]
        case "bit":
            return data[:where] + bytes([data[where] ^ (1 << arg)]) + data[where + 1 :]
        case _:
            return data[:where]


@settings(max_examples=300)
@given(st.lists(mutations, min_size=1, max_size=3))
def test_mutated_headers_fail_only_with_the_readers_error(
    tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, int, int]]
) -> None:
    data = header_with_arrays()
    for change in changes:
        data = _mutate(data, change)
    path = tmp_path_factory.mktemp("gguf") / "m.gguf"
    path.write_bytes(data)
    _read_within_bounds(path)  # GGUFInfo or GGUFError; anything else fails the test


@pytest.fixture(scope="module")
def real_header(demo_model_dir: Path) -> bytes:
    """The demo model's first 2 MiB: its whole header (vocabulary and merges, 1.7 MiB)."""
    with next(demo_model_dir.glob("*.gguf")).open("rb") as fh:
        return fh.read(2 << 20)


@settings(max_examples=40)
@given(st.lists(mutations, min_size=1, max_size=2))
def test_mutations_of_a_real_header_fail_only_with_the_readers_error(
    tmp_path_factory: pytest.TempPathFactory,
    real_header: bytes,
    changes: list[tuple[str, int, int]],
) -> None:
    data = real_header
    for change in changes:
        data = _mutate(data, change)
    path = tmp_path_factory.mktemp("real") / "m.gguf"
    path.write_bytes(data)
    _read_within_bounds(path)


async def test_a_corrupt_file_is_listed_as_unusable_beside_the_good_ones(tmp_path: Path) -> None:
    (tmp_path / "good.gguf").write_bytes(header_with_arrays())
    bad = bytearray(header_with_arrays())
    bad[16:24] = struct.pack("<Q", 1 << 62)
    (tmp_path / "bad.gguf").write_bytes(bytes(bad))
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(tmp_path)))

    models = {m.key: m for m in await backend.list_available()}

    assert models["good"].problem is None
    assert models["good"].max_context_length == 2048
    assert models["bad"].problem is not None
    assert "bad.gguf" in models["bad"].problem
    assert "corrupt" in models["bad"].problem


async def test_the_server_starts_beside_a_corrupt_file_and_lists_it_as_unusable(
    tmp_path: Path, demo_model_dir: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    demo = next(demo_model_dir.glob("*.gguf"))
    (models / demo.name).symlink_to(demo)
    with demo.open("rb") as fh:
        head = fh.read(4096)  # ends inside the vocabulary: its last 8 bytes become a length
    (models / "vocab-flip.gguf").write_bytes(head[:-8] + struct.pack("<Q", 1 << 62))
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models))
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_frontend", "--backend", "llamacpp"], env=env
    )
    with trio.fail_after(60):
        async with Client(params) as client:
            listed = ok(await client.call_tool("list_models", {}))

    by_key = {m["key"]: m for m in listed["models"]}
    assert by_key[DEMO]["unusable"] is None
    assert "vocab-flip.gguf" in by_key["vocab-flip"]["unusable"]
