"""Adapter of the Wooxy (formerly SmartSender.io) account Phone Black List, API v3.

Owns Wooxy's wire protocol and quirks: every method is a POST with a JSON body
and ``Access-Token`` auth; ``find`` pages with offset/limit and tells
``totalCount``; ``add`` takes up to 100 records and answers only
``{"result": true}``; ``remove`` takes one number per call; errors come as
``{"result": false, "errors": [...]}`` with no documented HTTP status; and no
more than 10 requests may ever be in flight. It must not retry (the executor
does) nor decide what to change (the planner does).

What it cannot take on trust: that ``find`` honours the ``limit`` asked (it steps
by the rows each page returned and checks them against ``totalCount``), which
"no phoneNumber" form lists everything (null, the SDK's, else omitted), the HTTP
status of an error (the words decide: the documented permanent ones are refusals,
any other is transient), and the format numbers are stored in (each is read with
the instance's ``default_region``, and a remove sends it back as stored).

Sources: CONTRACTS.md §2 and ``shared/seeds/001_*.txt``. Choices the docs leave
open are marked ``[INFER]``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, OutcomeStatus, Target
from ..errors import AuthError, ProviderError, RetryableError
from .base import Capabilities, ProviderAdapter, parse_retry_after, short_body

# "One of the available reasons for placing the phone number in the Phone Black List"
REJECT_TYPES = ("import", "invalid", "unsubscribe", "undeliverable")
# [INFER] the docs call rejectType optional yet warn "Minimum one rejectType ... is
# required": always send one, "import" (the SDK's fallback) when the list says none.
DEFAULT_REJECT_TYPE = "import"
# An entry whose rejectType is "unsubscribe" stands for the recipient's own opt-out.
OPT_OUT_REJECT_TYPE = "unsubscribe"
# [INFER] no maximum limit is documented for find; 100 keeps replies small. A server
# may still return fewer rows a page ("limit: integer, default 20"): never assumed.
PAGE_SIZE = 100
# find without a number: the docs mark phoneNumber required, the official SDK pages
# the whole list with "phoneNumber": null ([INFER] CONTRACTS §2 "Contradiction"): send
# null, and omit it if the server refuses null ("Argument phoneNumber ...")
UNFILTERED_FORMS: tuple[dict[str, Any], ...] = ({"phoneNumber": None}, {})

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
# The documented method errors that refuse the request for good (sending it again gets
# the same answer): "{phoneNumber} is not a valid E.164 phone number", "Allowed reject
# types are {allowed}, but {rejectType} given", "Maximum count of records per
# transaction is 100, current {n}", "Argument {argument} required" (and find's
# "Argument phoneNumber must be a non-empty string"), "Bad Request". Any other words
# ("Internal server error", a throttling or busy message we have never seen) are
# transient, whatever the HTTP status: recognised by exclusion, never by our words.
_PERMANENT_ERRORS = re.compile(
    r" is not a valid E\.164 phone number$|^Allowed reject types are "
    r"|^Maximum count of records per transaction is 100|^Argument \S+ (?:required|must be )"
    r"|^Bad Request$",
    re.IGNORECASE,
)
# "Argument phoneNumber required" / "... must be a non-empty string": find's number form
_PHONE_ARGUMENT = re.compile(r"^Argument phoneNumber ", re.IGNORECASE)
# "Internal server error": documented, and says the server failed (not "not listed")
_SERVER_FAILED = re.compile(r"^Internal server error$", re.IGNORECASE)
# "{phoneNumber} is not a valid E.164 phone number": names the one record that failed
_INVALID_NUMBER = re.compile(r"^(?P<number>.+) is not a valid E\.164 phone number$")
# where a number is removed in several stored forms, the worst outcome is the op's
_RANK: dict[OutcomeStatus, int] = {
    "already": 0,
    "done": 1,
    "unconfirmed": 2,
    "retryable": 3,
    "failed": 4,
}
# every status comes back to ``_call``, which maps them itself: Wooxy's errors live in
# the body and the docs give no statuses, so an auth error may come with any of them.
_EVERY_ERROR_STATUS = range(400, 600)


class Refused(ProviderError):
    """Wooxy answered ``result: false`` with documented permanent errors only."""

    def __init__(self, provider: str, endpoint: str, errors: list[str], status: int) -> None:
        super().__init__(provider, endpoint, "; ".join(errors), status)
        self.errors = errors


class Unrecognised(RetryableError):
    """Wooxy answered ``result: false`` with words that are not a documented refusal
    (nor auth): transient by exclusion, whatever the HTTP status."""

    def __init__(
        self,
        provider: str,
        endpoint: str,
        errors: list[str],
        status: int,
        retry_after: float | None,
    ) -> None:
        super().__init__(provider, endpoint, "; ".join(errors), status, retry_after)
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

    def __init__(
        self,
        instance: str,
        client: httpx.AsyncClient,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(instance, client, credentials, options)
        # target name -> E.164 -> the forms the list stores the number in (from refresh):
        # a remove sends those, since "015112340004" is not removed by "+4915112340004"
        self._stored: dict[str, dict[str, list[str]]] = {}
        # the "no phoneNumber" form of find this server lists everything with, once known
        self._unfiltered: dict[str, Any] | None = None

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
        """Every entry of the account's list; a number stored in several forms is one
        entry (an opt-out if any form is one), and its forms are kept for removes."""
        entries: dict[str, LiveEntry] = {}
        forms: dict[str, list[str]] = {}
        for row in await self._read_all():
            entry = self._live_entry(row)
            if not entry.unparsed:
                forms.setdefault(entry.number, []).append(entry.raw)
            first = entries.get(entry.number)
            if first is None or (entry.opt_out and not first.opt_out):
                entries[entry.number] = entry
        self._stored[target.name] = forms
        return list(entries.values())

    async def _read_all(self) -> list[dict[str, Any]]:
        """Every record of the list, each once, or a ProviderError: never part of it.

        The real page size is what the first page returned (a server may cap ``limit``
        silently), so the other pages are asked at that step, concurrently (the shared
        semaphore keeps at most concurrency_limit requests in flight). Whatever a short
        page left out, and whatever the list grew by meanwhile, is then read one page
        after another, stepping by the rows received, up to the newest ``totalCount``.
        """
        first, total = await self._find(0)
        pages, totals = {0: first}, [total]
        step = len(first)
        if 0 < step < total:
            offsets = range(step, total, step)
            results = await asyncio.gather(
                *(self._find(o) for o in offsets), return_exceptions=True
            )
            _raise_first(results)
            for offset, result in zip(offsets, results, strict=True):
                pages[offset], page_total = result  # type: ignore[misc]  # no errors left
                totals.append(page_total)
        rows: list[dict[str, Any]] = []
        cursor = 0
        for offset in sorted(pages):
            if cursor < offset:  # a short page left a gap before this one
                cursor = await self._read_on(cursor, offset, rows, totals)
            rows += pages[offset]
            cursor = max(cursor, offset + len(pages[offset]))
        await self._read_on(cursor, None, rows, totals)
        # entries may shift between pages: the same record read twice is one record
        by_number: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_number.setdefault(row["phoneNumber"], row)
        unique = list(by_number.values())
        spread = max(totals) - min(totals)  # what the list changed by while being read
        if not min(totals) - spread <= len(unique) <= max(totals) + spread:
            raise ProviderError(
                self.instance,
                FIND,
                f"paging read {len(unique)} records where totalCount said {totals[-1]}",
            )
        return unique

    async def _read_on(
        self, offset: int, stop: int | None, rows: list[dict[str, Any]], totals: list[int]
    ) -> int:
        """Read pages one after another from ``offset``, stepping by the rows each
        returned, up to ``stop`` (None: the newest totalCount); the offset reached."""
        newest = max(totals)
        while offset < (newest if stop is None else stop):
            page_rows, newest = await self._find(offset)
            totals.append(newest)
            if not page_rows:
                break  # the list shrank meanwhile (an empty page short of it is refused)
            rows += page_rows
            offset += len(page_rows)
        return offset

    async def _find(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the whole list: (records, totalCount)."""
        forms = UNFILTERED_FORMS if self._unfiltered is None else (self._unfiltered,)
        for i, form in enumerate(forms):
            body = {**form, "offset": offset, "limit": PAGE_SIZE}
            try:
                payload, resp = await self.read(lambda body=body: self._call(FIND, body))
            except Refused as exc:
                if i + 1 < len(forms) and all(_PHONE_ARGUMENT.search(e) for e in exc.errors):
                    continue  # this server wants the number form the other way
                raise
            self._unfiltered = form
            break
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
        if not data and offset < total:
            # the server says there is more but gives none: a partial list, never used
            raise self.malformed(resp, FIND, f"no records at offset {offset} of {total}")
        return data, total

    def _live_entry(self, row: dict[str, Any]) -> LiveEntry:
        raw, reject_type = row["phoneNumber"], row["rejectType"]  # checked by _find
        return self.live_entry(
            raw,
            attrs=(("reject_type", reject_type),),
            opt_out=reject_type == OPT_OUT_REJECT_TYPE,
        )

    # -- send ------------------------------------------------------------------------

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        by_op: dict[int, Outcome] = {}
        removes = [op for op in batch.ops if op.kind == "remove"]
        adds = [op for op in batch.ops if op.kind == "add"]
        if removes:
            done = await self._remove_all(target, removes)
            for op, outcome in zip(removes, done, strict=True):
                by_op[id(op)] = outcome
        step = self.batch_size
        for start in range(0, len(adds), step):
            chunk = adds[start : start + step]
            for op, outcome in zip(chunk, await self._add(chunk), strict=True):
                by_op[id(op)] = outcome
        return BatchResult([by_op[id(op)] for op in batch.ops])

    async def _remove_all(self, target: Target, ops: Sequence[Op]) -> list[Outcome]:
        """One request per number ("one number per call"), spread over the allowed
        concurrency. A lone remove raises its error; several report it per number."""
        forms = self._stored.get(target.name, {})
        results = await asyncio.gather(
            *(self._remove(op, forms.get(op.number) or [op.number]) for op in ops),
            return_exceptions=True,
        )
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

    async def _remove(self, op: Op, forms: Sequence[str]) -> Outcome:
        """Remove every form the list stores the number in (as refresh read them: a
        national "015112340004" is removed by that, not by its E.164); the worst
        outcome of its forms is the op's."""
        worst: Outcome | None = None
        for form in forms:
            outcome = await self._remove_form(op, form)
            if worst is None or _RANK[outcome.status] > _RANK[worst.status]:
                worst = outcome
        assert worst is not None  # forms is never empty
        return worst

    async def _remove_form(self, op: Op, form: str) -> Outcome:
        try:
            await self._call(REMOVE, {"phoneNumber": form})
        except Refused as exc:
            if self._invalid_numbers(exc.errors, {form}) is None:
                raise
            return Outcome(op, "failed", exc.reason)
        except Unrecognised as exc:
            return await self._settle(op, form, exc)
        # [INFER] removing a number that is not listed also answers {"result": true}:
        # it cannot be told apart, and "done" is right either way.
        return Outcome(op, "done")

    async def _settle(self, op: Op, form: str, exc: Unrecognised) -> Outcome:
        """A remove refused in words the docs do not give: a server may say "not
        found" for a number already gone (e.g. after a lost answer), or be busy. One
        ``find`` of that number tells which; when it cannot, the remove is retryable."""
        retry = Outcome(op, "retryable", exc.reason, retry_after=exc.retry_after)
        throttled = exc.status == 429 or exc.retry_after is not None
        if throttled or all(_SERVER_FAILED.search(e) for e in exc.errors):
            return retry  # throttled, or the documented server failure: not about the number
        try:
            listed = await self._listed(op, form)
        except AuthError:
            raise
        except ProviderError:
            return retry
        return Outcome(op, "already") if listed is False else retry

    async def _listed(self, op: Op, form: str) -> bool | None:
        """Whether the list holds ``form`` (find by phoneNumber); None if the reply
        does not say (a row of another number: the filter was not applied)."""
        body = {"phoneNumber": form, "offset": 0, "limit": PAGE_SIZE}
        payload, _ = await self.read(lambda: self._call(FIND, body))
        data = payload.get("data")
        if not isinstance(data, list):
            return None
        found = [row.get("phoneNumber") if isinstance(row, dict) else None for row in data]
        for number in found:
            if number != form and (
                not isinstance(number, str) or self.live_entry(number).number != op.number
            ):
                return None
        return bool(found)

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
        errors = [self.redact(e) for e in _errors_of(payload)]
        message = "; ".join(errors) or self.redact(short_body(resp))
        if any(_AUTH_ERRORS.search(e) for e in errors) or (status in (401, 403)):
            raise AuthError(self.instance, endpoint, message or "unauthorised", status)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if isinstance(payload, dict) and payload.get("result") is False and errors:
            # the words decide, not the status (which the docs never give)
            if all(_PERMANENT_ERRORS.search(e) for e in errors):
                raise Refused(self.instance, endpoint, errors, status)
            raise Unrecognised(self.instance, endpoint, errors, status, retry_after)
        if status == 429 or status >= 500:
            raise RetryableError(
                self.instance,
                endpoint,
                message or ("rate limited" if status == 429 else "server error"),
                status,
                retry_after=retry_after,
            )
        if not_json is not None:
            raise ProviderError(self.instance, endpoint, self.redact(not_json.reason), status)
        if not isinstance(payload, dict) or not isinstance(payload.get("result"), bool):
            raise self.malformed(resp, endpoint, "no boolean 'result'")
        if not payload["result"]:
            # the SDK's "Undefined or unhandled error" case
            raise self.malformed(resp, endpoint, "result false without errors")
        if not 200 <= status < 300:
            raise self.malformed(resp, endpoint, "result true with an error status")
        return payload, resp


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
