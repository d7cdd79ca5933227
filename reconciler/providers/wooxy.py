"""Adapter of the Wooxy (formerly SmartSender.io) account Phone Black List, API v3.

Owns Wooxy's wire protocol and quirks: every method is a POST with a JSON body
and ``Access-Token`` auth; ``find`` pages with offset/limit and tells
``totalCount``; ``add`` takes up to 100 records and answers only
``{"result": true}``; ``remove`` takes one number per call; errors come as
``{"result": false, "errors": [...]}`` with no documented HTTP status; and no
more than 10 requests may ever be in flight. It must not retry (the executor
does) nor decide what to change (the planner does).

Sources: CONTRACTS.md §2 and ``shared/seeds/001_*.txt``. Choices the docs leave
open are marked ``[INFER]``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, Target
from ..errors import AuthError, ProviderError, RetryableError
from ..numbers import normalise_live
from .base import Capabilities, ProviderAdapter, parse_retry_after, short_body

# "One of the available reasons for placing the phone number in the Phone Black List"
REJECT_TYPES = ("import", "invalid", "unsubscribe", "undeliverable")
# [INFER] the docs call rejectType optional yet warn "Minimum one rejectType ... is
# required": always send one, "import" (the SDK's fallback) when the list says none.
DEFAULT_REJECT_TYPE = "import"
# An entry whose rejectType is "unsubscribe" stands for the recipient's own opt-out.
OPT_OUT_REJECT_TYPE = "unsubscribe"
# [INFER] no maximum limit is documented for find; 100 keeps replies small.
PAGE_SIZE = 100

ADD = "POST /v3/phone-blacklist/add"
FIND = "POST /v3/phone-blacklist/find"
REMOVE = "POST /v3/phone-blacklist/remove"
_PATHS = {
    ADD: "/v3/phone-blacklist/add",
    FIND: "/v3/phone-blacklist/find",
    REMOVE: "/v3/phone-blacklist/remove",
}

# Documented method errors that mean the credential is wrong, whatever the HTTP status:
# "Invalid authorization token!", "no matches found for access token {accessToken}",
# "user {id} not enabled", "no data found for key {userId}",
# "access token check failed for key\/secret $key\/$accessToken"
_AUTH_ERRORS = re.compile(
    r"invalid authorization token|no matches found for access token|access token check failed"
    r"|^user .* not enabled|no data found for key",
    re.IGNORECASE,
)
# [INFER] the sandbox's (and presumably the API's) answer beyond "Do not send more than
# 10 concurrent API requests"; "Internal server error" is a documented method error.
_RETRYABLE_ERRORS = re.compile(r"too many|internal server error", re.IGNORECASE)
# "{phoneNumber} is not a valid E.164 phone number": names the one record that failed
_INVALID_NUMBER = re.compile(r"^(?P<number>.+) is not a valid E\.164 phone number$")
# every status comes back to ``_call``, which maps them itself: Wooxy's errors live in
# the body and the docs give no statuses, so an auth error may come with any of them.
_EVERY_ERROR_STATUS = range(400, 600)


class Refused(ProviderError):
    """Wooxy answered ``result: false`` with errors that are not auth or throttling."""

    def __init__(self, provider: str, endpoint: str, errors: list[str], status: int) -> None:
        super().__init__(provider, endpoint, "; ".join(errors), status)
        self.errors = errors


class WooxyAdapter(ProviderAdapter):
    type_name = "wooxy"
    capabilities = Capabilities(
        can_list=True,
        can_add=True,
        can_remove=True,
        batch_limit=100,  # "Maximum count of records per transaction is 100, current {n}"
        concurrency_limit=10,  # "IMPORTANT: Do not send more than 10 concurrent API requests."
        native_expiry=False,
        remove_by="number",
        remove_one_per_call=True,  # remove body: {"phoneNumber": "+15555555"}
        scope_fields=(),
        attribute_fields=("reject_type",),
        credential_keys=("access_token",),
        default_base_url="https://api.wooxy.com",
        wire_format="E.164 with +",
        notes=(
            "account-wide list; reject_type is an entry attribute; an existing entry is "
            "never updated by add (remove then add); unsubscribe entries are opt-outs"
        ),
    )

    @classmethod
    def scope_problems(cls, key: str, value: object) -> str | None:
        if key == "reject_type" and value not in REJECT_TYPES:
            return f"reject_type must be one of {', '.join(REJECT_TYPES)}, not {value!r}"
        return super().scope_problems(key, value)

    @classmethod
    def field_schema(cls, key: str) -> dict[str, Any]:
        if key == "reject_type":
            return {"enum": list(REJECT_TYPES), "description": "Wooxy reject type of the numbers"}
        return super().field_schema(key)

    # -- refresh ---------------------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        # phoneNumber omitted: the docs mark it required, but the official SDK pages the
        # whole list without it ([INFER] CONTRACTS §2 "Contradiction").
        rows, total = await self._find(0)
        pages: list[list[dict[str, Any]]] = [rows]
        offsets = range(PAGE_SIZE, total, PAGE_SIZE)
        # totalCount is known up front: read the other pages concurrently (the shared
        # semaphore keeps at most concurrency_limit requests in flight)
        results = await asyncio.gather(*(self._find(o) for o in offsets), return_exceptions=True)
        _raise_first(results)
        last_total = total
        for page_rows, page_total in results:  # type: ignore[misc]
            pages.append(page_rows)
            last_total = max(last_total, page_total)
        # the list may grow while we read it: read on until the newest totalCount is covered
        offset = offsets[-1] if offsets else 0
        while offset + PAGE_SIZE < last_total:
            offset += PAGE_SIZE
            page_rows, last_total = await self._find(offset)
            pages.append(page_rows)
            if not page_rows:
                break
        # ... and entries may shift between pages: the same number read twice is one entry
        entries: dict[str, LiveEntry] = {}
        for page_rows in pages:
            for row in page_rows:
                entry = self._live_entry(row)
                entries.setdefault(entry.number, entry)
        return list(entries.values())

    async def _find(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        body = {"offset": offset, "limit": PAGE_SIZE}
        payload, resp = await self.read(lambda: self._call(FIND, body))
        data, total = payload.get("data"), payload.get("totalCount")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise self.malformed(resp, FIND, "'data' is not a list of records")
        if not isinstance(total, int) or isinstance(total, bool):
            raise self.malformed(resp, FIND, "no integer 'totalCount'")
        for row in data:
            if not isinstance(row.get("phoneNumber"), str) or not isinstance(
                row.get("rejectType"), str
            ):
                raise self.malformed(resp, FIND, "a record without phoneNumber/rejectType")
        return data, total

    def _live_entry(self, row: dict[str, Any]) -> LiveEntry:
        raw, reject_type = row["phoneNumber"], row["rejectType"]  # checked by _find
        return LiveEntry(
            number=normalise_live(raw),
            raw=raw,
            attrs=(("reject_type", reject_type),),
            opt_out=reject_type == OPT_OUT_REJECT_TYPE,
        )

    # -- send ------------------------------------------------------------------------

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        by_op: dict[int, Outcome] = {}
        removes = [op for op in batch.ops if op.kind == "remove"]
        adds = [op for op in batch.ops if op.kind == "add"]
        if removes:
            for op, outcome in zip(removes, await self._remove_all(removes), strict=True):
                by_op[id(op)] = outcome
        step = self.capabilities.batch_limit
        for start in range(0, len(adds), step):
            chunk = adds[start : start + step]
            for op, outcome in zip(chunk, await self._add(chunk), strict=True):
                by_op[id(op)] = outcome
        return BatchResult([by_op[id(op)] for op in batch.ops])

    async def _remove_all(self, ops: Sequence[Op]) -> list[Outcome]:
        """One request per number ("one number per call"), spread over the allowed
        concurrency. A lone remove raises its error; several report it per number."""
        results = await asyncio.gather(*(self._remove(op) for op in ops), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and (
            len(errors) == len(results) or any(isinstance(e, AuthError) for e in errors)
        ):
            _raise_first(results)
        outcomes = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, RetryableError):
                outcome = Outcome(op, "retryable", result.reason, retry_after=result.retry_after)
            elif isinstance(result, ProviderError):
                outcome = Outcome(op, "failed", result.reason)
            elif isinstance(result, BaseException):
                raise result
            else:
                outcome = result
            outcomes.append(outcome)
        return outcomes

    async def _remove(self, op: Op) -> Outcome:
        try:
            await self._call(REMOVE, {"phoneNumber": op.number})
        except Refused as exc:
            if self._invalid_numbers(exc.errors, {op.number}) is None:
                raise
            return Outcome(op, "failed", exc.reason)
        # [INFER] removing a number that is not listed also answers {"result": true}:
        # it cannot be told apart, and "done" is right either way.
        return Outcome(op, "done")

    async def _add(self, ops: Sequence[Op]) -> list[Outcome]:
        """One request for up to 100 records. The reply is only ``result: true``:
        "In case of duplicated objects, duplicates will be ignored and no errors will be
        returned", so an already-listed number is reported done (it cannot be seen)."""
        outcomes: dict[int, Outcome] = {}
        pending, refused = list(ops), ""
        for _attempt in range(2):
            try:
                await self._call(ADD, {"records": [_record(op) for op in pending]})
            except Refused as exc:
                invalid = self._invalid_numbers(exc.errors, {op.number for op in pending})
                if invalid is None:
                    raise
                # the request was refused whole because of these numbers: fail them with
                # Wooxy's own message and send the rest once more, in this same send
                for op in pending:
                    if op.number in invalid:
                        outcomes[id(op)] = Outcome(op, "failed", invalid[op.number])
                pending = [op for op in pending if op.number not in invalid]
                refused = exc.reason
            else:
                outcomes.update((id(op), Outcome(op, "done")) for op in pending)
                pending = []
            if not pending:
                break
        for op in pending:  # refused twice: not applied, the executor may send them again
            outcomes[id(op)] = Outcome(op, "retryable", f"not applied: batch refused ({refused})")
        return [outcomes[id(op)] for op in ops]

    def _invalid_numbers(self, errors: list[str], sent: set[str]) -> dict[str, str] | None:
        """``{number: message}`` when every error names a number we sent as invalid;
        None when some error is about the request as a whole."""
        invalid: dict[str, str] = {}
        for message in errors:
            match = _INVALID_NUMBER.match(message)
            if not match or match["number"] not in sent:
                return None
            invalid[match["number"]] = message
        return invalid or None

    # -- the one HTTP path -----------------------------------------------------------

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        return await self.gated(lambda: self._call_once(*args, **kwargs))

    async def _call_once(
        self, endpoint: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], httpx.Response]:
        """POST one method; the payload (and reply) of ``result: true``, else the error."""
        token = self._credentials.get("access_token")
        if not token:
            raise AuthError(self.instance, endpoint, "no access_token credential given")
        async with self.in_flight_limit():
            resp = await self.request(
                "POST",
                _PATHS[endpoint],
                endpoint,
                json_body=body,
                headers={"Access-Token": token},  # "Access-Token: $accessToken"
                ok_statuses=_EVERY_ERROR_STATUS,
            )
        status = resp.status_code
        not_json: ProviderError | None = None
        try:
            payload = self.json_of(resp, endpoint)
        except ProviderError as exc:  # a 5xx/429 HTML page is still retryable: map first
            payload, not_json = None, exc
        errors = _errors_of(payload)
        message = self._redact("; ".join(errors) or short_body(resp))
        if any(_AUTH_ERRORS.search(e) for e in errors) or (status in (401, 403)):
            raise AuthError(self.instance, endpoint, message or "unauthorised", status)
        if status == 429 or status >= 500 or any(_RETRYABLE_ERRORS.search(e) for e in errors):
            raise RetryableError(
                self.instance,
                endpoint,
                message or ("rate limited" if status == 429 else "server error"),
                status,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if not_json is not None:
            raise ProviderError(self.instance, endpoint, self._redact(not_json.reason), status)
        if not isinstance(payload, dict) or not isinstance(payload.get("result"), bool):
            raise self.malformed(resp, endpoint, "no boolean 'result'")
        if payload["result"]:
            if not 200 <= status < 300:
                raise self.malformed(resp, endpoint, "result true with an error status")
            return payload, resp
        if not errors:
            # the SDK's "Undefined or unhandled error" case
            raise self.malformed(resp, endpoint, "result false without errors")
        raise Refused(self.instance, endpoint, [self._redact(e) for e in errors], status)

    def _redact(self, text: str) -> str:
        """Some documented errors echo the access token: never let it into a message."""
        token = self._credentials.get("access_token")
        return text.replace(token, "[redacted]") if token else text


def _record(op: Op) -> dict[str, str]:
    return {
        "phoneNumber": op.number,
        "rejectType": dict(op.attrs).get("reject_type", DEFAULT_REJECT_TYPE),
    }


def _errors_of(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return []
    errors = payload.get("errors")
    if isinstance(errors, str):
        return [errors]
    if not isinstance(errors, list):
        return []
    return [str(e) for e in errors]


def _raise_first(results: Sequence[object]) -> None:
    """Raise the most telling error among gathered results: auth first."""
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if isinstance(error, AuthError):
            raise error
    if errors:
        raise errors[0]
