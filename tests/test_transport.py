"""The aiohttp transport under the providers' httpx clients (reconciler/transport.py).

Each test serves one behaviour a provider's server may show over real loopback TCP
(a raw asyncio server in a thread, so nothing of aiohttp or h11 answers) and checks
what the client sees: replies as sent, every failure as the httpx exception of the
same meaning (so the adapters' one mapping holds), and every request sent once.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from reconciler.connections import provider_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list], Awaitable[None]]


@contextmanager
def serving(handler: Handler) -> Iterator[tuple[str, list]]:
    """A loopback server answering every connection with ``handler``; yields (base URL,
    the raw requests it read, in order)."""
    seen: list = []
    ready = threading.Event()
    state: dict = {}

    async def main() -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer, seen)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # the client went, or the server stops
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        async with server:
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}", seen
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


async def read_request(reader: asyncio.StreamReader, seen: list) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    seen.append(head + body)
    return head + body


def call(url: str, method: str = "PUT", timeout: float = 5.0) -> httpx.Response:
    async def main() -> httpx.Response:
        async with provider_client(url, timeout=timeout) as client:
            return await client.request(method, "/things/1?x=1", content=b'{"a":1}')

    return asyncio.run(main())


def test_a_reply_comes_through_as_sent() -> None:
    """Status, headers (repeated ones kept), body; the request's own headers and body
    arrive once each."""
    reply = (
        b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/json\r\n"
        b"X-Request-Id: r-1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b'Content-Length: 11\r\n\r\n{"ok":true}'
    )

    async def handler(reader, writer, seen) -> None:  # noqa: ANN001
        await read_request(reader, seen)
        writer.write(reply)
        await writer.drain()

    with serving(handler) as (url, seen):
        resp = call(url)
    assert resp.status_code == 207 and resp.json() == {"ok": True}
    assert resp.headers["x-request-id"] == "r-1"
    assert resp.headers.get_list("set-cookie") == ["a=1", "b=2"]
    [raw] = seen
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [line.lower() for line in head.split(b"\r\n")]
    assert lines[0] == b"put /things/1?x=1 http/1.1"
    assert body == b'{"a":1}'
    assert sum(line.startswith(b"host:") for line in lines) == 1
    assert sum(line.startswith(b"content-length:") for line in lines) == 1


def test_a_compressed_body_is_decoded_once() -> None:
    """aiohttp hands the body over as it came; httpx decodes it, as before."""
    data = gzip.compress(b'{"numbers":["+14155550100"]}')

    async def handler(reader, writer, seen) -> None:  # noqa: ANN001
        await read_request(reader, seen)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
        )
        await writer.drain()

    with serving(handler) as (url, _):
        assert call(url).json() == {"numbers": ["+14155550100"]}


async def drop_after_reading(reader, writer, seen) -> None:  # noqa: ANN001
    await read_request(reader, seen)  # carried out, then the connection is gone


async def garbage_status_line(reader, writer, seen) -> None:  # noqa: ANN001
    await read_request(reader, seen)
    writer.write(b"HTPT/9 what\r\n\r\n")
    await writer.drain()


async def too_slow(reader, writer, seen) -> None:  # noqa: ANN001
    await read_request(reader, seen)
    await asyncio.sleep(2)


async def body_cut_short(reader, writer, seen) -> None:  # noqa: ANN001
    await read_request(reader, seen)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok"')
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "method", "expected", "not_expected"),
    [
        (drop_after_reading, "PUT", httpx.RemoteProtocolError, httpx.TimeoutException),
        (drop_after_reading, "DELETE", httpx.RemoteProtocolError, httpx.TimeoutException),
        (drop_after_reading, "POST", httpx.RemoteProtocolError, httpx.TimeoutException),
        (garbage_status_line, "PUT", httpx.RemoteProtocolError, httpx.TimeoutException),
        (body_cut_short, "PUT", httpx.TransportError, httpx.TimeoutException),
        (too_slow, "PUT", httpx.ReadTimeout, httpx.ConnectTimeout),
    ],
)
def test_a_failure_is_httpxs_and_the_request_was_sent_once(
    handler: Handler, method: str, expected: type, not_expected: type
) -> None:
    """A dropped connection, a malformed reply, a reply cut short, a reply too slow:
    each the httpx error httpx's own transport raises for it (a timeout only when it is
    one), and never sent again unasked (aiohttp would resend an idempotent request
    once)."""
    with serving(handler) as (url, seen), pytest.raises(expected) as caught:
        call(url, method, timeout=0.5)
    assert not isinstance(caught.value, not_expected)
    assert len(seen) == 1


def test_nobody_listening_is_a_connect_error() -> None:
    with socket.socket() as s:  # a port just freed: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        call(f"http://127.0.0.1:{port}")


def test_a_kept_connection_carries_the_next_request() -> None:
    """Keep-alive: two requests in a row share one connection."""
    connections: list = []

    async def handler(reader, writer, seen) -> None:  # noqa: ANN001
        connections.append(writer)
        for _ in range(2):
            await read_request(reader, seen)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async def main(url: str) -> list[int]:
        async with provider_client(url) as client:
            return [(await client.get("/a")).status_code, (await client.get("/b")).status_code]

    with serving(handler) as (url, seen):
        assert asyncio.run(main(url)) == [204, 204]
    assert len(seen) == 2 and len(connections) == 1
