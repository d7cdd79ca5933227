"""The Ozonetel adapter against its emulator over real loopback HTTP, in every dialect."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import Loopback

from reconciler.connections import provider_client
from reconciler.domain import Batch, Op, Outcome, Target
from reconciler.errors import AuthError, ProviderError, RetryableError
from reconciler.providers import adapter_class
from reconciler.providers.ozonetel import (
    ADD_FAILED,
    NO_EXPIRY,
    NOT_REPORTED,
    QUOTA_ADVICE,
    REMOVE_UNANSWERED,
    REMOVE_UNCONFIRMED,
    OzonetelAdapter,
    TokenQuotaError,
    expiry_date,
    reply_number,
    wire_number,
)
from reconciler.sandbox.faults import Faults, FaultSpec
from reconciler.sandbox.ozonetel import (
    BAD_NUMBERS,
    INVALID_DATA,
    MANDATORY,
    OzonetelEmulator,
    _error,
)

CREDS = dict(OzonetelEmulator.credentials)
T0 = 1_900_000_000.0  # 2030-03-17
NOW = datetime.fromtimestamp(T0, UTC)
TARGET = Target("ozonetel/fraud", "ozonetel", "ozonetel", (("group", "fraud"),))
VENDOR = Target("ozonetel/vendor-spam", "ozonetel", "ozonetel", (("group", "vendor-spam"),))
OFFLINE = httpx.AsyncClient()  # batches() is pure: never used to send
CREATED = {"group_created": "1"}

TOKEN_EP = "POST /ca_apis/CAToken/generateToken"
CREATE_EP = "POST /ca_apis/createBlockNumber"
UPDATE_EP = "PUT /ca_apis/updateBlockNumbers"
DELETE_EP = "DELETE /ca_apis/deleteBlockNumber"
DIALECTS = sorted(OzonetelEmulator.dialects)


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sandbox:
    """One emulator (in the test's dialect) behind the shared loopback server, and a way
    to drive an adapter at it."""

    def __init__(self, loopback: Loopback, dialect: str) -> None:
        self.loopback = loopback
        self.dialect = dialect
        self.url = loopback.url
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []

    def start(self, cls: type[OzonetelEmulator] = OzonetelEmulator, **kwargs) -> OzonetelEmulator:
        kwargs.setdefault("clock", FakeClock())
        kwargs.setdefault("dialect", self.dialect)
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
            # plain HTTP on loopback: no TLS context to build (40 ms a client)
            client = provider_client(self.url, event_hooks=hooks)
            async with client:
                adapter = OzonetelAdapter("ozonetel", client, credentials or CREDS, options)
                return await fn(adapter)

        return asyncio.run(main())

    def requests(self, endpoint: str | None = None) -> int:
        counters = self.emulator.counters.to_dict()
        return counters["requests"].get(endpoint, 0) if endpoint else counters["total_requests"]

    def bodies(self, path: str) -> list[Any]:
        return [b for _, p, _, b in self.sent if p == path]


@pytest.fixture(params=DIALECTS)
def sandbox(loopback, request) -> Sandbox:
    """The emulator in each dialect in turn."""
    return Sandbox(loopback, request.param)


@pytest.fixture
def default_sandbox(loopback) -> Sandbox:
    """The default dialect only: for tests of the adapter's own logic, or whose server
    answers are replaced wholesale (the dialects differ in nothing they reach)."""
    return Sandbox(loopback, "default")


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
    assert caps.default_region == "IN"


def test_refresh_is_not_possible(default_sandbox: Sandbox) -> None:
    """Ozonetel has no read endpoint: refresh refuses, without a request."""
    default_sandbox.start()
    with pytest.raises(NotImplementedError):
        default_sandbox.drive(lambda a: a.refresh(TARGET))
    assert default_sandbox.requests() == 0


@pytest.mark.parametrize(
    ("value", "ok"), [("ab", True), ("g" * 50, True), ("X", False), ("g" * 51, False), ("", False)]
)
def test_scope_problems_group_length(value: str, ok: bool) -> None:
    assert (OzonetelAdapter.scope_problems("group", value) is None) is ok


def test_bad_auth_mode_option_and_a_token_in_basic_mode() -> None:
    with pytest.raises(ProviderError, match="auth_mode"):
        OzonetelAdapter("oz", OFFLINE, CREDS, {"auth_mode": "oauth"})
    with pytest.raises(ProviderError, match="`token` credential needs auth_mode 'token'"):
        OzonetelAdapter("oz", OFFLINE, {**CREDS, "token": "eyJx"}, {"auth_mode": "basic"})


def test_wire_formats() -> None:
    assert wire_number("+919876543210") == "9876543210"
    assert wire_number("+14155550123") == "+14155550123"
    assert wire_number("+9180123456") == "+9180123456"  # not a 10-digit national number
    assert reply_number("9876543210") == "+919876543210"
    assert reply_number("919876543210") == "+919876543210"
    assert reply_number("+44 20 7946 0958") == "+442079460958"
    assert reply_number("14155550123") == "+14155550123"  # international without its +
    assert reply_number("020 7946 0958", "GB") == "+442079460958"  # national, own region
    assert reply_number("not a number") is None
    assert expiry_date(datetime(2031, 1, 1, tzinfo=UTC)) == "2031-01-01 05:30:00"
    assert expiry_date(datetime(2031, 1, 1, 20, 0)) == "2031-01-02 01:30:00"  # naive = UTC
    assert expiry_date(None) is None


@given(st.integers(6_000_000_000, 9_999_999_999))
def test_indian_numbers_read_back_in_every_echo_form(national: int) -> None:
    """Whatever form Ozonetel echoes an Indian mobile in (+91…, 91…, 10 digits), it reads
    back as the number sent."""
    e164 = f"+91{national}"
    for form in (e164, e164[1:], wire_number(e164)):
        assert reply_number(form) == e164


def _bench_numbers() -> list[str]:
    """Valid numbers of six countries, as the benchmarks and lists have them."""
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from plan_bench import generate_numbers
    finally:
        sys.path.pop(0)
    return generate_numbers(300, random.Random(7), set())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(_bench_numbers()), min_size=1, max_size=12, unique=True),
    st.sampled_from(["e164", "wire", "plain", "spaced", "joined"]),
    st.sampled_from(["IN", "GB", None]),
)
def test_reply_numbers_fast_path_reads_what_reply_number_reads(
    numbers: list[str], form: str, region: str | None
) -> None:
    """A reply's items matched against the forms the request sent (``sent_forms``) read
    as exactly the numbers that parsing each with ``reply_number`` gives, in every form an
    echo may take (E.164, the wire form, without +, with spaces, comma-joined)."""
    from reconciler.providers.ozonetel import sent_forms

    adapter = OzonetelAdapter(
        "oz", httpx.AsyncClient(), {"username": "u", "api_key": "k"}, {"default_region": region}
    )
    shown = {
        "e164": numbers,
        "wire": [wire_number(n) for n in numbers],
        "plain": [n[1:] for n in numbers],
        "spaced": [f" {n[:4]} {n[4:]} " for n in numbers],
        "joined": [",".join(wire_number(n) for n in numbers)],
    }[form]
    ops = [Op("add", n) for n in numbers]
    slow = adapter._numbers(shown)
    assert adapter._numbers(shown, sent_forms(ops)) == slow
    assert adapter._numbers(shown, sent_forms(ops[:1])) == slow  # some sent, some not


@given(
    st.one_of(
        st.none(),
        st.datetimes(timezones=st.sampled_from([UTC, None, timezone(timedelta(hours=5))])),
    )
)
def test_cached_expiry_date_equals_the_computed_one(expires: datetime | None) -> None:
    """``expiry_date`` is cached per instant; equal instants in other zones (which hash
    alike) give the same IST text, so the cache answers what computing it would."""
    assert expiry_date(expires) == expiry_date.__wrapped__(expires)
    if expires is not None and expires.tzinfo is not None:
        assert expiry_date(expires.astimezone(UTC)) == expiry_date.__wrapped__(expires)


# -- batches ----------------------------------------------------------------------------------


def test_batches_for_a_group_state_does_not_know() -> None:
    """Without `group_created`/`group_id` the group may or may not exist: one update goes
    first, alone, as the probe (phase 1; the remainder of an expiry group, so that a create
    after it saves a request), the other adds follow (phase 2) grouped by expiry, at most
    100 each; removes are phase 0."""
    adapter = OzonetelAdapter("oz", OFFLINE, CREDS)
    later = NOW + timedelta(days=30)
    ops = adds(150) + adds(30, 500, expires=later)
    batches = adapter.batches(TARGET, removes(["+14155550123"]), ops, {})
    shape = [(b.phase, len(b.ops), b.fields) for b in batches]
    assert shape == [
        (0, 1, {}),
        (1, 50, {"probe": True, "expiryDate": None}),
        (2, 100, {"expiryDate": None}),
        (2, 30, {"expiryDate": expiry_date(later)}),
    ]
    sent = [op.number for b in batches[1:] for op in b.ops]
    assert sorted(sent) == sorted(op.number for op in ops)


@pytest.mark.parametrize(
    ("n", "meta", "sizes"),
    [
        (100, CREATED, [(1, 100)]),
        (101, CREATED, [(1, 100), (1, 1)]),
        (100, {"group_id": "7"}, [(1, 100)]),
        (100, {}, [(1, 100)]),
        (101, {}, [(1, 1), (2, 100)]),
        (102, {}, [(1, 2), (2, 100)]),
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


def fewest_writes(groups: list[int], exists: bool) -> int:
    """Writes for adds of these expiry-group sizes to a group state does not know: 100 a
    request, one expiryDate a request, plus (if it is missing) one failed probe and a
    create carrying one number, taken where that saves a request."""
    if exists:
        return sum(math.ceil(k / 100) for k in groups)
    return 2 + min(
        sum(math.ceil((k - (i == j)) / 100) for j, k in enumerate(groups))
        for i in range(len(groups))
    )


@settings(max_examples=25)
@given(st.lists(st.integers(1, 250), min_size=1, max_size=4))
def test_probe_batches_cost_the_fewest_writes(groups: list[int]) -> None:
    """Property: each add in exactly one batch of at most 100 with one expiry, one probe,
    and the writes (the probe refused, a create of one number, an update of the probe's
    rest, the other batches; or, if the group exists, the batches) are the fewest."""
    adapter = OzonetelAdapter("oz", OFFLINE, CREDS)
    ops = [
        Op("add", f"+9197{g:02d}{i:06d}", expires=NOW + timedelta(days=g + 1))
        for g, k in enumerate(groups)
        for i in range(k)
    ]
    batches = adapter.batches(TARGET, [], ops, {})
    assert sorted(o.number for b in batches for o in b.ops) == sorted(o.number for o in ops)
    assert all(len({expiry_date(o.expires) for o in b.ops}) == 1 for b in batches)
    assert all(1 <= len(b.ops) <= 100 for b in batches)
    (probe,) = [b for b in batches if b.phase == 1]
    assert probe.fields["probe"] is True and all(b.phase == 2 for b in batches if b is not probe)
    assert len(batches) == fewest_writes(groups, exists=True)
    assert len(batches) + 1 + (len(probe.ops) > 1) == fewest_writes(groups, exists=False)


# -- request counts ---------------------------------------------------------------------------


def test_fewest_requests_per_dialect(sandbox: Sandbox) -> None:
    """No faults: a first apply to a new group (250 adds, 3 expiries), a second apply (60
    removes, 130 adds) and a first apply to a group that exists unknown to state (150
    adds) send the fewest requests: 1 token, one probe per unknown group, 1 create for the
    missing one, 100 numbers a request, one expiryDate a request."""
    emulator = sandbox.start()
    e1, e2 = NOW + timedelta(days=10), NOW + timedelta(days=20, hours=3)
    first = adds(120) + adds(80, 200, expires=e1) + adds(50, 400, expires=e2)
    kept = [o.number for o in first[60:]]

    async def scenario(adapter: OzonetelAdapter):
        out1, meta = await apply(adapter, adds=first)
        counts = [dict(emulator.counters.requests)]
        out2, meta = await apply(
            adapter, removes([o.number for o in first[:60]]), adds(130, 600), meta
        )
        counts.append(dict(emulator.counters.requests))
        out3, vendor_meta = await apply(adapter, adds=adds(150, 800), target=VENDOR)
        counts.append(dict(emulator.counters.requests))
        return out1 + out2 + out3, meta, vendor_meta, counts

    outcomes, meta, vendor_meta, counts = sandbox.drive(scenario)
    assert {o.status for o in outcomes} == {"done"} and len(outcomes) == 250 + 190 + 150
    assert meta == {"group_created": "1", "group_id": "2"}
    assert vendor_meta == {"group_created": "1", "group_id": "1"}
    first_writes = fewest_writes([120, 80, 50], exists=False)  # 6: probe, create, 4 updates
    assert counts[0] == {TOKEN_EP: 1, UPDATE_EP: first_writes - 1, CREATE_EP: 1}
    assert counts[1] == {TOKEN_EP: 1, UPDATE_EP: first_writes - 1 + 2, CREATE_EP: 1, DELETE_EP: 1}
    assert counts[2][UPDATE_EP] - counts[1][UPDATE_EP] == 2  # the probe (50) and 100
    assert counts[2].get(CREATE_EP) == 1 and counts[2][TOKEN_EP] == 1
    c = emulator.counters.to_dict()
    assert c["limit_violations"] == {} and c["auth_failures"] == 0
    assert c["max_numbers"][UPDATE_EP] == 100
    members = emulator.members("fraud")
    assert sorted(members) == sorted(kept + [o.number for o in adds(130, 600)])
    assert members["+919700000200"] == e1.timestamp()
    assert members["+919700000400"] == e2.timestamp()
    assert len(emulator.members("vendor-spam")) == 2 + 150  # the seeded numbers are kept


# -- sending ------------------------------------------------------------------------------------


def test_wire_bodies_and_a_second_apply_with_meta(sandbox: Sandbox) -> None:
    """The probe is an update with every documented field (description and expiryDate
    too: NO_EXPIRY without an expiry); the create sends one number as a string; Indian
    numbers go as 10 digits, others with +; expiryDate is IST; removes send groupName and
    the id learned from the create."""
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
    update = {
        "userName": "sandbox",
        "groupName": "fraud",
        "description": "Managed by blocklist-as-code",
        "expiryDate": NO_EXPIRY,
        "blockNumbers": ["9876543211"],
    }
    # the lone add without expiry is the probe and then the create's number: 3 writes
    assert sandbox.bodies("/ca_apis/updateBlockNumbers") == [
        update,
        {
            **update,
            "expiryDate": "2031-01-01 05:30:00",
            "blockNumbers": ["9876543210", "+14155550123"],
        },
    ]
    assert sandbox.bodies("/ca_apis/createBlockNumber") == [
        {
            "userName": "sandbox",
            "name": "fraud",
            "description": "Managed by blocklist-as-code",
            "blockNumbers": "9876543211",
            "expiryDate": NO_EXPIRY,
        }
    ]
    assert sandbox.bodies("/ca_apis/deleteBlockNumber") == [
        {
            "userName": "sandbox",
            "groupName": "fraud",
            "blockNumbers": ["9876543210", "+14155550123"],
            "id": int(meta["group_id"]),
        }
    ]
    assert all(h["authorization"].startswith("Bearer ") for _, p, h, _ in sandbox.sent[1:])
    no_expiry = datetime.strptime(NO_EXPIRY + "+0530", "%Y-%m-%d %H:%M:%S%z").timestamp()
    assert emulator.members("fraud") == {"+919876543211": no_expiry}
    assert sandbox.requests(CREATE_EP) + sandbox.requests(UPDATE_EP) == 3


def test_no_expiry_takes_an_earlier_expiry_off(sandbox: Sandbox) -> None:
    """An add without expiry of a number the group holds with one (the update is additive)
    leaves it blocked with no expiry before NO_EXPIRY, not with its old one."""
    emulator = sandbox.start()
    soon = NOW + timedelta(days=2)
    number = "+919700000000"

    async def scenario(adapter: OzonetelAdapter):
        await apply(adapter, adds=adds(1, expires=soon), meta=CREATED, target=VENDOR)
        return await apply(adapter, adds=adds(1), meta=CREATED, target=VENDOR)

    outcomes, _ = sandbox.drive(scenario)
    assert [o.status for o in outcomes] == ["done"]
    assert emulator.members("vendor-spam")[number] > datetime(2099, 1, 1, tzinfo=UTC).timestamp()


def test_a_group_that_exists_unknown_to_state_is_updated_not_created(sandbox: Sandbox) -> None:
    """No dependence on the words of an undocumented "already exists": a group state does
    not know is updated first; it exists, so nothing is created and its id is learned."""
    emulator = sandbox.start()
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(3), target=VENDOR))
    assert set(statuses(outcomes).values()) == {"done"}
    assert meta == {"group_created": "1", "group_id": "1"}
    assert len(emulator.members("vendor-spam")) == 5  # the two seeded numbers are kept
    assert sandbox.requests(CREATE_EP) == 0 and sandbox.requests(UPDATE_EP) == 1


def test_a_missing_group_is_created_once_however_many_batches_find_it(sandbox: Sandbox) -> None:
    """State says the group exists, Ozonetel says "Invalid group id" (deleted by hand) to 4
    concurrent updates: one create, the others sent again as updates; all done."""
    emulator = sandbox.start(faults="latency=5ms")
    meta_before = {"group_created": "1", "group_id": "9"}
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(400), meta=meta_before))
    assert len(outcomes) == 400 and set(statuses(outcomes).values()) == {"done"}
    assert meta == {"group_created": "1", "group_id": "2"}
    assert sandbox.requests(CREATE_EP) == 1
    assert len(emulator.members("fraud")) == 400
    assert emulator.counters.max_in_flight > 1


class CreateRefused(OzonetelEmulator):
    """Says the group is not there to updates, and refuses the create with ``answer``."""

    answer: dict[str, Any] = {}

    def _create(self, request: httpx.Request) -> dict[str, Any]:
        self._authenticate(request)
        raise _error(self.answer["message"], self.answer.get("errors"))


@pytest.mark.parametrize(
    "answer",
    [
        {"message": "Group name already exists"},
        {"message": "Duplicate entry 'fraud' for key 'name'"},
        {"message": "invalid data", "errors": {"name": "Name (fraud) already exists"}},
    ],
)
def test_a_create_refused_in_any_words_is_retryable(sandbox: Sandbox, answer: dict) -> None:
    """Whatever the create's refusal says (our valid name cannot break the 2-50 rule), the
    numbers are re-sent: the re-send's update finds a group made meanwhile."""
    emulator = sandbox.start(type("Refused", (CreateRefused,), {"answer": answer}))
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(3)))
    assert [o.status for o in outcomes] == ["retryable"] * 3
    assert answer["message"] in outcomes[0].reason
    assert outcomes[1].reason.startswith("not sent: the group could not be created")
    assert meta == {}
    assert emulator.members("fraud") == {}


def test_a_create_refusing_the_number_format_fails_that_number(sandbox: Sandbox) -> None:
    """The documented invalid-format refusal is permanent for the create's number; the
    numbers it did not carry are re-sent."""
    refused = {"message": INVALID_DATA, "errors": {"blockNumbers": BAD_NUMBERS}}
    sandbox.start(type("Refused", (CreateRefused,), {"answer": refused}))
    outcomes, _ = sandbox.drive(lambda a: apply(a, adds=adds(3)))
    assert [o.status for o in outcomes] == ["failed", "retryable", "retryable"]
    assert outcomes[0].reason == f"invalid data (blockNumbers: {BAD_NUMBERS})"


class FormatRefused(OzonetelEmulator):
    """Refuses every update with the documented invalid-format error."""

    def _update(self, request: httpx.Request) -> dict[str, Any]:
        self._authenticate(request)
        raise _error(INVALID_DATA, {"blockNumbers": BAD_NUMBERS})


def test_the_invalid_format_error_fails_the_whole_update(sandbox: Sandbox) -> None:
    sandbox.start(FormatRefused)
    outcomes, _ = sandbox.drive(lambda a: apply(a, adds=adds(3), meta=CREATED, target=VENDOR))
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert sandbox.requests(CREATE_EP) == 0


def test_an_invalid_group_name_fails_the_whole_batch(sandbox: Sandbox) -> None:
    """A name breaking the documented 2-50 rule (not caught by validation here): the
    create's "invalid data" (name) fails every op with Ozonetel's words."""
    sandbox.start()
    target = Target("ozonetel/X", "ozonetel", "ozonetel", (("group", "X"),))
    outcomes, meta = sandbox.drive(lambda a: apply(a, adds=adds(3), target=target))
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert outcomes[0].reason == "invalid data (name: Name (X) allows 2 to 50 characters only)"
    assert meta == {}


def test_numbers_under_output_error_on_add_are_retryable(sandbox: Sandbox) -> None:
    """Per-number failures of create and update (no reason given, nothing documents them
    as permanent) are re-sent; the rest are done."""
    emulator = sandbox.start(faults="partial=0.3,seed=3")
    outcomes, _ = sandbox.drive(lambda a: apply(a, adds=adds(101)))
    members = emulator.members("fraud")
    retry = [o for o in outcomes if o.status == "retryable"]
    assert 0 < len(retry) < 101 and emulator.counters.faults["partial"] == len(retry)
    assert all(o.reason == ADD_FAILED for o in retry)
    assert all(o.op.number not in members for o in retry)
    assert all(o.op.number in members for o in outcomes if o.status == "done")


def test_numbers_under_output_error_on_delete_are_unconfirmed(sandbox: Sandbox) -> None:
    """A number the delete failed to delete is listed under output.error like an absent one:
    `unconfirmed` (re-sent; absent only if every send says so), never `already`."""
    emulator = sandbox.start(faults="partial=1.0")
    ops = removes(["+919811100001", "+919811100002"])
    meta = {"group_created": "1", "group_id": "1"}
    outcomes, _ = sandbox.drive(lambda a: apply(a, ops, meta=meta, target=VENDOR))
    assert [(o.status, o.reason) for o in outcomes] == [("unconfirmed", REMOVE_UNCONFIRMED)] * 2
    assert len(emulator.members("vendor-spam")) == 2


def test_a_remove_of_a_number_not_in_the_group_is_unconfirmed(sandbox: Sandbox) -> None:
    """Absent numbers are listed under output.error (or in neither list, as some servers
    may do, while the input echoes them): `unconfirmed`; the present one is done."""
    sandbox.start()
    meta = {"group_created": "1", "group_id": "1"}
    ops = removes(["+919811100001", "+919999999999"])
    outcomes, _ = sandbox.drive(lambda a: apply(a, ops, meta=meta, target=VENDOR))
    absent = REMOVE_UNANSWERED if sandbox.dialect == "lean" else REMOVE_UNCONFIRMED
    assert [(o.status, o.reason) for o in outcomes] == [
        ("done", None),
        ("unconfirmed", absent),
    ]


class Mute(OzonetelEmulator):
    """Answers deletes with status success, and says nothing of the numbers at all."""

    def _delete(self, request: httpx.Request) -> dict[str, Any]:
        body = super()._delete(request)
        return {**body, "input": {"id": 1}, "output": {"success": [], "error": [], "deleted": 0}}


def test_a_remove_the_reply_does_not_mention_is_retryable(default_sandbox: Sandbox) -> None:
    default_sandbox.start(Mute)
    meta = {"group_created": "1", "group_id": "1"}
    outcomes, _ = default_sandbox.drive(
        lambda a: apply(a, removes(["+919811100001"]), meta=meta, target=VENDOR)
    )
    assert [(o.status, o.reason) for o in outcomes] == [("retryable", NOT_REPORTED)]


def test_a_delete_of_an_unknown_group_fails_clearly(sandbox: Sandbox) -> None:
    """ "Invalid group id" is not taken for absent numbers: failed, with what to do."""
    sandbox.start()
    ops = removes(["+919811100001", "+919999999999"])
    unknown = Target("ozonetel/gone", "ozonetel", "ozonetel", (("group", "gone"),))
    outcomes, _ = sandbox.drive(lambda a: apply(a, ops, meta={"group_id": "7"}, target=unknown))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[0].reason.startswith("Invalid group id: Ozonetel has no group 'gone' with id 7")


def test_the_group_id_learned_by_an_update_selects_the_delete(sandbox: Sandbox) -> None:
    """The id an update's reply echoes (`input.id`) is recorded and sent on deletes with the
    name: a server that selects a delete's group by id alone finds it."""
    emulator = sandbox.start()

    async def scenario(adapter: OzonetelAdapter):
        added, meta = await apply(adapter, adds=adds(2), target=VENDOR)
        removed, _ = await apply(adapter, removes(["+919700000000"]), meta=meta, target=VENDOR)
        return added + removed, meta

    outcomes, meta = sandbox.drive(scenario)
    assert meta["group_id"] == "1"
    assert [o.status for o in outcomes] == ["done"] * 3
    assert sandbox.bodies("/ca_apis/deleteBlockNumber")[0]["id"] == 1
    assert "+919700000000" not in emulator.members("vendor-spam")


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
    # the resent delete finds the number gone: unconfirmed (the executor sends it again)
    assert [o.status for o in removed.outcomes] == ["unconfirmed"]
    assert list(emulator.members("vendor-spam")) == ["+919811100002"] + [o.number for o in ops]


# -- auth and tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_bad_credentials_raise_auth_error_after_one_request(sandbox: Sandbox, mode: str) -> None:
    """Three batches at once with a wrong key: one request, and each batch an AuthError."""
    emulator = sandbox.start(auth_mode=mode)
    bad = {"username": "sandbox", "api_key": "not-the-key-4242"}

    async def scenario(adapter: OzonetelAdapter):
        batches = adapter.batches(TARGET, [], adds(300), CREATED)
        return await asyncio.gather(
            *(adapter.send(TARGET, b) for b in batches), return_exceptions=True
        )

    errors = sandbox.drive(scenario, credentials=bad, options={"auth_mode": mode})
    assert len(errors) == 3 and all(type(e) is AuthError for e in errors)
    assert sandbox.requests() == 1
    assert emulator.counters.auth_failures == 1
    assert all("not-the-key-4242" not in str(e) and "ozonetel" in str(e) for e in errors)


def test_token_mode_against_a_basic_account_is_an_auth_error(sandbox: Sandbox) -> None:
    sandbox.start(auth_mode="basic")
    with pytest.raises(AuthError, match="Authentication failed"):
        sandbox.drive(lambda a: apply(a, adds=adds(1), meta=CREATED))
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
    emulator = sandbox.start(faults="latency=10ms")
    outcomes, _ = sandbox.drive(lambda a: apply(a, adds=adds(800), meta=CREATED, target=VENDOR))
    assert len(outcomes) == 800 and {o.status for o in outcomes} == {"done"}
    assert sandbox.requests(TOKEN_EP) == 1
    assert sandbox.requests(UPDATE_EP) == 8
    assert 1 < emulator.counters.max_in_flight <= OzonetelAdapter.capabilities.concurrency_limit


def test_an_expired_token_is_renewed_once_however_many_requests_wait(sandbox: Sandbox) -> None:
    """After 60 minutes the next requests meet "Token Expired" (HTTP 401 in some dialects;
    or, arriving after the renewal, "Authentication failed" for the superseded token): one
    new token however many requests were in flight, and one resend each."""
    emulator = sandbox.start(faults="latency=5ms")

    async def scenario(adapter: OzonetelAdapter):
        first = await apply(adapter, adds=adds(100), meta=CREATED, target=VENDOR)
        emulator.clock.now += 3600
        second = await apply(adapter, adds=adds(400, 100), meta=CREATED, target=VENDOR)
        return first[0] + second[0]

    outcomes = sandbox.drive(scenario)
    assert len(outcomes) == 500 and {o.status for o in outcomes} == {"done"}
    assert sandbox.requests(TOKEN_EP) == 2
    assert 1 + 4 + 1 <= sandbox.requests(UPDATE_EP) <= 1 + 4 * 2
    assert emulator.counters.auth_failures <= 3  # only requests racing the renewal


def test_tokens_that_wear_out_are_renewed_as_often_as_needed(sandbox: Sandbox) -> None:
    """One token per run, renewed whenever it expires (in one dialect after 25 requests)."""
    emulator = sandbox.start()
    uses = emulator.quirks.token_uses

    async def scenario(adapter: OzonetelAdapter):
        out = []
        for op in adds(26):
            out += (await adapter.send(VENDOR, Batch([op]))).outcomes
        return out

    outcomes = sandbox.drive(scenario)
    assert [o.status for o in outcomes] == ["done"] * 26
    renewals = 0 if uses is None else (26 - 1) // uses
    assert sandbox.requests(TOKEN_EP) == 1 + renewals
    assert sandbox.requests(UPDATE_EP) == 26 + renewals  # each expired request sent again


def _spend_quota(emulator: OzonetelEmulator) -> None:
    """Ten tokens made within the hour (by other runs), the last one expired by now."""
    emulator.state["auth"]["generated_at"] = [T0 - 60 * i for i in range(10)]


def test_a_failed_renewal_fails_every_waiting_batch_with_one_request(sandbox: Sandbox) -> None:
    """The token expires while 8 batches wait; its renewal is refused for the quota: one
    generateToken, every batch gets the same quota error (not an AuthError, not
    retryable), none asks for a token of its own."""
    emulator = sandbox.start(faults="latency=5ms")

    async def scenario(adapter: OzonetelAdapter):
        await apply(adapter, adds=adds(1), meta=CREATED, target=VENDOR)
        emulator.clock.now += 3600
        emulator.state["auth"]["generated_at"] = [emulator.clock.now - i for i in range(10)]
        batches = adapter.batches(VENDOR, [], adds(800, 100), CREATED)
        return await asyncio.gather(
            *(adapter.send(VENDOR, b) for b in batches), return_exceptions=True
        )

    errors = sandbox.drive(scenario)
    assert len(errors) == 8 and all(type(e) is TokenQuotaError for e in errors)
    assert all(not isinstance(e, AuthError | RetryableError) for e in errors)
    assert QUOTA_ADVICE in str(errors[0])
    assert sandbox.requests(TOKEN_EP) == 2


def test_the_11th_token_in_an_hour_is_refused_locally(default_sandbox: Sandbox) -> None:
    emulator = default_sandbox.start()

    async def scenario(adapter: OzonetelAdapter):
        adapter.clock = FakeClock(0.0)
        for i in range(10):
            await apply(adapter, adds=adds(1, i), meta=CREATED, target=VENDOR)
            emulator.clock.now += 3600  # the token expires; the emulator's hour rolls on
        with pytest.raises(TokenQuotaError) as info:
            await apply(adapter, adds=adds(1, 10), meta=CREATED, target=VENDOR)
        return info.value

    error = default_sandbox.drive(scenario)
    assert error.endpoint == TOKEN_EP
    assert str(error).endswith(f"{QUOTA_ADVICE} (this run has generated 10 in the last hour)")
    assert default_sandbox.requests(TOKEN_EP) == 10


def test_ozonetels_own_quota_refusal_is_its_own_error(sandbox: Sandbox) -> None:
    """Whatever its words or HTTP status (not "Invalid userName or apiKey"), a refused
    generateToken is the quota error, with Ozonetel's words."""
    emulator = sandbox.start()
    _spend_quota(emulator)
    with pytest.raises(TokenQuotaError) as info:
        sandbox.drive(lambda a: apply(a, adds=adds(1)))
    assert not isinstance(info.value, AuthError | RetryableError)
    words = emulator.quirks.quota_answer[1]
    assert str(info.value).endswith(f"{QUOTA_ADVICE}; Ozonetel said: {words}")
    assert sandbox.requests() == 1


def test_a_given_token_is_used_and_never_generated(default_sandbox: Sandbox) -> None:
    emulator = default_sandbox.start()
    token = emulator.issue_token()
    outcomes, _ = default_sandbox.drive(
        lambda a: apply(a, adds=adds(150), meta=CREATED), credentials={**CREDS, "token": token}
    )
    assert {o.status for o in outcomes} == {"done"}
    assert default_sandbox.requests(TOKEN_EP) == 0
    assert {h["authorization"] for _, _, h, _ in default_sandbox.sent} == {f"Bearer {token}"}


@pytest.mark.parametrize("how", ["expired", "superseded"])
def test_a_given_token_refused_is_an_auth_error(sandbox: Sandbox, how: str) -> None:
    """A given token that expired, or that a newer one voided, is an AuthError saying so,
    after one request; no token is generated in its place."""
    emulator = sandbox.start()
    token = emulator.issue_token()
    if how == "expired":
        emulator.clock.now += 3600
    else:
        emulator.issue_token()
    with pytest.raises(AuthError, match="configured `token`") as info:
        sandbox.drive(
            lambda a: apply(a, adds=adds(3), meta=CREATED), credentials={**CREDS, "token": token}
        )
    assert ("has expired" in str(info.value)) is (how == "expired")
    assert token not in str(info.value)
    assert sandbox.requests() == 1 and sandbox.requests(TOKEN_EP) == 0


# -- throttling and malformed replies -----------------------------------------------------------------


def test_429_retry_after_is_surfaced(default_sandbox: Sandbox) -> None:
    default_sandbox.start(faults="429=1.0,retry_after=7")
    with pytest.raises(RetryableError) as info:
        default_sandbox.drive(lambda a: apply(a, adds=adds(1)))
    assert info.value.retry_after == 7
    assert info.value.status == 429


class ThrottlingEmulator(OzonetelEmulator):
    """Answers writes with CloudAgent's in-body throttling error, HTTP 200."""

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("generateToken"):
            return super().route(request)
        return httpx.Response(200, json={"message": "Max limit exceeded", "status": "error"})


def test_max_limit_exceeded_in_body_is_retryable(default_sandbox: Sandbox) -> None:
    default_sandbox.start(ThrottlingEmulator)
    with pytest.raises(RetryableError, match="Max limit exceeded"):
        default_sandbox.drive(lambda a: apply(a, removes(["+919811100001"])))


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
        ("update", httpx.Response(200, json={"status": "error", "message": MANDATORY}), UPDATE_EP),
        ("update", httpx.Response(400, text="Bad Request"), UPDATE_EP),
    ],
)
def test_malformed_replies_are_provider_errors(
    default_sandbox: Sandbox, path_part: str, response: httpx.Response, endpoint: str
) -> None:
    default_sandbox.start(_garbage(path_part, response))
    with pytest.raises(ProviderError) as info:
        default_sandbox.drive(lambda a: apply(a, adds=adds(2), meta=CREATED))
    assert type(info.value) is ProviderError
    assert info.value.provider == "ozonetel"
    assert info.value.endpoint == endpoint
    assert info.value.status == response.status_code


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_without_an_envelope_is_an_auth_error(
    default_sandbox: Sandbox, status: int
) -> None:
    default_sandbox.start(_garbage("update", httpx.Response(status, text="Forbidden")))
    with pytest.raises(AuthError):
        default_sandbox.drive(lambda a: apply(a, adds=adds(2), meta=CREATED))
