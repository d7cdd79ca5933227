"""Emulator of the Wooxy (formerly SmartSender.io) Phone Black List API v3.

Owns the three documented methods, ``POST /v3/phone-blacklist/{add,find,remove}``,
with ``Access-Token`` auth, the 100-record cap on add, E.164 and reject-type
validation with the documented error strings, silent de-duplication on add,
offset/limit paging with ``totalCount`` on find, one number per remove and the
documented "Do not send more than 10 concurrent API requests" limit. It must not
invent endpoints: tests inspect it through ``/__sandbox/state`` or ``.state``.

Sources: CONTRACTS.md §2 and ``shared/seeds/001_*.txt`` (the "Add Contact To
Phone Black List" page). Choices the docs leave open are marked ``[INFER]``.
"""

from __future__ import annotations

import json
import re
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

    _changed = False  # the request being routed changed the entries
    _skip_next_save = False

    def initial_state(self, seed: bool) -> dict[str, Any]:
        created = self._now()
        entries = {n: {"rejectType": t, "createdAt": created} for n, t in SEED} if seed else {}
        return {"entries": entries}

    def endpoint_of(self, request: httpx.Request) -> str:
        path = request.url.path
        if path in ENDPOINTS:
            return f"{request.method} {path}"
        return f"{request.method} {{unknown path}}"  # a stable label, whatever was asked

    def credential_of(self, request: httpx.Request) -> str | None:
        return request.headers.get("Access-Token")

    def server_error(self) -> httpx.Response:
        # "Internal server error" is a documented method error
        return error(500, "Internal server error")

    def rate_limited(self, retry_after: int) -> httpx.Response:
        # [INFER] 429 with the concurrency message: the docs document no rate limit shape
        return error(429, TOO_MANY, headers={"Retry-After": str(retry_after)})

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
            return error(429, TOO_MANY, headers={"Retry-After": "1"})
        path = request.url.path
        if path not in ENDPOINTS:
            return error(404, BAD_REQUEST)  # [INFER] unknown path -> 404 "Bad Request"
        if request.method != "POST":
            # "Every method is POST with a JSON body" -> [INFER] 405 "Bad Request"
            return error(405, BAD_REQUEST)
        token = self.credential_of(request)
        if not token or token != self.accepted.get("access_token"):
            self.auth_rejected(request)
            # [INFER] HTTP 401; the body is the documented "Invalid authorization token!"
            return error(401, AUTH_ERROR)
        body = self._body(request)
        if body is None:
            return error(400, BAD_REQUEST)  # [INFER] unparseable body -> 400 "Bad Request"
        name = path[len(PREFIX) :]
        if name == "find":
            return self._find(body)
        return self._add(body) if name == "add" else self._remove(body)

    def _add(self, body: dict[str, Any]) -> httpx.Response:
        records = body.get("records")
        if records is None or records == []:
            # "Argument {argument} required"; [INFER] an empty array counts as missing
            return error(400, "Argument records required")
        if not isinstance(records, list):
            return error(400, BAD_REQUEST)  # [INFER]
        self.count_numbers(ENDPOINTS[f"{PREFIX}add"], len(records))
        if len(records) > MAX_RECORDS:
            self.violation("more than 100 records per add")
            # "Maximum count of records per transaction is 100, current {n}"
            return error(
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
            return error(400, *dict.fromkeys(problems))
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
        if number is not None and (not isinstance(number, str) or not number):
            # "Argument phoneNumber must be a non-empty string". The docs call phoneNumber
            # required, but the official SDK pages the whole list with phoneNumber null:
            # [INFER] absent or null lists everything.
            return error(400, "Argument phoneNumber must be a non-empty string")
        if reject_type is not None and reject_type not in REJECT_TYPES:
            return error(400, reject_types_error(reject_type))
        if not _non_negative_int(offset) or not _non_negative_int(limit):
            return error(400, BAD_REQUEST)  # [INFER]
        entries: dict[str, dict[str, str]] = self.state["entries"]
        if number is not None:
            self.count_numbers(ENDPOINTS[f"{PREFIX}find"], 1)
            record = entries.get(number)  # [INFER] exact match, no format check
            hit = record is not None and reject_type in (None, record["rejectType"])
            matching = [(number, record)] if hit else []
            total, page = len(matching), matching[offset : offset + limit]
        elif reject_type is None:  # the whole list: page it without copying it
            ordered = self.ordered("entries", entries)
            total, page = len(ordered), ordered[offset : offset + limit]
        else:
            matching = [(n, r) for n, r in entries.items() if r["rejectType"] == reject_type]
            total, page = len(matching), matching[offset : offset + limit]
        data = [
            {"phoneNumber": n, "rejectType": r["rejectType"], "createdAt": r["createdAt"]}
            for n, r in page
        ]
        # "totalCount: Total number of contact records in account Phone Black List";
        # [INFER] counted after the phoneNumber/rejectType filters
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
            return error(400, BAD_REQUEST)
        if number is None:
            return error(400, "Argument phoneNumber required")
        if not isinstance(number, str) or not number:
            return error(400, "Argument phoneNumber must be a non-empty string")  # [INFER]
        self.count_numbers(ENDPOINTS[f"{PREFIX}remove"], 1)
        if not E164.match(number):
            return error(400, invalid_number(number))  # [INFER] validated as on add
        # [INFER] removing a number that is not listed is not an error
        if self.state["entries"].pop(number, None) is not None:
            self._changed = True
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


def _non_negative_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
