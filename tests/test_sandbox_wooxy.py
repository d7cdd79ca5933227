"""The Wooxy emulator over real loopback HTTP, point by point against CONTRACTS.md §2."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from reconciler.sandbox import emulator_class
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.server import serve
from reconciler.sandbox.wooxy import WooxyEmulator, WooxyQuirks

TOKEN = "sandbox-wooxy-token"
AUTH = {"Access-Token": TOKEN}
ADD = "/v3/phone-blacklist/add"
FIND = "/v3/phone-blacklist/find"
REMOVE = "/v3/phone-blacklist/remove"
NOW = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
NOW_TEXT = "2026-11-18 11:06:40"


class Served:
    """One emulator on loopback, shared by the tests of this module (starting and
    stopping a server costs ~0.5 s); each test gets it reset."""

    def __init__(self, emulator: WooxyEmulator, client: httpx.Client) -> None:
        self.emulator = emulator
        self.client = client

    def prepare(self, seed: bool = True, faults: str | None = None) -> Served:
        self.emulator.clock = lambda: NOW
        self.emulator.faults = Faults(FaultSpec.parse(faults))
        self.emulator.reset(seed)
        return self

    def post(self, path: str, body: object = None, headers: dict[str, str] | None = None):
        content = b"" if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
        return self.client.post(path, content=content, headers=hdrs)

    def add(self, *records: dict[str, str]) -> httpx.Response:
        return self.post(ADD, {"records": list(records)})

    def find(self, **body: object) -> httpx.Response:
        return self.post(FIND, body)

    def numbers(self) -> dict[str, str]:
        return {n: r["rejectType"] for n, r in self.emulator.state["entries"].items()}

    def counters(self) -> dict:
        return self.emulator.counters.to_dict()


@pytest.fixture(scope="module")
def server(loopback) -> Iterator[Served]:
    emulator = WooxyEmulator(clock=lambda: NOW)
    with httpx.Client(base_url=loopback.plug(emulator)) as client:
        yield Served(emulator, client)


@pytest.fixture
def wooxy(server: Served) -> Served:
    return server.prepare(seed=True)


@pytest.fixture
def empty(server: Served) -> Served:
    return server.prepare(seed=False)


def rec(number: str, reject_type: str | None = "import") -> dict[str, str]:
    return {"phoneNumber": number} | ({"rejectType": reject_type} if reject_type else {})


# -- registry and seed ---------------------------------------------------------------


def test_registered_under_its_type() -> None:
    """The sandbox registry finds WooxyEmulator for type wooxy."""
    assert emulator_class("wooxy") is WooxyEmulator
    assert WooxyEmulator.credentials == {"access_token": TOKEN}


def test_seeded_entries_include_an_opt_out(wooxy: Served) -> None:
    """Seed: one user opt-out (unsubscribe) and two other entries, listed by find."""
    assert wooxy.numbers() == {
        "+919812300001": "unsubscribe",
        "+14155550199": "import",
        "+919876543210": "invalid",
    }
    reply = wooxy.find().json()
    assert reply["totalCount"] == 3
    assert reply["data"][0] == {
        "phoneNumber": "+919812300001",
        "rejectType": "unsubscribe",
        "createdAt": NOW_TEXT,
    }


def test_unseeded_emulator_is_empty(empty: Served) -> None:
    """seed=False starts with an empty blacklist."""
    assert empty.find().json() == {
        "result": True,
        "data": [],
        "totalCount": 0,
        "offset": 0,
        "limit": 20,
    }


# -- checklist 1: POST-only routes, Access-Token auth -----------------------------------


@pytest.mark.parametrize("path", [ADD, FIND, REMOVE])
def test_missing_or_bad_token_is_refused(wooxy: Served, path: str) -> None:
    """CONTRACTS §2 checklist 1: a missing or bad token -> "Invalid authorization token!"."""
    for headers in ({}, {"Access-Token": "wrong"}):
        reply = wooxy.post(path, {"phoneNumber": "+14155550123"}, headers=headers)
        assert reply.status_code == 401
        assert reply.json() == {"result": False, "errors": ["Invalid authorization token!"]}
    counters = wooxy.counters()
    assert counters["auth_failures"] == 2
    assert wooxy.numbers()["+14155550199"] == "import"  # nothing changed


def test_repeat_after_auth_failure_is_counted(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 1: the credential presented is known to the base counters."""
    wooxy.post(FIND, {}, headers={"Access-Token": "wrong"})
    wooxy.post(FIND, {}, headers={"Access-Token": "wrong"})
    assert wooxy.counters()["repeated_after_auth_failure"] == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_routes_are_post_only(wooxy: Served, method: str) -> None:
    """CONTRACTS §2 checklist 1: every method is POST; others get "Bad Request"."""
    reply = wooxy.client.request(method, FIND, headers=AUTH)
    assert reply.status_code == 405
    assert reply.json() == {"result": False, "errors": ["Bad Request"]}


def test_unknown_path_and_endpoint_labels(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 1: only add/find/remove exist; counters use stable labels."""
    reply = wooxy.post("/v3/phone-blacklist/list", {})
    assert reply.status_code == 404
    assert reply.json()["result"] is False
    wooxy.find()
    wooxy.add(rec("+14155550123"))
    wooxy.post(REMOVE, {"phoneNumber": "+14155550123"})
    assert wooxy.counters()["requests"] == {
        "POST {unknown path}": 1,
        "POST /v3/phone-blacklist/find": 1,
        "POST /v3/phone-blacklist/add": 1,
        "POST /v3/phone-blacklist/remove": 1,
    }


def test_unparseable_body_is_bad_request(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 1: a JSON body is required ("Bad Request" otherwise)."""
    reply = wooxy.client.post(ADD, content=b"<xml/>", headers=AUTH)
    assert reply.status_code == 400
    assert reply.json() == {"result": False, "errors": ["Bad Request"]}
    reply = wooxy.client.post(ADD, content=b"[1, 2]", headers=AUTH)
    assert reply.json() == {"result": False, "errors": ["Bad Request"]}


# -- checklist 2: at most 10 concurrent requests ------------------------------------------


def _concurrently(served: Served, n: int) -> list[httpx.Response]:
    """n requests released together (clients built first: building one is slow)."""
    url = str(served.client.base_url)
    clients = [httpx.Client(base_url=url) for _ in range(n)]
    start = threading.Barrier(n)

    def one(client: httpx.Client) -> httpx.Response:
        start.wait()
        return client.post(FIND, json={}, headers=AUTH)

    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(one, clients))
    finally:
        for client in clients:
            client.close()


def test_more_than_ten_in_flight_is_refused(server: Served) -> None:
    """CONTRACTS §2 checklist 2: "Do not send more than 10 concurrent API requests"."""
    replies = _concurrently(server.prepare(faults="latency=500ms"), 14)
    refused = [r for r in replies if r.status_code == 429]
    assert refused, "14 simultaneous requests must not all be served"
    assert len(refused) + sum(r.status_code == 200 for r in replies) == 14
    assert refused[0].json() == {"result": False, "errors": ["Too many concurrent requests"]}
    assert refused[0].headers["Retry-After"] == "1"
    counters = server.counters()
    assert counters["max_in_flight"] > 10
    assert counters["limit_violations"] == {"more than 10 concurrent requests": len(refused)}


def test_ten_in_flight_is_fine(server: Served) -> None:
    """CONTRACTS §2 checklist 2: exactly 10 concurrent requests are within the limit."""
    replies = _concurrently(server.prepare(faults="latency=100ms"), 10)
    assert {r.status_code for r in replies} == {200}
    assert server.counters()["limit_violations"] == {}


# -- checklist 3: E.164 validation ---------------------------------------------------------


def test_doc_example_number_passes_validation(empty: Served) -> None:
    """CONTRACTS §2 checklist 3: the doc's own "+15555555" is accepted (loose E.164)."""
    reply = empty.add({"phoneNumber": "+15555555", "rejectType": "invalid"})
    assert (reply.status_code, reply.json()) == (200, {"result": True})
    assert empty.numbers() == {"+15555555": "invalid"}


@pytest.mark.parametrize("bad", ["15555555", "+0155555", "+1", "+1234567890123456", "+1 555 5555"])
def test_invalid_e164_is_rejected_with_the_documented_text(empty: Served, bad: str) -> None:
    """CONTRACTS §2 checklist 3: "{phoneNumber} is not a valid E.164 phone number"."""
    reply = empty.add(rec("+14155550123"), rec(bad))
    assert reply.status_code == 400
    assert reply.json() == {"result": False, "errors": [f"{bad} is not a valid E.164 phone number"]}
    assert empty.numbers() == {}  # the whole request is refused


def test_every_invalid_number_is_named(empty: Served) -> None:
    """CONTRACTS §2 checklist 3: each invalid record gets its own error."""
    reply = empty.add(rec("123"), rec("+14155550123"), rec("abc"))
    assert reply.json()["errors"] == [
        "123 is not a valid E.164 phone number",
        "abc is not a valid E.164 phone number",
    ]


def test_missing_arguments(empty: Served) -> None:
    """CONTRACTS §2 checklist 3: "Argument {argument} required"."""
    assert empty.post(ADD, {}).json() == {"result": False, "errors": ["Argument records required"]}
    assert empty.post(ADD).json()["errors"] == ["Argument records required"]  # empty body
    assert empty.add({"rejectType": "import"}).json()["errors"] == ["Argument phoneNumber required"]
    assert empty.post(REMOVE, {}).json()["errors"] == ["Argument phoneNumber required"]


# -- checklist 4: rejectType enum ----------------------------------------------------------


def test_unknown_reject_type_on_add(empty: Served) -> None:
    """CONTRACTS §2 checklist 4: "Allowed reject types are {allowed}, but {rejectType} given"."""
    reply = empty.add(rec("+14155550123", "spam"))
    assert reply.status_code == 400
    assert reply.json() == {
        "result": False,
        "errors": [
            "Allowed reject types are import, invalid, unsubscribe, undeliverable, but spam given"
        ],
    }
    assert empty.numbers() == {}


def test_unknown_reject_type_on_find(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 4: find validates its rejectType filter the same way."""
    reply = wooxy.find(rejectType="fraud")
    assert reply.status_code == 400
    assert reply.json()["errors"][0].endswith("but fraud given")


def test_reject_type_defaults_to_import(empty: Served) -> None:
    """CONTRACTS §2 checklist 4: rejectType is optional; omitted -> "import" [INFER]."""
    empty.add(rec("+14155550123", None))
    assert empty.numbers() == {"+14155550123": "import"}


# -- checklist 5: 100 records per add ------------------------------------------------------


def test_one_hundred_records_are_accepted(empty: Served) -> None:
    """CONTRACTS §2 checklist 5: exactly 100 records is within the cap."""
    reply = empty.add(*(rec(f"+1415555{i:04d}") for i in range(100)))
    assert reply.json() == {"result": True}
    assert len(empty.numbers()) == 100
    assert empty.counters()["limit_violations"] == {}


def test_more_than_one_hundred_records_are_refused(empty: Served) -> None:
    """CONTRACTS §2 checklist 5: "Maximum count of records per transaction is 100, current {n}"."""
    reply = empty.add(*(rec(f"+1415555{i:04d}") for i in range(101)))
    assert reply.status_code == 400
    assert reply.json() == {
        "result": False,
        "errors": ["Maximum count of records per transaction is 100, current 101"],
    }
    assert empty.numbers() == {}
    counters = empty.counters()
    assert counters["limit_violations"] == {"more than 100 records per add": 1}
    assert counters["max_numbers"]["POST /v3/phone-blacklist/add"] == 101


# -- checklist 6: silent de-duplication, no update ------------------------------------------


def test_duplicates_are_ignored_and_not_updated(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 6: duplicates ignored, no error, existing rejectType kept."""
    reply = wooxy.add(
        rec("+14155550199", "undeliverable"),  # seeded as import
        rec("+14155550123", "invalid"),
        rec("+14155550123", "undeliverable"),  # duplicate inside the request
    )
    assert reply.json() == {"result": True}
    numbers = wooxy.numbers()
    assert numbers["+14155550199"] == "import"
    assert numbers["+14155550123"] == "invalid"
    assert wooxy.find().json()["totalCount"] == 4


# -- checklist 7: find ---------------------------------------------------------------------


def _fill(served: Served, n: int) -> list[str]:
    numbers = [f"+1415555{i:04d}" for i in range(n)]
    for start in range(0, n, 100):
        served.add(
            *(
                rec(x, "invalid" if i % 2 else "import")
                for i, x in enumerate(numbers[start : start + 100])
            )
        )
    return numbers


def test_find_pages_with_offset_and_limit(empty: Served) -> None:
    """CONTRACTS §2 checklist 7: offset/limit (default 20), totalCount, insertion order."""
    numbers = _fill(empty, 45)
    first = empty.find().json()
    assert (first["offset"], first["limit"], first["totalCount"]) == (0, 20, 45)
    assert [r["phoneNumber"] for r in first["data"]] == numbers[:20]
    last = empty.find(offset=40, limit=20).json()
    assert [r["phoneNumber"] for r in last["data"]] == numbers[40:]
    assert empty.find(offset=45).json()["data"] == []
    big = empty.find(limit=1000).json()  # no documented maximum
    assert len(big["data"]) == 45


def test_find_filters_by_number_and_reject_type(empty: Served) -> None:
    """CONTRACTS §2 checklist 7: phoneNumber and rejectType filters; totalCount of matches."""
    numbers = _fill(empty, 10)
    one = empty.find(phoneNumber=numbers[3]).json()
    assert one["totalCount"] == 1
    assert one["data"] == [
        {"phoneNumber": numbers[3], "rejectType": "invalid", "createdAt": NOW_TEXT}
    ]
    assert empty.find(phoneNumber=numbers[3], rejectType="import").json()["totalCount"] == 0
    assert empty.find(phoneNumber="+19999999999").json()["data"] == []
    invalid = empty.find(rejectType="invalid", limit=3).json()
    assert invalid["totalCount"] == 5
    assert [r["phoneNumber"] for r in invalid["data"]] == numbers[1:7:2]
    assert empty.counters()["numbers"]["POST /v3/phone-blacklist/find"] == 3


def test_find_phone_number_null_lists_all_but_empty_is_refused(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 7: phoneNumber null (the SDK's call) lists everything;
    "" -> "Argument phoneNumber must be a non-empty string"."""
    assert wooxy.find(phoneNumber=None).json()["totalCount"] == 3
    reply = wooxy.find(phoneNumber="")
    assert reply.status_code == 400
    assert reply.json() == {
        "result": False,
        "errors": ["Argument phoneNumber must be a non-empty string"],
    }


@pytest.mark.parametrize("body", [{"offset": -1}, {"limit": "ten"}, {"offset": True}])
def test_find_rejects_bad_paging(wooxy: Served, body: dict) -> None:
    """CONTRACTS §2 checklist 7: offset and limit are non-negative integers [INFER]."""
    reply = wooxy.find(**body)
    assert (reply.status_code, reply.json()["errors"]) == (400, ["Bad Request"])


def test_created_at_follows_the_clock(empty: Served) -> None:
    """CONTRACTS §2 checklist 7: createdAt "YYYY-MM-DD HH:MM:SS" in UTC, from the clock."""
    empty.emulator.clock = lambda: NOW + 3600
    empty.add(rec("+14155550123"))
    assert empty.find().json()["data"][0]["createdAt"] == "2026-11-18 12:06:40"


# -- checklist 8: one number per remove ----------------------------------------------------


def test_remove_one_number(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 8: remove takes {"phoneNumber"} and answers result true."""
    reply = wooxy.post(REMOVE, {"phoneNumber": "+14155550199"})
    assert (reply.status_code, reply.json()) == (200, {"result": True})
    assert "+14155550199" not in wooxy.numbers()
    counters = wooxy.counters()
    assert counters["numbers"]["POST /v3/phone-blacklist/remove"] == 1


def test_remove_absent_number_is_not_an_error(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 8: removing an unlisted number answers result true [INFER]."""
    reply = wooxy.post(REMOVE, {"phoneNumber": "+14155550000"})
    assert reply.json() == {"result": True}
    assert len(wooxy.numbers()) == 3


@pytest.mark.parametrize(
    "body",
    [{"phoneNumber": ["+14155550199", "+919876543210"]}, {"records": [rec("+14155550199")]}],
)
def test_remove_refuses_more_than_one_number(wooxy: Served, body: dict) -> None:
    """CONTRACTS §2 checklist 8: no batch remove: an array is a "Bad Request" and a violation."""
    reply = wooxy.post(REMOVE, body)
    assert (reply.status_code, reply.json()) == (400, {"result": False, "errors": ["Bad Request"]})
    assert len(wooxy.numbers()) == 3
    assert wooxy.counters()["limit_violations"] == {"more than one number per remove": 1}


def test_remove_validates_the_number(wooxy: Served) -> None:
    """CONTRACTS §2 checklist 8: the number is checked as on add [INFER]."""
    reply = wooxy.post(REMOVE, {"phoneNumber": "14155550199"})
    assert reply.json()["errors"] == ["14155550199 is not a valid E.164 phone number"]
    reply = wooxy.post(REMOVE, {"phoneNumber": ""})
    assert reply.json()["errors"] == ["Argument phoneNumber must be a non-empty string"]
    assert len(wooxy.numbers()) == 3


# -- counters, persistence, faults ---------------------------------------------------------


def test_count_numbers_per_endpoint(empty: Served) -> None:
    """Counters: numbers carried by writes and filtered reads; unfiltered reads carry none."""
    empty.add(rec("+14155550123"), rec("+14155550124"), rec("+14155550125"))
    empty.add(rec("+14155550126"))
    empty.find()
    empty.find(phoneNumber="+14155550123")
    counters = empty.counters()
    assert counters["numbers"] == {
        "POST /v3/phone-blacklist/add": 4,
        "POST /v3/phone-blacklist/find": 1,
    }
    assert counters["max_numbers"]["POST /v3/phone-blacklist/add"] == 3


def test_state_persists_and_reads_do_not_rewrite_it(tmp_path: Path) -> None:
    """Persistence: writes are saved; find (a POST) and refused writes leave the file alone."""
    path = tmp_path / "wooxy.json"
    emulator = WooxyEmulator(state_path=path, clock=lambda: NOW)
    with serve(emulator) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        client.post(ADD, json={"records": [rec("+14155550123", "undeliverable")]})
        assert "+14155550123" in json.loads(path.read_text())["entries"]
        path.write_text("MARKER")  # a rewrite would replace it
        client.post(FIND, json={})
        client.post(ADD, json={"records": [rec("+14155550123", "import")]})  # a duplicate
        client.post(REMOVE, json={"phoneNumber": "bad"})
        assert path.read_text() == "MARKER"
        client.post(REMOVE, json={"phoneNumber": "+14155550199"})
    again = WooxyEmulator(state_path=path)
    assert again.state["entries"]["+14155550123"]["rejectType"] == "undeliverable"
    assert "+14155550199" not in again.state["entries"]
    again.state["entries"]["+14155550124"] = {"rejectType": "import", "createdAt": NOW_TEXT}
    again.save()  # a direct save (tests, benchmarks) always writes
    assert "+14155550124" in json.loads(path.read_text())["entries"]


def test_sandbox_debug_endpoints(wooxy: Served) -> None:
    """Debug endpoints: /__sandbox/state and /counters show the API's effect; reset reseeds."""
    wooxy.post(REMOVE, {"phoneNumber": "+14155550199"})
    assert "+14155550199" not in wooxy.client.get("/__sandbox/state").json()["entries"]
    counters = wooxy.client.get("/__sandbox/counters").json()
    assert counters["requests"] == {"POST /v3/phone-blacklist/remove": 1}
    wooxy.client.post("/__sandbox/reset")
    assert len(wooxy.numbers()) == 3
    assert wooxy.counters()["total_requests"] == 0


def test_server_error_fault_uses_wooxys_shape(server: Served) -> None:
    """Faults: injected 5xx in Wooxy's shape, and the same seed injects the same faults."""

    def run() -> tuple[list[int], dict]:
        server.prepare(faults="5xx=0.5,seed=11")
        replies = [server.find() for _ in range(10)]
        errors = [r for r in replies if r.status_code == 500]
        assert errors and errors[0].json() == {
            "result": False,
            "errors": ["Internal server error"],
        }
        return [r.status_code for r in replies], server.counters()["faults"]

    first, faults = run()
    second, _ = run()
    assert first == second
    assert faults == {"5xx": first.count(500)}


def test_rate_limit_fault_has_retry_after(server: Served) -> None:
    """Faults: an injected 429 burst carries Retry-After and Wooxy's error shape."""
    reply = server.prepare(faults="429=1.0,retry_after=3").find()
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "3"
    assert reply.json() == {"result": False, "errors": ["Too many concurrent requests"]}
    assert server.counters()["faults"] == {"429": 1}


def test_commit_then_drop_applies_the_write(server: Served) -> None:
    """Faults: drop=1.0 applies the add, then drops the connection without an answer."""
    server.prepare(seed=False, faults="drop=1.0")
    with pytest.raises(httpx.TransportError):
        server.add(rec("+14155550123"))
    assert list(server.emulator.state["entries"]) == ["+14155550123"]
    assert server.emulator.counters.faults["drop"] == 1


def test_partial_fault_does_not_apply_to_wooxy(server: Served) -> None:
    """Faults: Wooxy reports no per-number results, so partial=1.0 changes nothing."""
    reply = server.prepare(seed=False, faults="partial=1.0").add(rec("+14155550123"))
    assert reply.json() == {"result": True}
    assert server.counters()["faults"] == {}


# -- dialects: defensible answers where the docs are silent ------------------------------


@pytest.fixture
def speak(loopback, server: Served) -> Iterator:
    """``speak(dialect, seed=True)``: a fresh emulator of that dialect on the module's
    loopback port, as a ``Served``; the module's own emulator is served again after."""
    clients: list[httpx.Client] = []

    def make(dialect: str, seed: bool = True) -> Served:
        emulator = WooxyEmulator(clock=lambda: NOW, dialect=dialect, seed=seed)
        client = httpx.Client(base_url=loopback.plug(emulator))
        clients.append(client)
        return Served(emulator, client)

    yield make
    for client in clients:
        client.close()
    loopback.plug(server.emulator)


def test_dialects_are_declared_with_notes() -> None:
    """Every dialect has a one-line note; "default" is today's behaviour."""
    assert set(WooxyEmulator.dialects) == set(WooxyEmulator.dialect_notes)
    assert set(WooxyEmulator.dialects) == {"default", "strict", "lean", "national"}
    assert WooxyEmulator.dialects["default"] == WooxyQuirks()
    assert WooxyEmulator().dialect == "default"
    with pytest.raises(ValueError, match="unknown wooxy dialect 'chatty'"):
        WooxyEmulator(dialect="chatty")


def _fill_many(served: Served, n: int) -> list[str]:
    numbers = [f"+9198{i:08d}" for i in range(n)]
    for start in range(0, n, 100):
        served.add(*(rec(x) for x in numbers[start : start + 100]))
    return numbers


@pytest.mark.parametrize(("dialect", "cap"), [("strict", 20), ("lean", 50), ("default", 100)])
def test_page_cap_is_silent(speak, dialect: str, cap: int) -> None:
    """strict/lean: find returns at most 20/50 rows whatever limit asks; the reply
    echoes the limit asked and the true totalCount."""
    served = speak(dialect, seed=False)
    numbers = _fill_many(served, 120)
    unfiltered = {"phoneNumber": None} if dialect == "strict" else {}
    reply = served.find(**unfiltered, offset=0, limit=100).json()
    assert (reply["limit"], reply["totalCount"]) == (100, 120)
    assert [r["phoneNumber"] for r in reply["data"]] == numbers[: min(cap, 100)]
    last = served.find(**unfiltered, offset=110, limit=100).json()
    assert [r["phoneNumber"] for r in last["data"]] == numbers[110:]


@pytest.mark.parametrize(
    ("dialect", "forms"),
    [
        ("default", {"omitted": True, "null": True, "empty": False}),
        ("strict", {"omitted": False, "null": True, "empty": False}),
        ("lean", {"omitted": True, "null": False, "empty": True}),
    ],
)
def test_find_without_a_number(speak, dialect: str, forms: dict[str, bool]) -> None:
    """CONTRACTS §2 "Contradiction": which "no phoneNumber" form lists the whole list;
    the others get "Argument phoneNumber required" / "... must be a non-empty string"."""
    served = speak(dialect)
    bodies = {"omitted": {}, "null": {"phoneNumber": None}, "empty": {"phoneNumber": ""}}
    for form, lists in forms.items():
        reply = served.post(FIND, bodies[form]).json()
        if lists:
            assert reply["totalCount"] == 3, form
        else:
            expected = (
                "Argument phoneNumber required"
                if form == "omitted"
                else "Argument phoneNumber must be a non-empty string"
            )
            assert reply == {"result": False, "errors": [expected]}, form


def test_strict_counts_the_whole_account_and_refuses_unlisted_removes(speak) -> None:
    """strict: totalCount is the account's even when filtered; removing an unlisted
    number is 404 "Phone not found" (a listed one is removed as usual)."""
    served = speak("strict")
    one = served.find(phoneNumber="+14155550199").json()
    assert (len(one["data"]), one["totalCount"]) == (1, 3)
    assert served.find(phoneNumber=None, rejectType="invalid").json()["totalCount"] == 3
    reply = served.post(REMOVE, {"phoneNumber": "+14155550000"})
    assert (reply.status_code, reply.json()) == (
        404,
        {"result": False, "errors": ["Phone not found"]},
    )
    assert served.post(REMOVE, {"phoneNumber": "+14155550199"}).json() == {"result": True}


def test_lean_answers_every_error_under_200(speak) -> None:
    """lean: every result-false reply, auth and throttling included, is HTTP 200;
    throttling says "Service busy, try again later" with no Retry-After."""
    served = speak("lean")
    bad_token = served.post(FIND, {}, headers={"Access-Token": "wrong"})
    assert (bad_token.status_code, bad_token.json()["errors"]) == (
        200,
        ["Invalid authorization token!"],
    )
    invalid = served.add(rec("123"))
    assert (invalid.status_code, invalid.json()["errors"]) == (
        200,
        ["123 is not a valid E.164 phone number"],
    )
    served.emulator.counters.in_flight = 10  # ten others in flight: this is the eleventh
    busy = served.find()
    served.emulator.counters.in_flight = 0
    assert (busy.status_code, busy.json()) == (
        200,
        {"result": False, "errors": ["Service busy, try again later"]},
    )
    assert "Retry-After" not in busy.headers
    served.emulator.faults = Faults(FaultSpec.parse("429=1.0,5xx=1.0"))
    assert served.find().json()["errors"] == ["Service busy, try again later"]
    served.emulator.faults = Faults(FaultSpec.parse("5xx=1.0"))
    error = served.find()
    assert (error.status_code, error.json()["errors"]) == (200, ["Internal server error"])


def test_national_seed_and_remove_as_stored(speak) -> None:
    """national: a DE account's UI import stored "015112340004" and an opt-out
    "0151 1234 0005" as written; find returns them so; remove takes a listed number as
    stored, while an unlisted non-E.164 one is still refused."""
    served = speak("national")
    rows = {r["phoneNumber"]: r["rejectType"] for r in served.find(limit=10).json()["data"]}
    assert rows["015112340004"] == "import"
    assert rows["0151 1234 0005"] == "unsubscribe"
    assert served.post(REMOVE, {"phoneNumber": "015112340004"}).json() == {"result": True}
    assert "015112340004" not in served.numbers()
    again = served.post(REMOVE, {"phoneNumber": "015112340004"}).json()
    assert again == {"result": False, "errors": ["015112340004 is not a valid E.164 phone number"]}
    assert served.add(rec("015112340009")).status_code == 400  # the API still wants E.164
