"""Adapter for LOX24 group phones (API Platform, JSON-LD / Hydra).

A target is one LOX24 group (``group_id``). Live state is the group's phone
list, ``GET /groups/{id}/phones`` in Hydra pages; adds go in one
``POST /groups/{id}/phones/batch`` per batch (per-item status); removes are
``DELETE /phones/{id}``, by LOX24's phone id, one per call. Everything LOX24-
specific (headers, Hydra keys, the bad-auth lockout, per-item statuses) lives
here; retries, batching policy and state recording do not.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, Target
from ..errors import AuthError, CredentialError, ProviderError, RetryableError
from ..numbers import normalise_live
from .base import Capabilities, ProviderAdapter, parse_retry_after

EP_LIST = "GET /groups/{id}/phones"
EP_BATCH = "POST /groups/{id}/phones/batch"
EP_DELETE = "DELETE /phones/{id}"

NO_ID_REASON = "no LOX24 phone id known: refresh first"
_GROUP_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_MAX_PAGES = 1_000_000  # a guard against a server whose hydra:next never ends


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
            "a 401/403 is never retried"
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
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json_body: Any = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request, holding a concurrency slot for its whole duration.

        401/403 become AuthError with LOX24's own text; they are never retried, because
        "If more than three requests are received from an IP address with incorrect
        authentication data within one minute, all subsequent requests from this IP will
        receive a response with the 429 status … within the next ten minutes." A 429 is
        that lockout (or a throttle): RetryableError with Retry-After.
        """
        headers = self._headers()
        async with self.in_flight_limit():
            resp = await self.request(
                method,
                path,
                endpoint,
                json_body=json_body,
                headers=headers,
                ok_statuses=(401, 403, 429, *ok_statuses),
            )
        status = resp.status_code
        if status in (401, 403):
            raise AuthError(
                self.instance,
                endpoint,
                f"{self._description(resp) or 'unauthorised'} "
                "(not retried: LOX24 locks the IP out after 3 bad-auth requests a minute)",
                status,
            )
        if status == 429:
            raise RetryableError(
                self.instance,
                endpoint,
                self._description(resp) or "too many requests",
                status,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        return resp

    @staticmethod
    def _description(resp: httpx.Response) -> str:
        """``hydra:description`` of an error reply (or "" if there is none)."""
        try:
            body = resp.json()
        except ValueError:
            return ""
        return _item_reason(body) if isinstance(body, dict) else ""

    def _fail(self, resp: httpx.Response, endpoint: str) -> ProviderError:
        reason = self._description(resp) or f"unexpected HTTP status {resp.status_code}"
        return ProviderError(self.instance, endpoint, reason, resp.status_code)

    # -- refresh -------------------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        gid = self._group_id(target)
        members = await self._list_group(gid)
        by_number: dict[str, list[tuple[str, str, bool]]] = {}
        for raw, pid, opted_out in members:
            by_number.setdefault(normalise_live(raw), []).append((raw, pid, opted_out))
        entries = []
        for number, rows in by_number.items():
            # [INFER] duplicates in a group are allowed (no uniqueness rule documented):
            # one entry per number, its phone ids joined by "," so a remove deletes all.
            entries.append(
                LiveEntry(
                    number=number,
                    raw=rows[0][0],
                    provider_id=",".join(pid for _, pid, _ in rows),
                    # Doc: unsubscribed_at "Timestamp when user was unsubscribed by a link":
                    # the user's own opt-out, never to be removed by default.
                    opt_out=any(opted for _, _, opted in rows),
                )
            )
        return entries

    async def _list_group(self, gid: str) -> list[tuple[str, str, bool]]:
        """(raw phone, phone id, unsubscribed) of every phone of the group, list order."""
        base = f"/groups/{gid}/phones"
        first = await self._page(f"{base}?page=1")
        pages: dict[int, dict[str, Any]] = {1: first}
        total = first.get("hydra:totalItems")
        size = len(_members(first))
        view = first.get("hydra:view") if isinstance(first.get("hydra:view"), dict) else {}
        if isinstance(total, int) and size and view.get("hydra:next"):
            # The total and page size are known up front: fetch the rest concurrently
            # (the semaphore keeps at most concurrency_limit requests in flight).
            last = math.ceil(total / size)
            if last > _MAX_PAGES:
                raise ProviderError(self.instance, EP_LIST, f"unexpected reply: {total} items", 200)
            numbers = iter(range(2, last + 1))

            async def worker() -> None:
                for n in numbers:
                    pages[n] = await self._page(f"{base}?page={n}")

            workers = min(self.capabilities.concurrency_limit, max(0, last - 1))
            await asyncio.gather(*(worker() for _ in range(workers)))
            # The list may have grown since page 1: follow hydra:next past the end.
            await self._follow(pages, last, base)
        else:
            await self._follow(pages, 1, base)
        seen: set[str] = set()
        out = []
        for n in sorted(pages):
            for item in _members(pages[n]):
                row = self._row(item)
                if row[1] not in seen:  # a phone shifted across pages is read once
                    seen.add(row[1])
                    out.append(row)
        return out

    async def _follow(self, pages: dict[int, dict[str, Any]], n: int, base: str) -> None:
        """Fetch pages after page ``n`` sequentially by their hydra:next links."""
        visited = {f"{base}?page={k}" for k in pages}
        while n < _MAX_PAGES:
            view = pages[n].get("hydra:view")
            nxt = view.get("hydra:next") if isinstance(view, dict) else None
            if not isinstance(nxt, str) or not _members(pages[n]):
                return
            path = self._same_site_path(nxt)
            if path in visited:
                return
            visited.add(path)
            n += 1
            pages[n] = await self._page(path)

    def _same_site_path(self, link: str) -> str:
        """A hydra link as a path on our base URL (never a request to another host)."""
        parts = urlsplit(link)
        if parts.scheme or parts.netloc or not parts.path.startswith("/"):
            raise ProviderError(self.instance, EP_LIST, "unexpected reply: hydra:next off-site")
        page = parse_qs(parts.query).get("page", [""])[0]
        if not page.isdigit():
            raise ProviderError(self.instance, EP_LIST, "unexpected reply: hydra:next has no page")
        return f"{parts.path}?{parts.query}"

    async def _page(self, path: str) -> dict[str, Any]:
        resp = await self.read(lambda: self._call("GET", path, EP_LIST))
        if resp.status_code != 200:
            raise self._fail(resp, EP_LIST)
        body = self.json_of(resp, EP_LIST)
        if not isinstance(body, dict):
            raise self.malformed(resp, EP_LIST, "expected a JSON-LD collection object")
        # Doc-version quirk: older examples use "hydra:member", newer ones "member".
        members = body.get("hydra:member", body.get("member"))
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise self.malformed(resp, EP_LIST, "no hydra:member list of objects")
        body["hydra:member"] = members
        return body

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
                present.setdefault(normalise_live(raw), []).append(pid)
            for i, op in enumerate(ops):
                if op.number in present:
                    # stays uncertain: if this send fails after all (the POST of the rest
                    # is throttled), the next re-send must find it listed again
                    outcomes[i] = Outcome(op, "already", provider_id=",".join(present[op.number]))
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
        items = reply.get("hydra:member", reply.get("member")) if isinstance(reply, dict) else None
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
            if status in (200, 201):
                pid = body_.get("id")
                pid = str(pid) if isinstance(pid, str | int) and not isinstance(pid, bool) else None
                outcomes.append(Outcome(op, "done", provider_id=pid))
            elif status == 429 or status >= 500:
                uncertain.add(op.number)
                reason = _item_reason(body_) or f"HTTP {status}"
                outcomes.append(Outcome(op, "retryable", reason=reason))
            else:
                reason = _item_reason(body_) or f"HTTP {status}"
                outcomes.append(Outcome(op, "failed", reason=reason))
        return outcomes

    async def _remove(self, ops: list[Op]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for k, op in enumerate(ops):
            ids = [p.strip() for p in (op.provider_id or "").split(",") if p.strip()]
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
            resp = await self._call("DELETE", f"/phones/{pid}", EP_DELETE, ok_statuses=(404,))
            if resp.status_code in (200, 202, 204):
                deleted = True
            elif resp.status_code != 404:
                reason = self._description(resp) or f"HTTP {resp.status_code}"
                return Outcome(op, "failed", reason=reason)
        return Outcome(op, "done" if deleted else "already")

    # -- helpers ---------------------------------------------------------------------

    def _group_id(self, target: Target) -> str:
        value = target.scope_dict().get("group_id")
        problem = self.scope_problems("group_id", value)
        if problem:
            raise ProviderError(self.instance, EP_LIST, f"target {target.name}: {problem}")
        return str(value)


def _members(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    return page.get("hydra:member") or []


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
