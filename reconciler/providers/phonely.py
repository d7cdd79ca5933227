"""Adapter for Phonely's per-agent block list (``/api/agent-block-list``).

Owns Phonely's wire protocol: the raw ``X-Authorization`` key, ``uid`` in the query
(GET) or the JSON body (POST/DELETE), the whole list in one GET, adds in POST and
removes in DELETE *with a JSON body*, and the per-number ``added``/``removed``/
``failed[{number, reason}]`` replies mapped to outcomes. It does not retry, pace or
record anything: that is the executor's job. Credentials (the key and the uid) never
appear in errors (a server may echo the request: every provider word is redacted);
endpoints are named by template.

Per-number reasons are read by exclusion. The docs' reasons are "Invalid phone number
format" (permanent: ``failed``), "Number already in block list" (an add: ``already``)
and "Number not found in block list" (a remove: ``already``). Any other words, and a
number the reply does not mention, are unclear: a transient failure, or the same
answers worded otherwise. Unclear numbers are ``retryable``; when a number comes back
unclear the second time, one GET of the agent's list (the whole list: Phonely has no
lookup) settles every unclear number of that reply: an add now listed, or a remove
no longer listed, is ``already``. The cost: a transient failure that a re-send cures
needs no read; a server whose "already in" is worded otherwise costs one re-send and
one read per batch instead of every retry ending in ``failed``; a failure that lasts
costs one read in all (never more than one read per number and apply).

An unknown ``agentId`` may get a 401 like a wrong key (the docs' 401 text is "… or
insufficient permissions"). The choice: before any request has proven the credential,
a 401/403 is an ``AuthError`` (the credential gate then sends nothing more: one bad
request per run), naming the agent ("check api_key, uid and that agent X exists");
once a request has been answered, a 401/403 is a ``ProviderError`` naming the agent,
which fails that target only. A key revoked during a run then costs one refused
request per remaining batch, which Phonely (no lockout documented) allows.

Sources: CONTRACTS.md §3 and ``shared/seeds/002_*.txt``. Choices the docs leave open
are marked ``[INFER]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Outcome, OutcomeStatus, Target
from ..errors import AuthError, CredentialError, ProviderError
from .base import Capabilities, ProviderAdapter, short_body

PATH = "/api/agent-block-list"
LIST = f"GET {PATH}"
ADD = f"POST {PATH}"
REMOVE = f"DELETE {PATH}"

# failed[].reason: (e.g., "Invalid phone number format", "Number already in block list")
INVALID_FORMAT = "Invalid phone number format"
ALREADY_IN = "Number already in block list"
# failed[].reason (DELETE): (e.g., "Number not found in block list")
NOT_FOUND = "Number not found in block list"
NOT_REPORTED = "not reported by Phonely"
UNPARSED = "not a number Phonely's list could be read as: never removed"

Unclear = Literal["unclear"]


class Refused(AuthError):
    """Phonely refused the credential. Rebuilt whole by ``copy.copy`` (the gate raises
    copies of the first refusal; ``ProviderError``'s own arguments cannot be rebuilt
    from its message alone)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.provider, self.endpoint, self.reason, self.status))


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
        # [INFER] a US voice-agent platform (the docs' example "+1234567890" is NANP
        # shaped): a number stored without its country code is read as NANP unless the
        # instance sets default_region; text that is no valid NANP number stays unparsed
        default_region="US",
    )

    def __init__(
        self,
        instance: str,
        client: httpx.AsyncClient,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(instance, client, credentials, options)
        if self.capabilities.default_region:  # as Connections sets it, for bare use too
            self.options.setdefault("default_region", self.capabilities.default_region)
        # target name -> E.164 -> the forms the provider stores it in (from refresh):
        # a remove sends the stored form, since the provider may match removes exactly
        self._raw_forms: dict[str, dict[str, list[str]]] = {}
        # (target name, kind, number) -> replies in a row whose words did not settle it
        self._unclear: dict[tuple[str, str, str], int] = {}

    # -- the three verbs -------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        entries = self._index(target, await self._block_list(self._agent_id(target)))
        return list(entries.values())

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        agent_id = self._agent_id(target)
        removes = [op for op in batch.ops if op.kind == "remove"]
        adds = [op for op in batch.ops if op.kind == "add"]
        outcomes: dict[int, Outcome] = {}
        for op in removes:
            if op.number.startswith("?"):  # unparsed: never removed (the planner never asks)
                outcomes[id(op)] = Outcome(op, "failed", UNPARSED)
        removes = [op for op in removes if id(op) not in outcomes]
        if removes:
            forms = self._raw_forms.get(target.name, {})
            # send every form the provider holds the number in (from refresh), else E.164
            wire = {id(op): forms.get(op.number) or [op.number] for op in removes}
            outcomes.update(await self._write(target, "remove", agent_id, removes, wire))
        if adds:
            wire = {id(op): [op.number] for op in adds}  # E.164 with "+" on the wire
            outcomes.update(await self._write(target, "add", agent_id, adds, wire))
        return BatchResult([outcomes[id(op)] for op in batch.ops])

    # -- reads -----------------------------------------------------------------

    async def _block_list(self, agent_id: str) -> list[str]:
        """The agent's whole list, as Phonely stores it."""
        # GET: "uid(string, required): Your user ID", "agentId(string, required)"
        params = {"uid": self._credential("uid"), "agentId": agent_id}
        resp = await self.read(lambda: self._call("GET", LIST, agent_id, params=params))
        if resp.status_code != 200:
            raise self._status_error(resp, LIST, agent_id)
        body = self.json_of(resp, LIST)
        # 200: {"blockList": ["+1234567890", ...]} -- a plain string array, no paging
        block_list = body.get("blockList") if isinstance(body, dict) else None
        if not isinstance(block_list, list) or not all(isinstance(n, str) for n in block_list):
            raise self.malformed(resp, LIST, "no blockList array of strings")
        return block_list

    def _index(self, target: Target, block_list: list[str]) -> dict[str, LiveEntry]:
        """Live entries by number; remembers the stored forms for removes."""
        entries: dict[str, LiveEntry] = {}
        forms: dict[str, list[str]] = {}
        for raw in block_list:
            # numbers are stored as given ([INFER] CONTRACTS §3 checklist 6), maybe in a
            # national form: normalised with the instance's default_region, else unparsed
            entry = self.live_entry(raw)
            forms.setdefault(entry.number, []).append(raw)
            entries.setdefault(entry.number, entry)
        self._raw_forms[target.name] = forms
        return entries

    # -- one write request -----------------------------------------------------

    async def _write(
        self,
        target: Target,
        kind: Literal["add", "remove"],
        agent_id: str,
        ops: list[Op],
        wire: dict[int, list[str]],
    ) -> dict[int, Outcome]:
        endpoint, done_key = (ADD, "added") if kind == "add" else (REMOVE, "removed")
        numbers = list(dict.fromkeys(n for op in ops for n in wire[id(op)]))
        # Body: {"uid": "string", "agentId": "string", "numbers": [...]} -- for DELETE too
        body = {"uid": self._credential("uid"), "agentId": agent_id, "numbers": numbers}
        method = endpoint.split(" ", 1)[0]
        resp = await self._call(method, endpoint, agent_id, json_body=body)
        if resp.status_code != 200:
            # 400 "Invalid request body or numbers parameter": the whole batch is refused
            raise self._status_error(resp, endpoint, agent_id)
        reply = self.json_of(resp, endpoint)
        if not isinstance(reply, dict):
            raise self.malformed(resp, endpoint, "reply is not a JSON object")
        done_list = reply.get(done_key)
        failed_list = reply.get("failed", [])  # [INFER] an absent failed[] means none failed
        if not isinstance(done_list, list) or not all(isinstance(n, str) for n in done_list):
            raise self.malformed(resp, endpoint, f"no {done_key} array of strings")
        if not isinstance(failed_list, list) or not all(_failure(f) for f in failed_list):
            raise self.malformed(resp, endpoint, "failed is not an array of {number, reason}")

        # Match replies to ops by the form sent, else by E.164 (the provider may echo
        # numbers in other formats). An op sent in several forms gets the worst status
        # of its forms, and is unclear if the reply speaks of fewer forms than were sent.
        by_form = {form: op for op in ops for form in wire[id(op)]}
        by_number = {op.number: op for op in ops}
        heard: dict[int, list[tuple[OutcomeStatus | Unclear, str | None]]] = {}

        def note(raw: str, status: OutcomeStatus | Unclear, reason: str | None) -> None:
            op = by_form.get(raw) or by_number.get(self.live_entry(raw).number)
            if op is not None:
                heard.setdefault(id(op), []).append((status, reason))

        for number in done_list:
            note(number, "done", None)
        for item in failed_list:
            status = _classify(kind, item["reason"])
            note(
                item["number"], status, None if status == "already" else self.redact(item["reason"])
            )
        verdict: dict[int, tuple[OutcomeStatus | Unclear, str | None]] = {}
        for op in ops:
            said = heard.get(id(op), [])
            if len(said) < len(wire[id(op)]):
                said = [*said, ("unclear", NOT_REPORTED)]  # don't invent success
            verdict[id(op)] = max(said, key=lambda s: _RANK[s[0]])
        return await self._settle(target, kind, agent_id, ops, wire, verdict)

    async def _settle(
        self,
        target: Target,
        kind: Literal["add", "remove"],
        agent_id: str,
        ops: list[Op],
        wire: dict[int, list[str]],
        verdict: dict[int, tuple[OutcomeStatus | Unclear, str | None]],
    ) -> dict[int, Outcome]:
        """Outcomes; unclear numbers are retryable, unless a read settles them (see the
        module docstring: only when one of them is unclear for the second time)."""
        unclear = [op for op in ops if verdict[id(op)][0] == "unclear"]
        listed: tuple[set[str], set[str]] | None = None
        if any(self._unclear.get((target.name, kind, op.number)) == 1 for op in unclear):
            listed = await self._look(target, agent_id)  # at most once per number
        out: dict[int, Outcome] = {}
        for op in ops:
            key = (target.name, kind, op.number)
            status, reason = verdict[id(op)]
            if status == "unclear" and listed is not None:
                numbers, raws = listed
                there = op.number in numbers or any(f in raws for f in wire[id(op)])
                if there == (kind == "add"):
                    status, reason = "already", None  # the wanted state holds: Phonely says so
            if status == "unclear":
                self._unclear[key] = self._unclear.get(key, 0) + 1
                out[id(op)] = Outcome(op, "retryable", reason)
            else:
                self._unclear.pop(key, None)
                out[id(op)] = Outcome(op, status, reason)
        return out

    async def _look(self, target: Target, agent_id: str) -> tuple[set[str], set[str]] | None:
        """(numbers, stored forms) of the agent's list now; None if it cannot be read
        (the numbers then stay retryable: a failed look must not lose the write)."""
        try:
            block_list = await self._block_list(agent_id)
        except ProviderError:
            return None
        entries = self._index(target, block_list)
        return set(entries), set(block_list)

    # -- helpers ---------------------------------------------------------------

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``_call_once`` behind the credential gate: one rejected login per run at most."""
        return await self.gated(lambda: self._call_once(*args, **kwargs))

    async def _call_once(
        self,
        method: str,
        endpoint: str,
        agent_id: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """One request under the adapter's concurrency limit, with the raw API key; a
        401/403 is an AuthError until the credential is proven, then the agent's error
        (see the module docstring)."""
        # "X-Authorization: Your API key (required)" -- the raw key, no "Bearer" prefix
        headers = {"X-Authorization": self._credential("api_key")}
        async with self.in_flight_limit():
            resp = await self.request(
                method,
                PATH,
                endpoint,
                params=params,
                json_body=json_body,
                headers=headers,
                ok_statuses=(401, 403),
            )
        status = resp.status_code
        if status not in (401, 403):
            return resp
        # "401 Unauthorized: Invalid or missing API key, or insufficient permissions"
        words = self._words(resp) or "unauthorised"
        hint = f"check api_key, uid and that agent {agent_id!r} exists"
        if self._auth_proven:  # another request was answered: the credential works
            raise ProviderError(
                self.instance,
                endpoint,
                f"{words}: refused for agent {agent_id!r} though the credential works; {hint}",
                status,
            )
        raise Refused(self.instance, endpoint, f"{words}: {hint}", status)

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

    def _words(self, resp: httpx.Response) -> str:
        """Phonely's words in an error reply, redacted: ``message`` (or ``error``) of a
        JSON body, else the start of the body ([INFER] no error shape is documented)."""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("message", "error"):
                if isinstance(body.get(key), str) and body[key]:
                    return self.redact(body[key])
        if isinstance(body, str) and body:
            return self.redact(body)
        return self.redact(short_body(resp))

    def _status_error(self, resp: httpx.Response, endpoint: str, agent_id: str) -> ProviderError:
        """A non-200 that the base did not map (400, 404, 405, ...): not retryable."""
        message = self._words(resp) or "unexpected HTTP status"
        if resp.status_code in (400, 404):
            # [INFER] an unknown agentId may be a 404 or a 400: name the agent
            message += f" (check api_key, uid and that agent {agent_id!r} exists)"
        return ProviderError(self.instance, endpoint, message, resp.status_code)


# Combining several replies for one op: the worst status wins.
_RANK: dict[str, int] = {"already": 0, "done": 1, "unclear": 2, "failed": 3}


def _failure(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("number"), str)
        and isinstance(item.get("reason"), str)
    )


def _plain(words: str) -> str:
    return " ".join(words.split()).rstrip(".").casefold()


_PERMANENT = _plain(INVALID_FORMAT)
_ALREADY = {"add": _plain(ALREADY_IN), "remove": _plain(NOT_FOUND)}


def _classify(kind: str, reason: str) -> OutcomeStatus | Unclear:
    """A failed[] reason by exclusion: the docs' words, or unclear."""
    words = _plain(reason)
    if words == _PERMANENT:
        return "failed"  # "Invalid phone number format": a re-send cannot help
    if words == _ALREADY[kind]:
        return "already"  # the wanted state holds (CONTRACTS §3 Idempotency)
    return "unclear"
