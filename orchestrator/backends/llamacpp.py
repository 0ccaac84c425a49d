"""The embedded llama.cpp backend: GGUF files served by one worker process per model.

``load`` starts a worker (``llamacpp_worker``: llama.cpp's HTTP server through
``xllamacpp``, or an external ``llama-server`` binary) on a free loopback port
and returns once it answers ``/health`` and lists the model under its
identifier. ``unload`` stops it (SIGTERM, then SIGKILL) and reaps it. A worker
that died is simply no longer listed, which the core treats as ``LOST``.

TTL: the core's idle timer owns expiry and calls ``unload``. The workers do
not expire on their own, because they cannot see leases: a model held by a
long agent run but idle on HTTP must stay loaded. What the backend does
guarantee is that no worker outlives the orchestrator process, even one
killed with SIGKILL (see ``llamacpp_worker``), so memory is always freed.

Catalogue keys are derived from file names; see ``llamacpp_catalog``.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import structlog
import trio

from orchestrator.backends.base import BackendHealth, LoadedModel, ModelInfo
from orchestrator.backends.gguf import GGUFError, GGUFInfo, read_gguf_info
from orchestrator.backends.llamacpp_catalog import CatalogEntry, GGUFCatalog
from orchestrator.backends.llamacpp_process import PortTaken, StartSpec, Worker, start_worker
from orchestrator.config import LlamaCppSettings
from orchestrator.errors import (
    BackendRejected,
    InvalidRequest,
    ModelNotLoaded,
    UnknownModel,
)
from orchestrator.names import validate_model_name

__all__ = ["LlamaCppBackend", "estimate_memory_bytes"]

_log = structlog.get_logger("orchestrator.backends.llamacpp")

# A port taken between our check and the worker's bind is retried on another port.
_PORT_ATTEMPTS = 3
# Compute buffers, the server itself and the Python interpreter (measured: ~200 MB
# RSS for SmolLM2-135M, whose weights are 98 MB and KV cache 47 MB at 2048 tokens).
_OVERHEAD_BYTES = 96 << 20


class LlamaCppBackend:
    """Serve GGUF models from a directory, one llama.cpp worker process per loaded model.

    Args:
        settings: models directory, threads, context length, port range, timeouts.
        llm_embeddings: also serve ``/v1/embeddings`` (mean pooling) for chat
            models. Off by default: llama.cpp then computes outputs for every
            prompt token, which costs chat speed on large models. Embedding
            models (by GGUF header or ``embed`` in the key) always serve it;
            a chat model without it answers ``/v1/embeddings`` with HTTP 501.
    """

    name = "llamacpp"

    def __init__(
        self, settings: LlamaCppSettings | None = None, *, llm_embeddings: bool = False
    ) -> None:
        self.settings = settings or LlamaCppSettings()  # validated: ports, paths, timeouts
        self.llm_embeddings = llm_embeddings
        self.models_dir: Path = self.settings.resolved_models_dir()
        self._catalog = GGUFCatalog(self.models_dir)
        self._workers: dict[str, Worker] = {}

    # -- catalogue --

    async def list_available(self) -> list[ModelInfo]:
        """Return every GGUF model in the models directory, sorted by key."""
        entries = await self._scan()
        return [entries[k].model_info() for k in sorted(entries)]

    async def _scan(self) -> dict[str, CatalogEntry]:
        return await trio.to_thread.run_sync(self._catalog.scan)

    def catalog_problem(self) -> str | None:
        """Why no model can be offered: the models directory is missing or unreadable."""
        return self._catalog.problem()

    # -- lifecycle --

    async def list_loaded(self) -> list[LoadedModel]:
        """Return the models whose worker is alive (still-starting ones as ``"loading"``)."""
        await self._reap_dead()
        return [
            LoadedModel(
                identifier=ident,
                key=w.spec.key,
                ttl_s=w.ttl_s,
                status="loaded" if w.ready else "loading",
            )
            for ident, w in sorted(self._workers.items())
        ]

    async def load(
        self,
        key: str,
        *,
        identifier: str,
        ttl_s: float,
        context_length: int | None = None,
    ) -> None:
        """Start a worker serving ``key`` as ``identifier``; return once it is healthy.

        Loading an identifier that is already loaded from the same key is a no-op.

        Raises:
            InvalidRequest: a non-positive TTL or context length.
            UnknownModel: no GGUF file has this key (the error lists the keys).
            BackendRejected: the file is not a loadable GGUF, memory is short, no
                port in the range is free, or ``identifier`` is busy.
            BackendTimeout: the worker did not become healthy in ``start_timeout_s``.
            BackendServerError: the worker died while starting for another reason.

        Cancellation: the worker being started is stopped before this returns.
        """
        identifier = validate_model_name(identifier)
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise InvalidRequest(f"ttl_s must be a positive, finite number, got {ttl_s!r}")
        if context_length is not None and context_length < 1:
            raise InvalidRequest(f"context_length must be positive, got {context_length!r}")
        await self._reap_dead()
        existing = self._workers.get(identifier)
        if existing is not None:
            if existing.ready and existing.spec.key == key:
                return
            state = "ready" if existing.ready else "still starting"
            raise BackendRejected(
                f"identifier {identifier!r} is in use ({state}, model {existing.spec.key!r})"
            )
        entries = await self._scan()
        entry = entries.get(key)
        if entry is None:
            raise UnknownModel(key, list(entries), why=self.catalog_problem())
        info = await self._vet(entry)
        n_ctx = context_length or self.settings.context_length
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
        self._check_memory(entry, info, n_ctx)
        embedding = entry.model_info().type == "embedding"
        taken: set[int] = set()
        for _attempt in range(_PORT_ATTEMPTS):
            spec = StartSpec(
                key=key,
                identifier=identifier,
                path=entry.path,
                port=self._free_port(exclude=taken),
                context_length=n_ctx,
                threads=self._threads(),
                embedding=embedding or self.llm_embeddings,
                mean_pooling=not embedding,
                server_binary=self.settings.server_binary,
            )
            worker = await start_worker(spec, ttl_s)
            self._workers[identifier] = worker
            try:
                await worker.wait_ready(self.settings.start_timeout_s)
            except PortTaken:
                taken.add(spec.port)
                await self._stop(worker)
                _log.info("port_taken_retrying", model=key, port=spec.port)
                continue
            except BaseException:
                await self._stop(worker)
                raise
            worker.ready = True
            _log.info("worker_ready", model=key, identifier=identifier, port=spec.port)
            return
        raise BackendRejected(
            f"could not start {key!r}: {_PORT_ATTEMPTS} ports in "
            f"{self.settings.port_min}-{self.settings.port_max} were taken as the worker bound them"
        )

    async def unload(self, identifier: str) -> None:
        """Stop the worker serving ``identifier``; absent is not an error."""
        worker = self._workers.get(identifier)
        if worker is None:
            await trio.lowlevel.checkpoint()
            return
        await self._stop(worker)

    def base_url(self, identifier: str) -> str:
        """Return ``http://127.0.0.1:<port>/v1`` for ``identifier``.

        Raises:
            ModelNotLoaded: no live worker serves ``identifier``.
        """
        worker = self._workers.get(identifier)
        if worker is None or not worker.alive:
            raise ModelNotLoaded(f"{identifier!r} is not loaded on the llama.cpp backend")
        return worker.base_url

    def worker_pid(self, identifier: str) -> int | None:
        """Return the process id of the worker serving ``identifier``, if one is running."""
        worker = self._workers.get(identifier)
        return worker.process.pid if worker is not None and worker.alive else None

    def http_headers(self) -> Mapping[str, str]:
        """No headers: workers listen on loopback only, without an API key."""
        return {}

    async def health(self) -> BackendHealth:
        """Report whether workers can be started, with the xllamacpp version."""
        await self._reap_dead()
        loaded = f"{len(self._workers)} worker(s) running; models in {self.models_dir}"
        binary = self.settings.server_binary
        if binary is not None:
            found = shutil.which(binary)  # a path, or a name on PATH
            ok = found is not None
            detail = f"llama-server {found}" if ok else f"llama-server {binary!r} not found"
            return BackendHealth(reachable=ok, backend=self.name, detail=f"{detail}; {loaded}")
        try:
            version = metadata.version("xllamacpp")
        except metadata.PackageNotFoundError:
            return BackendHealth(
                reachable=False,
                backend=self.name,
                detail="xllamacpp is not installed: install the embedded extra "
                "(pip install -e '.[embedded]' in the clone)",
            )
        return BackendHealth(reachable=True, backend=self.name, version=version, detail=loaded)

    async def aclose(self) -> None:
        """Stop every worker (concurrently), shielded from cancellation."""
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for worker in list(self._workers.values()):
                    nursery.start_soon(self._stop, worker)

    # -- internals --

    async def _stop(self, worker: Worker) -> None:
        if self._workers.get(worker.spec.identifier) is worker:
            del self._workers[worker.spec.identifier]
        await worker.stop(self.settings.stop_timeout_s)

    async def _reap_dead(self) -> None:
        """Forget workers that died (crash, OOM kill, kill -9): the core will see them LOST."""
        await trio.lowlevel.checkpoint()
        for worker in list(self._workers.values()):
            if not worker.alive and not worker.stopping:
                _log.warning(
                    "worker_died",
                    model=worker.spec.key,
                    identifier=worker.spec.identifier,
                    returncode=worker.process.returncode,
                    output=worker.tail(2000)[-500:],
                )
                await self._stop(worker)  # nothing to signal; closes its pipe and log

    async def _vet(self, entry: CatalogEntry) -> GGUFInfo:
        if entry.info is not None:
            return entry.info  # read by this very scan (cached by size and mtime)
        try:
            return await trio.to_thread.run_sync(read_gguf_info, entry.path)
        except GGUFError as exc:
            raise BackendRejected(f"cannot load {entry.key!r} ({entry.path}): {exc}") from exc
        except OSError as exc:
            raise BackendRejected(f"cannot read {entry.key!r} ({entry.path}): {exc}") from exc

    def _check_memory(self, entry: CatalogEntry, info: GGUFInfo, n_ctx: int) -> None:
        need = estimate_memory_bytes(entry.size_bytes, info, n_ctx)
        available = _available_memory_bytes()
        if available is not None and need > available:
            raise BackendRejected(
                f"not enough memory to load {entry.key!r}: it needs about {need >> 20} MiB "
                f"(weights, KV cache for {n_ctx} tokens, buffers) and {available >> 20} MiB are "
                "available; unload other models or lower the context length"
            )

    def _threads(self) -> int:
        # More threads than usable cores only makes llama.cpp's threads fight.
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        return max(1, min(self.settings.threads, cores))

    def _free_port(self, exclude: set[int]) -> int:
        ours = exclude | {w.spec.port for w in self._workers.values()}
        for port in range(self.settings.port_min, self.settings.port_max + 1):
            if port not in ours and _port_is_free(port):
                return port
        raise BackendRejected(
            f"no free loopback port in {self.settings.port_min}-{self.settings.port_max} for a "
            "llama.cpp worker; widen LMSORCH_LLAMACPP_PORT_MIN/PORT_MAX or free some ports"
        )


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


def _available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _port_is_free(port: int) -> bool:
    """Whether we can bind 127.0.0.1:``port`` right now (the worker binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As llama.cpp's HTTP server does: a port whose old connections linger in
        # TIME_WAIT (e.g. from a worker that just stopped) is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
