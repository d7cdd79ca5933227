"""WooxyAdapter against the Wooxy emulator over real loopback HTTP, in every dialect."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.connections import provider_client
from reconciler.domain import Batch, LiveEntry, Op, Target
from reconciler.errors import AuthError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.wooxy import WooxyAdapter
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.wooxy import WooxyEmulator, WooxyQuirks

T = TypeVar("T")
TOKEN = "sandbox-wooxy-token"
NOW = 1_795_000_000.0
CREATED = "2026-11-18 11:06:40"
TARGET = Target(name="wooxy/account", provider="wooxy", type="wooxy")
FIND = "POST /v3/phone-blacklist/find"
ADD = "POST /v3/phone-blacklist/add"
REMOVE = "POST /v3/phone-blacklist/remove"
DE = {"default_region": "DE"}


class ScriptedEmulator(WooxyEmulator):
    """The real emulator, plus test hooks: canned replies for the next API requests, a
    callback run after each find (to change the list while it is being read), the page
    sizes a server returns (one per find, in turn) and a rewrite of find replies."""

    replies: list[httpx.Response] = []
    after_find: Callable[[dict[str, Any]], None] | None = None
    page_sizes: list[int] = []
    edit_find: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    finds = 0
    base_quirks: WooxyQuirks

    def route(self, request: httpx.Request) -> httpx.Response:
        if self.replies:
            return self.replies.pop(0)
        is_find = request.url.path.endswith("/find")
        if is_find and self.page_sizes:
            size = self.page_sizes[self.finds % len(self.page_sizes)]
            self.quirks = replace(self.base_quirks, page_cap=size)
        self.finds += is_find
        response = super().route(request)
        if is_find and self.edit_find and response.json().get("result") is True:
            body = json.loads(request.content or b"{}")
            response = httpx.Response(200, json=self.edit_find(body, response.json()))
        if self.after_find and is_find:
            self.after_find(self.state["entries"])
        return response


class Served:
    """One emulator (of one dialect) on loopback shared by this module's tests, reset
    for each test."""

    def __init__(self, emulator: ScriptedEmulator, loopback: Any) -> None:
        self.emulator = emulator
        self.loopback = loopback
        self.url = ""

    def prepare(self, seed: bool = False, faults: str | None = None) -> Served:
        emu = self.emulator
        emu.clock = lambda: NOW
        emu.faults = Faults(FaultSpec.parse(faults))
        emu.quirks = emu.base_quirks
        emu.replies, emu.after_find, emu.page_sizes, emu.edit_find = [], None, [], None
        emu.finds = 0
        emu.reset(seed)
        self.url = self.loopback.plug(emu)
        return self

    @property
    def quirks(self) -> WooxyQuirks:
        return self.emulator.base_quirks

    @property
    def dialect(self) -> str:
        return self.emulator.dialect

    def pages(self, n: int) -> int:
        """Find requests a refresh of ``n`` entries takes at the least in this dialect:
        one per page of what the server returns, plus one refused probe where the server
        does not take the SDK's ``phoneNumber: null``."""
        size = min(100, self.quirks.page_cap or 100)
        return max(1, math.ceil(n / size)) + self.probe

    @property
    def probe(self) -> int:
        return 0 if "null" in self.quirks.find_unfiltered else 1

    def status(self, documented: int) -> int:
        return self.quirks.error_status or documented

    def fill(self, numbers: list[str], reject_type: str = "import") -> None:
        entries = self.emulator.state["entries"]
        for n in numbers:
            entries[n] = {"rejectType": reject_type, "createdAt": CREATED}

    def numbers(self) -> dict[str, str]:
        return {n: r["rejectType"] for n, r in self.emulator.state["entries"].items()}

    @property
    def counters(self) -> dict[str, Any]:
        return self.emulator.counters.to_dict()

    def run(
        self,
        use: Callable[[WooxyAdapter], Awaitable[T]],
        token: str = TOKEN,
        options: dict[str, Any] | None = None,
    ) -> T:
        async def main() -> T:
            # plain-HTTP loopback: verify=False skips building a TLS context (50 ms each)
            async with provider_client(self.url) as client:
                adapter = WooxyAdapter("wooxy-main", client, {"access_token": token}, options)
                return await use(adapter)

        return asyncio.run(main())


@pytest.fixture(scope="module", params=list(WooxyEmulator.dialects))
def server(loopback, request) -> Served:
    emulator = ScriptedEmulator(seed=False, clock=lambda: NOW, dialect=request.param)
    emulator.base_quirks = emulator.quirks
    return Served(emulator, loopback)


@pytest.fixture
def wooxy(server: Served) -> Served:
    return server.prepare()


@pytest.fixture(scope="module")
def plain_server(loopback) -> Served:
    emulator = ScriptedEmulator(seed=False, clock=lambda: NOW)
    emulator.base_quirks = emulator.quirks
    return Served(emulator, loopback)


@pytest.fixture
def plain(plain_server: Served) -> Served:
    """The default dialect only, for tests whose replies are canned (the dialect plays
    no part in them)."""
    return plain_server.prepare()


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+9198{i:08d}" for i in range(start, start + n)]


def adds(items: list[str], reject_type: str | None = None) -> list[Op]:
    attrs = (("reject_type", reject_type),) if reject_type else ()
    return [Op("add", n, attrs=attrs) for n in items]


def removes(items: list[str]) -> list[Op]:
    return [Op("remove", n) for n in items]


def refresh(adapter: WooxyAdapter) -> Awaitable[list[LiveEntry]]:
    return adapter.refresh(TARGET)


def refused(status: int, *errors: str) -> httpx.Response:
    return httpx.Response(status, json={"result": False, "errors": list(errors)})


# -- declaration -------------------------------------------------------------------------


def test_capabilities_and_registry() -> None:
    caps = WooxyAdapter.capabilities
    assert adapter_class("wooxy") is WooxyAdapter
    assert (caps.batch_limit, caps.concurrency_limit) == (100, 10)
    assert caps.can_list and caps.remove_one_per_call and not caps.native_expiry
    assert caps.remove_by == "number"
    assert caps.credential_keys == ("access_token",)
    assert caps.attribute_fields == ("reject_type",)
    assert caps.default_base_url == "https://api.wooxy.com"
    assert WooxyAdapter.target_name("wooxy", {}) == "wooxy/account"


def test_scope_problems_checks_reject_type() -> None:
    assert WooxyAdapter.scope_problems("reject_type", "invalid") is None
    problem = WooxyAdapter.scope_problems("reject_type", "spam")
    assert problem and "import, invalid, unsubscribe, undeliverable" in problem


# -- refresh -----------------------------------------------------------------------------


def test_refresh_empty_list_takes_one_request(wooxy: Served) -> None:
    assert wooxy.run(refresh) == []
    assert wooxy.counters["requests"] == {FIND: wooxy.pages(0)}


def test_refresh_one_entry(wooxy: Served) -> None:
    wooxy.fill(["+14155550123"], "undeliverable")
    assert wooxy.run(refresh) == [
        LiveEntry("+14155550123", "+14155550123", (("reject_type", "undeliverable"),))
    ]


def test_refresh_marks_seeded_opt_outs(server: Served) -> None:
    server.prepare(seed=True)
    live = {e.number: e for e in server.run(refresh)}
    assert {"+919812300001", "+14155550199", "+919876543210"} <= set(live)
    assert live["+919812300001"].opt_out  # rejectType unsubscribe: the user's own opt-out
    assert not live["+14155550199"].opt_out
    assert live["+919876543210"].attrs == (("reject_type", "invalid"),)


def test_refresh_reads_every_page_whatever_the_server_page_size(wooxy: Served) -> None:
    """Paging steps by the rows a page returned, not by the limit asked: a server that
    returns fewer rows a page (strict: 20, lean: 50) is read whole."""
    wooxy.fill(numbers(250))
    live = wooxy.run(refresh)
    assert [e.number for e in live] == numbers(250)
    assert wooxy.counters["requests"] == {FIND: wooxy.pages(250)}


def test_refresh_1500_entries_within_the_concurrency_limit(wooxy: Served) -> None:
    wooxy.fill(numbers(1500))
    live = wooxy.run(refresh)
    assert len({e.number for e in live}) == len(live) == 1500
    counters = wooxy.counters
    assert counters["requests"] == {FIND: wooxy.pages(1500)}
    assert counters["max_in_flight"] <= 10
    assert counters["limit_violations"] == {}


def test_refresh_normalises_numbers_stored_in_other_formats(wooxy: Served) -> None:
    wooxy.fill(["919812300002", "+1 (415) 555-0123", "0044 20 7946 0958", "+91-98765-43211"])
    live = wooxy.run(refresh)
    assert [e.number for e in live] == [
        "+919812300002",
        "+14155550123",
        "+442079460958",
        "+919876543211",
    ]
    assert live[1].raw == "+1 (415) 555-0123"


def test_refresh_deduplicates_when_entries_shift_between_pages(wooxy: Served) -> None:
    """Five numbers put at the head of the list after the first page shift every later
    page by five: the overlap is read twice but reported once."""
    wooxy.fill(numbers(250))
    done = []

    def prepend(entries: dict[str, Any]) -> None:
        if not done:
            done.append(True)
            head = {n: {"rejectType": "import", "createdAt": CREATED} for n in numbers(5, 900)}
            shifted = head | entries
            entries.clear()
            entries.update(shifted)

    wooxy.emulator.after_find = prepend
    live = wooxy.run(lambda a: a.refresh(TARGET))
    got = [e.number for e in live]
    assert len(got) == len(set(got))
    assert set(numbers(250)) <= set(got)


def test_refresh_reads_on_when_the_list_grows(wooxy: Served) -> None:
    wooxy.fill(numbers(250))
    grown = []

    def grow(entries: dict[str, Any]) -> None:
        if not grown:
            grown.append(True)
            for n in numbers(150, 1000):
                entries[n] = {"rejectType": "import", "createdAt": CREATED}

    wooxy.emulator.after_find = grow
    live = wooxy.run(refresh)
    assert [e.number for e in live] == numbers(250) + numbers(150, 1000)
    assert wooxy.counters["requests"] == {FIND: wooxy.pages(400)}


def test_refresh_fills_the_gap_a_short_page_leaves(wooxy: Served) -> None:
    """A server whose pages come back in uneven sizes (100, then 60, 100, ...): what a
    short page left out is read before the list is used."""
    wooxy.fill(numbers(450))
    wooxy.emulator.page_sizes = [100, 60, 100, 100, 100, 100, 100]
    live = wooxy.run(refresh)
    assert [e.number for e in live] == numbers(450)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(0, 110),
    sizes=st.lists(st.integers(5, 120), min_size=1, max_size=5),
)
def test_refresh_reads_each_record_once_whatever_the_page_sizes(
    server: Served, n: int, sizes: list[int]
) -> None:
    """Property: whatever rows each page returns (at least a few while more remain), a
    refresh reports every record of the list exactly once."""
    served = server.prepare()
    served.fill(numbers(n))
    served.emulator.page_sizes = sizes
    live = served.run(refresh)
    assert [e.number for e in live] == numbers(n)


def test_an_empty_page_short_of_total_count_is_an_error(wooxy: Served) -> None:
    """A page of no records at an offset below its own totalCount: never a partial list."""
    wooxy.fill(numbers(250))

    def empty_past_the_first(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        return reply | {"data": []} if body.get("offset") else reply

    wooxy.emulator.edit_find = empty_past_the_first
    with pytest.raises(ProviderError) as caught:
        wooxy.run(refresh)
    assert not isinstance(caught.value, RetryableError | AuthError)
    assert "no records at offset" in str(caught.value)


def test_records_that_do_not_add_up_to_total_count_are_an_error(wooxy: Served) -> None:
    """A server that ignores offset returns the first page again and again: the records
    read fall short of totalCount, which did not change: an error, not 100 entries."""
    wooxy.fill(numbers(250))

    def same_page(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        return reply | {"data": FIRST[: len(reply["data"])]} if FIRST else reply

    FIRST: list[dict[str, Any]] = []

    def remember(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        if not FIRST and reply["data"]:
            FIRST.extend(reply["data"])
        return same_page(body, reply)

    wooxy.emulator.edit_find = remember
    with pytest.raises(ProviderError, match="paging read .* records where totalCount said 250"):
        wooxy.run(refresh)


def test_refresh_lists_with_the_no_number_form_the_server_takes(wooxy: Served) -> None:
    """phoneNumber null (the SDK's call) first; a server that refuses null ("Argument
    phoneNumber must be a non-empty string") is asked with it omitted, once per adapter."""
    wooxy.fill(numbers(120))

    async def twice(adapter: WooxyAdapter) -> tuple[int, int]:
        first = await adapter.refresh(TARGET)
        second = await adapter.refresh(TARGET)
        return len(first), len(second)

    assert wooxy.run(twice) == (120, 120)
    assert wooxy.counters["requests"] == {FIND: 2 * wooxy.pages(120) - wooxy.probe}


def test_national_numbers_are_read_with_the_default_region_and_removed_as_stored(
    server: Served,
) -> None:
    """A number stored as "015112340004" (a DE account's UI import) is +4915112340004
    with default_region DE, so a declared +4915112340004 adds no copy; its remove sends
    "015112340004", the form the list holds, and a number held in both forms loses both."""
    served = server.prepare()
    served.fill(["015112340004", "+919812300001"])
    served.fill(["0151 1234 0005"], "unsubscribe")
    served.fill(["+4915112340004"])  # the E.164 copy an earlier apply added

    async def use(adapter: WooxyAdapter) -> tuple[list[LiveEntry], list[Any]]:
        live = await adapter.refresh(TARGET)
        result = await adapter.send(TARGET, Batch(removes(["+4915112340004"])))
        return live, [(o.status, o.reason) for o in result.outcomes]

    live, outcomes = served.run(use, options=DE)
    assert [(e.number, e.raw, e.opt_out) for e in live] == [
        ("+4915112340004", "015112340004", False),
        ("+919812300001", "+919812300001", False),
        ("+4915112340005", "0151 1234 0005", True),
    ]
    assert served.counters["requests"][REMOVE] == 2  # one per stored form
    if served.quirks.remove_as_stored:
        assert outcomes == [("done", None)]
        assert served.numbers() == {"+919812300001": "import", "0151 1234 0005": "unsubscribe"}
    else:  # a server that checks every remove as E.164 refuses the national form: said so
        assert outcomes == [("failed", "015112340004 is not a valid E.164 phone number")]
        assert "015112340004" in served.numbers()
        assert "+4915112340004" not in served.numbers()


def test_the_seeded_national_entries_of_a_de_account(server: Served) -> None:
    """The national dialect's seed: read with DE, the opt-out stays an opt-out; read
    without a region, they are unparsed (shown, never touched)."""
    served = server.prepare(seed=True)
    with_de = {e.number: e for e in served.run(refresh, options=DE)}
    without = {e.number: e for e in served.run(refresh)}
    if not served.quirks.imported:
        assert set(with_de) == set(without)
        return
    assert with_de["+4915112340004"].raw == "015112340004"
    assert with_de["+4915112340005"].opt_out
    assert without["?015112340004"].unparsed
    assert without["?0151 1234 0005"].unparsed


def test_unparseable_numbers_are_unparsed(wooxy: Served) -> None:
    wooxy.fill(["015112340004", "not a number"])
    live = wooxy.run(refresh)
    assert [(e.number, e.unparsed) for e in live] == [
        ("?015112340004", True),
        ("?not a number", True),
    ]


# -- batches and send ------------------------------------------------------------------


def test_batches_at_the_limit_and_one_over(plain: Served) -> None:
    adapter = WooxyAdapter("wooxy-main", httpx.AsyncClient(verify=False), {"access_token": TOKEN})
    at_limit = adapter.batches(TARGET, [], adds(numbers(100)), {})
    assert [len(b.ops) for b in at_limit] == [100]
    one_over = adapter.batches(TARGET, removes(numbers(3)), adds(numbers(101)), {})
    assert [(b.phase, len(b.ops)) for b in one_over] == [(0, 1), (0, 1), (0, 1), (1, 100), (1, 1)]


def test_add_100_in_one_request(wooxy: Served) -> None:
    batch = Batch(adds(numbers(100), "invalid"), phase=1)
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert [o.status for o in result.outcomes] == ["done"] * 100
    assert [o.op for o in result.outcomes] == batch.ops
    assert set(wooxy.numbers().values()) == {"invalid"}
    counters = wooxy.counters
    assert counters["requests"] == {ADD: 1}
    assert counters["max_numbers"][ADD] == 100
    assert counters["limit_violations"] == {}


def test_add_101_is_split_by_batches(wooxy: Served) -> None:
    async def apply(adapter: WooxyAdapter) -> list[str]:
        out = []
        for batch in adapter.batches(TARGET, [], adds(numbers(101)), {}):
            out += [o.status for o in (await adapter.send(TARGET, batch)).outcomes]
        return out

    assert wooxy.run(apply) == ["done"] * 101
    assert len(wooxy.numbers()) == 101
    assert wooxy.counters["requests"] == {ADD: 2}
    assert wooxy.counters["limit_violations"] == {}


def test_send_splits_an_oversized_batch_itself(wooxy: Served) -> None:
    batch = Batch(adds(numbers(150)), phase=1)
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert all(o.status == "done" for o in result.outcomes)
    assert wooxy.counters["requests"] == {ADD: 2}
    assert wooxy.counters["limit_violations"] == {}


def test_add_sends_the_reject_type_default_import(wooxy: Served) -> None:
    batch = Batch(adds(["+14155550123"]) + adds(["+14155550124"], "undeliverable"))
    wooxy.run(lambda a: a.send(TARGET, batch))
    assert wooxy.numbers() == {"+14155550123": "import", "+14155550124": "undeliverable"}


def test_add_of_a_listed_number_is_done_and_keeps_its_reject_type(server: Served) -> None:
    server.prepare(seed=True)
    result = server.run(lambda a: a.send(TARGET, Batch(adds(["+919812300001"], "import"), phase=1)))
    assert result.outcomes[0].ok
    assert server.numbers()["+919812300001"] == "unsubscribe"


def test_invalid_numbers_fail_and_the_rest_is_resent(wooxy: Served) -> None:
    ops = adds(["+14155550123", "+0123", "+14155550124", "12345"])
    result = wooxy.run(lambda a: a.send(TARGET, Batch(ops, phase=1)))
    assert [(o.op, o.status, o.reason) for o in result.outcomes] == [
        (ops[0], "done", None),
        (ops[1], "failed", "+0123 is not a valid E.164 phone number"),
        (ops[2], "done", None),
        (ops[3], "failed", "12345 is not a valid E.164 phone number"),
    ]
    assert wooxy.numbers() == {"+14155550123": "import", "+14155550124": "import"}
    assert wooxy.counters["requests"] == {ADD: 2}


def test_a_batch_of_only_invalid_numbers_takes_one_request(wooxy: Served) -> None:
    result = wooxy.run(lambda a: a.send(TARGET, Batch(adds(["+0123"]), phase=1)))
    assert result.outcomes[0].status == "failed"
    assert wooxy.counters["requests"] == {ADD: 1}


def test_numbers_refused_on_the_resend_too(plain: Served) -> None:
    """A server that names one invalid number per reply: the first named fails, the
    rest is re-sent once; what that names fails too, and the others stay retryable."""
    ops = adds(["+14155550123", "+0123", "+0456"])
    plain.emulator.replies = [
        refused(400, f"{n} is not a valid E.164 phone number") for n in ("+0123", "+0456")
    ]
    result = plain.run(lambda a: a.send(TARGET, Batch(ops, phase=1)))
    assert [o.status for o in result.outcomes] == ["retryable", "failed", "failed"]
    assert "+0456 is not a valid E.164 phone number" in (result.outcomes[0].reason or "")
    assert plain.counters["requests"] == {ADD: 2}
    assert plain.numbers() == {}


def test_whole_request_refusal_is_a_provider_error(wooxy: Served) -> None:
    batch = Batch(adds(["+14155550123"], "spam"), phase=1)
    with pytest.raises(ProviderError) as caught:
        wooxy.run(lambda a: a.send(TARGET, batch))
    assert not isinstance(caught.value, RetryableError | AuthError)
    assert caught.value.status == wooxy.status(400)
    assert caught.value.endpoint == ADD
    assert "Allowed reject types are" in str(caught.value)
    assert wooxy.counters["requests"] == {ADD: 1}


@pytest.mark.parametrize(
    "error",
    [
        "Allowed reject types are import, invalid, unsubscribe, undeliverable, but x given",
        "Maximum count of records per transaction is 100, current 101",
        "Argument records required",
        "Bad Request",
    ],
)
@pytest.mark.parametrize("status", [200, 400, 500])
def test_documented_refusals_are_permanent_whatever_the_status(
    plain: Served, error: str, status: int
) -> None:
    plain.emulator.replies = [refused(status, error)]
    with pytest.raises(ProviderError) as caught:
        plain.run(lambda a: a.send(TARGET, Batch(adds(numbers(2)), phase=1)))
    assert not isinstance(caught.value, RetryableError | AuthError)


@pytest.mark.parametrize("error", ["Service busy", "Internal server error", "Quota exceeded"])
@pytest.mark.parametrize("status", [200, 400, 503])
def test_other_words_are_retryable_whatever_the_status(
    plain: Served, error: str, status: int
) -> None:
    """Errors recognised by exclusion: words that are not a documented refusal (nor
    auth) are transient, under any status: an add raises RetryableError, a remove of a
    number still listed is retryable."""
    plain.emulator.replies = [refused(status, error)]
    with pytest.raises(RetryableError) as caught:
        plain.run(lambda a: a.send(TARGET, Batch(adds(numbers(2)), phase=1)))
    assert caught.value.status == status
    assert error in str(caught.value)

    plain.prepare()
    plain.fill(numbers(2))
    plain.emulator.replies = [refused(status, error)]
    result = plain.run(lambda a: a.send(TARGET, Batch(removes(numbers(2)))))
    by_number = {o.op.number: o for o in result.outcomes}
    failed = [o for o in result.outcomes if not o.ok]
    assert [(o.status, o.reason) for o in failed] == [("retryable", error)]
    assert set(plain.numbers()) == {failed[0].op.number}
    assert by_number[numbers(2)[0]].status in ("done", "retryable")


def test_remove_of_an_unlisted_number_is_ok_in_every_dialect(server: Served) -> None:
    """Removing a number that is no longer listed (e.g. re-sent after a lost answer)
    answers result true, or an error such as "Phone not found": a find of the number
    shows it is gone, so it is "already" removed, not a failure."""
    server.prepare(seed=True)
    result = server.run(lambda a: a.send(TARGET, Batch(removes(["+14155550000"]))))
    assert [o.ok for o in result.outcomes] == [True]
    assert len(server.numbers()) == 3 + len(server.quirks.imported)
    assert server.counters["requests"][REMOVE] == 1


def test_remove_one_per_request(server: Served) -> None:
    server.prepare(seed=True)
    batch = Batch(removes(["+14155550199", "+919876543210", "+14155550000"]))
    result = server.run(lambda a: a.send(TARGET, batch))
    assert [o.ok for o in result.outcomes] == [True, True, True]
    assert [o.status for o in result.outcomes][:2] == ["done", "done"]
    assert {n for n, t in server.numbers().items() if n.startswith("+")} == {"+919812300001"}
    assert server.counters["requests"][REMOVE] == 3
    assert server.counters["max_numbers"][REMOVE] == 1


def test_remove_failures_are_per_number(wooxy: Served) -> None:
    wooxy.fill(["+14155550123"])
    batch = Batch(removes(["+14155550123", "14155550124"]))
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert [(o.status, o.reason) for o in result.outcomes] == [
        ("done", None),
        ("failed", "14155550124 is not a valid E.164 phone number"),
    ]


def test_update_is_remove_then_add(server: Served) -> None:
    """Add never updates an existing entry, so a changed reject type is a remove (phase 0)
    then an add (phase 1)."""
    server.prepare(seed=True)

    async def apply(adapter: WooxyAdapter) -> None:
        ops = adds(["+14155550199"], "undeliverable")
        for batch in adapter.batches(TARGET, removes(["+14155550199"]), ops, {}):
            await adapter.send(TARGET, batch)

    server.run(apply)
    assert server.numbers()["+14155550199"] == "undeliverable"


def test_resend_after_commit_then_drop_is_idempotent(wooxy: Served) -> None:
    batch = Batch(adds(numbers(3)), phase=1)
    wooxy.emulator.faults = Faults(FaultSpec.parse("drop=1.0"))
    with pytest.raises(RetryableError):
        wooxy.run(lambda a: a.send(TARGET, batch))
    assert list(wooxy.numbers()) == numbers(3)  # committed, answer lost
    wooxy.emulator.faults = Faults(FaultSpec())
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert all(o.ok for o in result.outcomes)
    assert list(wooxy.numbers()) == numbers(3)  # no duplicates
    assert [e.number for e in wooxy.run(refresh)] == numbers(3)

    remove = Batch(removes(numbers(1)))
    wooxy.emulator.faults = Faults(FaultSpec.parse("drop=1.0"))
    with pytest.raises(RetryableError):
        wooxy.run(lambda a: a.send(TARGET, remove))
    wooxy.emulator.faults = Faults(FaultSpec())
    assert wooxy.run(lambda a: a.send(TARGET, remove)).outcomes[0].ok
    assert list(wooxy.numbers()) == numbers(2, 1)


def test_apply_sized_request_counts(wooxy: Served) -> None:
    """The representative apply: 250 listed, 30 of them removed and 250 added, then read
    again. Writes are the documented minimum in every dialect (one remove per number, 100
    records per add); reads are one per page the server returns."""
    wooxy.fill(numbers(250))

    async def apply(adapter: WooxyAdapter) -> tuple[int, int]:
        before = await adapter.refresh(TARGET)
        for batch in adapter.batches(TARGET, removes(numbers(30)), adds(numbers(250, 500)), {}):
            result = await adapter.send(TARGET, batch)
            assert all(o.status == "done" for o in result.outcomes)
        return len(before), len(await adapter.refresh(TARGET))

    assert wooxy.run(apply) == (250, 470)
    size = min(100, wooxy.quirks.page_cap or 100)
    reads = math.ceil(250 / size) + math.ceil(470 / size) + wooxy.probe
    assert wooxy.counters["requests"] == {FIND: reads, REMOVE: 30, ADD: 3}
    assert wooxy.counters["limit_violations"] == {}


# -- errors ------------------------------------------------------------------------------


def test_bad_token_is_an_auth_error_after_one_request(wooxy: Served) -> None:
    with pytest.raises(AuthError) as caught:
        wooxy.run(refresh, token="not-the-token")
    assert "Invalid authorization token!" in str(caught.value)
    assert caught.value.status == wooxy.status(401)
    assert wooxy.counters["total_requests"] == 1

    wooxy.prepare()
    with pytest.raises(AuthError):
        wooxy.run(lambda a: a.send(TARGET, Batch(adds(numbers(50)))), token="not-the-token")
    assert wooxy.counters["total_requests"] == 1


def test_in_body_auth_error_under_200_never_shows_the_token(plain: Served) -> None:
    error = f"no matches found for access token {TOKEN}"
    plain.emulator.replies = [refused(200, error)]
    with pytest.raises(AuthError) as caught:
        plain.run(refresh)
    assert TOKEN not in str(caught.value)
    assert "no matches found for access token [redacted]" in str(caught.value)
    assert TOKEN not in repr(
        WooxyAdapter("w", httpx.AsyncClient(verify=False), {"access_token": TOKEN})
    )


def test_provider_words_that_echo_the_token_are_masked(plain: Served) -> None:
    """Every error quoting Wooxy's words masks the credential, refusals and transient
    errors alike (raised, or recorded as an outcome's reason)."""
    plain.emulator.replies = [refused(400, "Bad Request"), refused(503, f"busy: {TOKEN}")]
    with pytest.raises(ProviderError) as first:
        plain.run(lambda a: a.send(TARGET, Batch(adds(numbers(1)))))
    with pytest.raises(RetryableError) as second:
        plain.run(lambda a: a.send(TARGET, Batch(adds(numbers(1)))))
    assert TOKEN not in str(first.value) + str(second.value)
    assert "busy: [redacted]" in second.value.reason

    plain.fill(numbers(2))
    plain.emulator.replies = [refused(503, f"busy: {TOKEN}")]
    result = plain.run(lambda a: a.send(TARGET, Batch(removes(numbers(2)))))
    assert all(TOKEN not in (o.reason or "") for o in result.outcomes)
    assert "busy: [redacted]" in {o.reason for o in result.outcomes}


@pytest.mark.parametrize(
    "message", ["user 42 not enabled", "no data found for key 42", "access token check failed"]
)
def test_other_documented_auth_errors(plain: Served, message: str) -> None:
    plain.emulator.replies = [refused(400, message)]
    with pytest.raises(AuthError):
        plain.run(lambda a: a.send(TARGET, Batch(removes(["+14155550123"]))))


def test_rate_limit_is_retryable_in_the_dialects_words(wooxy: Served) -> None:
    """An injected rate limit, answered as the dialect does (429 "Too many concurrent
    requests" with Retry-After, or 200 "Service busy, try again later"): retryable."""
    wooxy.emulator.faults = Faults(FaultSpec.parse("429=1.0,retry_after=3"))
    status, _, with_header = wooxy.quirks.throttle
    with pytest.raises(RetryableError) as caught:
        wooxy.run(lambda a: a.send(TARGET, Batch(adds(numbers(2)), phase=1)))
    assert caught.value.status == status
    assert caught.value.retry_after == (3.0 if with_header else None)

    wooxy.fill(numbers(1))
    result = wooxy.run(lambda a: a.send(TARGET, Batch(removes(numbers(1)) * 2)))
    assert [o.status for o in result.outcomes] == ["retryable"] * 2
    if with_header or status == 429:  # plainly throttled: no find to settle the removes
        assert FIND not in wooxy.counters["requests"]


def test_in_body_throttling_under_200_is_retryable(plain: Served) -> None:
    plain.emulator.replies = [refused(200, "Too many concurrent requests")]
    with pytest.raises(RetryableError):
        plain.run(refresh)


def test_server_error_is_retryable(wooxy: Served) -> None:
    wooxy.emulator.faults = Faults(FaultSpec.parse("5xx=1.0"))
    with pytest.raises(RetryableError) as caught:
        wooxy.run(refresh)
    assert caught.value.status == wooxy.status(500)
    assert "Internal server error" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (httpx.Response(200, html="<html><body>Gateway</body></html>"), "not JSON"),
        (httpx.Response(200, json={"ok": True}), "no boolean 'result'"),
        (httpx.Response(200, json={"result": True, "data": []}), "totalCount"),
        (httpx.Response(200, json={"result": True, "data": "x", "totalCount": 1}), "data"),
        (
            httpx.Response(200, json={"result": True, "data": [{"phone": 1}], "totalCount": 1}),
            "phoneNumber",
        ),
        (httpx.Response(200, json={"result": False}), "without errors"),
        (httpx.Response(404, text="Not Found"), "not JSON"),
        (httpx.Response(302, json={"result": True}), "error status"),
    ],
)
def test_malformed_replies_name_instance_endpoint_and_status(
    plain: Served, reply: httpx.Response, expected: str
) -> None:
    plain.emulator.replies = [reply]
    with pytest.raises(ProviderError) as caught:
        plain.run(refresh)
    error = caught.value
    assert not isinstance(error, RetryableError | AuthError)
    assert (error.provider, error.endpoint, error.status) == ("wooxy-main", FIND, reply.status_code)
    assert expected in str(error)
    assert str(error).startswith(f"wooxy-main: {FIND} (HTTP {reply.status_code})")


def test_html_gateway_error_is_retryable(plain: Served) -> None:
    plain.emulator.replies = [httpx.Response(502, html="<html>Bad gateway</html>")]
    with pytest.raises(RetryableError) as caught:
        plain.run(lambda a: a.send(TARGET, Batch(adds(numbers(1)))))
    assert caught.value.status == 502


def test_missing_credential_sends_nothing(plain: Served) -> None:
    with pytest.raises(AuthError):
        plain.run(refresh, token="")
    assert plain.counters["total_requests"] == 0


# -- concurrency -------------------------------------------------------------------------


def test_forty_concurrent_removes_stay_within_ten_in_flight(wooxy: Served) -> None:
    wooxy.fill(numbers(40))
    wooxy.emulator.faults = Faults(FaultSpec.parse("latency=10ms"))

    async def use(adapter: WooxyAdapter) -> list[str]:
        sends = [adapter.send(TARGET, Batch([op])) for op in removes(numbers(40))]
        results = await asyncio.gather(*sends)
        return [r.outcomes[0].status for r in results]

    assert wooxy.run(use) == ["done"] * 40
    counters = wooxy.counters
    assert counters["requests"] == {REMOVE: 40}
    assert 1 < counters["max_in_flight"] <= 10
    assert counters["limit_violations"] == {}
    assert wooxy.numbers() == {}


def test_refresh_and_sends_share_the_limit(wooxy: Served) -> None:
    wooxy.fill(numbers(400))
    wooxy.emulator.faults = Faults(FaultSpec.parse("latency=10ms"))

    async def use(adapter: WooxyAdapter) -> int:
        sends = [adapter.send(TARGET, Batch(adds([n]), phase=1)) for n in numbers(20, 5000)]
        live, *_ = await asyncio.gather(adapter.refresh(TARGET), *sends)
        return len(live)

    assert wooxy.run(use) >= 400
    assert wooxy.counters["max_in_flight"] <= 10
    assert wooxy.counters["limit_violations"] == {}


def test_configured_concurrency_lowers_the_limit(wooxy: Served) -> None:
    wooxy.fill(numbers(300))
    wooxy.emulator.faults = Faults(FaultSpec.parse("latency=10ms"))
    wooxy.run(refresh, options={"concurrency": 3})
    assert wooxy.counters["max_in_flight"] <= 3
