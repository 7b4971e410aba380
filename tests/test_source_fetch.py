"""The source fetcher against a real local web server: what a followed source gets.

A feed is fetched once and then only revalidated; servers that fail, stall, send too
much or redirect in circles give a FetchError the bot can explain; and a URL from a
chat never reaches an address inside the operator's network.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import cast

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from bot.sources.fetch import (
    FetchError,
    FetchLimits,
    SourceFetcher,
    SourceUrlError,
    check_source_url,
    is_public_address,
    parse_retry_after,
)

FEED = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
ETAG = '"feed-v1"'
LAST_MODIFIED = "Mon, 07 Dec 2026 09:00:00 GMT"
MB = 1024 * 1024


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class FeedServer:
    """A web server on 127.0.0.1 that records every request it was sent."""

    requests: list[Seen] = field(default_factory=list)
    streamed: int = 0  # bytes a streaming handler managed to write
    finished_stream: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/feed.ics", self._feed)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/big-declared", self._big_declared)
        app.router.add_get("/big-chunked", self._big_chunked)
        app.router.add_get("/bomb", self._bomb)
        app.router.add_get("/gzipped", self._gzipped)
        app.router.add_get("/hop/{left}", self._hop)
        app.router.add_get("/loop/{name}", self._loop)
        app.router.add_get("/to", self._redirect_to)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = cast(asyncio.Server | None, site._server)
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release.set()  # let a stalled handler end
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(Seen(request.path_qs, dict(request.headers)))
        return await handler(request)

    async def _feed(self, request: web.Request) -> web.Response:
        headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304, headers=headers)
        return web.Response(body=FEED, headers=headers, content_type="text/calendar")

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {}
        if "retry" in request.query:
            headers["Retry-After"] = request.query["retry"]
        return web.Response(status=code, headers=headers, text="no")

    async def _slow(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), timeout=5)
        return web.Response(body=FEED)

    async def _stream(self, request: web.Request, *, declared: bool) -> web.StreamResponse:
        total = 20 * MB
        response = web.StreamResponse()
        if declared:
            response.content_length = total
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"x" * (64 * 1024)
        try:
            while self.streamed < total:
                await response.write(chunk)
                self.streamed += len(chunk)
            self.finished_stream = True
        except (ConnectionError, OSError):
            pass  # the client hung up: what the test wants to see
        return response

    async def _big_declared(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, declared=True)

    async def _big_chunked(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, declared=False)

    async def _bomb(self, request: web.Request) -> web.Response:
        return web.Response(
            body=GZIP_BOMB, headers={"Content-Encoding": "gzip"}, content_type="text/calendar"
        )

    async def _gzipped(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(FEED), headers={"Content-Encoding": "gzip"})

    async def _hop(self, request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(body=FEED)
        raise web.HTTPFound(f"/hop/{left - 1}")

    async def _loop(self, request: web.Request) -> web.Response:
        other = "b" if request.match_info["name"] == "a" else "a"
        raise web.HTTPMovedPermanently(f"/loop/{other}")

    async def _redirect_to(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(request.query["url"])


def _gzip_bomb(decoded: int) -> bytes:
    """A gzip stream of ``decoded`` zero bytes, compressed without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [compressor.compress(block) for _ in range(decoded // MB)]
    parts.append(compressor.flush())
    return b"".join(parts)


GZIP_BOMB = _gzip_bomb(200 * MB)  # about 200 KB on the wire


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    feed_server = FeedServer()
    await feed_server.start()
    yield feed_server
    await feed_server.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[SourceFetcher]:
    local = SourceFetcher(allow_local=True)
    yield local
    await local.close()


async def _fetch_error(fetcher: SourceFetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url)
    return caught.value


# --- what a source gets ------------------------------------------------------------


async def test_a_feed_is_fetched_once_then_only_revalidated(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    first = await fetcher.fetch(server.url("/feed.ics"))
    assert first.not_modified is False
    assert first.body == FEED
    assert (first.etag, first.last_modified) == (ETAG, LAST_MODIFIED)
    assert first.content_type == "text/calendar"
    assert first.url == server.url("/feed.ics")

    second = await fetcher.fetch(
        server.url("/feed.ics"), etag=first.etag, last_modified=first.last_modified
    )
    sent = server.requests[-1].headers
    assert sent["If-None-Match"] == ETAG
    assert sent["If-Modified-Since"] == LAST_MODIFIED
    assert second.not_modified is True
    assert second.body == b""
    assert (second.etag, second.last_modified) == (ETAG, LAST_MODIFIED)


async def test_a_fetch_sends_no_conditional_headers_it_was_not_given(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    await fetcher.fetch(server.url("/feed.ics"))
    sent = server.requests[-1].headers
    assert "If-None-Match" not in sent
    assert "If-Modified-Since" not in sent
    assert sent["User-Agent"].startswith("summitbot")
    assert "Cookie" not in sent


async def test_a_server_error_is_an_http_status_without_retry_after(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    error = await _fetch_error(fetcher, server.url("/status/500"))
    assert (error.code, error.detail, error.retry_after) == ("http_status", "HTTP 500", None)


async def test_a_rate_limited_source_says_when_to_come_back(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    error = await _fetch_error(fetcher, server.url("/status/429?retry=120"))
    assert (error.code, error.detail, error.retry_after) == ("http_status", "HTTP 429", 120.0)

    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    error = await _fetch_error(fetcher, str(URL(server.url("/status/503")) % {"retry": later}))
    assert error.detail == "HTTP 503"
    assert error.retry_after is not None
    assert 590 <= error.retry_after <= 600


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now=40.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_a_stalled_server_times_out(server: FeedServer) -> None:
    quick = SourceFetcher(allow_local=True, limits=FetchLimits(timeout=0.3))
    started = time.monotonic()
    try:
        error = await _fetch_error(quick, server.url("/slow"))
    finally:
        await quick.close()
    assert error.code == "timeout"
    assert time.monotonic() - started < 2


async def test_a_declared_20_mb_body_is_refused_before_it_is_read(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    error = await _fetch_error(fetcher, server.url("/big-declared"))
    assert (error.code, error.detail) == ("too_large", "body over 10 MB")
    await asyncio.sleep(0.05)  # let the server notice the closed connection
    assert not server.finished_stream


async def test_an_undeclared_20_mb_body_is_cut_off_once_past_the_limit(
    server: FeedServer,
) -> None:
    small = SourceFetcher(allow_local=True, limits=FetchLimits(max_bytes=MB))
    try:
        error = await _fetch_error(small, server.url("/big-chunked"))
    finally:
        await small.close()
    assert (error.code, error.detail) == ("too_large", "body over 1 MB")
    for _ in range(50):  # the server's last writes fail once it sees the hang-up
        if server.streamed and not server.finished_stream:
            break
        await asyncio.sleep(0.01)
    assert not server.finished_stream
    assert server.streamed < 20 * MB


async def test_a_gzip_bomb_is_stopped_by_its_decoded_size(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    assert len(GZIP_BOMB) < 1 * MB
    tracemalloc.start()
    try:
        error = await _fetch_error(fetcher, server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (error.code, error.detail) == ("too_large", "body over 10 MB")
    assert peak < 24 * MB  # the limit plus buffers, not the 200 MB the bomb inflates to


async def test_a_compressed_feed_arrives_decoded(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    fetched = await fetcher.fetch(server.url("/gzipped"))
    assert fetched.body == FEED
    assert server.requests[-1].headers["Accept-Encoding"] == "gzip"


async def test_a_redirect_chain_within_the_limit_is_followed(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    fetched = await fetcher.fetch(server.url("/hop/5"))
    assert fetched.body == FEED
    assert fetched.url == server.url("/hop/0")
    assert server.paths() == [f"/hop/{left}" for left in range(5, -1, -1)]


async def test_a_redirect_chain_over_the_limit_is_refused(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    error = await _fetch_error(fetcher, server.url("/hop/6"))
    assert (error.code, error.detail) == ("too_many_redirects", "more than 5 redirects")
    assert "/hop/0" not in server.paths()


async def test_a_redirect_loop_is_refused(server: FeedServer, fetcher: SourceFetcher) -> None:
    error = await _fetch_error(fetcher, server.url("/loop/a"))
    assert error.code == "too_many_redirects"
    assert server.paths() == ["/loop/a", "/loop/b"]


async def test_a_refused_connection_is_a_connection_error(fetcher: SourceFetcher) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        port = unused.getsockname()[1]
        error = await _fetch_error(fetcher, f"http://127.0.0.1:{port}/feed.ics")
    assert error.code == "connection"
    assert "Traceback" not in error.detail


async def test_an_unknown_host_is_a_dns_error(fetcher: SourceFetcher) -> None:
    error = await _fetch_error(fetcher, "http://no-such-host.invalid/feed.ics")
    assert error.code == "dns"
    assert error.detail == "cannot resolve no-such-host.invalid"


# --- the operator's network stays out of reach ------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/", "private_address"),
        ("https://10.0.0.1/feed.ics", "private_address"),
        ("https://[::1]/", "private_address"),
        ("https://169.254.169.254/latest/meta-data/", "private_address"),
        ("https://100.64.0.1/", "private_address"),
        ("https://[::ffff:192.168.0.1]/", "private_address"),
        ("https://[fec0::1]/", "private_address"),
        ("https://224.0.0.1/", "private_address"),
        ("https://0.0.0.0/", "private_address"),
        ("https://2130706433/", "not_a_url"),
        ("https://127.1/", "not_a_url"),
        ("http://example.org/", "not_https"),
        ("ftp://example.org/feed.ics", "not_https"),
        ("https://user:pw@example.org/", "credentials"),
        ("https://user@example.org/", "credentials"),
        ("example.org/feed.ics", "not_a_url"),
        ("https://", "not_a_url"),
        ("https://example.org/" + "a" * 2_000, "too_long"),
    ],
)
def test_a_url_the_bot_will_not_follow(url: str, code: str) -> None:
    with pytest.raises(SourceUrlError) as caught:
        check_source_url(url, allow_local=False)
    assert caught.value.code == code
    assert str(caught.value)


def test_a_public_url_is_normalised() -> None:
    assert (
        check_source_url(" https://Example.ORG/Cal Feed.ics#top ", allow_local=False)
        == "https://example.org/Cal%20Feed.ics"
    )
    assert check_source_url("https://8.8.8.8/f.ics", allow_local=False) == "https://8.8.8.8/f.ics"


def test_development_may_follow_local_http_urls() -> None:
    assert check_source_url("http://127.0.0.1:8080/f.ics", allow_local=True) == (
        "http://127.0.0.1:8080/f.ics"
    )
    with pytest.raises(SourceUrlError):
        check_source_url("https://u:p@127.0.0.1/", allow_local=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.100.100.100", False),
        ("198.18.0.1", False),
        ("239.255.255.250", False),
        ("255.255.255.255", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::", False),  # 6to4 of 192.168.1.1
        ("2002:5db8:d70e::1", True),  # 6to4 of 93.184.215.14, a public address
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_a_host_name_resolving_to_loopback_is_refused_without_connecting(
    server: FeedServer,
) -> None:
    guarded = SourceFetcher(allow_local=False)
    try:
        error = await _fetch_error(guarded, f"https://localhost:{server.port}/feed.ics")
    finally:
        await guarded.close()
    assert error.code == "private_address"
    assert server.requests == []


async def test_an_ip_literal_is_refused_before_connecting(server: FeedServer) -> None:
    guarded = SourceFetcher(allow_local=False)
    try:
        with pytest.raises(SourceUrlError) as caught:
            await guarded.fetch(f"https://127.0.0.1:{server.port}/feed.ics")
    finally:
        await guarded.close()
    assert caught.value.code == "private_address"
    assert server.requests == []


class PublicFirstHop(SourceFetcher):
    """A production fetcher except that its first URL is let through unchecked.

    The local server then stands in for a public https site whose redirects the
    fetcher must still check: every later hop and every resolved name goes through
    the real rules.
    """

    def __init__(self) -> None:
        super().__init__(allow_local=False)
        self._first_checked = False

    def _check_url(self, url: str) -> URL:
        if not self._first_checked:
            self._first_checked = True
            return URL(url)
        return super()._check_url(url)


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("http://93.184.215.14/feed.ics", "not_https"),
        ("https://127.0.0.1:{port}/feed.ics", "private_address"),
        ("https://[::1]:{port}/feed.ics", "private_address"),
        ("https://localhost:{port}/feed.ics", "private_address"),
        ("https://u:p@example.org/feed.ics", "http_status"),
    ],
)
async def test_a_redirect_from_a_public_site_into_the_network_is_refused(
    server: FeedServer, target: str, code: str
) -> None:
    guarded = PublicFirstHop()
    start = str(URL(server.url("/to")) % {"url": target.format(port=server.port)})
    try:
        error = await _fetch_error(guarded, start)
    finally:
        await guarded.close()
    assert error.code == code
    assert len(server.requests) == 1  # nothing after the redirect


async def test_a_redirect_to_http_is_followed_in_development(
    server: FeedServer, fetcher: SourceFetcher
) -> None:
    target = server.url("/feed.ics", host="localhost")
    fetched = await fetcher.fetch(str(URL(server.url("/to")) % {"url": target}))
    assert fetched.body == FEED
    assert fetched.url == target
