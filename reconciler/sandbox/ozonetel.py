"""Emulator of Ozonetel CloudAgent's block-number-group API (CONTRACTS.md §1, seed 000).

Owns the provider's wire behaviour and nothing else: both account auth modes
(token via ``generateToken``, or basic with an ``apiKey`` header), the
create / update / delete endpoints with their verbatim messages and quirks
(misspelt ``succes``, numbers under ``output.error`` while ``status`` is
``success``, HTTP 200 for every documented outcome), the 100-number cap and
per-request ``expiryDate``. There is deliberately no read endpoint: Ozonetel
documents none (CONTRACTS §1 endpoint 4, "NOT FOUND"); tests inspect
``emulator.state`` / ``/__sandbox/state`` or :meth:`OzonetelEmulator.members`.

State (plain JSON)::

    {"groups": {"1": {"id": 1, "name": "vendor-spam", "description": "...",
                      "numbers": {"+919811100001": null, "+919811100002": 1893436200}}},
     "group_names": {"vendor-spam": "1"},      # name -> id, O(1) lookups
     "next_id": 2,
     "auth": {"token": null, "issued_at": null, "generated_at": [epoch, ...]}}

A number maps to its expiry (epoch seconds) or ``null``; a number whose expiry
has passed by ``self.clock()`` counts as gone and is dropped when touched.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import httpx

from .base import Emulator

# [INFER] The docs give no time zone for "YYYY-MM-DD HH:MM:SS"; CloudAgent is an Indian
# service, so it is read as IST (UTC+05:30).
IST = timezone(timedelta(hours=5, minutes=30), "IST")
EXPIRY_FORMAT = "%Y-%m-%d %H:%M:%S"

# "This token will be valid for 60 minutes."
TOKEN_TTL = 60 * 60
# "you can generate or refresh a new token up to 10 times per hour."
TOKEN_LIMIT = 10
TOKEN_WINDOW = 60 * 60
# "This API supports the addition of up to 100 phone numbers in a single request."
MAX_NUMBERS = 100

TOKEN_PATH = "/ca_apis/CAToken/generateToken"
CREATE_PATH = "/ca_apis/createBlockNumber"
# [INFER] A second doc page's slug suggests the singular path; both are accepted.
UPDATE_PATHS = ("/ca_apis/updateBlockNumbers", "/ca_apis/updateBlockNumber")
# [INFER] The delete page's own cURL sample uses /ca_apis/deleteBlockNumberGroup; accepted too.
DELETE_PATHS = ("/ca_apis/deleteBlockNumber", "/ca_apis/deleteBlockNumberGroup")

_ROUTES: dict[str, tuple[str, str]] = {
    TOKEN_PATH: ("POST", "_generate_token"),
    CREATE_PATH: ("POST", "_create"),
    **{p: ("PUT", "_update") for p in UPDATE_PATHS},
    **{p: ("DELETE", "_delete") for p in DELETE_PATHS},
}

_TEN_DIGITS = re.compile(r"[0-9]{10}")
_INDIAN_WITH_CC = re.compile(r"91[0-9]{10}")
_PLUS_E164 = re.compile(r"\+[0-9]{8,15}")

# Verbatim messages from the docs.
AUTH_FAILED = "Authentication failed"
MANDATORY = "Parameters are mandatory"
INVALID_DATA = "invalid data"
BAD_NUMBERS = "Blocknumbers data contains invalid format of numbers"
INVALID_GROUP = "Invalid group id"
TOKEN_EXPIRED = "Token Expired"
USERNAME_NULL = "UserName is null"
BAD_USER_OR_KEY = "Invalid userName or apiKey"
# [INFER] Undocumented texts for limits the docs state without an error body.
TOKEN_LIMIT_EXCEEDED = "Token generation limit exceeded"
TOO_MANY_NUMBERS = "Maximum 100 numbers allowed per request"
GROUP_EXISTS = "Group name already exists"
BAD_EXPIRY = "expiryDate must be in the format YYYY-MM-DD HH:MM:SS"
PAST_EXPIRY = "expiryDate must be in the future"


class _Answer(Exception):
    """Stops a handler and answers ``body`` (HTTP 200, like every documented outcome)."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(body.get("message"))
        self.body = body


def _error(message: str, errors: dict[str, str] | None = None) -> _Answer:
    body: dict[str, Any] = {"status": "error", "message": message}
    if errors is not None:
        body["errors"] = errors
    return _Answer(body)


def _false(message: str) -> _Answer:
    # generateToken's error bodies: `status` is the string "false" and `data` is null.
    return _Answer({"status": "false", "message": message, "data": None})


def normalise_number(value: object) -> str | None:
    """Ozonetel's reading of one number, or None when it is not a valid format.

    10 digits -> ``+91`` + digits (the update sample echoes "97XXX04XX3" as
    "+9197XXX04XX3"); 12 digits starting 91 -> ``+`` + digits (the delete sample
    echoes "9197XXX0XX94" as "+9197XXX0XX94"); ``+`` and 8-15 digits kept [INFER].
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)  # [INFER] JSON numbers are read as their digits
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _TEN_DIGITS.fullmatch(text):
        return "+91" + text
    if _INDIAN_WITH_CC.fullmatch(text):
        return "+" + text
    if _PLUS_E164.fullmatch(text):
        return text
    return None


def _json_body(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"null")
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _bearer(request: httpx.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class OzonetelEmulator(Emulator):
    """Ozonetel CloudAgent block-number groups, one account."""

    type_name: ClassVar[str] = "ozonetel"
    credentials: ClassVar[dict[str, str]] = {
        "username": "sandbox",
        "api_key": "sandbox-ozonetel-key",
    }

    def __init__(self, *, auth_mode: str = "token", **kwargs: Any) -> None:
        # The account-level 'API Authentication' setting (TOKEN_AUTH or BASIC_AUTH)
        # "decides which variant of each endpoint works".
        if auth_mode not in ("token", "basic"):
            raise ValueError(f"auth_mode must be 'token' or 'basic', not {auth_mode!r}")
        self.auth_mode = auth_mode
        super().__init__(**kwargs)

    # -- Emulator interface --------------------------------------------------------

    def initial_state(self, seed: bool) -> dict[str, Any]:
        state: dict[str, Any] = {
            "groups": {},
            "group_names": {},
            "next_id": 1,
            "auth": {"token": None, "issued_at": None, "generated_at": []},
        }
        if seed:
            # A group this tool never created: a reconciler must leave it alone.
            state["groups"]["1"] = {
                "id": 1,
                "name": "vendor-spam",
                "description": "Vendor spam callers (seeded)",
                "numbers": {"+919811100001": None, "+919811100002": None},
            }
            state["group_names"]["vendor-spam"] = "1"
            state["next_id"] = 2
        return state

    def endpoint_of(self, request: httpx.Request) -> str:
        path = request.url.path
        if path in _ROUTES:
            return f"{request.method} {path}"
        return f"{request.method} (unknown path)"

    def credential_of(self, request: httpx.Request) -> str | None:
        if request.url.path == TOKEN_PATH or self.auth_mode == "basic":
            secret = request.headers.get("apiKey")
        else:
            secret = _bearer(request)
        user = _json_body(request).get("userName")
        if secret is None and user is None:
            return None
        return f"{secret}|{user}"

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path not in _ROUTES:
            # [INFER] undocumented: unknown paths (including any read) are a JSON 404.
            return httpx.Response(404, json={"status": "error", "message": "Not Found"})
        method, handler = _ROUTES[path]
        if request.method != method:
            return httpx.Response(405, json={"status": "error", "message": "Method Not Allowed"})
        try:
            body = getattr(self, handler)(request)
        except _Answer as answer:
            body = answer.body
        # [INFER] HTTP status codes are not documented: every outcome is 200 with the envelope.
        return httpx.Response(200, json=body)

    def server_error(self) -> httpx.Response:
        # [INFER] the envelope shape for a 5xx
        return httpx.Response(500, json={"status": "error", "message": "Internal Server Error"})

    def rate_limited(self, retry_after: int) -> httpx.Response:
        # Other CloudAgent APIs throttle with {"message": "Max limit exceeded", "status": "error"}
        # (CONTRACTS §1 "Rate / concurrency limits"); [INFER] here as a 429 with Retry-After.
        return httpx.Response(
            429,
            json={"message": "Max limit exceeded", "status": "error"},
            headers={"Retry-After": str(retry_after)},
        )

    # -- test helpers (not part of the API) ------------------------------------------

    def members(self, group_name: str) -> dict[str, float | None]:
        """The unexpired numbers of a group (number -> expiry epoch), for tests."""
        with self.lock:
            gid = self.state["group_names"].get(group_name)
            if gid is None:
                return {}
            now = self.clock()
            numbers = self.state["groups"][gid]["numbers"]
            return {n: e for n, e in numbers.items() if e is None or e > now}

    # -- auth ------------------------------------------------------------------------

    def _generate_token(self, request: httpx.Request) -> dict[str, Any]:
        body = _json_body(request)
        if body.get("userName") is None:
            raise _false(USERNAME_NULL)
        if (
            request.headers.get("apiKey") != self.accepted["api_key"]
            or body["userName"] != self.accepted["username"]
        ):
            self.auth_rejected(request)
            raise _false(BAD_USER_OR_KEY)
        auth = self.state["auth"]
        now = self.clock()
        recent = [t for t in auth["generated_at"] if now - t < TOKEN_WINDOW]
        if len(recent) >= TOKEN_LIMIT:
            self.violation("generateToken more than 10 times per hour")
            auth["generated_at"] = recent
            raise _false(TOKEN_LIMIT_EXCEEDED)
        # "Once a new token is generated, any previously issued tokens will become invalid."
        token = "eyJ" + secrets.token_urlsafe(32)
        auth.update(token=token, issued_at=now, generated_at=[*recent, now])
        return {"token": token, "message": ""}

    def _authenticate(self, request: httpx.Request) -> dict[str, Any]:
        """The request body once the caller is who it says; else an auth answer."""
        body = _json_body(request)
        if self.auth_mode == "token":
            auth = self.state["auth"]
            token = _bearer(request)
            if token is None or token != auth["token"]:  # missing, unknown or superseded
                raise self._auth_failed(request)
            if self.clock() >= auth["issued_at"] + TOKEN_TTL:
                # [INFER] Not counted as an auth failure: an expiring token is the routine
                # signal to refresh it, and requests already in flight with it are no
                # "repeats after a rejection".
                raise _false(TOKEN_EXPIRED)
        elif request.headers.get("apiKey") != self.accepted["api_key"]:
            # Basic mode: "headers apiKey: <key> and Content-Type: application/json"
            raise self._auth_failed(request)
        if "userName" not in body:
            raise _error(MANDATORY)  # [INFER] userName is one of the mandatory parameters
        if body["userName"] != self.accepted["username"]:
            raise self._auth_failed(request)
        return body

    def _auth_failed(self, request: httpx.Request) -> _Answer:
        self.auth_rejected(request)
        return _error(AUTH_FAILED)

    # -- field checks ----------------------------------------------------------------

    @staticmethod
    def _check_length(value: object) -> None:
        # "Name (X) allows 2 to 50 characters only" -- and the description error is
        # reported under key "name" too ("Name (B) ..."), as documented.
        if not isinstance(value, str) or not 2 <= len(value) <= 50:
            raise _error(INVALID_DATA, {"name": f"Name ({value}) allows 2 to 50 characters only"})

    def _block_numbers(self, request: httpx.Request, value: object) -> list[Any]:
        """The numbers of a request as sent: a string is ONE number, an array its items."""
        if isinstance(value, str) and value.strip():
            items: list[Any] = [value]
        elif (
            isinstance(value, list)
            and value
            and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value)
        ):
            items = value
        else:
            raise _error(INVALID_DATA, {"blockNumbers": BAD_NUMBERS})
        self.count_numbers(self.endpoint_of(request), len(items))
        if len(items) > MAX_NUMBERS:
            self.violation("more than 100 numbers in one request")
            raise _error(INVALID_DATA, {"blockNumbers": TOO_MANY_NUMBERS})
        return items

    def _expiry(self, body: dict[str, Any]) -> float | None:
        """``expiryDate`` as epoch seconds (IST wall time), or None when absent."""
        raw = body.get("expiryDate")
        if raw is None or raw == "":
            return None
        try:
            when = datetime.strptime(raw, EXPIRY_FORMAT).replace(tzinfo=IST).timestamp()
        except (TypeError, ValueError):
            raise _error(INVALID_DATA, {"expiryDate": BAD_EXPIRY}) from None
        if when <= self.clock():
            raise _error(INVALID_DATA, {"expiryDate": PAST_EXPIRY})  # [INFER]
        return when

    def _group_of(self, body: dict[str, Any]) -> dict[str, Any]:
        """The group named by ``groupName`` and/or ``id`` (both must agree)."""
        gid = None
        if "groupName" in body:
            name = body["groupName"]
            gid = self.state["group_names"].get(name) if isinstance(name, str) else None
            if gid is None:
                raise _error(INVALID_GROUP)
        if "id" in body:
            given = str(body["id"])
            if given not in self.state["groups"] or (gid is not None and gid != given):
                raise _error(INVALID_GROUP)
            gid = given
        return self.state["groups"][gid]

    def _alive(self, group: dict[str, Any], number: str) -> bool:
        """Whether ``number`` is in ``group`` now; an expired number is dropped."""
        numbers = group["numbers"]
        if number not in numbers:
            return False
        expires = numbers[number]
        if expires is not None and expires <= self.clock():
            del numbers[number]  # [INFER] "the duration you want the number to remain"
            return False
        return True

    def _add(
        self, group: dict[str, Any], items: list[Any], expires: float | None
    ) -> tuple[list[str], list[str], int]:
        """Store numbers: (normalised successes, failed inputs as given, new count)."""
        ok: list[str] = []
        bad: list[str] = []
        new = 0
        seen: set[str] = set()
        for item in items:
            number = normalise_number(item)
            if number is None:
                # The create sample puts a comma-joined string, whole, under output.error.
                bad.append(str(item))
                continue
            if number in seen:
                continue
            seen.add(number)
            if self.fail_number():
                bad.append(str(item))
                continue
            if not self._alive(group, number):
                new += 1
            # [INFER] a number already in the group takes this request's expiryDate
            # (none clears it).
            group["numbers"][number] = expires
            ok.append(number)
        return ok, bad, new

    # -- endpoints -------------------------------------------------------------------

    def _create(self, request: httpx.Request) -> dict[str, Any]:
        body = self._authenticate(request)
        if any(key not in body for key in ("name", "description", "blockNumbers")):
            raise _error(MANDATORY)
        name, description = body["name"], body["description"]
        self._check_length(name)
        self._check_length(description)
        items = self._block_numbers(request, body["blockNumbers"])
        expires = self._expiry(body)
        if name in self.state["group_names"]:
            raise _error(GROUP_EXISTS)  # [INFER] undocumented text
        gid = self.state["next_id"]
        self.state["next_id"] = gid + 1
        group = {"id": gid, "name": name, "description": description, "numbers": {}}
        self.state["groups"][str(gid)] = group
        self.state["group_names"][name] = str(gid)
        ok, bad, _ = self._add(group, items, expires)
        return {
            "status": "success",
            "message": "created",
            "input": {"name": name, "description": description, "blockNumbers": items},
            # Quirk: "succes" is misspelt in create/update output.
            "output": {"affectedRows": 1, "lastInsertId": gid, "succes": ok, "error": bad},
        }

    def _update(self, request: httpx.Request) -> dict[str, Any]:
        body = self._authenticate(request)
        if "blockNumbers" not in body or ("groupName" not in body and "id" not in body):
            raise _error(MANDATORY)
        group = self._group_of(body)
        if "description" in body:
            self._check_length(body["description"])
        items = self._block_numbers(request, body["blockNumbers"])
        expires = self._expiry(body)
        if "description" in body:
            group["description"] = body["description"]
        # "You can add multiple phone numbers to a Block Number group": additive.
        ok, bad, new = self._add(group, items, expires)
        return {
            "status": "success",
            "message": "updated",
            "input": {"id": group["id"], "blockNumbers": items},
            # [INFER] `inserted` counts the rows written (new plus re-added).
            "output": {"succes": ok, "error": bad, "new": new, "inserted": len(ok)},
        }

    def _delete(self, request: httpx.Request) -> dict[str, Any]:
        body = self._authenticate(request)
        # The page's cURL sample sends "blockNumber" (singular); [INFER] accepted too.
        key = "blockNumbers" if "blockNumbers" in body else "blockNumber"
        if key not in body or ("groupName" not in body and "id" not in body):
            raise _error(MANDATORY)  # [INFER] a group selector is needed (legacy API: id)
        group = self._group_of(body)
        items = self._block_numbers(request, body[key])
        ok: list[str] = []
        bad: list[str] = []
        seen: set[str] = set()
        for item in items:
            number = normalise_number(item)
            if number is None:
                bad.append(str(item))
                continue
            if number in seen:
                continue  # five inputs with one duplicate give "deleted": 4
            seen.add(number)
            if self._alive(group, number):
                del group["numbers"][number]
                ok.append(number)
            else:
                bad.append(str(item))  # [INFER] not in the group
        return {
            "status": "success",
            "message": "deleted",
            "input": {"id": group["id"], "blockNumbers": items},
            # Delete output spells "success" correctly.
            "output": {"success": ok, "error": bad, "deleted": len(ok)},
        }
