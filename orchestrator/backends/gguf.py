"""A small GGUF header reader: enough to vet a file and describe it, no tensors read.

We check a file before a worker process is spawned for it, so a non-GGUF or
badly truncated file fails with a clear message instead of a crash log. The
format (little-endian)::

    magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
    kv_count x (key: string, value_type: u32, value)
    string = u64 length + UTF-8 bytes; array = elem_type u32 + count u64 + elems

Only scalar metadata is kept (arrays such as the tokenizer vocabulary are
skipped), and the key/value section is read to its end so a file cut inside
its header is caught here. Every length and count is checked against the bytes
left in the file before anything is read or allocated, so a corrupt header (one
flipped bit in a vocabulary length) costs at most the file's size and fails
with :class:`GGUFError`, never another exception. A file cut inside its tensor
data passes this check and is rejected by llama.cpp itself ("data is not within
the file bounds").
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["GGUFError", "GGUFInfo", "estimate_memory_bytes", "read_gguf_info"]

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# Sanity bounds: a real header never comes close; a garbage file would make
# us allocate or loop for ever.
_MAX_COUNT = 1 << 24
_MAX_STRING = 1 << 24

# value_type -> struct format of one fixed-size scalar
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9

# Architectures that are embedding models (llama.cpp names).
_EMBEDDING_ARCHS = frozenset(
    {
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "neo-bert",
        "t5encoder",
    }
)


class GGUFError(ValueError):
    """The file is not a usable GGUF file; the message says why."""


# llama.cpp include/llama.h ``enum llama_ftype`` (LLAMA_FTYPE_MOSTLY_*; gaps are removed types).
_FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says about a model.

    Attributes:
        version: the GGUF format version.
        tensor_count: how many tensors the file declares.
        metadata: scalar metadata (strings, numbers, booleans) by key.
    """

    version: int
    tensor_count: int
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        """The model architecture (``general.architecture``), e.g. ``"llama"``."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    def arch_int(self, name: str) -> int | None:
        """Return the integer ``<architecture>.<name>`` (e.g. ``context_length``), if present."""
        value = self.metadata.get(f"{self.architecture}.{name}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def quantization(self) -> str | None:
        """The weights' type from ``general.file_type`` (``llama_ftype`` in llama.cpp's llama.h)."""
        value = self.metadata.get("general.file_type")
        return _FILE_TYPES.get(value) if isinstance(value, int) else None

    @property
    def params(self) -> str | None:
        """The parameter count as the file labels it (``general.size_label``, e.g. ``"135M"``)."""
        value = self.metadata.get("general.size_label")
        return value if isinstance(value, str) else None

    @property
    def context_length(self) -> int | None:
        """The context the model was trained for, if the header says."""
        return self.arch_int("context_length")

    @property
    def is_embedding(self) -> bool:
        """Whether this looks like an embedding model (architecture or a pooling type)."""
        return self.architecture in _EMBEDDING_ARCHS or self.arch_int("pooling_type") is not None


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path, size: int) -> None:
        self._fh = fh
        self._path = path
        self._left = size

    def _claim(self, n: int) -> None:
        # Before any read or seek: a length beyond the file is corruption, not a big read.
        if n > self._left:
            raise GGUFError(
                f"{self._path.name}: truncated GGUF header, or a corrupt length (needs {n} "
                f"more bytes, {self._left} left in the file)"
            )
        self._left -= n

    def magic(self) -> bytes:
        # Read as is: a file shorter than the magic is "not GGUF", not "truncated".
        head = self._fh.read(len(MAGIC))
        self._left -= len(head)
        return head

    def take(self, n: int) -> bytes:
        self._claim(n)
        data = self._fh.read(n)
        if len(data) != n:  # the file shrank while we read it
            raise GGUFError(f"{self._path.name}: truncated GGUF header (file ends early)")
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def count(self, what: str, *, min_bytes_each: int = 0) -> int:
        n = int(self.unpack("<Q"))
        if n > _MAX_COUNT:
            raise GGUFError(f"{self._path.name}: implausible {what} ({n}); corrupt GGUF header")
        if n * min_bytes_each > self._left:
            raise GGUFError(
                f"{self._path.name}: {what} {n} does not fit in the {self._left} bytes left: "
                "truncated GGUF header, or a corrupt count"
            )
        return n

    def length(self) -> int:
        n = int(self.unpack("<Q"))
        if n > _MAX_STRING:
            raise GGUFError(
                f"{self._path.name}: implausible string length {n}; corrupt GGUF header"
            )
        return n

    def string(self) -> str:
        return self.take(self.length()).decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        self._claim(n)  # checked against the file size, so seeking cannot pass its end
        self._fh.seek(n, 1)

    def value(self, vtype: int) -> str | int | float | bool | None:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = int(self.unpack("<I"))
            if etype in _SCALARS:
                width = struct.calcsize(_SCALARS[etype])
                self.skip(self.count("array length", min_bytes_each=width) * width)
            elif etype == _STRING:
                for _ in range(self.count("array length", min_bytes_each=8)):
                    self.skip(self.length())
            else:
                raise GGUFError(f"{self._path.name}: unsupported GGUF array element type {etype}")
            return None
        raise GGUFError(f"{self._path.name}: unknown GGUF value type {vtype}; corrupt header?")


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read and check the header and metadata of the GGUF file at ``path``.

    Raises:
        GGUFError: the file is not GGUF (bad magic), uses an unsupported
            version, or its header is truncated or corrupt.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as fh:
        reader = _Reader(fh, path, os.fstat(fh.fileno()).st_size)
        head = reader.magic()
        if head != MAGIC:
            raise GGUFError(
                f"{path.name} is not a GGUF file (starts with {head!r}, expected {MAGIC!r})"
            )
        version = int(reader.unpack("<I"))
        if version not in SUPPORTED_VERSIONS:
            raise GGUFError(
                f"{path.name}: unsupported GGUF version {version} "
                f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        tensor_count = reader.count("tensor count")
        kv_count = reader.count("metadata count", min_bytes_each=12)  # key length + value type
        if tensor_count == 0:
            raise GGUFError(f"{path.name}: GGUF file declares no tensors")
        metadata: dict[str, str | int | float | bool] = {}
        for _ in range(kv_count):
            key = reader.string()
            value = reader.value(int(reader.unpack("<I")))
            if value is not None:
                metadata[key] = value
    return GGUFInfo(version=version, tensor_count=tensor_count, metadata=metadata)


# Compute buffers, the server itself and the Python interpreter (measured: ~200 MB
# RSS for SmolLM2-135M, whose weights are 98 MB and KV cache 47 MB at 2048 tokens).
_OVERHEAD_BYTES = 96 << 20


def estimate_memory_bytes(size_bytes: int, info: GGUFInfo | None, n_ctx: int) -> int:
    """Estimate a worker's memory: weights + f16 KV cache for ``n_ctx`` tokens + overhead.

    Without header facts, a quarter of the weights stands in for the KV cache.
    """
    kv = size_bytes // 4
    if info is not None:
        layers, embd = info.arch_int("block_count"), info.arch_int("embedding_length")
        heads = info.arch_int("attention.head_count")
        kv_heads = info.arch_int("attention.head_count_kv") or heads
        if layers and embd and heads and kv_heads:
            # K and V, 2 bytes each (f16), per layer, per token, per KV head dimension.
            kv = 2 * 2 * layers * n_ctx * (embd // heads) * kv_heads
    return size_bytes + kv + _OVERHEAD_BYTES
