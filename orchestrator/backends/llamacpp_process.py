"""Worker processes of the embedded backend: start, wait until healthy, stop, explain deaths.

One worker serves one model on one loopback port (see ``llamacpp_worker``).
Its stdout and stderr go to an anonymous temporary file rather than a pipe,
so a chatty server can never block on a full pipe when nobody reads it, and
the tail is still there to explain a failed start.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import trio

from orchestrator.errors import (
    BackendError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    excerpt,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["PortTaken", "StartSpec", "Worker", "start_worker"]

_WORKER_SCRIPT = Path(__file__).with_name("llamacpp_worker.py")
_TAIL_BYTES = 16384
_FIRST_POLL_S = 0.02
_MAX_POLL_S = 0.5
_REQUEST_TIMEOUT_S = 2.0
# llama.cpp's log prefix: "0.00.050.402 E " (elapsed time, level)
_LOG_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ [A-Z] ")


class PortTaken(BackendError):
    """The worker could not bind its port (taken after we checked it); try another."""


@dataclass(frozen=True)
class StartSpec:
    """Everything needed to start one worker."""

    key: str
    identifier: str
    path: Path
    port: int
    context_length: int
    threads: int
    embedding: bool
    mean_pooling: bool
    server_binary: str | None = None
    parallel: int = 1

    def command(self) -> list[str]:
        """The argv that starts the worker (never run through a shell)."""
        # -P: do not put orchestrator/backends/ first on sys.path (it would
        # shadow nothing today, but a future module name could).
        worker = [sys.executable, "-P", str(_WORKER_SCRIPT)]
        if self.server_binary is None:
            cmd = [
                *worker,
                *("--model", str(self.path), "--alias", self.identifier),
                *("--port", str(self.port), "--ctx", str(self.context_length)),
                *("--threads", str(self.threads), "--parallel", str(self.parallel)),
            ]
            if self.embedding:
                cmd += ["--embedding", "--pooling", "mean" if self.mean_pooling else "model"]
            return cmd
        cmd = [
            *worker,
            "--exec",
            "--",
            self.server_binary,
            *("--model", str(self.path), "--alias", self.identifier),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--ctx-size", str(self.context_length), "--threads", str(self.threads)),
            *("--poll", "0"),  # see llamacpp_worker: no busy-waiting
            *("--parallel", str(self.parallel)),  # as many as the orchestrator sends
            "--metrics",
        ]
        if self.parallel > 1:
            cmd.append("--kv-unified")  # see llamacpp_worker: slots share the context
        if self.embedding:
            cmd += ["--embeddings"] + (["--pooling", "mean"] if self.mean_pooling else [])
        return cmd


@dataclass(eq=False)  # compared and hashed by identity: one object per process
class Worker:
    """A running (or finished) worker process."""

    spec: StartSpec
    process: trio.Process
    log: IO[bytes]
    ttl_s: float
    ready: bool = False
    stopping: bool = field(default=False, repr=False)

    @property
    def alive(self) -> bool:
        """Whether the process is still running (polling also reaps it)."""
        return self.process.returncode is None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint."""
        return f"http://127.0.0.1:{self.spec.port}/v1"

    def tail(self, limit: int = _TAIL_BYTES) -> str:
        """Return the end of the worker's output (stdout and stderr)."""
        try:
            size = os.fstat(self.log.fileno()).st_size
            self.log.seek(max(0, size - limit))
            return self.log.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return ""

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once ``/health`` answers ok and ``/v1/models`` lists our alias.

        Polls with growing intervals, and stops at once if the process exits.

        Raises:
            PortTaken: the worker could not bind its port.
            BackendRejected: the file cannot be loaded, or memory ran out.
            BackendServerError: the worker died for another reason.
            BackendTimeout: it did not become healthy within ``timeout_s``.
        """
        ready = False
        with trio.move_on_after(timeout_s):
            async with trio.open_nursery() as nursery:

                async def fail_fast() -> None:
                    # An exit ends the wait at once, even mid-request (e.g. to a
                    # foreign server on our port that accepts and never answers).
                    await self.process.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(fail_fast)
                await self._poll_health()
                ready = True
                nursery.cancel_scope.cancel()
        if ready:
            return
        if not self.alive:
            raise self.death_error()
        raise BackendTimeout(
            f"llama.cpp worker for {self.spec.key!r} did not answer /health within "
            f"{timeout_s:g}s (raise LMSORCH_LLAMACPP_START_TIMEOUT_S for big models); "
            f"output: {_summary(self.tail())}"
        )

    async def _poll_health(self) -> None:
        root = f"http://127.0.0.1:{self.spec.port}"
        import httpx  # when a worker starts, not when the backend is built

        interval = _FIRST_POLL_S
        async with httpx.AsyncClient(timeout=_REQUEST_TIMEOUT_S, trust_env=False) as client:
            while not await _healthy(client, root, self.spec.identifier):
                await trio.sleep(interval)
                interval = min(interval * 1.5, _MAX_POLL_S)

    def end_reason(self) -> str:
        """Say how a ready worker ended, e.g. "... was killed by SIGKILL", with its last words."""
        return (
            f"the llama.cpp worker for {self.spec.key!r} {_describe_exit(self.process.returncode)}"
            f" (output: {_summary(self.tail())})"
        )

    def death_error(self) -> BackendError:
        """Explain why the worker exited during its start."""
        code = self.process.returncode
        tail = self.tail()
        lowered = tail.lower()
        spec = self.spec
        if "couldn't bind" in lowered or "address already in use" in lowered:
            return PortTaken(f"port {spec.port} is already taken")
        status = _describe_exit(code)
        if "no module named 'xllamacpp'" in lowered:
            return BackendRejected(
                "the embedded backend needs xllamacpp: "
                "install the embedded extra (pip install -e '.[embedded]' in the clone)"
            )
        if any(s in lowered for s in ("failed to allocate", "out of memory", "unable to allocate")):
            return BackendRejected(
                f"not enough memory to load {spec.key!r} ({status}): {_summary(tail)}; "
                "unload other models or lower the context length"
            )
        if code == -signal.SIGKILL and not self.stopping:
            return BackendRejected(
                f"the llama.cpp worker for {spec.key!r} was killed with SIGKILL while "
                "loading (out of memory?)"
            )
        if "failed to load model" in lowered or "error loading model" in lowered:
            return BackendRejected(
                f"llama.cpp could not load {spec.key!r} from {spec.path}: {_summary(tail)}"
            )
        return BackendServerError(
            f"the llama.cpp worker for {spec.key!r} {status} while starting: {_summary(tail)}"
        )

    async def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; always reaps. Shielded from cancellation."""
        self.stopping = True
        with trio.CancelScope(shield=True):
            if self.alive:
                self.process.terminate()
                with trio.move_on_after(grace_s):
                    await self.process.wait()
            if self.alive:
                self.process.kill()
            # SIGKILL cannot be ignored; bound the wait anyway (e.g. a stuck NFS read).
            with trio.move_on_after(max(grace_s, 5.0)):
                await self.process.wait()
            if self.process.stdin is not None:
                await self.process.stdin.aclose()
            self.log.close()


async def start_worker(spec: StartSpec, ttl_s: float) -> Worker:
    """Spawn a worker for ``spec``; it is not ready until :meth:`Worker.wait_ready` returns."""
    log = tempfile.TemporaryFile(prefix="lmsorch-llamacpp-")  # noqa: SIM115 (the Worker closes it)
    env = dict(os.environ)
    # Keep an external llama-server's logging to warnings and errors (the xllamacpp
    # worker sets the same itself): per-request info lines would grow the log file
    # for as long as the model stays loaded.
    env.setdefault("LLAMA_LOG_VERBOSITY", "2")
    try:
        process = await trio.lowlevel.open_process(
            spec.command(),
            # The worker exits on EOF here: that is how it notices our death.
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            env=env,
        )
    except OSError as exc:
        log.close()
        raise BackendRejected(f"cannot start the llama.cpp worker: {exc}") from exc
    except BaseException:
        log.close()
        raise
    return Worker(spec=spec, process=process, log=log, ttl_s=ttl_s)


async def _healthy(client: httpx.AsyncClient, root: str, alias: str) -> bool:
    import httpx

    try:
        health = await client.get(f"{root}/health")
        if health.status_code != 200:
            return False  # 503 while llama-server loads
        models = await client.get(f"{root}/v1/models")
        ids = {m.get("id") for m in models.json().get("data", []) if isinstance(m, dict)}
    except (httpx.TransportError, ValueError, AttributeError):
        return False
    # Someone else's server could answer on this port; only ours serves our alias.
    return alias in ids


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _summary(tail: str, limit: int = 400) -> str:
    """Pick the lines that explain a failure, bounded for a message.

    llama.cpp logs the cause first ("error loading model: tensor ... is not
    within the file bounds") and then its consequences, so the first error
    lines matter most; the output's last line says how it ended.
    """
    lines = [_LOG_PREFIX.sub("", line).strip() for line in tail.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Traceback", "File "))]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    chosen = list(dict.fromkeys(errors[:2] + lines[-1:]))
    return excerpt(" | ".join(chosen), limit) if chosen else "(no output)"
