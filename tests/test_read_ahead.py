"""``ReadAhead`` gives a reader walking the offsets exactly the pages a sequential read
gets, whatever the server's page sizes, and fetches at most ``width - 1`` pages more."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.providers.base import ReadAhead


class Server:
    """A list of ``total`` rows served by offset, each page ``sizes[i]`` rows at most
    (the last size repeats), answering after a random short delay; pages at
    ``failing`` offsets raise."""

    def __init__(self, total: int, sizes: list[int], seed: int, failing: set[int]) -> None:
        self.rows = list(range(total))
        self.sizes, self.failing = sizes, failing
        self.random = random.Random(seed)
        self.asked: list[int] = []
        self.in_flight = self.most_in_flight = self.cancelled = 0

    async def fetch(self, offset: int) -> list[int]:
        self.asked.append(offset)
        if offset in self.failing:
            raise RuntimeError(f"page {offset} failed")  # at once: the others still run
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.random.random() / 1000)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        size = self.sizes[min(len(self.asked) - 1, len(self.sizes) - 1)]
        return self.rows[offset : offset + size]


async def walk(read_ahead: ReadAhead) -> tuple[list[int], list[int]]:
    """(rows, offsets asked) of the sequential read: step by the rows, stop at empty."""
    rows, offsets, offset = [], [], 0
    async with read_ahead as pages:
        while True:
            offsets.append(offset)
            page = await pages.page(offset)
            if not page:
                return rows, offsets
            rows += page
            offset += len(page)


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 400),
    sizes=st.lists(st.integers(1, 100), min_size=1, max_size=5),
    width=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_the_read_is_the_sequential_one_and_wastes_at_most_width_minus_one(
    total: int, sizes: list[int], width: int, seed: int
) -> None:
    server = Server(total, sizes, seed, set())
    rows, offsets = asyncio.run(walk(ReadAhead(server.fetch, width)))
    assert rows == list(range(total))
    assert sorted(set(server.asked)) == sorted(server.asked)  # each page fetched once
    assert set(offsets) <= set(server.asked)
    assert len(server.asked) - len(offsets) <= width - 1
    assert server.most_in_flight <= width
    if total <= sizes[0]:
        assert server.asked == offsets  # a list of one page: nothing fetched ahead


def test_an_unasked_page_that_fails_is_dropped_and_an_asked_one_raises() -> None:
    server = Server(250, [100], 1, failing={300})  # past the end: fetched ahead only
    rows, _ = asyncio.run(walk(ReadAhead(server.fetch, 4)))
    assert rows == list(range(250)) and 300 in server.asked
    server = Server(2000, [100], 1, failing={200})

    async def failing_read() -> int:
        with pytest.raises(RuntimeError, match="page 200 failed"):
            await walk(ReadAhead(server.fetch, 4))
        return server.in_flight

    assert asyncio.run(failing_read()) == 0  # nothing left running after the read
    assert 300 in server.asked and server.cancelled >= 1  # cancelled, not awaited


def test_a_long_read_has_pages_in_flight_together() -> None:
    server = Server(2000, [100], 7, set())
    asyncio.run(walk(ReadAhead(server.fetch, 4)))
    assert server.most_in_flight == 4
