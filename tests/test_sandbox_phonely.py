"""The Phonely emulator over real loopback HTTP, point by point against CONTRACTS.md §3."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from loopback import Loopback, module_fixture

from reconciler.sandbox import emulator_class
from reconciler.sandbox.phonely import PhonelyEmulator, number_key

KEY = "sandbox-phonely-key"
UID = "sandbox-uid"
PATH = "/api/agent-block-list"
AUTH = {"X-Authorization": KEY}

BAD_SEARCH = {
    "error": "Bad Request",
    "message": "Invalid search params (missing uid or agentId)",
}
BAD_BODY = {"error": "Bad Request", "message": "Invalid request body or numbers parameter"}
UNAUTHORIZED = {
    "error": "Unauthorized",
    "message": "Invalid or missing API key, or insufficient permissions",
}

# built once: a new client would otherwise load the CA bundle (~40 ms) for plain http
TLS = ssl.create_default_context()


LOOPBACK = Loopback("phonely")
_loopback = module_fixture(LOOPBACK)  # one server for the module; tests plug emulators in


@contextmanager
def running(emulator: PhonelyEmulator | None = None, **kwargs) -> Iterator[tuple]:
    emulator = emulator or PhonelyEmulator(**kwargs)
    url = LOOPBACK.plug(emulator)
    with httpx.Client(base_url=url, timeout=5, verify=TLS) as client:
        yield emulator, client


def list_of(client: httpx.Client, agent: str = "support-bot") -> list[str]:
    resp = client.get(PATH, params={"uid": UID, "agentId": agent}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    return resp.json()["blockList"]


def write(
    client: httpx.Client, method: str, numbers: object, agent: str = "support-bot", **extra
) -> httpx.Response:
    body = {"uid": UID, "agentId": agent, "numbers": numbers, **extra}
    return client.request(
        method,
        PATH,
        content=json.dumps(body),
        headers={**AUTH, "Content-Type": "application/json"},
    )


def counters(client: httpx.Client) -> dict:
    return client.get("/__sandbox/counters").json()


def test_registered_under_its_type_name():
    """The registry finds the emulator by type name."""
    assert emulator_class("phonely") is PhonelyEmulator
    assert PhonelyEmulator.credentials == {"api_key": KEY, "uid": UID}


def test_seeded_list_of_support_bot():
    """CONTRACTS §3 checklist 2: GET returns {"blockList": [...]}, seeded, no paging."""
    with running() as (_, client):
        resp = client.get(PATH, params={"uid": UID, "agentId": "support-bot"}, headers=AUTH)
        assert resp.status_code == 200
        assert resp.json() == {"blockList": ["+14155550142", "+919876543210"]}


def test_unseeded_and_unknown_agent_lists_are_empty():
    """CONTRACTS §3 checklist 2: per-agent storage; an agent without a list has none."""
    with running(seed=False) as (_, client):
        assert list_of(client) == []
    with running() as (_, client):
        assert list_of(client, "no-such-agent") == []


@pytest.mark.parametrize(
    "params", [{}, {"uid": UID}, {"agentId": "support-bot"}, {"uid": "", "agentId": "x"}]
)
def test_get_without_uid_or_agent_id_is_400(params):
    """CONTRACTS §3 checklist 1: GET presence checks, "Invalid search params" wording."""
    with running() as (_, client):
        resp = client.get(PATH, params=params, headers=AUTH)
        assert resp.status_code == 400
        assert resp.json() == BAD_SEARCH


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Authorization": "wrong"}, {"X-Authorization": f"Bearer {KEY}"}],
    ids=["missing", "wrong", "bearer-prefix"],
)
def test_get_with_bad_key_is_401(headers):
    """CONTRACTS §3 checklist 1: X-Authorization carries the raw key; anything else 401."""
    with running() as (_, client):
        resp = client.get(PATH, params={"uid": UID, "agentId": "support-bot"}, headers=headers)
        assert resp.status_code == 401
        assert resp.json() == UNAUTHORIZED
        assert counters(client)["auth_failures"] == 1


def test_another_accounts_uid_is_401_on_every_method():
    """CONTRACTS §3 Authentication: uid names the account ([INFER] a foreign uid -> 401)."""
    with running() as (emulator, client):
        resp = client.get(PATH, params={"uid": "other", "agentId": "support-bot"}, headers=AUTH)
        assert (resp.status_code, resp.json()) == (401, UNAUTHORIZED)
        for method in ("POST", "DELETE"):
            resp = write(client, method, ["+14155550100"], uid="other")
            assert (resp.status_code, resp.json()) == (401, UNAUTHORIZED)
        assert counters(client)["auth_failures"] == 3
        assert emulator.state["agents"]["support-bot"] == {
            "14155550142": "+14155550142",
            "919876543210": "+919876543210",
        }


def test_bad_key_on_writes_is_401_and_changes_nothing():
    """CONTRACTS §3 checklist 1: X-Authorization checked on POST and DELETE too."""
    with running() as (_, client):
        for method in ("POST", "DELETE"):
            resp = client.request(
                method,
                PATH,
                json={"uid": UID, "agentId": "support-bot", "numbers": ["+14155550142"]},
                headers={"X-Authorization": "nope"},
            )
            assert (resp.status_code, resp.json()) == (401, UNAUTHORIZED)
        assert list_of(client) == ["+14155550142", "+919876543210"]


def test_repeats_after_an_auth_failure_are_counted():
    """The base counts requests repeated with a rejected credential (key + uid)."""
    with running() as (_, client):
        bad = {"X-Authorization": "wrong"}
        for _ in range(2):
            client.get(PATH, params={"uid": UID, "agentId": "support-bot"}, headers=bad)
        list_of(client)  # the good credential is not a repeat
        c = counters(client)
        assert c["auth_failures"] == 2
        assert c["repeated_after_auth_failure"] == 1


def test_add_reports_added_and_failed_with_documented_reasons():
    """CONTRACTS §3 checklists 3-4: 200 "Block list updated successfully", added[],
    failed[{number, reason}] with "Invalid phone number format" and
    "Number already in block list"."""
    with running() as (_, client):
        resp = write(
            client, "POST", ["+14155550100", "+14155550142", "12ab", "+0987654321", "+1 23"]
        )
        assert resp.status_code == 200
        assert resp.json() == {
            "message": "Block list updated successfully",
            "added": ["+14155550100"],
            "failed": [
                {"number": "+14155550142", "reason": "Number already in block list"},
                {"number": "12ab", "reason": "Invalid phone number format"},
                {"number": "+0987654321", "reason": "Invalid phone number format"},
                {"number": "+1 23", "reason": "Invalid phone number format"},
            ],
        }
        assert list_of(client) == ["+14155550142", "+919876543210", "+14155550100"]


def test_duplicates_compare_on_digits_and_are_stored_as_given():
    """CONTRACTS §3 checklist 6 and Notes: "Duplicate numbers will be rejected when
    adding"; [INFER] compared on digits, stored as given (not normalised)."""
    with running() as (_, client):
        resp = write(client, "POST", ["+1 415-555-0142", "+44 20-7946-0958", "+442079460958"])
        body = resp.json()
        assert body["added"] == ["+44 20-7946-0958"]
        assert body["failed"] == [
            {"number": "+1 415-555-0142", "reason": "Number already in block list"},
            {"number": "+442079460958", "reason": "Number already in block list"},
        ]
        assert list_of(client)[-1] == "+44 20-7946-0958"


def test_add_creates_the_agents_list_and_agents_are_separate():
    """CONTRACTS §3 checklist 2: per-agent storage, created by the first add [INFER]."""
    with running() as (emulator, client):
        assert write(client, "POST", ["+919876543210"], agent="sales-bot").json()["added"] == [
            "+919876543210"
        ]
        assert list_of(client, "sales-bot") == ["+919876543210"]
        assert list_of(client) == ["+14155550142", "+919876543210"]
        assert set(emulator.state["agents"]) == {"support-bot", "sales-bot"}


def test_remove_with_a_json_body():
    """CONTRACTS §3 checklist 3: DELETE with a body; removed[], and failed[] with
    "Number not found in block list" ("Only numbers that exist ... can be removed")."""
    with running() as (_, client):
        resp = write(client, "DELETE", ["+1 415 555 0142", "+14155550199"])
        assert resp.status_code == 200
        assert resp.json() == {
            "message": "Block list updated successfully",
            "removed": ["+1 415 555 0142"],
            "failed": [{"number": "+14155550199", "reason": "Number not found in block list"}],
        }
        assert list_of(client) == ["+919876543210"]
        # from an agent that has no list at all: every number is "not found"
        resp = write(client, "DELETE", ["+919876543210"], agent="ghost")
        assert resp.json()["failed"] == [
            {"number": "+919876543210", "reason": "Number not found in block list"}
        ]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(
    "body",
    [
        {"uid": UID, "agentId": "support-bot"},  # numbers missing
        {"uid": UID, "agentId": "support-bot", "numbers": "+14155550100"},  # not an array
        {"uid": UID, "agentId": "support-bot", "numbers": [14155550100]},  # not strings
        {"uid": UID, "numbers": ["+14155550100"]},  # agentId missing
        {"agentId": "support-bot", "numbers": ["+14155550100"]},  # uid missing
        ["+14155550100"],  # not an object
    ],
    ids=["no-numbers", "numbers-string", "numbers-ints", "no-agent", "no-uid", "array-body"],
)
def test_bad_write_bodies_are_400(method, body):
    """CONTRACTS §3 checklist 5: 400 "Invalid request body or numbers parameter"."""
    with running() as (_, client):
        resp = client.request(
            method,
            PATH,
            content=json.dumps(body),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert resp.status_code == 400
        assert resp.json() == BAD_BODY


def test_unparseable_body_is_400():
    """CONTRACTS §3 checklist 5: a body that is not JSON is an invalid request body."""
    with running() as (_, client):
        resp = client.post(
            PATH, content=b"<numbers/>", headers={**AUTH, "Content-Type": "application/json"}
        )
        assert (resp.status_code, resp.json()) == (400, BAD_BODY)


def test_other_methods_and_paths():
    """CONTRACTS §3 checklist 1: one path with GET, POST and DELETE ([INFER] 405/404)."""
    with running() as (_, client):
        resp = client.put(PATH, json={}, headers=AUTH)
        assert resp.status_code == 405
        assert resp.headers["Allow"] == "GET, POST, DELETE"
        assert client.get("/api/agent-blocklist", headers=AUTH).status_code == 404
        assert counters(client)["requests"] == {
            "PUT /api/agent-block-list": 1,
            "GET {unknown path}": 1,
        }


def test_any_batch_size_is_accepted_and_numbers_are_counted():
    """CONTRACTS §3 Limits: no batch size documented, so none is enforced; the numbers
    each request carries are counted (count_numbers) and no violation is recorded."""
    numbers = [f"+1415{i:07d}" for i in range(5000)]
    with running(seed=False) as (_, client):
        resp = write(client, "POST", numbers)
        assert len(resp.json()["added"]) == 5000
        write(client, "DELETE", numbers[:10])
        list_of(client)
        c = counters(client)
        assert c["numbers"] == {
            "POST /api/agent-block-list": 5000,
            "DELETE /api/agent-block-list": 10,
        }
        assert c["max_numbers"]["POST /api/agent-block-list"] == 5000
        assert "GET /api/agent-block-list" not in c["numbers"]  # unfiltered read
        assert c["limit_violations"] == {}
        assert len(list_of(client)) == 4990


def test_write_without_json_content_type_is_a_violation():
    """Seed: "Content-Type:application/json" is a documented header of POST/DELETE;
    [INFER] the body is still parsed, the breach is counted with violation()."""
    with running() as (_, client):
        body = json.dumps({"uid": UID, "agentId": "support-bot", "numbers": ["+14155550100"]})
        resp = client.post(PATH, content=body, headers={**AUTH, "Content-Type": "text/plain"})
        assert resp.json()["added"] == ["+14155550100"]
        assert counters(client)["limit_violations"] == {
            "POST without Content-Type: application/json": 1
        }


def test_partial_failure_fault_fails_numbers_without_applying_them():
    """CONTRACTS §3 checklist 3 + faults: partial failures come back in failed[] with a
    plausible reason and are not applied; the counters show them."""
    with running(faults="partial=1.0") as (_, client):
        resp = write(client, "POST", ["+14155550100", "+14155550142"])
        assert resp.json()["failed"] == [
            {"number": "+14155550100", "reason": "Temporary failure, please retry"},
            {"number": "+14155550142", "reason": "Number already in block list"},
        ]
        resp = write(client, "DELETE", ["+919876543210"])
        assert resp.json()["removed"] == []
        assert resp.json()["failed"][0]["reason"] == "Temporary failure, please retry"
        assert list_of(client) == ["+14155550142", "+919876543210"]
        assert counters(client)["faults"] == {"partial": 2}


def test_same_fault_seed_same_faults():
    """Fault injection is reproducible: the same seed fails the same numbers."""
    numbers = [f"+1415555{i:04d}" for i in range(200)]

    def failed_with(seed: int) -> list[str]:
        with running(seed=False, faults=f"partial=0.3,seed={seed}") as (_, client):
            body = write(client, "POST", numbers).json()
            assert counters(client)["faults"]["partial"] == len(body["failed"])
            return [f["number"] for f in body["failed"]]

    first = failed_with(7)
    assert 0 < len(first) < 200
    assert failed_with(7) == first
    assert failed_with(8) != first


def test_server_error_and_rate_limit_shapes():
    """CONTRACTS §3: "500 Internal Server Error: Server error"; a 429 ([INFER], no rate
    limit documented) in the same shape with Retry-After."""
    with running(faults="5xx=1.0") as (_, client):
        resp = client.get(PATH, params={"uid": UID, "agentId": "support-bot"}, headers=AUTH)
        assert resp.status_code == 500
        assert resp.json() == {"error": "Internal Server Error", "message": "Server error"}
        assert counters(client)["faults"] == {"5xx": 1}
    with running(faults="429=1.0,retry_after=5") as (_, client):
        resp = write(client, "POST", ["+14155550100"])
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "5"
        assert resp.json()["error"] == "Too Many Requests"


def test_commit_then_drop_applies_the_write():
    """Fault "drop": the write is applied and the answer lost."""
    with running(faults="drop=1.0") as (emulator, client):
        with pytest.raises(httpx.TransportError):
            write(client, "POST", ["+14155550100"])
        assert "14155550100" in emulator.state["agents"]["support-bot"]
        assert counters(client)["faults"] == {"drop": 1}


def test_state_persists_and_resets(tmp_path):
    """Persistence: state written after a write, reloaded by a new emulator; reset reseeds."""
    path = tmp_path / "phonely.json"
    with running(state_path=path) as (_, client):
        write(client, "POST", ["+1 415 555 0100"])
    on_disk = json.loads(path.read_text())
    assert on_disk["agents"]["support-bot"][number_key("+14155550100")] == "+1 415 555 0100"
    with running(state_path=path) as (emulator, client):
        assert list_of(client)[-1] == "+1 415 555 0100"
        assert client.post("/__sandbox/reset").json() == {"reset": True}
        assert list_of(client) == ["+14155550142", "+919876543210"]
        assert client.get("/__sandbox/state").json() == emulator.state
    assert len(json.loads(path.read_text())["agents"]["support-bot"]) == 2


def test_rejected_writes_do_not_rewrite_the_state_file(tmp_path):
    """A write that changes nothing leaves the persisted file alone."""
    path = tmp_path / "phonely.json"
    with running(state_path=path) as (_, client):
        marker = path.read_text() + "\n"  # same state, recognisable bytes
        path.write_text(marker)
        write(client, "POST", ["+14155550142"])  # already there
        write(client, "DELETE", ["+14155550199"])  # not there
        write(client, "POST", [], agent="support-bot")  # nothing at all
        assert path.read_text() == marker
        write(client, "POST", ["+14155550100"])
        assert "14155550100" in path.read_text()


# -- dialects: the defensible readings of what the docs leave open -------------------------


def test_dialects_are_declared_with_a_note_each():
    """Emulator seam: every dialect has options and a one-line note; unknown is refused."""
    cls = emulator_class("phonely")
    assert set(cls.dialects) == set(cls.dialect_notes) == {"default", "strict", "alt", "lean"}
    assert cls.dialects["default"] == cls.dialects["default"].__class__()  # today's answers
    with pytest.raises(ValueError, match="unknown phonely dialect"):
        PhonelyEmulator(dialect="nope")


@pytest.mark.parametrize(
    ("dialect", "status", "shape"),
    [
        ("strict", 401, {"message": "Invalid or missing API key, or insufficient permissions"}),
        ("alt", 404, "Agent not found (uid=sandbox-uid, agentId=typo-bot)"),
        ("lean", 400, {"error": "Bad Request", "message": "Invalid agentId"}),
    ],
)
def test_an_unknown_agent_is_refused_in_the_dialects_way(dialect, status, shape):
    """[INFER] an agentId the account lacks: 401 (the docs' "insufficient permissions"),
    404 or 400 instead of a list created by the first add; the credential is fine, so
    it is not counted as an auth failure."""
    with running(dialect=dialect) as (emulator, client):
        got = client.get(PATH, params={"uid": UID, "agentId": "typo-bot"}, headers=AUTH)
        posted = write(client, "POST", ["+14155550100"], agent="typo-bot")
        for resp in (got, posted):
            assert resp.status_code == status
        if isinstance(shape, str):
            assert got.text == shape and got.headers["content-type"].startswith("text/plain")
        elif dialect == "lean":  # echoes the request
            assert got.json() == {**shape, "request": {"uid": UID, "agentId": "typo-bot"}}
            assert posted.json()["request"]["uid"] == UID
        else:
            assert got.json() == shape
        assert "typo-bot" not in emulator.state["agents"]
        assert counters(client)["auth_failures"] == 0
        assert list_of(client) == ["+14155550142", "+919876543210"]


def test_alt_words_already_and_not_found_otherwise():
    """The docs' reasons are examples ("e.g."): this dialect words them its own way."""
    with running(dialect="alt") as (_, client):
        added = write(client, "POST", ["+14155550142"]).json()
        assert added["failed"] == [
            {"number": "+14155550142", "reason": "Number is already blocked"}
        ]
        removed = write(client, "DELETE", ["+14155550199"]).json()
        assert removed["failed"] == [{"number": "+14155550199", "reason": "Number is not blocked"}]


def test_lean_removes_absent_numbers_silently():
    with running(dialect="lean") as (_, client):
        body = write(client, "DELETE", ["+14155550199", "+14155550142"]).json()
        assert body == {
            "message": "Block list updated successfully",
            "removed": ["+14155550199", "+14155550142"],
            "failed": [],
        }


@pytest.mark.parametrize(
    ("dialect", "stored"),
    [
        ("default", ["+1 415-555-0100", "+44 20-7946-0958"]),
        ("strict", ["+14155550100", "+442079460958"]),
        ("lean", ["(415) 555-0100", "+44 20-7946-0958"]),
    ],
)
def test_storage_forms(dialect, stored):
    """[INFER] "Whether numbers are normalised on storage is unknown": as given, E.164,
    or NANP national; duplicates are found whatever form they come in, and a DELETE by
    either form removes the number."""
    with running(seed=False, dialect=dialect) as (emulator, client):
        emulator.state["agents"]["support-bot"] = {}
        write(client, "POST", ["+1 415-555-0100", "+44 20-7946-0958"])
        assert list_of(client) == stored
        again = write(client, "POST", ["+14155550100", "+442079460958"]).json()
        assert [f["reason"] for f in again["failed"]] == ["Number already in block list"] * 2
        gone = write(client, "DELETE", [stored[0], "+442079460958"]).json()
        assert gone["removed"] == [stored[0], "+442079460958"]
        assert list_of(client) == []


@pytest.mark.parametrize(
    ("dialect", "reason"),
    [
        ("default", "Temporary failure, please retry"),
        ("strict", "Could not update block list"),
        ("alt", "Service busy (uid sandbox-uid)"),
        ("lean", "Backend timeout (uid sandbox-uid)"),
    ],
)
def test_transient_failures_in_the_dialects_words(dialect, reason):
    with running(dialect=dialect, faults="partial=1.0") as (_, client):
        body = write(client, "POST", ["+14155550100"]).json()
        assert body["failed"] == [{"number": "+14155550100", "reason": reason}]
    with running(dialect=dialect, faults="partial=1.0,reason=Carrier says no") as (_, client):
        body = write(client, "DELETE", ["+14155550142"]).json()
        assert body["failed"][0]["reason"].startswith("Carrier says no")


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        ("strict", {"message": "Invalid request body or numbers parameter"}),
        ("alt", None),
        ("lean", {"error": "Bad Request", "message": "Invalid request body or numbers parameter"}),
    ],
)
def test_error_body_shapes(dialect, body):
    """[INFER] "Error body shape: Not documented": {error, message}, {message} or text;
    the echoing dialects repeat the request, uid included."""
    with running(dialect=dialect) as (_, client):
        resp = write(client, "POST", "+14155550100")
        assert resp.status_code == 400
        if body is None:
            assert resp.text.startswith(
                "Invalid request body or numbers parameter (uid=sandbox-uid"
            )
        elif dialect == "lean":
            assert resp.json() == {
                **body,
                "request": {"uid": UID, "agentId": "support-bot", "numbers": "+14155550100"},
            }
        else:
            assert resp.json() == body
