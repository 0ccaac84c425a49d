"""Helpers for the llama.cpp backend tests: process inspection, fake servers, GGUF files."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import trio

DEMO_KEY = "smollm2-135m-instruct.q4_1"


class Procs:
    """Process inspection through /proc (Linux), no psutil."""

    @staticmethod
    def alive(pid: int) -> bool:
        """Running, i.e. present and not a zombie waiting for its reaper."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    @staticmethod
    def workers_of(parent: int) -> list[int]:
        """Live llama.cpp worker processes whose parent is ``parent``."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and b"llamacpp_worker" in cmdline and Procs.alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    def workers_of_me(self) -> list[int]:
        """Live llama.cpp worker processes of this test process."""
        return self.workers_of(os.getpid())

    @staticmethod
    async def gone(pid: int, timeout_s: float = 10.0) -> None:
        """Wait (bounded) until ``pid`` has fully exited; a pidfd wakes us, no polling.

        Not the /proc state: a multi-threaded process shows ``Z`` while its
        other threads still exit, before its parent can reap it; the pidfd
        turns readable only once the whole process is gone.
        """
        with trio.fail_after(timeout_s):
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                return
            try:
                await trio.lowlevel.wait_readable(fd)
            finally:
                os.close(fd)


def write_gguf(path: Path, metadata: dict[str, str | int], *, tensors: int = 1) -> Path:
    """Write a minimal GGUF v3 header (no tensor data) with string/uint32 metadata."""

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", 3, tensors, len(metadata))
    for key, value in metadata.items():
        if isinstance(value, str):
            body += string(key) + struct.pack("<I", 8) + string(value)
        else:
            body += string(key) + struct.pack("<II", 4, value)
    path.write_bytes(body)
    return path


class FakeServer:
    """A fake ``llama-server`` (a Python script): writes its pid to a file, then runs ``body``."""

    def __init__(self, directory: Path, body: str) -> None:
        self.path = directory / f"fake-llama-server-{len(list(directory.iterdir()))}"
        self.pid_file = self.path.with_suffix(".pid")
        self.path.write_text(
            f"#!{sys.executable}\n"
            "import os, signal, sys, time\n"
            f"open({str(self.pid_file)!r}, 'w').write(str(os.getpid()))\n" + body
        )
        self.path.chmod(0o755)

    def pid(self) -> int:
        return int(self.pid_file.read_text())
