"""Adapter for Ozonetel CloudAgent block-number groups (CONTRACTS.md §1, seed 000).

Owns Ozonetel's wire protocol and its quirks: one shared token per adapter
(``generateToken`` at most 10 times an hour, a new token voids the old one), or
a token the user gives (never generated), or basic auth; adds as
``updateBlockNumbers``, with the group created (``createBlockNumber``) only when
Ozonetel says it is not there; one ``expiryDate`` per request (so adds are
batched by expiry); the misspelt ``succes`` key; numbers under ``output.error``
while ``status`` is ``success``; errors sent in the body, as HTTP 200 or 4xx.

It cannot read live state: Ozonetel documents no read endpoint (CONTRACTS §1
endpoint 4, "NOT FOUND"), so ``refresh`` stays the base's NotImplementedError
and state is the only record of what is blocked. Retries, concurrency across
batches and state recording are the executor's business, not this module's.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from ..domain import Batch, BatchResult, Op, Outcome, OutcomeStatus, Target
from ..errors import AuthError, CredentialError, ProviderError, RetryableError
from ..numbers import parse_live
from .base import Capabilities, ProviderAdapter, parse_retry_after, short_body

# [INFER] The docs give no time zone for expiryDate "YYYY-MM-DD HH:MM:SS"; IST is assumed.
IST = timezone(timedelta(hours=5, minutes=30), "IST")
EXPIRY_FORMAT = "%Y-%m-%d %H:%M:%S"
# "expiryDate: Add the expiry date for the number, this indicates the duration you want the
# number to remain in the blocked list. Format: YYYY-MM-DD HH:MM:SS". No encoding of "no
# expiry" is documented, and updateBlockNumbers is additive ("You can add multiple phone
# numbers to a Block Number group"): a number already in the group that had an expiry must
# lose it, which an absent or empty value may not do (it may mean "leave as it is"). So "no
# expiry" is a date in the documented format that the number will not outlive: the last
# second of 2099 (not 9999: IST/UTC conversions of 9999-12-31 overflow in some stacks).
NO_EXPIRY = "2099-12-31 23:59:59"

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
QUOTA_ADVICE = "Ozonetel allows 10 tokens an hour; use `auth_mode: basic` or a `token`"

# createBlockNumber requires a description of 2 to 50 characters; the update body lists one
# too ("description": "xxxxx"), so both send this.
GROUP_DESCRIPTION = "Managed by blocklist-as-code"

# Documented messages (CONTRACTS §1).
AUTH_FAILED = "Authentication failed"
TOKEN_EXPIRED = "Token Expired"
BAD_USER_OR_KEY = "Invalid userName or apiKey"
USERNAME_NULL = "UserName is null"
MANDATORY = "Parameters are mandatory"
INVALID_DATA = "invalid data"
INVALID_GROUP = "Invalid group id"
MAX_LIMIT = "Max limit exceeded"  # other CloudAgent APIs' throttling answer
_KNOWN = frozenset({AUTH_FAILED, TOKEN_EXPIRED, MANDATORY, INVALID_DATA, INVALID_GROUP, MAX_LIMIT})

ADD_FAILED = "listed under output.error by Ozonetel"
# A delete lists under output.error both the numbers that are not in the group and the
# ones it failed to delete: the executor re-sends them and counts them absent only if
# every send says so (`unconfirmed`).
REMOVE_UNCONFIRMED = "listed under output.error by Ozonetel (not in the group, or not deleted)"
# [INFER] A delete that echoes a number in `input` but names it in neither output list
# says as little: a server may leave absent numbers out of both lists.
REMOVE_UNANSWERED = "in neither output list of Ozonetel's reply (not in the group, or not deleted)"
NOT_REPORTED = "not reported by Ozonetel in its output"

#: 4xx answers are read for their body (a server may send body-level errors as 4xx);
#: 429 stays the base's throttling answer
_CLIENT_ERRORS = tuple(code for code in range(400, 500) if code != 429)

_TEN_DIGITS = re.compile(r"[0-9]{10}")
_INDIAN_WITH_CC = re.compile(r"91[0-9]{10}")
#: the shape of the E.164 numbers this tool writes (the normaliser's output reads back
#: as itself: ``reply_number`` gives a reply's echo of one the number it was)
_CANONICAL = re.compile(r"\+[1-9][0-9]{6,14}")


class TokenQuotaError(ProviderError):
    """Ozonetel will not make another token now (10 an hour), or this run already made
    10: neither bad credentials (not an AuthError) nor worth re-sending this hour."""


def wire_number(e164: str) -> str:
    """How a number goes on the wire: Indian numbers as their 10 national digits
    (the docs' samples are all "97XXX04XX3"-style), others E.164 with ``+``."""
    if e164.startswith("+91") and len(e164) == 13:
        return e164[3:]
    return e164


def sent_forms(ops: Iterable[Op]) -> dict[str, str]:
    """Each op's number by the texts a reply may echo it as: its wire form and its
    E.164 form (for a canonical E.164 number, what ``reply_number`` reads either as)."""
    out: dict[str, str] = {}
    for op in ops:
        if _CANONICAL.fullmatch(op.number):
            out[op.number] = out[wire_number(op.number)] = op.number
    return out


def reply_number(raw: object, region: str | None = "IN") -> str | None:
    """A number from an Ozonetel reply in E.164, or None when it cannot be told which.

    10 digits are Indian national numbers and ``91`` + 10 digits Indian with the
    country code (the update sample echoes "97XXX04XX3" as "+9197XXX04XX3", the delete
    sample "9197XXX0XX94" as "+9197XXX0XX94"); anything else is read as a live number
    is, with the instance's region.
    """
    text = str(raw).strip()
    if _TEN_DIGITS.fullmatch(text):
        return "+91" + text
    if _INDIAN_WITH_CC.fullmatch(text):
        return "+" + text
    return parse_live(text, region)


@functools.lru_cache(maxsize=4096)
def expiry_date(expires: datetime | None) -> str | None:
    """``expiryDate`` for an aware expiry: IST wall time, or None for no expiry.

    Cached: a list's numbers share a few expiries, and batching computes one per add
    (a ``strftime`` each: 40 ms for 20 000 adds)."""
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
        # plus the optional "token" (an existing token: never generate one), read with
        # self._credentials.get("token"); optional keys need a Capabilities field
        credential_keys=("username", "api_key"),
        # an existing token to use as given, never generating one (see the module docs)
        optional_credential_keys=("token",),
        default_base_url="https://in1-ccaas-api.ozonetel.com",
        wire_format="Indian numbers as 10 digits, others E.164 with +",
        # the account's 'API Authentication' setting: TOKEN_AUTH or BASIC_AUTH
        auth_modes=("token", "basic"),
        notes=(
            "no read endpoint: live state is not readable, state is the only record; "
            "one expiryDate per request; generateToken at most 10 times an hour"
        ),
        # CloudAgent's documented home: "Domestic CCaaS: in1-ccaas-api.ozonetel.com", and
        # 10-digit input comes back as +91…
        default_region="IN",
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
        #: a token the user gave: used as it is, never generated (nor renewed)
        self.given_token: str | None = self._credentials.get("token") or None
        if self.given_token and mode == "basic":
            raise ProviderError(
                instance, "configuration", "a `token` credential needs auth_mode 'token'"
            )
        self.region: str | None = self.options.get("default_region") or (
            self.capabilities.default_region
        )
        #: the clock of the local token quota (monotonic seconds; tests replace it)
        self.clock = time.monotonic
        self._token: str | None = self.given_token
        self._generated: deque[float] = deque()
        self._flights = 0  # token generations started
        self._flight_error: ProviderError | None = None  # how the last generation failed
        self._token_error: ProviderError | None = None  # no token this run: quota or auth
        self._groups_made: dict[str, int] = {}  # group -> creations by this adapter
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token_lock: asyncio.Lock | None = None
        self._group_locks: dict[str, asyncio.Lock] = {}

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

        A group state does not know (no ``group_created`` or ``group_id``) may or may
        not exist, and Ozonetel words no "already exists" answer: its first batch goes
        alone (phase 1) as an update, the probe, and the other adds follow (phase 2).
        Only if the probe is answered "Invalid group id" does that send create the group
        with one number (the documented create takes ``blockNumbers`` as a string; the
        seed's sample lists a comma-joined one under ``output.error``) and update the
        rest of the probe. The probe is the remainder of an expiry group (sizes 1..100),
        so that the create's number saves a request wherever one can be saved.
        """
        limit = self.batch_size
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
        if by_expiry and not (meta.get("group_created") or meta.get("group_id")):
            # (The no-expiry group's key is None, so search the keys, not a default.)
            keys = list(by_expiry)
            key = next((k for k in keys if len(by_expiry[k]) % limit == 1), keys[0])
            ops = by_expiry[key]
            size = (len(ops) - 1) % limit + 1
            out.append(Batch(ops[:size], phase=1, fields={"probe": True, "expiryDate": key}))
            by_expiry[key] = ops[size:]
            phase = 2
        for key, ops in by_expiry.items():
            out += [
                Batch(ops[i : i + limit], phase=phase, fields={"expiryDate": key})
                for i in range(0, len(ops), limit)
            ]
        return out

    def head_batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """The full batches of a prefix: removes are chunked, adds chunked per expiry
        group (a prefix's ops of each group are a prefix of that group). Nothing for the
        adds of a group state does not know: the probe is chosen from all of them."""
        if adds and not (meta.get("group_created") or meta.get("group_id")):
            return []
        return self.full_batches(target, removes, adds, meta)

    # -- sending -----------------------------------------------------------------------

    async def prepare_writes(self) -> None:
        """The shared token, generated now (every later request uses it) unless the
        run has one, was refused one, or authenticates otherwise. Outside the credential
        gate, and proving nothing by itself: a refused generation sets the error every
        later request raises, unsent, as the gate would."""
        if self.auth_mode == "token" and self._token is None and self._token_error is None:
            await self._renew(None)

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        if not batch.ops:
            return BatchResult([])
        group = target.scope_value("group")
        if batch.ops[0].kind == "remove":
            return await self._remove(group, batch)
        expiry = batch.fields.get("expiryDate")
        return await self._add(group, batch.ops, str(expiry) if expiry else None)

    async def _add(self, group: str, ops: list[Op], expiry: str | None) -> BatchResult:
        """An update; a group Ozonetel says is not there is created (once per run)."""
        made = self._groups_made.get(group, 0)
        resp, data = await self._update(group, ops, expiry)
        if not _is_error(data, INVALID_GROUP):
            return BatchResult(
                self._outcomes(resp, data, ops, UPDATE_ENDPOINT, group),
                target_meta=self._learned(data, "input", "id"),
            )
        # "Invalid group id" (documented for update): the group is new, or state knows of
        # one that was deleted by hand (no read API shows it): create it.
        return await self._create(group, ops, expiry, made)

    async def _create(
        self, group: str, ops: list[Op], expiry: str | None, made: int
    ) -> BatchResult:
        """Create the group with the first number, then update the rest.

        One creation per group however many batches found it missing: they queue on the
        group's lock, and those that find it made meanwhile send their update again.
        """
        async with self._group_lock(group):
            if self._groups_made.get(group, 0) != made:
                resp, data = await self._update(group, ops, expiry)
                if _is_error(data, INVALID_GROUP):
                    why = f"{INVALID_GROUP} right after this run created group {group!r}"
                    return BatchResult([Outcome(op, "retryable", why) for op in ops])
                outcomes = self._outcomes(resp, data, ops, UPDATE_ENDPOINT, group)
                return BatchResult(outcomes, target_meta=self._learned(data, "input", "id"))
            first, rest = ops[0], ops[1:]
            body: dict[str, Any] = {
                "name": group,
                "description": GROUP_DESCRIPTION,
                "blockNumbers": wire_number(first.number),  # documented as a string
                "expiryDate": expiry or NO_EXPIRY,
            }
            resp, data = await self._call("POST", CREATE_PATH, CREATE_ENDPOINT, body)
            if data.get("status") != "success":
                return BatchResult(self._create_refused(resp, data, group, first, rest))
            self._groups_made[group] = made + 1
        meta = self._learned(data, "output", "lastInsertId")
        outcomes = self._outcomes(resp, data, [first], CREATE_ENDPOINT, group)
        if rest:
            resp, data = await self._update(group, rest, expiry)
            if _is_error(data, INVALID_GROUP):
                why = f"{INVALID_GROUP} right after this run created group {group!r}"
                outcomes += [Outcome(op, "retryable", why) for op in rest]
            else:
                outcomes += self._outcomes(resp, data, rest, UPDATE_ENDPOINT, group)
                meta.update(self._learned(data, "input", "id"))
        return BatchResult(outcomes, target_meta=meta)

    def _create_refused(
        self, resp: httpx.Response, data: dict[str, Any], group: str, first: Op, rest: list[Op]
    ) -> list[Outcome]:
        """A create answered with an error: nothing was created.

        Whatever the words (a server that says the name exists, in any wording, is one
        whose group appeared since the update said it was not there), the numbers are
        re-sent, and the re-send's update finds the group. Only a documented permanent
        refusal fails them.
        """
        status, reason = self._refusal(resp, data, CREATE_ENDPOINT, group)
        not_sent = f"not sent: the group could not be created ({reason})"
        if status == "failed" and "blockNumbers" in (data.get("errors") or {}):
            # the create's one number has an invalid format; the others were not sent
            return [Outcome(first, "failed", reason)] + [
                Outcome(op, "retryable", not_sent) for op in rest
            ]
        return [Outcome(first, status, reason)] + [
            Outcome(op, status, reason if status == "failed" else not_sent) for op in rest
        ]

    async def _update(
        self, group: str, ops: Sequence[Op], expiry: str | None
    ) -> tuple[httpx.Response, dict[str, Any]]:
        # The update body lists every field: {"userName", "groupName", "description",
        # "expiryDate", "blockNumbers": [...]}; blockNumbers is an array here.
        body: dict[str, Any] = {
            "groupName": group,
            "description": GROUP_DESCRIPTION,
            "expiryDate": expiry or NO_EXPIRY,
            "blockNumbers": [wire_number(op.number) for op in ops],
        }
        return await self._call("PUT", UPDATE_PATH, UPDATE_ENDPOINT, body)

    async def _remove(self, group: str, batch: Batch) -> BatchResult:
        body: dict[str, Any] = {
            "groupName": group,
            "blockNumbers": [wire_number(op.number) for op in batch.ops],
        }
        group_id = batch.fields.get("group_id")
        if group_id:
            # The delete page's error table speaks of `Id` ("Invalid group id") and its
            # sample echoes "input": {"id": 1, ...}: [INFER] sent with the name.
            body["id"] = int(group_id) if str(group_id).isdigit() else group_id
        resp, data = await self._call("DELETE", DELETE_PATH, DELETE_ENDPOINT, body)
        if _is_error(data, INVALID_GROUP):
            reason = (
                f"Invalid group id: Ozonetel has no group {group!r}"
                f"{f' with id {group_id}' if group_id else ''}; if it was deleted, "
                "forget its numbers with `blocklist state rm`"
            )
            if not group_id:
                reason += (
                    " (state records no group id, and Ozonetel may select a delete's "
                    "group by id only: the next add to the group records it)"
                )
            return BatchResult([Outcome(op, "failed", reason) for op in batch.ops])
        outcomes = self._outcomes(resp, data, batch.ops, DELETE_ENDPOINT, group, delete=True)
        return BatchResult(outcomes, target_meta=self._learned(data, "input", "id"))

    # -- reading replies ------------------------------------------------------------------

    def _outcomes(
        self,
        resp: httpx.Response,
        data: dict[str, Any],
        ops: Sequence[Op],
        endpoint: str,
        group: str,
        *,
        delete: bool = False,
    ) -> list[Outcome]:
        """Per-op outcomes of a create/update/delete reply.

        ``status: error`` refuses the whole request (see ``_refusal``). Under ``status:
        success``, ``output.succes`` (create/update; ``success`` on delete) lists what
        was done and ``output.error`` what was not: "A reconciler must check
        output.error even when status == success". An add listed there is re-sent
        (Ozonetel gives no reason, so nothing shows it permanent); a remove listed there
        may be absent or not deleted: ``unconfirmed``.
        """
        if data.get("status") == "error":
            status, reason = self._refusal(resp, data, endpoint, group)
            return [Outcome(op, status, reason) for op in ops]
        output = data.get("output")
        if not isinstance(output, dict):
            raise self.malformed(resp, endpoint, "no `output` object under status success")
        # Quirk: create and update spell the key "succes", delete "success"; either is read.
        ok_key, other = ("success", "succes") if delete else ("succes", "success")
        done, failed = output.get(ok_key, output.get(other)), output.get("error", [])
        if not isinstance(done, list) or not isinstance(failed, list):
            raise self.malformed(resp, endpoint, f"`output.{ok_key}`/`output.error` not lists")
        sent = sent_forms(ops)
        done_numbers, failed_numbers = self._numbers(done, sent), self._numbers(failed, sent)
        given = data.get("input")
        echo = given.get("blockNumbers") if delete and isinstance(given, dict) else None
        echoed = self._numbers(echo, sent) if isinstance(echo, list) else set()
        outcomes = []
        for op in ops:
            if op.number in done_numbers:
                outcomes.append(Outcome(op, "done"))
            elif op.number in failed_numbers:
                if delete:
                    outcomes.append(Outcome(op, "unconfirmed", REMOVE_UNCONFIRMED))
                else:
                    outcomes.append(Outcome(op, "retryable", ADD_FAILED))
            elif op.number in echoed:
                outcomes.append(Outcome(op, "unconfirmed", REMOVE_UNANSWERED))
            else:
                outcomes.append(Outcome(op, "retryable", NOT_REPORTED))
        return outcomes

    def _refusal(
        self, resp: httpx.Response, data: dict[str, Any], endpoint: str, group: str
    ) -> tuple[OutcomeStatus, str]:
        """How a write refused whole (``status: error``) counts for each of its numbers.

        ``failed`` only where the docs make it permanent: "invalid data" for
        ``blockNumbers`` ("Blocknumbers data contains invalid format of numbers"), or for
        ``name`` when our group name breaks the documented 2-50 rule (with a valid name
        the error cannot be that rule: some other refusal, re-sent). "Parameters are
        mandatory" and a 404/405 we cannot read mean the request itself is wrong: a
        ProviderError. Anything else, whatever its words, is ``retryable``.
        """
        message = data.get("message")
        reason = self.redact(_error_text(data))
        unreadable = resp.status_code in (404, 405) and message not in _KNOWN
        if message == MANDATORY or unreadable:
            raise ProviderError(self.instance, endpoint, reason, resp.status_code)
        errors = data.get("errors")
        if message == INVALID_DATA and isinstance(errors, dict):
            if "blockNumbers" in errors:
                return "failed", reason
            if "name" in errors and self.scope_problems("group", group) is not None:
                return "failed", reason
        return "retryable", reason

    def _learned(self, data: Mapping[str, Any], where: str, key: str) -> dict[str, str]:
        """What a successful reply tells state of the group: that it exists, and its id
        (create's ``output.lastInsertId``, update's and delete's ``input.id``)."""
        if data.get("status") != "success":
            return {}
        part = data.get(where)
        value = part.get(key) if isinstance(part, dict) else None
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
            return {"group_created": "1", "group_id": str(value).strip()}
        return {"group_created": "1"}

    def _numbers(self, items: Iterable[object], sent: Mapping[str, str] | None = None) -> set[str]:
        """The E.164 numbers of an output list (an item may hold several, comma-joined,
        as in the create sample: ["97XXX04XX3,98XXXXXX98,…"]).

        ``sent`` (``sent_forms``) maps the forms this request sent to their numbers: a
        reply item that is one of them is that number without parsing it again
        (``reply_number`` would give the same; it costs ~25 µs a number)."""
        out: set[str] = set()
        known = sent or {}
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int):
                continue
            for part in str(item).split(","):
                number = known.get(part.strip()) or reply_number(part, self.region)
                if number is not None:
                    out.add(number)
        return out

    # -- one request, with auth ----------------------------------------------------------

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        try:
            return await self.gated(lambda: self._call_once(*args, **kwargs))
        except TypeError:
            # Work-around: the gate re-raises its AuthError with copy.copy, which cannot
            # rebuild a ProviderError (its __init__ takes four arguments, args holds one).
            if self._auth_failure is None:
                raise
            raise _same(self._auth_failure) from None

    async def _call_once(
        self, method: str, path: str, endpoint: str, body: dict[str, Any]
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """Send one block-number request; answer its JSON envelope.

        Raises AuthError when the credential is refused, RetryableError for "Max limit
        exceeded". A generated token answered "Token Expired" is renewed (once, however
        many requests found it expired) and the request sent again: it was not carried
        out, so this is not a retry of a write. So is a request that met a token our own
        renewal had just made stale.
        """
        payload = {"userName": self._credential("username"), **body}
        for attempt in range(3):
            headers, token = await self._auth_headers()
            flights = self._flights
            resp = await self._http(
                method,
                path,
                endpoint,
                json_body=payload,
                headers=headers,
                ok_statuses=_CLIENT_ERRORS,
            )
            data = self._envelope(resp, endpoint)
            status, message = data.get("status"), data.get("message")
            again = attempt < 2 and token is not None and self.given_token is None
            if message == TOKEN_EXPIRED and status in ("false", "error"):
                if self.given_token is not None:
                    raise AuthError(
                        self.instance,
                        endpoint,
                        "Token Expired: the configured `token` has expired (Ozonetel tokens "
                        "live 60 minutes): give a new one, or leave `token` out to have one "
                        "generated per run",
                        resp.status_code,
                    )
                if token is None:  # basic mode met a token check: the account's setting
                    raise AuthError(self.instance, endpoint, self._refused(), resp.status_code)
                if again:
                    await self._renew(token)
                    continue
                # expired again with a token just made: re-sent later, under the policy
                raise RetryableError(self.instance, endpoint, _error_text(data), resp.status_code)
            if message == AUTH_FAILED and status == "error":
                # A request still in flight when our own renewal made a new token arrives
                # with a superseded token and is refused: our race, not bad credentials.
                renewed = token != self._token or flights != self._flights or self._renewing()
                if again and renewed:
                    await self._renew(token)
                    continue
                raise AuthError(self.instance, endpoint, self._refused(), resp.status_code)
            if message == MAX_LIMIT:
                raise RetryableError(
                    self.instance,
                    endpoint,
                    MAX_LIMIT,
                    resp.status_code,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            if status == "false" or resp.status_code in (401, 403):
                raise AuthError(self.instance, endpoint, _error_text(data), resp.status_code)
            if status not in ("success", "error"):
                raise self.malformed(resp, endpoint, f"status {status!r}")
            return resp, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self) -> str:
        """Why "Authentication failed", in words that help the user."""
        if self.given_token is not None:
            return (
                "Authentication failed: Ozonetel refused the configured `token` (a token "
                "generated since voids it; check that it is this username's)"
            )
        if self.auth_mode == "basic":
            return (
                "Authentication failed (check username, api_key and that the account's "
                "'API Authentication' setting is BASIC_AUTH, as auth_mode 'basic' says)"
            )
        return (
            "Authentication failed (check username, api_key and that the account's 'API "
            "Authentication' setting matches auth_mode 'token'; a token generated since by "
            "another integration of this CloudAgent user voids ours)"
        )

    async def _auth_headers(self) -> tuple[dict[str, str], str | None]:
        """Headers for one request, and the token used (None in basic mode)."""
        if self.auth_mode == "basic":
            # BASIC_AUTH: "headers apiKey: <key> and Content-Type: application/json"
            return {"apiKey": self._credential("api_key")}, None
        token = self._token or await self._renew(None)
        return {"Authorization": f"Bearer {token}"}, token

    async def _renew(self, stale: str | None) -> str:
        """The shared token: generated once however many requests found ``stale``.

        "Once a new token is generated, any previously issued tokens will become
        invalid": concurrent requests must share one token, never each make their own.
        A generation that fails fails every request that waited for it, unsent; one
        refused for the quota (or the credential) fails every later one too.
        """
        seen = self._flights
        lock = self._primitives()[0]
        async with lock:
            if self._token_error is not None:
                raise _same(self._token_error)
            if self._flights != seen:  # a generation ran while this request waited
                if self._flight_error is not None:
                    raise _same(self._flight_error)
                if self._token is not None:
                    return self._token
            if self._token is not None and self._token != stale:
                return self._token
            self._flights += 1
            try:
                self._token = await self._generate_token()
            except ProviderError as exc:
                self._flight_error = exc
                if isinstance(exc, TokenQuotaError | AuthError):
                    self._token_error = exc
                raise
            self._flight_error = None
            return self._token

    async def _generate_token(self) -> str:
        if self.given_token is not None:  # pragma: no cover - _auth_headers never asks
            raise AssertionError("a given token is never renewed")
        now = self.clock()
        while self._generated and now - self._generated[0] >= TOKEN_WINDOW:
            self._generated.popleft()
        if len(self._generated) >= TOKEN_QUOTA:
            raise TokenQuotaError(
                self.instance,
                TOKEN_ENDPOINT,
                f"{QUOTA_ADVICE} (this run has generated {TOKEN_QUOTA} in the last hour)",
            )
        self._generated.append(now)
        try:
            resp = await self._http(
                "POST",
                TOKEN_PATH,
                TOKEN_ENDPOINT,
                json_body={"userName": self._credential("username")},
                headers={"apiKey": self._credential("api_key")},
                ok_statuses=_CLIENT_ERRORS,
            )
        except RetryableError as exc:
            if exc.status is not None:  # the server answered 429/5xx: no token was made
                self._generated.pop()
            else:  # the answer was lost: a token may have been made, voiding ours
                self._token = None
            raise
        data = self._envelope(resp, TOKEN_ENDPOINT)
        token = data.get("token")
        if isinstance(token, str) and token:
            return token
        message = data.get("message")
        if message in (BAD_USER_OR_KEY, USERNAME_NULL):
            raise AuthError(self.instance, TOKEN_ENDPOINT, message, resp.status_code)
        if isinstance(message, str) and message and data.get("status") in ("false", "error"):
            # Any other refusal, whatever its words ("Max limit exceeded" is what users
            # see): the hourly quota, the one limit the token page documents.
            raise TokenQuotaError(
                self.instance,
                TOKEN_ENDPOINT,
                f"{QUOTA_ADVICE}; Ozonetel said: {_error_text(data)}",
                resp.status_code,
            )
        if resp.status_code in (401, 403):
            raise AuthError(self.instance, TOKEN_ENDPOINT, _error_text(data), resp.status_code)
        raise self.malformed(resp, TOKEN_ENDPOINT, "no token in the generateToken reply")

    # -- plumbing ------------------------------------------------------------------------

    def _primitives(self) -> tuple[asyncio.Lock, asyncio.Semaphore]:
        """The token lock and request slots of the running event loop (made lazily)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._token_lock is None:
            self._loop = loop
            self._token_lock = asyncio.Lock()
            self._group_locks = {}
        return self._token_lock, self.in_flight_limit()

    def _group_lock(self, group: str) -> asyncio.Lock:
        self._primitives()
        return self._group_locks.setdefault(group, asyncio.Lock())

    def _renewing(self) -> bool:
        return self._token_lock is not None and self._token_lock.locked()

    async def _http(self, method: str, path: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        # The slot is held for the request only, never while waiting for the token
        # lock, so a token generation always finds a free slot.
        _, slots = self._primitives()
        async with slots:
            return await self.request(method, path, endpoint, **kwargs)

    def _envelope(self, resp: httpx.Response, endpoint: str) -> dict[str, Any]:
        """The reply's JSON object; a 401/403 that is not one is a refused credential."""
        try:
            data = resp.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        if resp.status_code in (401, 403):
            raise AuthError(
                self.instance, endpoint, short_body(resp) or "unauthorised", resp.status_code
            )
        if data is None:
            self.json_of(resp, endpoint)  # raises, naming the content type
        raise self.malformed(resp, endpoint, f"a JSON {type(data).__name__}, not an object")

    def _credential(self, key: str) -> str:
        value = self._credentials.get(key)
        if not value:
            raise CredentialError(f"{self.instance}: credential {key!r} is missing")
        return value


def _same(exc: ProviderError) -> ProviderError:
    """A fresh copy of ``exc`` to raise again (``copy.copy`` cannot rebuild a ProviderError)."""
    again = type(exc).__new__(type(exc), *exc.args)
    again.__dict__.update(exc.__dict__)
    return again


def _is_error(data: Mapping[str, Any], message: str) -> bool:
    return data.get("status") == "error" and data.get("message") == message


def _error_text(data: Mapping[str, Any]) -> str:
    """Ozonetel's own words: the message, plus any per-field ``errors``."""
    text = str(data.get("message") or f"status {data.get('status')!r} without a message")
    errors = data.get("errors")
    if isinstance(errors, dict) and errors:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ")"
    return text
