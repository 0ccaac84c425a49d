"""The llama.cpp worker process: serve one GGUF model over HTTP until told to stop.

Started by :class:`~orchestrator.backends.llamacpp.LlamaCppBackend`, one
process per loaded model, as ``python -P <this file> ...`` (or ``python -m
orchestrator.backends.llamacpp_worker ...``). It imports only the standard
library (and ``xllamacpp``), never the ``orchestrator`` package: that saves
about 0.25 s of imports per load, and a worker cannot be affected by the
parent's logging or configuration.

Two modes:

* default: ``xllamacpp.Server`` (llama.cpp's own HTTP server, in background
  threads of this process) serves ``--model`` under ``--alias`` on
  127.0.0.1:``--port``;
* ``--exec BINARY -- ARGS...``: run an external ``llama-server`` binary as our
  child instead, forwarding SIGTERM to it.

Either way the worker dies with its parent, so an orchestrator that is killed
(even with SIGKILL) leaves no model server behind: the parent holds the write
end of our stdin, and the kernel closes it when the parent dies, so EOF on
stdin means "parent gone". A slow ``getppid()`` check backs that up in case
the pipe leaked into another process. (``PR_SET_PDEATHSIG`` cannot be used for
the worker itself: trio spawns processes from a worker thread, and the signal
fires when that *thread* exits, which trio's thread cache does after a few
seconds idle. For the external binary the worker's main thread is the parent,
so there it is safe and used.)

Exit codes: 0 when the parent went away or stdin closed, 3 when the server
could not start (the reason is in stderr: llama.cpp logs it), otherwise the
external binary's own code.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

EXIT_START_FAILED = 3
_PR_SET_PDEATHSIG = 1
_PARENT_CHECK_S = 1.0


def _watch_parent(parent_pid: int, on_gone: Callable[[], object] | None = None) -> None:
    """Block until stdin reaches EOF or the parent changes, then call ``on_gone``."""
    fd = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([fd], [], [], _PARENT_CHECK_S)
        if readable and not os.read(fd, 4096):
            break
        if os.getppid() != parent_pid:
            break
    if on_gone is not None:
        on_gone()
    # Hard exit: llama.cpp's server threads are not daemon-aware.
    os._exit(0)


def _start_watchdog(on_gone: Callable[[], object] | None = None) -> None:
    threading.Thread(
        target=_watch_parent, args=(os.getppid(), on_gone), name="parent-watch", daemon=True
    ).start()


def serve_xllamacpp(args: argparse.Namespace) -> int:
    """Serve ``args.model`` with xllamacpp until the parent goes away or sends SIGTERM."""
    # Watch from the start: a parent that dies during a long load must not leave us behind.
    _start_watchdog()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}  # a set: /v1/models lists it, requests may name it
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx
    params.cpuparams.n_threads = args.threads
    # Slots: requests served at once (the orchestrator never sends more). Above one
    # they share one KV cache of n_ctx tokens, as llama-server's own default does,
    # rather than splitting it into n_ctx / parallel tokens per request.
    params.n_parallel = args.parallel
    params.kv_unified = args.parallel > 1
    params.cpuparams_batch.n_threads = args.threads
    # No busy-wait between compute steps. With the default (50), two busy
    # workers on a 2-core machine collapsed from ~110 to ~6 tokens/s each
    # (threads spinning against each other); with 0 they kept ~12, at no
    # measurable cost when alone.
    params.cpuparams.poll = 0
    params.cpuparams_batch.poll = 0
    params.endpoint_metrics = True
    # Warnings and errors only: info level logs several lines per request, and
    # the parent keeps this output in a file for the life of the model.
    params.verbosity = 2
    if args.embedding:
        params.embedding = True
        if args.pooling == "mean":
            # Chat models declare no pooling, and llama.cpp's OpenAI endpoint refuses
            # pooling "none"; mean pooling gives usable sentence vectors.
            params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        # llama.cpp already logged the reason (bad file, port taken) to stderr.
        print(f"worker: server failed to start: {exc}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED
    print(
        f"worker: serving {args.alias!r} at {server.listening_address}", file=sys.stderr, flush=True
    )
    threading.Event().wait()  # until SIGTERM (default action) or the watchdog exits
    return 0  # pragma: no cover - unreachable


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def serve_binary(command: Sequence[str]) -> int:
    """Run an external server binary as our child; stop it when we are told to stop."""
    try:
        # No threads exist yet, so preexec_fn is safe here.
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig)
    except OSError as exc:
        print(f"worker: cannot run {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED

    def stop(*_: object) -> None:
        child.terminate()

    signal.signal(signal.SIGTERM, stop)
    _start_watchdog(on_gone=child.kill)
    code = child.wait()
    return code if code >= 0 else 128 - code


def _parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(prog="llamacpp_worker", description=__doc__)
    parser.add_argument("--model", help="GGUF file to serve (xllamacpp mode)")
    parser.add_argument("--alias", help="model name served in /v1/models")
    parser.add_argument("--port", type=int, help="loopback port to listen on")
    parser.add_argument("--ctx", type=int, default=2048, help="context length")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--parallel", type=int, default=1, help="requests served at once")
    parser.add_argument("--embedding", action="store_true", help="serve /v1/embeddings")
    parser.add_argument("--pooling", choices=["model", "mean"], default="model")
    parser.add_argument(
        "--exec", dest="binary", action="store_true", help="run the command after --"
    )
    args = parser.parse_args(argv)
    if args.binary and not command:
        parser.error("--exec needs a command after --")
    if not args.binary and not (args.model and args.alias and args.port):
        parser.error("--model, --alias and --port are required")
    return args, command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker; returns its exit code."""
    args, command = _parse(argv)
    return serve_binary(command) if args.binary else serve_xllamacpp(args)


if __name__ == "__main__":
    sys.exit(main())
