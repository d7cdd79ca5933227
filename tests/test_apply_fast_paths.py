"""The executor's fast paths give what its obvious paths give, and its state thread
keeps the recording contract (in order, only what was confirmed, nothing sent once
state cannot record).

- ``Executor.screen`` finds the ops the guard refuses with set operations; the obvious
  path asks ``Guard.refusal`` of every op, keeping each number once.
- ``Executor.record`` skips the "not reported" scan when the provider answered for every
  op, in order; the obvious path (``reference_record``, the code it replaced) always scans.
- ``StateWriter`` writes from its own thread, grouping what was queued meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import sys
import threading
import time
import weakref
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.apply import (
    MORE_ROUNDS,
    SWITCH_INTERVAL,
    Executor,
    Guard,
    StateWriter,
    _Actions,
    _BatchRun,
    _Left,
    redacted,
)
from reconciler.connections import provider_client
from reconciler.domain import Batch, BatchResult, ManagedEntry, Op, Outcome, Target
from reconciler.errors import StateError
from reconciler.gcpause import built_to_last, frozen_heap, keep_alive
from reconciler.plan import Change, Plan, TargetPlan
from reconciler.policy import ProtectedRanges
from reconciler.providers import ProviderAdapter
from reconciler.providers.ozonetel import OzonetelAdapter
from reconciler.providers.phonely import PhonelyAdapter
from reconciler.sandbox.ozonetel import OzonetelEmulator
from reconciler.sandbox.server import serve
from reconciler.state import open_state
from reconciler.state.base import BatchRecord

NUMBERS = [f"+9190000000{i:02d}" for i in range(16)]
NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def slow_screen(guard: Guard, target: Target, ops: list[Op], managed: set[str]):
    """The obvious path: every op through ``Guard.refusal``, each number once."""
    out, refused, seen = [], [], set()
    for op in ops:
        if op.number in seen:
            continue
        seen.add(op.number)
        why = guard.refusal(target, op.kind, op.number, managed)
        if why is None:
            out.append(op)
        else:
            refused.append((op, why))
    return out, refused


guards = st.builds(
    Guard,
    protected=st.frozensets(st.sampled_from(NUMBERS), max_size=4),
    opt_outs=st.dictionaries(
        st.sampled_from(["t/a", "t/b"]), st.frozensets(st.sampled_from(NUMBERS), max_size=4)
    ),
    ranges=st.sampled_from(
        [
            ProtectedRanges(),
            ProtectedRanges(prefixes={"+91900000000": "p.yaml:1"}),
            ProtectedRanges(ranges=(("+919000000010", "+919000000012", "p.yaml:2"),)),
        ]
    ),
)
ops_lists = st.lists(
    st.builds(Op, kind=st.sampled_from(["add", "remove"]), number=st.sampled_from(NUMBERS)),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(
    guard=guards,
    ops=ops_lists,
    managed=st.sets(st.sampled_from(NUMBERS)),
    exclusive=st.booleans(),
    name=st.sampled_from(["t/a", "t/b"]),
)
def test_screen_equals_asking_the_guard_of_every_op(
    guard: Guard, ops: list[Op], managed: set[str], exclusive: bool, name: str
) -> None:
    target = Target(name, "p", "phonely", (("agent_id", "a"),), exclusive)
    tp = TargetPlan(target, True, [], 0, "")
    executor = Executor(None, None, guard=guard)  # type: ignore[arg-type]
    for seen_as in (managed, dict.fromkeys(managed).keys()):  # a set, or state's keys
        assert executor.screen(tp, ops, seen_as) == slow_screen(guard, target, ops, managed)


def reference_record(executor: Executor, tp: TargetPlan, result: BatchResult, actions, run):
    """``Executor.record`` as it was before the fast path (state calls collected)."""
    name = tp.target.name
    run.sends += 1
    upserts, deletes, pending = [], [], {}
    left = _Left([])
    applied = executor.applied()
    reported = {id(o.op) for o in result.outcomes}
    outcomes = list(result.outcomes)
    outcomes += [
        Outcome(op, "retryable", "not reported by the provider")
        for op in run.pending.ops
        if id(op) not in reported
    ]
    for o in outcomes:
        op = o.op
        action = actions.get(op.number, op.kind)
        if o.ok:
            if op.kind == "add":
                ids = o.provider_ids or op.provider_ids
                upserts.append(
                    ManagedEntry(
                        op.number, op.expires, op.reason, op.attrs, ids, op.source, applied=applied
                    )
                )
                executor.report.done[name][action] += 1
            else:
                deletes.append(op.number)
                if action != "update":
                    executor.report.done[name][action] += 1
        elif o.status in ("retryable", "unconfirmed"):
            if o.status == "unconfirmed":
                run.unconfirmed[op.number] += 1
            left.ops.append(op)
            left.reasons[op.number] = o.reason or "not carried out (no reason given)"
            if o.retry_after is not None:
                left.retry_after = max(left.retry_after or 0.0, o.retry_after)
        else:
            reason = o.reason or "failed (no reason given)"
            executor.failure(name, op.number, action, reason)
            if op.kind == "remove":
                pending[op.number] = reason
    left.ok = sum(1 for o in result.outcomes if o.ok)  # what attempt() counted for progress
    records = []
    if upserts or deletes or pending or result.target_meta:
        records.append(BatchRecord(name, upserts, deletes, result.target_meta, pending))
    return left, records


class Collecting:
    """A writer that keeps what it is given (``record``'s only state call)."""

    def __init__(self) -> None:
        self.records: list[BatchRecord] = []

    def record(self, target, upserts=(), deletes=(), meta=None, *, pending=None) -> None:  # noqa: ANN001
        self.records.append(BatchRecord(target, upserts, deletes, meta, pending))


statuses = st.sampled_from(["done", "already", "failed", "retryable", "unconfirmed"])


@settings(max_examples=300, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["add", "remove"]), min_size=1, max_size=8),
    answers=st.lists(
        st.tuples(st.integers(0, 7), statuses, st.sampled_from([None, "busy"])), max_size=10
    ),
    in_order=st.booleans(),
    meta=st.sampled_from([None, {"group_id": "3"}]),
)
def test_record_equals_the_path_that_always_looks_for_unreported_ops(
    kinds: list[str], answers: list, in_order: bool, meta: dict | None
) -> None:
    """Whatever the provider answered (every op in order, some, some twice, none), the
    outcomes, what is left, the report and what goes to state are the obvious path's."""
    ops = [Op(k, NUMBERS[i], reason="r") for i, k in enumerate(kinds)]
    if in_order:  # the common case: one outcome per op, in the order sent
        answers = [(i, s, w) for i, (_, s, w) in zip(range(len(ops)), answers, strict=False)]
        answers += [(i, "done", None) for i in range(len(answers), len(ops))]
    outcomes = [Outcome(ops[i % len(ops)], s, w) for i, s, w in answers]
    changes = [Change("update" if i == 0 else op.kind, op.number) for i, op in enumerate(ops)]
    tp = TargetPlan(Target("t/a", "p", "phonely"), True, changes, 0, "")
    batch = Batch(list(ops))
    results = []
    for path in ("fast", "slow"):
        executor = Executor(None, None)  # type: ignore[arg-type]
        writer = Collecting()
        executor._writer = writer  # type: ignore[assignment]
        executor.applied = lambda: None  # type: ignore[method-assign]
        run = _BatchRun(batch)
        result = BatchResult(list(outcomes), target_meta=meta or {})
        actions = _Actions(tp)
        if path == "fast":
            left = executor.record(tp, result, actions, run)
            records = writer.records
        else:
            left, records = reference_record(executor, tp, result, actions, run)
        records = [replace(r, upserts=list(r.upserts), deletes=list(r.deletes)) for r in records]
        results.append(
            (
                left,
                records,
                {k: dict(v) for k, v in executor.report.done.items()},
                executor.report.failures,
                run.sends,
                run.unconfirmed,
            )
        )
    assert results[0] == results[1]


class Redacting:
    _credentials = {"key": "s3cr3t-key", "token": "1234:abcdef"}
    redact = ProviderAdapter.redact


@given(
    st.lists(
        st.sampled_from(
            [None, "", "busy", "bad key s3cr3t-key", "token 1234:abcdef refused", "abcdef?"]
        ),
        max_size=12,
    )
)
def test_redacted_equals_redacting_every_reason(reasons: list) -> None:
    """Redacting each distinct reason once (and copying only what changes) gives the
    outcomes that redacting every outcome's reason gives."""
    adapter = Redacting()
    outcomes = [Outcome(Op("add", NUMBERS[i]), "failed", r) for i, r in enumerate(reasons)]
    expected = [replace(o, reason=adapter.redact(o.reason)) if o.reason else o for o in outcomes]
    assert redacted(adapter, outcomes) == expected  # type: ignore[arg-type]
    assert all("s3cr3t" not in (o.reason or "") for o in redacted(adapter, outcomes))  # type: ignore[arg-type]


def test_lazy_actions_are_the_plans_actions() -> None:
    changes = [Change("remove", NUMBERS[0]), Change("add", NUMBERS[1]), Change("readd", NUMBERS[2])]
    tp = TargetPlan(Target("t/a", "p", "phonely"), True, changes, 0, "")
    actions = _Actions(tp)
    assert [actions.get(n, "x") for n in NUMBERS[:4]] == ["remove", "add", "readd", "x"]


# -- the state thread ---------------------------------------------------------------------


def test_state_writer_records_in_order_in_its_own_thread(tmp_path: Path) -> None:
    """Batches queued one after another end up as if recorded one by one (a later
    delete wins over an earlier upsert), from a thread that is not the caller's, and a
    read through ``call`` sees every write queued before it."""
    threads: set[str] = set()

    async def scenario(state) -> tuple[dict, int]:  # noqa: ANN001
        record_batches = state.record_batches

        def noted(records):  # noqa: ANN001
            threads.add(threading.current_thread().name)
            time.sleep(0.01)  # slow commits: later batches queue up meanwhile
            return record_batches(records)

        state.record_batches = noted
        writer = StateWriter(state)
        try:
            for i in range(30):
                writer.record("t/a", [ManagedEntry(NUMBERS[i % 5], reason=str(i))])
                if i % 7 == 6:
                    writer.record("t/a", deletes=[NUMBERS[i % 5]])
                await asyncio.sleep(0)
            seen = await writer.call(state.read_target, "t/a")
            await writer.flush()
        finally:
            writer.close()
        return seen, state.serial()

    with open_state("sqlite", path=tmp_path / "state.db") as state:
        seen, serial = asyncio.run(scenario(state))
    expected: dict[str, str] = {}
    for i in range(30):
        expected[NUMBERS[i % 5]] = str(i)
        if i % 7 == 6:
            expected.pop(NUMBERS[i % 5])
    assert {n: e.reason for n, e in seen.items()} == expected
    assert serial == 30 + 4  # one per batch, however they were grouped
    assert threads and threading.current_thread().name not in threads


class CountingAdapter:
    """A one-at-a-time provider that confirms everything and counts its requests."""

    instance = "p"
    capabilities = replace(PhonelyAdapter.capabilities, concurrency_limit=1)
    batch_size = 2
    concurrency = 1

    def __init__(self) -> None:
        self.sent = 0

    def batches(self, target, removes, adds, meta):  # noqa: ANN001
        return PhonelyAdapter.batches(self, target, removes, adds, meta)  # type: ignore[arg-type]

    def head_batches(self, target, removes, adds, meta):  # noqa: ANN001
        return []  # its own grouping: nothing sent before its whole set-up

    async def prepare_writes(self) -> None:
        return None

    def redact(self, text: str) -> str:
        return text

    async def send(self, target, batch):  # noqa: ANN001
        self.sent += 1
        await asyncio.sleep(0.02)  # the state thread's failed write lands meanwhile
        return BatchResult([Outcome(op, "done") for op in batch.ops])


def adapter_if(self, name: str) -> None:
    """A fake ``Connections.opened``: no adapter open before the apply (no refresh)."""
    return None


def limits_of(self, name: str) -> tuple[int, int]:
    """A fake ``Connections.write_limits``: the ``CountingAdapter``'s."""
    return CountingAdapter.batch_size, CountingAdapter.concurrency


def test_a_failed_state_write_stops_the_apply_with_the_state_error(tmp_path: Path) -> None:
    """When state cannot record a confirmed batch, apply raises that StateError (as a
    synchronous write did) and sends nothing after it learned of it."""
    adapter = CountingAdapter()
    conns = type(
        "Conns",
        (),
        {"adapter": lambda self, name: adapter, "opened": adapter_if, "write_limits": limits_of},
    )()
    target = Target("p/a", "p", "phonely", (("agent_id", "a"),))
    changes = [Change("add", n) for n in NUMBERS[:12]]  # 6 requests of 2
    tp = TargetPlan(target, True, changes, 0, "")
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        real = state.record_batches
        calls = Counter()

        def failing(records):  # noqa: ANN001
            calls["writes"] += 1
            if calls["writes"] >= 2:
                raise StateError("disk full")
            return real(records)

        state.record_batches = failing
        with pytest.raises(StateError, match="disk full"):
            asyncio.run(Executor(conns, state).run(Plan(NOW, [tp])))
        recorded = set(state.read_target("p/a"))
    assert recorded == set(NUMBERS[:2])  # the first confirmed batch, nothing else
    assert adapter.sent < 6  # it stopped sending


class SlowSetUpAdapter(CountingAdapter):
    """Groups its ops slowly (as 20 000 ops take a while) and notes when and where."""

    def __init__(self, events: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.events = events

    def batches(self, target, removes, adds, meta):  # noqa: ANN001
        self.events.append(("batches", target.name, threading.current_thread().name))
        time.sleep(0.05)
        return super().batches(target, removes, adds, meta)

    async def send(self, target, batch):  # noqa: ANN001
        self.events.append(("send", target.name, threading.current_thread().name))
        return await super().send(target, batch)


def test_targets_are_set_up_in_order_off_the_loop_and_send_as_each_is_ready(
    tmp_path: Path,
) -> None:
    """Each target's set-up (ops, screening, batches) runs in the set-up thread, the
    targets one after another in plan order, when their adapters are open already (as
    the plan's refresh leaves them); the first sends while the others are still being
    set up; a target with nothing to send never opens its adapter."""
    events: list[tuple[str, str, str]] = []
    names = ["p/a", "p/b", "p/c"]
    adapters = {name: SlowSetUpAdapter(events) for name in names}
    asked: list[str] = []

    def adapter(self, name: str) -> SlowSetUpAdapter:  # noqa: ANN001
        asked.append(name)
        return adapters.setdefault(name, SlowSetUpAdapter(events))

    conns = type(
        "Conns",
        (),
        {"adapter": adapter, "opened": lambda self, n: adapters.get(n), "write_limits": limits_of},
    )()
    plans = [
        TargetPlan(
            Target(name, name, "phonely", (("agent_id", name),)),
            True,
            [Change("add", n) for n in NUMBERS[:4]],
            0,
            "",
        )
        for name in names
    ]
    idle = TargetPlan(Target("q/a", "q/a", "phonely", (("agent_id", "q"),)), True, [], 0, "")
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        asyncio.run(Executor(conns, state).run(Plan(NOW, [*plans, idle])))
        assert {t: len(state.read_target(t)) for t in names} == dict.fromkeys(names, 4)
    set_ups = [(target, thread) for kind, target, thread in events if kind == "batches"]
    assert [target for target, _ in set_ups] == names
    assert all(thread.startswith("blocklist-setup") for _, thread in set_ups)
    first_send = next(i for i, e in enumerate(events) if e[0] == "send")
    assert events[first_send][1] == "p/a"
    last_set_up = max(i for i, e in enumerate(events) if e[0] == "batches")
    assert first_send < last_set_up  # p/a was sending while p/c was still being set up
    assert "q/a" not in asked


# -- the collector during a run -------------------------------------------------------------


def test_frozen_heap_freezes_for_the_block_only_and_leaves_a_frozen_heap_frozen() -> None:
    class Cycle:
        pass

    def cycle() -> weakref.ref:
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        return weakref.ref(a)

    gc.collect()
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        gone = cycle()  # made inside: collected as usual
        gc.collect()
        assert gone() is None
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        kept = cycle()  # alive on entry of the next block...
        raise RuntimeError
    assert gc.get_freeze_count() == 0
    with frozen_heap():  # nested (an apply's executor inside the apply): one unfreeze
        with frozen_heap() as freeze_more:
            inner = cycle()
            freeze_more()
        assert gc.get_freeze_count() > 0  # still the outer block's
        del inner
    assert gc.get_freeze_count() == 0
    gc.freeze()  # the embedding program froze its heap: left as it is
    try:
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    gc.collect()
    assert kept() is None  # ...and garbage after it, collected once the run is over


def test_a_nested_frozen_heap_does_not_count_the_frozen_heap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``gc.get_freeze_count()`` walks the whole frozen heap (9 ms after a saved plan's
    recompute, each time the executor started inside the apply's own block): a block
    nested in one of ours knows the heap is ours without asking."""
    import reconciler.gcpause as gcpause

    gc.collect()
    with frozen_heap():
        counted: list[int] = []
        counting = gc.get_freeze_count

        def get_freeze_count() -> int:
            counted.append(1)
            return counting()

        monkeypatch.setattr(gcpause.gc, "get_freeze_count", get_freeze_count)
        with frozen_heap():
            pass
        monkeypatch.undo()
        assert counted == []
        assert gc.get_freeze_count() > 0  # the outer block's, still frozen
    assert gc.get_freeze_count() == 0


def test_keep_alive_freezes_only_inside_a_frozen_heap_of_ours() -> None:
    gc.collect()
    keep_alive()  # outside any block: nothing
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        before = gc.get_freeze_count()
        made = [[i] for i in range(1000)]
        keep_alive()
        assert gc.get_freeze_count() >= before + len(made)
    assert gc.get_freeze_count() == 0
    del made
    gc.freeze()  # the embedding program's frozen heap: neither grown nor undone
    try:
        with frozen_heap():
            before = gc.get_freeze_count()
            alive = [[i] for i in range(1000)]
            keep_alive()
            assert gc.get_freeze_count() == before
            del alive
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


def test_what_is_built_to_last_is_built_without_the_collector_and_frozen() -> None:
    gc.collect()
    with frozen_heap():
        with built_to_last():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]
        assert gc.isenabled()
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(x) in tracked for x in made)
    assert gc.get_freeze_count() == 0


def test_a_refresh_keeps_each_targets_live_entries_out_of_the_collectors_sight() -> None:
    """Read inside a frozen heap, the live entries are frozen as each target is read (a
    full collection during the rest of the refresh would traverse them all)."""
    from reconciler.domain import LiveEntry
    from reconciler.operations.common import refresh_targets

    frozen_after: dict[str, int] = {}

    class Reader:
        async def refresh(self, target: Target) -> list[LiveEntry]:
            await asyncio.sleep(0)
            frozen_after.setdefault("first read starts", gc.get_freeze_count())
            return [LiveEntry(f"+9198765{i:05d}", attrs=((target.name, "x"),)) for i in range(2000)]

    conns = type("Conns", (), {"adapter": lambda self, name: Reader()})()
    targets = [Target(f"p/{a}", "p", "phonely", (("agent_id", a),)) for a in "ab"]
    gc.collect()
    with frozen_heap():
        live = asyncio.run(refresh_targets(conns, targets))
        assert gc.get_freeze_count() >= frozen_after["first read starts"] + 2 * 2000
        assert all(len(entries) == 2000 for entries in live.values())
    assert gc.get_freeze_count() == 0
    asyncio.run(refresh_targets(conns, targets))  # no block: nothing frozen
    assert gc.get_freeze_count() == 0


def test_an_apply_leaves_the_heap_unfrozen_even_when_it_fails(tmp_path: Path) -> None:
    """During a run the heap is frozen and threads switch every ``SWITCH_INTERVAL``; after
    it, failed or not, both are as they were."""
    adapter = CountingAdapter()
    conns = type(
        "Conns",
        (),
        {"adapter": lambda self, name: adapter, "opened": adapter_if, "write_limits": limits_of},
    )()
    target = Target("p/a", "p", "phonely", (("agent_id", "a"),))
    tp = TargetPlan(target, True, [Change("add", n) for n in NUMBERS[:4]], 0, "")
    frozen_during: list[int] = []
    switching_during: list[float] = []
    switching = sys.getswitchinterval()

    async def send(target, batch):  # noqa: ANN001
        frozen_during.append(gc.get_freeze_count())
        switching_during.append(sys.getswitchinterval())
        raise ValueError("a bug in an adapter")

    adapter.send = send  # type: ignore[method-assign]
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        with pytest.raises(ValueError, match="a bug"):
            asyncio.run(Executor(conns, state).run(Plan(NOW, [tp])))
        asyncio.run(Executor(conns, state).run(Plan(NOW, [])))
    assert frozen_during and all(n > 0 for n in frozen_during)  # the plan out of sight
    assert gc.get_freeze_count() == 0
    assert switching_during == [min(switching, SWITCH_INTERVAL)] * len(switching_during)
    assert sys.getswitchinterval() == switching


# -- a target's first requests, before the rest is set up -------------------------------------

HEAD_TYPES = ["ozonetel", "kaleyra", "wooxy", "phonely", "lox24"]
EXPIRIES_SEEN = [
    None,
    dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2027, 6, 1, tzinfo=dt.UTC),
]


def batch_key(batch: Batch) -> tuple:
    return (batch.phase, tuple(op.number for op in batch.ops), tuple(sorted(batch.fields.items())))


@settings(max_examples=400, deadline=None)
@given(
    type_name=st.sampled_from(HEAD_TYPES),
    size=st.integers(1, 5),
    width=st.integers(1, 4),
    removed=st.just(0) | st.integers(1, 20),  # half of them adds only
    added=st.lists(st.sampled_from(EXPIRIES_SEEN), max_size=40),
    known_group=st.booleans(),
    first=st.integers(1, 30),
    following=st.integers(0, 30),
)
def test_head_and_rest_batches_are_the_batches_of_everything(
    type_name: str,
    size: int,
    width: int,
    removed: int,
    added: list,
    known_group: bool,
    first: int,
    following: int,
) -> None:
    """Apply sends ``head_batches`` of a target's first ops (its first removes, or its
    first adds when it has none) before the rest is built, then ``head_batches`` of what
    that head left and the ``following`` ops of its kind (its next rounds), then
    ``batches`` of the rest (what the heads left first): together, exactly the requests
    ``batches`` makes of everything (no extra one, the same numbers each), the heads'
    all at the first phase of everything."""
    from reconciler.providers import adapter_class
    from reconciler.sandbox import emulator_class

    cls = adapter_class(type_name)
    options: dict = {"batch_size": size, "concurrency": width}
    if cls.capabilities.auth_modes:
        options["auth_mode"] = cls.capabilities.auth_modes[0]
    adapter = cls(type_name, None, dict(emulator_class(type_name).credentials), options)  # type: ignore[arg-type]
    scope_key = cls.capabilities.scope_fields[0] if cls.capabilities.scope_fields else "s"
    target = Target(f"{type_name}/x", type_name, type_name, ((scope_key, "x"),))
    meta = {"group_created": "1"} if known_group else {}
    numbers = [f"+9190000{i:05d}" for i in range(removed + len(added))]
    removes = [Op("remove", n) for n in numbers[:removed]]
    adds = [Op("add", n, e) for n, e in zip(numbers[removed:], added, strict=True)]
    everything = adapter.batches(target, removes, adds, meta)

    kind = removes or adds

    def cut(ops: list[Op]) -> tuple[list[Batch], list[Op]]:
        """``head_batches`` of these ops of the head's kind, and the ops in none."""
        head_removes, head_adds = (ops, []) if removes else ([], ops)
        batches = adapter.head_batches(target, head_removes, head_adds, meta)
        in_head = {id(op) for b in batches for op in b.ops}
        return batches, [op for op in ops if id(op) not in in_head]

    head, left = cut(kind[:first])
    more, left = cut(left + kind[first : first + following])
    taken = first + following
    if removes:
        rest = adapter.batches(target, left + removes[taken:], adds, meta)
    else:
        rest = adapter.batches(target, [], left + adds[taken:], meta)

    assert Counter(map(batch_key, head + more + rest)) == Counter(map(batch_key, everything))
    if head or more:
        assert {b.phase for b in head + more} == {min(b.phase for b in everything)}


class RecordingPhonely(PhonelyAdapter):
    """Phonely's batching (2 a request, ``concurrency`` at once, 2 unless told), a send
    that confirms everything and notes each batch and whether the target's rest was set
    up by then."""

    def __init__(self, events: list, concurrency: int = 2) -> None:
        options = {"batch_size": 2, "concurrency": concurrency}
        super().__init__("p", None, {"api_key": "k"}, options)  # type: ignore[arg-type]
        self.events = events

    async def send(self, target, batch):  # noqa: ANN001
        self.events.append(("send", tuple(op.number for op in batch.ops), batch.phase))
        await asyncio.sleep(0.01)
        return BatchResult([Outcome(op, "done") for op in batch.ops])


def recording_connections(adapter: RecordingPhonely, monkeypatch) -> object:
    """Fake connections with ``adapter`` open (2 a request, 2 at once); each target's
    rest set-up takes 0.2 s (as 20 000 ops do) and is noted in ``adapter.events``."""
    set_up = Executor._set_up

    def noted(self, tp, *args):  # noqa: ANN001, ANN202
        time.sleep(0.2)
        adapter.events.append(("rest set up",))
        return set_up(self, tp, *args)

    monkeypatch.setattr(Executor, "_set_up", noted)
    return type(
        "Conns",
        (),
        {
            "adapter": lambda self, name: adapter,
            "opened": lambda self, name: adapter,
            "write_limits": lambda self, name: (2, 2),
        },
    )()


def test_a_head_goes_first_and_the_rest_sends_each_number_once(tmp_path: Path, monkeypatch) -> None:
    """A target with more ops than its first requests hold sends those (its head) before
    its rest is built; refusals and repeats at the head's edge are handled once each:
    every number the guard lets through is sent exactly once, removes before adds, in
    the fewest requests, and each refused one is one failure."""
    events: list = []
    conns = recording_connections(RecordingPhonely(events), monkeypatch)
    n = [f"+9190000001{i:02d}" for i in range(40)]
    # the head takes 4 ops (2 a request, 2 at once): n[1] and n[11] again just after it
    removes = [n[0], n[1], n[2], n[3], n[1], n[4], n[5], n[6], n[7]]
    managed = {n[0], n[1], n[3], n[4], n[5], n[6], n[7]}  # not n[2]: refused
    adds = [n[10], n[11], n[12], n[13], n[11], *n[14:20]]
    changes = [Change("remove", x) for x in removes] + [Change("add", x) for x in adds]
    target = Target("p/a", "p", "phonely", (("agent_id", "a"),))
    tp = TargetPlan(target, True, changes, 0, "")
    guard = Guard(protected=frozenset({n[13]}))  # an add refused
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        executor = Executor(conns, state, guard=guard, managed={"p/a": managed})
        report = asyncio.run(executor.run(Plan(NOW, [tp])))
    sends = [e for e in events if e[0] == "send"]
    assert events.index(sends[0]) < events.index(("rest set up",))  # the head did not wait
    sent_removes = [x for e in sends if e[2] == 0 for x in e[1]]
    sent_adds = [x for e in sends if e[2] == 1 for x in e[1]]
    assert sorted(sent_removes) == sorted({*removes} - {n[2]})
    assert sorted(sent_adds) == sorted({*adds} - {n[13]})
    last_remove = max(i for i, e in enumerate(sends) if e[2] == 0)
    assert all(e[2] == 1 for e in sends[last_remove + 1 :])  # removes before adds
    assert len(sends) == -(-len(sent_removes) // 2) + -(-len(sent_adds) // 2)
    assert sorted(f.number for f in report.failures) == sorted([n[2], n[13]])


def test_a_heads_next_rounds_go_before_the_rest_and_each_number_once(
    tmp_path: Path, monkeypatch
) -> None:
    """The head's next ``MORE_ROUNDS`` rounds are set up before any target's rest (which
    takes long) and sent meanwhile; refusals and repeats at their edges are handled
    once each: every number the guard lets through is sent exactly once, in the fewest
    requests, and each refused one is one failure."""
    events: list = []
    conns = recording_connections(RecordingPhonely(events), monkeypatch)
    n = [f"+9190000007{i:02d}" for i in range(60)]
    following = 4 * (1 + MORE_ROUNDS)  # the ops the head and its next rounds take
    # a repeat of a head's number in the next rounds, one of theirs just after them,
    # and a refused number inside them and just after them
    adds = [*n[:6], n[1], *n[6:following], n[following - 2], *n[following:50]]
    protected = frozenset({n[9], n[following]})
    tp = TargetPlan(
        Target("p/a", "p", "phonely", (("agent_id", "a"),)),
        True,
        [Change("add", x) for x in adds],
        0,
        "",
    )
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        executor = Executor(conns, state, guard=Guard(protected=protected))
        report = asyncio.run(executor.run(Plan(NOW, [tp])))
    sends = [e for e in events if e[0] == "send"]
    early = sends[: events.index(("rest set up",))]
    # the head's first ops and its next rounds', screened, all sent before the rest
    screened = [x for x in dict.fromkeys(adds[:following]) if x not in protected]
    assert [x for e in early for x in e[1]] == screened
    sent = [x for e in sends for x in e[1]]
    assert sorted(sent) == sorted(set(adds) - protected)
    assert len(sends) == -(-len(sent) // 2)
    assert sorted(f.number for f in report.failures) == sorted(protected)


class OnePerCallPhonely(RecordingPhonely):
    """The same, removing one number a request (as Wooxy and LOX24 do)."""

    capabilities = replace(PhonelyAdapter.capabilities, remove_one_per_call=True)


def test_a_few_removes_go_before_the_adds_are_built(tmp_path: Path, monkeypatch) -> None:
    """A target with fewer removes than its first requests hold and many adds: the
    removes (one a request, each a whole batch) are its head, sent while the adds are
    being built, not after."""
    events: list = []
    conns = recording_connections(OnePerCallPhonely(events), monkeypatch)
    n = [f"+9190000002{i:02d}" for i in range(32)]
    changes = [Change("remove", x) for x in n[:2]] + [Change("add", x) for x in n[2:]]
    tp = TargetPlan(Target("p/a", "p", "phonely", (("agent_id", "a"),)), True, changes, 0, "")
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        executor = Executor(conns, state, managed={"p/a": set(n[:2])})
        report = asyncio.run(executor.run(Plan(NOW, [tp])))
    sends = [e for e in events if e[0] == "send"]
    assert [e[1] for e in sends[:2]] == [(n[0],), (n[1],)]  # the removes, one each, first
    assert events.index(sends[1]) < events.index(("rest set up",))
    assert sorted(x for e in sends if e[2] == 1 for x in e[1]) == n[2:]
    assert not report.failures


class TickingPhonely(RecordingPhonely):
    """Phonely batching 2 a request, 4 at once; at its first send, starts noting every
    turn of the event loop (a "tick" each) until the run ends."""

    def __init__(self, events: list) -> None:
        super().__init__(events, concurrency=4)
        self.ticking: asyncio.Task | None = None

    async def send(self, target, batch):  # noqa: ANN001
        if self.ticking is None:
            self.ticking = asyncio.ensure_future(self._tick())
        return await super().send(target, batch)

    async def _tick(self) -> None:
        while True:
            self.events.append(("tick",))
            await asyncio.sleep(0)


def test_a_targets_first_requests_are_started_a_turn_of_the_loop_apart(
    tmp_path: Path, monkeypatch
) -> None:
    """Each of a target's first requests is built in a turn of the event loop of its
    own, so the one before it is written meanwhile (its body is written in a later
    turn, after every callback ready before), not after all of them are built."""
    events: list = []
    adapter = TickingPhonely(events)
    conns = recording_connections(adapter, monkeypatch)
    conns.write_limits = lambda name: (2, 4)  # type: ignore[attr-defined]
    changes = [Change("add", f"+9190000005{i:02d}") for i in range(40)]
    tp = TargetPlan(Target("p/a", "p", "phonely", (("agent_id", "a"),)), True, changes, 0, "")
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        report = asyncio.run(Executor(conns, state).run(Plan(NOW, [tp])))
    assert adapter.ticking is not None and not report.failures
    adapter.ticking.cancel()
    head = {c.number for c in changes[:8]}  # its first round: 4 requests of 2
    first_round = [i for i, e in enumerate(events) if e[0] == "send" and head.issuperset(e[1])]
    assert len(first_round) == 4
    for before, after in zip(first_round, first_round[1:], strict=False):
        assert ("tick",) in events[before:after], events[: first_round[-1] + 1]


class HeldPhonely(RecordingPhonely):
    """Recording, as provider instance ``instance``; holding the event loop 20 ms
    (blocking, the GIL released) at its first send: a busy loop, while the set-up
    thread could work."""

    def __init__(self, events: list, instance: str) -> None:
        super().__init__(events)
        self.instance = instance
        self.held = False

    async def send(self, target, batch):  # noqa: ANN001
        if not self.held:
            self.held = True
            time.sleep(0.02)
        return await super().send(target, batch)


def test_the_set_up_thread_waits_for_every_first_round_before_its_later_jobs(
    monkeypatch, tmp_path: Path
) -> None:
    """Once the heads are set up, the set-up thread sets up nothing more (next rounds,
    rests) until every target's first requests have begun: its work slowed the event
    loop writing them (a first request at up to 66 ms instead of 33 in apply_bench)."""
    import reconciler.apply

    # the wait's cap (which only makes a later set-up slower) out of reach of a slow run
    monkeypatch.setattr(reconciler.apply, "FIRST_ROUNDS_WAIT_S", 30.0, raising=False)
    events: list = []
    names = ["a", "b", "c"]
    adapters = {name: HeldPhonely(events, name) for name in names}
    conns = type(
        "Conns",
        (),
        {
            "adapter": lambda self, name: adapters[name],
            "opened": lambda self, name: adapters[name],
            "write_limits": lambda self, name: (2, 2),
        },
    )()
    for method in ("_set_up_more", "_set_up"):
        job = getattr(Executor, method)

        def noted(self, tp, *args, job=job):  # noqa: ANN001, ANN202
            events.append(("set up", tp.target.name))
            return job(self, tp, *args)

        monkeypatch.setattr(Executor, method, noted)
    plans = [
        TargetPlan(
            Target(f"p/{name}", name, "phonely", (("agent_id", name),)),
            True,
            [Change("add", f"+91900000{k}{i:03d}") for i in range(40)],
            0,
            "",
        )
        for k, name in enumerate(names)
    ]
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        report = asyncio.run(Executor(conns, state).run(Plan(NOW, plans)))
    assert not report.failures
    assert sum(e[0] == "send" for e in events) == 3 * 20
    first_set_up = next(i for i, e in enumerate(events) if e[0] == "set up")
    sends = [e for e in events[:first_set_up] if e[0] == "send"]
    heads = {f"+91900000{k}{i:03d}" for k in range(3) for i in range(4)}  # 2 of 2 each
    assert {x for e in sends for x in e[1]} == heads, events[: first_set_up + 1]


class CollectorWatchingPhonely(RecordingPhonely):
    """Recording; at each send, notes how many of its batch's ops the cyclic collector
    would traverse (in its generations, not frozen)."""

    def __init__(self, events: list) -> None:
        super().__init__(events)
        self.traversed: list[int] = []

    async def send(self, target, batch):  # noqa: ANN001
        tracked = {id(o) for o in gc.get_objects()}
        self.traversed.append(sum(id(op) in tracked for op in batch.ops))
        return await super().send(target, batch)


def test_the_ops_an_apply_sets_up_are_kept_out_of_the_collectors_sight(
    tmp_path: Path, monkeypatch
) -> None:
    """Every op set up (head, next rounds, rest) is frozen with the plan: the young
    collections after each set-up, and the one that promotes them, otherwise traverse
    them all on whichever thread allocates next (3-10 and 22 ms each, the event loop
    held meanwhile, in the first 0.5 s of apply_bench's saved plan)."""
    events: list = []
    adapter = CollectorWatchingPhonely(events)
    conns = recording_connections(adapter, monkeypatch)
    changes = [Change("add", f"+9190000008{i:02d}") for i in range(40)]
    tp = TargetPlan(Target("p/a", "p", "phonely", (("agent_id", "a"),)), True, changes, 0, "")
    with open_state("sqlite", path=tmp_path / "state.db") as state:
        report = asyncio.run(Executor(conns, state).run(Plan(NOW, [tp])))
    assert not report.failures and len(adapter.traversed) == 20
    assert adapter.traversed == [0] * 20


# -- what a target's first requests need, fetched while its batches are built ---------------


def ozonetel_apply(
    tmp_path: Path,
    monkeypatch,
    credentials: dict[str, str],
    dialect: str | None = None,
    other: TargetPlan | None = None,
) -> tuple:
    """A first apply of 10 adds to a group state does not know, through a real Ozonetel
    adapter (2 a request, 2 at once) and the emulator in ``dialect`` over loopback (20
    ms latency), the adapter not open before (no refresh reads Ozonetel); the rest's
    set-up takes 0.2 s. ``other``, planned before it, goes to a ``CountingAdapter``
    open already (refreshed), its head's set-up 0.2 s. Returns (events: requests and
    set-ups in order, the report, the emulator's counters, the numbers, what state
    recorded)."""
    events: list = []
    emulator = OzonetelEmulator(persist=False, faults="latency=20ms", dialect=dialect)
    process = emulator.process

    def noted(request):  # noqa: ANN001, ANN202
        events.append(("request", request.url.path))
        return process(request)

    emulator.process = noted  # type: ignore[method-assign]
    set_up = Executor._set_up

    def slow(self, tp, *args):  # noqa: ANN001, ANN202
        time.sleep(0.2)
        events.append(("rest set up",))
        return set_up(self, tp, *args)

    monkeypatch.setattr(Executor, "_set_up", slow)
    set_up_head = Executor._set_up_head

    def slow_head(self, tp, *args):  # noqa: ANN001, ANN202
        if other is not None and tp.target.name == other.target.name:
            time.sleep(0.2)
            events.append(("other head set up",))
        return set_up_head(self, tp, *args)

    monkeypatch.setattr(Executor, "_set_up_head", slow_head)
    n = [f"+9190000003{i:02d}" for i in range(10)]
    target = Target("ozonetel/new", "ozonetel", "ozonetel", (("group", "new-group"),))
    tp = TargetPlan(target, True, [Change("add", x) for x in n], 0, "")
    with serve(emulator) as url, open_state("sqlite", path=tmp_path / "state.db") as state:

        async def main():  # noqa: ANN202
            async with provider_client(url) as client:
                opened: dict[str, object] = {}
                if other is not None:
                    opened[other.target.provider] = CountingAdapter()

                def adapter(self, name):  # noqa: ANN001, ANN202
                    if name not in opened:
                        options = {"batch_size": 2, "concurrency": 2}
                        opened[name] = OzonetelAdapter(name, client, credentials, options)
                    return opened[name]

                conns = type(
                    "Conns",
                    (),
                    {
                        "adapter": adapter,
                        "opened": lambda self, name: opened.get(name),
                        "write_limits": lambda self, name: (2, 2),
                    },
                )()
                return await Executor(conns, state).run(Plan(NOW, [*filter(None, [other]), tp]))

        report = asyncio.run(main())
        recorded = state.read_target(target.name)
    return events, report, emulator.counters.to_dict(), n, recorded


@pytest.mark.parametrize("dialect", sorted(OzonetelEmulator.dialects))
def test_ozonetels_token_is_fetched_while_its_first_batches_are_built(
    tmp_path: Path, monkeypatch, dialect: str
) -> None:
    """A first apply to an Ozonetel group state does not know sends nothing before all
    its batches are built (its probe is chosen from all its adds); the token every
    request needs is generated meanwhile, not after: once, and every number is added
    in the fewest requests."""
    events, report, counters, n, recorded = ozonetel_apply(
        tmp_path, monkeypatch, dict(OzonetelEmulator.credentials), dialect
    )
    token = ("request", "/ca_apis/CAToken/generateToken")
    assert events.index(token) < events.index(("rest set up",))
    assert events.count(token) == 1
    assert not report.failures and sorted(recorded) == n
    writes = counters["requests"]
    # the probe (2, refused: no such group), the create (1) and its rest (1), then 4 of 2
    assert writes["PUT /ca_apis/updateBlockNumbers"] == 6
    assert writes["POST /ca_apis/createBlockNumber"] == 1


def test_a_target_not_refreshed_is_set_up_first_so_its_token_is_not_held_back(
    tmp_path: Path, monkeypatch
) -> None:
    """Ozonetel is not read by a plan: its adapter is opened by the apply, and its first
    request also waits for a connection and a token. Its head is set up before those
    of targets planned before it (refreshed, their adapters open), so the token is
    asked for while their heads are built, not after."""
    numbers = [f"+9190000004{i:02d}" for i in range(6)]
    target = Target("kaleyra/sms", "p", "phonely", (("agent_id", "bot"),))
    other = TargetPlan(target, True, [Change("add", x) for x in numbers], 0, "")
    events, report, counters, n, recorded = ozonetel_apply(
        tmp_path, monkeypatch, dict(OzonetelEmulator.credentials), other=other
    )
    token = ("request", "/ca_apis/CAToken/generateToken")
    assert events.index(token) < events.index(("other head set up",))
    assert not report.failures and sorted(recorded) == n
    assert report.done["kaleyra/sms"]["add"] == len(numbers)


def test_a_refused_token_fetched_early_fails_every_add_with_one_request_sent(
    tmp_path: Path, monkeypatch
) -> None:
    """The early token generation refused (a wrong API key): every add fails with
    Ozonetel's words and nothing else is sent (one request with the credential), as
    when the first batch generated it."""
    credentials = {**OzonetelEmulator.credentials, "api_key": "wrong"}
    events, report, counters, n, recorded = ozonetel_apply(tmp_path, monkeypatch, credentials)
    assert [e for e in events if e[0] == "request"] == [
        ("request", "/ca_apis/CAToken/generateToken")
    ]
    assert sorted(f.number for f in report.failures) == n and not recorded
    reasons = {f.reason for f in report.failures}
    assert reasons == {
        "authentication failed: Invalid userName or apiKey",  # the batch that met it
        "not attempted: Invalid userName or apiKey",  # the others, unsent
    }
