"""The Kaleyra emulator over real loopback HTTP, point by point against CONTRACTS.md §4."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from reconciler.sandbox import emulator_class
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.kaleyra import (
    AUTH_FAILED,
    BAD_PAYLOAD,
    SERVER_ERROR,
    TOO_MANY_CONTACTS,
    TOO_MANY_REQUESTS,
    UPDATED,
    KaleyraEmulator,
    KaleyraQuirks,
    parse_mobiles,
)

KEY = "sandbox-kaleyra-key"
SID = "HXSANDBOX01"
PATH = f"/v1/{SID}/contacts/blocklisted"
GET = "GET /v1/{sid}/contacts/blocklisted"
POST = "POST /v1/{sid}/contacts/blocklisted"
FETCHED = {"code": "CNT196", "message": "Successfully fetched blocklisted number(s)", "error": {}}


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+9190000{i:05d}" for i in range(start, start + n)]


def populate(em: KaleyraEmulator, channel: str, nums: list[str]) -> None:
    entries = em.state["channels"][channel]
    for n in nums:
        entries[n] = {"mobile": n, "added_at": "2026-01-01T00:00:00Z", "origin": "api"}


@pytest.fixture
def plug(loopback):
    """``with plug(emulator) as url:`` serves ``emulator`` on the module's loopback port."""
    return loopback.plugged


@pytest.fixture
def em(tmp_path) -> KaleyraEmulator:
    return KaleyraEmulator(state_path=tmp_path / "kaleyra.json", clock=lambda: 1_800_000_000)


@pytest.fixture
def client(em, plug) -> Iterator[httpx.Client]:
    with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": KEY}) as c:
        yield c


def fetched(data: list[dict[str, str]]) -> dict:
    return {**FETCHED, "data": data}


def post(client: httpx.Client, channel: str, *contacts: tuple[int, list[str]]) -> httpx.Response:
    body = {
        "channel": channel,
        "contacts": [{"blocklist_status": s, "numbers": ns} for s, ns in contacts],
    }
    return client.post(PATH, json=body)


def blocked(em: KaleyraEmulator, channel: str) -> list[str]:
    return [r["mobile"] for r in em.state["channels"][channel].values()]


# -- registry, seed -----------------------------------------------------------------------


def test_registered_under_its_type():
    """DESIGN "Sandbox": the registry names KaleyraEmulator for type kaleyra."""
    assert emulator_class("kaleyra") is KaleyraEmulator
    assert KaleyraEmulator.credentials == {"api_key": KEY, "sid": SID}


def test_seeded_entries_per_channel(client, em):
    """CONTRACTS §4 checklist 4 (per-channel state) + brief seed: three sms, one whatsapp."""
    assert blocked(em, "sms") == ["+919812300002", "+919812300003", "+919876543210"]
    assert blocked(em, "whatsapp") == ["+919812300004"]
    assert blocked(em, "voice") == []
    opt_outs = [k for k, r in em.state["channels"]["sms"].items() if r["origin"] == "opt-out"]
    assert opt_outs == ["+919812300002", "+919812300003"]
    r = client.get(PATH, params={"channel": "sms"})
    assert [row["mobile"] for row in r.json()["data"]] == blocked(em, "sms")


def test_unseeded_is_empty(tmp_path):
    """Brief: initial_state(seed=False) holds no entries on any channel."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", seed=False)
    assert em.state == {"channels": {"sms": {}, "whatsapp": {}, "voice": {}}}
    json.dumps(em.state)  # JSON-serialisable


# -- path and auth ----------------------------------------------------------------------------


def test_v1_and_v2_paths(client, em):
    """CONTRACTS §4 checklist 1: path /{v1|v2}/{SID}/contacts/blocklisted, both accepted."""
    assert client.get(PATH).status_code == 200
    assert client.get(f"/v2/{SID}/contacts/blocklisted").status_code == 200
    assert client.get(f"{PATH}/").status_code == 200
    requests = em.counters.to_dict()["requests"]
    assert requests == {GET: 2, "GET /v2/{sid}/contacts/blocklisted": 1}


def test_unknown_path_and_method(client, em):
    """CONTRACTS §4 checklist 1: only the documented path and methods exist ([INFER] 404/405)."""
    r = client.get(f"/v1/{SID}/contacts")
    assert r.status_code == 404
    assert r.json()["code"] == "WA404"
    r = client.delete(PATH)
    assert r.status_code == 405
    assert "GET {unknown path}" in em.counters.requests


@pytest.mark.parametrize(
    "key, sid",
    [("wrong-key", SID), (KEY, "HXWRONG"), (None, SID)],
    ids=["bad key", "bad sid", "no key"],
)
def test_auth_failure_is_rbc001_verbatim(em, key, sid, plug):
    """CONTRACTS §4 checklist 1: api-key + SID validation -> 401 RBC001, body verbatim."""
    headers = {"api-key": key} if key else {}
    with plug(em) as url, httpx.Client(base_url=url, headers=headers) as c:
        for method in ("GET", "POST"):
            r = c.request(method, f"/v1/{sid}/contacts/blocklisted", json={})
            assert r.status_code == 401
            assert r.json() == AUTH_FAILED
    counters = em.counters.to_dict()
    assert counters["auth_failures"] == 2
    assert counters["repeated_after_auth_failure"] == 1  # the same credential again


def test_auth_failure_changes_nothing(em, plug):
    """CONTRACTS §4 checklist 1: a rejected POST is not applied."""
    with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": "nope"}) as c:
        r = post(c, "voice", (1, ["+14155550123"]))
    assert r.status_code == 401
    assert blocked(em, "voice") == []


# -- GET ----------------------------------------------------------------------------------


def test_get_envelope_and_channel_type_codes(client, em):
    """CONTRACTS §4 checklist 2: envelope {code CNT196, message, data, error {}};
    channel_type a string ("3" whatsapp documented; [INFER] "1" sms, "2" voice); no total."""
    populate(em, "voice", ["+14155550123"])
    r = client.get(PATH)
    assert r.status_code == 200
    assert r.json() == fetched(
        [
            {"mobile": "+919812300002", "channel_type": "1"},
            {"mobile": "+919812300003", "channel_type": "1"},
            {"mobile": "+919876543210", "channel_type": "1"},
            {"mobile": "+919812300004", "channel_type": "3"},
            {"mobile": "+14155550123", "channel_type": "2"},
        ]
    )
    assert set(r.json()) == {"code", "message", "data", "error"}


def test_get_one_row_per_number_and_channel(client, em):
    """CONTRACTS §4 checklist 2/4: without a channel filter, one row per (number, channel)."""
    populate(em, "voice", ["+919876543210"])
    populate(em, "whatsapp", ["+919876543210"])
    rows = client.get(PATH, params={"mobile": "+919876543210"}).json()["data"]
    assert rows == [
        {"mobile": "+919876543210", "channel_type": "1"},
        {"mobile": "+919876543210", "channel_type": "3"},
        {"mobile": "+919876543210", "channel_type": "2"},
    ]


def test_get_default_limit_is_100_and_offset_pages(client, em):
    """CONTRACTS §4 checklist 2: "By default, the limit is set to 100"; offset paging."""
    populate(em, "voice", numbers(250))
    r = client.get(PATH, params={"channel": "voice"})
    assert [row["mobile"] for row in r.json()["data"]] == numbers(100)
    pages = [
        client.get(PATH, params={"channel": "voice", "limit": 100, "offset": o}).json()["data"]
        for o in (0, 100, 200, 300)
    ]
    assert [len(p) for p in pages] == [100, 100, 50, 0]
    assert [row["mobile"] for p in pages for row in p] == numbers(250)
    small = client.get(PATH, params={"channel": "voice", "limit": 3, "offset": 5}).json()["data"]
    assert [row["mobile"] for row in small] == numbers(3, start=5)
    assert em.counters.limit_violations == {}


def test_get_limit_over_100_is_clamped_and_recorded(client, em):
    """CONTRACTS §4 checklist 2: "not possible to retrieve more than 100 contacts per
    response"; [INFER] clamped, recorded as a violation."""
    populate(em, "sms", numbers(150))
    r = client.get(PATH, params={"channel": "sms", "limit": 150})
    assert r.status_code == 200
    assert len(r.json()["data"]) == 100
    assert em.counters.limit_violations == {"limit over 100": 1}


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "limit=0", "offset=x", "offset=-5"])
def test_get_bad_limit_or_offset_is_wa400(client, query):
    """CONTRACTS §4 checklist 2/5: [INFER] a bad limit/offset gets the documented WA400."""
    r = client.get(f"{PATH}?{query}")
    assert r.status_code == 400
    assert r.json() == BAD_PAYLOAD


def test_get_channel_filter(client, em):
    """CONTRACTS §4 checklist 2: channel filter (sms, whatsapp, voice)."""
    wa = client.get(PATH, params={"channel": "whatsapp"}).json()
    assert wa == fetched([{"mobile": "+919812300004", "channel_type": "3"}])
    assert client.get(PATH, params={"channel": "voice"}).json()["data"] == []


def test_get_bad_channel_is_wa400_verbatim(client):
    """CONTRACTS §4 checklist 2/5: a channel other than sms/whatsapp/voice -> 400 WA400."""
    r = client.get(PATH, params={"channel": "email"})
    assert r.status_code == 400
    assert r.json() == BAD_PAYLOAD


def test_get_mobile_filter_returns_only_blocklisted(client, em):
    """CONTRACTS §4 checklist 2: "The response will only contain the blocklisted numbers
    ... if none of the numbers are blocklisted, then empty array will be returned"."""
    r = client.get(PATH, params={"channel": "sms", "mobile": "+919876543210,+14155550123"})
    assert r.json() == fetched([{"mobile": "+919876543210", "channel_type": "1"}])
    r = client.get(PATH, params={"mobile": "+14155550123"})
    assert r.json() == fetched([])
    # the filter respects the channel: +919812300004 is blocked on whatsapp only
    assert (
        client.get(PATH, params={"channel": "sms", "mobile": "+919812300004"}).json()["data"] == []
    )
    assert em.counters.numbers[GET] == 4
    assert em.counters.max_numbers[GET] == 2


def test_get_mobile_raw_plus_quirk(client):
    """CONTRACTS §4 checklist 2: the doc's sample sends `+` raw (`mobile=+91802XXXXX52%2C
    +91803XXXXX53`); a value decoded as a leading space is read as `+`. %2B works too."""
    expected = fetched(
        [
            {"mobile": "+919812300002", "channel_type": "1"},
            {"mobile": "+919812300003", "channel_type": "1"},
        ]
    )
    raw = client.get(f"{PATH}?limit=3&offset=0&mobile=+919812300002%2C+919812300003")
    encoded = client.get(f"{PATH}?mobile=%2B919812300002%2C%2B919812300003")
    spaced = client.get(f"{PATH}?mobile=%2B919812300002%2C%20%2B919812300003")
    for r in (raw, encoded, spaced):
        assert r.status_code == 200
        assert r.json() == expected


def test_parse_mobiles_unit():
    """CONTRACTS §4 checklist 2: the quirk in isolation."""
    assert parse_mobiles(" 9180,+9181, +9182,,") == ["+9180", "+9181", "+9182"]
    assert parse_mobiles("9183") == ["9183"]  # no leading space: left as sent (then invalid)


def test_get_mobile_over_100_is_refused(client, em):
    """CONTRACTS §4 checklist 2: "You can send the request for a maximum set of 100 phone
    numbers" -> 400 WA400 and a recorded violation; exactly 100 is fine."""
    ok = client.get(PATH, params={"mobile": ",".join(numbers(100))})
    assert ok.status_code == 200
    r = client.get(PATH, params={"mobile": ",".join(numbers(101))})
    assert r.status_code == 400
    assert r.json() == BAD_PAYLOAD
    assert em.counters.limit_violations == {"more than 100 mobile numbers": 1}
    assert em.counters.max_numbers[GET] == 101


def test_get_mobile_not_e164_is_wa400(client):
    """CONTRACTS §4 checklist 2: "A valid phone number ... (E164 format)" -> [INFER] WA400."""
    r = client.get(PATH, params={"mobile": "09876543210"})
    assert r.status_code == 400
    assert r.json() == BAD_PAYLOAD


def test_get_finds_numbers_stored_in_other_formats(client, em):
    """CONTRACTS §4 checklist 2: [INFER] a number stored without `+` (e.g. a CSV import)
    is shown as stored and still found by the E.164 mobile filter."""
    em.state["channels"]["voice"]["+919812300009"] = {
        "mobile": "919812300009",
        "added_at": "2026-01-01T00:00:00Z",
        "origin": "api",
    }
    r = client.get(PATH, params={"channel": "voice", "mobile": "+919812300009"})
    assert r.json()["data"] == [{"mobile": "919812300009", "channel_type": "2"}]


# -- POST ---------------------------------------------------------------------------------


def test_post_adds_and_removes_in_one_request(client, em):
    """CONTRACTS §4 checklist 3: one POST with blocklist_status 1 and 0 groups; success body
    ([INFER] CNT197)."""
    r = post(client, "sms", (1, ["+14155550123", "+14155550124"]), (0, ["+919876543210"]))
    assert r.status_code == 200
    assert r.json() == UPDATED
    assert blocked(em, "sms") == [
        "+919812300002",
        "+919812300003",
        "+14155550123",
        "+14155550124",
    ]
    assert em.counters.numbers[POST] == 3


def test_post_is_per_channel(client, em):
    """CONTRACTS §4 checklist 4: a number can be blocked on sms but not on voice."""
    post(client, "voice", (1, ["+919876543210"]))
    post(client, "sms", (0, ["+919876543210"]))
    assert "+919876543210" in em.state["channels"]["voice"]
    assert "+919876543210" not in em.state["channels"]["sms"]


def test_post_repeats_are_silent_noops(client, em):
    """CONTRACTS §4 checklist 3: [INFER] 1 on a blocked number / 0 on an unblocked one is a
    no-op with the same success reply."""
    assert post(client, "sms", (1, ["+919876543210"])).json() == UPDATED
    assert post(client, "voice", (0, ["+919876543210"])).json() == UPDATED
    assert blocked(em, "sms").count("+919876543210") == 1
    assert blocked(em, "voice") == []


def test_post_100_numbers_ok_101_refused(client, em):
    """CONTRACTS §4 checklist 3: "up to 100 contacts per request", counted in numbers
    across groups ([INFER]); 101 -> 400 WA400, violation recorded, nothing applied."""
    r = post(client, "voice", (1, numbers(60)), (0, numbers(40, start=60)))
    assert r.status_code == 200
    assert len(blocked(em, "voice")) == 60
    assert em.counters.limit_violations == {}
    r = post(client, "voice", (1, numbers(51, start=200)), (0, numbers(50)))
    assert r.status_code == 400
    assert r.json() == TOO_MANY_CONTACTS
    assert em.counters.limit_violations == {"more than 100 numbers per update": 1}
    assert len(blocked(em, "voice")) == 60
    assert em.counters.max_numbers[POST] == 101


@pytest.mark.parametrize(
    "body",
    [
        None,
        "not json",
        [],
        {"channel": "sms"},
        {"channel": "email", "contacts": [{"blocklist_status": 1, "numbers": ["+14155550123"]}]},
        {"channel": "sms", "contacts": []},
        {"channel": "sms", "contacts": ["+14155550123"]},
        {"channel": "sms", "contacts": [{"blocklist_status": 2, "numbers": ["+14155550123"]}]},
        {"channel": "sms", "contacts": [{"blocklist_status": "1", "numbers": ["+14155550123"]}]},
        {"channel": "sms", "contacts": [{"blocklist_status": True, "numbers": ["+14155550123"]}]},
        {"channel": "sms", "contacts": [{"blocklist_status": 1, "numbers": "+14155550123"}]},
        {"channel": "sms", "contacts": [{"blocklist_status": 1, "numbers": []}]},
        {"channel": "sms", "contacts": [{"blocklist_status": 1, "numbers": ["4155550123"]}]},
        {"channel": "sms", "contacts": [{"blocklist_status": 1, "numbers": [14155550123]}]},
    ],
    ids=[
        "empty",
        "not json",
        "array",
        "no contacts",
        "bad channel",
        "empty contacts",
        "contact not object",
        "status 2",
        "status string",
        "status bool",
        "numbers string",
        "numbers empty",
        "not e164",
        "number int",
    ],
)
def test_post_malformed_is_wa400_verbatim(client, em, body):
    """CONTRACTS §4 checklist 3/5: malformed payload, bad channel/status, non-E.164 number ->
    the documented 400 WA400 body; nothing applied."""
    before = json.dumps(em.state, sort_keys=True)
    if body is None:
        r = client.post(PATH)
    elif isinstance(body, str):
        r = client.post(PATH, content=body)
    else:
        r = client.post(PATH, json=body)
    assert r.status_code == 400
    assert r.json() == BAD_PAYLOAD
    assert json.dumps(em.state, sort_keys=True) == before


def test_post_one_bad_number_rejects_the_request(client, em):
    """CONTRACTS §4 checklist 3: [INFER] no per-number results, so one invalid number
    refuses the whole request."""
    r = post(client, "sms", (1, ["+14155550123", "12"]))
    assert r.status_code == 400
    assert "+14155550123" not in em.state["channels"]["sms"]


# -- faults, counters, persistence ------------------------------------------------------------


def test_server_error_is_wa500(tmp_path, plug):
    """CONTRACTS §4 failures: 500 "WA500" "Please try again later" verbatim."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", faults="5xx=1.0")
    with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": KEY}) as c:
        r = c.get(PATH)
    assert r.status_code == 500
    assert r.json() == SERVER_ERROR
    assert em.counters.faults["5xx"] == 1


def test_rate_limited_is_wa429_with_retry_after(tmp_path, plug):
    """Brief: 429 in Kaleyra's envelope ([INFER] WA429) with Retry-After."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", faults="429=1.0,retry_after=7")
    with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": KEY}) as c:
        r = post(c, "sms", (1, ["+14155550123"]))
    assert r.status_code == 429
    assert r.json() == TOO_MANY_REQUESTS
    assert r.headers["Retry-After"] == "7"
    assert "+14155550123" not in em.state["channels"]["sms"]


def _fault_trace(plug, tmp_path, name: str) -> list[int]:
    em = KaleyraEmulator(state_path=tmp_path / name, faults="5xx=0.3,429=0.1,retry_after=0,seed=42")
    with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": KEY}) as c:
        return [c.get(PATH).status_code for _ in range(30)]


def test_fault_injection_is_reproducible(tmp_path, plug):
    """Brief: same seed, same faults; the counters show them."""
    first = _fault_trace(plug, tmp_path, "a.json")
    second = _fault_trace(plug, tmp_path, "b.json")
    assert first == second
    assert 500 in first and 200 in first


def test_no_partial_failures_kaleyra_reports_none(tmp_path, plug):
    """CONTRACTS §4: Kaleyra reports no per-number results, so partial=1.0 changes nothing."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", faults="partial=1.0")
    with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": KEY}) as c:
        r = post(c, "voice", (1, numbers(5)))
    assert r.json() == UPDATED
    assert len(blocked(em, "voice")) == 5
    assert em.counters.faults == {}


def test_commit_then_drop(tmp_path, plug):
    """Brief: fault drop=1.0 applies the write, then drops the answer."""
    em = KaleyraEmulator(state_path=tmp_path / "s.json", faults="drop=1.0")
    with (
        plug(em) as url,
        httpx.Client(base_url=url, headers={"api-key": KEY}) as c,
        pytest.raises(httpx.TransportError),
    ):
        post(c, "voice", (1, ["+14155550123"]))
    assert blocked(em, "voice") == ["+14155550123"]
    assert em.counters.faults["drop"] == 1


def test_state_persists_and_debug_endpoints(tmp_path, client, em):
    """Brief: state is kept in the file after every write; /__sandbox/state, counters, reset."""
    post(client, "voice", (1, ["+14155550123"]))
    again = KaleyraEmulator(state_path=tmp_path / "kaleyra.json")
    assert "+14155550123" in again.state["channels"]["voice"]
    assert client.get("/__sandbox/state").json() == em.state
    counters = client.get("/__sandbox/counters").json()
    assert counters["requests"] == {POST: 1}
    assert client.post("/__sandbox/reset").json() == {"reset": True}
    assert blocked(em, "voice") == []
    assert blocked(KaleyraEmulator(state_path=tmp_path / "kaleyra.json"), "voice") == []


def test_refused_write_does_not_rewrite_state_file(tmp_path, client):
    """Brief: O(1)-ish writes: a refused POST leaves the state file alone."""
    path = tmp_path / "kaleyra.json"
    mtime = path.stat().st_mtime_ns
    client.post(PATH, json={"channel": "email", "contacts": []})
    assert path.stat().st_mtime_ns == mtime


def test_added_at_uses_injected_clock(client, em):
    """Brief: time comes from self.clock()."""
    post(client, "voice", (1, ["+14155550123"]))
    assert em.state["channels"]["voice"]["+14155550123"]["added_at"] == "2027-01-15T08:00:00Z"


# -- dialects: defensible answers where the docs are silent ----------------------------------


@pytest.fixture
def speak(plug):
    """``with speak(dialect) as (em, client):`` a seeded emulator of that dialect, served."""

    @contextlib.contextmanager
    def make(dialect: str):
        em = KaleyraEmulator(state_path=None, persist=False, dialect=dialect)
        with plug(em) as url, httpx.Client(base_url=url, headers={"api-key": KEY}) as c:
            yield em, c

    return make


def test_dialects_are_declared_with_notes():
    """Every dialect has a one-line note; "default" is today's behaviour."""
    assert set(KaleyraEmulator.dialects) == set(KaleyraEmulator.dialect_notes)
    assert set(KaleyraEmulator.dialects) == {"default", "strict", "alt", "lean"}
    assert KaleyraEmulator.dialects["default"] == KaleyraQuirks()
    with pytest.raises(ValueError, match="unknown kaleyra dialect"):
        KaleyraEmulator(dialect="chatty")


@pytest.mark.parametrize(("dialect", "cap"), [("default", 100), ("strict", 50), ("lean", 20)])
def test_page_cap_without_a_total(speak, dialect, cap):
    """strict/lean: a GET page holds at most 50/20 rows whatever limit asks, and still
    no total: only an empty page says the list is over."""
    with speak(dialect) as (em, c):
        populate(em, "voice", numbers(130))
        first = c.get(PATH, params={"channel": "voice", "limit": 100, "offset": 0}).json()
        assert [r["mobile"] for r in first["data"]] == numbers(min(cap, 100))
        assert set(first) == {"code", "message", "data", "error"}
        end = c.get(PATH, params={"channel": "voice", "limit": 100, "offset": 130}).json()
        assert end["data"] == []


def test_strict_needs_percent_encoded_plus_and_writes_data_lists(speak):
    """strict: a raw + in mobile is a space, refused; %2B works; every error envelope
    has data []; throttling is 429 "E429" with Retry-After."""
    with speak("strict") as (em, c):
        raw = c.get(f"{PATH}?mobile=+919812300002")
        assert (raw.status_code, raw.json()) == (400, {**BAD_PAYLOAD, "data": []})
        encoded = c.get(f"{PATH}?mobile=%2B919812300002").json()
        assert [r["mobile"] for r in encoded["data"]] == ["+919812300002"]
        em.faults = Faults(FaultSpec.parse("429=1.0,retry_after=4"))
        throttled = c.get(PATH)
        assert throttled.status_code == 429
        assert throttled.json()["code"] == "E429"
        assert throttled.json()["data"] == []
        assert throttled.headers["Retry-After"] == "4"


def test_alt_keeps_numbers_exactly_as_written(speak):
    """alt: a CSV import's "919812300005" is kept as written; "+" is optional on input;
    matching is exact, so "+919812300005" neither finds nor removes it; the success
    is 202 "CNT202"; sms/voice are channel_type "2"/"1"; mobile takes + literally."""
    with speak("alt") as (em, c):
        assert "919812300005" in em.state["channels"]["sms"]
        miss = c.get(PATH, params={"channel": "sms", "mobile": "+919812300005"}).json()
        assert miss["data"] == []
        hit = c.get(PATH, params={"channel": "sms", "mobile": "919812300005"}).json()
        assert hit["data"] == [{"mobile": "919812300005", "channel_type": "2"}]
        r = post(c, "sms", (0, ["+919812300005"]))
        assert (r.status_code, r.json()["code"]) == (202, "CNT202")
        assert "919812300005" in em.state["channels"]["sms"]
        post(c, "sms", (0, ["919812300005"]))
        assert "919812300005" not in em.state["channels"]["sms"]
        post(c, "voice", (1, ["14155550123"]))
        assert c.get(PATH, params={"channel": "voice"}).json()["data"] == [
            {"mobile": "14155550123", "channel_type": "1"}
        ]
        literal = c.get(f"{PATH}?channel=sms&mobile=+919812300002").json()
        assert [r["mobile"] for r in literal["data"]] == ["+919812300002"]


def test_lean_rows_echo_and_failures(speak):
    """lean: sms/voice rows carry no channel_type (whatsapp's "3" stays); the POST
    success lists the numbers in data; error data is {}; a failing server answers 200
    with the CNT195 "Unable to ..." sample."""
    with speak("lean") as (em, c):
        rows = c.get(PATH).json()["data"]
        assert rows[0] == {"mobile": "+919812300002"}
        assert {"mobile": "+919812300004", "channel_type": "3"} in rows
        r = post(c, "voice", (1, ["+14155550123"]), (0, ["+14155550124"]))
        assert r.status_code == 200
        assert r.json()["data"] == [
            {"mobile": "+14155550123", "blocklist_status": 1},
            {"mobile": "+14155550124", "blocklist_status": 0},
        ]
        bad = c.get(PATH, params={"channel": "email"}).json()
        assert bad == {**BAD_PAYLOAD, "data": {}}
        em.faults = Faults(FaultSpec.parse("5xx=1.0"))
        fetch = c.get(PATH)
        update = post(c, "voice", (1, ["+14155550125"]))
        assert (fetch.status_code, fetch.json()["code"]) == (200, "CNT195")
        assert fetch.json()["message"] == "Unable to fetch the blocklisted number"
        assert update.json()["message"] == "Unable to update the blocklist status"
        assert "+14155550125" not in em.state["channels"]["voice"]
