"""The LOX24 adapter against its emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import math
import ssl
from dataclasses import dataclass

import httpx
import pytest

from reconciler.domain import Batch, LiveEntry, Op, Target
from reconciler.errors import AuthError, CredentialError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.lox24 import NO_ID_REASON, Lox24Adapter
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.lox24 import Lox24Emulator

# one TLS context for all clients: building one per client costs ~90 ms (loopback is http)
TLS = ssl.create_default_context()
TOKEN = "1234567:sandbox-lox24-key"
BAD_TOKEN = "1234567:not-the-key-0123456789"
GROUP = Target(name="lox24/7116", provider="lox24", type="lox24", scope=(("group_id", "7116"),))
EMPTY = Target(name="lox24/7200", provider="lox24", type="lox24", scope=(("group_id", "7200"),))
BIG = Target(name="lox24/8000", provider="lox24", type="lox24", scope=(("group_id", "8000"),))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Sandbox:
    emulator: Lox24Emulator
    url: str
    clock: Clock

    def run(self, make, token: str = TOKEN):
        """Run ``make(adapter)`` (a coroutine factory) with a fresh adapter and client."""

        async def main():
            async with httpx.AsyncClient(base_url=self.url, timeout=5, verify=TLS) as client:
                return await make(Lox24Adapter("lox24", client, {"token": token}))

        return asyncio.run(main())

    def faults(self, spec: str | None) -> None:
        """Inject faults from now on (state kept)."""
        self.emulator.faults = Faults(FaultSpec.parse(spec))

    @property
    def counters(self) -> dict:
        return self.emulator.counters.to_dict()

    def numbers(self, group: int) -> list[str]:
        return [p["phone"] for p in self.emulator.phones_of(group)]


@pytest.fixture
def lox(loopback, tmp_path) -> Sandbox:
    # A fresh emulator per test, plugged into the module's one loopback server.
    clock = Clock()
    emulator = Lox24Emulator(state_path=tmp_path / "state.json", clock=clock)
    return Sandbox(emulator, loopback.plug(emulator), clock)


def adds(numbers) -> Batch:
    return Batch([Op("add", n) for n in numbers], phase=1)


def send(lox: Sandbox, batch: Batch, target: Target = EMPTY, token: str = TOKEN):
    return lox.run(lambda a: a.send(target, batch), token)


def refresh(lox: Sandbox, target: Target = GROUP, token: str = TOKEN) -> list[LiveEntry]:
    return lox.run(lambda a: a.refresh(target), token)


# -- capabilities and scope -----------------------------------------------------------


def test_registered_with_the_agreed_capabilities():
    assert adapter_class("lox24") is Lox24Adapter
    caps = Lox24Adapter.capabilities
    assert (caps.can_list, caps.can_add, caps.can_remove) == (True, True, True)
    assert (caps.batch_limit, caps.concurrency_limit) == (100, 4)
    assert caps.native_expiry is False
    assert (caps.remove_by, caps.remove_one_per_call) == ("provider_id", True)
    assert caps.scope_fields == ("group_id",) and caps.attribute_fields == ()
    assert caps.credential_keys == ("token",)
    assert caps.default_base_url == "https://api.lox24.eu"
    assert caps.wire_format == "E.164 with +"
    assert Lox24Adapter.target_name("lox24", {"group_id": "7116"}) == "lox24/7116"


@pytest.mark.parametrize("value", [7116, "7116", 1])
def test_scope_accepts_positive_group_ids(value):
    assert Lox24Adapter.scope_problems("group_id", value) is None


@pytest.mark.parametrize("value", [0, -3, "0", "07116", "abc", "", True, 7.5, None, "7116 "])
def test_scope_rejects_other_group_ids(value):
    assert "positive integer" in Lox24Adapter.scope_problems("group_id", value)


# -- refresh ------------------------------------------------------------------------


def test_refresh_seeded_group_marks_the_users_own_opt_out(lox):
    entries = refresh(lox)
    assert [e.number for e in entries] == ["+4915112345601", "+4915112345602", "+919876543210"]
    assert [e.opt_out for e in entries] == [True, False, False]
    ids = [p["id"] for p in lox.emulator.phones_of(7116)]
    assert [e.provider_id for e in entries] == ids
    assert lox.counters["requests"] == {"GET /groups/{id}/phones": 1}


def test_refresh_empty_group(lox):
    assert refresh(lox, EMPTY) == []


@pytest.mark.parametrize("count", [1, 250, 10_000])
def test_refresh_pages_concurrently_within_the_limit(lox, count):
    numbers = [f"+4915{i:09d}" for i in range(count)]
    lox.emulator.add_phones(8000, numbers)
    lox.faults("latency=2ms" if count > 1000 else None)  # keep requests overlapping
    entries = refresh(lox, BIG)
    assert [e.number for e in entries] == numbers
    assert len({e.provider_id for e in entries}) == count
    c = lox.counters
    assert c["requests"] == {"GET /groups/{id}/phones": math.ceil(count / 30)}
    assert c["max_in_flight"] <= Lox24Adapter.capabilities.concurrency_limit
    if count == 10_000:
        assert c["max_in_flight"] >= 2  # the pages after the first really go concurrently


def test_refresh_follows_hydra_next_and_accepts_member_key(lox):
    lox.emulator.member_key = "member"  # the newer docs' key (blocked-numbers examples)
    numbers = [f"+4916{i:09d}" for i in range(70)]
    lox.emulator.add_phones(8000, numbers)
    assert [e.number for e in refresh(lox, BIG)] == numbers


def test_refresh_without_a_total_follows_hydra_next(lox):
    emulator = lox.emulator

    def without_total(request: httpx.Request) -> httpx.Response:
        resp = Lox24Emulator.route(emulator, request)
        body = resp.json()
        body.pop("hydra:totalItems")
        return httpx.Response(resp.status_code, json=body)

    emulator.route = without_total
    numbers = [f"+4916{i:09d}" for i in range(61)]
    emulator.add_phones(8000, numbers)
    assert [e.number for e in refresh(lox, BIG)] == numbers
    assert lox.counters["requests"] == {"GET /groups/{id}/phones": 3}
    assert lox.counters["max_in_flight"] == 1  # one page after the other


def test_refresh_normalises_other_formats_to_e164(lox):
    for raw in ("0049 151 12345603", "+49 (151) 1234-5604", "4915112345605", "+49-151-12345606"):
        lox.emulator.add_phone(8000, raw)
    entries = refresh(lox, BIG)
    assert [e.number for e in entries] == [
        "+4915112345603",
        "+4915112345604",
        "+4915112345605",
        "+4915112345606",
    ]
    assert entries[0].raw == "0049 151 12345603"


def test_duplicates_become_one_entry_and_are_removed_together(lox):
    first = lox.emulator.add_phone(8000, "+4915112345607")
    second = lox.emulator.add_phone(8000, "004915112345607")
    [entry] = refresh(lox, BIG)
    assert entry.provider_id == f"{first},{second}"
    op = Op("remove", entry.number, provider_id=entry.provider_id)
    [outcome] = send(lox, Batch([op]), BIG).outcomes
    assert outcome.status == "done"
    assert lox.numbers(8000) == []
    assert lox.counters["requests"]["DELETE /phones/{id}"] == 2
    [again] = send(lox, Batch([op]), BIG).outcomes
    assert again.status == "already"


def test_refresh_of_a_missing_group_is_a_provider_error(lox):
    missing = Target("lox24/4242", "lox24", "lox24", (("group_id", "4242"),))
    with pytest.raises(ProviderError) as err:
        refresh(lox, missing)
    assert err.value.status == 404 and "Resource not found" in str(err.value)
    assert err.value.endpoint == "GET /groups/{id}/phones"


# -- batches and adds --------------------------------------------------------------


def test_batches_exactly_at_the_limit_and_one_over(lox):
    adapter = Lox24Adapter("lox24", httpx.AsyncClient(verify=TLS), {"token": TOKEN})
    ops = [Op("add", f"+4917{i:09d}") for i in range(101)]
    removes = [Op("remove", "+4915112345602", provider_id="1"), Op("remove", "+49151", "2")]
    assert [len(b.ops) for b in adapter.batches(EMPTY, [], ops[:100], {})] == [100]
    out = adapter.batches(EMPTY, removes, ops, {})
    assert [(b.phase, len(b.ops)) for b in out] == [(0, 1), (0, 1), (1, 100), (1, 1)]


def test_add_a_full_batch_in_one_request(lox):
    numbers = [f"+4917{i:09d}" for i in range(100)]
    result = send(lox, adds(numbers))
    assert [o.status for o in result.outcomes] == ["done"] * 100
    stored = lox.emulator.phones_of(7200)
    assert [p["phone"] for p in stored] == numbers
    assert [o.provider_id for o in result.outcomes] == [p["id"] for p in stored]
    c = lox.counters
    assert c["requests"] == {"POST /groups/{id}/phones/batch": 1}
    assert c["max_numbers"] == {"POST /groups/{id}/phones/batch": 100}


def test_per_item_failures_are_recorded_per_number(lox):
    emulator = lox.emulator

    def problems(item):  # LOX24 rejects one item with a 422 violation
        if isinstance(item, dict) and item.get("phone") == "+4917000000003":
            return 422, [("phone", "This value is not valid.")]
        return Lox24Emulator.phone_problems(emulator, item)

    emulator.phone_problems = problems
    lox.faults("partial=0.25,seed=4")
    numbers = [f"+49170000000{i:02d}" for i in range(20)]
    outcomes = send(lox, adds(numbers)).outcomes
    by_number = {o.op.number: o for o in outcomes}
    assert by_number["+4917000000003"].status == "failed"
    assert by_number["+4917000000003"].reason == "phone: This value is not valid."
    retryable = [o.op.number for o in outcomes if o.status == "retryable"]
    done = [o.op.number for o in outcomes if o.status == "done"]
    assert retryable and done and len(retryable) + len(done) == 19
    assert all(o.reason == "Internal Server Error" for o in outcomes if o.status == "retryable")
    assert lox.numbers(7200) == done  # failed items are not stored
    # the executor re-sends the retryable ones: no duplicates, everything there
    lox.faults(None)
    again = send(lox, adds(retryable)).outcomes
    assert [o.status for o in again] == ["done"] * len(retryable)
    assert sorted(lox.numbers(7200)) == sorted(done + retryable)


def test_resend_after_commit_then_drop_is_idempotent(lox):
    numbers = [f"+4917100000{i:03d}" for i in range(5)]
    lox.faults("drop=1.0")
    with pytest.raises(RetryableError):
        send(lox, adds(numbers))
    assert lox.numbers(7200) == numbers  # committed, answer lost
    lox.faults(None)

    async def resend_then_add(adapter):
        # the same adapter instance as the executor's retry would use
        with pytest.raises(RetryableError):
            lox.faults("drop=1.0")
            await adapter.send(EMPTY, adds(numbers))
        lox.faults(None)
        first = await adapter.send(EMPTY, adds(numbers))
        second = await adapter.send(EMPTY, adds(["+4917100000999"]))
        return first, second

    lox.emulator.reset()
    first, second = lox.run(resend_then_add)
    assert [o.status for o in first.outcomes] == ["already"] * 5
    stored = lox.emulator.phones_of(7200)
    assert [o.provider_id for o in first.outcomes] == [p["id"] for p in stored[:5]]
    assert [p["phone"] for p in stored] == [*numbers, "+4917100000999"]  # no duplicates
    assert second.outcomes[0].status == "done"
    # the check costs one listing, only on the re-send of an uncertain batch
    assert lox.counters["requests"] == {
        "POST /groups/{id}/phones/batch": 2,
        "GET /groups/{id}/phones": 1,
    }


def test_remove_resend_after_commit_then_drop(lox):
    [_, entry, _] = refresh(lox)
    op = Op("remove", entry.number, provider_id=entry.provider_id)
    lox.faults("drop=1.0")
    [lost] = send(lox, Batch([op]), GROUP).outcomes
    assert lost.status == "retryable"
    lox.faults(None)
    [outcome] = send(lox, Batch([op]), GROUP).outcomes
    assert outcome.status == "already"
    assert lox.numbers(7116) == ["+4915112345601", "+919876543210"]


def test_a_mixed_batch_keeps_the_order_of_its_ops(lox):
    [_, entry, _] = refresh(lox)
    ops = [
        Op("add", "+4917300000001"),
        Op("remove", entry.number, provider_id=entry.provider_id),
        Op("remove", "+4915100000000"),
        Op("add", "+4917300000002"),
    ]
    outcomes = send(lox, Batch(ops), GROUP).outcomes
    assert [o.op for o in outcomes] == ops
    assert [o.status for o in outcomes] == ["done", "done", "failed", "done"]


def test_remove_without_an_id_fails_without_a_request(lox):
    [outcome] = send(lox, Batch([Op("remove", "+4915112345602")]), GROUP).outcomes
    assert outcome.status == "failed" and outcome.reason == NO_ID_REASON
    assert lox.counters["total_requests"] == 0


def test_remove_of_an_unknown_id_is_already_done(lox):
    [outcome] = send(lox, Batch([Op("remove", "+4915112345602", provider_id="42")]), GROUP).outcomes
    assert outcome.status == "already"


# -- auth, lockout, throttling ---------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.refresh(GROUP),
        lambda a: a.send(EMPTY, adds(["+4917200000001"])),
        lambda a: a.send(GROUP, Batch([Op("remove", "+919876543210", provider_id="9000003")])),
    ],
    ids=["refresh", "add", "remove"],
)
def test_bad_credentials_raise_auth_error_after_exactly_one_request(lox, call):
    with pytest.raises(AuthError) as err:
        lox.run(call, token=BAD_TOKEN)
    c = lox.counters
    assert c["total_requests"] == 1 and c["auth_failures"] == 1
    assert err.value.status == 401
    assert "isn’t active or invalid" in str(err.value)
    assert BAD_TOKEN not in str(err.value) and "not-the-key" not in str(err.value)
    assert lox.numbers(7116) == ["+4915112345601", "+4915112345602", "+919876543210"]


def test_inactive_account_is_an_auth_error_after_one_request(lox):
    lox.emulator.account_active = False
    with pytest.raises(AuthError) as err:
        send(lox, adds(["+4917200000001"]))
    assert err.value.status == 403 and "Account isn’t activated" in str(err.value)
    assert lox.counters["total_requests"] == 1


def test_lockout_surfaces_as_retryable_with_retry_after(lox):
    for _ in range(4):  # four separate runs that each fail once: > 3 a minute
        lox.clock.now += 5
        with pytest.raises(AuthError):
            refresh(lox, token=BAD_TOKEN)
    with pytest.raises(RetryableError) as err:
        refresh(lox)
    assert err.value.status == 429 and err.value.retry_after == 600
    assert "temporary blocked" in str(err.value)
    lox.clock.now += 600
    assert len(refresh(lox)) == 3


def test_429_retry_after_is_surfaced(lox):
    lox.faults("429=1.0,retry_after=7")
    with pytest.raises(RetryableError) as err:
        send(lox, adds(["+4917200000002"]))
    assert err.value.status == 429 and err.value.retry_after == 7
    assert lox.numbers(7200) == []


def test_server_error_is_retryable(lox):
    lox.faults("5xx=1.0")
    with pytest.raises(RetryableError) as err:
        refresh(lox)
    assert err.value.status == 500


def test_missing_token_is_a_credential_error(lox):
    with pytest.raises(CredentialError):
        refresh(lox, token="")
    assert lox.counters["total_requests"] == 0


def test_repr_hides_the_token():
    adapter = Lox24Adapter("lox24", httpx.AsyncClient(verify=TLS), {"token": TOKEN})
    assert TOKEN not in repr(adapter) and "sandbox-lox24-key" not in repr(adapter)


# -- malformed replies ------------------------------------------------------------------

HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def _reply(status: int, body=None, text: str | None = None):
    def route(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers={"Content-Type": "text/html"})
        return httpx.Response(status, json=body)

    return route


@pytest.mark.parametrize(
    ("route", "what"),
    [
        (_reply(200, text=HTML), "not JSON"),
        (_reply(200, {"hydra:totalItems": 3}), "hydra:member"),
        (_reply(200, [{"phone": "+4915112345602", "id": "1"}]), "collection object"),
        (_reply(200, {"hydra:member": [{"id": "1"}], "hydra:totalItems": 1}), "'phone'"),
        (_reply(200, {"hydra:member": ["+49151"], "hydra:totalItems": 1}), "hydra:member"),
        (_reply(418, {"unexpected": True}), "unexpected HTTP status 418"),
    ],
    ids=["html", "no-members", "bare-array", "no-phone", "not-objects", "odd-status"],
)
def test_malformed_list_replies_are_provider_errors(lox, route, what):
    lox.emulator.route = route
    with pytest.raises(ProviderError) as err:
        refresh(lox)
    assert type(err.value) is ProviderError
    message = str(err.value)
    assert message.startswith("lox24: GET /groups/{id}/phones (HTTP ")
    assert what in message


@pytest.mark.parametrize(
    ("route", "what"),
    [
        (_reply(201, text=HTML), "not JSON"),
        (_reply(201, {"hydra:member": []}), "with 1 items"),
        (_reply(201, {"hydra:member": [{"body": {}}]}), "integer status"),
        (_reply(400, {"hydra:description": "Invalid input"}), "Invalid input"),
    ],
    ids=["html", "wrong-count", "no-status", "whole-400"],
)
def test_malformed_or_failed_batch_replies_are_provider_errors(lox, route, what):
    lox.emulator.route = route
    with pytest.raises(ProviderError) as err:
        send(lox, adds(["+4917200000003"]))
    assert type(err.value) is ProviderError
    assert str(err.value).startswith("lox24: POST /groups/{id}/phones/batch (HTTP ")
    assert what in str(err.value)


def test_html_gateway_error_is_retryable(lox):
    lox.emulator.route = _reply(502, text=HTML)
    with pytest.raises(RetryableError) as err:
        refresh(lox)
    assert err.value.status == 502
