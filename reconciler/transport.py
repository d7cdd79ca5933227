"""The HTTP transport under every provider client: aiohttp's, behind httpx's API.

The adapters speak httpx (requests, responses, its exceptions); what carries a
request is swappable (``httpx.AsyncClient(transport=...)``). httpx's own transport
(httpcore, h11, anyio) cost the event loop 1.4 ms of CPU a batched request, this
one under the same client 0.6-0.8 (benchmarks/http_client_cost.py): with five
providers at once the loop needed more than a core (benchmarks/README.md).

Every aiohttp failure comes out as the httpx exception httpx's own transport raises
for it, so the adapters' one mapping (a timeout or a transport failure is
retryable) holds: a connect that timed out is ``ConnectTimeout``, a read
``ReadTimeout``, a refused or unresolvable connect ``ConnectError``, a connection
reset ``ReadError``, and a server gone without a whole reply or anything else
aiohttp refuses in one (a malformed status line, headers or body)
``RemoteProtocolError``. The whole body is read inside the mapping, so no aiohttp
error escapes later from reading it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import httpx


@contextmanager
def httpx_errors() -> Iterator[None]:
    """aiohttp's (and asyncio's timeout) exceptions as httpx's (see the module)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc) or "connect failed") from exc
    except aiohttp.ServerDisconnectedError as exc:  # closed with no (whole) reply
        raise httpx.RemoteProtocolError(str(exc) or "server disconnected") from exc
    except aiohttp.ClientOSError as exc:  # reset, broken pipe
        raise httpx.ReadError(str(exc) or "connection failed") from exc
    except aiohttp.ClientError as exc:  # a reply aiohttp could not parse, and the rest
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by one aiohttp session (opened on first use, in the running
    event loop), at most ``max_connections`` connections, kept alive between requests.
    Redirects are not followed and bodies are passed on undecoded (httpx decodes)."""

    def __init__(self, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        self._limits = limits
        self._ssl: ssl.SSLContext | bool = verify
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,  # None: never idles out, as in httpx
            ssl=self._ssl,
        )
        # proxies are httpx's concern (it mounts its own transport for them)
        session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)
        # aiohttp sends an idempotent request (PUT, DELETE) again, unasked, when a kept
        # connection drops; every send must be the executor's (its retry policy, the
        # providers' rate limits and lockouts): httpx never does. Its own test client
        # switches this off the same way; tests/test_transport.py fails if it ever
        # comes back.
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        with httpx_errors():
            async with self._session.request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=request.content or None,
                allow_redirects=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as reply:
                body = await reply.read()
                headers = list(reply.raw_headers)
        return httpx.Response(
            reply.status,
            headers=headers,
            content=body,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (reply.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
