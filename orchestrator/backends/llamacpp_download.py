"""Download a GGUF file from a URL into the embedded backend's models directory (issue 18).

The rules, so that a models directory never holds a broken model:

- Only ``https`` URLs (plain ``http`` only to a loopback host, and only when
  ``download_allow_http_loopback`` is set: a local mirror or the tests). A
  Hugging Face ``blob/`` page URL is turned into its ``resolve/`` file URL.
- The size and sha256 are learned first, the way ``huggingface_hub`` does
  (``file_download.py``/``constants.py``): a ``HEAD`` without following the
  redirect reads ``X-Linked-Size`` and ``X-Linked-Etag`` (for a file kept in
  Git LFS, its sha256), falling back to ``Content-Length`` and ``ETag``. An
  ETag that is not 64 hex digits is not a sha256 and is not checked as one.
- The free disk space is checked before the first byte (``shutil.disk_usage``).
- Bytes go to a hidden ``.<name>.part`` file next to the target (the catalogue
  skips hidden files). A dropped connection is resumed with an HTTP ``Range``
  request (``If-Range`` with the ETag, so a file changed on the server starts
  over rather than mixing two versions), a few times within one call; a
  cancelled or failed call leaves the ``.part`` file for the next call to resume.
- Once complete, size and sha256 are checked; a mismatch deletes the ``.part``
  file. Only a verified file is renamed (atomically) to its model name. A full
  disk deletes the ``.part`` file too and says so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
import structlog
import trio

from orchestrator.backends.base import DownloadProgress
from orchestrator.backends.llamacpp_catalog import model_key
from orchestrator.errors import (
    BackendServerError,
    BackendUnreachable,
    DownloadFailed,
    InvalidRequest,
    excerpt,
)

__all__ = ["RESUME_ATTEMPTS", "RemoteFile", "fetch_gguf", "gguf_source", "probe"]

_log = structlog.get_logger("orchestrator.backends.llamacpp")

RESUME_ATTEMPTS = 5
"""How many dropped connections one call resumes from before giving up (keeping the part)."""
_FLUSH = 1 << 20  # write and hash in 1 MiB steps, in a worker thread
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TIMEOUT = httpx.Timeout(30.0, read=60.0)


@dataclass(frozen=True)
class RemoteFile:
    """What the server says of the file before it is fetched."""

    url: str
    size: int | None
    sha256: str | None
    etag: str | None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def gguf_source(url: str, *, allow_http_loopback: bool) -> tuple[str, str]:
    """Check ``url`` and return it (``blob/`` turned into ``resolve/``) with its file name.

    Raises:
        InvalidRequest: not an https URL of a ``.gguf`` file (what is wrong, and
            what a good one looks like).
    """
    example = "https://huggingface.co/<owner>/<repo>/resolve/main/<file>.gguf"
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme == "http" and _loopback(host):
        if not allow_http_loopback:
            raise InvalidRequest(
                f"plain http download from {host} refused: set "
                "LMSORCH_LLAMACPP_DOWNLOAD_ALLOW_HTTP_LOOPBACK=1 to allow a loopback mirror"
            )
    elif parts.scheme != "https" or not host:
        raise InvalidRequest(
            f"the embedded backend downloads a GGUF file from an https URL, e.g. {example}; "
            f"got {excerpt(url, 120)!r}"
        )
    path = parts.path
    if host in ("huggingface.co", "hf.co") and "/blob/" in path:
        path = path.replace("/blob/", "/resolve/", 1)  # the page, not the file
    name = unquote(path.rpartition("/")[2])
    if not name.lower().endswith(".gguf") or name.startswith(".") or model_key(name) is None:
        raise InvalidRequest(
            f"{excerpt(url, 120)!r} does not name a .gguf file; give its URL, e.g. {example}"
        )
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")), name


def _header_int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _etag(value: str | None) -> str | None:
    # huggingface_hub strips the weak marker and the quotes the same way.
    return value.removeprefix("W/").strip('"') if value else None


def _status_error(url: str, status: int) -> Exception:
    text = f"{url} answered HTTP {status}"
    if status >= 500:
        return BackendServerError(text)
    if status in (401, 403):
        return DownloadFailed(f"{text}: the file needs a login (gated or private model)")
    return DownloadFailed(f"{text}: check the URL")


async def probe(http: httpx.AsyncClient, url: str) -> RemoteFile:
    """Learn the file's final URL, size, sha256 and ETag (see the module docstring).

    Raises:
        DownloadFailed: the server refused (404, 401...).
        BackendServerError, BackendUnreachable: transient failures.
    """
    try:
        first = await http.head(
            url, follow_redirects=False, headers={"Accept-Encoding": "identity"}
        )
        final = first
        if first.is_redirect:
            target = urljoin(url, first.headers.get("location", ""))
            final = await http.head(target, follow_redirects=True)
    except httpx.TransportError as exc:
        raise BackendUnreachable(f"cannot reach {url}: {exc!r}") from exc
    if final.status_code >= 400:
        raise _status_error(url, final.status_code)
    linked = _etag(first.headers.get("x-linked-etag"))
    etag = linked or _etag(first.headers.get("etag")) or _etag(final.headers.get("etag"))
    size = _header_int(first.headers.get("x-linked-size")) or _header_int(
        final.headers.get("content-length")
    )
    sha = etag.lower() if etag and _SHA256.match(etag.lower()) else None
    return RemoteFile(url=str(final.url), size=size, sha256=sha, etag=etag)


def _write_chunk(fh: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
    fh.write(data)
    digest.update(data)


def _hash_existing(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_FLUSH):
            digest.update(chunk)
    return digest


def _finish(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    os.fchmod(fh.fileno(), 0o644)
    fh.close()


class _Transfer:
    """One file's bytes on their way into ``part``, with the running hash."""

    def __init__(self, part: Path, remote: RemoteFile, report: Callable[[int], None]) -> None:
        self.part = part
        self.remote = remote
        self.report = report
        self.have = part.stat().st_size if part.exists() else 0
        if remote.size is not None and self.have > remote.size:
            part.unlink()
            self.have = 0
        self.digest = hashlib.sha256()
        self.fh: BinaryIO | None = None

    async def open(self) -> None:
        if self.have:
            self.digest = await trio.to_thread.run_sync(_hash_existing, self.part)
        self.fh = await trio.to_thread.run_sync(self.part.open, "ab")

    async def restart(self) -> None:
        assert self.fh is not None
        await trio.to_thread.run_sync(self.fh.truncate, 0)
        self.have, self.digest = 0, hashlib.sha256()

    async def write(self, data: bytes) -> None:
        assert self.fh is not None
        try:
            await trio.to_thread.run_sync(_write_chunk, self.fh, self.digest, data)
        except OSError as exc:
            self.discard()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadFailed(
                    f"the disk holding {self.part.parent} is full after {self.have} bytes "
                    f"of {self.remote.size or '?'}; the partial file was removed: free space "
                    "and download again"
                ) from exc
            raise DownloadFailed(f"cannot write {self.part}: {exc}") from exc
        self.have += len(data)
        self.report(self.have)

    async def fetch(self, http: httpx.AsyncClient) -> None:
        """One GET from ``have`` on; returns at the end of the body (which may be cut short)."""
        headers = {"Accept-Encoding": "identity"}
        if self.have:
            headers["Range"] = f"bytes={self.have}-"
            if self.remote.etag:
                headers["If-Range"] = f'"{self.remote.etag}"'
        async with http.stream("GET", self.remote.url, headers=headers) as resp:
            if resp.status_code == 416 and self.have == self.remote.size:
                return  # nothing left to fetch
            if resp.status_code >= 400:
                raise _status_error(self.remote.url, resp.status_code)
            if self.have and resp.status_code != 206:
                _log.info("download_restarts", url=self.remote.url, reason="no range support")
                await self.restart()
            buffer = bytearray()
            chunks = resp.aiter_raw()
            try:
                async for chunk in chunks:
                    buffer += chunk
                    if len(buffer) >= _FLUSH:
                        await self.write(bytes(buffer))
                        buffer.clear()
            except BaseException:
                with trio.CancelScope(shield=True):
                    if buffer:  # what arrived before a cut is good: keep it for the resume
                        await self.write(bytes(buffer))
                    await _abandon(resp, chunks)
                raise
            if buffer:
                await self.write(bytes(buffer))

    def verify(self) -> None:
        size, sha = self.remote.size, self.remote.sha256
        got = self.digest.hexdigest()
        if (size is not None and self.have != size) or (sha is not None and got != sha):
            self.discard()
            raise DownloadFailed(
                f"{self.remote.url} arrived as {self.have} bytes with sha256 {got}, expected "
                f"{size if size is not None else 'any size'} and {sha or 'any hash'}; "
                "nothing was kept: download again, and check the URL if it repeats"
            )

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()

    def discard(self) -> None:
        self.close()
        self.part.unlink(missing_ok=True)


async def fetch_gguf(
    url: str,
    models_dir: Path,
    *,
    allow_http_loopback: bool,
    report: Callable[[DownloadProgress], None],
    http: httpx.AsyncClient | None = None,
) -> DownloadProgress:
    """Download the GGUF file at ``url`` into ``models_dir`` (see the module docstring).

    Returns:
        ``completed`` (or ``already_downloaded`` when a file of that name and size
        is there) with the new catalogue key.

    Raises:
        InvalidRequest: the URL is not an acceptable GGUF URL.
        DownloadFailed: refused by the server, not enough disk, a full disk, a
            size or checksum mismatch, or another file already has the name.
        BackendUnreachable, BackendServerError: the transfer failed
            :data:`RESUME_ATTEMPTS` times; the part is kept for the next call.

    Cancellation stops the transfer; the part is kept for the next call to resume.
    """
    url, name = gguf_source(url, allow_http_loopback=allow_http_loopback)
    key = model_key(name)
    local = _loopback(urlsplit(url).hostname or "")
    # A local mirror must not go through a proxy from the environment; the internet may.
    client = http or httpx.AsyncClient(timeout=_TIMEOUT, trust_env=not local)
    try:
        remote = await probe(client, url)
        target = models_dir / name
        if target.exists():
            have = target.stat().st_size
            if remote.size is None or have == remote.size:
                return DownloadProgress(
                    status="already_downloaded",
                    downloaded_bytes=have,
                    total_bytes=have,
                    model_key=key,
                )
            raise DownloadFailed(
                f"{target} exists with {have} bytes but {url} has {remote.size}: "
                "remove or rename the old file, then download again"
            )
        await trio.to_thread.run_sync(lambda: models_dir.mkdir(parents=True, exist_ok=True))

        def progress(have: int) -> None:
            report(
                DownloadProgress(
                    status="downloading",
                    downloaded_bytes=have,
                    total_bytes=remote.size,
                    model_key=key,
                )
            )

        transfer = _Transfer(models_dir / f".{name}.part", remote, progress)
        _check_space(models_dir, remote.size, transfer.have)
        await transfer.open()
        try:
            await _fetch_all(client, transfer)
            transfer.verify()
            assert transfer.fh is not None
            await trio.to_thread.run_sync(_finish, transfer.fh)
            os.replace(transfer.part, target)
        finally:
            transfer.close()
        _log.info("download_complete", path=str(target), size=transfer.have)
        return DownloadProgress(
            status="completed",
            downloaded_bytes=transfer.have,
            total_bytes=transfer.have,
            model_key=key,
        )
    finally:
        if http is None:
            await client.aclose()


async def _abandon(resp: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    # httpcore does not close its inner async generators when a body is abandoned,
    # and trio warns about each one the garbage collector finds: close the
    # connection, then let one more read fail through all of them.
    await resp.aclose()
    with contextlib.suppress(Exception):
        await anext(chunks)


def _check_space(models_dir: Path, size: int | None, have: int) -> None:
    if size is None:
        return
    free = shutil.disk_usage(models_dir).free
    needed = size - have
    if needed > free:
        raise DownloadFailed(
            f"not enough disk space in {models_dir}: the download needs {needed} more bytes, "
            f"{free} are free; nothing was written"
        )


async def _fetch_all(client: httpx.AsyncClient, transfer: _Transfer) -> None:
    failures = 0
    while True:
        before = transfer.have
        try:
            await transfer.fetch(client)
        except (httpx.TransportError, BackendServerError) as exc:
            failures += 1
            _log.info("download_interrupted", have=transfer.have, error=repr(exc))
            if failures >= RESUME_ATTEMPTS:
                raise BackendUnreachable(
                    f"the download of {transfer.remote.url} broke off {failures} times, last "
                    f"at {transfer.have} bytes ({exc!r}); call download_model again to resume"
                ) from exc
            continue
        size = transfer.remote.size
        if size is None or transfer.have >= size or transfer.have == before:
            return  # complete, or the server has no more to give: verify decides
