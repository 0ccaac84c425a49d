"""Fetching remote images safely: public addresses only, bounded size, bounded time.

Off unless ``allow_remote_images`` is set. Every hop (redirects are followed
by hand, at most ``max_redirects``) is checked before it is requested: the
scheme must be http(s), the URL must carry no credentials, and every address
the host resolves to must be a public (global) one, so loopback, private,
link-local and metadata addresses are refused, also when written in another
form (``2130706433``, ``0x7f000001``, ``127.1``, IPv4-mapped or -translated,
NAT64, 6to4 or IPv4-compatible IPv6); local-use NAT64 and site-local IPv6 are
never public. The connection then goes to the address that was
checked (the ``Host`` header and TLS server name keep the original host), so a
DNS answer that changes between the check and the connection (rebinding)
cannot redirect it. The body is asked for and accepted uncompressed only (a
small gzip body could inflate far past the limit in one chunk), read as a
stream and abandoned as soon as it passes the size limit.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from mcp_frontend.errors import ToolError

if TYPE_CHECKING:
    import httpx

__all__ = ["RemoteFetcher", "Resolver", "is_public_address", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve ``(host, port)`` to IP address strings."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT, RFC 6145
# Python 3.11's is_global calls these global; they only ever lead inward: the
# local-use NAT64 prefix (RFC 8215, a translator inside the network) and the
# deprecated site-local range (RFC 3879).
_NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"))


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (``getaddrinfo``)."""
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to (mapped, translated, 6to4, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IP string, maybe with a ``%zone``) is a public unicast address."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _NEVER_PUBLIC):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> str | None:
    """The address ``host`` spells, in any form the C library would accept; None for a name."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        # inet_aton accepts what getaddrinfo would: 2130706433, 0x7f000001, 0177.0.0.1, 127.1.
        return socket.inet_ntoa(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return None


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

    async def _check(self, url: httpx.URL) -> str:
        """Check ``url`` and return the (public) address to connect to."""
        if url.scheme not in ("http", "https") or not url.host:
            raise ToolError(f"only http(s) image URLs are allowed, got {str(url)[:200]!r}")
        if url.userinfo:
            raise ToolError("image URLs must not carry credentials")
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = _literal(url.host)
        try:
            addresses = [literal] if literal else await self._resolve(url.host, port)
        except OSError as exc:
            raise ToolError(f"cannot resolve {url.host[:200]!r}: {exc}") from exc
        if not addresses or not all(is_public_address(a) for a in addresses):
            raise ToolError(
                f"refusing to fetch {url.host[:200]!r}: it is not a public address "
                "(loopback, private, link-local and reserved addresses are never fetched)"
            )
        return addresses[0]

    async def fetch(self, url: str, *, limit: int, timeout_s: float) -> bytes:
        """Return the body at ``url``, at most ``limit`` bytes.

        Raises:
            ToolError: the URL is not allowed, the fetch failed or timed out,
                or the body is larger than ``limit``.
        """
        import httpx  # on the first image URL: start-up does not pay for httpx

        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ToolError(f"not a valid URL: {url[:200]!r} ({exc})") from exc
        with trio.move_on_after(timeout_s):
            async with httpx.AsyncClient(
                transport=self._transport, trust_env=False, follow_redirects=False
            ) as http:
                for _ in range(self._max_redirects + 1):
                    address = await self._check(target)
                    request = _pinned(http, target, address, timeout_s)
                    try:
                        resp = await http.send(request, stream=True)
                        try:
                            if not resp.is_redirect:
                                return await _read(resp, target, limit)
                            location = resp.headers.get("location", "")
                        finally:
                            await resp.aclose()
                        target = target.join(location)
                    except httpx.HTTPError as exc:
                        raise ToolError(f"could not fetch {str(target)[:200]}: {exc}") from exc
                    except httpx.InvalidURL as exc:
                        raise ToolError(f"bad redirect from {str(target)[:200]}: {exc}") from exc
                raise ToolError(f"more than {self._max_redirects} redirects fetching {url[:200]}")
        raise ToolError(f"fetching {url[:200]} took longer than {timeout_s:g}s")


def _pinned(
    http: httpx.AsyncClient, target: httpx.URL, address: str, timeout_s: float
) -> httpx.Request:
    """A GET of ``target`` that connects to ``address``, naming the original host."""
    extensions: dict[str, Any] = {}
    if _literal(target.host) is None and target.scheme == "https":
        extensions["sni_hostname"] = target.host  # TLS checks the certificate against it
    return http.build_request(
        "GET",
        target.copy_with(host=address),
        # Identity only: a compressed body would be inflated before the size limit sees it.
        headers={"Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"},
        extensions=extensions,
        timeout=timeout_s,
    )


async def _read(resp: httpx.Response, url: httpx.URL, limit: int) -> bytes:
    shown = str(url)[:200]
    if resp.status_code != 200:
        raise ToolError(f"fetching {shown} answered HTTP {resp.status_code}")
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ToolError(f"the image at {shown} came {encoding}-encoded; only identity is accepted")
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ToolError(f"the image at {shown} is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > limit:
            # Leaving early abandons httpx's async generators; trio finalizes them
            # (closing the stream) and the response's aclose() in fetch() releases it.
            raise ToolError(f"the image at {shown} is over the {limit}-byte limit")
    return bytes(body)
