"""The LOX24 adapter against its emulator over real loopback HTTP, in every dialect."""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reconciler.connections import Connections, provider_client
from reconciler.domain import Batch, LiveEntry, Op, Target
from reconciler.errors import AuthError, CredentialError, ProviderError, RetryableError
from reconciler.models import ProvidersFile
from reconciler.operations.common import refresh_targets
from reconciler.providers import adapter_class
from reconciler.providers.lox24 import LOCKED_OUT, NO_ID_REASON, LockedOut, Lox24Adapter
from reconciler.retry import RetryPolicy
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.lox24 import TEXT_429, Lox24Emulator, Lox24Quirks, canonical_phone

# one TLS context for all clients: building one per client costs ~90 ms (loopback is http)
TLS = ssl.create_default_context()
TOKEN = "1234567:sandbox-lox24-key"
BAD_TOKEN = "1234567:not-the-key-0123456789"
SECRETS = ("1234567", "sandbox-lox24-key", "not-the-key-0123456789")
GROUP = Target(name="lox24/7116", provider="lox24", type="lox24", scope=(("group_id", "7116"),))
EMPTY = Target(name="lox24/7200", provider="lox24", type="lox24", scope=(("group_id", "7200"),))
BIG = Target(name="lox24/8000", provider="lox24", type="lox24", scope=(("group_id", "8000"),))
DIALECTS = list(Lox24Emulator.dialects)
LIST = "GET /groups/{id}/phones"
BATCH = "POST /groups/{id}/phones/batch"
DELETE = "DELETE /phones/{id}"
#: re-sends reads at once: a test sees whether a reply is retried, without waiting
FAST = RetryPolicy(attempts=5, initial=0.001, max_wait=0.002, max_retry_after=0.002)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Sandbox:
    emulator: Lox24Emulator
    url: str
    clock: Clock

    def run(self, make, token: str = TOKEN, options: dict | None = None, policy=None, sent=None):
        """Run ``make(adapter)`` (a coroutine factory) with a fresh adapter and client;
        ``sent`` (a list) receives every request as the client sends it."""

        async def note(request: httpx.Request) -> None:
            if sent is not None:
                sent.append(request.url.path)

        async def main():
            async with provider_client(
                self.url, timeout=5, verify=TLS, event_hooks={"request": [note]}
            ) as client:
                adapter = Lox24Adapter("lox24", client, {"token": token}, options)
                adapter.read_policy = policy
                return await make(adapter)

        return asyncio.run(main())

    def faults(self, spec: str | None) -> None:
        """Inject faults from now on (state kept)."""
        self.emulator.faults = Faults(FaultSpec.parse(spec))

    @property
    def quirks(self) -> Lox24Quirks:
        return self.emulator.quirks

    @property
    def counters(self) -> dict:
        return self.emulator.counters.to_dict()

    def numbers(self, group: int) -> list[str]:
        """The group's phones in E.164, whatever form the dialect stores."""
        return [canonical_phone(p["phone"]) for p in self.emulator.phones_of(group)]

    def lock_out(self) -> None:
        """Four bad-auth requests within a minute: the IP is locked out for 10 minutes."""
        for _ in range(4):
            self.clock.now += 5
            with pytest.raises(AuthError):
                self.run(lambda a: a.refresh(GROUP), token=BAD_TOKEN)


@pytest.fixture
def make(loopback, tmp_path) -> Callable[..., Sandbox]:
    """A fresh emulator of a dialect, plugged into the module's one loopback server."""

    def build(dialect: str = "default") -> Sandbox:
        clock = Clock()
        emulator = Lox24Emulator(
            state_path=tmp_path / f"{dialect}.json", clock=clock, dialect=dialect
        )
        return Sandbox(emulator, loopback.plug(emulator), clock)

    return build


@pytest.fixture(params=DIALECTS)
def lox(make, request) -> Sandbox:
    """The sandbox in each dialect in turn."""
    return make(request.param)


def expected_reads(quirks: Lox24Quirks, n: int) -> int:
    """Requests a refresh of ``n`` phones needs: with hydra:totalItems, the pages; with
    partial pagination, the pages plus an empty one when the last is full; with bare
    arrays, the pages plus the empty one that ends them."""
    size = quirks.page_size
    if not quirks.hydra:
        return math.ceil(n / size) + 1 if n else 1
    if not quirks.total_items:
        return n // size + 1
    return max(1, math.ceil(n / size))


def adds(numbers) -> Batch:
    return Batch([Op("add", n) for n in numbers], phase=1)


def send(lox: Sandbox, batch: Batch, target: Target = EMPTY, token: str = TOKEN):
    return lox.run(lambda a: a.send(target, batch), token)


def refresh(lox: Sandbox, target: Target = GROUP, token: str = TOKEN, **kw) -> list[LiveEntry]:
    return lox.run(lambda a: a.refresh(target), token, **kw)


def patched(emulator: Lox24Emulator, change: Callable[[httpx.Request, httpx.Response], Any]):
    """Route through the emulator, then let ``change`` rewrite the reply's JSON body
    (``change`` returns the new body, or a Response)."""

    def route(request: httpx.Request) -> httpx.Response:
        resp = Lox24Emulator.route(emulator, request)
        new = change(request, resp)
        if isinstance(new, httpx.Response):
            return new
        return httpx.Response(resp.status_code, json=new)

    emulator.route = route


# -- capabilities and scope -----------------------------------------------------------


def test_registered_with_the_agreed_capabilities():
    assert adapter_class("lox24") is Lox24Adapter
    caps = Lox24Adapter.capabilities
    assert (caps.can_list, caps.can_add, caps.can_remove) == (True, True, True)
    assert (caps.batch_limit, caps.concurrency_limit) == (100, 4)
    assert caps.native_expiry is False
    assert (caps.remove_by, caps.remove_one_per_call) == ("provider_id", True)
    assert caps.scope_fields == ("group_id",) and caps.attribute_fields == ()
    assert caps.credential_keys == ("token",)
    assert caps.default_base_url == "https://api.lox24.eu"
    assert caps.wire_format == "E.164 with +"
    assert Lox24Adapter.target_name("lox24", {"group_id": "7116"}) == "lox24/7116"


@pytest.mark.parametrize("value", [7116, "7116", 1])
def test_scope_accepts_positive_group_ids(value):
    assert Lox24Adapter.scope_problems("group_id", value) is None


@pytest.mark.parametrize("value", [0, -3, "0", "07116", "abc", "", True, 7.5, None, "7116 "])
def test_scope_rejects_other_group_ids(value):
    assert "positive integer" in Lox24Adapter.scope_problems("group_id", value)


# -- refresh ------------------------------------------------------------------------


def test_refresh_seeded_group_marks_the_users_own_opt_out(lox):
    entries = refresh(lox)
    assert [e.number for e in entries] == ["+4915112345601", "+4915112345602", "+919876543210"]
    assert [e.opt_out for e in entries] == [True, False, False]
    ids = [p["id"] for p in lox.emulator.phones_of(7116)]
    assert [e.provider_ids for e in entries] == [(i,) for i in ids]
    assert lox.counters["requests"] == {LIST: expected_reads(lox.quirks, 3)}


def test_refresh_empty_group(lox):
    assert refresh(lox, EMPTY) == []
    assert lox.counters["requests"] == {LIST: 1}


@pytest.mark.parametrize("count", [1, 50, 250])
def test_refresh_reads_every_page_within_the_limit(lox, count):
    """Never a partial list, whatever the page size, key, links or metadata."""
    numbers = [f"+4915{i:09d}" for i in range(count)]
    lox.emulator.add_phones(8000, numbers)
    entries = refresh(lox, BIG)
    assert [e.number for e in entries] == numbers
    assert len({e.provider_ids for e in entries}) == count
    c = lox.counters
    assert c["requests"] == {LIST: expected_reads(lox.quirks, count)}
    assert c["max_in_flight"] <= Lox24Adapter.capabilities.concurrency_limit


def test_refresh_of_a_long_list_pages_concurrently(make):
    lox = make()
    numbers = [f"+4915{i:09d}" for i in range(10_000)]
    lox.emulator.add_phones(8000, numbers)
    lox.faults("latency=2ms")  # keep requests overlapping
    assert [e.number for e in refresh(lox, BIG)] == numbers
    c = lox.counters
    assert c["requests"] == {LIST: math.ceil(10_000 / 30)}
    assert 2 <= c["max_in_flight"] <= Lox24Adapter.capabilities.concurrency_limit


def test_refresh_without_a_total_follows_hydra_next(make):
    lox = make()

    def without_total(request, resp):
        body = resp.json()
        body.pop("hydra:totalItems")
        return body

    patched(lox.emulator, without_total)
    numbers = [f"+4916{i:09d}" for i in range(61)]
    lox.emulator.add_phones(8000, numbers)
    assert [e.number for e in refresh(lox, BIG)] == numbers
    assert lox.counters["requests"] == {LIST: 3}
    assert lox.counters["max_in_flight"] == 1  # one page after the other


def test_a_collection_without_a_view_is_read_to_its_total(make):
    """No hydra:view at all: the end is hydra:totalItems, never the first short page."""
    lox = make()

    def without_view(request, resp):
        body = resp.json()
        body.pop("hydra:view")
        return body

    patched(lox.emulator, without_view)
    numbers = [f"+4916{i:09d}" for i in range(61)]
    lox.emulator.add_phones(8000, numbers)
    assert [e.number for e in refresh(lox, BIG)] == numbers
    assert lox.counters["requests"] == {LIST: 3}


def test_a_bare_array_that_ignores_the_page_is_read_once_more(make):
    lox = make("plain")
    numbers = [f"+4916{i:09d}" for i in range(40)]
    lox.emulator.add_phones(8000, numbers)
    patched(lox.emulator, lambda request, resp: [p for p in lox.emulator.phones_of(8000)])
    assert [e.number for e in refresh(lox, BIG)] == numbers
    assert lox.counters["requests"] == {LIST: 2}  # page 2 repeats page 1: it is all


def test_a_total_the_rows_do_not_reach_is_a_provider_error(make):
    """A page that lost a row while the total stayed put: not a partial list, an error."""
    lox = make()

    def drop_one(request, resp):
        body = resp.json()
        if request.url.params.get("page") == "2":
            body["hydra:member"] = body["hydra:member"][1:]
        return body

    patched(lox.emulator, drop_one)
    lox.emulator.add_phones(8000, [f"+4916{i:09d}" for i in range(61)])
    with pytest.raises(ProviderError) as err:
        refresh(lox, BIG)
    assert "read 60 phones but hydra:totalItems says 61" in str(err.value)


def test_changes_during_the_read_are_explained_by_the_totals(make):
    """Phones added while the pages are read: the totals seen differ, so rows between
    them are no sign of a missed page."""
    lox = make()

    def grow(request, resp):
        if request.url.params.get("page") == "3":
            lox.emulator.add_phones(8000, ["+4917000000001", "+4917000000002"])
            return Lox24Emulator.route(lox.emulator, request)
        return resp.json()

    patched(lox.emulator, grow)
    lox.emulator.add_phones(8000, [f"+4916{i:09d}" for i in range(61)])
    entries = refresh(lox, BIG)
    assert len(entries) == 63


def test_absolute_next_links_on_our_host_are_followed(make):
    """The modern dialect's links are absolute URLs on the base URL's host: the list grew
    while the pages were read, so the last page points on, and the link is followed."""
    lox = make("modern")

    def grow(request, resp):
        if request.url.params.get("page") == "2":
            lox.emulator.add_phones(8000, [f"+4917{i:09d}" for i in range(5)])
            resp = Lox24Emulator.route(lox.emulator, request)
        body = resp.json()
        assert body["hydra:view"]["hydra:first"].startswith("http://127.0.0.1:")
        return body

    patched(lox.emulator, grow)
    lox.emulator.add_phones(8000, [f"+4916{i:09d}" for i in range(100)])
    assert len(refresh(lox, BIG)) == 105
    assert lox.counters["requests"] == {LIST: 3}


@pytest.mark.parametrize(
    ("link", "what"),
    [
        ("https://evil.example/groups/8000/phones?page=2", "another host"),
        ("/groups/7116/phones?page=2", "leaves the group's phones"),
        ("/groups/8000/phones?page=two", "has no page"),
    ],
    ids=["other-host", "other-group", "no-page"],
)
def test_next_links_elsewhere_are_refused(make, link, what):
    lox = make()

    def elsewhere(request, resp):
        body = resp.json()
        body.pop("hydra:totalItems")  # the links are followed, not the page numbers
        if "hydra:next" in body["hydra:view"]:
            body["hydra:view"]["hydra:next"] = link
        return body

    patched(lox.emulator, elsewhere)
    lox.emulator.add_phones(8000, [f"+4916{i:09d}" for i in range(31)])
    with pytest.raises(ProviderError) as err:
        refresh(lox, BIG)
    assert what in str(err.value)
    assert lox.counters["requests"] == {LIST: 1}


def test_refresh_normalises_other_formats_to_e164(make):
    lox = make()
    raws = ("0049 151 12345603", "+49 (151) 1234-5604", "4915112345605", "+49-151-12345606")
    for raw in (*raws, "0151 12345607", "0044 7911 123456"):
        lox.emulator.add_phone(8000, raw)
    entries = refresh(lox, BIG)
    assert [e.number for e in entries] == [
        "+4915112345603",
        "+4915112345604",
        "+4915112345605",
        "+4915112345606",
        "+4915112345607",  # Doc: "national 01701234567 for German accounts"
        "+447911123456",
    ]
    assert entries[0].raw == "0049 151 12345603" and not any(e.unparsed for e in entries)


def test_the_instance_region_reads_national_numbers(make):
    lox = make()
    lox.emulator.add_phone(8000, "07911 123456")
    [entry] = refresh(lox, BIG, options={"default_region": "GB"})
    assert entry.number == "+447911123456"


def test_national_storage_is_read_back_as_the_number_added(make):
    """The lean dialect stores German phones national (0151…): the refresh after an add
    reads the same number, so the next plan adds nothing (and LOX24 keeps duplicates)."""
    lox = make("lean")
    numbers = ["+4915112345678", "+447911123456"]
    send(lox, adds(numbers))
    assert [p["phone"] for p in lox.emulator.phones_of(7200)] == ["015112345678", "+447911123456"]
    assert [e.number for e in refresh(lox, EMPTY)] == numbers


def test_duplicates_become_one_entry_and_are_removed_together(make):
    lox = make()
    first = lox.emulator.add_phone(8000, "+4915112345607")
    second = lox.emulator.add_phone(8000, "004915112345607")
    [entry] = refresh(lox, BIG)
    assert entry.provider_ids == (first, second)
    op = Op("remove", entry.number, provider_ids=entry.provider_ids)
    [outcome] = send(lox, Batch([op]), BIG).outcomes
    assert outcome.status == "done"
    assert lox.numbers(8000) == []
    assert lox.counters["requests"][DELETE] == 2
    [again] = send(lox, Batch([op]), BIG).outcomes
    assert again.status == "already"


def test_a_duplicate_opted_out_makes_its_number_an_opt_out(lox):
    """The first row's text (as the dialect stores it), every id in list order, opted
    out if any row is."""
    first = lox.emulator.add_phone(8000, "+4915112345607")
    second = lox.emulator.add_phone(
        8000, "004915112345607", unsubscribed_at="2026-01-02T03:04:05+00:00"
    )
    other = lox.emulator.add_phone(8000, "+4915112345608")
    entries = {e.number: e for e in refresh(lox, BIG)}
    assert set(entries) == {"+4915112345607", "+4915112345608"}
    twice = entries["+4915112345607"]
    assert (twice.raw, twice.provider_ids, twice.opt_out) == (
        lox.emulator.phones_of(8000)[0]["phone"],
        (first, second),
        True,
    )
    once = entries["+4915112345608"]
    assert (once.provider_ids, once.opt_out) == ((other,), False)


def test_refresh_of_a_missing_group_is_a_provider_error(lox):
    missing = Target("lox24/4242", "lox24", "lox24", (("group_id", "4242"),))
    with pytest.raises(ProviderError) as err:
        refresh(lox, missing)
    assert err.value.status == 404 and "Resource not found" in str(err.value)
    assert err.value.endpoint == LIST


# -- batches and adds --------------------------------------------------------------


def test_batches_exactly_at_the_limit_and_one_over():
    adapter = Lox24Adapter("lox24", httpx.AsyncClient(verify=TLS), {"token": TOKEN})
    ops = [Op("add", f"+4917{i:09d}") for i in range(101)]
    removes = [Op("remove", "+4915112345602", provider_ids=("1",)), Op("remove", "+49151", "2")]
    assert [len(b.ops) for b in adapter.batches(EMPTY, [], ops[:100], {})] == [100]
    out = adapter.batches(EMPTY, removes, ops, {})
    assert [(b.phase, len(b.ops)) for b in out] == [(0, 1), (0, 1), (1, 100), (1, 1)]


def test_add_a_full_batch_in_one_request(lox):
    numbers = [f"+4917{i:09d}" for i in range(100)]
    result = send(lox, adds(numbers))
    assert [o.status for o in result.outcomes] == ["done"] * 100
    stored = lox.emulator.phones_of(7200)
    assert lox.numbers(7200) == numbers
    assert [o.provider_ids for o in result.outcomes] == [(p["id"],) for p in stored]
    c = lox.counters
    assert c["requests"] == {BATCH: 1}
    assert c["max_numbers"] == {BATCH: 100}


def test_request_counts_of_an_apply_sized_set_are_the_minimum(lox):
    """Refresh 120 phones, remove 20, add 250: the pages, 20 DELETEs, 3 POSTs."""
    old = [f"+4915{i:09d}" for i in range(120)]
    lox.emulator.add_phones(8000, old)
    new = [f"+4917{i:09d}" for i in range(250)]

    async def apply(adapter: Lox24Adapter):
        live = await adapter.refresh(BIG)
        gone = [Op("remove", e.number, provider_ids=e.provider_ids) for e in live[:20]]
        batches = adapter.batches(BIG, gone, [Op("add", n) for n in new], {})
        return [await adapter.send(BIG, b) for b in batches]

    results = lox.run(apply)
    assert all(o.status == "done" for r in results for o in r.outcomes)
    assert lox.counters["requests"] == {
        LIST: expected_reads(lox.quirks, 120),
        DELETE: 20,
        BATCH: 3,
    }
    assert sorted(lox.numbers(8000)) == sorted(old[20:] + new)


def test_per_item_failures_are_recorded_per_number(lox):
    emulator = lox.emulator

    def problems(item):  # LOX24 rejects one item with a 422 violation
        if isinstance(item, dict) and item.get("phone") == "+4917000000003":
            return 422, [("phone", "This value is not valid.")]
        return Lox24Emulator.phone_problems(emulator, item)

    emulator.phone_problems = problems
    lox.faults("partial=0.25,seed=4")
    numbers = [f"+49170000000{i:02d}" for i in range(20)]
    outcomes = send(lox, adds(numbers)).outcomes
    by_number = {o.op.number: o for o in outcomes}
    assert by_number["+4917000000003"].status == "failed"
    assert by_number["+4917000000003"].reason == "phone: This value is not valid."
    retryable = [o.op.number for o in outcomes if o.status == "retryable"]
    done = [o.op.number for o in outcomes if o.status == "done"]
    assert retryable and done and len(retryable) + len(done) == 19  # 418, 423, 500, 503
    assert lox.numbers(7200) == done  # failed items are not stored
    # the executor re-sends the retryable ones: no duplicates, everything there
    lox.faults(None)
    again = send(lox, adds(retryable)).outcomes
    assert [o.status for o in again] == ["done"] * len(retryable)
    assert sorted(lox.numbers(7200)) == sorted(done + retryable)


def test_per_item_statuses_by_exclusion(make):
    """Only 400 and 422 are final; 409 means the phone is there; anything else (a status
    LOX24 does not document, a 2xx without an id) is re-sent after a look at the list."""
    lox = make()
    items = [
        {"status": 400, "body": {"hydra:description": "Invalid input"}},
        {"status": 422, "body": {"violations": [{"propertyPath": "phone", "message": "bad"}]}},
        {"status": 409, "body": {"@id": "/phones/9000777"}},
        {"status": 409, "body": {"hydra:description": "Conflict - Entity already exists"}},
        {"status": 418, "body": {"hydra:description": "I'm a teapot"}},
        {"status": 423, "body": {}},
        {"status": 201, "body": {"phone": "+4917000000007"}},
        {"status": 200, "body": {"id": 9000778, "phone": "+4917000000008"}},
    ]
    lox.emulator.route = lambda request: httpx.Response(201, json={"hydra:member": items})
    numbers = [f"+491700000000{i}" for i in range(8)]
    outcomes = send(lox, adds(numbers)).outcomes
    assert [(o.status, o.reason, o.provider_ids) for o in outcomes] == [
        ("failed", "Invalid input", ()),
        ("failed", "phone: bad", ()),
        ("already", None, ("9000777",)),
        ("already", None, ()),
        ("retryable", "I'm a teapot", ()),
        ("retryable", "HTTP 423", ()),
        ("retryable", "HTTP 201 without a phone id", ()),
        ("done", None, ("9000778",)),
    ]


def test_a_duplicate_answered_409_is_already_there(make):
    lox = make("modern")
    [first] = send(lox, adds(["+4917000000001"])).outcomes
    [second] = send(lox, adds(["+4917000000001"])).outcomes
    assert (first.status, second.status) == ("done", "already")
    assert lox.numbers(7200) == ["+4917000000001"]


def test_resend_after_commit_then_drop_is_idempotent(lox):
    numbers = [f"+4917100000{i:03d}" for i in range(5)]
    lox.faults("drop=1.0")
    with pytest.raises(RetryableError):
        send(lox, adds(numbers))
    assert lox.numbers(7200) == numbers  # committed, answer lost
    lox.faults(None)

    async def resend_then_add(adapter):
        # the same adapter instance as the executor's retry would use
        with pytest.raises(RetryableError):
            lox.faults("drop=1.0")
            await adapter.send(EMPTY, adds(numbers))
        lox.faults(None)
        first = await adapter.send(EMPTY, adds(numbers))
        second = await adapter.send(EMPTY, adds(["+4917100000999"]))
        return first, second

    lox.emulator.reset()
    first, second = lox.run(resend_then_add)
    assert [o.status for o in first.outcomes] == ["already"] * 5
    stored = lox.emulator.phones_of(7200)
    assert [o.provider_ids for o in first.outcomes] == [(p["id"],) for p in stored[:5]]
    assert lox.numbers(7200) == [*numbers, "+4917100000999"]  # no duplicates
    assert second.outcomes[0].status == "done"
    # the check costs one listing, only on the re-send of an uncertain batch
    assert lox.counters["requests"] == {BATCH: 2, LIST: expected_reads(lox.quirks, 5)}


def test_remove_resend_after_commit_then_drop(lox):
    [_, entry, _] = refresh(lox)
    op = Op("remove", entry.number, provider_ids=entry.provider_ids)
    lox.faults("drop=1.0")
    [lost] = send(lox, Batch([op]), GROUP).outcomes
    assert lost.status == "retryable"
    lox.faults(None)
    [outcome] = send(lox, Batch([op]), GROUP).outcomes
    assert outcome.status == "already"
    assert lox.numbers(7116) == ["+4915112345601", "+919876543210"]


def test_injected_delete_failures_are_retryable(lox):
    [_, entry, _] = refresh(lox)
    op = Op("remove", entry.number, provider_ids=entry.provider_ids)
    lox.faults("partial=1.0,reason=Phone is being processed")
    [first] = send(lox, Batch([op]), GROUP).outcomes
    lox.faults(None)
    [second] = send(lox, Batch([op]), GROUP).outcomes
    if lox.quirks.delete_failure_status is None:  # this dialect's deletes never fail
        assert (first.status, second.status) == ("done", "already")
    else:
        assert (first.status, first.reason) == ("retryable", "Phone is being processed")
        assert second.status == "done"
    assert lox.numbers(7116) == ["+4915112345601", "+919876543210"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, "failed"), (422, "failed"), (409, "retryable"), (418, "retryable"), (423, "retryable")],
)
def test_delete_statuses_by_exclusion(make, status, outcome):
    lox = make()
    lox.emulator.route = lambda request: httpx.Response(status, json={"detail": "no"})
    [result] = send(lox, Batch([Op("remove", "+49151", provider_ids=("9000002",))]), GROUP).outcomes
    assert (result.status, result.reason) == (outcome, "no")


def test_a_mixed_batch_keeps_the_order_of_its_ops(lox):
    [_, entry, _] = refresh(lox)
    ops = [
        Op("add", "+4917300000001"),
        Op("remove", entry.number, provider_ids=entry.provider_ids),
        Op("remove", "+4915100000000"),
        Op("add", "+4917300000002"),
    ]
    outcomes = send(lox, Batch(ops), GROUP).outcomes
    assert [o.op for o in outcomes] == ops
    assert [o.status for o in outcomes] == ["done", "done", "failed", "done"]


def test_remove_without_an_id_fails_without_a_request(lox):
    [outcome] = send(lox, Batch([Op("remove", "+4915112345602")]), GROUP).outcomes
    assert outcome.status == "failed" and outcome.reason == NO_ID_REASON
    assert lox.counters["total_requests"] == 0


def test_remove_of_an_unknown_id_is_already_done(lox):
    [outcome] = send(
        lox, Batch([Op("remove", "+4915112345602", provider_ids=("42",))]), GROUP
    ).outcomes
    assert outcome.status == "already"


# -- auth, lockout, throttling ---------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.refresh(GROUP),
        lambda a: a.send(EMPTY, adds(["+4917200000001"])),
        lambda a: a.send(GROUP, Batch([Op("remove", "+919876543210", provider_ids=("9000003",))])),
    ],
    ids=["refresh", "add", "remove"],
)
def test_bad_credentials_raise_auth_error_after_exactly_one_request(lox, call):
    with pytest.raises(AuthError) as err:
        lox.run(call, token=BAD_TOKEN, policy=FAST)
    c = lox.counters
    assert c["total_requests"] == 1 and c["auth_failures"] == 1
    assert err.value.status == lox.quirks.bad_token_status
    assert "isn’t active or invalid" in str(err.value) and "check the token" in str(err.value)
    assert not any(s in str(err.value) for s in SECRETS)
    assert lox.numbers(7116) == ["+4915112345601", "+4915112345602", "+919876543210"]


def test_inactive_account_is_an_auth_error_after_one_request(make):
    lox = make()
    lox.emulator.account_active = False
    with pytest.raises(AuthError) as err:
        send(lox, adds(["+4917200000001"]))
    assert err.value.status == 403 and "Account isn’t activated" in str(err.value)
    assert "account is not active" in str(err.value)
    assert lox.counters["total_requests"] == 1


def test_the_lockout_stops_the_instance_after_one_request(lox):
    """After four bad runs the IP is locked out: the next run with the right token gets
    the lockout once, is told so, and sends nothing more: not the page again (no read
    re-send), not a write."""
    lox.lock_out()
    before = lox.counters["total_requests"]

    async def plan_then_apply(adapter: Lox24Adapter):
        with pytest.raises(LockedOut) as first:
            await adapter.refresh(GROUP)
        with pytest.raises(LockedOut):
            await adapter.send(EMPTY, adds(["+4917200000001"]))
        with pytest.raises(LockedOut):
            await adapter.refresh(EMPTY)
        return first.value

    error = lox.run(plan_then_apply, policy=FAST)
    assert isinstance(error, AuthError) and error.status == 429
    assert str(error).endswith(LOCKED_OUT)
    assert lox.counters["total_requests"] == before + 1
    lox.clock.now += 600
    assert len(refresh(lox)) == 3  # lifted after ten minutes


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (429, {"hydra:description": TEXT_429}, "application/ld+json"),
        (429, {"detail": TEXT_429, "title": "Too Many Requests"}, "application/problem+json"),
        (429, {"message": TEXT_429.upper()}, "application/json"),
        (429, {"error": {"text": TEXT_429.replace(" ", "\n  ")}}, "application/json"),
        (429, TEXT_429.lower(), "text/plain"),
        (429, None, None),
        (403, {"hydra:description": TEXT_429}, "application/ld+json"),
    ],
    ids=["hydra", "detail", "message", "nested", "text", "no-body", "as-403"],
)
def test_the_lockout_is_recognised_in_any_shape(make, status, body, content_type):
    lox = make()

    def locked(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        if body is None:
            return httpx.Response(status, headers={"Retry-After": "600"})
        content = body.encode() if isinstance(body, str) else None
        if content is None:
            return httpx.Response(status, json=body, headers={**headers, "Retry-After": "600"})
        return httpx.Response(status, content=content, headers=headers)

    lox.emulator.route = locked
    with pytest.raises(LockedOut) as err:
        refresh(lox, policy=FAST)
    assert err.value.reason == LOCKED_OUT
    assert lox.counters["total_requests"] == 1


def test_a_throttle_is_retryable_with_retry_after(lox):
    lox.faults("429=1.0,retry_after=7")
    with pytest.raises(RetryableError) as err:
        send(lox, adds(["+4917200000002"]))
    assert err.value.status == 429 and err.value.retry_after == 7
    assert not isinstance(err.value, AuthError)
    assert lox.numbers(7200) == []


def test_a_lockout_met_by_one_page_stops_the_other_pages(make):
    lox = make()
    lox.emulator.add_phones(8000, [f"+4916{i:09d}" for i in range(300)])

    def locked_after_the_first(request, resp):
        if request.url.params.get("page") != "1":
            return httpx.Response(429, json={"hydra:description": TEXT_429})
        return resp.json()

    patched(lox.emulator, locked_after_the_first)

    sent: list[str] = []

    async def twice(adapter: Lox24Adapter):
        with pytest.raises(LockedOut):
            await adapter.refresh(BIG)
        first = len(sent)
        with pytest.raises(LockedOut):
            await adapter.refresh(BIG)
        return first

    first = lox.run(twice, policy=FAST, sent=sent)
    # page 1, then at most one page per concurrency slot before the lockout was seen
    # (counted as the client sends them: cancelled ones may reach the server later)
    assert 2 <= first <= 1 + Lox24Adapter.capabilities.concurrency_limit
    assert len(sent) == first  # the second read sent nothing


def connections_plan(lox: Sandbox, root, targets: list[Target], token: str) -> Exception:
    """`blocklist plan`'s reads: Connections (with the read re-send policy of real runs)
    and refresh_targets over the targets; returns the error the plan ends with."""
    config = ProvidersFile.model_validate(
        {
            "version": 1,
            "providers": {
                "lox24": {
                    "type": "lox24",
                    "base_url": lox.url,
                    "credentials": {"token": {"env": "LOX24_TOKEN"}},
                }
            },
        }
    )

    async def main():
        async with Connections(config, root, {"LOX24_TOKEN": token}) as connections:
            try:
                await refresh_targets(connections, targets)
            except ProviderError as exc:
                return exc
            raise AssertionError("the plan read every target")

    return asyncio.run(main())


FOUR = [
    Target(f"lox24/{g}", "lox24", "lox24", (("group_id", str(g)),))
    for g in (7116, 7200, 8001, 8002)
]


def test_four_targets_with_a_wrong_token_send_one_request_per_plan(make, tmp_path):
    """Four targets with a wrong token send one request per plan; four such plans within
    a minute lock the IP out; the next plan with the right token meets the lockout once
    and sends nothing more (the read re-send policy of real runs does not retry it)."""
    lox = make()
    for run in range(4):
        lox.clock.now += 5
        before = lox.counters["total_requests"]
        error = connections_plan(lox, tmp_path, FOUR, BAD_TOKEN)
        assert isinstance(error, AuthError) and not isinstance(error, LockedOut)
        assert lox.counters["total_requests"] == before + 1, run
        assert not any(s in str(error) for s in SECRETS)
    assert lox.counters["limit_violations"]  # the fourth locked the IP out
    before = lox.counters["total_requests"]
    error = connections_plan(lox, tmp_path, FOUR, TOKEN)
    assert isinstance(error, LockedOut) and error.reason == LOCKED_OUT
    assert lox.counters["total_requests"] == before + 1


def test_a_plan_sends_one_refused_request_and_one_locked_out_request(lox, tmp_path):
    """In every dialect (401 or 403, the lockout in any shape): one request a plan."""
    error = connections_plan(lox, tmp_path, FOUR, BAD_TOKEN)
    assert isinstance(error, AuthError) and error.status == lox.quirks.bad_token_status
    assert lox.counters["total_requests"] == 1
    lox.lock_out()
    before = lox.counters["total_requests"]
    error = connections_plan(lox, tmp_path, FOUR, TOKEN)
    assert isinstance(error, LockedOut) and error.reason == LOCKED_OUT
    assert lox.counters["total_requests"] == before + 1


def test_server_error_is_retryable(lox):
    lox.faults("5xx=1.0")
    with pytest.raises(RetryableError) as err:
        refresh(lox)
    assert err.value.status == 500


def test_missing_token_is_a_credential_error(make):
    lox = make()
    with pytest.raises(CredentialError):
        refresh(lox, token="")
    assert lox.counters["total_requests"] == 0


def test_repr_hides_the_token():
    adapter = Lox24Adapter("lox24", httpx.AsyncClient(verify=TLS), {"token": TOKEN})
    assert TOKEN not in repr(adapter) and "sandbox-lox24-key" not in repr(adapter)


def test_words_echoing_the_token_are_redacted(make):
    """A reply that echoes the token (either half) never carries it into an error or a
    per-item reason."""
    lox = make()
    echo = f"token {TOKEN} refused for client 1234567 and key sandbox-lox24-key"
    lox.emulator.route = lambda request: httpx.Response(400, json={"hydra:description": echo})
    with pytest.raises(ProviderError) as err:
        send(lox, adds(["+4917200000003"]))
    assert not any(s in str(err.value) for s in SECRETS) and "[redacted]" in str(err.value)
    items = [{"status": 422, "body": {"detail": echo}}, {"status": 503, "body": {"detail": echo}}]
    lox.emulator.route = lambda request: httpx.Response(201, json={"member": items})
    outcomes = send(lox, adds(["+4917200000003", "+4917200000004"])).outcomes
    assert [o.status for o in outcomes] == ["failed", "retryable"]
    assert not any(s in o.reason for o in outcomes for s in SECRETS)
    lox.emulator.route = lambda request: httpx.Response(404, text=echo)
    with pytest.raises(ProviderError) as err:
        refresh(lox)
    assert not any(s in str(err.value) for s in SECRETS)


# -- malformed replies ------------------------------------------------------------------

HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def _reply(status: int, body=None, text: str | None = None):
    def route(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers={"Content-Type": "text/html"})
        return httpx.Response(status, json=body)

    return route


@pytest.mark.parametrize(
    ("route", "what"),
    [
        (_reply(200, text=HTML), "not JSON"),
        (_reply(200, {"hydra:totalItems": 3}), "hydra:member"),
        (_reply(200, ["+4915112345602"]), "bare array of non-objects"),
        (_reply(200, "a string"), "collection object"),
        (_reply(200, {"hydra:member": [{"id": "1"}], "hydra:totalItems": 1}), "'phone'"),
        (_reply(200, {"hydra:member": ["+49151"], "hydra:totalItems": 1}), "hydra:member"),
        (_reply(418, {"unexpected": True}), "unexpected HTTP status 418"),
    ],
    ids=["html", "no-members", "bare-strings", "string", "no-phone", "not-objects", "odd-status"],
)
def test_malformed_list_replies_are_provider_errors(make, route, what):
    lox = make()
    lox.emulator.route = route
    with pytest.raises(ProviderError) as err:
        refresh(lox)
    assert type(err.value) is ProviderError
    message = str(err.value)
    assert message.startswith("lox24: GET /groups/{id}/phones (HTTP ")
    assert what in message


@pytest.mark.parametrize(
    ("route", "what"),
    [
        (_reply(201, text=HTML), "not JSON"),
        (_reply(201, {"hydra:member": []}), "with 1 items"),
        (_reply(201, {"hydra:member": [{"body": {}}]}), "integer status"),
        (_reply(400, {"hydra:description": "Invalid input"}), "Invalid input"),
    ],
    ids=["html", "wrong-count", "no-status", "whole-400"],
)
def test_malformed_or_failed_batch_replies_are_provider_errors(make, route, what):
    lox = make()
    lox.emulator.route = route
    with pytest.raises(ProviderError) as err:
        send(lox, adds(["+4917200000003"]))
    assert type(err.value) is ProviderError
    assert str(err.value).startswith("lox24: POST /groups/{id}/phones/batch (HTTP ")
    assert what in str(err.value)


def test_html_gateway_error_is_retryable(make):
    lox = make()
    lox.emulator.route = _reply(502, text=HTML)
    with pytest.raises(RetryableError) as err:
        refresh(lox)
    assert err.value.status == 502
