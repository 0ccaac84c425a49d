"""What the embedded backend asks of the host: free memory, free ports, usable cores.

Kept apart from the backend so its checks read as one list and tests can swap
one answer (e.g. little memory) without touching the backend.
"""

from __future__ import annotations

import errno
import os
import socket

from orchestrator.backends.gguf import GGUFInfo, estimate_memory_bytes
from orchestrator.errors import BackendRejected

__all__ = ["available_memory_bytes", "check_memory", "free_port", "port_is_free", "usable_threads"]


def check_memory(key: str, size_bytes: int, info: GGUFInfo, n_ctx: int) -> None:
    """Refuse a load that cannot fit in the memory available now.

    Raises:
        BackendRejected: the estimate exceeds MemAvailable, with the figures.
    """
    need = estimate_memory_bytes(size_bytes, info, n_ctx)
    available = available_memory_bytes()
    if available is not None and need > available:
        raise BackendRejected(
            f"not enough memory to load {key!r}: it needs about {need >> 20} MiB "
            f"(weights, KV cache for {n_ctx} tokens, buffers) and {available >> 20} MiB are "
            "available; unload other models or lower the context length"
        )


def usable_threads(wanted: int) -> int:
    """``wanted`` capped at the usable cores: more threads only make llama.cpp's threads fight."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(wanted, cores))


def free_port(port_min: int, port_max: int, exclude: set[int]) -> int:
    """Return the first free loopback port in the range, skipping ``exclude``.

    Raises:
        BackendRejected: none is free, naming the settings that widen the range.
    """
    for port in range(port_min, port_max + 1):
        if port not in exclude and port_is_free(port):
            return port
    raise BackendRejected(
        f"no free loopback port in {port_min}-{port_max} for a "
        "llama.cpp worker; widen LMSORCH_LLAMACPP_PORT_MIN/PORT_MAX or free some ports"
    )


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def port_is_free(port: int) -> bool:
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
