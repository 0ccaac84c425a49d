"""Make an embedding model from the demo model's weights: add a pooling type to its GGUF.

No small embedding GGUF ships in a registry package, so the embedding tests use
SmolLM2-135M's own weights with ``llama.pooling_type = 1`` (mean) added to its
metadata: llama.cpp then serves it as an embedding model (mean-pooled
sentence vectors), and our catalogue types it ``embedding`` from that key, as
it does real embedding GGUFs (nomic-embed, bge, ...). The vectors mean little;
the path they take (catalogue type, worker flags, ``/v1/embeddings``) is the
real one.

A GGUF file is header, key/value metadata, tensor descriptions, padding to the
alignment, then tensor data whose offsets count from the data's start; so a
key is added by rewriting everything before the data and re-padding.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from orchestrator.backends.gguf import _Reader  # the project's own header walker

__all__ = ["with_pooling"]

_UINT32 = 4
_MEAN_POOLING = 1


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def with_pooling(src: Path, dst: Path, pooling: int = _MEAN_POOLING) -> Path:
    """Write ``src`` to ``dst`` with ``<arch>.pooling_type = pooling`` added.

    Returns:
        ``dst``.
    """
    with src.open("rb") as fh:
        reader = _Reader(fh, src, src.stat().st_size)
        assert reader.magic() == b"GGUF"
        version = int(reader.unpack("<I"))
        tensors, kvs = int(reader.unpack("<Q")), int(reader.unpack("<Q"))
        arch, alignment = "llama", 32
        for _ in range(kvs):
            key = reader.string()
            value = reader.value(int(reader.unpack("<I")))
            if key == "general.architecture" and isinstance(value, str):
                arch = value
            if key == "general.alignment" and isinstance(value, int):
                alignment = value
        kv_end = fh.tell()
        for _ in range(tensors):
            reader.string()
            dims = int(reader.unpack("<I"))
            reader.skip(8 * dims + 4 + 8)  # dims, type, offset
        infos_end = fh.tell()
        data_start = -(-infos_end // alignment) * alignment
        fh.seek(0)
        head = fh.read(infos_end)
        fh.seek(data_start)
        added = _string(f"{arch}.pooling_type") + struct.pack("<II", _UINT32, pooling)
        before = (
            b"GGUF"
            + struct.pack("<IQQ", version, tensors, kvs + 1)
            + head[24:kv_end]
            + added
            + head[kv_end:infos_end]
        )
        with dst.open("wb") as out:
            out.write(before + b"\0" * (-len(before) % alignment))
            shutil.copyfileobj(fh, out)
    return dst
