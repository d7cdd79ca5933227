"""PhonelyAdapter against the Phonely emulator over real loopback HTTP, in every dialect."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import Loopback, module_fixture

from reconciler.connections import provider_client
from reconciler.domain import Batch, Op, Target
from reconciler.errors import AuthError, ProviderError, RetryableError
from reconciler.numbers import parse_live
from reconciler.providers import adapter_class
from reconciler.providers.phonely import PhonelyAdapter, _classify
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.phonely import PhonelyEmulator

CREDS = {"api_key": "sandbox-phonely-key", "uid": "sandbox-uid"}
SECRETS = ("sandbox-phonely-key", "sandbox-uid")
TARGET = Target(
    name="phonely/support-bot",
    provider="phonely",
    type="phonely",
    scope=(("agent_id", "support-bot"),),
)
TYPO = Target("phonely/typo-bot", "phonely", "phonely", (("agent_id", "typo-bot"),))
LIST = "GET /api/agent-block-list"
ADD = "POST /api/agent-block-list"
REMOVE = "DELETE /api/agent-block-list"
DIALECTS = list(PhonelyEmulator.dialects)

# built once: a new client would otherwise load the CA bundle (~40 ms) for plain http
TLS = ssl.create_default_context()


LOOPBACK = Loopback("phonely")
_loopback = module_fixture(LOOPBACK)  # one server for the module; tests plug emulators in


@pytest.fixture(params=DIALECTS)
def dialect(request) -> str:
    """Every test taking ``dialect`` runs against every dialect of the emulator."""
    return request.param


def run(
    emulator: PhonelyEmulator,
    body: Callable[[PhonelyAdapter], Awaitable[Any]],
    credentials: dict[str, str] = CREDS,
    options: dict[str, Any] | None = None,
) -> Any:
    """Serve the emulator on loopback and run ``body(adapter)`` in a fresh event loop."""

    url = LOOPBACK.plug(emulator)

    async def main() -> Any:
        async with provider_client(url, timeout=5, verify=TLS) as client:
            adapter = PhonelyAdapter("phonely-main", client, credentials, options)
            return await body(adapter)

    return asyncio.run(main())


def populate(emulator: PhonelyEmulator, numbers: list[str], agent: str = "support-bot") -> None:
    """Numbers in the agent's list as the dialect would have stored them through the API."""
    emulator.state["agents"][agent] = {emulator._key(n): emulator._stored(n) for n in numbers}


def place(emulator: PhonelyEmulator, raws: list[str], agent: str = "support-bot") -> None:
    """Numbers in the agent's list exactly in these stored forms."""
    emulator.state["agents"][agent] = {emulator._key(n): n for n in raws}


def stored(emulator: PhonelyEmulator, agent: str = "support-bot") -> list[str]:
    """The agent's list in E.164 (whatever form the dialect stores)."""
    raws = emulator.state["agents"].get(agent, {}).values()
    return [parse_live(n, "US") or n for n in raws]


def adds(*numbers: str) -> Batch:
    return Batch([Op("add", n) for n in numbers], phase=1)


def removes(*numbers: str) -> Batch:
    return Batch([Op("remove", n) for n in numbers], phase=0)


def statuses(result) -> list[tuple[str, str, str | None]]:
    return [(o.op.number, o.status, o.reason) for o in result.outcomes]


def no_faults(emulator: PhonelyEmulator) -> None:
    emulator.faults = Faults(FaultSpec())


async def settle(adapter: PhonelyAdapter, target: Target, batch: Batch, attempts: int = 5):
    """Send a batch, then its retryable numbers again, as the executor does (no backoff);
    returns the last outcome of every op."""
    final = {}
    pending = batch
    for _ in range(attempts):
        result = await adapter.send(target, pending)
        final.update({id(o.op): o for o in result.outcomes})
        left = [o.op for o in result.outcomes if o.status == "retryable"]
        if not left:
            break
        pending = Batch(left, batch.phase)
    return [final[id(op)] for op in batch.ops]


def reads(emulator: PhonelyEmulator) -> int:
    return emulator.counters.requests.get(LIST, 0)


class Recording(PhonelyEmulator):
    """The emulator, remembering every write body it was sent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bodies: list[tuple[str, str | None, dict]] = []

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            self.bodies.append(
                (request.method, request.headers.get("Content-Type"), json.loads(request.content))
            )
        return super().route(request)


class Canned(PhonelyEmulator):
    """Answers every API request with one fixed reply (for malformed-reply tests)."""

    def __init__(self, status: int, content: bytes, content_type: str) -> None:
        super().__init__(seed=False)
        self.reply = (status, content, content_type)

    def route(self, request: httpx.Request) -> httpx.Response:
        status, content, content_type = self.reply
        return httpx.Response(status, content=content, headers={"Content-Type": content_type})


# -- capabilities --------------------------------------------------------------------


def test_registered_with_its_capabilities():
    assert adapter_class("phonely") is PhonelyAdapter
    caps = PhonelyAdapter.capabilities
    assert (caps.can_list, caps.can_add, caps.can_remove) == (True, True, True)
    assert (caps.batch_limit, caps.concurrency_limit) == (100, 4)
    assert caps.native_expiry is False
    assert (caps.remove_by, caps.remove_one_per_call) == ("number", False)
    assert caps.scope_fields == ("agent_id",)
    assert caps.attribute_fields == ()
    assert caps.credential_keys == ("api_key", "uid")
    assert caps.default_base_url == "https://app.phonely.ai"
    assert caps.wire_format == "E.164 with +"
    assert caps.default_region == "US"
    assert PhonelyAdapter.target_name("phonely", {"agent_id": "support-bot"}) == TARGET.name


# -- refresh -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 250])
def test_refresh_reads_the_whole_list_in_one_request(dialect, size):
    emulator = PhonelyEmulator(seed=False, dialect=dialect)
    numbers = [f"+1415555{i:04d}" for i in range(size)]  # valid NANP: read back in "lean"
    populate(emulator, numbers)
    entries = run(emulator, lambda a: a.refresh(TARGET))
    assert [e.number for e in entries] == numbers
    assert not any(e.opt_out or e.unparsed for e in entries)
    assert emulator.counters.requests == {LIST: 1}


def test_refresh_of_a_long_list_is_one_request():
    emulator = PhonelyEmulator(seed=False)
    numbers = [f"+1415{i:07d}" for i in range(10_000)]
    populate(emulator, numbers)
    entries = run(emulator, lambda a: a.refresh(TARGET))
    assert [e.number for e in entries] == numbers
    assert emulator.counters.requests == {LIST: 1}


def test_refresh_of_the_seeded_agent(dialect):
    entries = run(PhonelyEmulator(dialect=dialect), lambda a: a.refresh(TARGET))
    assert [e.number for e in entries] == ["+14155550142", "+919876543210"]


def test_refresh_normalises_numbers_stored_in_other_formats():
    emulator = PhonelyEmulator(seed=False)
    emulator.state["agents"]["support-bot"] = {
        "a": "+1 415-555-0142",
        "b": "+91 98765-43210",
        "c": "+44 20 7946 0958",
        "d": "+14155550142",  # the same number again, in E.164: one live entry
    }
    entries = run(emulator, lambda a: a.refresh(TARGET))
    assert [(e.number, e.raw) for e in entries] == [
        ("+14155550142", "+1 415-555-0142"),
        ("+919876543210", "+91 98765-43210"),
        ("+442079460958", "+44 20 7946 0958"),
    ]


def test_national_numbers_are_read_with_the_region_and_removed_by_their_stored_form():
    """The lean dialect stores NANP numbers as "(415) 555-0142": they are read with the
    instance's default_region (US unless set), an unreadable one is unparsed, and a
    remove sends the stored form back."""
    emulator = Recording(seed=False, dialect="lean")
    place(emulator, ["(415) 555-0142", "4155550143", "07911 123456", "+919876543210"])

    async def body(adapter: PhonelyAdapter):
        entries = await adapter.refresh(TARGET)
        result = await adapter.send(TARGET, removes("+14155550142", "+14155550143"))
        return entries, result

    entries, result = run(emulator, body)
    assert [(e.number, e.unparsed) for e in entries] == [
        ("+14155550142", False),
        ("+14155550143", False),
        ("?07911 123456", True),  # which country? never guessed, never touched
        ("+919876543210", False),
    ]
    assert [o.status for o in result.outcomes] == ["done", "done"]
    assert emulator.bodies[0][2]["numbers"] == ["(415) 555-0142", "4155550143"]
    assert list(emulator.state["agents"]["support-bot"].values()) == [
        "07911 123456",
        "+919876543210",
    ]


def test_national_numbers_follow_the_instance_region():
    emulator = PhonelyEmulator(seed=False)
    place(emulator, ["0151 12345678", "+1 415-555-0142"])
    entries = run(emulator, lambda a: a.refresh(TARGET), options={"default_region": "DE"})
    assert [(e.number, e.unparsed) for e in entries] == [
        ("+4915112345678", False),
        ("+14155550142", False),
    ]


def test_an_unparsed_number_is_never_removed():
    emulator = PhonelyEmulator(seed=False)
    place(emulator, ["07911 123456"])

    async def body(adapter: PhonelyAdapter):
        [entry] = await adapter.refresh(TARGET)
        return await adapter.send(TARGET, removes(entry.number))

    [outcome] = run(emulator, body).outcomes
    assert outcome.status == "failed" and "never removed" in outcome.reason
    assert emulator.counters.requests == {LIST: 1}
    assert list(emulator.state["agents"]["support-bot"].values()) == ["07911 123456"]


def test_remove_sends_the_forms_the_provider_stores():
    """A number held as "+1 415-555-0142" is removed by that form, not only by E.164."""
    emulator = Recording(seed=False)
    place(emulator, ["+1 415-555-0142", "+919876543210"])

    async def body(adapter: PhonelyAdapter):
        await adapter.refresh(TARGET)
        return await adapter.send(TARGET, removes("+14155550142", "+919876543210"))

    result = run(emulator, body)
    assert statuses(result) == [
        ("+14155550142", "done", None),
        ("+919876543210", "done", None),
    ]
    method, content_type, sent = emulator.bodies[0]
    assert (method, content_type) == ("DELETE", "application/json")
    assert sent == {
        "uid": "sandbox-uid",
        "agentId": "support-bot",
        "numbers": ["+1 415-555-0142", "+919876543210"],
    }
    assert stored(emulator) == []
    assert emulator.counters.limit_violations == {}


# -- batches and send ------------------------------------------------------------------


def test_batch_of_exactly_the_limit_is_one_request(dialect):
    emulator = Recording(seed=False, dialect=dialect)
    numbers = [f"+9198765{i:05d}" for i in range(100)]

    async def body(adapter: PhonelyAdapter):
        batches = adapter.batches(TARGET, [], [Op("add", n) for n in numbers], {})
        assert [len(b.ops) for b in batches] == [100]
        return await adapter.send(TARGET, batches[0])

    emulator.state["agents"]["support-bot"] = {}
    result = run(emulator, body)
    assert [o.status for o in result.outcomes] == ["done"] * 100
    assert emulator.counters.requests == {ADD: 1}
    assert emulator.counters.max_numbers == {ADD: 100}
    # on the wire: E.164 with "+", as given
    assert emulator.bodies[0][2]["numbers"] == numbers
    assert stored(emulator) == numbers


@pytest.mark.parametrize("dialect", DIALECTS)
def test_request_counts_of_an_apply_sized_set_are_the_minimum(dialect):
    """Refresh, 120 removes, 250 adds: 1 GET, 2 DELETE, 3 POST in every dialect."""
    emulator = PhonelyEmulator(seed=False, dialect=dialect)
    old = [f"+1415555{i:04d}" for i in range(150)]
    new = [f"+1650555{i:04d}" for i in range(250)]
    populate(emulator, old)

    async def body(adapter: PhonelyAdapter):
        await adapter.refresh(TARGET)
        batches = adapter.batches(
            TARGET, [Op("remove", n) for n in old[:120]], [Op("add", n) for n in new], {}
        )
        return [await adapter.send(TARGET, b) for b in batches]

    results = run(emulator, body)
    assert all(o.status == "done" for r in results for o in r.outcomes)
    assert emulator.counters.requests == {LIST: 1, REMOVE: 2, ADD: 3}
    assert stored(emulator) == old[120:] + new


def test_per_number_results(dialect):
    """added -> done; "already in" / "not found" (in the dialect's words) -> already;
    "Invalid phone number format" -> failed; settled as the executor would send them."""
    emulator = PhonelyEmulator(dialect=dialect)

    async def body(adapter: PhonelyAdapter):
        added = await settle(adapter, TARGET, adds("+14155550100", "+14155550142", "+123"))
        removed = await settle(adapter, TARGET, removes("+919876543210", "+14155550199"))
        return added, removed

    added, removed = run(emulator, body)
    assert [(o.op.number, o.status, o.reason) for o in added] == [
        ("+14155550100", "done", None),
        ("+14155550142", "already", None),
        ("+123", "failed", "Invalid phone number format"),
    ]
    assert [o.status for o in removed] == ["done", "done" if dialect == "lean" else "already"]
    assert stored(emulator) == ["+14155550142", "+14155550100"]
    # documented words settle at once; other words cost one re-send and one read each
    documented = dialect in ("default", "strict", "lean")
    assert emulator.counters.requests == (
        {ADD: 1, REMOVE: 1} if documented else {ADD: 2, REMOVE: 2, LIST: 2}
    )


def test_injected_partial_failures_are_retryable_and_not_applied(dialect):
    emulator = PhonelyEmulator(faults="partial=1.0", dialect=dialect)

    async def body(adapter: PhonelyAdapter):
        added = await adapter.send(TARGET, adds("+14155550100"))
        removed = await adapter.send(TARGET, removes("+919876543210"))
        return added, removed

    added, removed = run(emulator, body)
    transient = emulator.quirks.transient
    for result in (added, removed):
        [outcome] = result.outcomes
        assert outcome.status == "retryable"
        assert outcome.reason.startswith(transient)
        assert not any(s in outcome.reason for s in SECRETS)  # an echoed uid is redacted
    assert stored(emulator) == ["+14155550142", "+919876543210"]
    assert emulator.counters.faults == {"partial": 2}


@pytest.mark.parametrize("reason", ["Quota exceeded for this number", "Number is reserved"])
def test_failures_in_any_words_are_retryable(reason):
    """Only the documented reasons are final: any other words are re-sent."""
    emulator = PhonelyEmulator(faults=f"partial=1.0,reason={reason}")

    async def body(adapter: PhonelyAdapter):
        first = await adapter.send(TARGET, adds("+14155550100"))
        no_faults(emulator)
        again = await adapter.send(TARGET, adds("+14155550100"))
        return first, again

    first, again = run(emulator, body)
    assert statuses(first) == [("+14155550100", "retryable", reason)]
    assert statuses(again) == [("+14155550100", "done", None)]
    assert reads(emulator) == 0  # a failure cured by a re-send costs no read


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["add", "remove"]))
def test_only_the_documented_reasons_are_final(reason, kind):
    words = " ".join(reason.split()).rstrip(".").casefold()
    documented = {
        "invalid phone number format": "failed",
        "number already in block list": "already" if kind == "add" else "unclear",
        "number not found in block list": "already" if kind == "remove" else "unclear",
    }
    assert _classify(kind, reason) == documented.get(words, "unclear")
    assert _classify(kind, f"  {reason.upper()}  ") == _classify(kind, reason.upper())


class Echoing(PhonelyEmulator):
    """Answers with numbers in another format than sent, and with its own reasons."""

    def route(self, request: httpx.Request) -> httpx.Response:
        resp = super().route(request)
        if request.method != "POST":
            return resp
        body = resp.json()
        body["added"] = [f"{n[:2]} {n[2:5]}-{n[5:8]}-{n[8:]}" for n in body["added"]]
        body["failed"] = [
            {"number": "+1 (415) 555-0142", "reason": "Number already in block list"},
            {"number": "+14155550177", "reason": "Number is reserved"},
        ]
        return httpx.Response(200, json=body)


def test_replies_are_matched_by_normalised_number():
    emulator = Echoing()
    result = run(
        emulator,
        lambda a: a.send(TARGET, adds("+14155550100", "+14155550142", "+14155550177")),
    )
    assert statuses(result) == [
        ("+14155550100", "done", None),
        ("+14155550142", "already", None),
        ("+14155550177", "retryable", "Number is reserved"),
    ]


class Forgetful(PhonelyEmulator):
    """Does what it is asked and reports nothing."""

    def route(self, request: httpx.Request) -> httpx.Response:
        resp = super().route(request)
        if request.method == "GET":
            return resp
        return httpx.Response(200, json={"message": "ok", "added": [], "removed": []})


def test_a_number_the_reply_does_not_mention_is_settled_by_a_read():
    """No invented success: unmentioned is retryable; the second time, one GET shows the
    add took effect (already)."""
    emulator = Forgetful()

    async def body(adapter: PhonelyAdapter):
        first = await adapter.send(TARGET, adds("+14155550100"))
        second = await adapter.send(TARGET, adds("+14155550100"))
        return first, second

    first, second = run(emulator, body)
    assert statuses(first) == [("+14155550100", "retryable", "not reported by Phonely")]
    assert statuses(second) == [("+14155550100", "already", None)]
    assert emulator.counters.requests == {ADD: 2, LIST: 1}


class Stubborn(PhonelyEmulator):
    """Fails every number with words of its own, every time, and changes nothing."""

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return super().route(request)
        numbers = json.loads(request.content)["numbers"]
        failed = [{"number": n, "reason": "Number is locked"} for n in numbers]
        key = "added" if request.method == "POST" else "removed"
        return httpx.Response(200, json={"message": "ok", key: [], "failed": failed})


def test_a_persistent_unclear_failure_is_read_once_then_left_to_the_retries():
    emulator = Stubborn()
    out = run(emulator, lambda a: settle(a, TARGET, adds("+14155550100", "+14155550101")))
    assert [(o.status, o.reason) for o in out] == [("retryable", "Number is locked")] * 2
    # five sends, one read (on the second unclear answer), never an invented success
    assert emulator.counters.requests == {ADD: 5, LIST: 1}


@pytest.mark.parametrize("kind", ["add", "remove"])
def test_resend_after_commit_then_drop_is_idempotent(dialect, kind):
    emulator = PhonelyEmulator(faults="drop=1.0", dialect=dialect)
    batch = adds("+14155550100", "+14155550101") if kind == "add" else removes("+14155550142")

    async def body(adapter: PhonelyAdapter):
        with pytest.raises(RetryableError):
            await adapter.send(TARGET, batch)
        no_faults(emulator)
        return await settle(adapter, TARGET, batch)

    outcomes = run(emulator, body)
    assert {o.status for o in outcomes} <= {"already", "done"}
    assert emulator.counters.faults == {"drop": 1}
    expected = (
        ["+14155550142", "+919876543210", "+14155550100", "+14155550101"]
        if kind == "add"
        else ["+919876543210"]
    )
    assert stored(emulator) == expected


# -- unknown agents and the credential gate ----------------------------------------------


def test_an_unknown_agent_is_named_in_every_dialect(dialect):
    """An agentId the account lacks: auto-created (default), or a 401 (the gate closes:
    one request), 404 or 400 (that target only); the message names the agent and never
    holds the uid a dialect echoes."""
    emulator = PhonelyEmulator(dialect=dialect)
    how = emulator.quirks.unknown_agent

    async def body(adapter: PhonelyAdapter):
        out = []
        for target in (TYPO, TARGET):
            try:
                out.append(await adapter.refresh(target))
            except ProviderError as exc:
                out.append(exc)
        return out

    typo, support = run(emulator, body)
    if how == "create":
        assert typo == [] and len(support) == 2
        return
    assert isinstance(typo, ProviderError) and typo.status == int(how)
    assert "check api_key, uid and that agent 'typo-bot' exists" in str(typo)
    assert not any(s in str(typo) for s in SECRETS)
    if how == "401":
        assert isinstance(typo, AuthError)  # before proof, a 401 closes the gate
        assert isinstance(support, AuthError)
        assert emulator.counters.requests == {LIST: 1}  # one request, nothing after it
    else:
        assert type(typo) is ProviderError
        assert len(support) == 2  # other agents go on
        assert emulator.counters.requests == {LIST: 2}


def test_after_proof_a_401_fails_only_that_agent():
    """Once a request has shown the credential works, a 401 for one agent is that
    target's ProviderError (naming the agent), not the instance's AuthError."""
    emulator = PhonelyEmulator(dialect="strict")

    async def body(adapter: PhonelyAdapter):
        await adapter.refresh(TARGET)
        with pytest.raises(ProviderError) as typo:
            await adapter.send(TYPO, adds("+14155550100"))
        entries = await adapter.refresh(TARGET)
        return typo.value, entries

    error, entries = run(emulator, body)
    assert type(error) is ProviderError and error.status == 401
    assert "'typo-bot'" in str(error) and "check api_key, uid" in str(error)
    assert len(entries) == 2
    assert emulator.counters.requests == {LIST: 2, ADD: 1}


def test_four_agents_with_a_wrong_key_send_one_request():
    emulator = PhonelyEmulator()
    targets = [
        Target(f"phonely/a{i}", "phonely", "phonely", (("agent_id", f"a{i}"),)) for i in range(4)
    ]

    async def body(adapter: PhonelyAdapter):
        return await asyncio.gather(*(adapter.refresh(t) for t in targets), return_exceptions=True)

    errors = run(emulator, body, credentials={"api_key": "wrong-key", "uid": "sandbox-uid"})
    assert all(isinstance(e, AuthError) for e in errors)
    assert emulator.counters.to_dict()["total_requests"] == 1


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        {"api_key": "wrong-key", "uid": "sandbox-uid"},
        {"api_key": "sandbox-phonely-key", "uid": "other-uid"},
    ],
    ids=["bad-key", "foreign-uid"],
)
@pytest.mark.parametrize("verb", ["refresh", "add", "remove"])
def test_bad_credentials_fail_after_exactly_one_request(dialect, credentials, verb):
    emulator = PhonelyEmulator(dialect=dialect)

    async def body(adapter: PhonelyAdapter):
        if verb == "refresh":
            return await adapter.refresh(TARGET)
        batch = adds("+14155550100") if verb == "add" else removes("+14155550142")
        return await adapter.send(TARGET, batch)

    with pytest.raises(AuthError) as caught:
        run(emulator, body, credentials=credentials)
    assert caught.value.status == 401
    assert caught.value.provider == "phonely-main"
    assert "agent-block-list" in caught.value.endpoint
    for secret in (*credentials.values(), *SECRETS):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
    c = emulator.counters.to_dict()
    assert (c["total_requests"], c["auth_failures"]) == (1, 1)
    assert c["repeated_after_auth_failure"] == 0


def test_rate_limit_surfaces_retry_after(dialect):
    emulator = PhonelyEmulator(faults="429=1.0,retry_after=7", dialect=dialect)
    with pytest.raises(RetryableError) as caught:
        run(emulator, lambda a: a.send(TARGET, adds("+14155550100")))
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert emulator.counters.requests == {ADD: 1}


def test_server_error_is_retryable(dialect):
    emulator = PhonelyEmulator(faults="5xx=1.0", dialect=dialect)
    with pytest.raises(RetryableError) as caught:
        run(emulator, lambda a: a.refresh(TARGET))
    assert caught.value.status == 500
    assert "Server error" in str(caught.value)


def test_connection_reset_is_retryable():
    emulator = PhonelyEmulator(faults="reset=1.0")
    with pytest.raises(RetryableError):
        run(emulator, lambda a: a.refresh(TARGET))


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (
            b'{"error": "Bad Request", "message": "Invalid request body or numbers parameter"}',
            "application/json",
        ),
        (b'{"message": "Invalid request body or numbers parameter"}', "application/json"),
        (b'{"error": "Invalid request body or numbers parameter"}', "application/json"),
        (b"Invalid request body or numbers parameter", "text/plain"),
    ],
    ids=["error-message", "message", "error", "text"],
)
def test_a_400_for_the_batch_is_a_provider_error_in_any_shape(content, content_type):
    with pytest.raises(ProviderError) as caught:
        run(Canned(400, content, content_type), lambda a: a.send(TARGET, adds("+14155550100")))
    assert type(caught.value) is ProviderError
    assert caught.value.status == 400
    assert caught.value.endpoint == ADD
    assert caught.value.reason.startswith("Invalid request body or numbers parameter (")


def test_an_error_echoing_the_request_never_shows_the_uid():
    echo = json.dumps(
        {"message": "Invalid request body", "request": {"uid": "sandbox-uid", "agentId": "x"}}
    ).encode()
    with pytest.raises(ProviderError) as caught:
        run(Canned(422, echo, "text/plain"), lambda a: a.send(TARGET, adds("+14155550100")))
    assert "sandbox-uid" not in str(caught.value)
    with pytest.raises(ProviderError) as caught:
        run(Canned(400, b"no uid=sandbox-uid", "text/plain"), lambda a: a.refresh(TARGET))
    assert "sandbox-uid" not in str(caught.value) and "[redacted]" in str(caught.value)


HTML = b"<!DOCTYPE html><html><body><h1>Something went wrong</h1></body></html>"


@pytest.mark.parametrize(
    ("status", "content", "content_type"),
    [
        (200, HTML, "text/html"),
        (200, b'{"blocklist": []}', "application/json"),
        (200, b'{"blockList": "+14155550142"}', "application/json"),
        (200, b'{"blockList": [14155550142]}', "application/json"),
        (200, b"[]", "application/json"),
        (404, HTML, "text/html"),
        (302, b"", "text/html"),
    ],
    ids=["html", "missing-field", "not-a-list", "not-strings", "array", "404-html", "redirect"],
)
def test_malformed_list_replies_are_provider_errors(status, content, content_type):
    with pytest.raises(ProviderError) as caught:
        run(Canned(status, content, content_type), lambda a: a.refresh(TARGET))
    error = caught.value
    assert type(error) is ProviderError
    assert (error.provider, error.endpoint, error.status) == ("phonely-main", LIST, status)
    assert f"phonely-main: {LIST} (HTTP {status})" in str(error)


@pytest.mark.parametrize(
    "reply",
    [
        HTML,
        b'{"message": "Block list updated successfully"}',
        b'{"message": "ok", "added": [], "failed": [{"number": "+14155550100"}]}',
        b'{"message": "ok", "added": [], "failed": "none"}',
        b'"ok"',
    ],
    ids=["html", "no-added", "failed-without-reason", "failed-not-a-list", "string"],
)
def test_malformed_write_replies_are_provider_errors(reply):
    content_type = "text/html" if reply is HTML else "application/json"
    with pytest.raises(ProviderError) as caught:
        run(Canned(200, reply, content_type), lambda a: a.send(TARGET, adds("+14155550100")))
    assert type(caught.value) is ProviderError
    assert (caught.value.endpoint, caught.value.status) == (ADD, 200)


def test_missing_credential_is_named_not_shown():
    from reconciler.errors import CredentialError

    with pytest.raises(CredentialError, match="'uid'"):
        run(PhonelyEmulator(), lambda a: a.refresh(TARGET), credentials={"api_key": "k"})


def test_repr_hides_credentials():
    adapter = PhonelyAdapter("phonely-main", httpx.AsyncClient(), CREDS)
    assert "sandbox" not in repr(adapter)


# -- concurrency -------------------------------------------------------------------


@pytest.mark.parametrize(("option", "limit"), [(None, 4), (2, 2), (50, 4)])
def test_never_more_requests_in_flight_than_the_limit(option, limit):
    emulator = PhonelyEmulator(faults="latency=20ms")
    options = {"concurrency": option} if option else None

    async def body(adapter: PhonelyAdapter):
        await asyncio.gather(*(adapter.refresh(TARGET) for _ in range(12)))

    run(emulator, body, options=options)
    assert emulator.counters.requests == {LIST: 12}
    assert emulator.counters.max_in_flight == limit


# -- in-process (base_url: sandbox) ------------------------------------------------


def test_same_behaviour_through_the_in_process_transport():
    """``base_url: sandbox`` runs the emulator through EmulatorTransport: no port."""
    from reconciler.sandbox.base import EmulatorTransport

    emulator = PhonelyEmulator()

    async def main():
        transport = EmulatorTransport(emulator)
        async with httpx.AsyncClient(
            base_url="https://app.phonely.ai", transport=transport, verify=TLS
        ) as client:
            adapter = PhonelyAdapter("phonely-main", client, CREDS)
            removed = await adapter.send(TARGET, removes("+919876543210"))
            added = await adapter.send(TARGET, adds("+14155550100", "+14155550142"))
            return removed, added, await adapter.refresh(TARGET)

    removed, added, entries = asyncio.run(main())
    assert statuses(removed) == [("+919876543210", "done", None)]
    assert [o.status for o in added.outcomes] == ["done", "already"]
    assert [e.number for e in entries] == ["+14155550142", "+14155550100"]
    assert emulator.counters.limit_violations == {}
