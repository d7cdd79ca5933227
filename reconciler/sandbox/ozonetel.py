"""Emulator of Ozonetel CloudAgent's block-number-group API (CONTRACTS.md §1, seed 000).

Owns the provider's wire behaviour and nothing else: both account auth modes
(token via ``generateToken``, or basic with an ``apiKey`` header), the
create / update / delete endpoints with their verbatim messages and quirks
(misspelt ``succes``, numbers under ``output.error`` while ``status`` is
``success``, HTTP 200 for every documented outcome), the 100-number cap and
per-request ``expiryDate``. There is deliberately no read endpoint: Ozonetel
documents none (CONTRACTS §1 endpoint 4, "NOT FOUND"); tests inspect
``emulator.state`` / ``/__sandbox/state`` or :meth:`OzonetelEmulator.members`.

Where the docs are silent the emulator answers in one of several dialects
(``OzonetelEmulator.dialects``, options in :class:`Quirks`, one line each in
``dialect_notes``): ``default`` (the first guess), ``strict``, ``alt``, ``lean``.

State (plain JSON)::

    {"groups": {"1": {"id": 1, "name": "vendor-spam", "description": "...",
                      "numbers": {"+919811100001": null, "+919811100002": 1893436200}}},
     "group_names": {"vendor-spam": "1"},      # name -> id, O(1) lookups
     "next_id": 2,
     "auth": {"token": null, "issued_at": null, "uses": 0, "generated_at": [epoch, ...]}}

A number maps to its expiry (epoch seconds) or ``null``; a number whose expiry
has passed by ``self.clock()`` counts as gone and is dropped when touched.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

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
# Other CloudAgent APIs' throttling answer ({"message": "Max limit exceeded", "status": "error"}).
MAX_LIMIT = "Max limit exceeded"
# [INFER] Undocumented texts for limits the docs state without an error body.
TOKEN_LIMIT_EXCEEDED = "Token generation limit exceeded"
TOO_MANY_NUMBERS = "Maximum 100 numbers allowed per request"
GROUP_EXISTS = "Group name already exists"
BAD_EXPIRY = "expiryDate must be in the format YYYY-MM-DD HH:MM:SS"
PAST_EXPIRY = "expiryDate must be in the future"

#: [INFER] the HTTP status of each body-level error where a server sends 4xx, not 200
_ERROR_STATUS = {
    AUTH_FAILED: 401,
    TOKEN_EXPIRED: 401,
    BAD_USER_OR_KEY: 401,
    USERNAME_NULL: 400,
    MANDATORY: 400,
    INVALID_DATA: 400,
    INVALID_GROUP: 404,
    TOKEN_LIMIT_EXCEEDED: 403,  # generateToken's quota refusal: forbidden, not throttled
    GROUP_EXISTS: 409,
}


@dataclass(frozen=True)
class Quirks:
    """How one dialect answers where CONTRACTS §1 says [INFER] or "not documented"."""

    #: body-level errors sent with a 4xx status (the same body) instead of HTTP 200
    error_status_4xx: bool = False
    #: create on an existing name: refused with ``group_exists_message``, refused as
    #: "invalid data" with a ``name`` error, or carried out on the existing group
    group_exists: Literal["refuse", "invalid_data", "reuse"] = "refuse"
    group_exists_message: str = GROUP_EXISTS
    #: what selects the group of a delete: ``id`` and/or ``groupName`` (both must agree),
    #: ``id`` only (the error table's "Id"; groupName ignored), or ``groupName`` only
    delete_selector: Literal["both", "id", "name"] = "both"
    #: a number not in the group on delete: under ``output.error``, or in neither list
    delete_absent: Literal["error", "silent"] = "error"
    #: a token expires after this many block-number requests (None: only after TOKEN_TTL)
    token_uses: int | None = None
    #: (status, message) of generateToken's refusal of an 11th token in an hour
    quota_answer: tuple[str, str] = ("false", TOKEN_LIMIT_EXCEEDED)
    #: how ``succes``/``success`` list Indian numbers: +91…, 10 national digits, or 91…
    echo: Literal["plus91", "national", "cc"] = "plus91"
    #: an update must carry ``description`` and ``expiryDate`` (a date in the format)
    update_requires_all: bool = False


DIALECTS: dict[str, Quirks] = {
    "default": Quirks(),
    "strict": Quirks(
        error_status_4xx=True,
        group_exists="invalid_data",
        delete_selector="id",
        update_requires_all=True,
    ),
    "alt": Quirks(
        group_exists_message="Block number group with this name already exists",
        token_uses=25,
        quota_answer=("false", MAX_LIMIT),  # what users of the real API were shown
        echo="national",
    ),
    "lean": Quirks(group_exists="reuse", delete_selector="name", delete_absent="silent", echo="cc"),
}

DIALECT_NOTES: dict[str, str] = {
    "default": "the first guess: every answer HTTP 200; 'Group name already exists'; "
    "delete by id and/or groupName; absent numbers under output.error; echoes +91…",
    "strict": "body-level errors with 4xx statuses; an existing name is 'invalid data' "
    "(name); delete selects by id only; update requires description and expiryDate",
    "alt": "other words: another group-exists text, the quota refused as 'Max limit exceeded'; "
    "a token expires after 25 requests; echoes 10 national digits",
    "lean": "create on an existing name adds to it and returns its id; delete selects by "
    "groupName only; absent numbers in neither delete list; echoes 91… without +",
}


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
    dialects: ClassVar[dict[str, Quirks]] = DIALECTS
    dialect_notes: ClassVar[dict[str, str]] = DIALECT_NOTES
    quirks: Quirks

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
            "auth": {"token": None, "issued_at": None, "uses": 0, "generated_at": []},
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
        return httpx.Response(self._status_of(body), json=body)

    def _status_of(self, body: dict[str, Any]) -> int:
        # [INFER] HTTP status codes are not documented: every outcome is 200 with the
        # envelope, unless the dialect sends body-level errors with a 4xx status.
        if not self.quirks.error_status_4xx or "token" in body or body["status"] == "success":
            return 200
        return _ERROR_STATUS.get(str(body.get("message")), 400)

    def server_error(self) -> httpx.Response:
        # [INFER] the envelope shape for a 5xx
        return httpx.Response(500, json={"status": "error", "message": "Internal Server Error"})

    def rate_limited(self, retry_after: int) -> httpx.Response:
        # Other CloudAgent APIs throttle with {"message": "Max limit exceeded", "status": "error"}
        # (CONTRACTS §1 "Rate / concurrency limits"); [INFER] here as a 429 with Retry-After.
        return httpx.Response(
            429,
            json={"message": MAX_LIMIT, "status": "error"},
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

    def issue_token(self) -> str:
        """A fresh token, as generateToken would make it, for tests of a given ``token``."""
        with self.lock:
            return self._new_token(self.clock())

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
            status, message = self.quirks.quota_answer
            if status == "false":
                raise _false(message)
            raise _error(message)
        return {"token": self._new_token(now), "message": ""}

    def _new_token(self, now: float) -> str:
        # "Once a new token is generated, any previously issued tokens will become invalid."
        auth = self.state["auth"]
        recent = [t for t in auth["generated_at"] if now - t < TOKEN_WINDOW]
        token = "eyJ" + secrets.token_urlsafe(32)
        auth.update(token=token, issued_at=now, uses=0, generated_at=[*recent, now])
        return token

    def _authenticate(self, request: httpx.Request) -> dict[str, Any]:
        """The request body once the caller is who it says; else an auth answer."""
        body = _json_body(request)
        if self.auth_mode == "token":
            auth = self.state["auth"]
            token = _bearer(request)
            if token is None or token != auth["token"]:  # missing, unknown or superseded
                raise self._auth_failed(request)
            uses = auth.get("uses", 0)
            worn = self.quirks.token_uses is not None and uses >= self.quirks.token_uses
            if worn or self.clock() >= auth["issued_at"] + TOKEN_TTL:
                # [INFER] Not counted as an auth failure: an expiring token is the routine
                # signal to refresh it, and requests already in flight with it are no
                # "repeats after a rejection".
                raise _false(TOKEN_EXPIRED)
            auth["uses"] = uses + 1
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

    def _expiry(self, body: dict[str, Any], *, required: bool = False) -> float | None:
        """``expiryDate`` as epoch seconds (IST wall time), or None when absent.

        [INFER] An absent, null or empty ``expiryDate`` means no expiry, unless the
        dialect requires the field (``required``): then it must be a date in the
        documented format ("Format: YYYY-MM-DD HH:MM:SS")."""
        raw = body.get("expiryDate")
        if raw is None or raw == "":
            if not required:
                return None
            if raw is None:
                raise _error(MANDATORY)  # a missing (or null) key, as for name/description
        try:
            when = datetime.strptime(raw, EXPIRY_FORMAT).replace(tzinfo=IST).timestamp()
        except (TypeError, ValueError):
            raise _error(INVALID_DATA, {"expiryDate": BAD_EXPIRY}) from None
        if when <= self.clock():
            raise _error(INVALID_DATA, {"expiryDate": PAST_EXPIRY})  # [INFER]
        return when

    def _group_of(self, body: dict[str, Any], selector: str = "both") -> dict[str, Any]:
        """The group named by ``groupName`` and/or ``id`` (both must agree); ``selector``
        ``id`` or ``name`` reads only that one and ignores the other."""
        gid = None
        if "groupName" in body and selector != "id":
            name = body["groupName"]
            gid = self.state["group_names"].get(name) if isinstance(name, str) else None
            if gid is None:
                raise _error(INVALID_GROUP)
        if "id" in body and selector != "name":
            given = str(body["id"])
            if given not in self.state["groups"] or (gid is not None and gid != given):
                raise _error(INVALID_GROUP)
            gid = given
        if gid is None:
            raise _error(INVALID_GROUP)  # the selector this dialect reads is not there
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

    def _echo(self, number: str) -> str:
        """A stored number as the output lists show it (the dialect's echo format)."""
        if self.quirks.echo == "national" and number.startswith("+91") and len(number) == 13:
            return number[3:]
        if self.quirks.echo == "cc":
            return number[1:]
        return number

    def _add(
        self, group: dict[str, Any], items: list[Any], expires: float | None
    ) -> tuple[list[str], list[str], int]:
        """Store numbers: (echoed successes, failed inputs as given, new count)."""
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
            ok.append(self._echo(number))
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
        existing = self.state["group_names"].get(name)
        if existing is not None and self.quirks.group_exists == "refuse":
            raise _error(self.quirks.group_exists_message)  # [INFER] undocumented text
        if existing is not None and self.quirks.group_exists == "invalid_data":
            raise _error(INVALID_DATA, {"name": f"Name ({name}) already exists"})  # [INFER]
        if existing is not None:  # "reuse": [INFER] the existing group takes the numbers
            group, rows = self.state["groups"][existing], 0
        else:
            gid = self.state["next_id"]
            self.state["next_id"] = gid + 1
            group = {"id": gid, "name": name, "description": description, "numbers": {}}
            self.state["groups"][str(gid)] = group
            self.state["group_names"][name] = str(gid)
            rows = 1
        ok, bad, _ = self._add(group, items, expires)
        return {
            "status": "success",
            "message": "created",
            "input": {"name": name, "description": description, "blockNumbers": items},
            # Quirk: "succes" is misspelt in create/update output.
            "output": {
                "affectedRows": rows,
                "lastInsertId": group["id"],
                "succes": ok,
                "error": bad,
            },
        }

    def _update(self, request: httpx.Request) -> dict[str, Any]:
        body = self._authenticate(request)
        if "blockNumbers" not in body or ("groupName" not in body and "id" not in body):
            raise _error(MANDATORY)
        strict = self.quirks.update_requires_all
        if strict and "description" not in body:
            raise _error(MANDATORY)  # the update body lists description
        group = self._group_of(body)
        if "description" in body:
            self._check_length(body["description"])
        items = self._block_numbers(request, body["blockNumbers"])
        expires = self._expiry(body, required=strict)
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
        group = self._group_of(body, self.quirks.delete_selector)
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
            if not self._alive(group, number):
                if self.quirks.delete_absent == "error":
                    bad.append(str(item))  # [INFER] not in the group
            elif self.fail_number():
                bad.append(str(item))  # not deleted: output.error under status success
            else:
                del group["numbers"][number]
                ok.append(self._echo(number))
        return {
            "status": "success",
            "message": "deleted",
            "input": {"id": group["id"], "blockNumbers": items},
            # Delete output spells "success" correctly.
            "output": {"success": ok, "error": bad, "deleted": len(ok)},
        }
