"""The embedded backend's catalogue: GGUF files in a models directory, and their keys.

Key scheme (stable, friendly, and valid as a model name): the file's path
relative to the models directory, without the ``.gguf`` suffix, lowercased,
with every run of characters outside ``a-z 0-9 . _ - /`` replaced by ``-``::

    SmolLM2-135M-Instruct.Q4_1.gguf            -> smollm2-135m-instruct.q4_1
    Qwen/Qwen2.5 0.5B-Instruct-Q4_K_M.gguf     -> qwen/qwen2.5-0.5b-instruct-q4_k_m
    big-model-00001-of-00003.gguf              -> big-model   (later shards are not listed)

Skipped: hidden files and directories (including our own ``.part`` temp
files), vision projectors (``mmproj*``) and shards other than the first. A file
whose header is corrupt is still listed, with the reason as its ``problem`` (and
one warning per file version), so one bad file never hides or stops the others.
When two files map to one key, the first in sorted path order wins and the
other is logged. The key depends only on the path, never on the contents, so
it survives re-downloads and is the same on every machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from orchestrator.backends.base import ModelInfo
from orchestrator.backends.gguf import GGUFError, GGUFInfo, read_gguf_info
from orchestrator.errors import InvalidModelName
from orchestrator.names import validate_model_name

__all__ = ["CatalogEntry", "GGUFCatalog", "model_key"]

_log = structlog.get_logger("orchestrator.backends.llamacpp")

_SHARD = re.compile(r"-(\d{5})-of-\d{5}$")
_UNSAFE = re.compile(r"[^a-z0-9._\-/]+")


def model_key(relative: str) -> str | None:
    """Return the catalogue key for a GGUF file at ``relative`` (POSIX path), or None.

    None means the file is not offered: not a ``.gguf`` file, a later shard,
    or a name that cannot become a valid model name.
    """
    if not relative.lower().endswith(".gguf"):
        return None
    stem = relative[: -len(".gguf")]
    shard = _SHARD.search(stem)
    if shard is not None:
        if shard.group(1) != "00001":
            return None
        stem = stem[: shard.start()]
    key = _UNSAFE.sub("-", stem.lower()).strip("-")
    if any(part in ("", ".", "..") for part in key.split("/")):
        return None
    try:
        return validate_model_name(key)
    except InvalidModelName:
        return None


@dataclass(frozen=True)
class CatalogEntry:
    """One model file: its key, path and (when readable) header."""

    key: str
    path: Path
    size_bytes: int
    info: GGUFInfo | None
    problem: str | None = None

    def model_info(self) -> ModelInfo:
        """Describe this file as a :class:`ModelInfo`."""
        embedding = "embed" in self.key or (self.info is not None and self.info.is_embedding)
        return ModelInfo(
            key=self.key,
            type="embedding" if embedding else "llm",
            size_bytes=self.size_bytes,
            max_context_length=self.info.context_length if self.info else None,
            problem=self.problem,
            architecture=self.info.architecture if self.info else None,
            quantization=self.info.quantization if self.info else None,
            params=self.info.params if self.info else None,
        )


class GGUFCatalog:
    """Scans a models directory; remembers headers by (path, size, mtime) so rescans are cheap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._headers: dict[Path, tuple[tuple[int, int], GGUFInfo | str]] = {}
        self._warned: str | None = None

    def problem(self) -> str | None:
        """Why the directory offers nothing: missing, not a directory, or unreadable."""
        hint = "set LMSORCH_LLAMACPP_MODELS_DIR, or run `lmsorch models fetch-demo`"
        if not self.root.exists():
            return f"the models directory {self.root} does not exist; {hint}"
        if not self.root.is_dir():
            return f"the models directory {self.root} is not a directory; {hint}"
        if not os.access(self.root, os.R_OK | os.X_OK):
            return f"the models directory {self.root} is not readable by this user"
        return None

    def scan(self) -> dict[str, CatalogEntry]:
        """Return every offered model by key (blocking file I/O: run it in a thread)."""
        entries: dict[str, CatalogEntry] = {}
        problem = self.problem()
        if problem != self._warned:  # once per problem, not once per scan
            self._warned = problem
            if problem is not None:
                _log.warning("models_dir_unusable", problem=problem)
        if problem is not None:
            return entries
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.name.lower().startswith("mmproj") or not path.is_file():
                continue
            key = model_key(relative.as_posix())
            if key is None:
                continue
            if key in entries:
                _log.warning(
                    "duplicate_model_key", key=key, kept=str(entries[key].path), skipped=str(path)
                )
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished while we looked
            header = self._header(path, stat)
            info, problem = (header, None) if isinstance(header, GGUFInfo) else (None, header)
            entries[key] = CatalogEntry(key, path, stat.st_size, info, problem)
        return entries

    def _header(self, path: Path, stat: os.stat_result) -> GGUFInfo | str:
        """The file's header, or why it cannot be read (warned once per file version)."""
        size, mtime = stat.st_size, stat.st_mtime_ns
        cached = self._headers.get(path)
        if cached is not None and cached[0] == (size, mtime):
            return cached[1]
        header: GGUFInfo | str
        try:
            header = read_gguf_info(path)
        except (GGUFError, OSError) as exc:
            header = str(exc)
            _log.warning("model_file_unusable", path=str(path), reason=header)
        self._headers[path] = ((size, mtime), header)
        return header
