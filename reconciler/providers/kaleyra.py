"""Adapter for the Kaleyra.io contacts blocklist (``/v1/{sid}/contacts/blocklisted``).

Owns reading a channel's blocklist (limit/offset pages of at most 100, no total, so
pages are read one after another until an empty one, fetched ahead a few at a time)
and writing it (one ``POST``
whose ``contacts`` groups carry ``blocklist_status`` 1 (add) and 0 (remove), at most
100 numbers per request). A target's scope is its ``channel`` (``sms``, ``whatsapp``,
``voice``). Kaleyra's quirks live here, each with the doc line it comes from. The
adapter caps its own requests in flight; retries and state recording are the
executor's.

What it cannot take on trust: that a page shorter than the limit asked is the last
(a server may cap pages lower: only an empty page ends a read), the format numbers
are stored in (each is read with the instance's ``default_region``, and a remove
sends it back as stored), and which error codes are for good (only the documented
"WA400" payload and "E110" low-balance refusals; any other non-auth error is
transient).

Sources: CONTRACTS.md §4 and ``shared/seeds/003_*.txt``. Choices the docs leave
open are marked ``[INFER]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, OutcomeStatus, Target
from ..errors import AuthError, CredentialError, ProviderError, RetryableError
from .base import Capabilities, ProviderAdapter, ReadAhead, parse_retry_after

# "channel_name ... The acceptable value is "sms", "whatsapp", and "voice"."
CHANNELS = ("sms", "whatsapp", "voice")
# "It is not possible to retrieve more than 100 contacts per response." (GET) and
# "You can update the blocklist status for up to 100 contacts per request." (POST)
MAX_PER_REQUEST = 100
ENDPOINT = "/v1/{sid}/contacts/blocklisted"  # every cURL example uses v1 (CONTRACTS §4)
GET_ENDPOINT = f"GET {ENDPOINT}"
POST_ENDPOINT = f"POST {ENDPOINT}"
# 401 "RBC001" "Incorrect SID or API key."; 401 "WA401"/"WA-401" phone number / account
# type / WA version: in-body auth failures, whatever the HTTP status says
AUTH_CODES = frozenset({"RBC001", "WA401", "WA-401"})
# "400 Incorrect payload" "WA400" "Refer to correct payload format" and "400 Low
# balance" "E110": the documented refusals, sent again they get the same answer. Any
# other error (a 5xx "WA500" "Please try again later", "CNT195" "Unable to ...", a
# throttling code of any name) is transient: recognised by exclusion.
REFUSAL_CODES = frozenset({"WA400", "E110"})
# 200 "CNT196" "Successfully fetched blocklisted number(s)"
FETCHED = "CNT196"


def mobile_query(numbers: Sequence[str]) -> str:
    """The ``mobile`` query parameter, every ``+`` sent as ``%2B``.

    The doc's sample ``mobile=+91802XXXXX52%2C+91803XXXXX53`` leaves ``+`` raw, which
    any form decoder reads as a space; we encode it (and the comma) so the server
    sees exactly ``+91...,+91...`` (CONTRACTS §4).
    """
    return "mobile=" + quote(",".join(numbers), safe="")


def request_chunks(wire: Sequence[tuple[Op, list[str]]]) -> list[list[tuple[Op, list[str]]]]:
    """Ops (each with the forms it sends) in order, cut so that no request carries more
    than 100 numbers however many forms an op has; an op is never split."""
    chunks: list[list[tuple[Op, list[str]]]] = []
    chunk: list[tuple[Op, list[str]]] = []
    count = 0  # numbers in ``chunk`` (was summed again for every op: 5 050 steps a batch)
    for item in wire:
        if chunk and count + len(item[1]) > MAX_PER_REQUEST:
            chunks.append(chunk)
            chunk, count = [], 0
        chunk.append(item)
        count += len(item[1])
    if chunk:
        chunks.append(chunk)
    return chunks


class KaleyraAdapter(ProviderAdapter):
    type_name = "kaleyra"
    capabilities = Capabilities(
        can_list=True,
        can_add=True,
        can_remove=True,
        batch_limit=MAX_PER_REQUEST,
        concurrency_limit=4,  # [INFER] no limit is documented: a conservative choice
        native_expiry=False,
        remove_by="number",
        remove_one_per_call=False,
        scope_fields=("channel",),
        attribute_fields=(),
        credential_keys=("api_key", "sid"),
        default_base_url="https://api.kaleyra.io",
        wire_format="E.164 with +, + sent as %2B in queries",
        notes=(
            "reads up to 100 per page with no total (pages are sequential, until an "
            "empty one); adds and removes share one POST of up to 100 numbers; no "
            "per-number results"
        ),
        # users' own opt-outs sit in the same blocklist, and nothing in the GET reply
        # tells them apart (CONTRACTS §4): they are protected only by being unmanaged
        opt_outs_unmarked=True,
    )

    def __init__(
        self,
        instance: str,
        client: httpx.AsyncClient,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(instance, client, credentials, options)
        # target name -> E.164 -> the forms the channel stores the number in (from
        # refresh): a remove sends those ("919812300005" may not match "+919812300005")
        self._stored: dict[str, dict[str, list[str]]] = {}

    # -- scope -------------------------------------------------------------------------

    @classmethod
    def scope_problems(cls, key: str, value: object) -> str | None:
        problem = super().scope_problems(key, value)
        if problem is None and key == "channel" and value not in CHANNELS:
            return f"channel must be one of {', '.join(CHANNELS)}, not {value!r}"
        return problem

    @classmethod
    def field_schema(cls, key: str) -> dict[str, Any]:
        if key == "channel":
            return {"enum": list(CHANNELS), "description": "Kaleyra channel"}
        return super().field_schema(key)

    # -- the three verbs ---------------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        """Every number blocklisted on the target's channel.

        There is no total count, and a page may hold fewer rows than the limit asked
        while more follow (a server may cap pages lower than 100): so the offset steps
        by the rows received, and only an empty page ends the read ("if none of the
        numbers are blocklisted, then empty array will be returned"), at the price of
        one more request. The pages are read one after another as written here, but
        fetched ahead (``ReadAhead``): a long list takes a quarter of the round trips.
        With ``channel=`` set, every row belongs to that channel: ``channel_type`` codes
        are not relied on (only whatsapp = "3" is documented).
        """
        channel = self._channel(target)
        head = f"channel={quote(channel, safe='')}&limit={MAX_PER_REQUEST}&offset="
        entries: dict[str, LiveEntry] = {}
        forms: dict[str, list[str]] = {}
        seen: set[str] = set()
        offset = 0
        async with ReadAhead(lambda at: self._get(f"{head}{at}"), self.concurrency) as pages:
            while True:
                rows = await pages.page(offset)
                if not rows:
                    break
                fresh = [raw for raw in dict.fromkeys(rows) if raw not in seen]
                if not fresh:
                    # a page of rows already seen: the server ignores offset, and paging
                    # on would never end
                    raise ProviderError(
                        self.instance, GET_ENDPOINT, f"paging does not advance at offset {offset}"
                    )
                for raw in fresh:
                    seen.add(raw)
                    entry = self.live_entry(raw)
                    if not entry.unparsed:
                        forms.setdefault(entry.number, []).append(raw)
                    entries.setdefault(entry.number, entry)
                offset += len(rows)
        self._stored[target.name] = forms
        return list(entries.values())

    async def blocklisted(self, target: Target, numbers: Sequence[str]) -> set[str]:
        """Which of ``numbers`` (E.164) are blocklisted on the target's channel, asked
        with the ``mobile`` filter ("You can send the request for a maximum set of 100
        phone numbers"), 100 numbers per request."""
        channel = self._channel(target)
        found: set[str] = set()
        unique = list(dict.fromkeys(numbers))
        for i in range(0, len(unique), MAX_PER_REQUEST):
            chunk = unique[i : i + MAX_PER_REQUEST]
            query = f"channel={quote(channel, safe='')}&limit={MAX_PER_REQUEST}&offset=0"
            rows = await self._get(f"{query}&{mobile_query(chunk)}")
            found.update(e.number for e in map(self.live_entry, rows) if not e.unparsed)
        return found

    def batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """Adds and removes share requests, all at phase 0.

        "One request can mix adds and removes, scoped to a single channel" (CONTRACTS
        §4): ``contacts`` holds a ``blocklist_status: 0`` group and a ``1`` group, and
        "You can update the blocklist status for up to 100 contacts per request", so n
        changes take ceil(n/100) requests. A number that is both removed and added (the
        planner never does this) falls back to removes-before-adds phases.
        """
        size = self.batch_size
        if {op.number for op in removes} & {op.number for op in adds}:
            out = [Batch(list(removes[i : i + size]), 0) for i in range(0, len(removes), size)]
            return out + [Batch(list(adds[i : i + size]), 1) for i in range(0, len(adds), size)]
        ops = [*removes, *adds]
        return [Batch(ops[i : i + size], phase=0) for i in range(0, len(ops), size)]

    def head_batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """Chunks of the ops in order (removes first), as ``batches``: a prefix's full
        chunks are the first chunks of all of them (phase 0 either way)."""
        return self.full_batches(target, removes, adds, meta)

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        """One POST per 100 numbers (one for a batch from ``batches``).

        A remove sends the forms refresh read the number in. Kaleyra answers for the
        request, not per number: a success means every op is done (setting 1 on a
        blocked number or 0 on an unblocked one is a no-op [INFER], so re-sending is
        safe); a documented refusal ("WA400", "E110") fails every op of it with the
        provider's own words, any other error leaves them retryable (returned, not
        raised, so other batches go on).
        """
        channel = self._channel(target)
        stored = self._stored.get(target.name, {})
        wire = [
            (op, (stored.get(op.number) if op.kind == "remove" else None) or [op.number])
            for op in batch.ops
        ]
        outcomes: list[Outcome] = []
        for chunk in request_chunks(wire):
            outcomes += await self._post(channel, chunk)
        return BatchResult(outcomes)

    # -- requests ----------------------------------------------------------------------

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        return await self.gated(lambda: self._call_once(*args, **kwargs))

    async def _call_once(
        self, method: str, path: str, endpoint: str, **kwargs: Any
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """One request under the concurrency cap: (response, JSON object body).

        401/403 and the in-body auth codes raise ``AuthError`` with Kaleyra's own words
        (401 "RBC001" "Incorrect SID or API key."); 429/5xx raise ``RetryableError``.
        """
        async with self.in_flight_limit():
            resp = await self.request(
                method, path, endpoint, ok_statuses=(401, 403), **self._auth(), **kwargs
            )
        if resp.status_code in (401, 403):
            try:
                reason = self._reason(resp.json())
            except ValueError:
                reason = ""
            raise AuthError(self.instance, endpoint, reason or "unauthorised", resp.status_code)
        body = self.json_of(resp, endpoint)
        if not isinstance(body, dict):
            raise self.malformed(resp, endpoint, "not a JSON object")
        if str(body.get("code", "")) in AUTH_CODES:
            reason = self._reason(body) or str(body["code"])
            raise AuthError(self.instance, endpoint, reason, resp.status_code)
        return resp, body

    def _failure(
        self, resp: httpx.Response, body: dict[str, Any]
    ) -> tuple[OutcomeStatus, str] | None:
        """None for a success (2xx, no ``error``); else how the ops of the request end
        ("failed" for a documented refusal, "retryable" for anything else) and why."""
        error = body.get("error")
        if 200 <= resp.status_code < 300 and not error:
            return None
        code = str(body.get("code", ""))
        reason = self._reason(body) or code or f"HTTP {resp.status_code}"
        return ("failed" if code in REFUSAL_CODES else "retryable"), reason

    async def _get(self, query: str) -> list[str]:
        """The ``mobile`` values of one GET page (the query is sent as written)."""
        resp, body = await self.read(
            lambda: self._call("GET", f"{self._path()}?{query}", GET_ENDPOINT)
        )
        data = body.get("data")
        failure = self._failure(resp, body)
        if failure is None and not isinstance(data, list) and body.get("code") != FETCHED:
            # no data and a code other than the success's: an error envelope without
            # "error" details (e.g. a throttling code), not a malformed success
            failure = self._failure(resp, {**body, "error": body.get("code")})
        if failure is not None:
            # e.g. "CNT195" "Unable to fetch the blocklisted number" under a 200
            kind = ProviderError if failure[0] == "failed" else RetryableError
            raise kind(self.instance, GET_ENDPOINT, failure[1], resp.status_code)
        if not isinstance(data, list):
            raise self.malformed(resp, GET_ENDPOINT, "no data list")
        numbers = []
        for row in data:
            mobile = row.get("mobile") if isinstance(row, dict) else None
            if not isinstance(mobile, str) or not mobile.strip():
                raise self.malformed(resp, GET_ENDPOINT, "a data row without mobile")
            numbers.append(mobile)
        return numbers

    async def _post(self, channel: str, chunk: Sequence[tuple[Op, list[str]]]) -> list[Outcome]:
        """One POST of these ops (each with the numbers it sends); their outcomes."""
        resp, body = await self._send_contacts(channel, chunk)
        failure = self._failure(resp, body)
        stored_forms = any(form != op.number for op, forms in chunk for form in forms)
        if failure is not None and failure[0] == "failed" and stored_forms:
            # refused, and it carried stored forms other than E.164: a server that wants
            # "+" refuses "919812300005" (and matches "+919812300005" to it): send the
            # E.164 forms instead, once
            e164 = [(op, [op.number]) for op, _ in chunk]
            resp, body = await self._send_contacts(channel, e164)
            failure = self._failure(resp, body)
        ops = [op for op, _ in chunk]
        if failure is None:
            # [INFER] the success body ("CNT197") was not retrieved: any 2xx without error
            return [Outcome(op, "done") for op in ops]
        status, reason = failure
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return [Outcome(op, status, reason, retry_after=retry_after) for op in ops]

    async def _send_contacts(
        self, channel: str, chunk: Sequence[tuple[Op, list[str]]]
    ) -> tuple[httpx.Response, dict[str, Any]]:
        adds = [n for op, forms in chunk if op.kind == "add" for n in forms]
        removes = [n for op, forms in chunk if op.kind == "remove" for n in forms]
        # "Status "0" is used to remove a blocklist status from a number and "1" is used
        # to add a blocklist status to a number."
        contacts: list[dict[str, Any]] = []
        if adds:
            contacts.append({"blocklist_status": 1, "numbers": list(dict.fromkeys(adds))})
        if removes:
            contacts.append({"blocklist_status": 0, "numbers": list(dict.fromkeys(removes))})
        return await self._call(
            "POST",
            self._path(),
            POST_ENDPOINT,
            json_body={"channel": channel, "contacts": contacts},
        )

    # -- helpers -----------------------------------------------------------------------

    def _channel(self, target: Target) -> str:
        channel = target.scope_dict().get("channel")
        if channel not in CHANNELS:
            raise ProviderError(
                self.instance, "target", f"channel must be one of {', '.join(CHANNELS)}"
            )
        return channel

    def _credential(self, key: str) -> str:
        value = self._credentials.get(key)
        if not value:
            raise CredentialError(f"{self.instance}: credential {key!r} is not set")
        return value

    def _path(self) -> str:
        # "curl -X GET 'https://api.kaleyra.io/v1/<SID>/contacts/blocklisted?...'": the
        # SID is in the path, so messages name the endpoint by template only
        return f"/v1/{quote(self._credential('sid'), safe='')}/contacts/blocklisted"

    def _auth(self) -> dict[str, Any]:
        # "--header 'api-key: <api_key>'"
        return {"headers": {"api-key": self._credential("api_key")}}

    def _reason(self, body: Any) -> str:
        """Kaleyra's words, with every credential masked: a body may echo the SID of
        the URL path (raw or as it was percent-encoded there) or the key."""
        text = self.redact(_reason(body))
        sid = self._credentials.get("sid") or ""
        quoted = quote(sid, safe="")
        return text.replace(quoted, "[redacted]") if len(quoted) >= 3 else text


def _reason(body: Any) -> str:
    """The provider's own words: ``message`` plus the ``error`` details that differ."""
    if not isinstance(body, dict):
        return ""
    message = body.get("message")
    parts = [message] if isinstance(message, str) and message else []
    error = body.get("error")
    if isinstance(error, dict):
        for key, value in error.items():
            if isinstance(value, str) and value and value != message:
                parts.append(f"{key}: {value}")
    return "; ".join(parts)
