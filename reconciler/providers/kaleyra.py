"""Adapter for the Kaleyra.io contacts blocklist (``/v1/{sid}/contacts/blocklisted``).

Owns reading a channel's blocklist (limit/offset pages of at most 100, no total, so
pages are fetched one after another) and writing it (one ``POST`` whose ``contacts``
groups carry ``blocklist_status`` 1 (add) and 0 (remove), at most 100 numbers per
request). A target's scope is its ``channel`` (``sms``, ``whatsapp``, ``voice``).
Kaleyra's quirks live here, each with the doc line it comes from. The adapter caps
its own requests in flight; retries and state recording are the executor's.

Sources: CONTRACTS.md §4 and ``shared/seeds/003_*.txt``. Choices the docs leave
open are marked ``[INFER]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, Target
from ..errors import AuthError, CredentialError, ProviderError, RetryableError
from ..numbers import normalise_live
from .base import Capabilities, ProviderAdapter

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
THROTTLE_CODES = frozenset({"WA429"})  # [INFER] no throttling code is documented
SERVER_CODES = frozenset({"WA500"})  # "500 Internal Server Error": "Please try again later"


def mobile_query(numbers: Sequence[str]) -> str:
    """The ``mobile`` query parameter, every ``+`` sent as ``%2B``.

    The doc's sample ``mobile=+91802XXXXX52%2C+91803XXXXX53`` leaves ``+`` raw, which
    any form decoder reads as a space; we encode it (and the comma) so the server
    sees exactly ``+91...,+91...`` (CONTRACTS §4).
    """
    return "mobile=" + quote(",".join(numbers), safe="")


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
            "reads 100 per page with no total (pages are sequential); adds and removes "
            "share one POST of up to 100 numbers; no per-number results"
        ),
        # users' own opt-outs sit in the same blocklist, and nothing in the GET reply
        # tells them apart (CONTRACTS §4): they are protected only by being unmanaged
        opt_outs_unmarked=True,
    )

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

        There is no total count, so pages are read one after another until one comes
        back shorter than 100 ([INFER] CONTRACTS §4). With ``channel=`` set, every row
        belongs to that channel: ``channel_type`` codes are not relied on (only
        whatsapp = "3" is documented).
        """
        channel = self._channel(target)
        region = self.options.get("default_region")
        entries: dict[str, LiveEntry] = {}
        offset = 0
        while True:
            query = f"channel={quote(channel, safe='')}&limit={MAX_PER_REQUEST}&offset={offset}"
            rows = await self._get(query)
            new = 0
            for raw in rows:
                number = normalise_live(raw, region)
                if number not in entries:
                    entries[number] = LiveEntry(number=number, raw=raw)
                    new += 1
            if len(rows) < MAX_PER_REQUEST:
                return list(entries.values())
            if new == 0:
                # a full page of numbers already seen: the server ignores offset, and
                # paging on would never end
                raise ProviderError(
                    self.instance, GET_ENDPOINT, f"paging does not advance at offset {offset}"
                )
            offset += MAX_PER_REQUEST

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
            found.update(normalise_live(raw) for raw in rows)
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
        size = self._batch_size()
        if {op.number for op in removes} & {op.number for op in adds}:
            out = [Batch(list(removes[i : i + size]), 0) for i in range(0, len(removes), size)]
            return out + [Batch(list(adds[i : i + size]), 1) for i in range(0, len(adds), size)]
        ops = [*removes, *adds]
        return [Batch(ops[i : i + size], phase=0) for i in range(0, len(ops), size)]

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        """One POST per 100 ops (one for a batch from ``batches``).

        Kaleyra answers for the request, not per number: a success means every op is
        done (setting 1 on a blocked number or 0 on an unblocked one is a no-op
        [INFER], so re-sending is safe); a 400 for the request fails every op of it
        with the provider's own message (returned, not raised, so other batches go on).
        """
        channel = self._channel(target)
        outcomes: list[Outcome] = []
        for i in range(0, len(batch.ops), MAX_PER_REQUEST):
            outcomes += await self._post(channel, batch.ops[i : i + MAX_PER_REQUEST])
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
                reason = _reason(resp.json())
            except ValueError:
                reason = ""
            raise AuthError(self.instance, endpoint, reason or "unauthorised", resp.status_code)
        body = self.json_of(resp, endpoint)
        self._check_in_body(resp, body, endpoint)
        return resp, body

    async def _get(self, query: str) -> list[str]:
        """The ``mobile`` values of one GET page (the query is sent as written)."""
        resp, body = await self.read(
            lambda: self._call("GET", f"{self._path()}?{query}", GET_ENDPOINT)
        )
        if resp.status_code != 200:
            raise ProviderError(
                self.instance, GET_ENDPOINT, _reason(body) or "unexpected status", resp.status_code
            )
        data = body.get("data")
        if body.get("error") or not isinstance(data, list):
            # e.g. "CNT195" "Unable to fetch the blocklisted number" under a 200
            raise ProviderError(
                self.instance,
                GET_ENDPOINT,
                _reason(body) or "unexpected reply: no data list",
                resp.status_code,
            )
        numbers = []
        for row in data:
            mobile = row.get("mobile") if isinstance(row, dict) else None
            if not isinstance(mobile, str) or not mobile.strip():
                raise self.malformed(resp, GET_ENDPOINT, "a data row without mobile")
            numbers.append(mobile)
        return numbers

    async def _post(self, channel: str, ops: Sequence[Op]) -> list[Outcome]:
        contacts: list[dict[str, Any]] = []
        adds = [op.number for op in ops if op.kind == "add"]
        removes = [op.number for op in ops if op.kind == "remove"]
        # "Status "0" is used to remove a blocklist status from a number and "1" is used
        # to add a blocklist status to a number."
        if adds:
            contacts.append({"blocklist_status": 1, "numbers": adds})
        if removes:
            contacts.append({"blocklist_status": 0, "numbers": removes})
        if not contacts:
            return []
        resp, body = await self._call(
            "POST",
            self._path(),
            POST_ENDPOINT,
            json_body={"channel": channel, "contacts": contacts},
        )
        if resp.status_code == 400:
            # 400 "WA400" "Refer to correct payload format" (or "E110" low balance):
            # the whole request was refused; say so per op, with the provider's words
            reason = _reason(body) or "request refused (HTTP 400)"
            return [Outcome(op, "failed", reason=reason) for op in ops]
        if resp.status_code not in (200, 201, 202):
            raise ProviderError(
                self.instance, POST_ENDPOINT, _reason(body) or "unexpected status", resp.status_code
            )
        if body.get("error"):
            # a CNT-failure under a 2xx (like GET's "CNT195"): [INFER] refused whole
            reason = _reason(body) or "update refused"
            return [Outcome(op, "failed", reason=reason) for op in ops]
        # [INFER] the success body ("CNT197") was not retrieved: any 2xx without an error
        return [Outcome(op, "done") for op in ops]

    def _check_in_body(self, resp: httpx.Response, body: Any, endpoint: str) -> None:
        """Map the provider's in-body codes to our errors; insist on the envelope."""
        if not isinstance(body, dict):
            raise self.malformed(resp, endpoint, "not a JSON object")
        code = str(body.get("code", ""))
        reason = _reason(body) or code
        if code in AUTH_CODES:
            raise AuthError(self.instance, endpoint, reason, resp.status_code)
        if code in THROTTLE_CODES:
            raise RetryableError(self.instance, endpoint, reason, resp.status_code)
        if code in SERVER_CODES:
            raise RetryableError(self.instance, endpoint, reason, resp.status_code)

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

    def _batch_size(self) -> int:
        wanted = self.options.get("batch_size")
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
            return min(wanted, MAX_PER_REQUEST)
        return MAX_PER_REQUEST


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
