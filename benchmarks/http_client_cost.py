"""What one batched request costs the client's CPU, by HTTP stack.

apply_bench.py shows the event loop needing more than one core to run every
provider at its bound at once, and httpx/httpcore/h11/anyio as the largest part
of a request's CPU. This measures that part alone: N POSTs of a 100-number JSON
body (about 3 KB each way, as a batched add), C at once, to a minimal HTTP/1.1
server in another process that answers each after 5 ms, through

- ``httpx``: ``httpx.AsyncClient`` with its own transport (what the adapters use);
- ``httpx+aiohttp``: the same client over ``reconciler.transport.AiohttpTransport``
  (httpx's API, aiohttp's connections: what ``Connections`` gives the adapters);
- ``aiohttp``: ``aiohttp.ClientSession`` alone;

and prints this process's CPU per request (user + system) and requests per
second, alternating the stacks each round. Prints figures only; it passes or
fails nothing.

    python benchmarks/http_client_cost.py                     # 3 000 requests, 4 and 10 at once
    python benchmarks/http_client_cost.py --requests 5000 --at-once 4 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable

from plan_bench import machine

BODY = json.dumps({"numbers": [f"+1555000{i:04d}" for i in range(100)], "reason": "fraud"})
REPLY = json.dumps(
    {"results": [{"number": f"+1555000{i:04d}", "status": "ok"} for i in range(100)]}
).encode()
WARM_UP = 50  # requests before the measured ones: connections opened, code warm


def serve(ports: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """(The server process.) Keep-alive HTTP/1.1: read a request, wait 5 ms, answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                await asyncio.sleep(0.005)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(REPLY), REPLY)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


Post = Callable[[], Awaitable[None]]


async def timed(post: Post, requests: int, at_once: int) -> tuple[float, float]:
    """(wall s, CPU s) of ``requests`` calls of ``post``, ``at_once`` in flight."""
    limit = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with limit:
            await post()

    await asyncio.gather(*(one() for _ in range(WARM_UP)))
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    return time.perf_counter() - started, time.process_time() - cpu


async def with_httpx(url: str, requests: int, at_once: int, aiohttp: bool) -> tuple[float, float]:
    import httpx

    limits = httpx.Limits(max_connections=at_once, max_keepalive_connections=at_once)
    transport = None
    if aiohttp:
        from reconciler.transport import AiohttpTransport

        transport = AiohttpTransport(limits)
    async with httpx.AsyncClient(base_url=url, limits=limits, transport=transport) as client:

        async def post() -> None:
            resp = await client.post(
                "/add", content=BODY.encode(), headers={"Content-Type": "application/json"}
            )
            resp.json()

        return await timed(post, requests, at_once)


async def with_aiohttp(url: str, requests: int, at_once: int) -> tuple[float, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=at_once)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:

        async def post() -> None:
            async with session.post(
                "/add", data=BODY.encode(), headers={"Content-Type": "application/json"}
            ) as resp:
                await resp.json()

        return await timed(post, requests, at_once)


def stacks() -> dict[str, Callable[[str, int, int], Awaitable[tuple[float, float]]]]:
    """Each stack's runner."""
    return {
        "httpx": lambda url, n, c: with_httpx(url, n, c, aiohttp=False),
        "httpx+aiohttp": lambda url, n, c: with_httpx(url, n, c, aiohttp=True),
        "aiohttp": with_aiohttp,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests a run")
    parser.add_argument(
        "--at-once", type=int, action="append", help="requests in flight (default: 4 and 10)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each stack, alternately")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    runners = stacks()
    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(ports,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=30)}"
        for at_once in args.at_once or [4, 10]:
            cpu: dict[str, list[float]] = {}
            rate: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for name, runner in runners.items():
                    wall, used = asyncio.run(runner(url, args.requests, at_once))
                    cpu.setdefault(name, []).append(used / args.requests * 1000)
                    rate.setdefault(name, []).append(args.requests / wall)
            print(f"\n{args.requests} requests, {at_once} at once, {args.rounds} rounds (medians):")
            print(
                f"   {'stack':<14} {'CPU ms a request':>16}   {'each run':<30} {'requests/s':>10}"
            )
            for name, values in cpu.items():
                runs = ", ".join(f"{v:.2f}" for v in values)
                print(
                    f"   {name:<14} {statistics.median(values):>16.2f}   {runs:<30} "
                    f"{statistics.median(rate[name]):>10.0f}"
                )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
