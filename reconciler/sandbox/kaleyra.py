"""Emulator of the Kaleyra.io contacts blocklist API (``/contacts/blocklisted``).

Owns the two documented operations on ``/{v1|v2}/{SID}/contacts/blocklisted``:
``GET`` (limit/offset paging, channel filter, ``mobile`` filter with the raw-``+``
quirk, only blocklisted numbers returned, no total count) and ``POST`` (per-channel
``contacts[].blocklist_status`` 1/0, adds and removes in one request, at most 100
numbers per request), with ``api-key`` + SID auth and the documented error bodies.
State is per channel: a number may be blocked on ``sms`` but not on ``voice``.
Kaleyra reports no per-number results, so there is no partial-failure injection.
It must not invent endpoints: tests inspect it through ``/__sandbox/state`` or
``.state``.

Sources: CONTRACTS.md §4 and ``shared/seeds/003_*.txt`` (the "Get Blocklist" page).
Choices the docs leave open are marked ``[INFER]``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, ClassVar
from urllib.parse import unquote_plus

import httpx

from .base import Emulator

# "curl -X GET 'https://api.kaleyra.io/v1/<SID>/contacts/blocklisted?...'"; the page
# header says "https://<api_domain>/v2/<SID>" -> [INFER] accept both versions
PATH = re.compile(r"^/(v1|v2)/([^/]+)/contacts/blocklisted/?$")

# "channel_name ... The acceptable value is "sms", "whatsapp", and "voice"."
CHANNELS = ("sms", "whatsapp", "voice")
# The sample pairs channel=whatsapp with "channel_type": "3" (a string).
# [INFER] only whatsapp=3 is documented; sms=1 and voice=2 are our guess.
CHANNEL_TYPES = {"sms": "1", "voice": "2", "whatsapp": "3"}

# "It is not possible to retrieve more than 100 contacts per response. By default,
# the limit is set to 100." / "You can send the request for a maximum set of 100
# phone numbers." / "You can update the blocklist status for up to 100 contacts per
# request." ([INFER] the POST cap counts numbers, not contact groups)
MAX_PER_REQUEST = 100
# mobile_numbers: "A valid phone number. Ensure that the country code is prefixed to
# the number. (E164 format)."
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# -- documented bodies (verbatim from the seed page) ----------------------------------

AUTH_FAILED = {
    "code": "RBC001",
    "message": "Incorrect SID or API key.",
    "data": [],
    "error": {"error": "Incorrect SID or API key."},
}
BAD_PAYLOAD = {
    "code": "WA400",
    "message": "Refer to correct payload format",
    "data": {},
    "error": {"payload": "Incorrect payload format"},
}
# [INFER] the error text: the POST error bodies were not retrieved, so the documented
# limit sentence is reused under the WA400 envelope
TOO_MANY_CONTACTS = {
    "code": "WA400",
    "message": "Refer to correct payload format",
    "data": {},
    "error": {"payload": "You can update the blocklist status for up to 100 contacts per request"},
}
SERVER_ERROR = {
    "code": "WA500",
    "message": "Please try again later",
    "data": {},
    "error": {"error": "Internal server error"},
}
# [INFER] shape: no 429 is documented; same {code, message, data, error} envelope
TOO_MANY_REQUESTS = {
    "code": "WA429",
    "message": "Too many requests",
    "data": {},
    "error": {"error": "Too many requests"},
}
# [INFER] unknown path / method: not documented; same envelope
NOT_FOUND = {
    "code": "WA404",
    "message": "Resource not found",
    "data": {},
    "error": {"error": "Resource not found"},
}
METHOD_NOT_ALLOWED = {
    "code": "WA405",
    "message": "Method not allowed",
    "data": {},
    "error": {"error": "Method not allowed"},
}
FETCHED_MESSAGE = "Successfully fetched blocklisted number(s)"  # code CNT196
# [INFER] the POST success body was not retrieved: CNT-prefixed code like CNT196
UPDATED = {
    "code": "CNT197",
    "message": "Blocklist status updated successfully",
    "data": [],
    "error": {},
}

# Pre-seeded entries: (channel, number, origin). "opt-out" stands for a user's own
# STOP reply: no list declares it and a reconciler must never remove it.
SEED = (
    ("sms", "+919812300002", "opt-out"),
    ("sms", "+919812300003", "opt-out"),
    ("sms", "+919876543210", "api"),
    ("whatsapp", "+919812300004", "api"),
)


def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return httpx.Response(status, json=body, headers=headers)


def canonical(number: str) -> str:
    """The key a number is stored under: ``+`` and its digits (so that a number the
    provider holds in another format, e.g. ``919812300005``, is still found)."""
    return "+" + re.sub(r"\D", "", number)


def parse_query(raw: bytes) -> dict[str, str]:
    """The query parameters, decoded form-style (``+`` -> space, ``%2B`` -> ``+``).
    Parsed by hand from the raw query so the ``mobile`` quirk below sees exactly what
    the client sent. [INFER] a repeated parameter keeps its first value."""
    params: dict[str, str] = {}
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        params.setdefault(unquote_plus(key), unquote_plus(value))
    return params


def parse_mobiles(value: str) -> list[str]:
    """The ``mobile`` filter: comma-separated numbers.

    The doc's sample query is ``mobile=+91802XXXXX52%2C+91803XXXXX53``: the comma is
    percent-encoded but ``+`` is sent raw, which form-decoding turns into a space. So
    a value decoded with a leading space is read as ``+`` (CONTRACTS §4 [INFER]).
    """
    numbers = []
    for item in value.split(","):
        stripped = item.strip()
        if not stripped:
            continue
        if item[:1].isspace() and not stripped.startswith("+"):
            stripped = "+" + stripped
        numbers.append(stripped)
    return numbers


class KaleyraEmulator(Emulator):
    """``state["channels"][channel]`` maps canonical number -> record (``mobile`` as
    stored, ``added_at``, ``origin``), in insertion order, so lookups are O(1)."""

    type_name = "kaleyra"
    credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-kaleyra-key", "sid": "HXSANDBOX01"}

    # bumped by every change of the entries; ``save`` writes only when it moved
    _version = 1
    _saved_version = 0

    def initial_state(self, seed: bool) -> dict[str, Any]:
        channels: dict[str, dict[str, dict[str, str]]] = {c: {} for c in CHANNELS}
        if seed:
            added = self._now()
            for channel, number, origin in SEED:
                channels[channel][number] = {"mobile": number, "added_at": added, "origin": origin}
        return {"channels": channels}

    def endpoint_of(self, request: httpx.Request) -> str:
        m = PATH.match(request.url.path)
        if not m:
            return f"{request.method} {{unknown path}}"  # a stable label, whatever was asked
        return f"{request.method} /{m.group(1)}/{{sid}}/contacts/blocklisted"

    def credential_of(self, request: httpx.Request) -> str | None:
        m = PATH.match(request.url.path)
        sid = m.group(2) if m else ""
        return f"{request.headers.get('api-key', '')}@{sid}"

    def server_error(self) -> httpx.Response:
        return respond(500, SERVER_ERROR)  # documented "500 Internal Server Error"

    def rate_limited(self, retry_after: int) -> httpx.Response:
        return respond(429, TOO_MANY_REQUESTS, {"Retry-After": str(retry_after)})  # [INFER]

    def save(self) -> None:
        # the base persists after every POST, even a rejected one: skip rewriting a
        # 100 000-number state file when nothing changed
        if self._version == self._saved_version:
            return
        super().save()
        self._saved_version = self._version

    def reset(self, seed: bool = True) -> None:
        self._version += 1
        super().reset(seed)

    # -- the API ---------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        m = PATH.match(request.url.path)
        if not m:
            return respond(404, NOT_FOUND)  # [INFER]
        # "the Kaleyra.io application will verify the API key and your company ID (the SID)"
        key = request.headers.get("api-key")
        if key != self.accepted.get("api_key") or m.group(2) != self.accepted.get("sid"):
            self.auth_rejected(request)
            return respond(401, AUTH_FAILED)
        endpoint = self.endpoint_of(request)
        if request.method == "GET":
            return self._get(request, endpoint)
        if request.method == "POST":
            return self._post(request, endpoint)
        return respond(405, METHOD_NOT_ALLOWED)  # [INFER]

    def _get(self, request: httpx.Request, endpoint: str) -> httpx.Response:
        params = parse_query(request.url.query)
        limit = _non_negative_int(params.get("limit") or "100")  # "By default ... 100"
        offset = _non_negative_int(params.get("offset") or "0")  # "By default, offset is 0"
        if limit is None or offset is None or limit == 0:
            return respond(400, BAD_PAYLOAD)  # [INFER] limit must be 1.., offset 0..
        if limit > MAX_PER_REQUEST:
            # "It is not possible to retrieve more than 100 contacts per response."
            # [INFER] a larger limit is clamped, not refused
            self.violation("limit over 100")
            limit = MAX_PER_REQUEST
        channel = params.get("channel") or None  # [INFER] empty = not given
        if channel is not None and channel not in CHANNELS:
            return respond(400, BAD_PAYLOAD)
        channels = (channel,) if channel else CHANNELS
        state: dict[str, dict[str, dict[str, str]]] = self.state["channels"]
        mobile = params.get("mobile") or None
        if mobile is None:
            # "In case mobile numbers is not included in the API request, the complete
            # blocklist numbers will be provided with a limit of 100." Without a channel
            # filter: one row per (number, channel) pair, channel by channel [INFER].
            if len(channels) == 1:  # the common case: slice the snapshot, skip nothing
                snapshot = self.ordered(channels[0], state[channels[0]])
                rows = ((channels[0], r) for _, r in snapshot[offset : offset + limit])
                offset = 0
            else:
                rows = chain.from_iterable(
                    ((c, r) for _, r in self.ordered(c, state[c])) for c in channels
                )
        else:
            numbers = parse_mobiles(mobile)
            self.count_numbers(endpoint, len(numbers))
            if len(numbers) > MAX_PER_REQUEST:
                # "You can send the request for a maximum set of 100 phone numbers."
                self.violation("more than 100 mobile numbers")
                return respond(400, BAD_PAYLOAD)
            if not numbers or not all(E164.match(n) for n in numbers):
                return respond(400, BAD_PAYLOAD)  # [INFER] "A valid phone number ... E164"
            # "The response will only contain the blocklisted numbers and their respective
            # channels ... if none of the numbers are blocklisted, then empty array"
            keys = dict.fromkeys(canonical(n) for n in numbers)
            rows = ((c, state[c][k]) for k in keys for c in channels if k in state[c])
        data = [
            {"mobile": record["mobile"], "channel_type": CHANNEL_TYPES[c]}
            for c, record in islice(rows, offset, offset + limit)
        ]
        # No total count in the documented reply.
        return respond(
            200, {"code": "CNT196", "message": FETCHED_MESSAGE, "data": data, "error": {}}
        )

    def _post(self, request: httpx.Request, endpoint: str) -> httpx.Response:
        body = _json(request.content)
        # {"channel": "sms", "contacts": [{"blocklist_status": 1, "numbers": [...]}, ...]}
        if not isinstance(body, dict):
            return respond(400, BAD_PAYLOAD)
        channel, contacts = body.get("channel"), body.get("contacts")
        if channel not in CHANNELS or not isinstance(contacts, list) or not contacts:
            return respond(400, BAD_PAYLOAD)  # [INFER] an empty contacts list is malformed
        changes: list[tuple[int, str]] = []
        for contact in contacts:
            if not isinstance(contact, dict):
                return respond(400, BAD_PAYLOAD)
            status, numbers = contact.get("blocklist_status"), contact.get("numbers")
            # "Status "0" is used to remove a blocklist status from a number and "1" is
            # used to add a blocklist status to a number." [INFER] ints only, as in the doc
            if status not in (0, 1) or isinstance(status, bool):
                return respond(400, BAD_PAYLOAD)
            if not isinstance(numbers, list) or not numbers:
                return respond(400, BAD_PAYLOAD)
            changes += [(status, n) for n in numbers]
        self.count_numbers(endpoint, len(changes))
        if len(changes) > MAX_PER_REQUEST:
            # "You can update the blocklist status for up to 100 contacts per request."
            self.violation("more than 100 numbers per update")
            return respond(400, TOO_MANY_CONTACTS)
        if not all(isinstance(n, str) and E164.match(n) for _, n in changes):
            # [INFER] one invalid number rejects the whole request (nothing applied)
            return respond(400, BAD_PAYLOAD)
        entries: dict[str, dict[str, str]] = self.state["channels"][channel]
        added = self._now()
        for status, number in changes:  # [INFER] in request order: a later group wins
            key = canonical(number)
            # "If a number is passed with Status "1" that was not previously in the
            # blocklist status, then that number is added to the blocklist."
            # [INFER] 1 on a blocked number / 0 on an unblocked one is a silent no-op
            if status == 1 and key not in entries:
                entries[key] = {"mobile": number, "added_at": added, "origin": "api"}
                self._version += 1
            elif status == 0 and entries.pop(key, None) is not None:
                self._version += 1
        return respond(200, UPDATED)

    # -- helpers -----------------------------------------------------------------------

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None


def _non_negative_int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None
