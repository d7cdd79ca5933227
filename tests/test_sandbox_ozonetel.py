"""The Ozonetel emulator over real loopback HTTP, point by point against CONTRACTS.md §1."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from reconciler.sandbox import emulator_class
from reconciler.sandbox.ozonetel import OzonetelEmulator, Quirks

USER = OzonetelEmulator.credentials["username"]
KEY = OzonetelEmulator.credentials["api_key"]
T0 = 1_900_000_000.0  # 2030-03-17, well before the expiries used below

TOKEN = "/ca_apis/CAToken/generateToken"
CREATE = "/ca_apis/createBlockNumber"
UPDATE = "/ca_apis/updateBlockNumbers"
DELETE = "/ca_apis/deleteBlockNumber"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running(loopback):
    """``running(**emulator_kwargs)`` -> (emulator, client over loopback HTTP, clock); a
    client each (a connection is answered by the emulator plugged in when it opened)."""

    @contextlib.contextmanager
    def start(**kwargs) -> Iterator[tuple[OzonetelEmulator, httpx.Client, FakeClock]]:
        clock = kwargs.pop("clock", FakeClock())
        emulator = OzonetelEmulator(clock=clock, **kwargs)
        with httpx.Client(base_url=loopback.plug(emulator)) as client:
            yield emulator, client, clock

    return start


def call(client: httpx.Client, method: str, path: str, body: object, **headers: str) -> dict:
    resp = client.request(method, path, content=json.dumps(body), headers=headers)
    assert resp.status_code == 200, resp.text  # every documented outcome is HTTP 200
    return resp.json()


def new_token(client: httpx.Client) -> str:
    data = call(client, "POST", TOKEN, {"userName": USER}, apiKey=KEY)
    assert data["message"] == ""
    return data["token"]


class Api:
    """Token-mode calls with one token, for brevity."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.token = new_token(client)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def __call__(self, method: str, path: str, **body: object) -> dict:
        return call(self.client, method, path, {"userName": USER, **body}, **self.auth)


def create(api: Api, name: str = "fraud", numbers: object = "9876543210", **extra) -> dict:
    return api(
        "POST", CREATE, name=name, description="Fraud callers", blockNumbers=numbers, **extra
    )


# -- seed and registry ------------------------------------------------------------------


def test_registry_and_seeded_group(running) -> None:
    """CONTRACTS §1 (seed): group "vendor-spam" (id 1) holds two numbers; seed=False is empty."""
    assert emulator_class("ozonetel") is OzonetelEmulator
    with running() as (emulator, _, _):
        assert emulator.members("vendor-spam") == {"+919811100001": None, "+919811100002": None}
        assert emulator.state["groups"]["1"]["id"] == 1
    assert OzonetelEmulator(seed=False).state["groups"] == {}


# -- checklist 1: auth --------------------------------------------------------------------


def test_generate_token_and_use_it(running) -> None:
    """CONTRACTS §1 checklist 1: generateToken with apiKey + userName -> {token, message: ""};
    the token is taken as Authorization: Bearer."""
    with running() as (_, client, _):
        resp = client.post(TOKEN, json={"userName": USER}, headers={"apiKey": KEY})
        assert resp.status_code == 200
        assert set(resp.json()) == {"token", "message"}
        api = Api(client)
        assert create(api)["status"] == "success"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({}, {"apiKey": KEY}, "UserName is null"),
        ({"userName": None}, {"apiKey": KEY}, "UserName is null"),
        ({"userName": USER}, {"apiKey": "wrong"}, "Invalid userName or apiKey"),
        ({"userName": "someone"}, {"apiKey": KEY}, "Invalid userName or apiKey"),
        ({"userName": USER}, {}, "Invalid userName or apiKey"),
    ],
)
def test_generate_token_errors(body: dict, headers: dict, message: str, running) -> None:
    """CONTRACTS §1 checklist 1: generateToken errors, status "false" and data null, HTTP 200."""
    with running() as (emulator, client, _):
        data = call(client, "POST", TOKEN, body, **headers)
        assert data == {"status": "false", "message": message, "data": None}
        assert emulator.state["auth"]["token"] is None
        if message != "UserName is null":
            assert emulator.counters.auth_failures == 1


def test_token_lives_60_minutes(running) -> None:
    """CONTRACTS §1 checklist 1: "This token will be valid for 60 minutes" -> Token Expired."""
    with running() as (emulator, client, clock):
        api = Api(client)
        clock.now += 3599
        assert create(api, "g1")["status"] == "success"
        clock.now += 1
        assert create(api, "g2") == {"status": "false", "message": "Token Expired", "data": None}
        assert "g2" not in emulator.state["group_names"]
        assert emulator.counters.auth_failures == 0  # a routine refresh, not a rejection
        api.token = new_token(client)
        assert create(api, "g2")["status"] == "success"


def test_new_token_invalidates_the_previous_one(running) -> None:
    """CONTRACTS §1 checklist 1: "Once a new token is generated, any previously issued tokens
    will become invalid"."""
    with running() as (_, client, _):
        api = Api(client)
        old = api.token
        api.token = new_token(client)
        assert create(api, "g1")["status"] == "success"
        api.token = old
        assert create(api, "g2") == {"status": "error", "message": "Authentication failed"}


def test_token_generation_limit_is_10_per_rolling_hour(running) -> None:
    """CONTRACTS §1 checklist 1: "generate or refresh a new token up to 10 times per hour";
    the 11th is refused ([INFER] text) and counted as a violation."""
    with running() as (emulator, client, clock):
        for _ in range(10):
            new_token(client)
            clock.now += 60
        token_before = emulator.state["auth"]["token"]
        data = call(client, "POST", TOKEN, {"userName": USER}, apiKey=KEY)
        assert data == {
            "status": "false",
            "message": "Token generation limit exceeded",
            "data": None,
        }
        assert emulator.counters.limit_violations == {
            "generateToken more than 10 times per hour": 1
        }
        assert emulator.state["auth"]["token"] == token_before  # the last one still works
        clock.now = T0 + 3600  # the first generation leaves the rolling hour
        assert new_token(client)


def test_token_mode_authentication_failures(running) -> None:
    """CONTRACTS §1 checklist 1/2: no token, unknown token, wrong userName or an apiKey
    header in a TOKEN_AUTH account -> {"status": "error", "message": "Authentication failed"}."""
    failed = {"status": "error", "message": "Authentication failed"}
    with running() as (emulator, client, _):
        token = new_token(client)
        body = {
            "userName": USER,
            "name": "fraud",
            "description": "xx",
            "blockNumbers": "9876543210",
        }
        assert call(client, "POST", CREATE, body) == failed
        assert call(client, "POST", CREATE, body, apiKey=KEY) == failed
        assert call(client, "POST", CREATE, body, Authorization="Bearer nope") == failed
        assert call(client, "POST", CREATE, body, Authorization="Bearer nope") == failed
        wrong_user = {**body, "userName": "other"}
        assert call(client, "POST", CREATE, wrong_user, Authorization=f"Bearer {token}") == failed
        assert emulator.counters.auth_failures == 5
        # no credential at all, then an apiKey the account ignores: the same (none) presented
        assert emulator.counters.repeated_after_auth_failure == 2
        assert "fraud" not in emulator.state["group_names"]
        missing_user = {k: v for k, v in body.items() if k != "userName"}
        assert call(client, "POST", CREATE, missing_user, Authorization=f"Bearer {token}") == {
            "status": "error",
            "message": "Parameters are mandatory",
        }


def test_basic_mode(running) -> None:
    """CONTRACTS §1 checklist 1: BASIC_AUTH accounts take the apiKey header and userName in
    the body on the same paths; a bearer token is not accepted there."""
    failed = {"status": "error", "message": "Authentication failed"}
    with running(auth_mode="basic") as (emulator, client, _):
        body = {
            "userName": USER,
            "name": "fraud",
            "description": "xx",
            "blockNumbers": "9876543210",
        }
        assert call(client, "POST", CREATE, body, apiKey=KEY)["status"] == "success"
        token = new_token(client)
        assert (
            call(client, "POST", CREATE, {**body, "name": "g2"}, Authorization=f"Bearer {token}")
            == failed
        )
        assert call(client, "POST", CREATE, {**body, "name": "g2"}, apiKey="wrong") == failed
        assert (
            call(client, "POST", CREATE, {**body, "name": "g2", "userName": "x"}, apiKey=KEY)
            == failed
        )
        assert emulator.members("fraud") == {"+919876543210": None}
    with pytest.raises(ValueError):
        OzonetelEmulator(auth_mode="oauth")


# -- checklist 2: envelopes and exact messages ---------------------------------------------


@pytest.mark.parametrize("missing", ["name", "description", "blockNumbers"])
def test_create_missing_key_is_mandatory(missing: str, running) -> None:
    """CONTRACTS §1 checklist 2: "Passing invalid name/description key parameter" ->
    {"status": "error", "message": "Parameters are mandatory"}."""
    with running() as (emulator, client, _):
        api = Api(client)
        body = {"name": "fraud", "description": "desc", "blockNumbers": "9876543210"}
        del body[missing]
        assert api("POST", CREATE, **body) == {
            "status": "error",
            "message": "Parameters are mandatory",
        }
        assert "fraud" not in emulator.state["group_names"]


@pytest.mark.parametrize(
    ("name", "description", "error"),
    [
        ("X", "desc", "Name (X) allows 2 to 50 characters only"),
        ("n" * 51, "desc", f"Name ({'n' * 51}) allows 2 to 50 characters only"),
        # the description error is reported under key "name", as documented
        ("fraud", "B", "Name (B) allows 2 to 50 characters only"),
        ("fraud", "d" * 51, f"Name ({'d' * 51}) allows 2 to 50 characters only"),
        (None, "desc", "Name (None) allows 2 to 50 characters only"),
        ("ab", "d" * 50, None),
        ("n" * 50, "cd", None),
    ],
)
def test_create_name_and_description_lengths(name, description, error, running) -> None:
    """CONTRACTS §1 checklist 2/6: name and description allow 2 to 50 characters; the
    description error sits under key "name"."""
    with running() as (_, client, _):
        api = Api(client)
        data = api("POST", CREATE, name=name, description=description, blockNumbers="9876543210")
        if error is None:
            assert data["status"] == "success"
        else:
            assert data == {"status": "error", "message": "invalid data", "errors": {"name": error}}


def test_create_existing_group_name(running) -> None:
    """CONTRACTS §1 ([INFER] text): creating a group whose name exists is refused."""
    with running() as (emulator, client, _):
        api = Api(client)
        assert create(api, "vendor-spam") == {
            "status": "error",
            "message": "Group name already exists",
        }
        assert len(emulator.members("vendor-spam")) == 2


# -- checklist 3, 4, 5: success shapes, partial success, normalisation ---------------------------


def test_create_success_shape(running) -> None:
    """CONTRACTS §1 checklist 3/5: created, misspelt `succes`, affectedRows, lastInsertId =
    new group id; 10-digit input comes back as +91."""
    with running() as (emulator, client, _):
        api = Api(client)
        data = create(api, "fraud", "9876543210")
        assert data == {
            "status": "success",
            "message": "created",
            "input": {
                "name": "fraud",
                "description": "Fraud callers",
                "blockNumbers": ["9876543210"],
            },
            "output": {
                "affectedRows": 1,
                "lastInsertId": 2,
                "succes": ["+919876543210"],
                "error": [],
            },
        }
        assert emulator.members("fraud") == {"+919876543210": None}
        assert create(api, "other")["output"]["lastInsertId"] == 3


def test_create_comma_joined_string_is_one_invalid_number(running) -> None:
    """CONTRACTS §1 checklist 4 (quirk 2): a comma-joined string is one invalid number: the
    group is created, the string sits under output.error, `succes` is empty."""
    joined = "9711100043,9811100098,9711100097"
    with running() as (emulator, client, _):
        data = create(Api(client), "fraud", joined)
        assert data["status"] == "success"
        assert data["input"]["blockNumbers"] == [joined]
        assert data["output"] == {
            "affectedRows": 1,
            "lastInsertId": 2,
            "succes": [],
            "error": [joined],
        }
        assert "fraud" in emulator.state["group_names"]
        assert emulator.members("fraud") == {}


def test_update_is_additive_and_normalises(running) -> None:
    """CONTRACTS §1 checklist 3/4/5: updateBlockNumbers adds to the group; `succes` holds
    +91 forms, bad numbers go to output.error under status success; new/inserted count."""
    with running() as (emulator, client, _):
        api = Api(client)
        data = api(
            "PUT",
            UPDATE,
            groupName="vendor-spam",
            blockNumbers=["9811100003", "919811100004", "+14155550123", "12345", "9811100001"],
        )
        assert data == {
            "status": "success",
            "message": "updated",
            "input": {
                "id": 1,
                "blockNumbers": [
                    "9811100003",
                    "919811100004",
                    "+14155550123",
                    "12345",
                    "9811100001",
                ],
            },
            "output": {
                "succes": ["+919811100003", "+919811100004", "+14155550123", "+919811100001"],
                "error": ["12345"],
                "new": 3,  # +919811100001 was already there
                "inserted": 4,
            },
        }
        assert list(emulator.members("vendor-spam")) == [
            "+919811100001",
            "+919811100002",
            "+919811100003",
            "+919811100004",
            "+14155550123",
        ]


def test_update_singular_path_description_and_unknown_group(running) -> None:
    """CONTRACTS §1 endpoint 2: the singular /updateBlockNumber page is accepted too; a
    description is checked 2-50; an unknown group -> "Invalid group id"."""
    with running() as (emulator, client, _):
        api = Api(client)
        data = api(
            "PUT",
            "/ca_apis/updateBlockNumber",
            id=1,
            description="New words",
            blockNumbers=["9811100009"],
        )
        assert data["output"]["new"] == 1
        assert emulator.state["groups"]["1"]["description"] == "New words"
        bad = api(
            "PUT", UPDATE, groupName="vendor-spam", description="B", blockNumbers=["9811100008"]
        )
        assert bad["errors"] == {"name": "Name (B) allows 2 to 50 characters only"}
        for selector in ({"groupName": "nope"}, {"id": 99}, {"groupName": "vendor-spam", "id": 2}):
            assert api("PUT", UPDATE, blockNumbers=["9811100008"], **selector) == {
                "status": "error",
                "message": "Invalid group id",
            }
        assert api("PUT", UPDATE, blockNumbers=["9811100008"]) == {
            "status": "error",
            "message": "Parameters are mandatory",
        }
        assert emulator.counters.requests["PUT /ca_apis/updateBlockNumber"] == 1


def test_delete_success_shape_and_dedup(running) -> None:
    """CONTRACTS §1 checklist 3: delete output spells `success`; five inputs with one
    duplicate give "deleted": 4; numbers not in the group go to output.error."""
    with running() as (emulator, client, _):
        api = Api(client)
        api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=["9811100003", "9811100004"])
        numbers = ["9811100001", "919811100002", "9811100003", "919811100003", "9811100004"]
        data = api("DELETE", DELETE, groupName="vendor-spam", blockNumbers=[*numbers, "9899999999"])
        assert data == {
            "status": "success",
            "message": "deleted",
            "input": {"id": 1, "blockNumbers": [*numbers, "9899999999"]},
            "output": {
                "success": ["+919811100001", "+919811100002", "+919811100003", "+919811100004"],
                "error": ["9899999999"],
                "deleted": 4,
            },
        }
        assert emulator.members("vendor-spam") == {}
        again = api("DELETE", DELETE, groupName="vendor-spam", blockNumbers=["9811100001"])
        assert again["output"] == {"success": [], "error": ["9811100001"], "deleted": 0}


def test_delete_selectors_alias_path_and_singular_key(running) -> None:
    """CONTRACTS §1 endpoint 3: id and/or groupName select the group (both must agree); the
    cURL sample's /deleteBlockNumberGroup path and "blockNumber" string are accepted."""
    with running() as (emulator, client, _):
        api = Api(client)
        assert (
            api("DELETE", DELETE, id=1, groupName="vendor-spam", blockNumbers=["9811100001"])[
                "output"
            ]["deleted"]
            == 1
        )
        data = api("DELETE", "/ca_apis/deleteBlockNumberGroup", id="1", blockNumber="9811100002")
        assert data["output"] == {"success": ["+919811100002"], "error": [], "deleted": 1}
        assert api("DELETE", DELETE, id=1, groupName="other", blockNumbers=["1"]) == {
            "status": "error",
            "message": "Invalid group id",
        }
        assert api("DELETE", DELETE, blockNumbers=["9811100001"]) == {
            "status": "error",
            "message": "Parameters are mandatory",
        }
        assert emulator.counters.requests["DELETE /ca_apis/deleteBlockNumberGroup"] == 1


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("9876543210", "+919876543210"),
        ("919876543210", "+919876543210"),
        ("+919876543210", "+919876543210"),
        ("+14155550123", "+14155550123"),
        ("+12345678", "+12345678"),
        ("+123456789012345", "+123456789012345"),
        (9876543210, "+919876543210"),
        ("987654321", None),
        ("98765432101", None),
        ("+1234567", None),
        ("+1234567890123456", None),
        ("98765-43210", None),
        ("0091987654321", None),
    ],
)
def test_number_formats(raw: object, stored: str | None, running) -> None:
    """CONTRACTS §1 checklist 5: 10 digits -> +91, 12 digits from 91 -> +, + and 8-15 digits
    kept; anything else is listed under output.error."""
    with running() as (emulator, client, _):
        data = Api(client)("PUT", UPDATE, groupName="vendor-spam", blockNumbers=[raw])
        if stored is None:
            assert data["output"]["succes"] == []
            assert data["output"]["error"] == [str(raw)]
        else:
            assert data["output"]["succes"] == [stored]
            assert stored in emulator.members("vendor-spam")


# -- checklist 6: blockNumbers types and the 100 limit ------------------------------------------


@pytest.mark.parametrize("value", [9876543210, "", "  ", [], [None], [{"n": 1}], [True], {}, None])
def test_malformed_block_numbers(value: object, running) -> None:
    """CONTRACTS §1 checklist 6: a blockNumbers field that is not a string or an array of
    numbers -> "Blocknumbers data contains invalid format of numbers"."""
    expected = {
        "status": "error",
        "message": "invalid data",
        "errors": {"blockNumbers": "Blocknumbers data contains invalid format of numbers"},
    }
    with running() as (emulator, client, _):
        api = Api(client)
        assert create(api, "fraud", value) == expected
        assert api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=value) == expected
        assert "fraud" not in emulator.state["group_names"]


def test_100_numbers_per_request(running) -> None:
    """CONTRACTS §1 checklist 6: "up to 100 phone numbers in a single request" on create,
    update and delete; 101 is refused ([INFER] text), counted as a violation, nothing stored."""
    too_many = {
        "status": "error",
        "message": "invalid data",
        "errors": {"blockNumbers": "Maximum 100 numbers allowed per request"},
    }
    hundred = [f"98{i:08d}" for i in range(100)]
    with running() as (emulator, client, _):
        api = Api(client)
        assert len(create(api, "fraud", hundred)["output"]["succes"]) == 100
        assert api("PUT", UPDATE, groupName="fraud", blockNumbers=[*hundred, "9700000000"]) == (
            too_many
        )
        assert create(api, "other", [*hundred, "9700000000"]) == too_many
        assert api("DELETE", DELETE, groupName="fraud", blockNumbers=[*hundred, "97"]) == too_many
        assert len(emulator.members("fraud")) == 100
        assert "other" not in emulator.state["group_names"]
        deleted = api("DELETE", DELETE, groupName="fraud", blockNumbers=hundred)
        assert deleted["output"]["deleted"] == 100
        counters = emulator.counters.to_dict()
        assert counters["limit_violations"] == {"more than 100 numbers in one request": 3}
        assert counters["max_numbers"] == {
            "POST /ca_apis/createBlockNumber": 101,
            "PUT /ca_apis/updateBlockNumbers": 101,
            "DELETE /ca_apis/deleteBlockNumber": 101,
        }
        assert counters["numbers"]["DELETE /ca_apis/deleteBlockNumber"] == 201


# -- checklist 7: expiry -------------------------------------------------------------------------


def test_expiry_is_ist_and_expired_numbers_are_gone(running) -> None:
    """CONTRACTS §1 checklist 7: expiryDate "YYYY-MM-DD HH:MM:SS" (read as IST, [INFER]) is
    stored per number; once it passes, the number is no longer in the group."""
    at = datetime(2031, 1, 1, 0, 0, tzinfo=UTC).timestamp()  # 05:30 IST
    with running() as (emulator, client, clock):
        api = Api(client)
        create(api, "fraud", "9876543210", expiryDate="2031-01-01 05:30:00")
        assert emulator.members("fraud") == {"+919876543210": at}
        clock.now = at - 1
        api.token = new_token(client)
        assert "+919876543210" in emulator.members("fraud")
        clock.now = at
        assert emulator.members("fraud") == {}
        data = api("DELETE", DELETE, groupName="fraud", blockNumbers=["9876543210"])
        assert data["output"] == {"success": [], "error": ["9876543210"], "deleted": 0}
        again = api("PUT", UPDATE, groupName="fraud", blockNumbers=["9876543210"])
        assert again["output"]["new"] == 1


def test_update_gives_existing_numbers_the_new_expiry(running) -> None:
    """CONTRACTS §1 checklist 7 ([INFER]): a number already in the group stays in `succes`
    (not counted in `new`) and takes the request's expiryDate; none clears it."""
    with running() as (emulator, client, _):
        api = Api(client)
        data = api(
            "PUT",
            UPDATE,
            groupName="vendor-spam",
            blockNumbers=["9811100001"],
            expiryDate="2032-06-01 00:00:00",
        )
        assert data["output"] == {"succes": ["+919811100001"], "error": [], "new": 0, "inserted": 1}
        expected = datetime(2032, 5, 31, 18, 30, tzinfo=UTC).timestamp()
        assert emulator.members("vendor-spam")["+919811100001"] == expected
        api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=["9811100001"])
        assert emulator.members("vendor-spam")["+919811100001"] is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("2031-01-01", "expiryDate must be in the format YYYY-MM-DD HH:MM:SS"),
        ("01/01/2031 00:00:00", "expiryDate must be in the format YYYY-MM-DD HH:MM:SS"),
        (20310101, "expiryDate must be in the format YYYY-MM-DD HH:MM:SS"),
        ("2020-01-01 00:00:00", "expiryDate must be in the future"),
    ],
)
def test_bad_expiry_dates(value: object, error: str, running) -> None:
    """CONTRACTS §1 checklist 7 ([INFER] texts): a malformed or past expiryDate is refused."""
    with running() as (emulator, client, _):
        data = create(Api(client), "fraud", "9876543210", expiryDate=value)
        assert data == {
            "status": "error",
            "message": "invalid data",
            "errors": {"expiryDate": error},
        }
        assert "fraud" not in emulator.state["group_names"]


# -- checklist 8: no read endpoint -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ca_apis/createBlockNumber"),
        ("GET", "/ca_apis/blockNumberGroups"),
        ("GET", "/ca_apis/getBlockNumbers"),
        ("POST", "/ca_apis/updateBlockNumbers"),
    ],
)
def test_no_read_endpoint(method: str, path: str, running) -> None:
    """CONTRACTS §1 checklist 8: no read endpoint; wrong methods and unknown paths are refused."""
    with running() as (emulator, client, _):
        token = new_token(client)
        resp = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code in (404, 405)
        assert resp.json()["status"] == "error"
        assert emulator.endpoint_of(resp.request) in (
            f"{method} {path}",
            f"{method} (unknown path)",
        )


# -- faults, counters, persistence -----------------------------------------------------------


def _failed_with_seed(running, seed: int) -> tuple[list[str], dict]:
    with running(faults=f"partial=0.3,seed={seed}") as (emulator, client, _):
        api = Api(client)
        numbers = [f"97{i:08d}" for i in range(50)]
        data = api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=numbers)
        failed = data["output"]["error"]
        assert data["status"] == "success"
        assert len(data["output"]["succes"]) + len(failed) == 50
        assert data["output"]["new"] == 50 - len(failed)
        for raw in failed:
            assert "+91" + raw not in emulator.members("vendor-spam")  # not applied
        return failed, emulator.counters.to_dict()


def test_partial_failures_are_seeded_and_counted(running) -> None:
    """CONTRACTS §1 checklist 4 + faults: partial failures put numbers under output.error
    (not stored); the same seed fails the same numbers; counters show them."""
    first, counters = _failed_with_seed(running, 7)
    again, _ = _failed_with_seed(running, 7)
    assert first == again
    assert 0 < len(first) < 50
    assert counters["faults"] == {"partial": len(first)}


def test_partial_failure_on_create(running) -> None:
    """Faults: partial=1.0 on create still creates the group, the number goes to output.error."""
    with running(faults="partial=1.0") as (emulator, client, _):
        data = create(Api(client), "fraud", "9876543210")
        assert data["output"]["succes"] == []
        assert data["output"]["error"] == ["9876543210"]
        assert emulator.members("fraud") == {}


def test_429_and_5xx_faults(running) -> None:
    """Faults: 429 in the CloudAgent throttling shape with Retry-After; 5xx as an envelope."""
    with running(faults="429=1.0,retry_after=7") as (emulator, client, _):
        resp = client.post(TOKEN, json={"userName": USER}, headers={"apiKey": KEY})
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "7"
        assert resp.json() == {"message": "Max limit exceeded", "status": "error"}
        assert emulator.counters.faults["429"] == 1
    with running(faults="5xx=1.0") as (emulator, client, _):
        resp = client.post(TOKEN, json={"userName": USER}, headers={"apiKey": KEY})
        assert resp.status_code == 500
        assert resp.json()["status"] == "error"


def test_counters_and_persistence(tmp_path, running) -> None:
    """Counters per endpoint template and numbers carried; state persisted and reloaded."""
    path = tmp_path / "ozonetel.json"
    with running(state_path=path) as (emulator, client, _):
        api = Api(client)
        create(api, "fraud", "9876543210")
        api("PUT", UPDATE, groupName="fraud", blockNumbers=["9876543211", "9876543212"])
        counters = client.get("/__sandbox/counters").json()
        assert counters["requests"] == {
            "POST /ca_apis/CAToken/generateToken": 1,
            "POST /ca_apis/createBlockNumber": 1,
            "PUT /ca_apis/updateBlockNumbers": 1,
        }
        assert counters["numbers"] == {
            "POST /ca_apis/createBlockNumber": 1,
            "PUT /ca_apis/updateBlockNumbers": 2,
        }
        state = client.get("/__sandbox/state").json()
        assert list(state["groups"]["2"]["numbers"]) == [
            "+919876543210",
            "+919876543211",
            "+919876543212",
        ]
    reloaded = OzonetelEmulator(state_path=path, clock=FakeClock())
    assert len(reloaded.members("fraud")) == 3
    reloaded.reset()
    assert reloaded.members("fraud") == {}
    assert len(reloaded.members("vendor-spam")) == 2


def test_partial_failure_on_delete(running) -> None:
    """Faults: partial=1.0 on delete leaves the numbers in the group, under output.error
    (as absent ones are: the reply cannot tell the two apart)."""
    with running(faults="partial=1.0") as (emulator, client, _):
        data = Api(client)("DELETE", DELETE, groupName="vendor-spam", blockNumbers=["9811100001"])
        assert data["output"] == {"success": [], "error": ["9811100001"], "deleted": 0}
        assert "+919811100001" in emulator.members("vendor-spam")
        assert emulator.counters.faults == {"partial": 1}


def test_issue_token_helper(running) -> None:
    """Test helper: a token made as generateToken would (it voids the older one)."""
    with running() as (emulator, client, _):
        api = Api(client)
        old = api.token
        api.token = emulator.issue_token()
        assert create(api, "g1")["status"] == "success"
        api.token = old
        assert create(api, "g2") == {"status": "error", "message": "Authentication failed"}


# -- dialects ----------------------------------------------------------------------------------


def test_dialects_are_declared_with_notes() -> None:
    """Every dialect has a one-line note; an unknown one is refused, naming the known."""
    assert set(OzonetelEmulator.dialects) == {"default", "strict", "alt", "lean"}
    assert set(OzonetelEmulator.dialect_notes) == set(OzonetelEmulator.dialects)
    assert all("\n" not in note for note in OzonetelEmulator.dialect_notes.values())
    assert OzonetelEmulator.dialects["default"] == Quirks()
    with pytest.raises(ValueError, match="known: default, strict, alt, lean"):
        OzonetelEmulator(dialect="chatty")


def raw(client: httpx.Client, method: str, path: str, body: object, **headers: str):
    """(HTTP status, JSON body), whatever the status."""
    resp = client.request(method, path, content=json.dumps(body), headers=headers)
    return resp.status_code, resp.json()


def test_strict_sends_body_level_errors_with_4xx(running) -> None:
    """strict ([INFER] statuses): the documented bodies, each with a 4xx status."""
    with running(dialect="strict") as (emulator, client, clock):
        assert raw(client, "POST", TOKEN, {}, apiKey=KEY)[0] == 400
        assert raw(client, "POST", TOKEN, {"userName": USER}, apiKey="no") == (
            401,
            {"status": "false", "message": "Invalid userName or apiKey", "data": None},
        )
        token = new_token(client)
        auth = {"Authorization": f"Bearer {token}"}
        body = {"userName": USER, "name": "X", "description": "desc", "blockNumbers": "1"}
        assert raw(client, "POST", CREATE, body, **auth)[0] == 400
        update = {"userName": USER, "groupName": "nope", "blockNumbers": ["9811100009"]}
        update |= {"description": "desc", "expiryDate": "2031-01-01 00:00:00"}
        assert raw(client, "PUT", UPDATE, update, **auth) == (
            404,
            {"status": "error", "message": "Invalid group id"},
        )
        assert raw(client, "PUT", UPDATE, update, Authorization="Bearer no")[0] == 401
        for _ in range(9):
            new_token(client)
        assert raw(client, "POST", TOKEN, {"userName": USER}, apiKey=KEY)[0] == 403
        clock.now += 3600
        token = emulator.state["auth"]["token"]
        assert raw(client, "PUT", UPDATE, update, Authorization=f"Bearer {token}") == (
            401,
            {"status": "false", "message": "Token Expired", "data": None},
        )


def test_strict_update_requires_description_and_an_expiry_date(running) -> None:
    """strict: the update body's description and expiryDate are mandatory, and expiryDate
    must be a date in the documented format ("" is not one)."""
    full = {
        "groupName": "vendor-spam",
        "description": "desc",
        "expiryDate": "2099-12-31 23:59:59",
        "blockNumbers": ["9811100009"],
    }
    mandatory = {"status": "error", "message": "Parameters are mandatory"}
    with running(dialect="strict") as (emulator, client, _):
        api = Api(client)
        for key in ("description", "expiryDate"):
            without = {k: v for k, v in full.items() if k != key}
            status, data = raw(client, "PUT", UPDATE, {"userName": USER, **without}, **api.auth)
            assert (status, data) == (400, mandatory)
        status, data = raw(
            client, "PUT", UPDATE, {"userName": USER, **full, "expiryDate": ""}, **api.auth
        )
        assert data["errors"] == {
            "expiryDate": "expiryDate must be in the format YYYY-MM-DD HH:MM:SS"
        }
        assert api("PUT", UPDATE, **full)["output"]["new"] == 1
        assert "+919811100009" in emulator.members("vendor-spam")


def test_strict_refuses_an_existing_name_as_invalid_data(running) -> None:
    with running(dialect="strict") as (_, client, _):
        api = Api(client)
        body = {"name": "vendor-spam", "description": "desc", "blockNumbers": "9811100009"}
        assert raw(client, "POST", CREATE, {"userName": USER, **body}, **api.auth) == (
            400,
            {
                "status": "error",
                "message": "invalid data",
                "errors": {"name": "Name (vendor-spam) already exists"},
            },
        )


def test_strict_delete_selects_the_group_by_id_only(running) -> None:
    with running(dialect="strict") as (emulator, client, _):
        api = Api(client)
        data = api("DELETE", DELETE, id=1, groupName="ignored", blockNumbers=["9811100001"])
        assert data["output"]["deleted"] == 1
        assert call_status(client, api, groupName="vendor-spam") == (
            404,
            {"status": "error", "message": "Invalid group id"},
        )
        assert "+919811100002" in emulator.members("vendor-spam")


def call_status(client: httpx.Client, api: Api, **selector: object):
    body = {"userName": USER, "blockNumbers": ["9811100002"], **selector}
    return raw(client, "DELETE", DELETE, body, **api.auth)


def test_alt_wording_quota_and_national_echo(running) -> None:
    """alt: another group-exists text; the 11th token is refused as "Max limit exceeded"
    (what users of the real API saw); output lists show Indian numbers as 10 digits."""
    with running(dialect="alt") as (_, client, clock):
        api = Api(client)
        assert create(api, "vendor-spam") == {
            "status": "error",
            "message": "Block number group with this name already exists",
        }
        data = api(
            "PUT", UPDATE, groupName="vendor-spam", blockNumbers=["919811100009", "+14155550123"]
        )
        assert data["output"]["succes"] == ["9811100009", "+14155550123"]
        gone = api("DELETE", DELETE, groupName="vendor-spam", blockNumbers=["9811100009"])
        assert gone["output"]["success"] == ["9811100009"]
        for _ in range(9):
            new_token(client)
        assert call(client, "POST", TOKEN, {"userName": USER}, apiKey=KEY) == {
            "status": "false",
            "message": "Max limit exceeded",
            "data": None,
        }


def test_alt_token_expires_after_25_requests(running) -> None:
    with running(dialect="alt") as (emulator, client, _):
        api = Api(client)
        for i in range(25):
            assert (
                api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=[f"98111{i:05d}"])[
                    "status"
                ]
                == "success"
            )
        again = api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=["9811100099"])
        assert again == {"status": "false", "message": "Token Expired", "data": None}
        assert emulator.counters.auth_failures == 0
        api.token = new_token(client)
        assert (
            api("PUT", UPDATE, groupName="vendor-spam", blockNumbers=["9811100099"])["status"]
            == "success"
        )


def test_lean_create_on_an_existing_name_adds_to_it(running) -> None:
    """lean: a create naming an existing group adds to it and returns its id, 0 rows."""
    with running(dialect="lean") as (emulator, client, _):
        data = create(Api(client), "vendor-spam", "9811100009")
        assert data["status"] == "success"
        assert data["output"] == {
            "affectedRows": 0,
            "lastInsertId": 1,
            "succes": ["919811100009"],  # lean echoes 91… without +
            "error": [],
        }
        assert len(emulator.members("vendor-spam")) == 3
        assert emulator.state["groups"]["1"]["description"] == "Vendor spam callers (seeded)"


def test_lean_delete_by_name_and_absent_numbers_in_neither_list(running) -> None:
    """lean: the delete's group is its groupName (an id is ignored); numbers not in the
    group are in neither output list; the input echoes them."""
    with running(dialect="lean") as (emulator, client, _):
        api = Api(client)
        data = api(
            "DELETE",
            DELETE,
            id=99,
            groupName="vendor-spam",
            blockNumbers=["9811100001", "9899999999"],
        )
        assert data["input"] == {"id": 1, "blockNumbers": ["9811100001", "9899999999"]}
        assert data["output"] == {"success": ["919811100001"], "error": [], "deleted": 1}
        assert api("DELETE", DELETE, id=1, blockNumbers=["9811100002"]) == {
            "status": "error",
            "message": "Invalid group id",
        }
        assert list(emulator.members("vendor-spam")) == ["+919811100002"]


@pytest.mark.parametrize("dialect", sorted(OzonetelEmulator.dialects))
def test_every_dialect_takes_the_documented_update_body(dialect: str, running) -> None:
    """What the docs allow (every field of the update body, expiryDate in the format,
    including the far-future date that stands for no expiry) works in every dialect."""
    with running(dialect=dialect) as (emulator, client, _):
        data = Api(client)(
            "PUT",
            UPDATE,
            groupName="vendor-spam",
            description="Managed by blocklist-as-code",
            expiryDate="2099-12-31 23:59:59",
            blockNumbers=["9811100001", "9811100009"],
        )
        assert data["status"] == "success" and data["output"]["inserted"] == 2
        at = datetime(2099, 12, 31, 18, 29, 59, tzinfo=UTC).timestamp()
        assert emulator.members("vendor-spam")["+919811100001"] == at  # the expiry replaced
