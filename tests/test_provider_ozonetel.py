"""The Ozonetel adapter against its emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from loopback import Loopback

from reconciler.domain import Op, Outcome, Target
from reconciler.errors import AuthError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.ozonetel import (
    ADD_FAILED,
    REMOVE_NOT_THERE,
    OzonetelAdapter,
    expiry_date,
    reply_number,
    wire_number,
)
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.ozonetel import OzonetelEmulator

CREDS = dict(OzonetelEmulator.credentials)
T0 = 1_900_000_000.0  # 2030-03-17
NOW = datetime.fromtimestamp(T0, UTC)
TARGET = Target("ozonetel/fraud", "ozonetel", "ozonetel", (("group", "fraud"),))

VENDOR = Target("ozonetel/vendor-spam", "ozonetel", "ozonetel", (("group", "vendor-spam"),))
OFFLINE = httpx.AsyncClient()  # batches() is pure: never used to send

TOKEN_EP = "POST /ca_apis/CAToken/generateToken"
CREATE_EP = "POST /ca_apis/createBlockNumber"
UPDATE_EP = "PUT /ca_apis/updateBlockNumbers"
DELETE_EP = "DELETE /ca_apis/deleteBlockNumber"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sandbox:
    """One emulator behind the shared loopback server, and a way to drive an adapter at it."""

    def __init__(self, loopback: Loopback) -> None:
        self.loopback = loopback
        self.url = loopback.url
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []

    def start(self, cls: type[OzonetelEmulator] = OzonetelEmulator, **kwargs) -> OzonetelEmulator:
        kwargs.setdefault("clock", FakeClock())
        emulator = cls(**kwargs)
        self.loopback.plug(emulator)
        return emulator

    @property
    def emulator(self) -> OzonetelEmulator:
        return self.loopback.emulator  # type: ignore[return-value]  # what start() plugged in

    def drive(
        self,
        fn: Callable[[OzonetelAdapter], Awaitable[Any]],
        *,
        credentials: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``fn(adapter)`` in a fresh event loop with an AsyncClient on loopback."""

        async def record(request: httpx.Request) -> None:
            body = json.loads(request.content) if request.content else None
            self.sent.append((request.method, request.url.path, dict(request.headers), body))

        async def main() -> Any:
            hooks = {"request": [record]}
            async with httpx.AsyncClient(base_url=self.url, event_hooks=hooks) as client:
                adapter = OzonetelAdapter("ozonetel", client, credentials or CREDS, options)
                return await fn(adapter)

        return asyncio.run(main())

    def requests(self, endpoint: str | None = None) -> int:
        counters = self.emulator.counters.to_dict()
        return counters["requests"].get(endpoint, 0) if endpoint else counters["total_requests"]


@pytest.fixture
def sandbox(loopback) -> Sandbox:
    return Sandbox(loopback)


async def apply(
    adapter: OzonetelAdapter,
    removes: Sequence[Op] = (),
    adds: Sequence[Op] = (),
    meta: dict[str, str] | None = None,
    target: Target = TARGET,
) -> tuple[list[Outcome], dict[str, str]]:
    """A minimal executor: phases in order, each phase's batches concurrently, no retries."""
    meta = dict(meta or {})
    batches = adapter.batches(target, removes, adds, meta)
    outcomes: list[Outcome] = []
    for phase in sorted({b.phase for b in batches}):
        results = await asyncio.gather(
            *(adapter.send(target, b) for b in batches if b.phase == phase)
        )
        for result in results:
            outcomes += result.outcomes
            meta.update(result.target_meta or {})
    return outcomes, meta


def adds(n: int, start: int = 0, expires: datetime | None = None) -> list[Op]:
    return [Op("add", f"+9197{i:08d}", expires=expires) for i in range(start, start + n)]


def removes(numbers: Sequence[str]) -> list[Op]:
    return [Op("remove", n) for n in numbers]


def statuses(outcomes: Sequence[Outcome]) -> dict[str, str]:
    return {o.op.number: o.status for o in outcomes}


# -- declarations ----------------------------------------------------------------------------


def test_capabilities_and_registry() -> None:
    assert adapter_class("ozonetel") is OzonetelAdapter
    caps = OzonetelAdapter.capabilities
    assert (caps.can_list, caps.can_add, caps.can_remove) == (False, True, True)
    assert (caps.batch_limit, caps.concurrency_limit) == (100, 4)
    assert caps.native_expiry and caps.remove_by == "number" and not caps.remove_one_per_call
    assert caps.scope_fields == ("group",) and caps.attribute_fields == ()
    assert caps.credential_keys == ("username", "api_key")
    assert caps.default_base_url == "https://in1-ccaas-api.ozonetel.com"
    assert caps.wire_format == "Indian numbers as 10 digits, others E.164 with +"


def test_refresh_is_not_possible(sandbox: Sandbox) -> None:
    """Ozonetel has no read endpoint: refresh refuses, without a request."""
    sandbox.start()
    with pytest.raises(NotImplementedError):
        sandbox.drive(lambda a: a.refresh(TARGET))
    assert sandbox.requests() == 0


@pytest.mark.parametrize(
    ("value", "ok"), [("ab", True), ("g" * 50, True), ("X", False), ("g" * 51, False), ("", False)]
)
def test_scope_problems_group_length(value: str, ok: bool) -> None:
    assert (OzonetelAdapter.scope_problems("group", value) is None) is ok


def test_bad_auth_mode_option() -> None:
    with pytest.raises(ProviderError, match="auth_mode"):
        OzonetelAdapter("oz", OFFLINE, CREDS, {"auth_mode": "oauth"})


def test_wire_formats() -> None:
    assert wire_number("+919876543210") == "9876543210"
    assert wire_number("+14155550123") == "+14155550123"
    assert wire_number("+9180123456") == "+9180123456"  # not a 10-digit national number
    assert reply_number("9876543210") == "+919876543210"
    assert reply_number("919876543210") == "+919876543210"
    assert reply_number("+44 20 7946 0958") == "+442079460958"
    assert expiry_date(datetime(2031, 1, 1, tzinfo=UTC)) == "2031-01-01 05:30:00"
    assert expiry_date(datetime(2031, 1, 1, 20, 0)) == "2031-01-02 01:30:00"  # naive = UTC
    assert expiry_date(None) is None


# -- batches ----------------------------------------------------------------------------------


def test_batches_first_apply_create_then_updates() -> None:
    """Without `group_created` the first add is a create carrying ONE number (phase 1), the
    rest are updates (phase 2) grouped by expiry, at most 100 each; removes are phase 0."""
    adapter = OzonetelAdapter("oz", OFFLINE, CREDS)
    later = NOW + timedelta(days=30)
    ops = adds(150) + adds(30, 500, expires=later)
    batches = adapter.batches(TARGET, removes(["+14155550123"]), ops, {})
    shape = [(b.phase, len(b.ops), b.fields) for b in batches]
    assert shape == [
        (0, 1, {}),
        (1, 1, {"create": True, "expiryDate": None}),
        (2, 100, {"expiryDate": None}),
        (2, 49, {"expiryDate": None}),
        (2, 30, {"expiryDate": expiry_date(later)}),
    ]
    assert batches[1].ops == [ops[0]]
    sent = [op.number for b in batches[1:] for op in b.ops]
    assert sorted(sent) == sorted(op.number for op in ops)


@pytest.mark.parametrize(
    ("n", "meta", "sizes"),
    [
        (100, {"group_created": "1"}, [(1, 100)]),
        (101, {"group_created": "1"}, [(1, 100), (1, 1)]),
        (100, {}, [(1, 1), (2, 99)]),
        (101, {}, [(1, 1), (2, 100)]),  # the create's number saves a request
        (102, {}, [(1, 1), (2, 100), (2, 1)]),
    ],
)
def test_add_batches_at_the_limit_and_one_over(n: int, meta: dict, sizes: list) -> None:
    adapter = OzonetelAdapter("oz", OFFLINE, CREDS)
    batches = adapter.batches(TARGET, [], adds(n), meta)
    assert [(b.phase, len(b.ops)) for b in batches] == sizes


@pytest.mark.parametrize(("n", "sizes"), [(100, [100]), (101, [100, 1])])
def test_remove_batches_at_the_limit_and_one_over(n: int, sizes: list) -> None:
    adapter = OzonetelAdapter("oz", OFFLINE, CREDS)
    meta = {"group_created": "1", "group_id": "7"}
    batches = adapter.batches(TARGET, removes([o.number for o in adds(n)]), [], meta)
    assert [len(b.ops) for b in batches] == sizes
    assert all(b.phase == 0 and b.fields == {"group_id": "7"} for b in batches)


def test_250_adds_with_3_expiries_use_the_minimum_requests(sandbox: Sandbox) -> None:
    """1 token + 1 create + ceil(n/100) updates per expiry group, never over 100 a request."""
    emulator = sandbox.start()
    e1, e2 = NOW + timedelta(days=10), NOW + timedelta(days=20, hours=3)
    ops = adds(120) + adds(80, 200, expires=e1) + adds(50, 400, expires=e2)
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=ops))
    assert set(statuses(outcomes).values()) == {"done"} and len(outcomes) == 250
    assert meta == {"group_created": "1", "group_id": "2"}
    assert sandbox.requests(TOKEN_EP) == 1
    assert sandbox.requests(CREATE_EP) == 1
    assert sandbox.requests(UPDATE_EP) == 2 + 1 + 1
    counters = emulator.counters.to_dict()
    assert counters["max_numbers"][UPDATE_EP] == 100
    assert counters["limit_violations"] == {}
    members = emulator.members("fraud")
    assert len(members) == 250
    assert members["+919700000200"] == e1.timestamp()
    assert members["+919700000400"] == e2.timestamp()
    assert members["+919700000000"] is None


# -- sending ------------------------------------------------------------------------------------


def test_wire_bodies_and_a_second_apply_with_meta(sandbox: Sandbox) -> None:
    """Create sends one number as a string; Indian numbers go as 10 digits, others with +;
    expiryDate is IST and omitted without expiry; removes send groupName and id. (The lone
    add without expiry is the create's number: that saves a request.)"""
    emulator = sandbox.start()
    expires = datetime(2031, 1, 1, tzinfo=UTC)
    ops = [Op("add", "+919876543210", expires=expires), Op("add", "+14155550123", expires=expires)]
    ops += [Op("add", "+919876543211")]

    async def scenario(adapter: OzonetelAdapter):
        first = await apply(adapter, adds=ops)
        second = await apply(adapter, removes(["+919876543210", "+14155550123"]), meta=first[1])
        return first, second

    (outcomes, meta), (removed, _) = sandbox.drive(scenario)
    assert set(statuses(outcomes).values()) == {"done"}
    assert set(statuses(removed).values()) == {"done"}
    bodies = {(m, p): b for m, p, _, b in sandbox.sent if p != "/ca_apis/CAToken/generateToken"}
    assert bodies["POST", "/ca_apis/createBlockNumber"] == {
        "userName": "sandbox",
        "name": "fraud",
        "description": "Managed by blocklist-as-code",
        "blockNumbers": "9876543211",
    }
    assert bodies["PUT", "/ca_apis/updateBlockNumbers"] == {
        "userName": "sandbox",
        "groupName": "fraud",
        "blockNumbers": ["9876543210", "+14155550123"],
        "expiryDate": "2031-01-01 05:30:00",
    }
    assert bodies["DELETE", "/ca_apis/deleteBlockNumber"] == {
        "userName": "sandbox",
        "groupName": "fraud",
        "blockNumbers": ["9876543210", "+14155550123"],
        "id": int(meta["group_id"]),
    }
    assert all(h["authorization"].startswith("Bearer ") for _, p, h, _ in sandbox.sent[1:])
    assert emulator.members("fraud") == {"+919876543211": None}


def test_partial_failures_are_per_number(sandbox: Sandbox) -> None:
    """Numbers listed under output.error fail with that reason; the rest are done."""
    emulator = sandbox.start(faults="partial=0.3,seed=3")
    ops = adds(100)
    outcomes, _ = sandbox.drive(lambda a: apply(a, adds=ops))
    members = emulator.members("fraud")
    failed = [o for o in outcomes if o.status == "failed"]
    assert 0 < len(failed) < 100
    assert all(o.reason == ADD_FAILED for o in failed)
    assert all(o.op.number not in members for o in failed)
    assert all(o.op.number in members for o in outcomes if o.status == "done")


def test_create_answered_group_exists_falls_back_to_update(sandbox: Sandbox) -> None:
    """A create answered "Group name already exists" is sent as an update in the same send."""
    emulator = sandbox.start()
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(3), target=VENDOR))
    assert set(statuses(outcomes).values()) == {"done"}
    assert meta == {"group_created": "1"}
    assert len(emulator.members("vendor-spam")) == 5  # the two seeded numbers are kept
    # the create's fallback update, and the phase-2 update of the other two numbers
    assert sandbox.requests(CREATE_EP) == 1 and sandbox.requests(UPDATE_EP) == 2


def test_update_of_a_vanished_group_creates_it_again(sandbox: Sandbox) -> None:
    """[INFER] state says the group exists, Ozonetel says "Invalid group id": create it again."""
    emulator = sandbox.start()
    meta_before = {"group_created": "1", "group_id": "9"}
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(5), meta=meta_before))
    assert set(statuses(outcomes).values()) == {"done"}
    assert meta == {"group_created": "1", "group_id": "2"}
    assert len(emulator.members("fraud")) == 5


def test_invalid_data_fails_the_whole_batch(sandbox: Sandbox) -> None:
    """`status: error`, "invalid data" -> every op of that batch fails with Ozonetel's words."""
    sandbox.start()
    target = Target("ozonetel/X", "ozonetel", "ozonetel", (("group", "X"),))
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(3), target=target))
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert outcomes[0].reason == "invalid data (name: Name (X) allows 2 to 50 characters only)"
    assert meta == {}


def test_remove_of_a_number_not_in_the_group_counts_as_done(sandbox: Sandbox) -> None:
    """DESIGN "Apply": "not in list" on remove counts as success (idempotency)."""
    sandbox.start()
    meta = {"group_created": "1", "group_id": "1"}
    ops = removes(["+919811100001", "+919999999999"])
    outcomes, _ = sandbox.drive(lambda a: apply(a, ops, meta=meta, target=VENDOR))
    assert statuses(outcomes) == {"+919811100001": "done", "+919999999999": "already"}
    assert outcomes[1].reason == REMOVE_NOT_THERE
    unknown = Target("ozonetel/gone", "ozonetel", "ozonetel", (("group", "gone"),))
    outcomes, _ = sandbox.drive(lambda a: apply(a, ops, target=unknown))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[0].reason.startswith("Invalid group id: Ozonetel has no group 'gone'")


def test_idempotent_resend_after_commit_then_drop(sandbox: Sandbox) -> None:
    """The write is applied but its answer lost: resending the same batch is safe."""
    emulator = sandbox.start(auth_mode="basic")  # so that no token request is the dropped one
    meta = {"group_created": "1", "group_id": "1"}
    ops = adds(3)

    async def scenario(adapter: OzonetelAdapter):
        results = []
        for batch in adapter.batches(VENDOR, removes(["+919811100001"]), ops, meta):
            emulator.faults = Faults(FaultSpec(drop=1.0))
            with pytest.raises(RetryableError):
                await adapter.send(VENDOR, batch)
            emulator.faults = Faults(FaultSpec())
            results.append(await adapter.send(VENDOR, batch))
        return results

    removed, added = sandbox.drive(scenario, options={"auth_mode": "basic"})
    assert emulator.counters.faults["drop"] == 2
    assert {o.status for o in added.outcomes} == {"done"}
    # the resent delete finds the number gone (listed under output.error): already done
    assert [(o.status, o.reason) for o in removed.outcomes] == [("already", REMOVE_NOT_THERE)]
    assert list(emulator.members("vendor-spam")) == ["+919811100002"] + [o.number for o in ops]


# -- auth and tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_bad_credentials_raise_auth_error_after_one_request(sandbox: Sandbox, mode: str) -> None:
    emulator = sandbox.start(auth_mode=mode)
    bad = {"username": "sandbox", "api_key": "not-the-key-4242"}
    with pytest.raises(AuthError) as info:
        sandbox.drive(
            lambda a: apply(a, adds=adds(3)), credentials=bad, options={"auth_mode": mode}
        )
    assert sandbox.requests() == 1
    assert emulator.counters.auth_failures == 1
    assert "not-the-key-4242" not in str(info.value)
    assert "ozonetel" in str(info.value)


def test_token_mode_against_a_basic_account_is_an_auth_error(sandbox: Sandbox) -> None:
    sandbox.start(auth_mode="basic")
    with pytest.raises(AuthError, match="Authentication failed"):
        sandbox.drive(lambda a: apply(a, adds=adds(1), meta={"group_created": "1"}))
    assert sandbox.requests() == 2  # the token, then the refused update


def test_basic_mode_sends_the_api_key_header(sandbox: Sandbox) -> None:
    emulator = sandbox.start(auth_mode="basic")
    outcomes, _ = sandbox.drive(lambda a: apply(a, adds=adds(150)), options={"auth_mode": "basic"})
    assert len(outcomes) == 150 and {o.status for o in outcomes} == {"done"}
    assert sandbox.requests(TOKEN_EP) == 0
    assert all(h["apikey"] == CREDS["api_key"] for _, _, h, _ in sandbox.sent)
    assert all("authorization" not in h for _, _, h, _ in sandbox.sent)
    assert len(emulator.members("fraud")) == 150


def test_concurrent_sends_share_one_token(sandbox: Sandbox) -> None:
    """Eight update batches at once from a fresh adapter: one generateToken, never more than
    4 requests in flight."""
    emulator = sandbox.start(faults="latency=20ms")
    ops = adds(800)
    outcomes, _ = sandbox.drive(
        lambda a: apply(a, adds=ops, meta={"group_created": "1"}, target=VENDOR)
    )
    assert len(outcomes) == 800 and {o.status for o in outcomes} == {"done"}
    assert sandbox.requests(TOKEN_EP) == 1
    assert sandbox.requests(UPDATE_EP) == 8
    assert 1 < emulator.counters.max_in_flight <= OzonetelAdapter.capabilities.concurrency_limit


def test_an_expired_token_is_regenerated_once(sandbox: Sandbox) -> None:
    """After 60 minutes the next requests meet "Token Expired" (or, when they arrive after the
    renewal, "Authentication failed" for the superseded token): one new token however many
    requests were in flight, and one resend each."""
    emulator = sandbox.start(faults="latency=5ms")

    async def scenario(adapter: OzonetelAdapter):
        first = await apply(adapter, adds=adds(100))
        emulator.clock.now += 3600
        second = await apply(adapter, adds=adds(400, 100), meta=first[1])
        return first[0] + second[0]

    outcomes = sandbox.drive(scenario)
    assert len(outcomes) == 500 and {o.status for o in outcomes} == {"done"}
    assert sandbox.requests(TOKEN_EP) == 2
    # 1 create + 1 update, then 4 updates, the ones in flight at expiry sent twice
    assert 1 + 4 + 1 <= sandbox.requests(UPDATE_EP) <= 1 + 4 * 2
    assert emulator.counters.max_in_flight > 1


def test_the_11th_token_in_an_hour_is_refused_locally(sandbox: Sandbox) -> None:
    emulator = sandbox.start()
    meta = {"group_created": "1"}

    async def scenario(adapter: OzonetelAdapter):
        adapter.clock = FakeClock(0.0)
        for i in range(10):
            await apply(adapter, adds=adds(1, i), meta=meta, target=VENDOR)
            emulator.clock.now += 3600  # the token expires; the emulator's hour rolls on
        with pytest.raises(AuthError, match="hourly token quota spent") as info:
            await apply(adapter, adds=adds(1, 10), meta=meta, target=VENDOR)
        adapter.clock.now = 3600.0  # the adapter's hour has passed too
        outcomes, _ = await apply(adapter, adds=adds(1, 10), meta=meta, target=VENDOR)
        return info.value, outcomes

    error, outcomes = sandbox.drive(scenario)
    assert error.endpoint == TOKEN_EP
    assert [o.status for o in outcomes] == ["done"]
    assert sandbox.requests(TOKEN_EP) == 11


def test_ozonetels_own_token_quota_refusal_is_an_auth_error(sandbox: Sandbox) -> None:
    emulator = sandbox.start()
    emulator.state["auth"]["generated_at"] = [T0 - 60 * i for i in range(10)]
    with pytest.raises(AuthError, match="hourly token quota spent"):
        sandbox.drive(lambda a: apply(a, adds=adds(1)))
    assert sandbox.requests() == 1


# -- throttling and malformed replies -----------------------------------------------------------------


def test_429_retry_after_is_surfaced(sandbox: Sandbox) -> None:
    sandbox.start(faults="429=1.0,retry_after=7")
    with pytest.raises(RetryableError) as info:
        sandbox.drive(lambda a: apply(a, adds=adds(1)))
    assert info.value.retry_after == 7
    assert info.value.status == 429


class ThrottlingEmulator(OzonetelEmulator):
    """Answers writes with CloudAgent's in-body throttling error, HTTP 200."""

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("generateToken"):
            return super().route(request)
        return httpx.Response(200, json={"message": "Max limit exceeded", "status": "error"})


def test_max_limit_exceeded_in_body_is_retryable(sandbox: Sandbox) -> None:
    sandbox.start(ThrottlingEmulator)
    with pytest.raises(RetryableError, match="Max limit exceeded"):
        sandbox.drive(lambda a: apply(a, removes(["+919811100001"])))


def _garbage(path_part: str, response: httpx.Response) -> type[OzonetelEmulator]:
    class Garbage(OzonetelEmulator):
        def route(self, request: httpx.Request) -> httpx.Response:
            if path_part in request.url.path:
                return response
            return super().route(request)

    return Garbage


@pytest.mark.parametrize(
    ("path_part", "response", "endpoint"),
    [
        ("generateToken", httpx.Response(200, text="<html>oops</html>"), TOKEN_EP),
        ("generateToken", httpx.Response(200, json={"message": ""}), TOKEN_EP),
        ("update", httpx.Response(200, text="<html><body>Bad gateway</body></html>"), UPDATE_EP),
        ("update", httpx.Response(200, json=["not", "an", "object"]), UPDATE_EP),
        (
            "update",
            httpx.Response(200, json={"status": "success", "message": "updated"}),
            UPDATE_EP,
        ),
        (
            "update",
            httpx.Response(200, json={"status": "success", "output": {"succes": 3}}),
            UPDATE_EP,
        ),
        ("update", httpx.Response(200, json={"status": "maybe"}), UPDATE_EP),
        (
            "update",
            httpx.Response(404, json={"status": "error", "message": "Not Found"}),
            UPDATE_EP,
        ),
        ("update", httpx.Response(400, text="Bad Request"), UPDATE_EP),
    ],
)
def test_malformed_replies_are_provider_errors(
    sandbox: Sandbox, path_part: str, response: httpx.Response, endpoint: str
) -> None:
    sandbox.start(_garbage(path_part, response))
    with pytest.raises(ProviderError) as info:
        sandbox.drive(lambda a: apply(a, adds=adds(2), meta={"group_created": "1"}))
    assert type(info.value) is ProviderError
    assert info.value.provider == "ozonetel"
    assert info.value.endpoint == endpoint
    assert info.value.status == response.status_code


class OtherFormatsEmulator(OzonetelEmulator):
    """Lists numbers in its output as 12-digit 91… or national digits, not +91…."""

    def route(self, request: httpx.Request) -> httpx.Response:
        response = super().route(request)
        data = response.json()
        output = data.get("output") if isinstance(data, dict) else None
        if isinstance(output, dict):
            for key in ("succes", "success"):
                if key in output:
                    output[key] = [n[1:] if i % 2 else n[3:] for i, n in enumerate(output[key])]
            return httpx.Response(response.status_code, json=data)
        return response


def test_reply_numbers_in_other_formats_match_their_ops(sandbox: Sandbox) -> None:
    sandbox.start(OtherFormatsEmulator)
    ops = adds(6)

    async def scenario(adapter: OzonetelAdapter):
        added, meta = await apply(adapter, adds=ops)
        removed, _ = await apply(adapter, removes([o.number for o in ops]), meta=meta)
        return added + removed

    outcomes = sandbox.drive(scenario)
    assert [o.status for o in outcomes] == ["done"] * 12
