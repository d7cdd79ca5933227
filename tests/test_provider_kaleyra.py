"""KaleyraAdapter against the Kaleyra emulator over real loopback HTTP, in every dialect."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.connections import provider_client
from reconciler.domain import Batch, Op, Target
from reconciler.errors import AuthError, CredentialError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.kaleyra import KaleyraAdapter, mobile_query
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.kaleyra import KaleyraEmulator, KaleyraQuirks

CREDS = dict(KaleyraEmulator.credentials)
SID = CREDS["sid"]
GET = "GET /v1/{sid}/contacts/blocklisted"
POST = "POST /v1/{sid}/contacts/blocklisted"
SMS = Target("kaleyra/sms", "kaleyra", "kaleyra", (("channel", "sms"),))
VOICE = Target("kaleyra/voice", "kaleyra", "kaleyra", (("channel", "voice"),))


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+9190000{i:05d}" for i in range(start, start + n)]


def adds(nums: list[str]) -> list[Op]:
    return [Op("add", n) for n in nums]


def removes(nums: list[str]) -> list[Op]:
    return [Op("remove", n) for n in nums]


def populate(em: KaleyraEmulator, channel: str, nums: list[str], shown=lambda n: n) -> None:
    """Store numbers as a CSV import would, under the key the dialect matches them by."""
    entries = em.state["channels"][channel]
    for n in nums:
        record = {"mobile": shown(n), "added_at": "2026-01-01T00:00:00Z", "origin": "api"}
        entries[em._key(shown(n))] = record


def gets(em: KaleyraEmulator, *lists: int) -> int:
    """GET requests to read lists of these sizes: a page per ``page_cap`` rows, and
    the empty page that ends each read."""
    return sum(math.ceil(n / em.quirks.page_cap) + 1 for n in lists)


def on(channel: str, em: KaleyraEmulator) -> list[str]:
    return [r["mobile"] for r in em.state["channels"][channel].values()]


@pytest.fixture
def plug(loopback):
    """``with plug(emulator) as url:`` serves ``emulator`` on the module's loopback port."""
    return loopback.plugged


@pytest.fixture
def run(plug):
    """``run(em, work)``: serve ``em`` and run ``work(adapter)`` in a fresh event loop."""

    def run_(
        em: KaleyraEmulator,
        work: Callable[[KaleyraAdapter], Coroutine[Any, Any, Any]],
        creds: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        async def main(url: str) -> Any:
            # plain-HTTP loopback: verify=False skips building a TLS context (50 ms each)
            async with provider_client(url) as client:
                adapter = KaleyraAdapter("kaleyra", client, creds or CREDS, options)
                return await work(adapter)

        with plug(em) as url:
            return asyncio.run(main(url))

    return run_


@pytest.fixture(params=list(KaleyraEmulator.dialects))
def dialect(request) -> str:
    """Every test using an emulator runs against every dialect."""
    return request.param


@pytest.fixture
def em(tmp_path, dialect) -> KaleyraEmulator:
    return KaleyraEmulator(state_path=tmp_path / "kaleyra.json", dialect=dialect)


@pytest.fixture
def empty(dialect) -> KaleyraEmulator:
    return KaleyraEmulator(state_path=None, seed=False, persist=False, dialect=dialect)


def quirks(em: KaleyraEmulator) -> KaleyraQuirks:
    return em.quirks


# -- declaration ----------------------------------------------------------------------------


def test_registered_with_its_capabilities():
    caps = adapter_class("kaleyra").capabilities
    assert adapter_class("kaleyra") is KaleyraAdapter
    assert (caps.can_list, caps.batch_limit, caps.concurrency_limit) == (True, 100, 4)
    assert (caps.native_expiry, caps.remove_by, caps.remove_one_per_call) == (
        False,
        "number",
        False,
    )
    assert caps.scope_fields == ("channel",)
    assert caps.attribute_fields == ()
    assert caps.credential_keys == ("api_key", "sid")
    assert caps.default_base_url == "https://api.kaleyra.io"
    assert "%2B" in caps.wire_format


def test_scope_problems():
    assert KaleyraAdapter.scope_problems("channel", "sms") is None
    assert KaleyraAdapter.scope_problems("channel", "voice") is None
    assert "sms, whatsapp, voice" in KaleyraAdapter.scope_problems("channel", "email")
    assert KaleyraAdapter.scope_problems("channel", "") is not None
    assert KaleyraAdapter.target_name("kaleyra", {"channel": "sms"}) == "kaleyra/sms"


def test_repr_and_missing_credential_never_show_values(empty, run):
    async def work(adapter: KaleyraAdapter):
        assert CREDS["api_key"] not in repr(adapter)
        return await adapter.refresh(SMS)

    with pytest.raises(CredentialError) as err:
        run(empty, work, creds={"api_key": CREDS["api_key"]})
    assert "'sid'" in str(err.value)
    assert CREDS["api_key"] not in str(err.value)
    assert empty.counters.to_dict()["total_requests"] == 0


# -- refresh --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 100, 250, 2000])
def test_refresh_pages_until_an_empty_page(empty, n, run):
    """limit=100 pages by offset, stepping by the rows received, until an empty page (no
    total count): a server that caps pages lower (strict: 50, lean: 20) is read whole.
    Pages fetched ahead cost at most concurrency - 1 requests more than reading one
    page after another, and none for a list of one page."""
    populate(empty, "sms", numbers(n))
    populate(empty, "voice", numbers(7, start=90_000))  # other channels are not read
    live = run(empty, lambda a: a.refresh(SMS))
    assert [e.number for e in live] == numbers(n)
    assert all(e.raw == e.number and not e.opt_out and e.attrs == () for e in live)
    counters = empty.counters.to_dict()
    sequential = gets(empty, n)
    assert sequential <= counters["requests"][GET] <= sequential + 3
    if n <= empty.quirks.page_cap:
        assert counters["requests"] == {GET: sequential}
    assert counters["limit_violations"] == {}
    assert counters["max_in_flight"] <= 4


def test_a_long_list_is_read_with_pages_in_flight_together(tmp_path, run):
    """20 pages at 20 ms each: read ahead, several pages are in flight at once (never
    more than the concurrency), and the rows are those of reading them in order."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", seed=False, faults="latency=20ms")
    populate(em, "sms", numbers(2000))
    live = run(em, lambda a: a.refresh(SMS))
    assert [e.number for e in live] == numbers(2000)
    counters = em.counters.to_dict()
    assert 2 <= counters["max_in_flight"] <= 4
    assert 21 <= counters["requests"][GET] <= 24


def test_refresh_of_the_seed(em, run):
    """The seed's sms entries (alt: and a CSV import's 919812300005); whatsapp's is
    another target's."""
    live = run(em, lambda a: a.refresh(SMS))
    imported = [("+919812300005", "919812300005")] if quirks(em).imported else []
    assert [(e.number, e.raw) for e in live] == [
        ("+919812300002", "+919812300002"),
        ("+919812300003", "+919812300003"),
        ("+919876543210", "+919876543210"),
        *imported,
    ]


def test_refresh_normalises_other_formats_to_e164(empty, run):
    """A number the provider holds in another format is E.164 on refresh."""
    shown = {
        "+919812300009": "919812300009",
        "+919812300010": "0091 98123 00010",
        "+14155550123": "+1 (415) 555-0123",
    }
    populate(empty, "voice", list(shown), shown=shown.get)
    live = run(empty, lambda a: a.refresh(VOICE))
    assert [(e.number, e.raw) for e in live] == list(shown.items())


def test_refresh_sends_the_documented_query(dialect, run):
    """limit=100 always; the offset steps by the rows each page held."""
    seen: list[str] = []

    class Spy(KaleyraEmulator):
        def route(self, request):
            seen.append(request.url.query.decode())
            return super().route(request)

    spy = Spy(state_path=None, seed=False, persist=False, dialect=dialect)
    populate(spy, "whatsapp", numbers(100))
    run(spy, lambda a: a.refresh(Target("k/whatsapp", "k", "kaleyra", (("channel", "whatsapp"),))))
    step = spy.quirks.page_cap
    read = [f"channel=whatsapp&limit=100&offset={o}" for o in range(0, 100 + step, step)]
    assert len(seen) == len(set(seen)) and set(read) <= set(seen)  # each page once
    extra = [q for q in seen if q not in read]  # fetched ahead: past the end, at the stride
    assert len(extra) <= 3
    offsets = [q.removeprefix("channel=whatsapp&limit=100&offset=") for q in extra]
    assert all(o.isdigit() and int(o) > 100 and int(o) % step == 0 for o in offsets)


def test_national_and_unparseable_numbers(empty, run):
    """Live numbers are read as declared ones: national ones with the instance's
    default_region; without it (or unreadable) they are unparsed, never touched."""
    populate(empty, "voice", ["09812300006", "+919812300007"])
    populate(empty, "voice", ["garbage"])
    with_in = run(empty, lambda a: a.refresh(VOICE), options={"default_region": "IN"})
    without = run(empty, lambda a: a.refresh(VOICE))
    assert [(e.number, e.raw, e.unparsed) for e in with_in] == [
        ("+919812300006", "09812300006", False),
        ("+919812300007", "+919812300007", False),
        ("?garbage", "garbage", True),
    ]
    assert [(e.number, e.unparsed) for e in without] == [
        ("?09812300006", True),
        ("+919812300007", False),
        ("?garbage", True),
    ]


def test_a_number_stored_without_plus_is_removed_in_its_stored_form(empty, run):
    """A CSV import's "919812300005": read as +919812300005, and removed by sending the
    stored form (a server matching exactly keeps it otherwise, alt). A server that wants
    "+" refuses that form: the E.164 form is sent instead, once, in the same send."""
    populate(empty, "sms", ["919812300005", "+919812300008"])

    async def work(adapter: KaleyraAdapter):
        live = await adapter.refresh(SMS)
        ops = removes(["+919812300005"]) + adds(["+919812300009"])
        return live, await adapter.send(SMS, Batch(ops))

    live, result = run(empty, work)
    assert [(e.number, e.raw) for e in live] == [
        ("+919812300005", "919812300005"),
        ("+919812300008", "+919812300008"),
    ]
    assert [o.status for o in result.outcomes] == ["done", "done"]
    assert on("sms", empty) == ["+919812300008", "+919812300009"]
    posts = 1 if quirks(empty).plus_optional else 2
    assert empty.counters.to_dict()["requests"][POST] == posts


def test_a_number_stored_in_two_forms_loses_both(empty, run):
    """The same number held as "919812300005" and "+919812300005" (alt keeps both): one
    live entry, and its remove sends both forms."""
    populate(empty, "sms", ["919812300005", "+919812300005"])

    async def work(adapter: KaleyraAdapter):
        live = await adapter.refresh(SMS)
        return live, await adapter.send(SMS, Batch(removes(["+919812300005"])))

    live, result = run(empty, work)
    assert [e.number for e in live] == ["+919812300005"]
    assert result.outcomes[0].status == "done"
    assert on("sms", empty) == []


# -- the mobile filter and the + quirk --------------------------------------------------------


def test_mobile_query_encodes_plus_and_comma():
    assert mobile_query(["+919812300002", "+14155550123"]) == (
        "mobile=%2B919812300002%2C%2B14155550123"
    )


def test_blocklisted_via_mobile_filter_matches_encoded_and_raw_plus(em, run, plug):
    """The helper's %2B form finds the numbers in every dialect; the doc's raw + form
    too, except where the server needs %2B (strict: a raw + is a space)."""
    asked = ["+919812300002", "+919812300004", "+14155550123", *numbers(150)]
    populate(em, "sms", numbers(3, start=140))
    found = run(em, lambda a: a.blocklisted(SMS, asked))
    assert found == {"+919812300002", *numbers(3, start=140)}
    assert em.counters.to_dict()["requests"] == {GET: 2}  # 153 numbers, 100 per request
    assert em.counters.to_dict()["limit_violations"] == {}
    headers = {"api-key": CREDS["api_key"]}
    with plug(em) as url, httpx.Client(base_url=url, headers=headers, verify=False) as c:
        path = f"/v1/{SID}/contacts/blocklisted?channel=sms"
        encoded = c.get(f"{path}&{mobile_query(['+919812300002', '+919812300003'])}").json()
        raw = c.get(f"{path}&mobile=+919812300002%2C+919812300003")
    assert [r["mobile"] for r in encoded["data"]] == ["+919812300002", "+919812300003"]
    if quirks(em).mobile_plus == "encoded":
        assert raw.status_code == 400
    else:
        assert encoded == raw.json()


# -- batches --------------------------------------------------------------------------------


def test_batches_share_requests_at_phase_zero(empty):
    adapter = KaleyraAdapter("kaleyra", httpx.AsyncClient(verify=False), CREDS)
    exactly = adapter.batches(SMS, removes(numbers(40)), adds(numbers(60, 100)), {})
    assert [(len(b.ops), b.phase) for b in exactly] == [(100, 0)]
    over = adapter.batches(SMS, removes(numbers(40)), adds(numbers(61, 100)), {})
    assert [(len(b.ops), b.phase) for b in over] == [(100, 0), (1, 0)]
    many = adapter.batches(SMS, removes(numbers(250)), adds(numbers(251, 1000)), {})
    assert len(many) == 6  # ceil(501 / 100)
    assert adapter.batches(SMS, [], [], {}) == []


def test_batches_respect_batch_size_option():
    adapter = KaleyraAdapter("kaleyra", httpx.AsyncClient(verify=False), CREDS, {"batch_size": 500})
    assert [len(b.ops) for b in adapter.batches(SMS, [], adds(numbers(150)), {})] == [100, 50]
    adapter = KaleyraAdapter("kaleyra", httpx.AsyncClient(verify=False), CREDS, {"batch_size": 30})
    assert [len(b.ops) for b in adapter.batches(SMS, [], adds(numbers(70)), {})] == [30, 30, 10]


def test_batches_fall_back_to_phases_if_a_number_is_both_removed_and_added():
    adapter = KaleyraAdapter("kaleyra", httpx.AsyncClient(verify=False), CREDS)
    out = adapter.batches(SMS, removes(["+14155550123"]), adds(["+14155550123"]), {})
    assert [([o.kind for o in b.ops], b.phase) for b in out] == [(["remove"], 0), (["add"], 1)]


# -- send -----------------------------------------------------------------------------------


def test_send_exactly_the_limit_in_one_request(empty, run):
    populate(empty, "sms", numbers(40))
    ops = [*removes(numbers(40)), *adds(numbers(60, 100))]
    result = run(empty, lambda a: a.send(SMS, Batch(ops)))
    assert [o.status for o in result.outcomes] == ["done"] * 100
    assert [o.op for o in result.outcomes] == ops
    assert on("sms", empty) == numbers(60, 100)
    counters = empty.counters.to_dict()
    assert counters["requests"] == {POST: 1}
    assert counters["max_numbers"] == {POST: 100}
    assert counters["limit_violations"] == {}


def test_send_one_over_the_limit_never_exceeds_it(empty, run):
    """A batch of 101 (not from ``batches``) still goes in requests of at most 100."""
    result = run(empty, lambda a: a.send(VOICE, Batch(adds(numbers(101)))))
    assert len(result.outcomes) == 101 and all(o.ok for o in result.outcomes)
    assert on("voice", empty) == numbers(101)
    counters = empty.counters.to_dict()
    assert counters["requests"] == {POST: 2}
    assert counters["max_numbers"] == {POST: 100}
    assert counters["limit_violations"] == {}


def test_plan_sized_apply_through_batches(empty, run):
    """250 adds + 30 removes -> 3 requests, each within the limit."""
    populate(empty, "sms", numbers(30, 5000))

    async def work(adapter: KaleyraAdapter):
        batches = adapter.batches(SMS, removes(numbers(30, 5000)), adds(numbers(250)), {})
        results = await asyncio.gather(*(adapter.send(SMS, b) for b in batches))
        return [o for r in results for o in r.outcomes]

    outcomes = run(empty, work)
    assert len(outcomes) == 280 and all(o.status == "done" for o in outcomes)
    assert sorted(on("sms", empty)) == numbers(250)  # batches land in any order
    assert empty.counters.to_dict()["requests"] == {POST: 3}


def test_refused_batch_fails_each_op_with_the_providers_words(empty, run):
    """Kaleyra has no per-number results: a 400 fails the whole batch (returned, not
    raised), and the next batch still goes on."""

    async def work(adapter: KaleyraAdapter):
        bad = await adapter.send(SMS, Batch(adds(["+14155550123", "12345"])))
        good = await adapter.send(SMS, Batch(adds(["+14155550124"])))
        return bad, good

    bad, good = run(empty, work)
    assert [o.status for o in bad.outcomes] == ["failed", "failed"]
    assert (
        bad.outcomes[0].reason
        == "Refer to correct payload format; payload: Incorrect payload format"
    )
    assert [o.status for o in good.outcomes] == ["done"]
    assert on("sms", empty) == ["+14155550124"]


def test_partial_fault_has_no_effect(tmp_path, run):
    """Per-number partial failures: Kaleyra reports none, so every op is done."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", seed=False, faults="partial=1.0")
    result = run(em, lambda a: a.send(SMS, Batch(adds(numbers(10)))))
    assert all(o.status == "done" for o in result.outcomes)
    assert on("sms", em) == numbers(10)


def test_resend_after_commit_then_drop_is_idempotent(empty, run):
    populate(empty, "sms", numbers(5, 100))
    ops = [*removes(numbers(5, 100)), *adds(numbers(20))]
    empty.faults = Faults(FaultSpec(drop=1.0))

    async def work(adapter: KaleyraAdapter):
        with pytest.raises(RetryableError) as err:
            await adapter.send(SMS, Batch(ops))
        assert "connection failed" in str(err.value)
        empty.faults = Faults(FaultSpec())
        return await adapter.send(SMS, Batch(ops))

    result = run(empty, work)
    assert all(o.ok for o in result.outcomes)
    assert on("sms", empty) == numbers(20)  # applied once, no duplicates
    assert empty.counters.to_dict()["faults"] == {"drop": 1}


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [{**CREDS, "api_key": "wrong-key-123"}, {**CREDS, "sid": "HXWRONGSID9"}],
    ids=["bad key", "bad sid"],
)
@pytest.mark.parametrize("verb", ["refresh", "send"])
def test_bad_credentials_auth_error_after_one_request(empty, creds, verb, run):
    async def work(adapter: KaleyraAdapter):
        if verb == "refresh":
            return await adapter.refresh(SMS)
        return await adapter.send(SMS, Batch(adds(numbers(3))))

    with pytest.raises(AuthError) as err:
        run(empty, work, creds=creds)
    counters = empty.counters.to_dict()
    assert counters["total_requests"] == 1
    assert counters["auth_failures"] == 1
    message = str(err.value)
    assert err.value.reason == "Incorrect SID or API key."
    assert "/v1/{sid}/contacts/blocklisted" in message
    assert err.value.status == 401
    for secret in (*creds.values(), *CREDS.values()):
        assert secret not in message


def test_429_surfaces_retry_after(tmp_path, run):
    em = KaleyraEmulator(state_path=tmp_path / "s.json", faults="429=1.0,retry_after=7")
    with pytest.raises(RetryableError) as err:
        run(em, lambda a: a.send(SMS, Batch(adds(numbers(2)))))
    assert err.value.retry_after == 7
    assert err.value.status == 429
    assert em.counters.to_dict()["total_requests"] == 1
    assert on("sms", em) == ["+919812300002", "+919812300003", "+919876543210"]


def test_a_failing_server_is_retryable(dialect, run):
    """A failing server (500 "WA500", or lean's 200 "CNT195" "Unable to ...") is
    transient: a refresh raises RetryableError, a send raises it or leaves every op
    retryable."""
    em = KaleyraEmulator(state_path=None, persist=False, faults="5xx=1.0", dialect=dialect)
    with pytest.raises(RetryableError) as err:
        run(em, lambda a: a.refresh(SMS))
    assert err.value.status == em.quirks.failure[0]
    assert SID not in str(err.value)
    if em.quirks.failure[0] >= 500:  # the whole request failed: raised, for the executor
        with pytest.raises(RetryableError):
            run(em, lambda a: a.send(SMS, Batch(adds(numbers(2)))))
    else:  # an answer, in words that are not a documented refusal
        result = run(em, lambda a: a.send(SMS, Batch(adds(numbers(2)))))
        assert [o.status for o in result.outcomes] == ["retryable"] * 2
        assert all(o.reason for o in result.outcomes)


@pytest.mark.parametrize(
    "reply, status",
    [
        (
            httpx.Response(
                400,
                json={
                    "code": "WA400",
                    "message": "Refer to correct payload format",
                    "data": {},
                    "error": {"payload": "Incorrect payload format"},
                },
            ),
            "failed",
        ),
        (
            httpx.Response(
                400,
                json={
                    "code": "E110",
                    "message": "Please check your balance, You have a low balance!",
                    "data": {},
                    "error": {"balance": "Please check your balance, You have a low balance!"},
                },
            ),
            "failed",
        ),
        (
            httpx.Response(400, json={"code": "CNT400", "message": "Try later", "data": []}),
            "retryable",
        ),
        (
            httpx.Response(409, json={"code": "X1", "message": "Busy", "error": {"e": "Busy"}}),
            "retryable",
        ),
        (httpx.Response(404, json={"code": "WA404", "message": "Resource not found"}), "retryable"),
        (
            httpx.Response(
                200, json={"code": "CNT195", "message": "Unable", "error": {"d": "Unable"}}
            ),
            "retryable",
        ),
        (
            httpx.Response(202, json={"code": "E429", "message": "Slow down", "error": {"e": "x"}}),
            "retryable",
        ),
    ],
    ids=["WA400", "E110", "400 other code", "409", "404", "CNT195 under 200", "code under 202"],
)
def test_only_documented_refusals_fail_for_good(reply, status, run):
    """Recognised by exclusion: the documented "WA400" payload and "E110" low-balance
    refusals fail their ops; any other error code or status (not auth) is retryable."""
    em = Scripted(state_path=None, persist=False)
    em.reply = reply
    result = run(em, lambda a: a.send(SMS, Batch(adds(numbers(2)))))
    assert [o.status for o in result.outcomes] == [status] * 2
    assert all(o.reason for o in result.outcomes)


def test_provider_words_never_show_the_sid_or_key(run):
    """A body that echoes the SID of the URL path or the key: masked in raised errors
    and in the outcomes' reasons alike."""
    em = Scripted(state_path=None, persist=False)
    echo = f"no account {SID} for key {CREDS['api_key']}"
    em.reply = httpx.Response(400, json={"code": "CNT400", "message": echo, "data": []})
    result = run(em, lambda a: a.send(SMS, Batch(adds(numbers(1)))))
    assert result.outcomes[0].reason == "no account [redacted] for key [redacted]"
    with pytest.raises(RetryableError) as err:
        run(em, lambda a: a.refresh(SMS))
    assert SID not in str(err.value) and CREDS["api_key"] not in str(err.value)
    assert "no account [redacted]" in str(err.value)


class Scripted(KaleyraEmulator):
    """Answers every API request with a fixed reply (after the real auth check)."""

    reply: httpx.Response

    def route(self, request):
        if request.headers.get("api-key") != self.accepted["api_key"]:
            return super().route(request)
        return self.reply


HTML = httpx.Response(
    200, content=b"<html><body>Gateway</body></html>", headers={"content-type": "text/html"}
)


@pytest.mark.parametrize(
    "reply, status, words",
    [
        (HTML, 200, "not JSON"),
        (httpx.Response(200, json=[1, 2]), 200, "not a JSON object"),
        (httpx.Response(200, json={"code": "CNT196"}), 200, "no data list"),
        (httpx.Response(200, json={"code": "CNT196", "data": {}}), 200, "no data list"),
        (httpx.Response(200, json={"code": "CNT196", "data": [{"m": 1}]}), 200, "without mobile"),
        (httpx.Response(200, json={"code": "CNT196", "data": ["+91"]}), 200, "without mobile"),
        (
            httpx.Response(404, json={"code": "WA404", "message": "Resource not found"}),
            404,
            "Resource not found",
        ),
        (httpx.Response(301, headers={"location": "/x"}), 301, "not JSON"),
        (
            httpx.Response(
                200,
                json={
                    "code": "CNT195",
                    "message": "Unable to fetch the blocklisted number",
                    "data": [],
                    "error": {"description": "Unable to fetch the blocklisted number"},
                },
            ),
            200,
            "Unable to fetch the blocklisted number",
        ),
    ],
    ids=[
        "html",
        "array",
        "no data",
        "data object",
        "row no mobile",
        "row str",
        "404",
        "redirect",
        "CNT195",
    ],
)
def test_malformed_refresh_replies_are_provider_errors(tmp_path, reply, status, words, run):
    em = Scripted(state_path=None, persist=False)
    em.reply = reply
    with pytest.raises(ProviderError) as err:
        run(em, lambda a: a.refresh(SMS))
    message = str(err.value)
    assert message.startswith(f"kaleyra: {GET} (HTTP {status})")
    assert words in message
    assert SID not in message and CREDS["api_key"] not in message


@pytest.mark.parametrize(
    "reply, status, words",
    [
        (HTML, 200, "not JSON"),
        (httpx.Response(200, content=b""), 200, "not JSON"),
        (httpx.Response(404, text="Not Found"), 404, "not JSON"),
        (httpx.Response(200, json="ok"), 200, "not a JSON object"),
    ],
    ids=["html", "empty", "404 text", "string"],
)
def test_malformed_send_replies_are_provider_errors(reply, status, words, run):
    em = Scripted(state_path=None, persist=False)
    em.reply = reply
    with pytest.raises(ProviderError) as err:
        run(em, lambda a: a.send(SMS, Batch(adds(numbers(2)))))
    assert not isinstance(err.value, AuthError | RetryableError)
    assert str(err.value).startswith(f"kaleyra: {POST} (HTTP {status})")
    assert words in str(err.value)


def test_html_502_is_retryable(run):
    em = Scripted(state_path=None, persist=False)
    em.reply = httpx.Response(502, content=b"<html>bad gateway</html>")
    with pytest.raises(RetryableError) as err:
        run(em, lambda a: a.refresh(SMS))
    assert str(err.value).startswith(f"kaleyra: {GET} (HTTP 502)")


def test_401_without_json_is_still_an_auth_error(run):
    em = Scripted(state_path=None, persist=False)
    em.reply = httpx.Response(401, content=b"<html>401</html>")
    with pytest.raises(AuthError) as err:
        run(em, lambda a: a.refresh(SMS))
    assert str(err.value) == f"kaleyra: {GET} (HTTP 401): unauthorised"
    assert em.counters.to_dict()["total_requests"] == 1


def test_in_body_codes_map_to_our_errors(run):
    em = Scripted(state_path=None, persist=False)
    em.reply = httpx.Response(
        200,
        json={
            "code": "RBC001",
            "message": "Incorrect SID or API key.",
            "data": [],
            "error": {"error": "Incorrect SID or API key."},
        },
    )
    with pytest.raises(AuthError):
        run(em, lambda a: a.send(SMS, Batch(adds(numbers(1)))))
    em.reply = httpx.Response(200, json={"code": "WA429", "message": "Too many requests"})
    with pytest.raises(RetryableError):
        run(em, lambda a: a.refresh(SMS))
    em.reply = httpx.Response(
        200, json={"code": "CNT195", "message": "Unable", "data": [], "error": {"d": "Unable"}}
    )
    result = run(em, lambda a: a.send(SMS, Batch(adds(numbers(2)))))
    assert [(o.status, o.reason) for o in result.outcomes] == [("retryable", "Unable")] * 2


def test_paging_that_does_not_advance_is_an_error(run):
    """A server that ignores offset would page forever: stop with a ProviderError."""
    em = Scripted(state_path=None, persist=False)
    page = [{"mobile": n, "channel_type": "1"} for n in numbers(100)]
    em.reply = httpx.Response(
        200, json={"code": "CNT196", "message": "", "data": page, "error": {}}
    )
    with pytest.raises(ProviderError, match="paging does not advance at offset 100"):
        run(em, lambda a: a.refresh(SMS))
    assert 2 <= em.counters.to_dict()["total_requests"] <= 4  # 2 read, 2 fetched ahead


# -- concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, cap", [(None, 4), ({"concurrency": 2}, 2), ({"concurrency": 64}, 4)]
)
def test_never_more_than_the_concurrency_limit_in_flight(tmp_path, options, cap, run):
    em = KaleyraEmulator(state_path=tmp_path / "s.json", seed=False, faults="latency=20ms")

    async def work(adapter: KaleyraAdapter):
        batches = [Batch(adds(numbers(5, 100 * i))) for i in range(12)]
        await asyncio.gather(*(adapter.send(SMS, b) for b in batches))

    run(em, work, options=options)
    assert 1 <= em.counters.to_dict()["max_in_flight"] <= cap  # never more (no timing)
    assert len(on("sms", em)) == 60


def test_adapter_survives_a_second_event_loop(empty, run, plug):
    """The semaphore is made in the running loop, and again for a new loop."""
    with plug(empty) as url:

        async def once(adapter: KaleyraAdapter) -> int:
            async with provider_client(url) as client:
                adapter.client = client
                return len(await adapter.refresh(SMS))

        adapter = KaleyraAdapter("kaleyra", httpx.AsyncClient(verify=False), CREDS)
        assert asyncio.run(once(adapter)) == 0
        assert asyncio.run(once(adapter)) == 0


def test_opt_outs_are_left_alone_by_a_managed_apply(em, run):
    """The seeded users' opt-outs stay: only the ops given are sent."""

    async def work(adapter: KaleyraAdapter):
        live = await adapter.refresh(SMS)
        await adapter.send(SMS, Batch(removes(["+919876543210"]) + adds(["+14155550123"])))
        return live, await adapter.refresh(SMS)

    before, after = run(em, work)
    imported = ["+919812300005"] if quirks(em).imported else []
    assert [e.number for e in after] == [
        "+919812300002",
        "+919812300003",
        *imported,
        "+14155550123",
    ]
    assert {e.number for e in before} - {e.number for e in after} == {"+919876543210"}
    assert on("whatsapp", em) == ["+919812300004"]


def test_apply_sized_request_counts(empty, run):
    """The representative apply: 250 listed, 30 of them removed and 250 added (3 POSTs
    of 100, adds and removes sharing them), then read again. Reads: a page per
    page_cap rows and the empty page that ends each read."""
    populate(empty, "sms", numbers(250))

    async def work(adapter: KaleyraAdapter):
        before = await adapter.refresh(SMS)
        batches = adapter.batches(SMS, removes(numbers(30)), adds(numbers(250, 1000)), {})
        for batch in batches:
            assert all(o.status == "done" for o in (await adapter.send(SMS, batch)).outcomes)
        return len(before), len(await adapter.refresh(SMS))

    assert run(empty, work) == (250, 470)
    counters = empty.counters.to_dict()
    sequential = gets(empty, 250, 470)  # + at most 3 fetched ahead a read
    assert counters["requests"].keys() == {GET, POST} and counters["requests"][POST] == 3
    assert sequential <= counters["requests"][GET] <= sequential + 6
    assert counters["max_numbers"][POST] == 100
    assert counters["limit_violations"] == {}


def _chunks_as_before(wire: list) -> list:
    """The cut ``send`` made before ``request_chunks``: the chunk's numbers summed again
    for every op."""
    out, chunk = [], []
    for item in wire:
        if chunk and sum(len(f) for _, f in chunk) + len(item[1]) > 100:
            out.append(chunk)
            chunk = []
        chunk.append(item)
    if chunk:
        out.append(chunk)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 4), max_size=260))
def test_request_chunks_cut_where_summing_every_time_cut(forms_per_op: list[int]) -> None:
    """Counting as it goes cuts a batch into exactly the requests the old sum did: no
    request over 100 numbers, no op split, order kept."""
    from reconciler.providers.kaleyra import request_chunks

    wire = [
        (Op("remove", f"+91981230{i:04d}"), [f"+91981230{i:04d}"] * k)
        for i, k in enumerate(forms_per_op)
    ]
    assert request_chunks(wire) == _chunks_as_before(wire)
