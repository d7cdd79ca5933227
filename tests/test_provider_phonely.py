"""PhonelyAdapter against the Phonely emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from loopback import Loopback, module_fixture

from reconciler.domain import Batch, Op, Target
from reconciler.errors import AuthError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.phonely import PhonelyAdapter
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.phonely import PhonelyEmulator, number_key

CREDS = {"api_key": "sandbox-phonely-key", "uid": "sandbox-uid"}
TARGET = Target(
    name="phonely/support-bot",
    provider="phonely",
    type="phonely",
    scope=(("agent_id", "support-bot"),),
)
LIST = "GET /api/agent-block-list"
ADD = "POST /api/agent-block-list"
REMOVE = "DELETE /api/agent-block-list"

# built once: a new client would otherwise load the CA bundle (~40 ms) for plain http
TLS = ssl.create_default_context()


LOOPBACK = Loopback("phonely")
_loopback = module_fixture(LOOPBACK)  # one server for the module; tests plug emulators in


def run(
    emulator: PhonelyEmulator,
    body: Callable[[PhonelyAdapter], Awaitable[Any]],
    credentials: dict[str, str] = CREDS,
    options: dict[str, Any] | None = None,
) -> Any:
    """Serve the emulator on loopback and run ``body(adapter)`` in a fresh event loop."""

    url = LOOPBACK.plug(emulator)

    async def main() -> Any:
        async with httpx.AsyncClient(base_url=url, timeout=5, verify=TLS) as client:
            adapter = PhonelyAdapter("phonely-main", client, credentials, options)
            return await body(adapter)

    return asyncio.run(main())


def populate(emulator: PhonelyEmulator, numbers: list[str], agent: str = "support-bot") -> None:
    emulator.state["agents"][agent] = {number_key(n): n for n in numbers}


def stored(emulator: PhonelyEmulator, agent: str = "support-bot") -> list[str]:
    return list(emulator.state["agents"].get(agent, {}).values())


def adds(*numbers: str) -> Batch:
    return Batch([Op("add", n) for n in numbers], phase=1)


def removes(*numbers: str) -> Batch:
    return Batch([Op("remove", n) for n in numbers], phase=0)


def statuses(result) -> list[tuple[str, str, str | None]]:
    return [(o.op.number, o.status, o.reason) for o in result.outcomes]


def no_faults(emulator: PhonelyEmulator) -> None:
    emulator.faults = Faults(FaultSpec())


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
    assert PhonelyAdapter.target_name("phonely", {"agent_id": "support-bot"}) == TARGET.name


# -- refresh -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 250, 10_000])
def test_refresh_reads_the_whole_list_in_one_request(size):
    emulator = PhonelyEmulator(seed=False)
    numbers = [f"+1415{i:07d}" for i in range(size)]
    if numbers:
        populate(emulator, numbers)
    entries = run(emulator, lambda a: a.refresh(TARGET))
    assert [e.number for e in entries] == numbers
    assert all(e.raw == e.number and not e.opt_out for e in entries)
    assert emulator.counters.requests == {LIST: 1}


def test_refresh_of_the_seeded_agent():
    entries = run(PhonelyEmulator(), lambda a: a.refresh(TARGET))
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


def test_remove_sends_the_forms_the_provider_stores():
    """A number held as "+1 415-555-0142" is removed by that form, not only by E.164."""
    emulator = Recording(seed=False)
    populate(emulator, ["+1 415-555-0142", "+919876543210"])

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


def test_batch_of_exactly_the_limit_is_one_request():
    emulator = Recording(seed=False)
    numbers = [f"+9198765{i:05d}" for i in range(100)]

    async def body(adapter: PhonelyAdapter):
        batches = adapter.batches(TARGET, [], [Op("add", n) for n in numbers], {})
        assert [len(b.ops) for b in batches] == [100]
        return await adapter.send(TARGET, batches[0])

    result = run(emulator, body)
    assert [o.status for o in result.outcomes] == ["done"] * 100
    assert emulator.counters.requests == {ADD: 1}
    assert emulator.counters.max_numbers == {ADD: 100}
    # on the wire: E.164 with "+", as given
    assert emulator.bodies[0][2]["numbers"] == numbers
    assert stored(emulator) == numbers


def test_one_over_the_limit_is_two_requests_each_way():
    emulator = PhonelyEmulator(seed=False)
    old = [f"+1415{i:07d}" for i in range(101)]
    new = [f"+1650{i:07d}" for i in range(101)]
    populate(emulator, old)

    async def body(adapter: PhonelyAdapter):
        batches = adapter.batches(
            TARGET, [Op("remove", n) for n in old], [Op("add", n) for n in new], {}
        )
        assert [(b.phase, len(b.ops)) for b in batches] == [(0, 100), (0, 1), (1, 100), (1, 1)]
        return [await adapter.send(TARGET, b) for b in batches]

    results = run(emulator, body)
    assert all(o.status == "done" for r in results for o in r.outcomes)
    assert emulator.counters.requests == {REMOVE: 2, ADD: 2}
    assert emulator.counters.max_numbers == {REMOVE: 100, ADD: 100}
    assert stored(emulator) == new


def test_per_number_results():
    """added -> done; "already in" / "not found" -> already; other reasons -> failed."""
    emulator = PhonelyEmulator()

    async def body(adapter: PhonelyAdapter):
        added = await adapter.send(TARGET, adds("+14155550100", "+14155550142", "+123"))
        removed = await adapter.send(TARGET, removes("+919876543210", "+14155550199"))
        return added, removed

    added, removed = run(emulator, body)
    assert statuses(added) == [
        ("+14155550100", "done", None),
        ("+14155550142", "already", None),
        ("+123", "failed", "Invalid phone number format"),
    ]
    assert statuses(removed) == [
        ("+919876543210", "done", None),
        ("+14155550199", "already", None),
    ]
    assert stored(emulator) == ["+14155550142", "+14155550100"]


def test_injected_partial_failures_are_retryable_and_not_applied():
    emulator = PhonelyEmulator(faults="partial=1.0")

    async def body(adapter: PhonelyAdapter):
        added = await adapter.send(TARGET, adds("+14155550100", "+14155550142"))
        removed = await adapter.send(TARGET, removes("+919876543210"))
        return added, removed

    added, removed = run(emulator, body)
    assert statuses(added) == [
        ("+14155550100", "retryable", "Temporary failure, please retry"),
        ("+14155550142", "already", None),
    ]
    assert statuses(removed) == [("+919876543210", "retryable", "Temporary failure, please retry")]
    assert stored(emulator) == ["+14155550142", "+919876543210"]
    assert emulator.counters.faults == {"partial": 2}


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
        ("+14155550177", "failed", "Number is reserved"),
    ]


class Forgetful(PhonelyEmulator):
    def route(self, request: httpx.Request) -> httpx.Response:
        super().route(request)
        return httpx.Response(200, json={"message": "ok", "added": [], "failed": []})


def test_a_number_the_reply_does_not_mention_fails():
    result = run(Forgetful(), lambda a: a.send(TARGET, adds("+14155550100")))
    assert statuses(result) == [("+14155550100", "failed", "not reported by Phonely")]


@pytest.mark.parametrize("kind", ["add", "remove"])
def test_resend_after_commit_then_drop_is_idempotent(kind):
    emulator = PhonelyEmulator(faults="drop=1.0")
    batch = adds("+14155550100", "+14155550101") if kind == "add" else removes("+14155550142")

    async def body(adapter: PhonelyAdapter):
        with pytest.raises(RetryableError):
            await adapter.send(TARGET, batch)
        no_faults(emulator)
        return await adapter.send(TARGET, batch)

    result = run(emulator, body)
    assert {o.status for o in result.outcomes} == {"already"}
    assert emulator.counters.faults == {"drop": 1}
    expected = (
        ["+14155550142", "+919876543210", "+14155550100", "+14155550101"]
        if kind == "add"
        else ["+919876543210"]
    )
    assert stored(emulator) == expected


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        {"api_key": "wrong-key", "uid": "sandbox-uid"},
        {"api_key": "sandbox-phonely-key", "uid": "x"},
    ],
    ids=["bad-key", "foreign-uid"],
)
@pytest.mark.parametrize("verb", ["refresh", "add", "remove"])
def test_bad_credentials_fail_after_exactly_one_request(credentials, verb):
    emulator = PhonelyEmulator()

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
    for secret in credentials.values():
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
    c = emulator.counters.to_dict()
    assert (c["total_requests"], c["auth_failures"]) == (1, 1)
    assert c["repeated_after_auth_failure"] == 0


def test_rate_limit_surfaces_retry_after():
    emulator = PhonelyEmulator(faults="429=1.0,retry_after=7")
    with pytest.raises(RetryableError) as caught:
        run(emulator, lambda a: a.send(TARGET, adds("+14155550100")))
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert emulator.counters.requests == {ADD: 1}


def test_server_error_is_retryable():
    emulator = PhonelyEmulator(faults="5xx=1.0")
    with pytest.raises(RetryableError) as caught:
        run(emulator, lambda a: a.refresh(TARGET))
    assert caught.value.status == 500


def test_connection_reset_is_retryable():
    emulator = PhonelyEmulator(faults="reset=1.0")
    with pytest.raises(RetryableError):
        run(emulator, lambda a: a.refresh(TARGET))


def test_a_400_for_the_batch_is_a_provider_error():
    bad = b'{"error": "Bad Request", "message": "Invalid request body or numbers parameter"}'
    with pytest.raises(ProviderError) as caught:
        run(Canned(400, bad, "application/json"), lambda a: a.send(TARGET, adds("+14155550100")))
    assert type(caught.value) is ProviderError
    assert caught.value.status == 400
    assert caught.value.endpoint == ADD
    assert "Invalid request body or numbers parameter" in str(caught.value)


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
