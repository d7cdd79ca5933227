"""The providers' httpx clients: aiohttp's transport under them (reconciler/transport.py)
and ``ProviderClient``'s shortcuts (reconciler/connections.py).

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


def answering_each(reply: bytes, connections: list) -> Handler:
    """A handler answering every request of a connection with ``reply``, each
    connection noted in ``connections`` (how many the client opened)."""

    async def handler(reader, writer, seen) -> None:  # noqa: ANN001
        connections.append(writer)
        while True:
            await read_request(reader, seen)
            writer.write(reply)
            await writer.drain()

    return handler


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
    handler = answering_each(b"HTTP/1.1 204 No Content\r\n\r\n", connections)

    async def main(url: str) -> list[int]:
        async with provider_client(url) as client:
            return [(await client.get("/a")).status_code, (await client.get("/b")).status_code]

    with serving(handler) as (url, seen):
        assert asyncio.run(main(url)) == [204, 204]
    assert len(seen) == 2 and len(connections) == 1


# -- ProviderClient's shortcuts: the same outcome as httpx's own client ------------------


def test_a_cookie_a_server_sets_is_sent_back_and_none_is_invented() -> None:
    """The jar skips responses without ``Set-Cookie``; one that has it is still kept
    (whatever the header's case), and sent with the next request."""

    async def handler(reader, writer, seen) -> None:  # noqa: ANN001
        replies = [
            b"HTTP/1.1 204 No Content\r\nX-Set-Cookie-Not: a=1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nsET-cOOKIE: session=abc; Path=/\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
        for reply in replies:
            await read_request(reader, seen)
            writer.write(reply)
            await writer.drain()

    async def main(url: str) -> list[dict]:
        jars = []
        async with provider_client(url) as client:
            for path in ("/a", "/b", "/c"):
                await client.get(path)
                jars.append(dict(client.cookies))
        return jars

    with serving(handler) as (url, seen):
        jars = asyncio.run(main(url))
    assert jars == [{}, {"session": "abc"}, {"session": "abc"}]
    cookies = [
        [line for line in raw.split(b"\r\n") if line.lower().startswith(b"cookie:")] for raw in seen
    ]
    assert cookies == [[], [], [b"cookie: session=abc"]]


BASES = ["http://127.0.0.1:8080", "http://127.0.0.1:8080/", "https://h.example/api/v2"]
PATHS = ["/v3/add", "v3/add", "/groups/7/phones?x=1", "", "/a%20b/é", "https://other.example/x"]


@pytest.mark.parametrize("base", BASES)
def test_a_merged_url_is_httpxs_own_every_time_and_after_the_base_changes(base: str) -> None:
    ours = provider_client(base)
    theirs = httpx.AsyncClient(base_url=base)
    for _ in range(2):  # the second time from what was kept
        for path in PATHS:
            assert ours.build_request("GET", path).url == theirs.build_request("GET", path).url
    assert ours._merge_url("/v3/add") is ours._merge_url("/v3/add")  # kept, not merged again
    ours.base_url = theirs.base_url = "http://127.0.0.1:9/other/"
    for path in PATHS:
        assert ours.build_request("GET", path).url == theirs.build_request("GET", path).url


def test_the_merged_urls_kept_are_bounded() -> None:
    """A remove by id has a path per number: those are merged, not all kept."""
    client = provider_client("http://127.0.0.1:8080")
    for i in range(client.MERGED_URLS * 3):
        assert str(client.build_request("DELETE", f"/phones/{i}").url).endswith(f"/phones/{i}")
    assert len(client._merged) == client.MERGED_URLS


def test_a_providers_connection_outlives_httpxs_keep_alive(tmp_path) -> None:  # noqa: ANN001
    """A provider read early in a plan waits for the others and for the comparison
    before its apply: its connection idle for longer than httpx's 5 s is used again."""
    from reconciler.connections import Connections
    from reconciler.models import ProvidersFile

    connections: list = []
    handler = answering_each(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", connections)

    async def main(url: str) -> None:
        config = ProvidersFile.model_validate(
            {
                "version": 1,
                "providers": {
                    "p": {
                        "type": "phonely",
                        "base_url": url,
                        "credentials": {
                            "api_key": {"env": "PHONELY_KEY"},
                            "uid": {"env": "PHONELY_UID"},
                        },
                    }
                },
            }
        )
        async with Connections(
            config, tmp_path, {"PHONELY_KEY": "key", "PHONELY_UID": "uid"}
        ) as conns:
            client = conns.adapter("p").client
            await client.get("/a")
            await asyncio.sleep(5.5)
            await client.get("/b")

    with serving(handler) as (url, seen):
        asyncio.run(main(url))
    assert len(seen) == 2 and len(connections) == 1


def test_no_keep_alive_expiry_keeps_connections_as_httpx_does() -> None:
    """httpx's ``keepalive_expiry=None`` is "never expires from idling": the next
    request goes on the same connection (0 would make aiohttp never reuse one)."""
    connections: list = []
    handler = answering_each(b"HTTP/1.1 204 No Content\r\n\r\n", connections)

    async def main(url: str) -> None:
        limits = httpx.Limits(max_connections=1, keepalive_expiry=None)
        async with provider_client(url, limits=limits) as client:
            for path in ("/a", "/b", "/c"):
                assert (await client.get(path)).status_code == 204

    with serving(handler) as (url, seen):
        asyncio.run(main(url))
    assert len(seen) == 3 and len(connections) == 1


def test_a_sandbox_plan_never_imports_aiohttp(project) -> None:  # noqa: ANN001
    """aiohttp is imported only where a provider is reached over the network: it builds
    its TLS contexts as it is imported (~115 ms, 9 MiB of a 1.5 s, 130 MiB plan of
    100 000 numbers), and the embedded sandbox answers in process. (``-X importtime``
    notes every import: the process ends without running Python's exit.)"""
    import re
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from reconciler.cli import entry; entry()"]
        + ["plan"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imported = re.findall(r"^import time:.*\|\s*([\w.]+)$", done.stderr, re.M)
    assert "reconciler.connections" in imported
    assert [name for name in imported if name.split(".")[0] == "aiohttp"] == []
