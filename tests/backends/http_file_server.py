"""A small HTTP/1.1 file server on loopback, shaped like Hugging Face's ``resolve/`` URLs.

``HEAD``/``GET /<repo>/resolve/main/<name>`` answer ``302`` to ``/cdn/<name>``
with ``X-Linked-Size`` and ``X-Linked-Etag`` (the sha256), as huggingface.co
does for a file kept in Git LFS (``huggingface_hub`` reads those headers from
the redirect: ``file_download.py``, ``constants.py``). ``/cdn/<name>`` serves
the bytes with ``ETag``, ``Content-Length`` and single ``Range``/``If-Range``
requests (``206``). Faults: ``cut_at`` sends the headers of the whole body,
then only that many bytes and closes the connection (once); ``stall_at`` sends
that many bytes, then nothing more while holding the connection open (once);
``linked_sha`` announces another sha256. Every request is recorded. One request per
connection (``Connection: close``), which is all a downloader needs.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import trio

__all__ = ["FileServer", "Seen", "Served"]

_CHUNK = 1 << 20


@dataclass
class Served:
    """One file the server offers."""

    path: Path
    sha256: str
    cut_at: int | None = None
    stall_at: int | None = None
    linked_sha: str | None = None

    @classmethod
    def of(cls, path: Path) -> Served:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return cls(path, digest.hexdigest())


@dataclass(frozen=True)
class Seen:
    """A request the server received."""

    method: str
    path: str
    range: str | None
    if_range: str | None


@dataclass
class FileServer:
    """Serves ``files`` by name; start it with ``nursery.start(server.serve)``."""

    files: dict[str, Served] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sent_bytes: int = 0
    port: int = 0

    def url(self, name: str, repo: str = "org/model-GGUF") -> str:
        return f"http://127.0.0.1:{self.port}/{repo}/resolve/main/{name}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            raw = b""
            while b"\r\n\r\n" not in raw:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                raw += chunk
            head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
            self.seen.append(Seen(method, path, headers.get("range"), headers.get("if-range")))
            # The client may hang up (a cancelled download): not the server's failure.
            with contextlib.suppress(trio.BrokenResourceError):
                await self._answer(stream, method, path, headers)

    async def _answer(
        self, stream: trio.SocketStream, method: str, path: str, headers: dict[str, str]
    ) -> None:
        name = path.rpartition("/")[2]
        served = self.files.get(name)
        if served is None:
            await stream.send_all(_head(404, {"Content-Length": "0"}))
            return
        size = served.path.stat().st_size
        if "/resolve/" in path:
            await stream.send_all(
                _head(
                    302,
                    {
                        "Location": f"/cdn/{name}",
                        "X-Linked-Size": str(size),
                        "X-Linked-Etag": f'"{served.linked_sha or served.sha256}"',
                        "Content-Length": "0",
                    },
                )
            )
            return
        start = 0
        status = 200
        wanted = headers.get("range")
        if wanted and headers.get("if-range", f'"{served.sha256}"') == f'"{served.sha256}"':
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            status = 206
        fields = {"ETag": f'"{served.sha256}"', "Content-Length": str(size - start)}
        if status == 206:
            fields["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        await stream.send_all(_head(status, fields))
        if method == "HEAD":
            return
        stop = size
        if served.cut_at is not None and start < served.cut_at:
            stop, served.cut_at = served.cut_at, None  # cut once
        stall = served.stall_at is not None and start < served.stall_at
        if served.stall_at is not None and stall:
            stop, served.stall_at = served.stall_at, None  # stall once
        with served.path.open("rb") as fh:
            fh.seek(start)
            left = stop - start
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                await stream.send_all(chunk)
                self.sent_bytes += len(chunk)
                left -= len(chunk)
        if stall:
            await trio.sleep_forever()  # the client waits for the rest until it gives up


def _head(status: int, fields: dict[str, str]) -> bytes:
    reason = {200: "OK", 206: "Partial Content", 302: "Found", 404: "Not Found"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
