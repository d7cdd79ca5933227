"""Adapter for LOX24 group phones (API Platform, JSON-LD / Hydra).

A target is one LOX24 group (``group_id``). Live state is the group's phone
list, ``GET /groups/{id}/phones`` in Hydra pages; adds go in one
``POST /groups/{id}/phones/batch`` per batch (per-item status); removes are
``DELETE /phones/{id}``, by LOX24's phone id, one per call. Everything LOX24-
specific (headers, Hydra keys, the bad-auth lockout, per-item statuses) lives
here; retries, batching policy and state recording do not.

The lockout. "If more than three requests are received from an IP address with
incorrect authentication data within one minute, all subsequent requests from this
IP will receive a response with the 429 status … within the next ten minutes." So:
a refused credential (401, 403, or LOX24's refusal text under any status) is an
``AuthError`` (the credential gate of the base then sends nothing more with it), and
the lockout reply is ``LockedOut``, an ``AuthError`` too: never retried, and once
one request met it this adapter instance sends nothing at all (every request would
meet it for ten minutes, and with a wrong token would count as another failure).
A 429 with no body is taken as the lockout: it is the only 429 LOX24 documents.

Paging never stops early on a short page: the end is the provider's own signal
(no ``hydra:next``; with no Hydra view at all, ``hydra:totalItems`` reached or an
empty page; with bare JSON arrays, an empty page), and the rows read (shifted rows
read once) must agree with ``hydra:totalItems`` up to what the changes seen during
the read explain, else the read is a ProviderError rather than a partial list.
"""

from __future__ import annotations

import asyncio
import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, Target
from ..errors import AuthError, CredentialError, ProviderError, RetryableError
from ..numbers import parse_live
from .base import Capabilities, ProviderAdapter, parse_retry_after, short_body

EP_LIST = "GET /groups/{id}/phones"
EP_BATCH = "POST /groups/{id}/phones/batch"
EP_DELETE = "DELETE /phones/{id}"

NO_ID_REASON = "no LOX24 phone id known: refresh first"
LOCKED_OUT = (
    "LOX24 has locked this IP out for ~10 minutes (too many requests with a wrong token); "
    "wait, then check the token"
)
# Doc (every endpoint, 429): "IP address was temporary blocked, because during short time
# from it was sent many request with invalid credentials. Please wait and try later."
_LOCKOUT_MARK = "ip address was temporary blocked"
# Doc: 401 "Client ID or API key isn’t active or invalid!", 403 "Account isn’t
# activated. Please wait or contact to support!" (matched with either apostrophe)
_REFUSED_MARKS = ("api key isn't active or invalid", "account isn't activated")
# Doc: 400 "Invalid input", 422 "… unable to be followed due to semantic errors": the
# only per-item and delete statuses that say a re-send cannot help
_PERMANENT = frozenset({400, 422})
_ERROR_STATUSES = tuple(range(400, 600))  # classified here, not in the base
_GROUP_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_PHONE_IRI = re.compile(r"/phones/([0-9]+)$")
_TRUNK_ZERO = re.compile(r"^\s*0(?!0)")
_MAX_PAGES = 1_000_000  # a guard against a server whose hydra:next never ends


class Refused(AuthError):
    """LOX24 refused the credential. Rebuilt whole by ``copy.copy`` (the gate raises
    copies of the first refusal; ``ProviderError``'s own arguments cannot be rebuilt
    from its message alone)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.provider, self.endpoint, self.reason, self.status))


class LockedOut(Refused):
    """LOX24's bad-auth lockout of this IP (429): nothing more may be sent from here."""


@dataclass
class _Page:
    """One page of a phone list, whatever shape it came in."""

    members: list[dict[str, Any]]
    total: int | None = None  # hydra:totalItems
    next: str | None = None  # hydra:view.hydra:next
    has_view: bool = False  # hydra:view present (its hydra:next then marks the end)
    hydra: bool = True  # False: a bare JSON array (no metadata at all)


class Lox24Adapter(ProviderAdapter):
    type_name = "lox24"
    capabilities = Capabilities(
        can_list=True,
        can_add=True,
        can_remove=True,
        # [INFER] the docs give no batch size limit for /phones/batch: a conservative choice.
        batch_limit=100,
        # [INFER] no concurrency limit is documented.
        concurrency_limit=4,
        native_expiry=False,
        remove_by="provider_id",
        remove_one_per_call=True,
        scope_fields=("group_id",),
        attribute_fields=(),
        credential_keys=("token",),
        default_base_url="https://api.lox24.eu",
        wire_format="E.164 with +",
        notes=(
            "more than 3 bad-auth requests a minute lock the IP out for 10 minutes: "
            "a 401/403 or a lockout 429 is never retried"
        ),
    )

    def __init__(
        self,
        instance: str,
        client: httpx.AsyncClient,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(instance, client, credentials, options)
        # group id -> numbers whose add may have been committed without us hearing so
        # (dropped connection, 5xx, per-item 5xx): checked against the list on re-send.
        self._uncertain: dict[str, set[str]] = {}
        self._locked_out: LockedOut | None = None  # met the lockout: send nothing more

    # -- scope -------------------------------------------------------------------

    @classmethod
    def scope_problems(cls, key: str, value: object) -> str | None:
        if key == "group_id":
            if isinstance(value, bool) or not isinstance(value, int | str):
                return "group_id must be a positive integer (a LOX24 group id)"
            if not _GROUP_ID.match(str(value)):
                return "group_id must be a positive integer (a LOX24 group id)"
            return None
        return super().scope_problems(key, value)

    @classmethod
    def canonical(cls, key: str, value: object) -> str:
        # a LOX24 group id is a number: "07116" and 7116 name one group
        return str(int(str(value))) if key == "group_id" else super().canonical(key, value)

    @classmethod
    def field_schema(cls, key: str) -> dict[str, Any]:
        if key == "group_id":
            return {"type": "integer", "minimum": 1, "description": "LOX24 group id"}
        return super().field_schema(key)

    # -- HTTP --------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = self._credentials.get("token")
        if not token:
            raise CredentialError(
                f"{self.instance}: credential 'token' (clientNumber:apiKey) is not set"
            )
        return {
            # Doc: "X-LOX24-AUTH-TOKEN: <clientNumber>:<apiKey>", e.g. 1234567:e3f3a7…
            "X-LOX24-AUTH-TOKEN": token,
            # Doc: "Use ld+json to get pagination links" (Accept: application/ld+json gives
            # hydra:totalItems and hydra:view; application/json gives a bare array).
            "Accept": "application/ld+json",
        }

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        return await self.gated(lambda: self._call_once(*args, **kwargs))

    async def _call_once(
        self, method: str, path: str, endpoint: str, *, json_body: Any = None
    ) -> httpx.Response:
        """One request, holding a concurrency slot for its whole duration; every error
        status is classified here (see the module docstring): LockedOut, AuthError,
        RetryableError (429 throttle, 5xx), or the response for the caller."""
        if self._locked_out is not None:
            raise copy.copy(self._locked_out)
        headers = self._headers()
        async with self.in_flight_limit():
            if self._locked_out is not None:  # met by another request while this one waited
                raise copy.copy(self._locked_out)
            resp = await self.request(
                method,
                path,
                endpoint,
                json_body=json_body,
                headers=headers,
                ok_statuses=_ERROR_STATUSES,
            )
        status = resp.status_code
        if status < 400:
            return resp
        text = _body_text(resp)
        if _LOCKOUT_MARK in text or (status == 429 and not text):
            # the lockout, whatever its shape (Hydra error, detail, message, plain text),
            # or a 429 with no body: the only 429 LOX24 documents is the lockout
            self._locked_out = LockedOut(self.instance, endpoint, LOCKED_OUT, status)
            raise copy.copy(self._locked_out)
        if status in (401, 403) or any(mark in text for mark in _REFUSED_MARKS):
            raise Refused(self.instance, endpoint, self._refusal(resp), status)
        if status == 429 or status >= 500:
            raise RetryableError(
                self.instance,
                endpoint,
                self._description(resp) or ("too many requests" if status == 429 else "error"),
                status,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        return resp

    def _refusal(self, resp: httpx.Response) -> str:
        words = self._description(resp) or short_body(resp) or "unauthorised"
        if "activated" in words.lower():
            # Doc: 403 "Account isn’t activated. Please wait or contact to support!"
            return f"{words} (the token is known but the account is not active; not retried)"
        return (
            f"{words} (check the token, clientNumber:apiKey; not retried: LOX24 locks the "
            "IP out after 3 bad-auth requests a minute)"
        )

    def _description(self, resp: httpx.Response) -> str:
        """LOX24's words in an error reply, redacted ("" if there are none)."""
        try:
            body = resp.json()
        except ValueError:
            return self.redact(short_body(resp)) if resp.content else ""
        return self.redact(_item_reason(body)) if isinstance(body, dict) else ""

    def _fail(self, resp: httpx.Response, endpoint: str) -> ProviderError:
        reason = self._description(resp) or f"unexpected HTTP status {resp.status_code}"
        return ProviderError(self.instance, endpoint, reason, resp.status_code)

    # -- live numbers --------------------------------------------------------------

    def _live(self, raw: str, **fields: Any) -> LiveEntry:
        """A live entry for a phone as LOX24 stores it.

        Doc (/sms): numbers are accepted as ``+491701234567``, ``00491701234567``,
        ``491701234567`` and "national 01701234567 for German accounts", converted
        "based on user's address". So with no ``default_region`` set, a number written
        with a single trunk ``0`` is read as German (the one national form LOX24
        documents), and bare digits as international without ``+`` (never as national:
        ``4915112345678`` is not a German national number)."""
        if not self.options.get("default_region") and _TRUNK_ZERO.match(raw):
            number = parse_live(raw, "DE")
            if number is not None:
                return LiveEntry(number=number, raw=raw, **fields)
        return self.live_entry(raw, **fields)

    # -- refresh -------------------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        gid = self._group_id(target)
        by_number: dict[str, LiveEntry] = {}
        for raw, pid, opted_out in await self._list_group(gid):
            # Doc: unsubscribed_at "Timestamp when user was unsubscribed by a link": the
            # user's own opt-out, never to be removed by default.
            entry = self._live(raw, provider_ids=(pid,), opt_out=opted_out)
            held = by_number.setdefault(entry.number, entry)
            if held is not entry:
                # [INFER] duplicates in a group are allowed (no uniqueness rule documented):
                # one entry per number (the first's text) with all its phone ids, so a
                # remove deletes them all; opted out if any of them is.
                held.provider_ids += (pid,)
                held.opt_out = held.opt_out or opted_out
        return list(by_number.values())

    async def _list_group(self, gid: str) -> list[tuple[str, str, bool]]:
        """(raw phone, phone id, unsubscribed) of every phone of the group, list order."""
        base = f"/groups/{gid}/phones"
        first = await self._page(f"{base}?page=1", base)
        pages: dict[int, _Page] = {1: first}
        size = len(first.members)
        if not first.hydra or not first.has_view:
            # No paging links: bare arrays end with an empty page; a Hydra collection
            # without a view ends when hydra:totalItems is reached (or an empty page).
            await self._page_by_number(pages, base, first.total)
        elif first.next and first.total is not None and size:
            # The total and page size are known up front: fetch the rest concurrently
            # (the semaphore keeps at most concurrency_limit requests in flight).
            last = math.ceil(first.total / size)
            if last > _MAX_PAGES:
                raise ProviderError(
                    self.instance, EP_LIST, f"unexpected reply: {first.total} items", 200
                )
            numbers = iter(range(2, last + 1))

            async def worker() -> None:
                for n in numbers:
                    pages[n] = await self._page(f"{base}?page={n}", base)

            workers = min(self.concurrency, max(0, last - 1))
            try:
                async with asyncio.TaskGroup() as group:  # one failing page stops the rest
                    for _ in range(workers):
                        group.create_task(worker())
            except ExceptionGroup as failed:
                # the error of the read, not a group: an AuthError (LockedOut) first
                errors = sorted(failed.exceptions, key=lambda e: not isinstance(e, AuthError))
                raise errors[0] from None
            # The list may have grown since page 1: follow hydra:next past the end.
            await self._follow(pages, max(pages), base)
        else:
            await self._follow(pages, 1, base)
        seen: set[str] = set()
        out = []
        for n in sorted(pages):
            for item in pages[n].members:
                row = self._row(item)
                if row[1] not in seen:  # a phone shifted across pages is read once
                    seen.add(row[1])
                    out.append(row)
        self._check_total(pages, len(out))
        return out

    async def _follow(self, pages: dict[int, _Page], n: int, base: str) -> None:
        """Fetch pages after page ``n`` sequentially by their hydra:next links, until a
        page has none (the provider's own end signal; an empty page is not one)."""
        visited = {f"{base}?page={k}" for k in pages}
        while n < _MAX_PAGES:
            nxt = pages[n].next
            if nxt is None:
                return
            path = self._next_path(nxt, base)
            if path in visited:
                return
            visited.add(path)
            n += 1
            pages[n] = await self._page(path, base)

    async def _page_by_number(self, pages: dict[int, _Page], base: str, total: int | None) -> None:
        """Fetch ``?page=2, 3, …`` until an empty page (or ``total`` rows are read):
        with no paging links, a short page is not a sign of the end."""
        ids: set[str] = set()
        for item in pages[1].members:
            ids.add(self._row(item)[1])
        n = 1
        while n < _MAX_PAGES and pages[n].members:
            if total is not None and len(ids) >= total:
                return
            n += 1
            page = await self._page(f"{base}?page={n}", base)
            pages[n] = page
            new = {self._row(item)[1] for item in page.members} - ids
            if page.members and not new:
                return  # the server ignores ?page and repeats the whole list: all is read
            ids |= new
            if page.total is not None:
                total = page.total

    def _check_total(self, pages: dict[int, _Page], count: int) -> None:
        """Rows read against hydra:totalItems: a difference that the totals seen while
        reading (the list changed) do not explain means phones were missed."""
        totals = [p.total for p in pages.values() if p.total is not None]
        if not totals:
            return
        low, high = min(totals), max(totals)
        spread = high - low
        if not low - spread <= count <= high + spread:
            raise ProviderError(
                self.instance,
                EP_LIST,
                f"unexpected reply: read {count} phones but hydra:totalItems says {high}; "
                "the list would be partial (run again)",
                200,
            )

    def _next_path(self, link: str, base: str) -> str:
        """A hydra:next link as a path on our base URL: relative, or absolute on the
        base URL's own host; never a request to another host or another list."""
        parts = urlsplit(link)
        origin = self.client.base_url
        if parts.scheme or parts.netloc:
            there = httpx.URL(link)
            if (there.scheme, there.host, there.port) != (origin.scheme, origin.host, origin.port):
                raise ProviderError(
                    self.instance, EP_LIST, "unexpected reply: hydra:next points to another host"
                )
        path = parts.path
        prefix = origin.path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        if path != base:
            raise ProviderError(
                self.instance, EP_LIST, "unexpected reply: hydra:next leaves the group's phones"
            )
        page = parse_qs(parts.query).get("page", [""])[0]
        if not page.isdigit():
            raise ProviderError(self.instance, EP_LIST, "unexpected reply: hydra:next has no page")
        return f"{path}?{parts.query}"

    async def _page(self, path: str, base: str) -> _Page:
        resp = await self.read(lambda: self._call("GET", path, EP_LIST))
        if resp.status_code != 200:
            raise self._fail(resp, EP_LIST)
        body = self.json_of(resp, EP_LIST)
        if isinstance(body, list):
            # Doc: with plain JSON "collections come back as bare arrays" (a server may
            # answer so even to Accept: application/ld+json): no metadata at all.
            if not all(isinstance(m, dict) for m in body):
                raise self.malformed(resp, EP_LIST, "a bare array of non-objects")
            return _Page(body, hydra=False)
        if not isinstance(body, dict):
            raise self.malformed(resp, EP_LIST, "expected a JSON-LD collection object")
        # Doc-version quirk: older examples use "hydra:member", newer ones "member".
        members = body.get("hydra:member", body.get("member"))
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise self.malformed(resp, EP_LIST, "no hydra:member list of objects")
        total = body.get("hydra:totalItems", body.get("totalItems"))
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            total = None
        view = body.get("hydra:view", body.get("view"))
        nxt = None
        if isinstance(view, dict):
            nxt = view.get("hydra:next", view.get("next"))
            nxt = nxt if isinstance(nxt, str) and nxt else None
        return _Page(members, total, nxt, isinstance(view, dict))

    def _row(self, item: dict[str, Any]) -> tuple[str, str, bool]:
        phone, pid = item.get("phone"), item.get("id")
        if not isinstance(phone, str) or not isinstance(pid, str | int) or isinstance(pid, bool):
            raise ProviderError(
                self.instance, EP_LIST, "unexpected reply: a phone without 'phone' or 'id'", 200
            )
        return phone, str(pid), item.get("unsubscribed_at") is not None

    # -- send --------------------------------------------------------------------------

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        gid = self._group_id(target)
        removes = [op for op in batch.ops if op.kind == "remove"]
        adds = [op for op in batch.ops if op.kind == "add"]
        if not adds or not removes:  # what the base's batches() makes: one kind a batch
            return BatchResult(await (self._add(gid, adds) if adds else self._remove(removes)))
        removed = iter(await self._remove(removes))
        added = iter(await self._add(gid, adds))
        return BatchResult([next(added if op.kind == "add" else removed) for op in batch.ops])

    async def _add(self, gid: str, ops: list[Op]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        uncertain = self._uncertain.setdefault(gid, set())
        if uncertain & {op.number for op in ops}:
            # A re-send after an answer we never got: LOX24 keeps duplicates, so look at
            # the list first and do not add what is already there (idempotent re-send).
            present: dict[str, list[str]] = {}
            for raw, pid, _ in await self._list_group(gid):
                present.setdefault(self._live(raw).number, []).append(pid)
            for i, op in enumerate(ops):
                if op.number in present:
                    # stays uncertain: if this send fails after all (the POST of the rest
                    # is throttled), the next re-send must find it listed again
                    outcomes[i] = Outcome(op, "already", provider_ids=tuple(present[op.number]))
                else:
                    uncertain.discard(op.number)
        todo = [(i, op) for i, op in enumerate(ops) if i not in outcomes]
        if todo:
            posted = await self._post_batch(gid, todo)
            outcomes.update(zip((i for i, _ in todo), posted, strict=True))
        return [outcomes[i] for i in range(len(ops))]

    async def _post_batch(self, gid: str, todo: list[tuple[int, Op]]) -> list[Outcome]:
        # Doc: "Instead of sending multiple requests better to send a single request with
        # a list of Phone objects as body request." Numbers go as E.164 with "+".
        body = [{"phone": op.number} for _, op in todo]
        uncertain = self._uncertain[gid]
        try:
            resp = await self._call("POST", f"/groups/{gid}/phones/batch", EP_BATCH, json_body=body)
        except RetryableError as exc:
            if exc.status != 429:  # a 429 is answered before anything is stored
                uncertain.update(op.number for _, op in todo)
            raise
        if resp.status_code not in (200, 201):
            raise self._fail(resp, EP_BATCH)
        reply = self.json_of(resp, EP_BATCH)
        items = reply  # plain JSON: a bare array of {status, body}
        if isinstance(reply, dict):
            items = reply.get("hydra:member", reply.get("member"))
        if not isinstance(items, list) or len(items) != len(todo):
            raise self.malformed(resp, EP_BATCH, f"expected hydra:member with {len(todo)} items")
        outcomes = []
        # Doc: hydra:member [{status: "Response HTTP status code", body: Phone | error}],
        # in the order of the request's array.
        for (_, op), item in zip(todo, items, strict=True):
            status = item.get("status") if isinstance(item, dict) else None
            if not isinstance(status, int) or isinstance(status, bool):
                raise self.malformed(resp, EP_BATCH, "an item without an integer status")
            body_ = item.get("body")
            body_ = body_ if isinstance(body_, dict) else {}
            pid = _phone_id(body_)
            if status in (200, 201) and pid is not None:
                outcomes.append(Outcome(op, "done", provider_ids=(pid,)))
                continue
            if status == 409:
                # Doc: 409 "Conflict - Entity already exists": the phone is in the group
                outcomes.append(Outcome(op, "already", provider_ids=(pid,) if pid else ()))
                continue
            # (worded only for a failure: a hundred successes a request need no words)
            reason = self.redact(_item_reason(body_)) or f"HTTP {status}"
            if status in _PERMANENT:
                outcomes.append(Outcome(op, "failed", reason=reason))
            else:
                # By exclusion: 429, 5xx, a status LOX24 does not document, or a 2xx
                # without a phone id (stored or not, we cannot tell): re-sent, after a look
                # at the list (LOX24 keeps duplicates)
                uncertain.add(op.number)
                if status in (200, 201):
                    reason = f"HTTP {status} without a phone id"
                outcomes.append(Outcome(op, "retryable", reason=reason))
        return outcomes

    async def _remove(self, ops: list[Op]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for k, op in enumerate(ops):
            ids = [p for p in op.provider_ids if p.strip()]
            if not ids:
                outcomes.append(Outcome(op, "failed", reason=NO_ID_REASON))
                continue
            try:
                outcomes.append(await self._delete_ids(op, ids))
            except RetryableError as exc:
                # Deletes by id are safe to repeat (a second DELETE is a 404 -> already).
                outcomes += [
                    Outcome(o, "retryable", reason=exc.reason, retry_after=exc.retry_after)
                    for o in ops[k:]
                ]
                break
        return outcomes

    async def _delete_ids(self, op: Op, ids: list[str]) -> Outcome:
        deleted = False
        for pid in ids:
            if not pid.isdigit():
                return Outcome(op, "failed", reason=f"not a LOX24 phone id: {pid[:20]!r}")
            # Doc: DELETE /phones/{id}: 204 "The entity has been deleted"; 404 not found.
            resp = await self._call("DELETE", f"/phones/{pid}", EP_DELETE)
            status = resp.status_code
            if status in (200, 202, 204):
                deleted = True
            elif status != 404:
                reason = self._description(resp) or f"HTTP {status}"
                # by exclusion: only "Invalid input" / 422 say a re-send cannot help
                return Outcome(op, "failed" if status in _PERMANENT else "retryable", reason)
        return Outcome(op, "done" if deleted else "already")

    # -- helpers ---------------------------------------------------------------------

    def _group_id(self, target: Target) -> str:
        value = target.scope_dict().get("group_id")
        problem = self.scope_problems("group_id", value)
        if problem:
            raise ProviderError(self.instance, EP_LIST, f"target {target.name}: {problem}")
        return str(value)


def _body_text(resp: httpx.Response) -> str:
    """Every word of a reply, lower case, one line, ``’`` as ``'``: the raw text and
    the strings of a JSON body (which may escape what the raw text would show)."""
    parts = [short_body(resp, 4000)]
    try:
        stack = [resp.json()]
    except ValueError:
        stack = []
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return " ".join(" ".join(parts).split()).lower().replace("’", "'")


def _phone_id(body: Mapping[str, Any]) -> str | None:
    """The phone id in a Phone body: ``id`` ("Phone ID"), else the ``@id`` IRI."""
    pid = body.get("id")
    if isinstance(pid, str | int) and not isinstance(pid, bool) and str(pid).isdigit():
        return str(pid)
    iri = body.get("@id")
    match = _PHONE_IRI.search(iri) if isinstance(iri, str) else None
    return match.group(1) if match else None


def _item_reason(body: Mapping[str, Any]) -> str:
    """LOX24's own words in an error body (Hydra error or constraint violations)."""
    text = body.get("hydra:description") or body.get("detail") or body.get("message")
    if isinstance(text, str) and text:
        return text
    violations = body.get("violations")
    if isinstance(violations, list):
        parts = [
            f"{v.get('propertyPath')}: {v.get('message')}"
            for v in violations
            if isinstance(v, dict)
        ]
        return "; ".join(parts)
    return ""
