"""The embedded llama.cpp backend: GGUF files served by one worker process per model.

``load`` starts a worker (``llamacpp_worker``: llama.cpp's HTTP server through
``xllamacpp``, or an external ``llama-server`` binary) on a free loopback port
and returns once it answers ``/health`` and lists the model under its
identifier. ``unload`` stops it (SIGTERM, then SIGKILL) and reaps it.

A worker that dies is seen at once: :meth:`LlamaCppBackend.watch_instances`
waits on every ready worker's process (a pidfd on Linux), reaps it the moment
it exits, stops listing it and reports it, which the core turns into ``LOST``.
Without a watcher running, ``list_loaded`` reaps and forgets dead workers.

TTL: the core's idle timer owns expiry and calls ``unload``. The workers do
not expire on their own, because they cannot see leases: a model held by a
long agent run but idle on HTTP must stay loaded. What the backend does
guarantee is that no worker outlives the orchestrator process, even one
killed with SIGKILL (see ``llamacpp_worker``), so memory is always freed.

Catalogue keys are derived from file names; see ``llamacpp_catalog``.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

import structlog
import trio

from orchestrator.backends import llamacpp_host as host
from orchestrator.backends.base import BackendHealth, DownloadProgress, LoadedModel, ModelInfo
from orchestrator.backends.gguf import GGUFError, GGUFInfo, estimate_memory_bytes, read_gguf_info
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

# How long a worker whose connection just closed may take to finish exiting (its
# threads end one by one); a live worker is never judged by less.
_EXIT_WAIT_S = 0.5
# A port taken between our check and the worker's bind is retried on another port.
_PORT_ATTEMPTS = 3


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
    stops_on_cancel = True  # the transfer is ours: cancelling it stops it

    def __init__(
        self, settings: LlamaCppSettings | None = None, *, llm_embeddings: bool = False
    ) -> None:
        self.settings = settings or LlamaCppSettings()  # validated: ports, paths, timeouts
        self.llm_embeddings = llm_embeddings
        self.models_dir: Path = self.settings.resolved_models_dir()
        self._catalog = GGUFCatalog(self.models_dir)
        self._workers: dict[str, Worker] = {}
        # Who hears of a worker's death (the running watch_instances calls).
        self._listeners: list[Callable[[str, str], None]] = []
        # Set (and replaced) whenever a worker becomes ready, for the watchers.
        self._worker_ready = trio.Event()
        # How each identifier's last worker ended, until a new one is ready.
        self._ended: dict[str, str] = {}

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

    async def download(
        self,
        source: str,
        *,
        quantization: str | None,
        report: Callable[[DownloadProgress], None],
    ) -> DownloadProgress:
        """Fetch the GGUF file at URL ``source`` into the models directory (``llamacpp_download``).

        Raises:
            InvalidRequest: ``source`` is not an https GGUF URL, or a quantisation was
                given (the URL names the file, and with it the quantisation).
            DownloadFailed, BackendError: see ``llamacpp_download.fetch_gguf``.
        """
        if quantization is not None:
            raise InvalidRequest(
                "the embedded backend downloads one file: pick the quantisation by its URL"
            )
        # Imported on first use: it brings httpx, which start-up does not need.
        from orchestrator.backends.llamacpp_download import fetch_gguf

        return await fetch_gguf(
            source,
            self.models_dir,
            allow_http_loopback=self.settings.download_allow_http_loopback,
            report=report,
        )

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
        host.check_memory(entry.key, entry.size_bytes, info, n_ctx)
        embedding = entry.model_info().type == "embedding"
        taken: set[int] = set()
        for _attempt in range(_PORT_ATTEMPTS):
            spec = StartSpec(
                key=key,
                identifier=identifier,
                path=entry.path,
                port=host.free_port(
                    self.settings.port_min, self.settings.port_max, taken | self._ports()
                ),
                context_length=n_ctx,
                threads=host.usable_threads(self.settings.threads),
                embedding=embedding or self.llm_embeddings,
                mean_pooling=not embedding,
                server_binary=self.settings.server_binary,
                parallel=self.settings.parallel,
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
            self._ended.pop(identifier, None)
            self._worker_ready.set()
            self._worker_ready = trio.Event()
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

    def max_parallel(self, identifier: str) -> int:
        """Requests a worker serves at once: its llama.cpp slots (``parallel`` setting)."""
        return self.settings.parallel

    async def watch_instances(self, lost: Callable[[str, str], None]) -> None:
        """Report every ready worker's death the moment it happens; run until cancelled.

        One waiter task per ready worker waits on its process (trio uses a pidfd
        on Linux), which reaps it; the worker is then no longer listed, and
        ``lost(identifier, reason)`` is called. A worker we stop is not reported.
        """
        self._listeners.append(lost)
        watched: set[Worker] = set()
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    changed = self._worker_ready
                    for worker in list(self._workers.values()):
                        if worker.ready and worker not in watched:
                            watched.add(worker)
                            nursery.start_soon(self._await_exit, worker, watched)
                    await changed.wait()
        finally:
            self._listeners.remove(lost)

    async def confirm_lost(self, identifier: str) -> str | None:
        """Return how ``identifier``'s worker ended, or None while it runs (or starts anew).

        A worker whose connection just closed may still be exiting, so its exit is
        awaited for up to ``_EXIT_WAIT_S``.
        """
        worker = self._workers.get(identifier)
        if worker is not None and worker.ready:
            with trio.move_on_after(_EXIT_WAIT_S):
                await worker.process.wait()
            if worker.alive:
                return None
        await self._reap_dead()
        if identifier in self._workers:
            return None  # a new worker is starting for it
        return self._ended.get(identifier, f"no llama.cpp worker serves {identifier!r}")

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

    def _ports(self) -> set[int]:
        return {w.spec.port for w in self._workers.values()}

    async def _stop(self, worker: Worker) -> None:
        if self._workers.get(worker.spec.identifier) is worker:
            del self._workers[worker.spec.identifier]
        await worker.stop(self.settings.stop_timeout_s)

    async def _reap_dead(self) -> None:
        """Forget workers that died (crash, OOM kill, kill -9): the core will see them LOST."""
        await trio.lowlevel.checkpoint()
        for worker in list(self._workers.values()):
            if not worker.alive and not worker.stopping:
                self._forget_dead(worker)
                await worker.stop(self.settings.stop_timeout_s)  # closes its pipe and log

    async def _await_exit(self, worker: Worker, watched: set[Worker]) -> None:
        await worker.process.wait()  # reaps it: no zombie is left
        watched.discard(worker)
        if self._forget_dead(worker):
            await worker.stop(self.settings.stop_timeout_s)  # nothing to signal; closes files

    def _forget_dead(self, worker: Worker) -> bool:
        """Unlist a worker that exited on its own and report it; False if already handled."""
        ident = worker.spec.identifier
        if worker.stopping or self._workers.get(ident) is not worker:
            return False  # we stopped it, or another path already reported it
        del self._workers[ident]
        reason = self._ended[ident] = worker.end_reason()
        _log.warning(
            "worker_died",
            model=worker.spec.key,
            identifier=ident,
            returncode=worker.process.returncode,
            output=worker.tail(2000)[-500:],
        )
        for lost in list(self._listeners):
            lost(ident, reason)
        return True

    async def _vet(self, entry: CatalogEntry) -> GGUFInfo:
        if entry.info is not None:
            return entry.info  # read by this very scan (cached by size and mtime)
        try:
            return await trio.to_thread.run_sync(read_gguf_info, entry.path)
        except GGUFError as exc:
            raise BackendRejected(f"cannot load {entry.key!r} ({entry.path}): {exc}") from exc
        except OSError as exc:
            raise BackendRejected(f"cannot read {entry.key!r} ({entry.path}): {exc}") from exc
