"""Fetching remote images safely: public addresses only, bounded size, bounded time.

Off unless ``allow_remote_images`` is set. Every hop (redirects are followed
by hand, at most ``max_redirects``) is checked before it is requested: the
scheme must be http(s), the URL must carry no credentials, and every address
the host resolves to must be a public (global) one, so loopback, private,
link-local and metadata addresses are refused. The body is read as a stream
and abandoned as soon as it passes the size limit.

Residual risk, documented in ``docs/tools.md``: the host is resolved again when
connecting, so a DNS answer that changes in between (rebinding) is not caught.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

import httpx
import trio

from mcp_frontend.errors import ToolError

__all__ = ["RemoteFetcher", "Resolver", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve ``(host, port)`` to IP address strings."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (``getaddrinfo``)."""
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class RemoteFetcher:
    """Fetches image bytes over http(s) from public addresses only.

    Args:
        transport: an httpx transport to use (tests pass a ``MockTransport``).
        resolve: how host names are resolved; the system resolver by default.
        max_redirects: most redirects followed.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve: Resolver = system_resolver,
        max_redirects: int = 3,
    ) -> None:
        self._transport = transport
        self._resolve = resolve
        self._max_redirects = max_redirects

    async def _check(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise ToolError(f"only http(s) image URLs are allowed, got {str(url)[:200]!r}")
        if url.userinfo:
            raise ToolError("image URLs must not carry credentials")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [url.host] if _is_ip(url.host) else await self._resolve(url.host, port)
        except OSError as exc:
            raise ToolError(f"cannot resolve {url.host!r}: {exc}") from exc
        if not addresses or not all(_is_public(a) for a in addresses):
            raise ToolError(
                f"refusing to fetch {url.host!r}: it is not a public address "
                "(loopback, private, link-local and reserved addresses are never fetched)"
            )

    async def fetch(self, url: str, *, limit: int, timeout_s: float) -> bytes:
        """Return the body at ``url``, at most ``limit`` bytes.

        Raises:
            ToolError: the URL is not allowed, the fetch failed or timed out,
                or the body is larger than ``limit``.
        """
        target = httpx.URL(url)
        with trio.move_on_after(timeout_s):
            async with httpx.AsyncClient(
                transport=self._transport, trust_env=False, follow_redirects=False
            ) as http:
                for _ in range(self._max_redirects + 1):
                    await self._check(target)
                    try:
                        async with http.stream("GET", target, timeout=timeout_s) as resp:
                            if not resp.is_redirect:
                                return await _read(resp, limit)
                            target = target.join(resp.headers.get("location", ""))
                    except httpx.HTTPError as exc:
                        raise ToolError(f"could not fetch {str(target)[:200]}: {exc}") from exc
                raise ToolError(f"more than {self._max_redirects} redirects fetching {url[:200]}")
        raise ToolError(f"fetching {url[:200]} took longer than {timeout_s:g}s")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def _read(resp: httpx.Response, limit: int) -> bytes:
    if resp.status_code != 200:
        raise ToolError(f"fetching {str(resp.url)[:200]} answered HTTP {resp.status_code}")
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ToolError(
            f"the image at {str(resp.url)[:200]} is {declared} bytes; the limit is {limit}"
        )
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > limit:
            # Leaving early abandons httpx's async generators; trio finalizes them
            # (closing the stream) and the client's ``async with`` closes the response.
            raise ToolError(f"the image at {str(resp.url)[:200]} is over the {limit}-byte limit")
    return bytes(body)
