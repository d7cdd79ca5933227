"""Adapter for Phonely's per-agent block list (``/api/agent-block-list``).

Owns Phonely's wire protocol: the raw ``X-Authorization`` key, ``uid`` in the query
(GET) or the JSON body (POST/DELETE), the whole list in one GET, adds in POST and
removes in DELETE *with a JSON body*, and the per-number ``added``/``removed``/
``failed[{number, reason}]`` replies mapped to outcomes. It does not retry, pace or
record anything: that is the executor's job. Credentials (the key and the uid) never
appear in errors; endpoints are named by template.

Sources: CONTRACTS.md §3 and ``shared/seeds/002_*.txt``. Choices the docs leave open
are marked ``[INFER]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, OutcomeStatus, Target
from ..errors import CredentialError, ProviderError
from ..numbers import normalise_live
from .base import Capabilities, ProviderAdapter, short_body

PATH = "/api/agent-block-list"
LIST = f"GET {PATH}"
ADD = f"POST {PATH}"
REMOVE = f"DELETE {PATH}"

# failed[].reason: (e.g., "Invalid phone number format", "Number already in block list")
ALREADY_IN = "Number already in block list"
# failed[].reason (DELETE): (e.g., "Number not found in block list")
NOT_FOUND = "Number not found in block list"
NOT_REPORTED = "not reported by Phonely"


class PhonelyAdapter(ProviderAdapter):
    """One Phonely account (api_key + uid); targets are its agents (``agent_id``)."""

    type_name = "phonely"
    capabilities = Capabilities(
        can_list=True,  # GET returns the whole list: {"blockList": [...]}
        can_add=True,
        can_remove=True,
        batch_limit=100,  # [INFER] no batch size is documented: a conservative choice
        concurrency_limit=4,  # [INFER] no rate or concurrency limit is documented
        native_expiry=False,  # no update/expiry endpoint exists: expiry is emulated
        remove_by="number",
        remove_one_per_call=False,  # DELETE takes "numbers(string[], required)"
        scope_fields=("agent_id",),
        attribute_fields=(),
        credential_keys=("api_key", "uid"),
        default_base_url="https://app.phonely.ai",
        # "Phone numbers must be in valid format (E.164 format recommended, e.g., +1234567890)"
        wire_format="E.164 with +",
        notes="whole list in one GET; batch and concurrency limits undocumented",
    )

    def __init__(
        self,
        instance: str,
        client: httpx.AsyncClient,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(instance, client, credentials, options)
        # target name -> E.164 -> the forms the provider stores it in (from refresh):
        # a remove sends the stored form, since the provider may match removes exactly
        self._raw_forms: dict[str, dict[str, list[str]]] = {}

    # -- the three verbs -------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        agent_id = self._agent_id(target)
        # GET: "uid(string, required): Your user ID", "agentId(string, required)"
        params = {"uid": self._credential("uid"), "agentId": agent_id}
        resp = await self.read(lambda: self._call("GET", LIST, params=params))
        if resp.status_code != 200:
            raise self._status_error(resp, LIST)
        body = self.json_of(resp, LIST)
        # 200: {"blockList": ["+1234567890", ...]} -- a plain string array, no paging
        block_list = body.get("blockList") if isinstance(body, dict) else None
        if not isinstance(block_list, list) or not all(isinstance(n, str) for n in block_list):
            raise self.malformed(resp, LIST, "no blockList array of strings")
        entries: dict[str, LiveEntry] = {}
        forms: dict[str, list[str]] = {}
        for raw in block_list:
            # numbers are stored as given ([INFER] CONTRACTS §3 checklist 6): normalise so
            # that "+1 415-555-0142" and "+14155550142" are one number, never a change
            number = normalise_live(raw)
            forms.setdefault(number, []).append(raw)
            if number not in entries:
                entries[number] = LiveEntry(number=number, raw=raw)
        self._raw_forms[target.name] = forms
        return list(entries.values())

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        agent_id = self._agent_id(target)
        removes = [op for op in batch.ops if op.kind == "remove"]
        adds = [op for op in batch.ops if op.kind == "add"]
        outcomes: dict[int, Outcome] = {}
        if removes:
            forms = self._raw_forms.get(target.name, {})
            # send every form the provider holds the number in (from refresh), else E.164
            wire = {id(op): forms.get(op.number) or [op.number] for op in removes}
            outcomes.update(
                await self._write(REMOVE, "removed", NOT_FOUND, agent_id, removes, wire)
            )
        if adds:
            wire = {id(op): [op.number] for op in adds}  # E.164 with "+" on the wire
            outcomes.update(await self._write(ADD, "added", ALREADY_IN, agent_id, adds, wire))
        return BatchResult([outcomes[id(op)] for op in batch.ops])

    # -- one write request -----------------------------------------------------

    async def _write(
        self,
        endpoint: str,
        done_key: str,
        already_reason: str,
        agent_id: str,
        ops: list[Op],
        wire: dict[int, list[str]],
    ) -> dict[int, Outcome]:
        numbers = list(dict.fromkeys(n for op in ops for n in wire[id(op)]))
        # Body: {"uid": "string", "agentId": "string", "numbers": [...]} -- for DELETE too
        body = {"uid": self._credential("uid"), "agentId": agent_id, "numbers": numbers}
        method = endpoint.split(" ", 1)[0]
        resp = await self._call(method, endpoint, json_body=body)
        if resp.status_code != 200:
            # 400 "Invalid request body or numbers parameter": the whole batch is refused
            raise self._status_error(resp, endpoint)
        reply = self.json_of(resp, endpoint)
        if not isinstance(reply, dict):
            raise self.malformed(resp, endpoint, "reply is not a JSON object")
        done_list = reply.get(done_key)
        failed_list = reply.get("failed", [])  # [INFER] an absent failed[] means none failed
        if not isinstance(done_list, list) or not all(isinstance(n, str) for n in done_list):
            raise self.malformed(resp, endpoint, f"no {done_key} array of strings")
        if not isinstance(failed_list, list) or not all(_failure(f) for f in failed_list):
            raise self.malformed(resp, endpoint, "failed is not an array of {number, reason}")
        # Match replies to ops by E.164: the provider may echo numbers in other formats.
        # Where one op went out in several forms, the worst status of its forms wins.
        status_of: dict[str, tuple[OutcomeStatus, str | None]] = {}

        def note(raw: str, status: OutcomeStatus, reason: str | None) -> None:
            key = normalise_live(raw)
            seen = status_of.get(key)
            if seen is None or _RANK[status] > _RANK[seen[0]]:
                status_of[key] = (status, reason)

        for number in done_list:
            note(number, "done", None)
        for item in failed_list:
            reason = item["reason"]
            if reason == already_reason:
                # "Number already in block list" / "Number not found in block list":
                # the wanted state holds, so it counts as done (CONTRACTS §3 Idempotency)
                note(item["number"], "already", None)
            elif _transient(reason):
                note(item["number"], "retryable", reason)  # [INFER] "Temporary failure, ..."
            else:
                note(item["number"], "failed", reason)  # e.g. "Invalid phone number format"
        out: dict[int, Outcome] = {}
        for op in ops:
            status, reason = status_of.get(normalise_live(op.number), ("failed", NOT_REPORTED))
            out[id(op)] = Outcome(op, status, reason)
        return out

    # -- helpers ---------------------------------------------------------------

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        return await self.gated(lambda: self._call_once(*args, **kwargs))

    async def _call_once(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """One request under the adapter's concurrency limit, with the raw API key."""
        # "X-Authorization: Your API key (required)" -- the raw key, no "Bearer" prefix
        headers = {"X-Authorization": self._credential("api_key")}
        async with self.in_flight_limit():
            return await self.request(
                method, PATH, endpoint, params=params, json_body=json_body, headers=headers
            )

    def _credential(self, key: str) -> str:
        value = self._credentials.get(key)
        if not value:
            raise CredentialError(f"{self.instance}: credential {key!r} is not set")
        return value

    def _agent_id(self, target: Target) -> str:
        agent_id = target.scope_dict().get("agent_id")
        if not agent_id:
            raise ProviderError(self.instance, PATH, f"target {target.name} has no agent_id")
        return str(agent_id)

    def _status_error(self, resp: httpx.Response, endpoint: str) -> ProviderError:
        """A non-200 that the base did not map (400, 404, 405, ...): not retryable."""
        message = None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]  # e.g. "Invalid request body or numbers parameter"
        return ProviderError(
            self.instance,
            endpoint,
            message or short_body(resp) or "unexpected HTTP status",
            resp.status_code,
        )


# Combining several replies for one op: the worst status wins.
_RANK: dict[str, int] = {"already": 0, "done": 1, "retryable": 2, "failed": 3}


def _failure(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("number"), str)
        and isinstance(item.get("reason"), str)
    )


def _transient(reason: str) -> bool:
    lowered = reason.lower()
    return "retry" in lowered or "temporar" in lowered
