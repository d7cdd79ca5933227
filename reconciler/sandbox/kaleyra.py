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

Where the docs are silent, ``KaleyraQuirks`` says how this server answers; each
dialect in ``KaleyraEmulator.dialects`` is one defensible bundle of answers.

Sources: CONTRACTS.md §4 and ``shared/seeds/003_*.txt`` (the "Get Blocklist" page).
Choices the docs leave open are marked ``[INFER]``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, unquote_plus

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
# [INFER] "Ensure that the country code is prefixed to the number": with or without "+"
COUNTRY_PREFIXED = re.compile(r"^\+?[1-9]\d{6,14}$")

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


# [INFER] the generic failure sample ("CNT195", documented with no HTTP status) as
# a POST answer: the lean dialect's server error
UNABLE_TO_UPDATE = {
    "code": "CNT195",
    "message": "Unable to update the blocklist status",
    "data": [],
    "error": {"description": "Unable to update the blocklist status"},
}
UNABLE_TO_FETCH = {
    "code": "CNT195",
    "message": "Unable to fetch the blocklisted number",
    "data": [],
    "error": {"description": "Unable to fetch the blocklisted number"},
}


@dataclass(frozen=True)
class KaleyraQuirks:
    """How this server answers where CONTRACTS §4 says [INFER] or "not retrieved"."""

    #: rows a GET page holds at most, silently, whatever ``limit`` asks (no total is
    #: ever given): "It is not possible to retrieve more than 100 contacts per response."
    page_cap: int = MAX_PER_REQUEST
    #: channel -> ``channel_type`` code of its rows; a channel missing here gives rows
    #: with no channel_type. Only whatsapp = "3" is documented.
    channel_types: Mapping[str, str] = field(default_factory=lambda: dict(CHANNEL_TYPES))
    #: numbers are kept and matched exactly as written (else under ``+`` and digits)
    exact_storage: bool = False
    #: numbers are accepted without "+" when the country code is prefixed
    plus_optional: bool = False
    #: (channel, number as stored) seeded besides SEED, as a CSV import wrote them
    imported: tuple[tuple[str, str], ...] = ()
    #: the POST success: HTTP status and body; "echo" puts the numbers sent in ``data``
    updated: tuple[int, Mapping[str, Any]] = (200, UPDATED)
    echo_numbers: bool = False
    #: how the ``mobile`` filter reads "+": "space" (form-decoded; a leading space is
    #: read as "+"), "encoded" (form-decoded: a raw "+" is a space, so %2B is needed),
    #: "literal" (percent-decoding only: a raw "+" stays "+")
    mobile_plus: Literal["space", "encoded", "literal"] = "space"
    #: ``data`` of error envelopes: "doc" (as each documented sample), "list" or "object"
    error_data: Literal["doc", "list", "object"] = "doc"
    #: the answer to too many requests: status and body (Retry-After is always given)
    throttle: tuple[int, Mapping[str, Any]] = (429, TOO_MANY_REQUESTS)
    #: the answer of a failing server to (GET, POST): status and body
    failure: tuple[int, Mapping[str, Any], Mapping[str, Any]] = (500, SERVER_ERROR, SERVER_ERROR)


DIALECTS: Mapping[str, KaleyraQuirks] = {
    "default": KaleyraQuirks(),
    "strict": KaleyraQuirks(
        page_cap=50,
        mobile_plus="encoded",
        error_data="list",
        throttle=(
            429,
            {
                "code": "E429",
                "message": "Rate limit exceeded. Retry after some time",
                "data": [],
                "error": {"rate_limit": "Rate limit exceeded"},
            },
        ),
    ),
    "alt": KaleyraQuirks(
        channel_types={"sms": "2", "voice": "1", "whatsapp": "3"},
        exact_storage=True,
        plus_optional=True,
        imported=(("sms", "919812300005"),),
        updated=(
            202,
            {"code": "CNT202", "message": "Request Accepted", "data": {}, "error": {}},
        ),
        mobile_plus="literal",
    ),
    "lean": KaleyraQuirks(
        page_cap=20,
        channel_types={"whatsapp": "3"},
        echo_numbers=True,
        error_data="object",
        failure=(200, UNABLE_TO_FETCH, UNABLE_TO_UPDATE),
    ),
}
DIALECT_NOTES: Mapping[str, str] = {
    "default": "the first guess: pages of up to 100, sms/voice/whatsapp = 1/2/3, numbers "
    "matched as + and digits, POST 200 CNT197, a raw + or %2B in mobile, 429 WA429",
    "strict": "pages of at most 50 (no total), mobile needs %2B (a raw + is a space), "
    "every error envelope has data [], throttled as 429 E429",
    "alt": "numbers kept and matched exactly as written, + optional (a CSV import's "
    "919812300005 seeded), sms/voice = 2/1, POST answers 202 CNT202, mobile takes + "
    "literally",
    "lean": "pages of at most 20, sms/voice rows carry no channel_type, POST echoes the "
    "numbers in data, error data {}, a failing server answers 200 CNT195 'Unable to ...'",
}


def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return httpx.Response(status, json=body, headers=headers)


def canonical(number: str) -> str:
    """The key a number is stored under: ``+`` and its digits (so that a number the
    provider holds in another format, e.g. ``919812300005``, is still found)."""
    return "+" + re.sub(r"\D", "", number)


def parse_query(raw: bytes, plus_is_space: bool = True) -> dict[str, str]:
    """The query parameters, decoded form-style (``+`` -> space, ``%2B`` -> ``+``), or
    with percent-decoding only. Parsed by hand from the raw query so the ``mobile``
    quirk below sees exactly what the client sent. [INFER] a repeated parameter keeps
    its first value."""
    decode = unquote_plus if plus_is_space else unquote
    params: dict[str, str] = {}
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        params.setdefault(decode(key), decode(value))
    return params


def parse_mobiles(value: str, space_is_plus: bool = True) -> list[str]:
    """The ``mobile`` filter: comma-separated numbers.

    The doc's sample query is ``mobile=+91802XXXXX52%2C+91803XXXXX53``: the comma is
    percent-encoded but ``+`` is sent raw, which form-decoding turns into a space. So
    a value decoded with a leading space is read as ``+`` (CONTRACTS §4 [INFER]),
    unless the server does not (``space_is_plus=False``: %2B is then needed).
    """
    numbers = []
    for item in value.split(","):
        stripped = item.strip()
        if not stripped:
            continue
        if space_is_plus and item[:1].isspace() and not stripped.startswith("+"):
            stripped = "+" + stripped
        numbers.append(stripped)
    return numbers


class KaleyraEmulator(Emulator):
    """``state["channels"][channel]`` maps a number's key (``+`` and its digits, or the
    number as written where the dialect keeps it so) -> record (``mobile`` as stored,
    ``added_at``, ``origin``), in insertion order, so lookups are O(1)."""

    type_name = "kaleyra"
    credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-kaleyra-key", "sid": "HXSANDBOX01"}
    dialects: ClassVar[Mapping[str, KaleyraQuirks]] = DIALECTS
    dialect_notes: ClassVar[Mapping[str, str]] = DIALECT_NOTES
    quirks: KaleyraQuirks

    # bumped by every change of the entries; ``save`` writes only when it moved
    _version = 1
    _saved_version = 0

    def initial_state(self, seed: bool) -> dict[str, Any]:
        channels: dict[str, dict[str, dict[str, str]]] = {c: {} for c in CHANNELS}
        if seed:
            added = self._now()
            imported = [(c, n, "import") for c, n in self.quirks.imported]
            for channel, number, origin in (*SEED, *imported):
                record = {"mobile": number, "added_at": added, "origin": origin}
                channels[channel][self._key(number)] = record
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
        # documented "500 Internal Server Error" (or, lean, the CNT195 sample under 200)
        status, on_get, on_post = self.quirks.failure
        return self._respond(status, on_post if self._method == "POST" else on_get)

    def rate_limited(self, retry_after: int) -> httpx.Response:
        status, body = self.quirks.throttle  # [INFER] no throttling answer is documented
        return self._respond(status, body, {"Retry-After": str(retry_after)})

    def process(self, request: httpx.Request) -> httpx.Response:
        # the failure answer differs for GET and POST; requests run on several threads
        self._request_of_thread.method = request.method
        return super().process(request)

    _request_of_thread = threading.local()

    @property
    def _method(self) -> str:
        return getattr(self._request_of_thread, "method", "GET")

    def _respond(
        self, status: int, body: Mapping[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """An envelope, with ``data`` of error bodies as the dialect writes it."""
        out = dict(body)
        if out.get("error") and self.quirks.error_data != "doc":
            out["data"] = [] if self.quirks.error_data == "list" else {}
        return respond(status, out, headers)

    def _key(self, number: str) -> str:
        """The key a number is stored and matched under."""
        return number if self.quirks.exact_storage else canonical(number)

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
            return self._respond(404, NOT_FOUND)  # [INFER]
        # "the Kaleyra.io application will verify the API key and your company ID (the SID)"
        key = request.headers.get("api-key")
        if key != self.accepted.get("api_key") or m.group(2) != self.accepted.get("sid"):
            self.auth_rejected(request)
            return self._respond(401, AUTH_FAILED)
        endpoint = self.endpoint_of(request)
        if request.method == "GET":
            return self._get(request, endpoint)
        if request.method == "POST":
            return self._post(request, endpoint)
        return self._respond(405, METHOD_NOT_ALLOWED)  # [INFER]

    def _get(self, request: httpx.Request, endpoint: str) -> httpx.Response:
        quirks = self.quirks
        params = parse_query(request.url.query)
        limit = _non_negative_int(params.get("limit") or "100")  # "By default ... 100"
        offset = _non_negative_int(params.get("offset") or "0")  # "By default, offset is 0"
        if limit is None or offset is None or limit == 0:
            return self._respond(400, BAD_PAYLOAD)  # [INFER] limit must be 1.., offset 0..
        if limit > MAX_PER_REQUEST:
            # "It is not possible to retrieve more than 100 contacts per response."
            # [INFER] a larger limit is clamped, not refused
            self.violation("limit over 100")
            limit = MAX_PER_REQUEST
        limit = min(limit, quirks.page_cap)  # [INFER] a lower cap, silently (no total)
        channel = params.get("channel") or None  # [INFER] empty = not given
        if channel is not None and channel not in CHANNELS:
            return self._respond(400, BAD_PAYLOAD)
        channels = (channel,) if channel else CHANNELS
        state: dict[str, dict[str, dict[str, str]]] = self.state["channels"]
        if quirks.mobile_plus == "literal":
            params = parse_query(request.url.query, plus_is_space=False)
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
            numbers = parse_mobiles(mobile, space_is_plus=quirks.mobile_plus == "space")
            self.count_numbers(endpoint, len(numbers))
            if len(numbers) > MAX_PER_REQUEST:
                # "You can send the request for a maximum set of 100 phone numbers."
                self.violation("more than 100 mobile numbers")
                return self._respond(400, BAD_PAYLOAD)
            valid = COUNTRY_PREFIXED if quirks.plus_optional else E164
            if not numbers or not all(valid.match(n) for n in numbers):
                return self._respond(400, BAD_PAYLOAD)  # [INFER] "A valid phone number ... E164"
            # "The response will only contain the blocklisted numbers and their respective
            # channels ... if none of the numbers are blocklisted, then empty array"
            keys = dict.fromkeys(self._key(n) for n in numbers)
            rows = ((c, state[c][k]) for k in keys for c in channels if k in state[c])
        data = [
            _row(record["mobile"], quirks.channel_types.get(c))
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
            return self._respond(400, BAD_PAYLOAD)
        channel, contacts = body.get("channel"), body.get("contacts")
        if channel not in CHANNELS or not isinstance(contacts, list) or not contacts:
            return self._respond(400, BAD_PAYLOAD)  # [INFER] an empty contacts list is malformed
        changes: list[tuple[int, str]] = []
        for contact in contacts:
            if not isinstance(contact, dict):
                return self._respond(400, BAD_PAYLOAD)
            status, numbers = contact.get("blocklist_status"), contact.get("numbers")
            # "Status "0" is used to remove a blocklist status from a number and "1" is
            # used to add a blocklist status to a number." [INFER] ints only, as in the doc
            if status not in (0, 1) or isinstance(status, bool):
                return self._respond(400, BAD_PAYLOAD)
            if not isinstance(numbers, list) or not numbers:
                return self._respond(400, BAD_PAYLOAD)
            changes += [(status, n) for n in numbers]
        self.count_numbers(endpoint, len(changes))
        if len(changes) > MAX_PER_REQUEST:
            # "You can update the blocklist status for up to 100 contacts per request."
            self.violation("more than 100 numbers per update")
            return self._respond(400, TOO_MANY_CONTACTS)
        valid = COUNTRY_PREFIXED if self.quirks.plus_optional else E164
        if not all(isinstance(n, str) and valid.match(n) for _, n in changes):
            # [INFER] one invalid number rejects the whole request (nothing applied)
            return self._respond(400, BAD_PAYLOAD)
        entries: dict[str, dict[str, str]] = self.state["channels"][channel]
        added = self._now()
        for status, number in changes:  # [INFER] in request order: a later group wins
            key = self._key(number)
            # "If a number is passed with Status "1" that was not previously in the
            # blocklist status, then that number is added to the blocklist."
            # [INFER] 1 on a blocked number / 0 on an unblocked one is a silent no-op
            if status == 1 and key not in entries:
                entries[key] = {"mobile": number, "added_at": added, "origin": "api"}
                self._version += 1
            elif status == 0 and entries.pop(key, None) is not None:
                self._version += 1
        status, reply = self.quirks.updated  # [INFER] the success body was not retrieved
        if self.quirks.echo_numbers:
            data = [{"mobile": n, "blocklist_status": s} for s, n in changes]
            reply = {**reply, "data": data}
        return respond(status, dict(reply))

    # -- helpers -----------------------------------------------------------------------

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(mobile: str, channel_type: str | None) -> dict[str, str]:
    """One GET row; [INFER] a server may leave channel_type out."""
    return (
        {"mobile": mobile}
        if channel_type is None
        else {"mobile": mobile, "channel_type": channel_type}
    )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None


def _non_negative_int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None
