"""A python-telegram-bot transport on aiohttp: the default way summitbot talks to the Bot API.

PTB's own :class:`telegram.request.HTTPXRequest` spends more time in its HTTP client
than a broadcast can afford, and gets slower with concurrency; aiohttp sends several
times as many messages a second on the same machine (docs/benchmarks.md). PTB's
:class:`~telegram.request.BaseRequest` does the rest: it turns the status and body
returned here into ``ChatMigrated``, ``RetryAfter``, ``Forbidden``, ``BadRequest`` and
so on, exactly as for HTTPX.

PTB's four timeouts map onto aiohttp's as follows: ``connect_timeout`` bounds opening a
socket (``sock_connect``); ``pool_timeout`` plus ``connect_timeout`` bound getting a
connection, pooled or new (``connect``); ``read_timeout`` bounds each wait for the
server's answer (``sock_read``). aiohttp has no timeout per write, so the write timeout
bounds the whole request together with the others (``total``).

Proxies come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), as with
PTB's HTTPX transport, read once per host rather than on every request: aiohttp's own
``trust_env`` reads the environment (and ``~/.netrc``) for each request, which would
triple the client's CPU time per message. Unlike ``trust_env``, no credentials for the
Bot API host itself are taken from ``~/.netrc`` (as with HTTPX); a proxy's credentials
in its URL or ``.netrc`` still are.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

JSON_CONTENT_TYPE = "application/json"
_JSON_HEADERS = {"Content-Type": JSON_CONTENT_TYPE}


class AiohttpRequest(BaseRequest):
    """Bot API requests over one aiohttp session with a keep-alive connection pool.

    The defaults are those of :class:`~telegram.request.HTTPXRequest`, so switching
    transports changes nothing but speed.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_default_timeout",
        "_media_write_timeout",
        "_pool_timeout",
        "_proxies",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 1,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._default_timeout = _timeout(
            connect=connect_timeout, pool=pool_timeout, write=write_timeout, read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        # The proxy for each scheme and host, from the environment, once known.
        self._proxies: dict[
            tuple[str, str | None], tuple[URL | None, aiohttp.BasicAuth | None]
        ] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    @property
    def connection_pool_size(self) -> int:
        return self._connection_pool_size

    async def initialize(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        connector = aiohttp.TCPConnector(limit=self._connection_pool_size)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            # The environment's proxies are looked up once per host (``_proxy_for``).
            trust_env=False,
        )
        self._proxies.clear()

    async def post_encoded(self, url: str, body: bytes) -> JSONDict | list[JSONDict] | bool:
        """POST a JSON body encoded beforehand, with the default timeouts: what
        :meth:`post` returns and raises, without building a ``RequestData`` per call.

        A fan-out sends thousands of one prepared message (``bot/delivery/prepared_message.py``).
        A successful answer is read here; any other is handed to PTB's own
        ``BaseRequest`` to turn into its exception, so errors are exactly PTB's.
        """
        try:
            status, payload = await self._send(
                "POST", url, body, _JSON_HEADERS, self._default_timeout
            )
        except TelegramError:
            raise
        except Exception as exc:  # as BaseRequest does with what a transport lets through
            raise NetworkError(f"Unknown error in HTTP implementation: {exc!r}") from exc
        if 200 <= status <= 299:
            answer = self.parse_json_payload(payload)
            return answer["result"]  # type: ignore[no-any-return]
        async with _Answered(status, payload) as answered:
            return await answered.post(url)

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        has_files = request_data is not None and request_data.contains_files
        timeout = _timeout(
            connect=_chosen(connect_timeout, self._connect_timeout),
            pool=_chosen(pool_timeout, self._pool_timeout),
            write=_chosen(
                write_timeout, self._media_write_timeout if has_files else self._write_timeout
            ),
            read=_chosen(read_timeout, self._read_timeout),
        )
        body: Any = None
        headers: dict[str, str] = {}
        if request_data is not None:
            if has_files:
                body = _multipart(request_data)
            else:
                # JSON, which the Bot API accepts too: json.dumps runs in C, while percent-
                # encoding non-Latin text (most of ours) is slow Python.
                body = request_data.json_payload
                headers = _JSON_HEADERS
        return await self._send(method, url, body, headers, timeout)

    async def _send(
        self,
        method: str,
        url: str,
        body: Any,
        headers: dict[str, str],
        bounds: aiohttp.ClientTimeout,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        proxy, proxy_auth = self._proxy_for(url)
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=bounds,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's own time-outs are TimeoutErrors too
            raise TimedOut(f"Timed out: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc

    def _proxy_for(self, url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The proxy the environment names for ``url``'s scheme and host (none if it says
        to bypass it), as aiohttp's ``trust_env`` would find it."""
        target = URL(url)
        key = (target.scheme, target.host)
        if key not in self._proxies:
            try:
                self._proxies[key] = get_env_proxy_for_url(target)
            except LookupError:
                self._proxies[key] = (None, None)
        return self._proxies[key]


def _timeout(
    *, connect: float | None, pool: float | None, write: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=_sum(connect, pool, write, read),
        connect=_sum(pool, connect),
        sock_connect=connect,
        sock_read=read,
    )


def _chosen(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _sum(*parts: float | None) -> float | None:
    """A bound made of several: none if any part is unbounded."""
    return None if any(part is None for part in parts) else sum(p for p in parts if p is not None)


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    """``multipart/form-data`` with the parameters and the files (e.g. an ``.ics`` file)."""
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form


class _Answered(BaseRequest):
    """A "transport" that has already been answered: run through PTB's ``BaseRequest``,
    which turns an error answer into ``RetryAfter``, ``Forbidden`` and the rest."""

    __slots__ = ("_answer",)

    def __init__(self, status: int, payload: bytes) -> None:
        self._answer = (status, payload)

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, *_: Any, **__: Any) -> tuple[int, bytes]:
        return self._answer
