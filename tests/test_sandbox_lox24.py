"""The LOX24 emulator over real loopback HTTP, point by point against CONTRACTS.md §5."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from reconciler.sandbox import emulator_class
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.lox24 import PAGE_SIZE, Lox24Emulator, canonical_phone

TOKEN = "1234567:sandbox-lox24-key"
AUTH = {"X-LOX24-AUTH-TOKEN": TOKEN}
LD = {"Accept": "application/ld+json"}
PLAIN = {"Accept": "application/json"}
# one TLS context for all clients: building one per client costs ~90 ms (loopback is http)
TLS = ssl.create_default_context()
TEXT_401 = "Client ID or API key isn’t active or invalid!"
TEXT_429 = (
    "IP address was temporary blocked, because during short time from it was sent many "
    "request with invalid credentials. Please wait and try later."
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Sandbox:
    emulator: Lox24Emulator
    client: httpx.Client  # good credentials, Accept: application/ld+json
    anon: httpx.Client  # no credentials at all
    clock: Clock

    def counters(self) -> dict:
        return self.client.get("/__sandbox/counters").json()

    def use_faults(self, spec: str | None) -> None:
        """Fault spec for what follows (a fresh sandbox: state, counters, request ids)."""
        self.emulator.faults = Faults(FaultSpec.parse(spec))
        self.emulator.reset()


@pytest.fixture
def lox(loopback, tmp_path) -> Iterator[Sandbox]:
    # Every test starts from a fresh, seeded emulator on the module's loopback server.
    clock = Clock()
    emulator = Lox24Emulator(state_path=tmp_path / "state.json", clock=clock)
    url = loopback.plug(emulator)
    with (
        httpx.Client(base_url=url, headers={**AUTH, **LD}, verify=TLS) as client,
        httpx.Client(base_url=url, headers=LD, verify=TLS) as anon,
    ):
        yield Sandbox(emulator, client, anon, clock)


# -- 1. auth ------------------------------------------------------------------------


def test_auth_combined_token_header(lox):
    """CONTRACTS §5 checklist 1: `X-LOX24-AUTH-TOKEN: <clientNumber>:<apiKey>` is accepted."""
    client = lox.client
    assert client.get("/groups").status_code == 200


def test_auth_legacy_two_headers(lox):
    """CONTRACTS §5 checklist 1: the legacy X-LOX24-CLIENT-ID + X-LOX24-AUTH-TOKEN form."""
    legacy = {"X-LOX24-CLIENT-ID": "1234567", "X-LOX24-AUTH-TOKEN": "sandbox-lox24-key"}
    resp = lox.anon.get("/groups", headers=legacy)
    assert resp.status_code == 200
    wrong = {"X-LOX24-CLIENT-ID": "7654321", "X-LOX24-AUTH-TOKEN": "sandbox-lox24-key"}
    assert lox.anon.get("/groups", headers=wrong).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"X-LOX24-AUTH-TOKEN": "1234567:wrong"}])
def test_auth_failure_is_401_hydra_error(lox, headers):
    """CONTRACTS §5 checklist 2: 401 "Client ID or API key isn’t active or invalid!"."""
    resp = lox.anon.get("/groups/7116/phones", headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {
        "@context": "/contexts/Error",
        "@type": "hydra:Error",
        "hydra:title": "An error occurred",
        "hydra:description": TEXT_401,
    }
    assert lox.counters()["auth_failures"] == 1


def test_inactive_account_is_403(lox):
    """CONTRACTS §5 checklist 2: 403 "Account isn’t activated. Please wait or contact to
    support!" (good credentials, so it does not count towards the lockout [INFER])."""
    lox.emulator.account_active = False
    try:
        for _ in range(5):
            resp = lox.client.get("/groups")
            assert resp.status_code == 403
        assert resp.json()["hydra:description"] == (
            "Account isn’t activated. Please wait or contact to support!"
        )
    finally:
        del lox.emulator.account_active
    assert lox.client.get("/groups").status_code == 200


def test_repeated_bad_credential_is_counted(lox):
    """CONTRACTS §5 checklist 2: the base counts a credential re-sent after its 401."""
    bad = {"X-LOX24-AUTH-TOKEN": "1234567:wrong"}
    for _ in range(2):
        lox.anon.get("/groups", headers=bad)
    assert lox.counters()["repeated_after_auth_failure"] == 1


# -- 2. the bad-auth lockout ------------------------------------------------------------


def test_lockout_after_more_than_three_bad_auth_requests(lox):
    """CONTRACTS §5 checklist 2: >3 bad-auth requests in a minute -> 429 for 10 minutes,
    even with good credentials, with Retry-After; it lifts after 10 minutes."""
    emulator, client, clock = lox.emulator, lox.client, lox.clock
    bad = {"X-LOX24-AUTH-TOKEN": "1234567:wrong"}
    for _ in range(4):
        clock.now += 5
        assert lox.anon.get("/groups", headers=bad).status_code == 401
    resp = client.get("/groups")  # good credentials
    assert resp.status_code == 429
    assert resp.json()["hydra:description"] == TEXT_429
    assert resp.headers["Retry-After"] == "600"
    assert resp.headers["X-LOX24-REQUEST-ID"]
    clock.now += 599
    resp = client.get("/groups")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    clock.now += 1
    assert client.get("/groups").status_code == 200
    assert lox.counters()["limit_violations"] == {
        "more than 3 bad-auth requests within a minute (IP locked out)": 1
    }
    assert emulator.counters.auth_failures == 4


def test_three_bad_auth_requests_or_slow_ones_do_not_lock(lox):
    """CONTRACTS §5 checklist 2: three bad requests, or four spread over >1 minute, pass."""
    client, clock = lox.client, lox.clock
    bad = {"X-LOX24-AUTH-TOKEN": "1234567:wrong"}
    for _ in range(3):
        lox.anon.get("/groups", headers=bad)
    assert client.get("/groups").status_code == 200
    clock.now += 61
    for _ in range(4):
        clock.now += 20.5  # the 4th comes 61.5 s after the 1st: never 4 in a minute
        assert lox.anon.get("/groups", headers=bad).status_code == 401
    assert client.get("/groups").status_code == 200


# -- 3. content negotiation and pages ------------------------------------------------------


def test_seeded_group_as_jsonld_collection(lox):
    """CONTRACTS §5 checklist 3 + seed: JSON-LD collection of group 7116's three phones."""
    client = lox.client
    body = client.get("/groups/7116/phones").json()
    assert body["@context"] == "/contexts/Phone"
    assert body["@id"] == "/groups/7116/phones"
    assert body["@type"] == "hydra:Collection"
    assert body["hydra:totalItems"] == 3
    assert body["hydra:view"] == {
        "@id": "/groups/7116/phones?page=1",
        "@type": "hydra:PartialCollectionView",
        "hydra:first": "/groups/7116/phones?page=1",
        "hydra:last": "/groups/7116/phones?page=1",
    }
    phones = body["hydra:member"]
    assert [p["phone"] for p in phones] == ["+4915112345601", "+4915112345602", "+919876543210"]
    first = phones[0]
    assert first["@id"] == f"/phones/{first['id']}" and first["@type"] == "Phone"
    assert isinstance(first["id"], str)
    assert first["unsubscribed_at"] is not None and first["unsubscribe_reason"] == 1
    assert all(p["unsubscribed_at"] is None for p in phones[1:])


def test_plain_json_collection_is_a_bare_array(lox):
    """CONTRACTS §5 checklist 3: `Accept: application/json` gives a bare array."""
    client = lox.client
    resp = client.get("/groups/7116/phones", headers=PLAIN)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, list) and len(body) == 3
    assert "@id" not in body[0] and body[0]["phone"] == "+4915112345601"


def test_pages_of_thirty_with_hydra_links(lox):
    """CONTRACTS §5 checklist 3: fixed page size 30, `?page=N`, first/last/previous/next."""
    emulator, client = lox.emulator, lox.client
    emulator.add_phones(7200, [f"+49151200{i:05d}" for i in range(65)])
    body = client.get("/groups/7200/phones", params={"page": 2}).json()
    assert PAGE_SIZE == 30
    assert body["hydra:totalItems"] == 65 and len(body["hydra:member"]) == 30
    assert body["hydra:member"][0]["phone"] == "+4915120000030"
    assert body["hydra:view"] == {
        "@id": "/groups/7200/phones?page=2",
        "@type": "hydra:PartialCollectionView",
        "hydra:first": "/groups/7200/phones?page=1",
        "hydra:last": "/groups/7200/phones?page=3",
        "hydra:previous": "/groups/7200/phones?page=1",
        "hydra:next": "/groups/7200/phones?page=3",
    }
    last = client.get("/groups/7200/phones?page=3").json()
    assert len(last["hydra:member"]) == 5 and "hydra:next" not in last["hydra:view"]
    assert client.get("/groups/7200/phones?page=9").json()["hydra:member"] == []


@pytest.mark.parametrize("page", ["0", "-1", "abc"])
def test_bad_page_is_400(lox, page):
    """CONTRACTS §5 checklist 3: `page` is an integer ≥ 1; anything else is 400."""
    client = lox.client
    resp = client.get("/groups/7116/phones", params={"page": page})
    assert resp.status_code == 400
    assert resp.json()["hydra:description"] == "Invalid input"


def test_every_response_has_a_request_id_from_a_seeded_rng(lox):
    """CONTRACTS §5 checklist 8: X-LOX24-REQUEST-ID, 32 alphanumerics, reproducible."""
    client = lox.client
    seen = []
    for _ in range(2):
        lox.use_faults("seed=3")
        seen.append(
            [
                client.get("/groups").headers["X-LOX24-REQUEST-ID"],
                client.delete("/phones/1").headers["X-LOX24-REQUEST-ID"],
                lox.anon.get("/groups").headers["X-LOX24-REQUEST-ID"],
                client.delete("/groups/7200").headers["X-LOX24-REQUEST-ID"],
            ]
        )
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", i) for i in seen[0])
    assert len(set(seen[0])) == 4
    assert seen[0] == seen[1]


# -- 4. groups ----------------------------------------------------------------------


def test_groups_crud_and_count_items(lox):
    """CONTRACTS §5 checklist 4: groups CRUD with count_items in sync."""
    client = lox.client
    listing = client.get("/groups").json()
    assert {g["id"]: g["count_items"] for g in listing["hydra:member"]} == {7116: 3, 7200: 0}
    created = client.post("/groups", json={"name": "new", "description": "d"})
    assert created.status_code == 201
    group = created.json()
    assert group["@id"] == f"/groups/{group['id']}" and group["count_items"] == 0
    gid = group["id"]
    client.post(f"/groups/{gid}/phones", json={"phone": "+4915100000001"})
    assert client.get(f"/groups/{gid}").json()["count_items"] == 1
    edited = client.put(f"/groups/{gid}", json={"name": "renamed"})
    assert edited.status_code == 200 and edited.json()["name"] == "renamed"
    assert edited.json()["description"] == "d"
    assert client.get("/groups/999999").status_code == 404


def test_group_delete_cascades_to_its_phones(lox):
    """CONTRACTS §5 checklist 4: "Delete the group together with all the associated phone
    numbers." """
    emulator, client = lox.emulator, lox.client
    ids = [p["id"] for p in emulator.phones_of(7116)]
    assert client.delete("/groups/7116").status_code == 204
    assert client.get("/groups/7116").status_code == 404
    assert client.get("/groups/7116/phones").status_code == 404
    for pid in ids:
        assert client.delete(f"/phones/{pid}").status_code == 404
    assert not set(ids) & set(emulator.state["phone_group"])


def test_group_limits_are_422_violations(lox):
    """CONTRACTS §5 checklist 6: group name 1–50, description ≤255."""
    client = lox.client
    resp = client.post("/groups", json={"name": "x" * 51, "description": "y" * 256})
    assert resp.status_code == 422
    body = resp.json()
    assert body["@type"] == "ConstraintViolationList"
    assert [v["propertyPath"] for v in body["violations"]] == ["name", "description"]
    assert body["violations"][0]["message"] == (
        "This value is too long. It should have 50 characters or less."
    )
    assert client.post("/groups", json={"description": "no name"}).status_code == 422
    assert client.post("/groups", json=["not", "an", "object"]).status_code == 400
    violations = lox.counters()["limit_violations"]
    assert violations["group name longer than 50 characters"] == 1
    assert violations["group description longer than 255 characters"] == 1


# -- 5. phones -----------------------------------------------------------------------


def test_create_one_phone(lox):
    """CONTRACTS §5 checklist 5: POST /groups/{id}/phones creates one phone (id a string)."""
    emulator, client = lox.emulator, lox.client
    resp = client.post("/groups/7200/phones", json={"phone": "+4917663804817", "a": "o2"})
    assert resp.status_code == 201
    body = resp.json()
    assert body["@context"] == "/contexts/Phone" and isinstance(body["id"], str)
    assert body["phone"] == "+4917663804817" and body["a"] == "o2"
    assert emulator.phones_of(7200)[0]["id"] == body["id"]
    assert lox.counters()["numbers"] == {"POST /groups/{id}/phones": 1}
    assert client.post("/groups/424242/phones", json={"phone": "+49"}).status_code == 404


def test_batch_has_per_item_status(lox):
    """CONTRACTS §5 checklist 5 + 6 (seed page): 201 with a {status, body} per item;
    a too-long phone is a 422 item and a non-object a 400 item, the rest are stored."""
    emulator, client = lox.emulator, lox.client
    items = [{"phone": "+4915100000001"}, {"phone": "1" * 31}, "garbage", {"phone": "+49152"}]
    resp = client.post("/groups/7200/phones/batch", json=items)
    assert resp.status_code == 201
    body = resp.json()
    assert body["@context"] == "/contexts/Phone"
    assert body["@id"] == "/groups/7200/phones/batch"
    assert body["@type"] == "hydra:Collection"
    assert body["hydra:totalItems"] == 4
    statuses = [m["status"] for m in body["hydra:member"]]
    assert statuses == [201, 422, 400, 201]
    assert body["hydra:member"][0]["body"]["phone"] == "+4915100000001"
    assert body["hydra:member"][1]["body"]["violations"] == [
        {
            "propertyPath": "phone",
            "message": "This value is too long. It should have 30 characters or less.",
        }
    ]
    assert body["hydra:member"][2]["body"]["hydra:description"] == "Invalid input"
    assert [p["phone"] for p in emulator.phones_of(7200)] == ["+4915100000001", "+49152"]
    c = lox.counters()
    assert c["numbers"] == {"POST /groups/{id}/phones/batch": 4}
    assert c["max_numbers"] == {"POST /groups/{id}/phones/batch": 4}
    assert c["limit_violations"] == {"phone longer than 30 characters": 1}


def test_batch_body_must_be_an_array(lox):
    """CONTRACTS §5 checklist 5: the batch body is an "Array<object>"; else 400."""
    client = lox.client
    resp = client.post("/groups/7200/phones/batch", json={"phone": "+4915100000001"})
    assert resp.status_code == 400
    assert client.post("/groups/7200/phones/batch", content=b"{not json").status_code == 400
    assert client.post("/groups/1/phones/batch", json=[]).status_code == 404


def test_batch_has_no_size_limit_and_counts_numbers(lox):
    """CONTRACTS §5 checklist 5: no batch limit is documented; numbers are counted."""
    emulator, client = lox.emulator, lox.client
    items = [{"phone": f"+49151300{i:05d}"} for i in range(500)]
    resp = client.post("/groups/7200/phones/batch", json=items)
    assert [m["status"] for m in resp.json()["hydra:member"]] == [201] * 500
    assert len(emulator.phones_of(7200)) == 500
    assert lox.counters()["max_numbers"]["POST /groups/{id}/phones/batch"] == 500


def test_duplicates_in_a_group_are_allowed(lox):
    """CONTRACTS §5 "Duplicates within a group: not documented" -> [INFER] allowed."""
    emulator, client = lox.emulator, lox.client
    client.post("/groups/7116/phones/batch", json=[{"phone": "+919876543210"}])
    numbers = [p["phone"] for p in emulator.phones_of(7116)]
    assert numbers.count("+919876543210") == 2


def test_phone_limits(lox):
    """CONTRACTS §5 checklist 6: a–e ≤1530, callback_data ≤36, phone required."""
    client = lox.client
    item = {"phone": "+4915100000001", "a": "x" * 1531, "callback_data": "c" * 37}
    resp = client.post("/groups/7200/phones", json=item)
    assert resp.status_code == 422
    paths = [v["propertyPath"] for v in resp.json()["violations"]]
    assert paths == ["a", "callback_data"]
    ok = {"phone": "+4915100000001", "e": "x" * 1530, "callback_data": "c" * 36}
    assert client.post("/groups/7200/phones", json=ok).status_code == 201
    assert client.post("/groups/7200/phones", json={"a": "no phone"}).status_code == 422
    assert client.post("/groups/7200/phones", json={"phone": 491}).status_code == 400


def test_edit_and_delete_phone_by_id(lox):
    """CONTRACTS §5 checklist 5: PUT/DELETE /phones/{id}: 200/204, 404 for unknown ids."""
    emulator, client = lox.emulator, lox.client
    pid = emulator.phones_of(7116)[1]["id"]
    resp = client.put(f"/phones/{pid}", json={"b": "note"})
    assert resp.status_code == 200
    assert resp.json()["b"] == "note" and resp.json()["phone"] == "+4915112345602"
    assert client.put(f"/phones/{pid}", json={"phone": "9" * 31}).status_code == 422
    assert client.put("/phones/1", json={"b": "x"}).status_code == 404
    resp = client.delete(f"/phones/{pid}")
    assert resp.status_code == 204 and resp.content == b""
    assert client.delete(f"/phones/{pid}").status_code == 404
    assert client.delete("/phones/not-a-number").status_code == 404
    assert len(emulator.phones_of(7116)) == 2
    c = lox.counters()
    assert c["requests"]["DELETE /phones/{id}"] == 3
    assert c["numbers"]["DELETE /phones/{id}"] == 2  # the bad id matched no route


def test_unknown_path_and_method(lox):
    """CONTRACTS §5 "Resource not found": unknown paths are 404, known paths with a
    method they do not take are 405 [INFER]."""
    client = lox.client
    resp = client.get("/nothing/here")
    assert resp.status_code == 404 and resp.json()["hydra:description"] == "Resource not found"
    assert client.get("/phones/9000001").status_code == 405


# -- 7. blocked numbers -------------------------------------------------------------------


def test_blocked_numbers_seed_filters_and_member_key(lox):
    """CONTRACTS §5 checklist 7: seeded entries, filters `number` and `type`, and the
    newer docs' "member" key next to hydra:totalItems."""
    client = lox.client
    body = client.get("/blocked_numbers").json()
    assert body["hydra:totalItems"] == 2
    assert [(m["number"], m["type"]) for m in body["member"]] == [
        ("+4915112345690", 1),
        ("+4915112345691", 2),
    ]
    only = client.get("/blocked_numbers", params={"number": "+4915112345691"}).json()
    assert [m["type"] for m in only["member"]] == [2]
    typed = client.get("/blocked_numbers", params={"type": "1"}).json()
    assert [m["number"] for m in typed["member"]] == ["+4915112345690"]
    assert typed["hydra:view"]["@id"] == "/blocked_numbers?type=1&page=1"
    assert lox.counters()["numbers"] == {"GET /blocked_numbers": 1}


def test_blocked_numbers_add_conflict_pattern_delete(lox):
    """CONTRACTS §5 checklist 7: pattern ^\\+[0-9]{4,20}$, 409 on duplicate, delete by id."""
    client = lox.client
    resp = client.post("/blocked_numbers", json={"number": "+491701234567"})
    assert resp.status_code == 201
    created = resp.json()
    assert created["type"] == 1 and created["number"] == "+491701234567"
    dup = client.post("/blocked_numbers", json={"number": "+491701234567"})
    assert dup.status_code == 409
    assert dup.json()["hydra:description"] == "Conflict - Entity already exists"
    bad = client.post("/blocked_numbers", json={"number": "491701234567"})
    assert bad.status_code == 422
    assert client.post("/blocked_numbers", json={}).status_code == 400
    assert client.delete(f"/blocked_numbers/{created['id']}").status_code == 204
    assert client.delete(f"/blocked_numbers/{created['id']}").status_code == 404
    assert client.post("/blocked_numbers", json={"number": "+491701234567"}).status_code == 201
    assert lox.counters()["limit_violations"] == {"blocked number not matching ^\\+[0-9]{4,20}$": 1}


# -- faults, persistence, counters ---------------------------------------------------------


def test_partial_failure_fault_is_a_500_item_not_stored(lox):
    """CONTRACTS §5 checklist 5 (per-item status) + faults: `partial` fails items with a
    500 Hydra error and does not store them; same seed, same failures."""
    emulator, client = lox.emulator, lox.client
    runs = []
    for _ in range(2):
        lox.use_faults("partial=0.3,seed=11")
        items = [{"phone": f"+49151400{i:05d}"} for i in range(40)]
        body = client.post("/groups/7200/phones/batch", json=items).json()
        statuses = [m["status"] for m in body["hydra:member"]]
        failed = [m for m in body["hydra:member"] if m["status"] == 500]
        assert failed and failed[0]["body"]["@type"] == "hydra:Error"
        assert len(emulator.phones_of(7200)) == statuses.count(201)
        assert lox.counters()["faults"] == {"partial": len(failed)}
        runs.append(statuses)
    assert runs[0] == runs[1]


def test_server_error_and_429_faults_in_lox24_shape(lox):
    """Faults: 5xx and 429 answers carry the Hydra error shape, 429 with Retry-After;
    an injected 429 is a throttle, never in the words of the IP lockout."""
    client = lox.client
    lox.use_faults("5xx=1.0")
    resp = client.get("/groups")
    assert resp.status_code == 500 and resp.json()["@type"] == "hydra:Error"
    assert resp.headers["X-LOX24-REQUEST-ID"]
    lox.use_faults("429=1.0,retry_after=7")
    resp = client.get("/groups")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert resp.json()["hydra:description"] == "Too Many Requests"
    assert lox.counters()["faults"] == {"429": 1}


def test_state_persists_and_resets(lox):
    """Sandbox: state survives a restart (state_path); POST /__sandbox/reset reseeds."""
    client = lox.client
    client.post("/groups/7200/phones", json={"phone": "+4915100000009"})
    restarted = Lox24Emulator(state_path=lox.emulator.state_path)
    assert [p["phone"] for p in restarted.phones_of(7200)] == ["+4915100000009"]
    client.post("/__sandbox/reset")
    assert client.get("/groups/7200/phones").json()["hydra:totalItems"] == 0
    assert client.get("/__sandbox/state").json()["groups"]["7116"]["name"] == "fraud-callers"


def test_unseeded_state_is_empty(lox):
    """Sandbox: seed=False starts with no groups and no blocked numbers."""
    lox.emulator.reset(seed=False)
    assert lox.client.get("/groups").json()["hydra:totalItems"] == 0
    assert lox.client.get("/blocked_numbers").json()["hydra:totalItems"] == 0


def test_endpoint_labels_are_templates(lox):
    """Counters: endpoint labels use path templates, never raw ids."""
    client = lox.client
    client.get("/groups/7116/phones")
    client.get("/groups/7116")
    assert set(lox.counters()["requests"]) == {"GET /groups/{id}/phones", "GET /groups/{id}"}


# -- dialects: the defensible readings of what the docs leave open -------------------------


@pytest.fixture
def dialect(loopback, tmp_path):
    """``dialect(name)``: a fresh emulator of that dialect, and clients as in ``lox``."""
    made = []

    def build(name: str) -> Sandbox:
        clock = Clock()
        emulator = Lox24Emulator(state_path=tmp_path / f"{name}.json", clock=clock, dialect=name)
        url = loopback.plug(emulator)
        client = httpx.Client(base_url=url, headers={**AUTH, **LD}, verify=TLS)
        anon = httpx.Client(base_url=url, headers=LD, verify=TLS)
        made.extend((client, anon))
        return Sandbox(emulator, client, anon, clock)

    yield build
    for client in made:
        client.close()


def test_dialects_are_declared_with_a_note_each():
    """Emulator seam: every dialect has options and a one-line note; unknown is refused."""
    cls = emulator_class("lox24")
    assert set(cls.dialects) == set(cls.dialect_notes) == {"default", "modern", "lean", "plain"}
    assert cls.dialects["default"] == cls.dialects["default"].__class__()  # today's answers
    with pytest.raises(ValueError, match="unknown lox24 dialect"):
        Lox24Emulator(dialect="nope", persist=False)


@pytest.mark.parametrize(("name", "size"), [("default", 30), ("modern", 50), ("lean", 10)])
def test_page_size_per_dialect(dialect, name, size):
    """[INFER] "API Platform default is 30 per page": 50 or 10 are as defensible."""
    lox = dialect(name)
    lox.emulator.add_phones(7200, [f"+49151200{i:05d}" for i in range(65)])
    body = lox.client.get("/groups/7200/phones").json()
    members = body.get("hydra:member", body.get("member"))
    assert len(members) == size


def test_modern_members_absolute_links_and_409(dialect):
    """Doc-version quirk "member"; absolute hydra links on the request's host; a
    duplicate refused with Doc 409 "Conflict - Entity already exists"."""
    lox = dialect("modern")
    lox.emulator.add_phones(7200, [f"+49151200{i:05d}" for i in range(60)])
    body = lox.client.get("/groups/7200/phones").json()
    assert "hydra:member" not in body and len(body["member"]) == 50
    host = str(lox.client.base_url).rstrip("/")
    assert body["hydra:view"]["hydra:next"] == f"{host}/groups/7200/phones?page=2"
    items = [{"phone": "+4915120000000"}, {"phone": "0151 20000061"}, {"phone": "0151 20000061"}]
    reply = lox.client.post("/groups/7200/phones/batch", json=items).json()
    assert [m["status"] for m in reply["member"]] == [409, 201, 409]
    assert reply["member"][0]["body"]["hydra:description"] == "Conflict - Entity already exists"
    assert reply["member"][1]["body"]["phone"] == "+4915120000061"  # stored as E.164
    single = lox.client.post("/groups/7200/phones", json={"phone": "+4915120000001"})
    assert single.status_code == 409


def test_modern_wrong_token_is_403_and_lockout_in_detail(dialect):
    lox = dialect("modern")
    bad = {"X-LOX24-AUTH-TOKEN": "1234567:wrong"}
    for _ in range(4):
        lox.clock.now += 5
        resp = lox.anon.get("/groups", headers=bad)
        assert resp.status_code == 403 and resp.json()["hydra:description"] == TEXT_401
    resp = lox.client.get("/groups")
    assert resp.status_code == 429
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["detail"] == TEXT_429 and resp.headers["Retry-After"] == "600"


def test_lean_partial_pagination_and_national_storage(dialect):
    """No hydra:totalItems or hydra:last; hydra:next whenever a page is full (even the
    last one); German phones stored national, others as E.164."""
    lox = dialect("lean")
    lox.client.post(
        "/groups/7200/phones/batch",
        json=[{"phone": f"+49151200{i:05d}"} for i in range(19)] + [{"phone": "+447911123456"}],
    )
    first = lox.client.get("/groups/7200/phones").json()
    assert "hydra:totalItems" not in first and "hydra:last" not in first["hydra:view"]
    assert first["hydra:member"][0]["phone"] == "015120000000"
    second = lox.client.get("/groups/7200/phones?page=2").json()
    assert second["hydra:member"][-1]["phone"] == "+447911123456"
    assert second["hydra:view"]["hydra:next"] == "/groups/7200/phones?page=3"
    third = lox.client.get("/groups/7200/phones?page=3").json()
    assert third["hydra:member"] == [] and "hydra:next" not in third["hydra:view"]


def test_lean_lockout_is_text_plain(dialect):
    lox = dialect("lean")
    for _ in range(4):
        lox.anon.get("/groups", headers={"X-LOX24-AUTH-TOKEN": "1234567:wrong"})
    resp = lox.client.get("/groups")
    assert resp.status_code == 429 and resp.text == TEXT_429
    assert resp.headers["content-type"].startswith("text/plain")


def test_plain_answers_bare_arrays_even_to_ld_json(dialect):
    """Doc: plain JSON collections are bare arrays; this dialect answers so whatever the
    Accept header: no Hydra metadata, paged by ?page=N until an empty page."""
    lox = dialect("plain")
    lox.emulator.add_phones(7200, [f"+49151200{i:05d}" for i in range(31)])
    page = lox.client.get("/groups/7200/phones").json()
    assert isinstance(page, list) and len(page) == 30 and "@id" not in page[0]
    assert len(lox.client.get("/groups/7200/phones?page=2").json()) == 1
    assert lox.client.get("/groups/7200/phones?page=3").json() == []
    reply = lox.client.post("/groups/7200/phones/batch", json=[{"phone": "+4915100000001"}])
    assert reply.status_code == 201 and isinstance(reply.json(), list)
    assert reply.json()[0]["status"] == 201 and "@id" not in reply.json()[0]["body"]
    missing = lox.client.get("/groups/1/phones").json()
    assert missing == {
        "type": "/errors/404",
        "title": "An error occurred",
        "detail": "Resource not found",
    }


def test_plain_lockout_has_no_body(dialect):
    lox = dialect("plain")
    for _ in range(4):
        lox.anon.get("/groups", headers={"X-LOX24-AUTH-TOKEN": "1234567:wrong"})
    resp = lox.client.get("/groups")
    assert (resp.status_code, resp.content) == (429, b"")
    assert resp.headers["Retry-After"] == "600"


@pytest.mark.parametrize(
    ("name", "status"), [("default", 500), ("modern", 503), ("lean", 423), ("plain", 418)]
)
def test_injected_item_failures_have_the_dialects_status(dialect, name, status):
    lox = dialect(name)
    lox.emulator.faults = Faults(FaultSpec.parse("partial=1.0,reason=Queue full"))
    reply = lox.client.post("/groups/7200/phones/batch", json=[{"phone": "+4915100000001"}]).json()
    [item] = reply if isinstance(reply, list) else reply.get("hydra:member", reply.get("member"))
    assert item["status"] == status
    body = item["body"]
    assert body.get("hydra:description", body.get("detail")) == "Queue full"
    assert lox.emulator.phones_of(7200) == []


@pytest.mark.parametrize(("name", "status"), [("default", None), ("modern", 503), ("lean", 423)])
def test_injected_delete_failures_have_the_dialects_status(dialect, name, status):
    lox = dialect(name)
    pid = lox.emulator.phones_of(7116)[0]["id"]
    lox.emulator.faults = Faults(FaultSpec.parse("partial=1.0"))
    resp = lox.client.delete(f"/phones/{pid}")
    assert resp.status_code == (status or 204)
    assert len(lox.emulator.phones_of(7116)) == (3 if status else 2)


def test_canonical_phone_reads_the_documented_forms():
    """Doc (/sms): +491701234567, 00491701234567, 491701234567, national 01701234567."""
    for raw in ("+491701234567", "00491701234567", "491701234567", "01701234567", "0170 123-4567"):
        assert canonical_phone(raw) == "+491701234567"


def test_the_lockout_outlives_the_emulator_instance(tmp_path):
    """Each `blocklist plan` is a new process with a new in-process emulator on the same
    state file: bad-auth GETs of earlier runs must count, and the lockout hold."""
    clock = Clock()
    path = tmp_path / "lox24.json"
    bad = httpx.Request(
        "GET", "http://sandbox.invalid/groups", headers={"X-LOX24-AUTH-TOKEN": "1:x"}
    )
    for _ in range(4):
        clock.now += 5
        assert Lox24Emulator(state_path=path, clock=clock).process(bad).status_code == 401
    good = httpx.Request("GET", "http://sandbox.invalid/groups", headers=AUTH)
    assert Lox24Emulator(state_path=path, clock=clock).process(good).status_code == 429
