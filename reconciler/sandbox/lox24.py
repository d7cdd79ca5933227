"""Emulator of the LOX24 REST API (API Platform, JSON-LD / Hydra): groups and their phones.

It reproduces what CONTRACTS.md §5 ("What an emulator must reproduce") lists:
``X-LOX24-AUTH-TOKEN`` auth (and the legacy two-header form), the per-IP
lockout after more than three bad-auth requests a minute, content negotiation
(JSON-LD Hydra collections or bare JSON arrays), groups CRUD with cascade
delete, phones (single, batch with per-item status, edit, delete by id), the
account-level ``/blocked_numbers`` list, the documented field limits, and the
``X-LOX24-REQUEST-ID`` header. It must not grow endpoints the docs do not
show: tests inspect it through ``emulator.state`` or ``/__sandbox/state``.

State layout (plain JSON, O(1) lookups for 100 000+ phones)::

    groups        {group id: {id, name, description, name_a..name_e, deleted_at}}
    phones        {group id: {phone id: phone record}}   (insertion order = list order)
    phone_group   {phone id: group id}
    blocked_numbers {id: {id, number, type, added_at}}
    blocked_index {number: id}
    next_ids      {group, phone, blocked_number}
    ip_lockout    {failures: [epoch seconds], blocked_until: epoch seconds}

Dialects (``Lox24Quirks``) are the defensible readings of what the docs leave open:
page size, ``member`` vs ``hydra:member``, absolute vs relative ``hydra:next``, no
``hydra:totalItems``, bare arrays even for ``application/ld+json``, where the lockout
text stands (and whether there is any), 401 vs 403 for a wrong token, duplicates in a
group (stored again vs 409), per-item failure statuses and how phones are stored.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import httpx

from .base import Emulator

# Doc: "If more than three requests are received from an IP address with incorrect
# authentication data within one minute, all subsequent requests from this IP will
# receive a response with the 429 status (Too Many Requests) within the next ten minutes."
BAD_AUTH_LIMIT = 3
BAD_AUTH_WINDOW = 60.0
LOCKOUT_SECONDS = 600.0

# [INFER] API Platform's default page size; the docs show `page` but no size.
PAGE_SIZE = 30

TEXT_400 = "Invalid input"
TEXT_401 = "Client ID or API key isn’t active or invalid!"
TEXT_403 = "Account isn’t activated. Please wait or contact to support!"
TEXT_404 = "Resource not found"
TEXT_409 = "Conflict - Entity already exists"
TEXT_429 = (
    "IP address was temporary blocked, because during short time from it was sent many "
    "request with invalid credentials. Please wait and try later."
)
TEXT_500 = "Internal Server Error"  # [INFER] API Platform's default 5xx text
# [INFER] a throttle that is not the lockout (none is documented; fault injection only)
TEXT_THROTTLED = "Too Many Requests"
# [INFER] the words of an injected per-item failure, by its status
ITEM_FAILURE_TEXT = {
    500: TEXT_500,
    503: "Service Unavailable",
    423: "Locked",
    418: "I'm a teapot",
}

PHONE_TEXT_FIELDS = ("a", "b", "c", "d", "e")
GROUP_NAME_FIELDS = ("name_a", "name_b", "name_c", "name_d", "name_e")
# Doc (blocked numbers): number "pattern `^\+[0-9]{4,20}$`"
BLOCKED_NUMBER_PATTERN = re.compile(r"^\+[0-9]{4,20}$")
_LITERAL_SEGMENTS = frozenset({"groups", "phones", "batch", "blocked_numbers"})
_ID = re.compile(r"^[1-9][0-9]{0,17}$")

SEED_TIME = 1735689600  # 2025-01-01T00:00:00Z: seeded timestamps do not follow the clock


@dataclass(frozen=True)
class Lox24Quirks:
    """How one dialect answers where CONTRACTS.md §5 says [INFER] or "not retrieved"."""

    #: [INFER] "API Platform default is 30 per page"; no size is documented
    page_size: int = PAGE_SIZE
    #: Doc-version quirk: older examples "hydra:member", newer ones "member"
    member_key: str = "hydra:member"
    #: hydra links as paths (``/groups/7116/phones?page=2``) or absolute URLs on our host
    absolute_links: bool = False
    #: False: no ``hydra:totalItems`` and no ``hydra:last`` (API Platform's partial
    #: pagination: ``hydra:next`` whenever a page is full, even if nothing follows)
    total_items: bool = True
    #: False: bare JSON arrays (and plain error objects) even for ``application/ld+json``
    hydra: bool = True
    #: where the lockout text stands in the 429: a Hydra error, problem+json ``detail``,
    #: a text/plain body, or no body at all
    lockout_body: Literal["hydra", "detail", "text", "none"] = "hydra"
    #: the status of a wrong token (Doc: 401 "Client ID or API key isn't active or
    #: invalid!"; the SDK calls 403 "Account blocked or API key is not active")
    bad_token_status: int = 401
    #: [INFER] a phone already in the group: stored again (no uniqueness rule is
    #: documented) or refused with 409 "Conflict - Entity already exists"
    duplicates: Literal["keep", "conflict"] = "keep"
    #: the per-item status of an injected batch failure
    item_failure_status: int = 500
    #: the status of an injected DELETE /phones/{id} failure (None: deletes never fail)
    delete_failure_status: int | None = None
    #: [INFER] phones stored as given, normalised to E.164, or German numbers in the
    #: national form (Doc, /sms: "national 01701234567 for German accounts")
    storage: Literal["given", "e164", "national"] = "given"


DIALECTS: dict[str, Lox24Quirks] = {
    "default": Lox24Quirks(),
    "modern": Lox24Quirks(
        page_size=50,
        member_key="member",
        absolute_links=True,
        lockout_body="detail",
        bad_token_status=403,
        duplicates="conflict",
        item_failure_status=503,
        delete_failure_status=503,
        storage="e164",
    ),
    "lean": Lox24Quirks(
        page_size=10,
        total_items=False,
        lockout_body="text",
        item_failure_status=423,
        delete_failure_status=423,
        storage="national",
    ),
    "plain": Lox24Quirks(hydra=False, lockout_body="none", item_failure_status=418),
}
DIALECT_NOTES: dict[str, str] = {
    "default": "Hydra pages of 30, hydra:member, relative links, lockout as a Hydra error, "
    "401 for a wrong token, duplicates stored again, per-item 500, phones as given",
    "modern": "pages of 50, 'member', absolute hydra:next URLs, lockout in problem+json "
    "'detail', 403 for a wrong token, 409 for a duplicate, per-item and DELETE 503, "
    "phones normalised to E.164",
    "lean": "pages of 10 without hydra:totalItems (next whenever a page is full), lockout "
    "as text/plain, per-item and DELETE 423, German phones stored national (0151...)",
    "plain": "bare JSON arrays even for application/ld+json (no Hydra at all), lockout "
    "as a 429 with no body, per-item 418",
}


def canonical_phone(raw: str) -> str:
    """[INFER] how the server reads a phone it stores: separators dropped, ``00`` as
    ``+``, a national ``0…`` as German (the sandbox account is German), bare digits as
    international without ``+``."""
    compact = re.sub(r"[\s\-().\/]", "", raw)
    if compact.startswith("00"):
        return "+" + compact[2:]
    if compact.startswith("0"):
        return "+49" + compact[1:]
    if compact.isdigit():
        return "+" + compact
    return compact


class _Reply(Exception):
    """Raised inside handlers to answer at once with ``response``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _too_long(limit: int) -> str:
    # Symfony's Length constraint message, as API Platform reports it.
    return f"This value is too long. It should have {limit} characters or less."


class Lox24Emulator(Emulator):
    type_name = "lox24"
    # [INFER] sandbox credential: the documented `clientNumber:apiKey` form.
    credentials: ClassVar[dict[str, str]] = {"token": "1234567:sandbox-lox24-key"}
    dialects: ClassVar[Mapping[str, Any]] = DIALECTS
    dialect_notes: ClassVar[Mapping[str, str]] = DIALECT_NOTES
    quirks: Lox24Quirks
    #: False: the account behind the good token is not activated (403 to every request)
    account_active: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: key of the members array in phone/group collections (tests may switch it)
        self.member_key = self.quirks.member_key
        # [INFER] the request id comes from a seeded RNG so replays are reproducible.
        self._request_ids = random.Random(f"lox24-request-id-{self.faults.spec.seed}")
        # group id -> (cache key, phone ids in list order); see _page_ids
        self._order_cache: dict[str, tuple[tuple[int, int, int], list[str]]] = {}
        self._writes = 0  # bumped by every phone write, so cached orders go stale

    def reset(self, seed: bool = True) -> None:
        """As the base, and the request-id RNG starts over (a reset is a fresh sandbox)."""
        with self.lock:
            self._request_ids = random.Random(f"lox24-request-id-{self.faults.spec.seed}")
            self._order_cache.clear()
            super().reset(seed)

    # -- state ---------------------------------------------------------------------

    def initial_state(self, seed: bool) -> dict[str, Any]:
        state: dict[str, Any] = {
            "groups": {},
            "phones": {},
            "phone_group": {},
            "blocked_numbers": {},
            "blocked_index": {},
            "next_ids": {"group": 7000, "phone": 9000001, "blocked_number": 1},
            "ip_lockout": {"failures": [], "blocked_until": 0.0},
        }
        if not seed:
            return state
        self._put_group(state, 7116, "fraud-callers", "Confirmed fraud callers (sandbox seed)")
        self._put_group(state, 7200, "empty-group", "An empty group (sandbox seed)")
        # +4915112345601 unsubscribed itself through a short link: the user's own opt-out.
        self._put_phone(
            state,
            "7116",
            {
                "phone": "+4915112345601",
                "subscribed_at": SEED_TIME,
                "unsubscribed_at": SEED_TIME + 86400,
                "unsubscribe_reason": 1,
            },
        )
        self._put_phone(state, "7116", {"phone": "+4915112345602", "a": "seeded"})
        self._put_phone(state, "7116", {"phone": "+919876543210"})
        self._put_blocked(state, "+4915112345690", 1, SEED_TIME)
        self._put_blocked(state, "+4915112345691", 2, SEED_TIME)
        return state

    @staticmethod
    def _put_group(state: dict[str, Any], gid: int, name: str, description: str | None) -> None:
        state["groups"][str(gid)] = {
            "id": gid,
            "name": name,
            "description": description,
            **dict.fromkeys(GROUP_NAME_FIELDS),
            "deleted_at": None,
        }
        state["phones"][str(gid)] = {}
        state["next_ids"]["group"] = max(state["next_ids"]["group"], gid + 1)

    @staticmethod
    def _put_phone(state: dict[str, Any], gid: str, fields: dict[str, Any]) -> str:
        pid = str(state["next_ids"]["phone"])
        state["next_ids"]["phone"] += 1
        record = {
            "id": pid,
            "phone": fields["phone"],
            **{k: fields.get(k) for k in PHONE_TEXT_FIELDS},
            "callback_data": fields.get("callback_data"),
            "subscribed_at": fields.get("subscribed_at"),
            "unsubscribed_at": fields.get("unsubscribed_at"),
            "unsubscribe_reason": fields.get("unsubscribe_reason"),
        }
        state["phones"][gid][pid] = record
        state["phone_group"][pid] = gid
        return pid

    @staticmethod
    def _put_blocked(state: dict[str, Any], number: str, type_: int, added_at: float) -> str:
        bid = str(state["next_ids"]["blocked_number"])
        state["next_ids"]["blocked_number"] += 1
        # [INFER] newer doc example: added_at as ISO 8601 ("2025-08-22T08:06:56+00:00").
        when = datetime.fromtimestamp(int(added_at), UTC).isoformat()
        state["blocked_numbers"][bid] = {
            "id": int(bid),
            "number": number,
            "type": type_,
            "added_at": when,
        }
        state["blocked_index"][number] = bid
        return bid

    # -- helpers for tests and benchmarks (Python only, not an API endpoint) ---------

    def add_phone(self, group_id: int | str, phone: str, **fields: Any) -> str:
        """Store a phone in a group as if created through the API; returns its id.
        Creates the group if it does not exist."""
        with self.lock:
            gid = str(group_id)
            if gid not in self.state["groups"]:
                self._put_group(self.state, int(gid), f"group-{gid}", None)
            self._writes += 1
            return self._put_phone(self.state, gid, {"phone": phone, **fields})

    def add_phones(self, group_id: int | str, phones: Iterable[str]) -> list[str]:
        """Many ``add_phone`` at once (populating 100 000 phones stays fast)."""
        with self.lock:
            return [self.add_phone(group_id, p) for p in phones]

    def phones_of(self, group_id: int | str) -> list[dict[str, Any]]:
        """The phone records of a group, in list order."""
        with self.lock:
            return list(self.state["phones"].get(str(group_id), {}).values())

    # -- base hooks ------------------------------------------------------------------

    def endpoint_of(self, request: httpx.Request) -> str:
        parts = [p for p in request.url.path.split("/") if p]
        labels = [p if p in _LITERAL_SEGMENTS else "{id}" for p in parts]
        return f"{request.method} /{'/'.join(labels)}"

    def credential_of(self, request: httpx.Request) -> str | None:
        token = request.headers.get("X-LOX24-AUTH-TOKEN")
        if token is None:
            return None
        # Doc: "We also continue to support the old version of authentication with two
        # headers 'X-LOX24-CLIENT-ID' and 'X-LOX24-AUTH-TOKEN'."
        client_id = request.headers.get("X-LOX24-CLIENT-ID")
        return f"{client_id}:{token}" if client_id is not None else token

    def server_error(self) -> httpx.Response:
        return self._error(500, TEXT_500)

    def rate_limited(self, retry_after: int) -> httpx.Response:
        # [INFER] no throttle is documented (the only documented 429 is the IP lockout,
        # see _lockout): an injected one says so in words, never with the lockout's.
        return self._error(429, TEXT_THROTTLED, headers={"Retry-After": str(retry_after)})

    def _lockout(self, retry_after: int) -> httpx.Response:
        """Doc: "all subsequent requests from this IP will receive a response with the
        429 status" with the text "IP address was temporary blocked, …"; [INFER] where
        the text stands is the dialect's."""
        headers = {"Retry-After": str(retry_after)}
        shape = self.quirks.lockout_body
        if shape == "none":
            return httpx.Response(
                429, headers={"X-LOX24-REQUEST-ID": self._request_id(), **headers}
            )
        if shape == "text":
            return httpx.Response(
                429,
                text=TEXT_429,
                headers={"X-LOX24-REQUEST-ID": self._request_id(), **headers},
            )
        if shape == "detail":
            body = {"type": "/errors/429", "title": "Too Many Requests", "detail": TEXT_429}
            return self._json(429, body, content_type="application/problem+json", headers=headers)
        return self._error(429, TEXT_429, headers=headers)

    # -- responses ----------------------------------------------------------------------

    def _request_id(self) -> str:
        # Doc: every response carries X-LOX24-REQUEST-ID, a 32-character alphanumeric id.
        alphabet = string.ascii_letters + string.digits
        return "".join(self._request_ids.choices(alphabet, k=32))

    def _json(
        self,
        status: int,
        body: Any,
        *,
        content_type: str = "application/ld+json",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = {
            "Content-Type": f"{content_type}; charset=utf-8",
            "X-LOX24-REQUEST-ID": self._request_id(),
            **(headers or {}),
        }
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return httpx.Response(status, headers=hdrs, content=content)

    def _empty(self, status: int) -> httpx.Response:
        return httpx.Response(status, headers={"X-LOX24-REQUEST-ID": self._request_id()})

    def _error(
        self, status: int, description: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        if not self.quirks.hydra:
            body = _plain_error_body(status, description)
            return self._json(status, body, content_type="application/json", headers=headers)
        return self._json(status, _error_body(description), headers=headers)

    def _item_error(self, status: int, description: str) -> dict[str, Any]:
        """The body of one failed batch item, in the dialect's error shape."""
        if not self.quirks.hydra:
            return _plain_error_body(status, description)
        return _error_body(description)

    def _violations(self, violations: list[tuple[str, str]]) -> httpx.Response:
        body = _violation_body(violations)
        if not self.quirks.hydra:
            return self._json(422, _plain(body), content_type="application/json")
        return self._json(422, body)

    def _wants_ld(self, request: httpx.Request) -> bool:
        # Doc: `Accept: application/json` gives plain JSON (bare arrays for collections);
        # `application/ld+json` gives JSON-LD. [INFER] anything else gets JSON-LD (the
        # API Platform default format); the "plain" dialect answers plain JSON always.
        if not self.quirks.hydra:
            return False
        accept = request.headers.get("Accept", "")
        return "application/ld+json" in accept or "application/json" not in accept

    def _stored_form(self, phone: str) -> str:
        """The phone as the dialect stores it (Doc: only "<= 30 characters")."""
        if self.quirks.storage == "given":
            return phone
        e164 = canonical_phone(phone)
        if self.quirks.storage == "national" and e164.startswith("+49"):
            return "0" + e164[3:]  # Doc, /sms: "national 01701234567 for German accounts"
        return e164

    def _item(self, request: httpx.Request, status: int, body: dict[str, Any]) -> httpx.Response:
        if self._wants_ld(request):
            return self._json(status, body)
        return self._json(status, _plain(body), content_type="application/json")

    # -- auth and lockout -----------------------------------------------------------------

    def _check_access(self, request: httpx.Request) -> None:
        now = self.clock()
        lock = self.state.setdefault("ip_lockout", {"failures": [], "blocked_until": 0.0})
        # [INFER] the sandbox sees every request as coming from one IP address.
        if lock["blocked_until"] > now:
            left = max(1, math.ceil(lock["blocked_until"] - now))
            raise _Reply(self._lockout(left))
        presented = self.credential_of(request)
        if presented is not None and presented == self.accepted.get("token"):
            if not self.account_active:
                # Doc: 403 "Account isn’t activated. Please wait or contact to support!"
                # [INFER] valid credentials of an inactive account do not count towards
                # the lockout ("incorrect authentication data").
                self.auth_rejected(request)
                raise _Reply(self._error(403, TEXT_403))
            return
        self.auth_rejected(request)
        failures = [t for t in lock["failures"] if now - t < BAD_AUTH_WINDOW] + [now]
        if len(failures) > BAD_AUTH_LIMIT:
            # [INFER] the request that crosses the limit still gets its 401; the lockout
            # starts with it and is not extended by requests made during it.
            self.violation("more than 3 bad-auth requests within a minute (IP locked out)")
            lock["blocked_until"] = now + LOCKOUT_SECONDS
            failures = []
        lock["failures"] = failures
        if request.method not in self.write_methods:
            # the base persists after writes only: the IP's record must outlive this run
            # (the next `blocklist plan` is a new process and meets the lockout)
            self.save()
        raise _Reply(self._error(self.quirks.bad_token_status, TEXT_401))

    # -- routing ------------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        try:
            self._check_access(request)
            handler, args = self._resolve(request)
            return handler(request, *args)
        except _Reply as reply:
            return reply.response

    def _resolve(self, request: httpx.Request) -> tuple[Callable[..., httpx.Response], list[str]]:
        parts = [p for p in request.url.path.split("/") if p]
        method = request.method
        shape = tuple(p if p in _LITERAL_SEGMENTS else "{id}" for p in parts)
        ids = [p for p in parts if p not in _LITERAL_SEGMENTS]
        routes: dict[tuple[str, ...], dict[str, Callable[..., httpx.Response]]] = {
            ("groups",): {"GET": self._list_groups, "POST": self._create_group},
            ("groups", "{id}"): {
                "GET": self._get_group,
                "PUT": self._edit_group,
                "DELETE": self._delete_group,
            },
            ("groups", "{id}", "phones"): {"GET": self._list_phones, "POST": self._create_phone},
            ("groups", "{id}", "phones", "batch"): {"POST": self._create_phones_batch},
            ("phones", "{id}"): {"PUT": self._edit_phone, "DELETE": self._delete_phone},
            ("blocked_numbers",): {"GET": self._list_blocked, "POST": self._create_blocked},
            ("blocked_numbers", "{id}"): {"DELETE": self._delete_blocked},
        }
        methods = routes.get(shape)
        if methods is None:
            raise _Reply(self._error(404, TEXT_404))
        handler = methods.get(method)
        if handler is None:
            # [INFER] Symfony answers a known path with an unsupported method with 405.
            raise _Reply(self._error(405, f'No route found for "{method} {request.url.path}"'))
        # [INFER] ids in paths are positive integers; anything else matches no resource.
        if not all(_ID.match(i) for i in ids):
            raise _Reply(self._error(404, TEXT_404))
        return handler, ids

    # -- request parsing -------------------------------------------------------------

    def _body(self, request: httpx.Request) -> Any:
        try:
            return json.loads(request.content or b"null")
        except (ValueError, UnicodeDecodeError):
            raise _Reply(self._error(400, TEXT_400)) from None

    def _page(self, request: httpx.Request) -> int:
        # Doc (GET /groups): `page` integer, default 1, minimum 1.
        raw = request.url.params.get("page")
        if raw is None:
            return 1
        if not re.fullmatch(r"-?[0-9]{1,9}", raw):
            raise _Reply(self._error(400, TEXT_400))
        page = int(raw)
        if page < 1:
            self.violation("page below 1")
            raise _Reply(self._error(400, TEXT_400))
        return page

    def _group(self, gid: str) -> dict[str, Any]:
        group = self.state["groups"].get(gid)
        if group is None:
            raise _Reply(self._error(404, TEXT_404))
        return group

    # -- collections ----------------------------------------------------------------

    def _collection(
        self,
        request: httpx.Request,
        *,
        context: str,
        iri: str,
        total: int,
        page: int,
        members: list[dict[str, Any]],
        member_key: str = "hydra:member",
        query: dict[str, str] | None = None,
        search: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if not self._wants_ld(request):
            # Doc: with `Accept: application/json` a collection is a bare array.
            return self._json(200, [_plain(m) for m in members], content_type="application/json")
        q = self.quirks
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}" if q.absolute_links else ""

        def link(n: int) -> str:
            return f"{origin}{iri}?{urlencode({**(query or {}), 'page': n})}"

        view: dict[str, Any] = {
            "@id": link(page),
            "@type": "hydra:PartialCollectionView",
            "hydra:first": link(1),
        }
        if q.total_items:
            last = max(1, math.ceil(total / q.page_size))
            view["hydra:last"] = link(last)
            more = page < last
        else:
            more = len(members) == q.page_size  # partial pagination: a full page has a next
        if page > 1:
            view["hydra:previous"] = link(page - 1)
        if more:
            view["hydra:next"] = link(page + 1)
        body: dict[str, Any] = {
            "@context": context,
            "@id": iri,
            "@type": "hydra:Collection",
            member_key: members,
        }
        if q.total_items:
            body["hydra:totalItems"] = total
        body["hydra:view"] = view
        if search:
            body["hydra:search"] = search
        return self._json(200, body)

    def _page_ids(self, gid: str, page: int) -> list[str]:
        """The phone ids of one page of a group, through an order cache (O(page))."""
        phones = self.state["phones"][gid]
        key = (id(phones), len(phones), self._writes)
        cached = self._order_cache.get(gid)
        if cached is None or cached[0] != key:
            cached = self._order_cache[gid] = (key, list(phones))
        order = cached[1]
        size = self.quirks.page_size
        start = (page - 1) * size
        return order[start : start + size]

    # -- groups ---------------------------------------------------------------------

    def _group_view(self, group: dict[str, Any], embedded: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {} if embedded else {"@context": "/contexts/Group"}
        out.update({"@id": f"/groups/{group['id']}", "@type": "Group"})
        out.update(group)
        out["count_items"] = len(self.state["phones"].get(str(group["id"]), {}))
        return out

    def _list_groups(self, request: httpx.Request) -> httpx.Response:
        page = self._page(request)
        groups = list(self.state["groups"].values())
        size = self.quirks.page_size
        chunk = groups[(page - 1) * size : page * size]
        return self._collection(
            request,
            context="/contexts/Group",
            iri="/groups",
            total=len(groups),
            page=page,
            members=[self._group_view(g, embedded=True) for g in chunk],
            member_key=self.member_key,
        )

    def _validate_group(self, body: Any, *, partial: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Reply(self._error(400, TEXT_400))
        fields: dict[str, Any] = {}
        violations: list[tuple[str, str]] = []
        limits = {"name": 50, "description": 255, **dict.fromkeys(GROUP_NAME_FIELDS, 50)}
        for key, limit in limits.items():
            if key not in body:
                continue
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise _Reply(self._error(400, TEXT_400))
            if value is not None and len(value) > limit:
                # Doc: group `name` 1–50, `description` ≤255, `name_a`…`name_e` ≤50.
                self.violation(f"group {key} longer than {limit} characters")
                violations.append((key, _too_long(limit)))
            fields[key] = value
        if "deleted_at" in body:
            # Doc: "Date and time when group will be deleted". [INFER] stored as given;
            # the sandbox never deletes a group by itself.
            if body["deleted_at"] is not None and not isinstance(body["deleted_at"], str):
                raise _Reply(self._error(400, TEXT_400))
            fields["deleted_at"] = body["deleted_at"]
        if (not partial or "name" in body) and not fields.get("name"):
            self.violation("group name missing or empty")
            violations.insert(0, ("name", "This value should not be blank."))
        if violations:
            raise _Reply(self._violations(violations))
        return fields

    def _create_group(self, request: httpx.Request) -> httpx.Response:
        fields = self._validate_group(self._body(request), partial=False)
        gid = self.state["next_ids"]["group"]
        self._put_group(self.state, gid, fields["name"], fields.get("description"))
        self.state["groups"][str(gid)].update(fields)
        return self._item(request, 201, self._group_view(self.state["groups"][str(gid)]))

    def _get_group(self, request: httpx.Request, gid: str) -> httpx.Response:
        return self._item(request, 200, self._group_view(self._group(gid)))

    def _edit_group(self, request: httpx.Request, gid: str) -> httpx.Response:
        group = self._group(gid)
        group.update(self._validate_group(self._body(request), partial=True))
        return self._item(request, 200, self._group_view(group))

    def _delete_group(self, request: httpx.Request, gid: str) -> httpx.Response:
        self._group(gid)
        # Doc: "Delete the group together with all the associated phone numbers."
        for pid in self.state["phones"].pop(gid, {}):
            self.state["phone_group"].pop(pid, None)
        del self.state["groups"][gid]
        self._writes += 1
        return self._empty(204)

    # -- phones ---------------------------------------------------------------------

    def _phone_view(self, record: dict[str, Any], embedded: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {} if embedded else {"@context": "/contexts/Phone"}
        out.update({"@id": f"/phones/{record['id']}", "@type": "Phone"})
        out.update(record)  # Doc: `id` "Phone ID" is a string in read schemas
        return out

    def _list_phones(self, request: httpx.Request, gid: str) -> httpx.Response:
        self._group(gid)
        page = self._page(request)
        phones = self.state["phones"][gid]
        members = [self._phone_view(phones[pid], True) for pid in self._page_ids(gid, page)]
        return self._collection(
            request,
            context="/contexts/Phone",
            iri=f"/groups/{gid}/phones",
            total=len(phones),
            page=page,
            members=members,
            member_key=self.member_key,
        )

    def phone_problems(self, item: Any) -> tuple[int, list[tuple[str, str]]]:
        """(400, []) for a malformed item, (422, violations) for a limit broken,
        (0, []) for a valid one. Subclasses in tests may reject more."""
        if not isinstance(item, dict):
            return 400, []
        phone = item.get("phone")
        if phone is not None and not isinstance(phone, str):
            return 400, []
        for key in (*PHONE_TEXT_FIELDS, "callback_data"):
            if item.get(key) is not None and not isinstance(item[key], str):
                return 400, []
        violations: list[tuple[str, str]] = []
        # Doc: phone "required", "string <= 30 characters".
        if not phone:
            self.violation("phone missing or empty")
            violations.append(("phone", "This value should not be blank."))
        elif len(phone) > 30:
            self.violation("phone longer than 30 characters")
            violations.append(("phone", _too_long(30)))
        # Doc: a…e "string | null <= 1530 characters".
        for key in PHONE_TEXT_FIELDS:
            if item.get(key) is not None and len(item[key]) > 1530:
                self.violation(f"{key} longer than 1530 characters")
                violations.append((key, _too_long(1530)))
        # Doc: callback_data "string | null <= 36 characters".
        if item.get("callback_data") is not None and len(item["callback_data"]) > 36:
            self.violation("callback_data longer than 36 characters")
            violations.append(("callback_data", _too_long(36)))
        return (422, violations) if violations else (0, [])

    def _create_phone(self, request: httpx.Request, gid: str) -> httpx.Response:
        endpoint = "POST /groups/{id}/phones"
        self._group(gid)
        body = self._body(request)
        self.count_numbers(endpoint, 1)
        status, violations = self.phone_problems(body)
        if status == 400:
            return self._error(400, TEXT_400)
        if status == 422:
            return self._violations(violations)
        # [INFER] duplicates in a group are allowed: the docs state no uniqueness rule
        # (the "conflict" dialects answer 409 "Conflict - Entity already exists").
        if self.quirks.duplicates == "conflict" and self._present(gid, body["phone"]):
            return self._error(409, TEXT_409)
        pid = self._put_phone(self.state, gid, {**body, "phone": self._stored_form(body["phone"])})
        self._writes += 1
        return self._item(request, 201, self._phone_view(self.state["phones"][gid][pid]))

    def _present(self, gid: str, phone: str, seen: set[str] | None = None) -> bool:
        """Whether the group holds ``phone`` (compared as the server reads numbers)."""
        if seen is None:
            seen = {canonical_phone(p["phone"]) for p in self.state["phones"][gid].values()}
        return canonical_phone(phone) in seen

    def _create_phones_batch(self, request: httpx.Request, gid: str) -> httpx.Response:
        endpoint = "POST /groups/{id}/phones/batch"
        self._group(gid)
        body = self._body(request)
        # Doc: the body is "Array<object>" ("Phones list by group").
        if not isinstance(body, list):
            return self._error(400, TEXT_400)
        # Doc: no batch size limit is documented, so none is enforced.
        self.count_numbers(endpoint, len(body))
        q = self.quirks
        seen = None
        if q.duplicates == "conflict":
            seen = {canonical_phone(p["phone"]) for p in self.state["phones"][gid].values()}
        results: list[dict[str, Any]] = []
        for item in body:
            status, violations = self.phone_problems(item)
            if status == 400:
                results.append({"status": 400, "body": self._item_error(400, TEXT_400)})
            elif status == 422:
                results.append({"status": 422, "body": _violation_body(violations)})
            elif seen is not None and self._present(gid, item["phone"], seen):
                # the "conflict" dialects: Doc 409 "Conflict - Entity already exists"
                results.append({"status": 409, "body": self._item_error(409, TEXT_409)})
            elif self.fail_number():
                # [INFER] an injected partial failure: the item gets the dialect's status
                # (500 by default) with the fault's words, and is not stored.
                failure = q.item_failure_status
                words = self.failure_reason(ITEM_FAILURE_TEXT.get(failure, TEXT_500))
                results.append({"status": failure, "body": self._item_error(failure, words)})
            else:
                stored = {**item, "phone": self._stored_form(item["phone"])}
                pid = self._put_phone(self.state, gid, stored)
                self._writes += 1
                if seen is not None:
                    seen.add(canonical_phone(item["phone"]))
                results.append(
                    {"status": 201, "body": self._phone_view(self.state["phones"][gid][pid])}
                )
        if not self._wants_ld(request):
            # the "plain" dialect: a bare array of {status, body}, no JSON-LD keys
            plain = [{"status": r["status"], "body": _plain(r["body"])} for r in results]
            return self._json(201, plain, content_type="application/json")
        # Doc: 201 "Groups resource created" with @context, @id, @type, hydra:totalItems
        # and hydra:member [{status: <HTTP code>, body: <Phone>}] — a per-item status.
        reply: dict[str, Any] = {
            "@context": "/contexts/Phone",
            "@id": f"/groups/{gid}/phones/batch",
            "@type": "hydra:Collection",
        }
        if q.total_items:
            reply["hydra:totalItems"] = len(results)
        reply[self.member_key] = results
        return self._json(201, reply)

    def _phone(self, pid: str) -> dict[str, Any]:
        gid = self.state["phone_group"].get(pid)
        if gid is None:
            raise _Reply(self._error(404, TEXT_404))
        return self.state["phones"][gid][pid]

    def _edit_phone(self, request: httpx.Request, pid: str) -> httpx.Response:
        # Doc: PUT "Edit an entry with a phone number"; same Phone body.
        record = self._phone(pid)
        body = self._body(request)
        self.count_numbers("PUT /phones/{id}", 1)
        # [INFER] fields left out of the body keep their values.
        merged = {**record, **body} if isinstance(body, dict) else body
        status, violations = self.phone_problems(merged)
        if status == 400:
            return self._error(400, TEXT_400)
        if status == 422:
            return self._violations(violations)
        for key in ("phone", *PHONE_TEXT_FIELDS, "callback_data"):
            if key in body:
                record[key] = self._stored_form(body[key]) if key == "phone" else body[key]
        self._writes += 1
        return self._item(request, 200, self._phone_view(record))

    def _delete_phone(self, request: httpx.Request, pid: str) -> httpx.Response:
        # Doc: DELETE /phones/{id} by phone id: 204 "The entity has been deleted"; 404.
        self.count_numbers("DELETE /phones/{id}", 1)
        self._phone(pid)
        failure = self.quirks.delete_failure_status
        if failure is not None and self.fail_number():
            # [INFER] an injected failure of this one number's delete: nothing deleted
            return self._error(failure, self.failure_reason(ITEM_FAILURE_TEXT[failure]))
        gid = self.state["phone_group"].pop(pid)
        del self.state["phones"][gid][pid]
        self._writes += 1
        return self._empty(204)

    # -- blocked numbers --------------------------------------------------------------

    def _blocked_view(self, record: dict[str, Any], embedded: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {} if embedded else {"@context": "/contexts/BlockedNumber"}
        out.update({"@id": f"/blocked_numbers/{record['id']}", "@type": "BlockedNumber"})
        out.update(record)
        return out

    def _list_blocked(self, request: httpx.Request) -> httpx.Response:
        # Doc: GET /blocked_numbers, optional filters `number` (exact) and `type` (exact).
        page = self._page(request)
        params = request.url.params
        number, type_ = params.get("number"), params.get("type")
        records: list[dict[str, Any]]
        if number is not None:
            self.count_numbers("GET /blocked_numbers", 1)
            bid = self.state["blocked_index"].get(number)
            records = [self.state["blocked_numbers"][bid]] if bid else []
        else:
            records = list(self.state["blocked_numbers"].values())
        if type_ is not None:
            records = [r for r in records if str(r["type"]) == type_]
        query = {k: v for k, v in (("number", number), ("type", type_)) if v is not None}
        size = self.quirks.page_size
        chunk = records[(page - 1) * size : page * size]
        return self._collection(
            request,
            context="/contexts/BlockedNumber",
            iri="/blocked_numbers",
            total=len(records),
            page=page,
            members=[self._blocked_view(r, embedded=True) for r in chunk],
            # Doc-version quirk: the newer blocked-numbers example uses "member", not
            # "hydra:member", next to "hydra:totalItems" / "hydra:view".
            member_key="member",
            query=query,
            search={
                "@type": "hydra:IriTemplate",
                "hydra:template": "/blocked_numbers{?number,type}",
                "hydra:variableRepresentation": "BasicRepresentation",
                "hydra:mapping": [
                    {"@type": "IriTemplateMapping", "variable": v, "property": v, "required": False}
                    for v in ("number", "type")
                ],
            },
        )

    def _create_blocked(self, request: httpx.Request) -> httpx.Response:
        endpoint = "POST /blocked_numbers"
        body = self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("number"), str):
            return self._error(400, TEXT_400)
        number = body["number"]
        self.count_numbers(endpoint, 1)
        if not BLOCKED_NUMBER_PATTERN.match(number):
            self.violation("blocked number not matching ^\\+[0-9]{4,20}$")
            return self._violations([("number", "This value is not valid.")])
        if number in self.state["blocked_index"]:
            # Doc: 409 "Conflict - Entity already exists".
            return self._error(409, TEXT_409)
        # Doc: type 1 "blocked by customer" (2 is "unsubscribed by user").
        bid = self._put_blocked(self.state, number, 1, self.clock())
        return self._item(request, 201, self._blocked_view(self.state["blocked_numbers"][bid]))

    def _delete_blocked(self, request: httpx.Request, bid: str) -> httpx.Response:
        # Doc: DELETE /blocked_numbers/{id} -> 204 "Blocked_number resource deleted", 404.
        self.count_numbers("DELETE /blocked_numbers/{id}", 1)
        record = self.state["blocked_numbers"].pop(bid, None)
        if record is None:
            return self._error(404, TEXT_404)
        self.state["blocked_index"].pop(record["number"], None)
        return self._empty(204)


def _plain(body: dict[str, Any]) -> dict[str, Any]:
    """The plain-JSON form of a JSON-LD object (no @context/@id/@type)."""
    return {k: v for k, v in body.items() if not k.startswith("@")}


def _error_body(description: str) -> dict[str, Any]:
    # [INFER] API Platform's Hydra error shape; the description texts are the docs'.
    return {
        "@context": "/contexts/Error",
        "@type": "hydra:Error",
        "hydra:title": "An error occurred",
        "hydra:description": description,
    }


def _plain_error_body(status: int, description: str) -> dict[str, Any]:
    # [INFER] API Platform's error for plain JSON (RFC 7807 members, no JSON-LD keys)
    return {"type": f"/errors/{status}", "title": "An error occurred", "detail": description}


def _violation_body(violations: list[tuple[str, str]]) -> dict[str, Any]:
    # [INFER] API Platform's 422 ConstraintViolationList. Doc: 422 "The request was
    # well-formed but was unable to be followed due to semantic errors".
    return {
        "@context": "/contexts/ConstraintViolationList",
        "@type": "ConstraintViolationList",
        "hydra:title": "An error occurred",
        "hydra:description": "\n".join(f"{p}: {m}" for p, m in violations),
        "violations": [{"propertyPath": p, "message": m} for p, m in violations],
    }
