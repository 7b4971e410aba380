"""Fetching a source over HTTPS without becoming a way into the operator's network.

A source's URL comes from a chat, so every hop of a fetch is checked before the bot
connects: HTTPS only, and every address the host stands for must be public. Host
names are checked inside the connector's resolver, which hands aiohttp only the
addresses it checked, so a second lookup (DNS rebinding) cannot swap them; IP
literals, which aiohttp never resolves, are checked before the request. Redirects
are followed by hand so that each target goes through the same checks. Time and
size are bounded for the whole fetch, the decoded body included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH: Final = 2_000
DEFAULT_USER_AGENT: Final = "summitbot (sources)"
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 64 * 1024
# Carrier-grade NAT space; Python 3.11 leaves it out of is_private.
_SHARED: Final = ipaddress.IPv4Network("100.64.0.0/10")
# NAT64 prefixes: the last 32 bits are an IPv4 address a gateway connects to.
_NAT64: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)


class SourceUrlError(ValueError):
    """A URL the bot will not follow. ``code`` is what the bot translates."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FetchError(Exception):
    """A fetch that gave no usable body. ``detail`` is short and safe to show."""

    def __init__(self, code: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    """What one fetch brought back."""

    not_modified: bool  # a 304: nothing else to do
    body: bytes  # b"" when not_modified
    etag: str | None  # from the response (or the one sent, on 304)
    last_modified: str | None  # the Last-Modified header as received (or the one sent, on 304)
    url: str  # the final URL after redirects
    content_type: str | None


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 20.0  # total seconds per fetch (connect + read, all redirects)
    max_bytes: int = 10 * 1024 * 1024  # of the decoded body
    max_redirects: int = 5


def is_public_address(address: IPAddress) -> bool:
    """Whether connecting to ``address`` reaches the public internet only."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one (mapped, or 6to4's 2002::/16, which
        # a relay turns back into IPv4) is only as public as the IPv4 address is.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
        for prefix in _NAT64:
            if address in prefix:
                return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.is_site_local:
            return False
    elif address in _SHARED:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])  # without an IPv6 zone
    except ValueError:
        return None


def _looks_numeric(host: str) -> bool:
    """Legacy IPv4 spellings (``2130706433``, ``127.1``, ``0x7f.1``) that resolvers accept."""
    labels = host.rstrip(".").split(".")
    return all(label.isdigit() or label.lower().startswith("0x") for label in labels)


def check_source_url(url: str, *, allow_local: bool) -> str:
    """The URL as it will be fetched (normalised), or SourceUrlError.

    Syntax only, plus IP literals: ``https://`` is required unless ``allow_local``; a
    host that is an IP literal outside public address space is refused unless
    ``allow_local``. Host names are checked when they are resolved, at fetch time.
    """
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise SourceUrlError("too_long", f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
        host = parsed.host
    except (ValueError, TypeError):
        raise SourceUrlError("not_a_url", "this is not a URL") from None
    if not parsed.is_absolute() or not host:
        raise SourceUrlError("not_a_url", "this is not a URL with a host")
    if parsed.scheme != "https" and not (allow_local and parsed.scheme == "http"):
        raise SourceUrlError("not_https", "only https:// URLs can be followed")
    if parsed.user is not None or parsed.password is not None:
        raise SourceUrlError("credentials", "the URL must not contain a user name or password")
    literal = _ip_literal(host)
    if literal is None and _looks_numeric(host):
        raise SourceUrlError("not_a_url", "the host is neither a name nor a plain IP address")
    if literal is not None and not allow_local and not is_public_address(literal):
        raise SourceUrlError("private_address", "the address is not on the public internet")
    normalised = str(parsed.with_fragment(None))
    if len(normalised) > MAX_URL_LENGTH:
        raise SourceUrlError("too_long", f"the URL is longer than {MAX_URL_LENGTH} characters")
    return normalised


class _RefusedAddress(OSError):
    """Raised by the resolver; aiohttp wraps it in a ClientConnectorDNSError."""

    def __init__(self, host: str, address: IPAddress) -> None:
        super().__init__(f"{host} resolves to {address}")
        self.host = host
        self.address = address


class _GuardedResolver(AbstractResolver):
    """The default resolver, refusing a name if any of its addresses is not permitted."""

    def __init__(self, permits: Callable[[IPAddress], bool]) -> None:
        self._inner = DefaultResolver()
        self._permits = permits

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].partition("%")[0])
            if not self._permits(address):
                raise _RefusedAddress(host, address)
        return results

    async def close(self) -> None:
        await self._inner.close()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class SourceFetcher:
    """Fetches sources with one reused aiohttp session; ``close`` it on shutdown."""

    def __init__(
        self,
        *,
        allow_local: bool,
        limits: FetchLimits = FetchLimits(),  # frozen, so one shared default is safe
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self._allow_local = allow_local
        self._limits = limits
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _permits_address(self, address: IPAddress) -> bool:
        return self._allow_local or is_public_address(address)

    def _check_url(self, url: str) -> URL:
        """The URL of the first hop, checked; SourceUrlError as check_source_url."""
        return URL(check_source_url(url, allow_local=self._allow_local), encoded=True)

    def _session_for_fetch(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(self._permits_address),
                use_dns_cache=False,  # hourly polls gain nothing from a cache
                limit=20,
                limit_per_host=2,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(
                    total=self._limits.timeout, sock_read=self._limits.timeout
                ),
                headers={"User-Agent": self._user_agent, "Accept-Encoding": "gzip"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched:
        """Fetch ``url``, following redirects; FetchError when there is no usable body.

        Raises SourceUrlError if ``url`` itself is one check_source_url refuses.
        """
        target = self._check_url(url)
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        session = self._session_for_fetch()
        try:
            async with asyncio.timeout(self._limits.timeout):
                return await self._follow(session, target, headers, etag, last_modified)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(
                "timeout", f"no complete answer within {self._limits.timeout:g} s"
            ) from None
        except aiohttp.ClientConnectorDNSError as exc:
            refused = exc.os_error
            if isinstance(refused, _RefusedAddress):
                raise FetchError(
                    "private_address", f"{refused.host} resolves to a non-public address"
                ) from None
            raise FetchError("dns", f"cannot resolve {exc.host}") from None
        except aiohttp.ClientSSLError as exc:
            raise FetchError("connection", f"TLS with {exc.host} failed") from None
        except aiohttp.ClientConnectorError as exc:
            raise FetchError("connection", f"cannot connect to {exc.host}") from None
        except aiohttp.ClientPayloadError:
            raise FetchError("connection", "the body was cut off or badly encoded") from None
        except aiohttp.ClientResponseError:
            raise FetchError("connection", "the server's answer is not valid HTTP") from None
        except (aiohttp.ClientError, OSError):
            raise FetchError("connection", "the connection was closed or reset") from None

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        target: URL,
        headers: dict[str, str],
        etag: str | None,
        last_modified: str | None,
    ) -> Fetched:
        seen = {str(target)}
        redirects = 0
        while True:
            async with session.get(target, headers=headers, allow_redirects=False) as response:
                status = response.status
                if status in _REDIRECTS and "Location" in response.headers:
                    redirects += 1
                    if redirects > self._limits.max_redirects:
                        raise FetchError(
                            "too_many_redirects",
                            f"more than {self._limits.max_redirects} redirects",
                        )
                    target = self._redirect_target(response)
                    if str(target) in seen:
                        raise FetchError("too_many_redirects", "a redirect loop")
                    seen.add(str(target))
                    continue
                if status == 304:
                    return Fetched(
                        not_modified=True,
                        body=b"",
                        etag=response.headers.get("ETag") or etag,
                        last_modified=response.headers.get("Last-Modified") or last_modified,
                        url=str(response.url),
                        content_type=response.headers.get("Content-Type"),
                    )
                if not 200 <= status < 300:
                    retry_after = None
                    if status in (429, 503):
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise FetchError("http_status", f"HTTP {status}", retry_after=retry_after)
                body = await self._read_body(response)
                return Fetched(
                    not_modified=False,
                    body=body,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    url=str(response.url),
                    content_type=response.headers.get("Content-Type"),
                )

    def _redirect_target(self, response: aiohttp.ClientResponse) -> URL:
        """Where a redirect points, after the same checks as the first hop."""
        try:
            location = response.url.join(URL(response.headers["Location"]))
            return self._check_url(str(location))
        except SourceUrlError as exc:
            if exc.code == "not_https":
                raise FetchError("not_https", "a redirect to a URL that is not https://") from None
            if exc.code == "private_address":
                raise FetchError("private_address", "a redirect to a non-public address") from None
            raise FetchError("http_status", f"HTTP {response.status} to an unusable URL") from None
        except ValueError:
            raise FetchError("http_status", f"HTTP {response.status} to an unusable URL") from None

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._limits.max_bytes
        too_large = FetchError("too_large", f"body over {_megabytes(limit)}")
        if response.content_length is not None and response.content_length > limit:
            response.close()
            raise too_large
        chunks: list[bytes] = []
        size = 0
        # Decoded chunks: aiohttp inflates gzip as it reads, so this counts what a
        # compressed body becomes, and stops a bomb after one chunk over the limit.
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                response.close()  # drop the connection rather than drain the rest
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


def _megabytes(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    return f"{size} bytes"
