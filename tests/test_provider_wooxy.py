"""WooxyAdapter against the Wooxy emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from reconciler.domain import Batch, LiveEntry, Op, Target
from reconciler.errors import AuthError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.wooxy import WooxyAdapter
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.wooxy import WooxyEmulator

T = TypeVar("T")
TOKEN = "sandbox-wooxy-token"
NOW = 1_795_000_000.0
CREATED = "2026-11-18 11:06:40"
TARGET = Target(name="wooxy/account", provider="wooxy", type="wooxy")
FIND = "POST /v3/phone-blacklist/find"
ADD = "POST /v3/phone-blacklist/add"
REMOVE = "POST /v3/phone-blacklist/remove"


class ScriptedEmulator(WooxyEmulator):
    """The real emulator, plus two test hooks: canned replies for the next API requests,
    and a callback run after each find (to change the list while it is being read)."""

    replies: list[httpx.Response] = []
    after_find: Callable[[dict[str, Any]], None] | None = None

    def route(self, request: httpx.Request) -> httpx.Response:
        if self.replies:
            return self.replies.pop(0)
        response = super().route(request)
        if self.after_find and request.url.path.endswith("/find"):
            self.after_find(self.state["entries"])
        return response


class Served:
    """One emulator on loopback shared by this module's tests, reset for each test."""

    def __init__(self, emulator: ScriptedEmulator, url: str) -> None:
        self.emulator = emulator
        self.url = url

    def prepare(self, seed: bool = False, faults: str | None = None) -> Served:
        emu = self.emulator
        emu.clock = lambda: NOW
        emu.faults = Faults(FaultSpec.parse(faults))
        emu.replies = []
        emu.after_find = None
        emu.reset(seed)
        return self

    def fill(self, numbers: list[str], reject_type: str = "import") -> None:
        entries = self.emulator.state["entries"]
        for n in numbers:
            entries[n] = {"rejectType": reject_type, "createdAt": CREATED}

    def numbers(self) -> dict[str, str]:
        return {n: r["rejectType"] for n, r in self.emulator.state["entries"].items()}

    @property
    def counters(self) -> dict[str, Any]:
        return self.emulator.counters.to_dict()

    def run(
        self,
        use: Callable[[WooxyAdapter], Awaitable[T]],
        token: str = TOKEN,
        options: dict[str, Any] | None = None,
    ) -> T:
        async def main() -> T:
            async with httpx.AsyncClient(base_url=self.url) as client:
                adapter = WooxyAdapter("wooxy-main", client, {"access_token": token}, options)
                return await use(adapter)

        return asyncio.run(main())


@pytest.fixture(scope="module")
def server(loopback) -> Served:
    emulator = ScriptedEmulator(seed=False, clock=lambda: NOW)
    return Served(emulator, loopback.plug(emulator))


@pytest.fixture
def wooxy(server: Served) -> Served:
    return server.prepare()


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1415{i:07d}" for i in range(start, start + n)]


def adds(items: list[str], reject_type: str | None = None) -> list[Op]:
    attrs = (("reject_type", reject_type),) if reject_type else ()
    return [Op("add", n, attrs=attrs) for n in items]


def removes(items: list[str]) -> list[Op]:
    return [Op("remove", n) for n in items]


def refresh(adapter: WooxyAdapter) -> Awaitable[list[LiveEntry]]:
    return adapter.refresh(TARGET)


# -- declaration -------------------------------------------------------------------------


def test_capabilities_and_registry() -> None:
    caps = WooxyAdapter.capabilities
    assert adapter_class("wooxy") is WooxyAdapter
    assert (caps.batch_limit, caps.concurrency_limit) == (100, 10)
    assert caps.can_list and caps.remove_one_per_call and not caps.native_expiry
    assert caps.remove_by == "number"
    assert caps.credential_keys == ("access_token",)
    assert caps.attribute_fields == ("reject_type",)
    assert caps.default_base_url == "https://api.wooxy.com"
    assert WooxyAdapter.target_name("wooxy", {}) == "wooxy/account"


def test_scope_problems_checks_reject_type() -> None:
    assert WooxyAdapter.scope_problems("reject_type", "invalid") is None
    problem = WooxyAdapter.scope_problems("reject_type", "spam")
    assert problem and "import, invalid, unsubscribe, undeliverable" in problem


# -- refresh -----------------------------------------------------------------------------


def test_refresh_empty_list_takes_one_request(wooxy: Served) -> None:
    assert wooxy.run(refresh) == []
    assert wooxy.counters["requests"] == {FIND: 1}


def test_refresh_one_entry(wooxy: Served) -> None:
    wooxy.fill(["+14155550123"], "undeliverable")
    assert wooxy.run(refresh) == [
        LiveEntry("+14155550123", "+14155550123", (("reject_type", "undeliverable"),))
    ]


def test_refresh_marks_seeded_opt_outs(server: Served) -> None:
    server.prepare(seed=True)
    live = {e.number: e for e in server.run(refresh)}
    assert set(live) == {"+919812300001", "+14155550199", "+919876543210"}
    assert live["+919812300001"].opt_out  # rejectType unsubscribe: the user's own opt-out
    assert not live["+14155550199"].opt_out
    assert live["+919876543210"].attrs == (("reject_type", "invalid"),)


def test_refresh_250_entries_in_three_pages(wooxy: Served) -> None:
    wooxy.fill(numbers(250))
    live = wooxy.run(refresh)
    assert [e.number for e in live] == numbers(250)
    assert wooxy.counters["requests"] == {FIND: 3}


def test_refresh_10000_entries_within_the_concurrency_limit(wooxy: Served) -> None:
    wooxy.fill(numbers(10_000))
    live = wooxy.run(refresh)
    assert len({e.number for e in live}) == len(live) == 10_000
    counters = wooxy.counters
    assert counters["requests"] == {FIND: 100}
    assert counters["max_in_flight"] <= 10
    assert counters["limit_violations"] == {}


def test_refresh_normalises_numbers_stored_in_other_formats(wooxy: Served) -> None:
    wooxy.fill(["919812300002", "+1 (415) 555-0123", "0044 20 7946 0958", "+91-98765-43211"])
    live = wooxy.run(refresh)
    assert [e.number for e in live] == [
        "+919812300002",
        "+14155550123",
        "+442079460958",
        "+919876543211",
    ]
    assert live[1].raw == "+1 (415) 555-0123"


def test_refresh_deduplicates_when_entries_shift_between_pages(wooxy: Served) -> None:
    """Five numbers put at the head of the list after the first page shift every later
    page by five: the overlap is read twice but reported once."""
    wooxy.fill(numbers(250))
    done = []

    def prepend(entries: dict[str, Any]) -> None:
        if not done:
            done.append(True)
            head = {n: {"rejectType": "import", "createdAt": CREATED} for n in numbers(5, 900)}
            shifted = head | entries
            entries.clear()
            entries.update(shifted)

    wooxy.emulator.after_find = prepend
    live = wooxy.run(lambda a: a.refresh(TARGET))
    got = [e.number for e in live]
    assert len(got) == len(set(got))
    assert set(numbers(250)) <= set(got)


def test_refresh_reads_on_when_the_list_grows(wooxy: Served) -> None:
    wooxy.fill(numbers(250))
    grown = []

    def grow(entries: dict[str, Any]) -> None:
        if not grown:
            grown.append(True)
            for n in numbers(150, 1000):
                entries[n] = {"rejectType": "import", "createdAt": CREATED}

    wooxy.emulator.after_find = grow
    live = wooxy.run(refresh)
    assert [e.number for e in live] == numbers(250) + numbers(150, 1000)
    assert wooxy.counters["requests"] == {FIND: 4}


# -- batches and send ------------------------------------------------------------------


def test_batches_at_the_limit_and_one_over(wooxy: Served) -> None:
    adapter = WooxyAdapter("wooxy-main", httpx.AsyncClient(), {"access_token": TOKEN})
    at_limit = adapter.batches(TARGET, [], adds(numbers(100)), {})
    assert [len(b.ops) for b in at_limit] == [100]
    one_over = adapter.batches(TARGET, removes(numbers(3)), adds(numbers(101)), {})
    assert [(b.phase, len(b.ops)) for b in one_over] == [(0, 1), (0, 1), (0, 1), (1, 100), (1, 1)]


def test_add_100_in_one_request(wooxy: Served) -> None:
    batch = Batch(adds(numbers(100), "invalid"), phase=1)
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert [o.status for o in result.outcomes] == ["done"] * 100
    assert [o.op for o in result.outcomes] == batch.ops
    assert set(wooxy.numbers().values()) == {"invalid"}
    counters = wooxy.counters
    assert counters["requests"] == {ADD: 1}
    assert counters["max_numbers"][ADD] == 100
    assert counters["limit_violations"] == {}


def test_add_101_is_split_by_batches(wooxy: Served) -> None:
    async def apply(adapter: WooxyAdapter) -> list[str]:
        out = []
        for batch in adapter.batches(TARGET, [], adds(numbers(101)), {}):
            out += [o.status for o in (await adapter.send(TARGET, batch)).outcomes]
        return out

    assert wooxy.run(apply) == ["done"] * 101
    assert len(wooxy.numbers()) == 101
    assert wooxy.counters["requests"] == {ADD: 2}
    assert wooxy.counters["limit_violations"] == {}


def test_send_splits_an_oversized_batch_itself(wooxy: Served) -> None:
    batch = Batch(adds(numbers(150)), phase=1)
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert all(o.status == "done" for o in result.outcomes)
    assert wooxy.counters["requests"] == {ADD: 2}
    assert wooxy.counters["limit_violations"] == {}


def test_add_sends_the_reject_type_default_import(wooxy: Served) -> None:
    batch = Batch(adds(["+14155550123"]) + adds(["+14155550124"], "undeliverable"))
    wooxy.run(lambda a: a.send(TARGET, batch))
    assert wooxy.numbers() == {"+14155550123": "import", "+14155550124": "undeliverable"}


def test_add_of_a_listed_number_is_done_and_keeps_its_reject_type(server: Served) -> None:
    server.prepare(seed=True)
    result = server.run(lambda a: a.send(TARGET, Batch(adds(["+919812300001"], "import"), phase=1)))
    assert result.outcomes[0].ok
    assert server.numbers()["+919812300001"] == "unsubscribe"


def test_invalid_numbers_fail_and_the_rest_is_resent(wooxy: Served) -> None:
    ops = adds(["+14155550123", "+0123", "+14155550124", "12345"])
    result = wooxy.run(lambda a: a.send(TARGET, Batch(ops, phase=1)))
    assert [(o.op, o.status, o.reason) for o in result.outcomes] == [
        (ops[0], "done", None),
        (ops[1], "failed", "+0123 is not a valid E.164 phone number"),
        (ops[2], "done", None),
        (ops[3], "failed", "12345 is not a valid E.164 phone number"),
    ]
    assert wooxy.numbers() == {"+14155550123": "import", "+14155550124": "import"}
    assert wooxy.counters["requests"] == {ADD: 2}


def test_a_batch_of_only_invalid_numbers_takes_one_request(wooxy: Served) -> None:
    result = wooxy.run(lambda a: a.send(TARGET, Batch(adds(["+0123"]), phase=1)))
    assert result.outcomes[0].status == "failed"
    assert wooxy.counters["requests"] == {ADD: 1}


def test_numbers_refused_on_the_resend_too(wooxy: Served) -> None:
    """A server that names one invalid number per reply: the first named fails, the
    rest is re-sent once; what that names fails too, and the others stay retryable."""
    ops = adds(["+14155550123", "+0123", "+0456"])
    wooxy.emulator.replies = [
        httpx.Response(
            400, json={"result": False, "errors": [f"{n} is not a valid E.164 phone number"]}
        )
        for n in ("+0123", "+0456")
    ]
    result = wooxy.run(lambda a: a.send(TARGET, Batch(ops, phase=1)))
    assert [o.status for o in result.outcomes] == ["retryable", "failed", "failed"]
    assert "+0456 is not a valid E.164 phone number" in (result.outcomes[0].reason or "")
    assert wooxy.counters["requests"] == {ADD: 2}
    assert wooxy.numbers() == {}


def test_whole_request_refusal_is_a_provider_error(wooxy: Served) -> None:
    batch = Batch(adds(["+14155550123"], "spam"), phase=1)
    with pytest.raises(ProviderError) as caught:
        wooxy.run(lambda a: a.send(TARGET, batch))
    assert not isinstance(caught.value, RetryableError | AuthError)
    assert caught.value.status == 400
    assert caught.value.endpoint == ADD
    assert "Allowed reject types are" in str(caught.value)
    assert wooxy.counters["requests"] == {ADD: 1}


def test_remove_one_per_request(server: Served) -> None:
    server.prepare(seed=True)
    batch = Batch(removes(["+14155550199", "+919876543210", "+14155550000"]))
    result = server.run(lambda a: a.send(TARGET, batch))
    assert [o.status for o in result.outcomes] == ["done", "done", "done"]
    assert server.numbers() == {"+919812300001": "unsubscribe"}
    assert server.counters["requests"] == {REMOVE: 3}
    assert server.counters["max_numbers"][REMOVE] == 1


def test_remove_failures_are_per_number(wooxy: Served) -> None:
    wooxy.fill(["+14155550123"])
    batch = Batch(removes(["+14155550123", "14155550124"]))
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert [(o.status, o.reason) for o in result.outcomes] == [
        ("done", None),
        ("failed", "14155550124 is not a valid E.164 phone number"),
    ]


def test_update_is_remove_then_add(server: Served) -> None:
    """Add never updates an existing entry, so a changed reject type is a remove (phase 0)
    then an add (phase 1)."""
    server.prepare(seed=True)

    async def apply(adapter: WooxyAdapter) -> None:
        ops = adds(["+14155550199"], "undeliverable")
        for batch in adapter.batches(TARGET, removes(["+14155550199"]), ops, {}):
            await adapter.send(TARGET, batch)

    server.run(apply)
    assert server.numbers()["+14155550199"] == "undeliverable"


def test_resend_after_commit_then_drop_is_idempotent(wooxy: Served) -> None:
    batch = Batch(adds(numbers(3)), phase=1)
    wooxy.emulator.faults = Faults(FaultSpec.parse("drop=1.0"))
    with pytest.raises(RetryableError):
        wooxy.run(lambda a: a.send(TARGET, batch))
    assert list(wooxy.numbers()) == numbers(3)  # committed, answer lost
    wooxy.emulator.faults = Faults(FaultSpec())
    result = wooxy.run(lambda a: a.send(TARGET, batch))
    assert all(o.ok for o in result.outcomes)
    assert list(wooxy.numbers()) == numbers(3)  # no duplicates
    assert [e.number for e in wooxy.run(refresh)] == numbers(3)

    remove = Batch(removes(numbers(1)))
    wooxy.emulator.faults = Faults(FaultSpec.parse("drop=1.0"))
    with pytest.raises(RetryableError):
        wooxy.run(lambda a: a.send(TARGET, remove))
    wooxy.emulator.faults = Faults(FaultSpec())
    assert wooxy.run(lambda a: a.send(TARGET, remove)).outcomes[0].ok
    assert list(wooxy.numbers()) == numbers(2, 1)


# -- errors ------------------------------------------------------------------------------


def test_bad_token_is_an_auth_error_after_one_request(wooxy: Served) -> None:
    with pytest.raises(AuthError) as caught:
        wooxy.run(refresh, token="not-the-token")
    assert "Invalid authorization token!" in str(caught.value)
    assert caught.value.status == 401
    assert wooxy.counters["total_requests"] == 1

    wooxy.prepare()
    with pytest.raises(AuthError):
        wooxy.run(lambda a: a.send(TARGET, Batch(adds(numbers(50)))), token="not-the-token")
    assert wooxy.counters["total_requests"] == 1


def test_in_body_auth_error_under_200_never_shows_the_token(wooxy: Served) -> None:
    error = f"no matches found for access token {TOKEN}"
    wooxy.emulator.replies = [httpx.Response(200, json={"result": False, "errors": [error]})]
    with pytest.raises(AuthError) as caught:
        wooxy.run(refresh)
    assert TOKEN not in str(caught.value)
    assert "no matches found for access token [redacted]" in str(caught.value)
    assert TOKEN not in repr(WooxyAdapter("w", httpx.AsyncClient(), {"access_token": TOKEN}))


@pytest.mark.parametrize(
    "message", ["user 42 not enabled", "no data found for key 42", "access token check failed"]
)
def test_other_documented_auth_errors(wooxy: Served, message: str) -> None:
    wooxy.emulator.replies = [httpx.Response(400, json={"result": False, "errors": [message]})]
    with pytest.raises(AuthError):
        wooxy.run(lambda a: a.send(TARGET, Batch(removes(["+14155550123"]))))


def test_rate_limit_surfaces_retry_after(wooxy: Served) -> None:
    wooxy.emulator.faults = Faults(FaultSpec.parse("429=1.0,retry_after=3"))
    with pytest.raises(RetryableError) as caught:
        wooxy.run(lambda a: a.send(TARGET, Batch(adds(numbers(2)), phase=1)))
    assert caught.value.status == 429
    assert caught.value.retry_after == 3.0


def test_in_body_throttling_under_200_is_retryable(wooxy: Served) -> None:
    error = "Too many concurrent requests"
    wooxy.emulator.replies = [httpx.Response(200, json={"result": False, "errors": [error]})]
    with pytest.raises(RetryableError):
        wooxy.run(refresh)


def test_server_error_is_retryable(wooxy: Served) -> None:
    wooxy.emulator.faults = Faults(FaultSpec.parse("5xx=1.0"))
    with pytest.raises(RetryableError) as caught:
        wooxy.run(refresh)
    assert caught.value.status == 500
    assert "Internal server error" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (httpx.Response(200, html="<html><body>Gateway</body></html>"), "not JSON"),
        (httpx.Response(200, json={"ok": True}), "no boolean 'result'"),
        (httpx.Response(200, json={"result": True, "data": []}), "totalCount"),
        (httpx.Response(200, json={"result": True, "data": "x", "totalCount": 1}), "data"),
        (
            httpx.Response(200, json={"result": True, "data": [{"phone": 1}], "totalCount": 1}),
            "phoneNumber",
        ),
        (httpx.Response(200, json={"result": False}), "without errors"),
        (httpx.Response(404, text="Not Found"), "not JSON"),
        (httpx.Response(302, json={"result": True}), "error status"),
    ],
)
def test_malformed_replies_name_instance_endpoint_and_status(
    wooxy: Served, reply: httpx.Response, expected: str
) -> None:
    wooxy.emulator.replies = [reply]
    with pytest.raises(ProviderError) as caught:
        wooxy.run(refresh)
    error = caught.value
    assert not isinstance(error, RetryableError | AuthError)
    assert (error.provider, error.endpoint, error.status) == ("wooxy-main", FIND, reply.status_code)
    assert expected in str(error)
    assert str(error).startswith(f"wooxy-main: {FIND} (HTTP {reply.status_code})")


def test_html_gateway_error_is_retryable(wooxy: Served) -> None:
    wooxy.emulator.replies = [httpx.Response(502, html="<html>Bad gateway</html>")]
    with pytest.raises(RetryableError) as caught:
        wooxy.run(lambda a: a.send(TARGET, Batch(adds(numbers(1)))))
    assert caught.value.status == 502


def test_missing_credential_sends_nothing(wooxy: Served) -> None:
    with pytest.raises(AuthError):
        wooxy.run(refresh, token="")
    assert wooxy.counters["total_requests"] == 0


# -- concurrency -------------------------------------------------------------------------


def test_forty_concurrent_removes_stay_within_ten_in_flight(wooxy: Served) -> None:
    wooxy.fill(numbers(40))
    wooxy.emulator.faults = Faults(FaultSpec.parse("latency=20ms"))

    async def use(adapter: WooxyAdapter) -> list[str]:
        sends = [adapter.send(TARGET, Batch([op])) for op in removes(numbers(40))]
        results = await asyncio.gather(*sends)
        return [r.outcomes[0].status for r in results]

    assert wooxy.run(use) == ["done"] * 40
    counters = wooxy.counters
    assert counters["requests"] == {REMOVE: 40}
    assert 1 < counters["max_in_flight"] <= 10
    assert counters["limit_violations"] == {}
    assert wooxy.numbers() == {}


def test_refresh_and_sends_share_the_limit(wooxy: Served) -> None:
    wooxy.fill(numbers(2000))
    wooxy.emulator.faults = Faults(FaultSpec.parse("latency=10ms"))

    async def use(adapter: WooxyAdapter) -> int:
        sends = [adapter.send(TARGET, Batch(adds([n]), phase=1)) for n in numbers(20, 5000)]
        live, *_ = await asyncio.gather(adapter.refresh(TARGET), *sends)
        return len(live)

    assert wooxy.run(use) >= 2000
    assert wooxy.counters["max_in_flight"] <= 10
    assert wooxy.counters["limit_violations"] == {}


def test_configured_concurrency_lowers_the_limit(wooxy: Served) -> None:
    wooxy.fill(numbers(1000))
    wooxy.emulator.faults = Faults(FaultSpec.parse("latency=10ms"))
    wooxy.run(refresh, options={"concurrency": 3})
    assert wooxy.counters["max_in_flight"] <= 3
