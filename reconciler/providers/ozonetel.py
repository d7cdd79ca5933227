"""Adapter for Ozonetel CloudAgent block-number groups (CONTRACTS.md §1, seed 000).

Owns Ozonetel's wire protocol and its quirks: one shared token per adapter
(``generateToken`` at most 10 times an hour, a new token voids the old one),
adds as "create the group, then ``updateBlockNumbers``", one ``expiryDate`` per
request (so adds are batched by expiry), the misspelt ``succes`` key, numbers
that failed listed under ``output.error`` while ``status`` is ``success``, and
errors sent as HTTP 200 with ``status: error``.

It cannot read live state: Ozonetel documents no read endpoint (CONTRACTS §1
endpoint 4, "NOT FOUND"), so ``refresh`` stays the base's NotImplementedError
and state is the only record of what is blocked. Retries, concurrency across
batches and state recording are the executor's business, not this module's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from ..domain import Batch, BatchResult, Op, Outcome, OutcomeStatus, Target
from ..errors import AuthError, CredentialError, ProviderError, RetryableError
from ..numbers import normalise_live
from .base import Capabilities, ProviderAdapter, parse_retry_after

# [INFER] The docs give no time zone for expiryDate "YYYY-MM-DD HH:MM:SS"; IST is assumed.
IST = timezone(timedelta(hours=5, minutes=30), "IST")
EXPIRY_FORMAT = "%Y-%m-%d %H:%M:%S"

TOKEN_PATH = "/ca_apis/CAToken/generateToken"
CREATE_PATH = "/ca_apis/createBlockNumber"
UPDATE_PATH = "/ca_apis/updateBlockNumbers"
DELETE_PATH = "/ca_apis/deleteBlockNumber"
TOKEN_ENDPOINT = f"POST {TOKEN_PATH}"
CREATE_ENDPOINT = f"POST {CREATE_PATH}"
UPDATE_ENDPOINT = f"PUT {UPDATE_PATH}"
DELETE_ENDPOINT = f"DELETE {DELETE_PATH}"

# "you can generate or refresh a new token up to 10 times per hour."
TOKEN_QUOTA = 10
TOKEN_WINDOW = 3600.0

# createBlockNumber requires a description of 2 to 50 characters.
GROUP_DESCRIPTION = "Managed by blocklist-as-code"

ADD_FAILED = "listed under output.error by Ozonetel"
# A delete lists under output.error the numbers it did not delete. We only send
# well-formed numbers, so the one reason left is that the number is not in the group
# (removed by hand, expired natively, or deleted by a request whose answer was lost):
# DESIGN.md "not in list on remove counts as success", so such a remove is `already`.
REMOVE_NOT_THERE = "not in the group (listed under output.error by Ozonetel)"
NOT_REPORTED = "not reported by Ozonetel in its output"

_TEN_DIGITS = re.compile(r"[0-9]{10}")
_INDIAN_WITH_CC = re.compile(r"91[0-9]{10}")


def wire_number(e164: str) -> str:
    """How a number goes on the wire: Indian numbers as their 10 national digits
    (the docs' samples are all "97XXX04XX3"-style), others E.164 with ``+``."""
    if e164.startswith("+91") and len(e164) == 13:
        return e164[3:]
    return e164


def reply_number(raw: object) -> str:
    """A number from an Ozonetel reply, in E.164 (10 digits are Indian national)."""
    text = str(raw).strip()
    if _TEN_DIGITS.fullmatch(text):
        return "+91" + text
    if _INDIAN_WITH_CC.fullmatch(text):
        return "+" + text
    return normalise_live(text)


def expiry_date(expires: datetime | None) -> str | None:
    """``expiryDate`` for an aware expiry: IST wall time, or None for no expiry."""
    if expires is None:
        return None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)  # the domain's datetimes are UTC
    return expires.astimezone(IST).strftime(EXPIRY_FORMAT)


class OzonetelAdapter(ProviderAdapter):
    """Ozonetel CloudAgent: one target is one block-number group."""

    type_name = "ozonetel"
    capabilities = Capabilities(
        can_list=False,
        can_add=True,
        can_remove=True,
        # "This API supports the addition of up to 100 phone numbers in a single request."
        batch_limit=100,
        concurrency_limit=4,  # [INFER] undocumented for these endpoints
        native_expiry=True,
        remove_by="number",
        remove_one_per_call=False,
        scope_fields=("group",),
        attribute_fields=(),
        credential_keys=("username", "api_key"),
        default_base_url="https://in1-ccaas-api.ozonetel.com",
        wire_format="Indian numbers as 10 digits, others E.164 with +",
        # the account's 'API Authentication' setting: TOKEN_AUTH or BASIC_AUTH
        auth_modes=("token", "basic"),
        notes=(
            "no read endpoint: live state is not readable, state is the only record; "
            "one expiryDate per request; generateToken at most 10 times an hour"
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
        mode = self.options.get("auth_mode", "token")
        if mode not in ("token", "basic"):
            raise ProviderError(
                instance, "configuration", f"auth_mode must be 'token' or 'basic', not {mode!r}"
            )
        self.auth_mode: str = mode
        #: the clock of the local token quota (monotonic seconds; tests replace it)
        self.clock = time.monotonic
        self._token: str | None = None
        self._generated: deque[float] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token_lock: asyncio.Lock | None = None

    # -- scope -------------------------------------------------------------------------

    @classmethod
    def scope_problems(cls, key: str, value: object) -> str | None:
        problem = super().scope_problems(key, value)
        if problem is None and key == "group" and not 2 <= len(str(value)) <= 50:
            # createBlockNumber: "Name (X) allows 2 to 50 characters only"
            return "group must be 2 to 50 characters (Ozonetel group names allow 2 to 50)"
        return problem

    @classmethod
    def field_schema(cls, key: str) -> dict[str, Any]:
        if key == "group":
            return {
                "type": "string",
                "minLength": 2,
                "maxLength": 50,
                "description": "block-number group name",
            }
        return super().field_schema(key)

    # -- batching ----------------------------------------------------------------------

    def batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """Removes (phase 0), then adds grouped by expiry, at most 100 a request.

        Until state records ``group_created``, the group may not exist: one add goes
        first, alone, as the create (phase 1), and the other adds follow as updates
        (phase 2). The documented create takes ``blockNumbers`` as a string and a
        comma-joined string fails (the seed's success sample lists it under
        ``output.error``), so a create carries exactly one number.
        """
        limit = self.capabilities.batch_limit
        group_fields = {"group_id": meta["group_id"]} if meta.get("group_id") else {}
        out = [
            Batch(list(removes[i : i + limit]), phase=0, fields=dict(group_fields))
            for i in range(0, len(removes), limit)
        ]
        # One expiryDate per request: group the adds by their wire expiry.
        by_expiry: dict[str | None, list[Op]] = {}
        for op in adds:
            by_expiry.setdefault(expiry_date(op.expires), []).append(op)
        phase = 1
        if by_expiry and not meta.get("group_created"):
            # Take the create's number from a group where that saves an update request.
            # (The no-expiry group's key is None, so search the keys, not a default.)
            keys = list(by_expiry)
            key = next((k for k in keys if len(by_expiry[k]) % limit == 1), keys[0])
            first = by_expiry[key].pop(0)
            out.append(Batch([first], phase=1, fields={"create": True, "expiryDate": key}))
            phase = 2
        for key, ops in by_expiry.items():
            out += [
                Batch(ops[i : i + limit], phase=phase, fields={"expiryDate": key})
                for i in range(0, len(ops), limit)
            ]
        return out

    # -- sending -----------------------------------------------------------------------

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        if not batch.ops:
            return BatchResult([])
        group = target.scope_value("group")
        if batch.ops[0].kind == "remove":
            return await self._remove(group, batch)
        expiry = batch.fields.get("expiryDate")
        create = bool(batch.fields.get("create"))
        return await self._add(group, batch.ops, str(expiry) if expiry else None, create=create)

    async def _add(
        self, group: str, ops: list[Op], expiry: str | None, *, create: bool
    ) -> BatchResult:
        if not create:
            resp, data = await self._update(group, ops, expiry)
            if not _is_error(data, "Invalid group id"):
                return BatchResult(self._add_outcomes(resp, data, ops, UPDATE_ENDPOINT))
            # [INFER] The group state knows of is gone (deleted by hand; no read API shows
            # it): create it again, so an apply never gets stuck on a vanished group.
        first, rest = ops[0], ops[1:]
        body: dict[str, Any] = {
            "name": group,
            "description": GROUP_DESCRIPTION,
            "blockNumbers": wire_number(first.number),  # documented as a string
        }
        if expiry:
            body["expiryDate"] = expiry
        resp, data = await self._call("POST", CREATE_PATH, CREATE_ENDPOINT, body)
        meta = {"group_created": "1"}
        outcomes: list[Outcome] = []
        if _is_error(data, "Group name already exists"):
            # [INFER] An earlier create whose reply was lost (or someone else) made it:
            # send the whole batch as an update instead.
            rest = ops
        else:
            outcomes = self._add_outcomes(resp, data, [first], CREATE_ENDPOINT)
            if data.get("status") != "success":  # "invalid data": no group was created
                reason = outcomes[0].reason
                return BatchResult(outcomes + [Outcome(op, "failed", reason) for op in rest])
            group_id = data["output"].get("lastInsertId")
            if isinstance(group_id, int | str) and not isinstance(group_id, bool):
                meta["group_id"] = str(group_id)
        if rest:
            resp, data = await self._update(group, rest, expiry)
            outcomes += self._add_outcomes(resp, data, rest, UPDATE_ENDPOINT)
        return BatchResult(outcomes, target_meta=meta)

    async def _update(
        self, group: str, ops: Sequence[Op], expiry: str | None
    ) -> tuple[httpx.Response, dict[str, Any]]:
        body: dict[str, Any] = {
            "groupName": group,
            "blockNumbers": [wire_number(op.number) for op in ops],
        }
        if expiry:
            body["expiryDate"] = expiry
        return await self._call("PUT", UPDATE_PATH, UPDATE_ENDPOINT, body)

    async def _remove(self, group: str, batch: Batch) -> BatchResult:
        body: dict[str, Any] = {
            "groupName": group,
            "blockNumbers": [wire_number(op.number) for op in batch.ops],
        }
        group_id = batch.fields.get("group_id")
        if group_id:
            # The delete page's error table and sample echo an `id`; [INFER] sent with the name.
            body["id"] = int(group_id) if str(group_id).isdigit() else group_id
        resp, data = await self._call("DELETE", DELETE_PATH, DELETE_ENDPOINT, body)
        if _is_error(data, "Invalid group id"):
            reason = (
                f"Invalid group id: Ozonetel has no group {group!r}"
                f"{f' with id {group_id}' if group_id else ''}; if it was deleted, "
                "forget its numbers with `blocklist state rm`"
            )
            return BatchResult([Outcome(op, "failed", reason) for op in batch.ops])
        return BatchResult(
            self._outcomes(
                resp, data, batch.ops, DELETE_ENDPOINT, "success", REMOVE_NOT_THERE, "already"
            )
        )

    def _add_outcomes(
        self, resp: httpx.Response, data: dict[str, Any], ops: Sequence[Op], endpoint: str
    ) -> list[Outcome]:
        # Quirk: create and update spell the key "succes".
        return self._outcomes(resp, data, ops, endpoint, "succes", ADD_FAILED)

    def _outcomes(
        self,
        resp: httpx.Response,
        data: dict[str, Any],
        ops: Sequence[Op],
        endpoint: str,
        ok_key: str,
        failed_reason: str,
        listed_status: OutcomeStatus = "failed",
    ) -> list[Outcome]:
        """Per-op outcomes of a create/update/delete reply.

        A whole-batch "invalid data" fails every op with Ozonetel's words (one bad
        batch must not stop the others). Under ``status: success``, numbers listed in
        ``output.error`` failed: "A reconciler must check output.error even when
        status == success".
        """
        status = data.get("status")
        if status == "error" and data.get("message") in ("invalid data", "Invalid group id"):
            reason = _error_text(data)
            return [Outcome(op, "failed", reason) for op in ops]
        if status != "success":
            raise ProviderError(self.instance, endpoint, _error_text(data), resp.status_code)
        output = data.get("output")
        if not isinstance(output, dict):
            raise self.malformed(resp, endpoint, "no `output` object under status success")
        done, failed = output.get(ok_key), output.get("error", [])
        if not isinstance(done, list) or not isinstance(failed, list):
            raise self.malformed(resp, endpoint, f"`output.{ok_key}`/`output.error` not lists")
        done_numbers = {reply_number(n) for n in done if isinstance(n, str | int)}
        failed_numbers = {reply_number(n) for n in failed if isinstance(n, str | int)}
        outcomes = []
        for op in ops:
            if op.number in done_numbers:
                outcomes.append(Outcome(op, "done"))
            elif op.number in failed_numbers:
                outcomes.append(Outcome(op, listed_status, failed_reason))
            else:
                outcomes.append(Outcome(op, "failed", NOT_REPORTED))
        return outcomes

    # -- one request, with auth ----------------------------------------------------------

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        return await self.gated(lambda: self._call_once(*args, **kwargs))

    async def _call_once(
        self, method: str, path: str, endpoint: str, body: dict[str, Any]
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """Send one block-number request; answer its JSON envelope.

        Raises AuthError for "Authentication failed", RetryableError for "Max limit
        exceeded"; a "Token Expired" answer gets one new token and one resend (the
        request was not carried out, so this is not a retry of a write).
        """
        payload = {"userName": self._credential("username"), **body}
        for attempt in range(2):
            headers, token = await self._auth_headers()
            resp = await self._http(method, path, endpoint, json_body=payload, headers=headers)
            data = self._envelope(resp, endpoint)
            status, message = data.get("status"), data.get("message")
            expired = status == "false" and message == "Token Expired"
            auth_failed = status == "error" and message == "Authentication failed"
            # A request still in flight when another one renewed the token arrives with a
            # superseded token and is refused; that is our own race, not bad credentials.
            superseded = auth_failed and token is not None and token != self._token
            if (expired or superseded) and token and attempt == 0:
                await self._renew(token)
                continue
            if auth_failed:
                raise AuthError(
                    self.instance,
                    endpoint,
                    "Authentication failed (check username, api_key and that the account's "
                    f"'API Authentication' setting matches auth_mode {self.auth_mode!r})",
                    resp.status_code,
                )
            if message == "Max limit exceeded":
                raise RetryableError(
                    self.instance,
                    endpoint,
                    "Max limit exceeded",
                    resp.status_code,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            if status == "false":
                raise AuthError(self.instance, endpoint, _error_text(data), resp.status_code)
            if status not in ("success", "error"):
                raise self.malformed(resp, endpoint, f"status {status!r}")
            return resp, data
        raise AssertionError("unreachable")  # pragma: no cover

    async def _auth_headers(self) -> tuple[dict[str, str], str | None]:
        """Headers for one request, and the token used (None in basic mode)."""
        if self.auth_mode == "basic":
            # BASIC_AUTH: "headers apiKey: <key> and Content-Type: application/json"
            return {"apiKey": self._credential("api_key")}, None
        token = self._token or await self._renew(None)
        return {"Authorization": f"Bearer {token}"}, token

    async def _renew(self, stale: str | None) -> str:
        """The shared token, generated once however many requests found ``stale``.

        "Once a new token is generated, any previously issued tokens will become
        invalid": concurrent requests must share one token, never each make their own.
        """
        lock, _ = self._primitives()
        async with lock:
            if self._token is None or self._token == stale:
                self._token = await self._generate_token()
            return self._token

    async def _generate_token(self) -> str:
        now = self.clock()
        while self._generated and now - self._generated[0] >= TOKEN_WINDOW:
            self._generated.popleft()
        if len(self._generated) >= TOKEN_QUOTA:
            raise AuthError(self.instance, TOKEN_ENDPOINT, _quota_spent("this adapter"))
        self._generated.append(now)
        try:
            resp = await self._http(
                "POST",
                TOKEN_PATH,
                TOKEN_ENDPOINT,
                json_body={"userName": self._credential("username")},
                headers={"apiKey": self._credential("api_key")},
            )
        except RetryableError as exc:
            if exc.status is not None:  # the server answered 429/5xx: no token was made
                self._generated.pop()
            raise
        data = self._envelope(resp, TOKEN_ENDPOINT)
        token = data.get("token")
        if isinstance(token, str) and token:
            return token
        message = data.get("message")
        if message == "Token generation limit exceeded":
            raise AuthError(self.instance, TOKEN_ENDPOINT, _quota_spent("Ozonetel"), 200)
        if data.get("status") == "false" and isinstance(message, str) and message:
            # "UserName is null" / "Invalid userName or apiKey"
            raise AuthError(self.instance, TOKEN_ENDPOINT, message, resp.status_code)
        raise self.malformed(resp, TOKEN_ENDPOINT, "no token in the generateToken reply")

    # -- plumbing ------------------------------------------------------------------------

    def _primitives(self) -> tuple[asyncio.Lock, asyncio.Semaphore]:
        """The token lock and request slots of the running event loop (made lazily)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._token_lock is None:
            self._loop = loop
            self._token_lock = asyncio.Lock()
        return self._token_lock, self.in_flight_limit()

    async def _http(self, method: str, path: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        # The slot is held for the request only, never while waiting for the token
        # lock, so a token generation always finds a free slot.
        _, slots = self._primitives()
        async with slots:
            return await self.request(method, path, endpoint, **kwargs)

    def _envelope(self, resp: httpx.Response, endpoint: str) -> dict[str, Any]:
        data = self.json_of(resp, endpoint)
        if not isinstance(data, dict):
            raise self.malformed(resp, endpoint, f"a JSON {type(data).__name__}, not an object")
        return data

    def _credential(self, key: str) -> str:
        value = self._credentials.get(key)
        if not value:
            raise CredentialError(f"{self.instance}: credential {key!r} is missing")
        return value


def _is_error(data: Mapping[str, Any], message: str) -> bool:
    return data.get("status") == "error" and data.get("message") == message


def _error_text(data: Mapping[str, Any]) -> str:
    """Ozonetel's own words: the message, plus any per-field ``errors``."""
    text = str(data.get("message") or f"status {data.get('status')!r} without a message")
    errors = data.get("errors")
    if isinstance(errors, dict) and errors:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ")"
    return text


def _quota_spent(who: str) -> str:
    return (
        f"hourly token quota spent ({who} refused an 11th generateToken within an hour; "
        "Ozonetel allows 10 an hour): wait, then run again"
    )
