"""Emulator of the Wooxy (formerly SmartSender.io) Phone Black List API v3.

Owns the three documented methods, ``POST /v3/phone-blacklist/{add,find,remove}``,
with ``Access-Token`` auth, the 100-record cap on add, E.164 and reject-type
validation with the documented error strings, silent de-duplication on add,
offset/limit paging with ``totalCount`` on find, one number per remove and the
documented "Do not send more than 10 concurrent API requests" limit. It must not
invent endpoints: tests inspect it through ``/__sandbox/state`` or ``.state``.

Where the docs are silent, ``WooxyQuirks`` says how this server answers; each
dialect in ``WooxyEmulator.dialects`` is one defensible bundle of answers.

Sources: CONTRACTS.md §2 and ``shared/seeds/001_*.txt`` (the "Add Contact To
Phone Black List" page). Choices the docs leave open are marked ``[INFER]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from .base import Emulator

PREFIX = "/v3/phone-blacklist/"
ENDPOINTS = {f"{PREFIX}{name}": f"POST {PREFIX}{name}" for name in ("add", "find", "remove")}

# "records.rejectType: One of the available reasons for placing the phone number in the
# Phone Black List" (CONTRACTS §2: import | invalid | unsubscribe | undeliverable)
REJECT_TYPES = ("import", "invalid", "unsubscribe", "undeliverable")
# "Maximum count of records per transaction is 100, current {n}"
MAX_RECORDS = 100
# "IMPORTANT: Do not send more than 10 concurrent API requests."
MAX_CONCURRENT = 10
# [INFER] the doc's own example "+15555555" passes, so validation is loose (CONTRACTS §2 chk 3)
E164 = re.compile(r"^\+[1-9]\d{1,14}$")

AUTH_ERROR = "Invalid authorization token!"
BAD_REQUEST = "Bad Request"
TOO_MANY = "Too many concurrent requests"  # [INFER] the docs give no text for this

SEED = (
    ("+919812300001", "unsubscribe"),  # a user's own opt-out: never to be removed
    ("+14155550199", "import"),
    ("+919876543210", "invalid"),
)


@dataclass(frozen=True)
class WooxyQuirks:
    """How this server answers where CONTRACTS §2 says [INFER] or "not documented"."""

    #: find returns at most this many rows, silently, whatever ``limit`` asks (None: all
    #: asked). "limit: integer, default 20"; no maximum is documented.
    page_cap: int | None = None
    #: the HTTP status of every ``result: false`` reply (None: 400/401/404/... by
    #: error, as today). "HTTP status codes are not documented."
    error_status: int | None = None
    #: which "no phoneNumber" forms of find list the whole list: "omitted", "null",
    #: "empty". The docs mark it required; the SDK pages with ``null``.
    find_unfiltered: frozenset[str] = frozenset({"omitted", "null"})
    #: totalCount counts the whole account even when find is filtered ("Total number
    #: of contact records in account Phone Black List"), not the matching rows
    account_total: bool = False
    #: the error for removing an unlisted number (None: ``result: true``): "not documented"
    absent_remove_error: str | None = None
    #: the answer beyond 10 concurrent requests (and to an injected rate limit):
    #: HTTP status, error text, whether a Retry-After header comes with it
    throttle: tuple[int, str, bool] = (429, TOO_MANY, True)
    #: entries as a UI import stored them (number as written, rejectType), seeded too
    imported: tuple[tuple[str, str], ...] = ()
    #: remove takes a listed number as it is stored, whatever its format (else every
    #: remove is checked as E.164 first, as add is)
    remove_as_stored: bool = False


DIALECTS: Mapping[str, WooxyQuirks] = {
    "default": WooxyQuirks(),
    "strict": WooxyQuirks(
        page_cap=20,
        find_unfiltered=frozenset({"null"}),
        account_total=True,
        absent_remove_error="Phone not found",
    ),
    "lean": WooxyQuirks(
        page_cap=50,
        error_status=200,
        find_unfiltered=frozenset({"omitted", "empty"}),
        throttle=(200, "Service busy, try again later", False),
    ),
    "national": WooxyQuirks(
        imported=(("015112340004", "import"), ("0151 1234 0005", "unsubscribe")),
        remove_as_stored=True,
    ),
}
DIALECT_NOTES: Mapping[str, str] = {
    "default": "the first guess: find honours any limit, errors under 4xx/5xx, "
    "phoneNumber omitted or null lists all, removing an unlisted number is result true",
    "strict": "docs read literally: at most 20 rows a page whatever limit asks, find "
    "needs phoneNumber (null lists all, omitted refused), totalCount counts the whole "
    "account, removing an unlisted number is 404 'Phone not found'",
    "lean": "every error under HTTP 200, at most 50 rows a page, find refuses "
    "phoneNumber null ('' or omitted lists all), throttled as 200 'Service busy, try "
    "again later'",
    "national": "a DE account whose UI import stored national numbers (015112340004, an "
    "opt-out '0151 1234 0005') as written; remove takes a listed number as stored",
}


def error(status: int, *messages: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The documented error envelope: ``{"result": false, "errors": [...]}``."""
    return httpx.Response(status, json={"result": False, "errors": list(messages)}, headers=headers)


def reject_types_error(given: object) -> str:
    # "Allowed reject types are {allowed}, but {rejectType} given"
    return f"Allowed reject types are {', '.join(REJECT_TYPES)}, but {given} given"


def invalid_number(number: object) -> str:
    # "{phoneNumber} is not a valid E.164 phone number"
    return f"{number} is not a valid E.164 phone number"


class WooxyEmulator(Emulator):
    """The account's phone blacklist: ``state["entries"]`` maps number -> record,
    in insertion order (JSON objects keep it), so lookups are O(1)."""

    type_name = "wooxy"
    credentials: ClassVar[dict[str, str]] = {"access_token": "sandbox-wooxy-token"}
    dialects: ClassVar[Mapping[str, WooxyQuirks]] = DIALECTS
    dialect_notes: ClassVar[Mapping[str, str]] = DIALECT_NOTES
    quirks: WooxyQuirks

    _changed = False  # the request being routed changed the entries
    _skip_next_save = False

    def initial_state(self, seed: bool) -> dict[str, Any]:
        created = self._now()
        seeded = (*SEED, *self.quirks.imported) if seed else ()
        return {"entries": {n: {"rejectType": t, "createdAt": created} for n, t in seeded}}

    def endpoint_of(self, request: httpx.Request) -> str:
        path = request.url.path
        if path in ENDPOINTS:
            return f"{request.method} {path}"
        return f"{request.method} {{unknown path}}"  # a stable label, whatever was asked

    def credential_of(self, request: httpx.Request) -> str | None:
        return request.headers.get("Access-Token")

    def server_error(self) -> httpx.Response:
        # "Internal server error" is a documented method error
        return self._error(500, "Internal server error")

    def rate_limited(self, retry_after: int) -> httpx.Response:
        # [INFER] 429 with the concurrency message: the docs document no rate limit shape
        return self._throttled(retry_after)

    def _error(self, status: int, *messages: str, headers: dict[str, str] | None = None):
        """The error envelope under the dialect's status for body-level errors."""
        return error(self.quirks.error_status or status, *messages, headers=headers)

    def _throttled(self, retry_after: int) -> httpx.Response:
        status, message, with_header = self.quirks.throttle
        headers = {"Retry-After": str(retry_after)} if with_header else None
        return self._error(status, message, headers=headers)

    def save(self) -> None:
        if self._skip_next_save:
            self._skip_next_save = False
            return
        super().save()

    # -- the API -------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        self._changed = False
        response = self._route(request)
        # find is a POST (every Wooxy method is) but changes nothing, and the base saves
        # after every POST (in the same locked block): skip that save when nothing
        # changed, rather than rewrite a 100 000-number state file per page read.
        self._skip_next_save = request.method in self.write_methods and not self._changed
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        # "IMPORTANT: Do not send more than 10 concurrent API requests."
        if self.counters.in_flight > MAX_CONCURRENT:
            self.violation("more than 10 concurrent requests")
            # [INFER] status 429 and message: the docs do not say what happens beyond 10
            return self._throttled(1)
        path = request.url.path
        if path not in ENDPOINTS:
            return self._error(404, BAD_REQUEST)  # [INFER] unknown path -> 404 "Bad Request"
        if request.method != "POST":
            # "Every method is POST with a JSON body" -> [INFER] 405 "Bad Request"
            return self._error(405, BAD_REQUEST)
        token = self.credential_of(request)
        if not token or token != self.accepted.get("access_token"):
            self.auth_rejected(request)
            # [INFER] HTTP 401; the body is the documented "Invalid authorization token!"
            return self._error(401, AUTH_ERROR)
        body = self._body(request)
        if body is None:
            return self._error(400, BAD_REQUEST)  # [INFER] unparseable body -> "Bad Request"
        name = path[len(PREFIX) :]
        if name == "find":
            return self._find(body)
        return self._add(body) if name == "add" else self._remove(body)

    def _add(self, body: dict[str, Any]) -> httpx.Response:
        records = body.get("records")
        if records is None or records == []:
            # "Argument {argument} required"; [INFER] an empty array counts as missing
            return self._error(400, "Argument records required")
        if not isinstance(records, list):
            return self._error(400, BAD_REQUEST)  # [INFER]
        self.count_numbers(ENDPOINTS[f"{PREFIX}add"], len(records))
        if len(records) > MAX_RECORDS:
            self.violation("more than 100 records per add")
            # "Maximum count of records per transaction is 100, current {n}"
            return self._error(
                400, f"Maximum count of records per transaction is 100, current {len(records)}"
            )
        problems: list[str] = []
        valid: list[tuple[str, str]] = []
        for record in records:
            if not isinstance(record, dict):
                problems.append(BAD_REQUEST)
                continue
            number = record.get("phoneNumber")
            # "records.rejectType optional"; [INFER] omitted -> "import" (the SDK's fallback)
            reject_type = record.get("rejectType", "import")
            found = len(problems)
            if number is None:
                problems.append("Argument phoneNumber required")
            elif not isinstance(number, str) or not E164.match(number):
                problems.append(invalid_number(number))
            if reject_type not in REJECT_TYPES:
                problems.append(reject_types_error(reject_type))
            if len(problems) == found:
                valid.append((number, reject_type))
        if problems:
            # [INFER] a request with any invalid record is rejected whole (nothing saved),
            # listing one error per invalid record
            return self._error(400, *dict.fromkeys(problems))
        entries = self.state["entries"]
        created = self._now()
        for number, reject_type in valid:
            # "In case of duplicated objects, duplicates will be ignored and no errors will
            # be returned." / KB: "Phone numbers already present in the Blacklist are
            # ignored and not updated" -> an existing entry keeps its rejectType.
            if number not in entries:
                entries[number] = {"rejectType": reject_type, "createdAt": created}
                self._changed = True
        return httpx.Response(200, json={"result": True})

    def _find(self, body: dict[str, Any]) -> httpx.Response:
        number = body.get("phoneNumber")
        reject_type = body.get("rejectType")
        offset = body.get("offset", 0)
        limit = body.get("limit", 20)  # "limit: integer, default 20"; no maximum documented
        # The docs call phoneNumber required ("Argument phoneNumber must be a non-empty
        # string"), but the official SDK pages the whole list with phoneNumber null:
        # [INFER] which "no number" forms list everything is the dialect's
        unfiltered = _no_number_form(body)
        if unfiltered is not None and unfiltered not in self.quirks.find_unfiltered:
            if unfiltered == "omitted":
                return self._error(400, "Argument phoneNumber required")
            return self._error(400, "Argument phoneNumber must be a non-empty string")
        if unfiltered is None and not isinstance(number, str):
            return self._error(400, "Argument phoneNumber must be a non-empty string")
        if reject_type is not None and reject_type not in REJECT_TYPES:
            return self._error(400, reject_types_error(reject_type))
        if not _non_negative_int(offset) or not _non_negative_int(limit):
            return self._error(400, BAD_REQUEST)  # [INFER]
        # [INFER] a server-side cap, applied silently (the reply echoes the limit asked)
        rows = limit if self.quirks.page_cap is None else min(limit, self.quirks.page_cap)
        entries: dict[str, dict[str, str]] = self.state["entries"]
        if unfiltered is None:
            self.count_numbers(ENDPOINTS[f"{PREFIX}find"], 1)
            record = entries.get(number)  # [INFER] exact match, no format check
            hit = record is not None and reject_type in (None, record["rejectType"])
            matching = [(number, record)] if hit else []
            total, page = len(matching), matching[offset : offset + rows]
        elif reject_type is None:  # the whole list: page it without copying it
            ordered = self.ordered("entries", entries)
            total, page = len(ordered), ordered[offset : offset + rows]
        else:
            matching = [(n, r) for n, r in entries.items() if r["rejectType"] == reject_type]
            total, page = len(matching), matching[offset : offset + rows]
        data = [
            {"phoneNumber": n, "rejectType": r["rejectType"], "createdAt": r["createdAt"]}
            for n, r in page
        ]
        # "totalCount: Total number of contact records in account Phone Black List";
        # [INFER] counted after the phoneNumber/rejectType filters, or (dialect) not
        if self.quirks.account_total:
            total = len(entries)
        return httpx.Response(
            200,
            json={
                "result": True,
                "data": data,
                "totalCount": total,
                "offset": offset,
                "limit": limit,
            },
        )

    def _remove(self, body: dict[str, Any]) -> httpx.Response:
        number = body.get("phoneNumber")
        if "records" in body or isinstance(number, list):
            # Body: {"phoneNumber": "+15555555"}: one number per call, no batch remove
            self.violation("more than one number per remove")
            return self._error(400, BAD_REQUEST)
        if number is None:
            return self._error(400, "Argument phoneNumber required")
        if not isinstance(number, str) or not number:
            return self._error(400, "Argument phoneNumber must be a non-empty string")  # [INFER]
        self.count_numbers(ENDPOINTS[f"{PREFIX}remove"], 1)
        entries = self.state["entries"]
        listed_as_is = self.quirks.remove_as_stored and number in entries
        if not listed_as_is and not E164.match(number):
            return self._error(400, invalid_number(number))  # [INFER] validated as on add
        if entries.pop(number, None) is not None:
            self._changed = True
        elif self.quirks.absent_remove_error is not None:
            # [INFER] removing a number that is not listed: "not documented"
            return self._error(404, self.quirks.absent_remove_error)
        return httpx.Response(200, json={"result": True})

    # -- helpers -------------------------------------------------------------------

    def _body(self, request: httpx.Request) -> dict[str, Any] | None:
        raw = request.content
        if not raw.strip():
            return {}  # [INFER] "an empty {} where there are no parameters"
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _now(self) -> str:
        # createdAt "YYYY-MM-DD h:i:s"; the SDK parses it as UTC
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _no_number_form(body: dict[str, Any]) -> str | None:
    """How a find asks for no number ("omitted", "null", "empty"); None if it asks one."""
    if "phoneNumber" not in body:
        return "omitted"
    number = body["phoneNumber"]
    return "null" if number is None else "empty" if number == "" else None


def _non_negative_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
