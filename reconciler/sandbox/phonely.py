"""Emulator of the Phonely frontend API "Agent Block List".

Owns the one documented path, ``/api/agent-block-list``, with its three methods:
``GET`` (query ``uid`` + ``agentId``; the whole list as ``{"blockList": [...]}``,
no paging), ``POST`` and ``DELETE`` (JSON body ``{uid, agentId, numbers}``, per-number
results in ``added``/``removed`` and ``failed[{number, reason}]``), with the raw
``X-Authorization`` key, per-agent storage and the documented error strings. It must
not invent endpoints: tests inspect it through ``/__sandbox/state`` or ``.state``.

Sources: CONTRACTS.md §3 and ``shared/seeds/002_*.txt`` (docs.phonely.ai
``api-reference/endpoint/block-list``). Choices the docs leave open are marked
``[INFER]``; the defensible alternatives to them are the dialects (``PhonelyQuirks``):
error body shape, what an unknown ``agentId`` gets, the wording of "already in" /
"not found" and of transient per-number failures, how numbers are stored, whether a
DELETE of an absent number is a failure, and whether error replies echo the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx

from .base import Emulator

PATH = "/api/agent-block-list"
METHODS = ("GET", "POST", "DELETE")

# "400 Bad Request: Invalid search params (missing uid or agentId)" (GET)
BAD_SEARCH_PARAMS = "Invalid search params (missing uid or agentId)"
# "400 Bad Request: Invalid request body or numbers parameter" (POST and DELETE)
BAD_BODY = "Invalid request body or numbers parameter"
# "401 Unauthorized: Invalid or missing API key, or insufficient permissions"
UNAUTHORIZED = "Invalid or missing API key, or insufficient permissions"
# "500 Internal Server Error: Server error"
SERVER_ERROR = "Server error"

# "message(string): Success message" -- the example reply of POST says
# "Block list updated successfully"; [INFER] DELETE answers with the same message
# (CONTRACTS §3: "The exact delete message string was not retrieved").
UPDATED = "Block list updated successfully"

# failed[].reason: (e.g., "Invalid phone number format", "Number already in block list")
INVALID_FORMAT = "Invalid phone number format"
ALREADY_IN = "Number already in block list"
# failed[].reason (DELETE): (e.g., "Number not found in block list")
NOT_FOUND = "Number not found in block list"
# [INFER] the reason a fault-injected partial failure reports (not documented)
TEMPORARY = "Temporary failure, please retry"

# "Phone numbers must be in valid format (E.164 format recommended, e.g., +1234567890)"
# [INFER] validation: E.164 digits with an optional "+", after stripping spaces and dashes
_VALID = re.compile(r"^\+?[1-9]\d{6,14}$")
_STRIP = re.compile(r"[\s\-]+")
_NON_DIGITS = re.compile(r"\D+")

SEED_AGENT = "support-bot"
SEED_NUMBERS = ("+14155550142", "+919876543210")


def number_key(raw: str) -> str:
    """The key a stored number is found by: its digits only.

    [INFER] "Duplicate numbers will be rejected when adding": compared on digits, so
    ``+1 415-555-0142`` and ``+14155550142`` are the same number.
    """
    return _NON_DIGITS.sub("", raw)


def valid_number(raw: str) -> bool:
    """ "Phone numbers are validated before being added to the block list"."""
    return bool(_VALID.match(_STRIP.sub("", raw)))


@dataclass(frozen=True)
class PhonelyQuirks:
    """How one dialect answers where CONTRACTS.md §3 says [INFER] or "not retrieved"."""

    #: [INFER] error bodies: ``{"error", "message"}`` (the 3P OpenAPI's guess), only
    #: ``{"message"}``, or the message as text/plain ("Error body shape: Not documented")
    error_shape: Literal["error+message", "message", "text"] = "error+message"
    #: [INFER] an agentId the account does not have: its list is created by the first
    #: add (and reads as empty), or the request gets a 401, 404 or 400
    unknown_agent: Literal["create", "401", "404", "400"] = "create"
    #: failed[].reason wording; the docs give these as examples ("e.g.") only
    already_in: str = ALREADY_IN
    not_found: str = NOT_FOUND
    #: [INFER] the reason of a transient per-number failure (fault injection)
    transient: str = TEMPORARY
    #: [INFER] "Whether numbers are normalised on storage is unknown": as given, E.164,
    #: or NANP numbers in the national form "(415) 555-0142" (others as given)
    storage: Literal["given", "e164", "national"] = "given"
    #: a DELETE of a number that is not there: in failed[] ("Only numbers that exist in
    #: the block list can be removed") or silently in removed[]
    absent_delete: Literal["failed", "removed"] = "failed"
    #: error replies (and transient reasons) echo the request, uid included
    echo: bool = False


DIALECTS: dict[str, PhonelyQuirks] = {
    "default": PhonelyQuirks(),
    "strict": PhonelyQuirks(
        error_shape="message",
        unknown_agent="401",
        transient="Could not update block list",
        storage="e164",
    ),
    "alt": PhonelyQuirks(
        error_shape="text",
        unknown_agent="404",
        already_in="Number is already blocked",
        not_found="Number is not blocked",
        transient="Service busy",
        echo=True,
    ),
    "lean": PhonelyQuirks(
        unknown_agent="400",
        transient="Backend timeout",
        storage="national",
        absent_delete="removed",
        echo=True,
    ),
}
DIALECT_NOTES: dict[str, str] = {
    "default": "{error, message} bodies, an unknown agent's list is created by its first "
    "add, the docs' reason wording, numbers stored as given",
    "strict": "{message} bodies, an unknown agent is a 401, transient failures say "
    "'Could not update block list', numbers stored as E.164",
    "alt": "text/plain errors echoing uid and agentId, an unknown agent is a 404, "
    "'Number is already blocked' / 'Number is not blocked', transient 'Service busy'",
    "lean": "an unknown agent is a 400, errors echo the request (uid too), NANP numbers "
    "stored national '(415) 555-0142', absent numbers silently 'removed', "
    "transient 'Backend timeout'",
}

AGENT_NOT_FOUND = "Agent not found"  # [INFER] the 404 of an unknown agent
INVALID_AGENT = "Invalid agentId"  # [INFER] the 400 of an unknown agent


def error(status: int, name: str, message: str, headers: dict[str, str] | None = None):
    """[INFER] error body ``{"error", "message"}``: the docs give no shape (the 3P OpenAPI
    of api-evangelist/phonely assumes this one)."""
    return httpx.Response(status, json={"error": name, "message": message}, headers=headers)


class PhonelyEmulator(Emulator):
    """Per-agent block lists: ``state["agents"][agentId]`` maps :func:`number_key` to the
    number as it was given, in insertion order (JSON objects keep it), so lookups,
    adds and removes are O(1) on lists of 100 000+ numbers."""

    type_name = "phonely"
    # [INFER] the sandbox account; the docs do not say where uid comes from
    credentials: ClassVar[dict[str, str]] = {
        "api_key": "sandbox-phonely-key",
        "uid": "sandbox-uid",
    }
    dialects: ClassVar[Mapping[str, Any]] = DIALECTS
    dialect_notes: ClassVar[Mapping[str, str]] = DIALECT_NOTES
    quirks: PhonelyQuirks

    # set by every change of an agent's list; ``save`` writes only when it is set
    _dirty = True

    def initial_state(self, seed: bool) -> dict[str, Any]:
        agents: dict[str, dict[str, str]] = {}
        if seed:
            agents[SEED_AGENT] = {number_key(n): n for n in SEED_NUMBERS}
        return {"agents": agents}

    def endpoint_of(self, request: httpx.Request) -> str:
        if request.url.path == PATH:
            return f"{request.method} {PATH}"
        return f"{request.method} {{unknown path}}"  # a stable label, whatever was asked

    def credential_of(self, request: httpx.Request) -> str | None:
        # The account is the key *and* the uid: a wrong uid with the right key is a
        # different (rejected) credential.
        key = request.headers.get("X-Authorization")
        if key is None:
            return None
        if request.method == "GET":
            uid = request.url.params.get("uid")
        else:
            body = self._body(request)
            uid = body.get("uid") if isinstance(body, dict) else None
        return f"{key}\x00{uid}"

    def server_error(self) -> httpx.Response:
        # "500 Internal Server Error: Server error"
        return self._error(500, "Internal Server Error", SERVER_ERROR)

    def rate_limited(self, retry_after: int) -> httpx.Response:
        # [INFER] the docs document no rate limit: a 429 in the dialect's error shape
        return self._error(
            429,
            "Too Many Requests",
            "Rate limit exceeded",
            headers={"Retry-After": str(retry_after)},
        )

    def _error(
        self,
        status: int,
        name: str,
        message: str,
        request: httpx.Request | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """An error reply in the dialect's shape, echoing the request if it does so."""
        q = self.quirks
        echoed: dict[str, Any] | None = None
        if q.echo and request is not None:
            if request.method == "GET":
                echoed = dict(request.url.params)
            else:
                body = self._body(request)
                echoed = body if isinstance(body, dict) else None
        if q.error_shape == "text":
            text = message
            if echoed:
                text += " (" + ", ".join(f"{k}={v}" for k, v in echoed.items()) + ")"
            return httpx.Response(status, text=text, headers=headers)
        reply: dict[str, Any] = {"message": message}
        if q.error_shape == "error+message":
            reply = {"error": name, **reply}
        if echoed:
            reply["request"] = echoed
        return httpx.Response(status, json=reply, headers=headers)

    def _stored(self, number: str) -> str:
        """The form a number is stored in (validated already)."""
        storage = self.quirks.storage
        if storage == "given":
            return number  # [INFER] stored as given, not normalised
        e164 = "+" + number_key(number)
        if storage == "e164":
            return e164
        if len(e164) == 12 and e164.startswith("+1"):
            return f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}"  # NANP national
        return number  # "national": other countries' numbers as given

    def _key(self, raw: str) -> str:
        """:func:`number_key`, reading a 10-digit number without "+" as NANP national
        where numbers are stored so (the server then reads its own form back)."""
        key = number_key(raw)
        national = self.quirks.storage == "national" and not raw.strip().startswith("+")
        return "1" + key if national and len(key) == 10 else key

    def _agent_refused(
        self, request: httpx.Request, agent_id: str, create: bool
    ) -> httpx.Response | None:
        """The reply to a request for an agent the account does not have (None: go on).
        [INFER] the docs do not say; ``unknown_agent`` is the dialect's reading."""
        agents = self.state["agents"]
        if agent_id in agents:
            return None
        how = self.quirks.unknown_agent
        if how == "create":
            if create:
                agents[agent_id] = {}  # [INFER] an agent's list is created by its first add
                self._dirty = True
            return None
        if how == "401":
            # the documented 401 text ("… or insufficient permissions"); the credential
            # itself is fine, so this is not counted as an auth failure
            return self._error(401, "Unauthorized", UNAUTHORIZED, request)
        if how == "404":
            return self._error(404, "Not Found", AGENT_NOT_FOUND, request)
        return self._error(400, "Bad Request", INVALID_AGENT, request)

    def save(self) -> None:
        # the base persists after every POST/DELETE, even a rejected one: skip rewriting
        # a 100 000-number state file when nothing changed
        if not self._dirty:
            return
        super().save()
        self._dirty = False

    def reset(self, seed: bool = True) -> None:
        self._dirty = True
        super().reset(seed)

    # -- the API -------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != PATH:
            return self._error(404, "Not Found", "Not found")  # [INFER]
        if request.method not in METHODS:
            # [INFER] only GET, POST and DELETE are documented on this path
            return self._error(
                405,
                "Method Not Allowed",
                "Method not allowed",
                headers={"Allow": ", ".join(METHODS)},
            )
        # "Headers: X-Authorization: Your API key (required)" -- the raw key, no "Bearer"
        key = request.headers.get("X-Authorization")
        if not key or key != self.accepted.get("api_key"):
            return self._unauthorized(request)
        if request.method == "GET":
            return self._list(request)
        # "Content-Type: application/json" is a documented header of POST and DELETE;
        # [INFER] the body is still parsed without it (recorded as a violation)
        if "application/json" not in request.headers.get("Content-Type", ""):
            self.violation(f"{request.method} without Content-Type: application/json")
        body = self._body(request)
        if not isinstance(body, dict):
            return self._error(400, "Bad Request", BAD_BODY, request)
        uid, agent_id, numbers = body.get("uid"), body.get("agentId"), body.get("numbers")
        # "numbers(string[], required)"; uid and agentId are "(string, required)":
        # [INFER] a missing uid/agentId gets the same 400 as a bad numbers parameter
        if not _text(uid) or not _text(agent_id):
            return self._error(400, "Bad Request", BAD_BODY, request)
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            return self._error(400, "Bad Request", BAD_BODY, request)
        if uid != self.accepted.get("uid"):
            return self._unauthorized(request)  # [INFER] another account's uid -> 401
        refused = self._agent_refused(request, agent_id, create=request.method == "POST")
        if refused is not None:
            return refused
        self.count_numbers(self.endpoint_of(request), len(numbers))
        # No batch size, rate or concurrency limit is documented: any size is accepted.
        if request.method == "POST":
            return self._add(agent_id, numbers, uid)
        return self._remove(agent_id, numbers, uid)

    def _list(self, request: httpx.Request) -> httpx.Response:
        # "uid(string, required): Your user ID", "agentId(string, required)"
        uid = request.url.params.get("uid")
        agent_id = request.url.params.get("agentId")
        if not uid or not agent_id:
            return self._error(400, "Bad Request", BAD_SEARCH_PARAMS, request)
        if uid != self.accepted.get("uid"):
            return self._unauthorized(request)  # [INFER] another account's uid -> 401
        refused = self._agent_refused(request, agent_id, create=False)
        if refused is not None:
            return refused
        # {"blockList": [...]}: a plain string array, no pagination; [INFER] insertion
        # order, and an agent that never had a list has an empty one
        numbers = self.state["agents"].get(agent_id, {})
        return httpx.Response(200, json={"blockList": list(numbers.values())})

    def _transient(self, uid: str) -> str:
        """The words of an injected per-number failure (the fault spec's, else ours)."""
        reason = self.failure_reason(self.quirks.transient)
        return f"{reason} (uid {uid})" if self.quirks.echo else reason

    def _add(self, agent_id: str, numbers: list[str], uid: str) -> httpx.Response:
        stored = self.state["agents"][agent_id]
        q = self.quirks
        added: list[str] = []
        failed: list[dict[str, str]] = []
        for number in numbers:
            if not valid_number(number):
                failed.append({"number": number, "reason": INVALID_FORMAT})
                continue
            key = self._key(number)
            if key in stored:
                # "Duplicate numbers will be rejected when adding"
                failed.append({"number": number, "reason": q.already_in})
            elif self.fail_number():
                failed.append({"number": number, "reason": self._transient(uid)})
            else:
                stored[key] = self._stored(number)
                added.append(number)
                self._dirty = True
        # "The API returns both successful and failed operations"
        return httpx.Response(200, json={"message": UPDATED, "added": added, "failed": failed})

    def _remove(self, agent_id: str, numbers: list[str], uid: str) -> httpx.Response:
        stored = self.state["agents"].get(agent_id, {})
        q = self.quirks
        removed: list[str] = []
        failed: list[dict[str, str]] = []
        for number in numbers:
            key = self._key(number)
            if key not in stored:
                if q.absent_delete == "removed":
                    removed.append(number)  # [INFER] silently "removed": it is not there
                else:
                    # "Only numbers that exist in the block list can be removed"
                    failed.append({"number": number, "reason": q.not_found})
            elif self.fail_number():
                failed.append({"number": number, "reason": self._transient(uid)})
            else:
                del stored[key]
                removed.append(number)
                self._dirty = True
        return httpx.Response(200, json={"message": UPDATED, "removed": removed, "failed": failed})

    # -- helpers -------------------------------------------------------------------

    def _unauthorized(self, request: httpx.Request) -> httpx.Response:
        self.auth_rejected(request)
        return self._error(401, "Unauthorized", UNAUTHORIZED, request)

    def _body(self, request: httpx.Request) -> Any:
        """The parsed JSON body (None if it is not JSON), parsed once per request."""
        cache = request.extensions
        if "phonely_body" not in cache:
            try:
                cache["phonely_body"] = json.loads(request.content) if request.content else None
            except (ValueError, UnicodeDecodeError):
                cache["phonely_body"] = None
        return cache["phonely_body"]


def _text(value: object) -> bool:
    return isinstance(value, str) and value != ""
