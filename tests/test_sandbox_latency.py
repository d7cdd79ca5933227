"""An emulated latency is a response time: a request is answered ``latency`` after it
arrives, the emulator's own work counted in it (over loopback and in process), so its
work for requests at once, one at a time in one Python process, is not added to each."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from reconciler.sandbox import emulator_class
from reconciler.sandbox.base import EmulatorTransport
from reconciler.sandbox.server import serve

HEADERS = {"X-Authorization": "sandbox-phonely-key"}
PARAMS = {"uid": "sandbox-uid", "agentId": "a"}


def slow_phonely(latency: float, work: float) -> object:
    """A Phonely emulator whose work takes ``work`` seconds a request, one request at
    a time (as the GIL and the emulator's lock make it)."""
    emulator = emulator_class("phonely")(faults=f"latency={latency}s")
    process, lock = emulator.process, threading.Lock()

    def working(request: httpx.Request) -> httpx.Response:
        with lock:
            time.sleep(work)
            return process(request)

    emulator.process = working  # type: ignore[method-assign]
    return emulator


def timed(get: Callable[[], httpx.Response]) -> float:
    started = time.monotonic()
    assert get().status_code == 200
    return time.monotonic() - started


def test_the_work_is_counted_in_the_latency_over_loopback() -> None:
    emulator = slow_phonely(latency=0.3, work=0.2)
    with serve(emulator) as url:  # type: ignore[arg-type]
        took = timed(
            lambda: httpx.get(f"{url}/api/agent-block-list", headers=HEADERS, params=PARAMS)
        )
    assert 0.3 <= took < 0.45  # waiting first, then working: 0.5 s


def test_requests_at_once_are_each_answered_after_the_latency() -> None:
    clients = 4
    emulator = slow_phonely(latency=0.5, work=0.07)
    with (
        serve(emulator) as url,  # type: ignore[arg-type]
        httpx.Client(base_url=url, limits=httpx.Limits(max_connections=clients)) as client,
        ThreadPoolExecutor(clients) as pool,
    ):
        # one client, made before the clock starts: four made at once each load the CA
        # bundle (GIL-bound), which on a busy machine took more than the margin below
        took = list(
            pool.map(
                lambda _: timed(
                    lambda: client.get("/api/agent-block-list", headers=HEADERS, params=PARAMS)
                ),
                range(clients),
            )
        )
    # their work runs one at a time (0.28 s in all) within the latency; waiting first
    # and working after answered the last one at 0.5 + 0.28 s
    assert min(took) >= 0.5 and max(took) < 0.7, took


def test_the_work_is_counted_in_the_latency_in_process() -> None:
    emulator = slow_phonely(latency=0.3, work=0.2)
    transport = EmulatorTransport(emulator)  # type: ignore[arg-type]
    with httpx.Client(transport=transport, base_url="http://sandbox") as client:
        took = timed(lambda: client.get("/api/agent-block-list", headers=HEADERS, params=PARAMS))
    assert 0.3 <= took < 0.45


def test_the_work_is_counted_in_the_latency_in_process_async() -> None:
    import asyncio

    emulator = slow_phonely(latency=0.3, work=0.2)

    async def get() -> float:
        transport = EmulatorTransport(emulator)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            started = time.monotonic()
            reply = await client.get("/api/agent-block-list", headers=HEADERS, params=PARAMS)
            assert reply.status_code == 200
            return time.monotonic() - started

    took = asyncio.run(get())
    assert 0.3 <= took < 0.45
