"""An in-process LM Studio simulator for tests, and the fake ``lms`` that shares its state.

It follows ``reference/lmstudio-api.md``: the greeting probe, the OpenAI
routes (``/v1/models``, chat, completions, embeddings, responses), REST v0
(``/api/v0/models`` with ``state``, v0 inference) and REST v1
(``/api/v1/models``, ``load``, ``unload``, ``download`` + status), LM Studio's error bodies in both
shapes, HTTP 200 ``Unexpected endpoint`` for routes the emulated version
lacks, bearer-token auth, identifiers ``key``, ``key:2`` ..., idle TTL, JIT
loading and auto-evict. Fault switches live in :class:`~fakes.sim_faults.Faults`.

Usage::

    async with open_simulator() as sim:
        sim.script("qwen/qwen3-4b", Reply(content="hi"))
        backend = LMStudioBackend(LMStudioSettings(base_url=sim.base_url, lms_cli=FAKE_LMS))
        await backend.load("qwen/qwen3-4b", identifier="qwen/qwen3-4b", ttl_s=600)
        assert sim.state.loads[-1].ttl_s == 600

The server runs on 127.0.0.1 on a free port in the caller's trio run (hypercorn).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Literal

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from .sim_downloads import SimDownloads
from .sim_faults import CliCall, Faults, HttpCall
from .sim_http import asgi_app
from .sim_inference import StoredResponse
from .sim_routes import dispatch
from .sim_scripts import Reply, Scripts
from .sim_state import DEFAULT_MODELS, SimInstance, SimModel, SimState

__all__ = ["FAKE_LMS", "ApiVersion", "Simulator", "open_simulator"]

FAKE_LMS = str(Path(__file__).parent / "bin" / "lms")
"""Path of the fake ``lms`` executable (a stdlib-only Python script)."""

ApiVersion = Literal["v1", "v0", "openai"]
"""Which LM Studio to emulate: ``v1`` = 0.4+ (REST v1 and v0), ``v0`` = 0.3.x (no
``/api/v1``), ``openai`` = older (only ``/v1/*``, no responses)."""


class Simulator:
    """A running simulator. Obtain one with :func:`open_simulator`.

    Attributes:
        base_url: the server root, e.g. ``http://127.0.0.1:40123`` (no ``/v1``).
        state: catalogue, loaded instances, load/unload/eviction records, TTL clock.
        downloads: download jobs and what LM Studio could download (``sim_downloads``).
        faults: the fault switches.
        scripts: per-model queues of scripted replies.
        calls: every HTTP request received, in order.
        cli_calls: every fake ``lms`` run, in order.
        cli_loads: the running fake ``lms load`` runs by pid (a SIGINT cancels one).
        cli_cancelled: pids of the ``lms load`` runs a SIGINT cancelled.
        loads_in_flight: loads (any route) not finished yet; a dropped client does not end one.
        version: the LM Studio version ``lms daemon status`` reports.
        crashes: exceptions the simulator's own code raised (a bug; fails the test at exit).
        restarts: one entry per :meth:`stop` (its ``keep_loaded``), for assertions.
        responses: stored ``/v1/responses`` results by id.
        api: the emulated API version.
        api_token: when set, every route but the greeting needs ``Bearer <token>``.
        error_style: ``object`` or ``string`` error bodies.
        upstream: an OpenAI-compatible ``.../v1`` URL unscripted inference is forwarded to.
    """

    def __init__(
        self,
        models: Iterable[SimModel],
        *,
        api: ApiVersion,
        api_token: str | None,
        jit: bool,
        auto_evict: bool,
        error_style: Literal["object", "string"],
        upstream: str | None,
        http: httpx.AsyncClient,
        host: str = "127.0.0.1",
    ) -> None:
        self.base_url = ""
        self.state = SimState(tuple(models), jit=jit, auto_evict=auto_evict)
        self.downloads = SimDownloads(self.state)
        self.faults = Faults()
        self.scripts = Scripts()
        self.calls: list[HttpCall] = []
        self.cli_calls: list[CliCall] = []
        self.cli_loads: dict[int, trio.CancelScope] = {}
        self.cli_cancelled: list[int] = []
        self.loads_in_flight = 0
        self.version = "0.4.23"
        self.responses: dict[str, StoredResponse] = {}
        self.api: ApiVersion = api
        self.api_token = api_token
        self.error_style: Literal["object", "string"] = error_style
        self.upstream = upstream
        self.http = http
        self._changed = trio.Event()
        self.crashes: list[Exception] = []
        self.restarts: list[bool] = []
        self._hypercorn = HypercornConfig()
        self._hypercorn.bind = [f"{host}:0"]
        self._hypercorn.accesslog = None
        self._hypercorn.errorlog = None
        self._nursery: trio.Nursery | None = None
        self._serving: trio.CancelScope | None = None
        self._stopped = trio.Event()

    def __repr__(self) -> str:
        return f"Simulator(base_url={self.base_url!r}, api={self.api!r})"

    @property
    def openai_url(self) -> str:
        """The OpenAI-compatible base URL (``<base_url>/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def lms_env(self) -> dict[str, str]:
        """Environment that points the fake ``lms`` at this simulator."""
        return {"LMS_SIM_URL": self.base_url}

    def script(self, model: str, *replies: Reply) -> None:
        """Queue scripted replies for ``model`` (key or identifier), one per request."""
        self.scripts.push(model, *replies)

    def preload(
        self,
        key: str,
        *,
        identifier: str | None = None,
        ttl_s: float | None = None,
        jit: bool = False,
    ) -> SimInstance:
        """Load ``key`` directly, as if someone had loaded it before the test."""
        return self.state.add_instance(key, identifier=identifier, ttl_s=ttl_s, jit=jit)

    def evict(self, identifier: str) -> None:
        """Unload ``identifier`` behind the client's back."""
        self.state.evict(identifier)

    def loaded(self) -> list[str]:
        """Identifiers loaded now (after TTL expiry)."""
        return self.state.loaded_ids()

    def requests(self, path: str | None = None, *, method: str | None = None) -> list[HttpCall]:
        """The recorded HTTP requests, optionally only for ``path`` / ``method``."""
        return [
            c
            for c in self.calls
            if (path is None or c.path == path) and (method is None or c.method == method)
        ]

    def count(self, path: str, *, method: str | None = None) -> int:
        """How many requests hit ``path``."""
        return len(self.requests(path, method=method))

    def notify(self) -> None:
        """Wake :meth:`wait_for` waiters (called whenever a request or CLI run arrives)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking after every request; no polling.

        Bound it with ``trio.fail_after`` in the test.
        """
        while not predicate():
            await self._changed.wait()

    @property
    def is_up(self) -> bool:
        """Whether the HTTP server is listening (false between :meth:`stop` and :meth:`start`)."""
        return self._serving is not None

    async def stop(self, *, keep_loaded: bool = False) -> None:
        """Take the server down, as when LM Studio quits or its server restarts.

        The listening socket closes and every open connection is dropped, so
        requests in flight (including ``lms`` runs and held loads) end without
        an answer, and new connections are refused until :meth:`start`.

        Args:
            keep_loaded: keep the loaded instances (only the server restarted).
                By default they are cleared, as when the LM Studio app restarts:
                models live in its process. Cleared ones count as evictions.
        """
        if self._serving is None:
            return
        self.restarts.append(keep_loaded)
        self._serving.cancel()
        await self._stopped.wait()
        if not keep_loaded:
            for identifier in list(self.state.instances):
                self.state.evict(identifier)
        self.notify()

    async def start(self) -> None:
        """Listen again on the same address after :meth:`stop` (no-op when up).

        A stop still under way (its caller cancelled while the server closed its
        connections) is waited for first: starting "while up" then would be a
        no-op, and the server would stay down once that stop ends.
        """
        if self._serving is not None and self._serving.cancel_called:
            await self._stopped.wait()
        if self._serving is None:
            assert self._nursery is not None, "start() needs a running simulator"
            await self._nursery.start(self._serve)

    async def restart(self, *, keep_loaded: bool = False) -> None:
        """:meth:`stop`, then :meth:`start` at once (see :meth:`stop` for ``keep_loaded``)."""
        await self.stop(keep_loaded=keep_loaded)
        await self.start()

    async def _serve(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._serving = scope
                app = asgi_app(partial(dispatch, self))
                await serve(app, self._hypercorn, task_status=task_status)
        finally:
            self._serving = None
            self._stopped.set()

    def cli_runs(self, subcommand: str | None = None) -> list[CliCall]:
        """The recorded fake ``lms`` runs, optionally only one subcommand."""
        return [c for c in self.cli_calls if subcommand is None or c.argv[:1] == (subcommand,)]


@asynccontextmanager
async def open_simulator(
    models: Iterable[SimModel] = DEFAULT_MODELS,
    *,
    api: ApiVersion = "v1",
    api_token: str | None = None,
    jit: bool = True,
    auto_evict: bool = True,
    error_style: Literal["object", "string"] | None = None,
    upstream: str | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[Simulator]:
    """Run a simulator on ``host`` (a free port) for the duration of the block.

    Args:
        models: the catalogue of downloaded models.
        api: the LM Studio version to emulate (see :data:`ApiVersion`).
        api_token: require this bearer token.
        jit: Just-in-Time loading on inference requests.
        auto_evict: a JIT load unloads other JIT-loaded models first.
        error_style: error body shape; defaults to ``object`` for ``v1``, else ``string``.
        upstream: forward unscripted inference to this OpenAI-compatible ``.../v1`` URL.
        host: the loopback address to listen on; another one than 127.0.0.1 (say
            127.0.0.2) stands for a remote LM Studio, which ``lms`` reaches only
            with ``--host``.
    """
    async with httpx.AsyncClient(trust_env=False) as http:
        sim = Simulator(
            models,
            api=api,
            api_token=api_token,
            jit=jit,
            auto_evict=auto_evict,
            error_style=error_style or ("object" if api == "v1" else "string"),
            upstream=upstream,
            http=http,
            host=host,
        )
        try:
            async with trio.open_nursery() as nursery:
                sim._nursery = nursery
                binds = await nursery.start(sim._serve)
                sim.base_url = binds[0]
                # A restart must come back on the same port: clients keep the URL.
                sim._hypercorn.bind = [binds[0].removeprefix("http://")]
                try:
                    yield sim
                finally:
                    sim.faults.release_all()
                    nursery.cancel_scope.cancel()
                if sim.crashes:
                    raise AssertionError(
                        f"the simulator crashed: {sim.crashes!r}"
                    ) from sim.crashes[0]
        except BaseExceptionGroup as group:
            # Let the test's own exception through unwrapped, as if there were no nursery.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
