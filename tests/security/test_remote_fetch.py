"""SSRF and oversized downloads: what the remote-image fetcher refuses, and where it stops.

The fetcher is driven directly over an httpx ``MockTransport`` and a fake
resolver (no network): every internal address, in every spelling, directly,
by name or by redirect, is refused before any request is made; the connection
goes to the address that was checked (DNS rebinding cannot turn it inward);
bodies stop at the limit whatever Content-Length says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import trio

from mcp_frontend.checks.remote_images import RemoteFetcher, is_public_address
from mcp_frontend.errors import ToolError

from .server_thread import PNG_1PX, message, serve_in_thread

PUBLIC = "93.184.216.34"
LIMIT = 4096

INTERNAL_HOSTS = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "[::1]",
    "[::]",
    "169.254.169.254",  # cloud metadata
    "100.100.100.200",  # Alibaba metadata (shared address space)
    "[fd00:ec2::254]",  # AWS metadata over IPv6
    "[fe80::1]",
    "[fe80::1%25eth0]",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "198.18.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "[fc00::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::7f00:1]",  # NAT64 to loopback
    "[64:ff9b::a9fe:a9fe]",  # NAT64 to metadata
    "[2002:7f00:1::]",  # 6to4 of loopback
    "[::127.0.0.1]",  # IPv4-compatible
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",
    "0x7f.0.0.1",
    "127.1",
    "0",
    "0177.1",  # octal
    "017700000001",  # 127.0.0.1 as one octal number
    "0x7f.1",
    "127.0.1",
    "2852039166",  # 169.254.169.254 as one decimal number
    "0xa9fea9fe",
    "[0:0:0:0:0:0:0:1]",  # ::1 written out
    "[0:0:0:0:0:ffff:7f00:1]",  # ::ffff:127.0.0.1 written out
    "[::ffff:a9fe:a9fe]",  # IPv4-mapped metadata, in hex
    "0xa9.0xfe.0xa9.0xfe",  # metadata, each part in hex
    "169.254.43518",  # metadata, last two parts as one number
    "[::ffff:0:a9fe:a9fe]",  # IPv4-translated (SIIT) metadata
    "[64:ff9b:1::a00:7]",  # local-use NAT64 prefix, to 10.0.0.7 through a local translator
    "[fec0::1]",  # deprecated site-local
]
NAMES = {
    "images.example": [PUBLIC],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
    "loopback.example": ["127.0.0.1"],
    "split.example": [PUBLIC, "10.0.0.1"],  # one bad answer is enough to refuse
    "v6only.example": ["::1"],
    "empty.example": [],
}


# Stopping at the limit abandons httpx's nested body generators; trio finalizes them and warns.
ABANDONED = pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx.*garbage collected:ResourceWarning"
)


class Recorder:
    """A mock transport's handler that records every request that reached it."""

    def __init__(self, routes: dict[str, Callable[[], httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = f"{request.url.scheme}://{request.headers['host']}{request.url.raw_path.decode()}"
        make = self.routes.get(url)
        return make() if make else httpx.Response(404)


async def resolve(host: str, port: int) -> list[str]:
    await trio.lowlevel.checkpoint()
    if host not in NAMES:
        raise OSError("Name or service not known")
    return NAMES[host]


def fetcher(recorder: Recorder, resolver: Callable[..., object] = resolve) -> RemoteFetcher:
    return RemoteFetcher(transport=httpx.MockTransport(recorder), resolve=resolver)  # type: ignore[arg-type]


async def refused(recorder: Recorder, url: str, resolver: Callable[..., object] = resolve) -> str:
    with trio.fail_after(5), pytest.raises(ToolError) as caught:
        await fetcher(recorder, resolver).fetch(url, limit=LIMIT, timeout_s=5)
    return str(caught.value)


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
async def test_internal_addresses_in_any_spelling_are_refused_without_a_request(host: str) -> None:
    recorder = Recorder({})

    message = await refused(recorder, f"http://{host}/x.png")

    assert "is not a public address" in message
    assert recorder.requests == []


# Four-part dotted octal: httpx's URL parser refuses these before our address check
# sees them (inet_aton would read 0177.0.0.1 as 127.0.0.1), so no request is made.
UNPARSED_INTERNAL_HOSTS = ["0177.0.0.1", "0177.0.0.01", "0251.0376.0251.0376", "0x7f.0.0.0x1"]


@pytest.mark.parametrize("host", UNPARSED_INTERNAL_HOSTS)
async def test_dotted_octal_internal_addresses_are_refused_without_a_request(host: str) -> None:
    recorder = Recorder({})

    message = await refused(recorder, f"http://{host}/x.png")

    assert message.startswith(f"not a valid URL: 'http://{host}/x.png'") or (
        "is not a public address" in message
    )
    assert recorder.requests == []


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "metadata.google.internal",
        "loopback.example",
        "split.example",
        "v6only.example",
        "empty.example",
    ],
)
async def test_names_resolving_inward_are_refused_without_a_request(name: str) -> None:
    recorder = Recorder({})

    message = await refused(recorder, f"https://{name}/x.png")

    assert f"refusing to fetch {name!r}: it is not a public address" in message
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("http://127.0.0.1/x.png", "not a public address"),
        ("http://[::1]:8080/admin", "not a public address"),
        ("http://169.254.169.254/latest/meta-data/iam/", "not a public address"),
        ("http://loopback.example/x.png", "not a public address"),
        ("http://2130706433/", "not a public address"),
        ("http://0177.0.0.1/", "Invalid URL in location header"),
        ("http://0251.0376.0251.0376/", "Invalid URL in location header"),
        ("http://[::ffff:127.0.0.1]/", "not a public address"),
        ("file:///etc/passwd", "only http(s) image URLs are allowed"),
        ("gopher://images.example:70/", "only http(s) image URLs are allowed"),
        ("https://user:pw@images.example/x.png", "must not carry credentials"),
        ("/again", "more than 3 redirects"),
    ],
)
async def test_redirects_inward_are_refused_hop_by_hop(location: str, problem: str) -> None:
    recorder = Recorder(
        {
            "https://images.example/hop": lambda: httpx.Response(
                302, headers={"location": location}
            ),
            "https://images.example/again": lambda: httpx.Response(
                302, headers={"location": "/again"}
            ),
        }
    )

    message = await refused(recorder, "https://images.example/hop")

    assert problem in message
    # Only public hops were requested, each at the checked address.
    assert {r.url.host for r in recorder.requests} == {PUBLIC}


async def test_the_connection_goes_to_the_checked_address_even_if_dns_changes() -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        await trio.lowlevel.checkpoint()
        return next(answers)

    recorder = Recorder(
        {"https://images.example/cat.png": lambda: httpx.Response(200, content=PNG_1PX)}
    )

    body = await fetcher(recorder, rebinding).fetch(
        "https://images.example/cat.png", limit=LIMIT, timeout_s=5
    )

    assert body == PNG_1PX
    [request] = recorder.requests
    assert request.url.host == PUBLIC
    assert request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"


@ABANDONED
async def test_a_lying_content_length_does_not_lift_the_limit() -> None:
    pulled = [0]

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            pulled[0] += 1
            yield b"\0" * 1024

    recorder = Recorder(
        {
            "https://images.example/liar.png": lambda: httpx.Response(
                200, headers={"content-length": "10"}, content=body()
            )
        }
    )

    message = await refused(recorder, "https://images.example/liar.png")

    assert "over the 4096-byte limit" in message
    assert pulled[0] <= LIMIT // 1024 + 1


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
async def test_compressed_bodies_are_refused_before_inflating(encoding: str) -> None:
    async def bomb() -> AsyncIterator[bytes]:
        yield b"\x1f\x8b" + b"\0" * 64  # never decoded: refused on the header

    recorder = Recorder(
        {
            "https://images.example/bomb.png": lambda: httpx.Response(
                200, headers={"content-encoding": encoding}, content=bomb()
            )
        }
    )

    message = await refused(recorder, "https://images.example/bomb.png")

    assert "only identity is accepted" in message
    assert recorder.requests[0].headers["accept-encoding"] == "identity"


async def test_a_declared_oversize_is_refused_before_reading() -> None:
    pulled = [0]

    async def body() -> AsyncIterator[bytes]:
        pulled[0] += 1
        yield PNG_1PX

    recorder = Recorder(
        {
            "https://images.example/big.png": lambda: httpx.Response(
                200, headers={"content-length": str(10**12)}, content=body()
            )
        }
    )

    message = await refused(recorder, "https://images.example/big.png")

    assert f"is {10**12} bytes; the limit is {LIMIT}" in message
    assert pulled[0] == 0


@ABANDONED
async def test_an_endless_chunked_body_stops_at_the_limit() -> None:
    pulled = [0]

    async def endless() -> AsyncIterator[bytes]:
        while True:
            pulled[0] += 1
            await trio.lowlevel.checkpoint()
            yield b"\0" * 512

    recorder = Recorder(
        {"https://images.example/endless.png": lambda: httpx.Response(200, content=endless())}
    )

    message = await refused(recorder, "https://images.example/endless.png")

    assert "over the 4096-byte limit" in message
    assert pulled[0] == LIMIT // 512 + 1


async def test_a_server_that_never_answers_is_abandoned_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    slow = RemoteFetcher(transport=httpx.MockTransport(hang), resolve=resolve)
    with pytest.raises(ToolError, match="took longer than 20s"):
        await slow.fetch("https://images.example/slow.png", limit=LIMIT, timeout_s=20)


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1/x",
        "http://exa mple.com/x",
        "http:///x.png",
        "https://" + "a" * 70 + ".example/",
    ],
)
async def test_malformed_urls_are_refused_cleanly(url: str) -> None:
    recorder = Recorder({})

    message = await refused(recorder, url)

    assert message
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC, True),
        ("2606:4700::1111", True),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::5db8:d822", True),
        ("::ffff:0:5db8:d822", True),  # IPv4-translated public address
    ]
    + [(a, False) for a in ("127.0.0.1", "::1", "fe80::1%eth0", "2002:a00:1::", "::ffff:10.0.0.1")],
)
def test_public_means_globally_routed_whatever_the_spelling(address: str, public: bool) -> None:
    assert is_public_address(address) is public


SSRF_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/x.png",
    "http://[::ffff:127.0.0.1]/x.png",
    "http://2130706433/x.png",
    "http://localhost:1234/v1/models",
    "https://images.example/cat.png",  # public, and still not fetched
]


def test_with_remote_images_off_nothing_is_fetched_from_any_url(tmp_path: Path) -> None:
    # The default: remote images are opt-in, so no URL, inward or public, is requested.
    with serve_in_thread(tmp_path) as server:
        answers = [server.call("analyze_image", {"images": url}) for url in SSRF_TARGETS]
        fetched = list(server.fetched)

    for url, answer in zip(SSRF_TARGETS, answers, strict=True):
        assert answer.is_error, url
        assert "remote images are disabled" in message(answer), url
    assert fetched == []
