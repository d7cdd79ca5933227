"""The fast diff (``plan.plan_target``: changes held by reference, adds not listed, one
sort shared by targets) against the obvious one: a loop over every number, one
``Change`` each, one sort with a tuple key (the diff as it was first written).

Random desired, live and managed states, every option of the diff: the two must give
the same changes in the same order, the same counts, forgets, fingerprints, safety
reasons, warnings and write operations."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Op, Target
from reconciler.expiry import iso
from reconciler.models import Safety
from reconciler.plan import (
    ACTIONS,
    Change,
    Changes,
    DeclaredRun,
    SortedNumbers,
    TargetPlan,
    expired_numbers,
    live_fingerprint,
    plan_target,
    runs_of,
    safety_problems,
)

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
INSTANTS = [
    None,
    NOW - dt.timedelta(days=1),
    NOW,  # expires at now: expired
    NOW + dt.timedelta(seconds=1),
    NOW + dt.timedelta(days=30),
    dt.datetime(2027, 3, 1, 18, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
]
POOL = [f"+9198765432{i:02d}" for i in range(14)] + ["+14155550100", "+4915112345678"]


# -- the obvious diff ------------------------------------------------------------------------


def obvious_fingerprint(live: Mapping[str, LiveEntry] | Mapping[str, ManagedEntry]) -> str:
    h = hashlib.sha256()
    for number in sorted(live):
        e = live[number]
        expires = getattr(e, "expires", None)
        h.update(f"{number}|{e.attrs}|{','.join(e.provider_ids) or None}|{iso(expires)}\n".encode())
    return h.hexdigest()


def obvious_differences(entry, live, managed, attr_keys, native_expiry):
    want = {k: dict(entry.attrs).get(k) for k in attr_keys}
    have = {k: dict(live.attrs).get(k) for k in attr_keys}
    if native_expiry and managed is not None:
        want["expires"] = iso(entry.expires)
        have["expires"] = iso(managed.expires)
    changed = tuple(
        (k, have[k])
        for k in sorted(want)
        if want[k] != have[k] and (want[k] is not None or k == "expires")
    )
    return changed or None


def obvious_plan_target(
    target: Target,
    desired: Mapping[str, DesiredEntry],
    live: Mapping[str, LiveEntry] | None,
    managed: Mapping[str, ManagedEntry],
    now: dt.datetime,
    *,
    native_expiry: bool = False,
    attribute_fields: Iterable[str] = (),
    safety: Safety | None = None,
    marks_opt_outs: bool = True,
) -> TargetPlan:
    def from_entry(action, entry, provider_ids=(), before=None):
        e = entry
        return Change(
            action, e.number, e.reason, e.expires, e.source, e.attrs, provider_ids, before
        )

    def unmanaged(e):
        return Change("unmanaged", e.number, None, None, "", e.attrs, e.provider_ids)

    readable = live is not None
    if live is None:
        live = {
            n: LiveEntry(n, n, m.attrs, m.provider_ids)
            for n, m in managed.items()
            if not (native_expiry and m.expires is not None and m.expires <= now)
        }
    attr_keys = tuple(attribute_fields)
    changes: list[Change] = []
    forget: list[str] = []
    opt_outs = frozenset(n for n, e in live.items() if e.opt_out)
    for number, entry in desired.items():
        expired = entry.expires is not None and entry.expires <= now
        in_live = number in live
        in_managed = number in managed
        if number in opt_outs:
            if not expired:
                changes.append(from_entry("optout", entry, live[number].provider_ids))
            if in_managed:
                forget.append(number)
            continue
        if expired:
            if in_live and in_managed:
                changes.append(from_entry("expire", entry, live[number].provider_ids))
            elif in_live:
                changes.append(unmanaged(live[number]))
            elif in_managed:
                forget.append(number)
            continue
        if not in_live:
            changes.append(from_entry("readd" if in_managed else "add", entry))
            continue
        before = obvious_differences(
            entry, live[number], managed.get(number), attr_keys, native_expiry
        )
        if before:
            changes.append(from_entry("update", entry, live[number].provider_ids, before))
        elif not in_managed:
            changes.append(from_entry("adopt", entry, live[number].provider_ids))
    for number, entry in live.items():
        if number in desired:
            continue
        m = managed.get(number)
        if entry.unparsed:
            changes.append(unmanaged(entry))
        elif entry.opt_out:
            changes.append(unmanaged(entry))
            if m is not None:
                forget.append(number)
        elif m is not None:
            changes.append(
                Change(
                    "remove", number, m.reason, m.expires, m.source, entry.attrs, entry.provider_ids
                )
            )
        elif target.exclusive:
            changes.append(
                Change("remove", number, None, None, "", entry.attrs, entry.provider_ids)
            )
        else:
            changes.append(unmanaged(entry))
    for number in managed:
        if number not in live and number not in desired:
            forget.append(number)
    order = {a: i for i, a in enumerate(ACTIONS)}
    changes.sort(key=lambda c: (order[c.action], c.number))
    plan = TargetPlan(
        target=target,
        live_readable=readable,
        changes=changes,
        existing=len(live),
        fingerprint=obvious_fingerprint(live if readable else managed),
        forget=sorted(forget),
        opt_outs=opt_outs,
    )
    plan.unsafe_reasons = safety_problems(plan, safety or Safety())
    adopts = plan.count("adopt")
    if adopts and not marks_opt_outs:
        plan.warnings.append(
            f"{adopts:,} adopted number{'s were' if adopts != 1 else ' was'} live before this "
            f"tool managed {'them' if adopts != 1 else 'it'}: {target.type} cannot tell a "
            "user's own opt-out apart, so check that none is one"
        )
    return plan


def obvious_write_ops(changes: Iterable[Change]) -> tuple[list[Op], list[Op]]:
    removes, adds = [], []
    for c in changes:
        if c.action in ("remove", "expire", "update"):
            removes.append(Op("remove", c.number, provider_ids=c.provider_ids, source=c.source))
        if c.action in ("add", "readd", "update"):
            adds.append(Op("add", c.number, c.expires, c.attrs, reason=c.reason, source=c.source))
    return removes, adds


# -- random worlds ---------------------------------------------------------------------------

attrs = st.sampled_from(
    [(), (("reject_type", "import"),), (("reject_type", "invalid"),), (("other", "x"),)]
)
ids = st.lists(st.sampled_from(["id-1", "id-2", "7"]), max_size=2, unique=True).map(tuple)


@st.composite
def desired_entries(draw, numbers):
    return {
        n: DesiredEntry(
            n,
            draw(st.sampled_from([None, "fraud", "spam"])),
            draw(st.sampled_from(INSTANTS)),
            draw(attrs),
            f"blocklists/l.yaml:{i + 3}",
            "l",
        )
        for i, n in enumerate(numbers)
    }


@st.composite
def worlds(draw):
    desired = draw(desired_entries(draw(st.lists(st.sampled_from(POOL), unique=True))))
    live = {}
    for n in draw(st.lists(st.sampled_from(POOL), unique=True)):
        live[n] = LiveEntry(n, n, draw(attrs), draw(ids), draw(st.booleans()))
    for raw in draw(st.lists(st.sampled_from(["garbage", "12-ab"]), unique=True)):
        live["?" + raw] = LiveEntry("?" + raw, raw, (), (), False, True)
    managed = {
        n: ManagedEntry(
            n,
            draw(st.sampled_from(INSTANTS)),
            draw(st.sampled_from([None, "old"])),
            draw(attrs),
            draw(ids),
            draw(st.sampled_from(["", "blocklists/old.yaml:9"])),
        )
        for n in draw(st.lists(st.sampled_from(POOL), unique=True))
    }
    options = {
        "native_expiry": draw(st.booleans()),
        "attribute_fields": draw(st.sampled_from([(), ("reject_type",), ("reject_type", "other")])),
        "marks_opt_outs": draw(st.booleans()),
        "safety": draw(st.sampled_from([None, Safety(min_existing=0, max_add_fraction=0.5)])),
    }
    target = Target("wooxy/account", "wooxy", "wooxy", exclusive=draw(st.booleans()))
    readable = draw(st.booleans())
    return target, desired, live if readable else None, managed, options


def same_plan(fast: TargetPlan, slow: TargetPlan) -> None:
    assert isinstance(fast.changes, Changes)
    assert list(fast.changes) == slow.changes
    assert fast.changes == slow.changes and slow.changes == fast.changes
    assert len(fast.changes) == len(slow.changes)
    assert fast.summary() == slow.summary()
    assert fast.forget == slow.forget
    assert fast.existing == slow.existing
    assert fast.fingerprint == slow.fingerprint
    assert fast.opt_outs == slow.opt_outs
    assert fast.unsafe_reasons == slow.unsafe_reasons
    assert fast.warnings == slow.warnings
    assert fast.live_readable == slow.live_readable
    assert fast.has_changes == slow.has_changes
    removes, adds = obvious_write_ops(slow.changes)
    assert fast.write_ops() == (removes, adds)
    assert fast.write_counts() == (len(removes), len(adds))
    for first in (1, 2, 5):  # apply's head: the first ops of the kind sent first
        assert fast.write_ops(first) == ((removes[:first], []) if removes else ([], adds[:first]))
    assert fast == slow  # the dataclass equality apply and plan files rely on


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_the_fast_diff_is_the_obvious_diff(world) -> None:
    target, desired, live, managed, options = world
    slow = obvious_plan_target(target, desired, live, managed, NOW, **options)
    same_plan(plan_target(target, desired, live, managed, NOW, **options), slow)


@settings(max_examples=150, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_a_sort_shared_with_another_target_gives_the_same_plan(world, rnd) -> None:
    target, desired, live, managed, options = world
    # another target's mapping: the same numbers, in another order, with other entries
    numbers = list(desired)
    rnd.shuffle(numbers)
    other = {n: DesiredEntry(n, "other") for n in numbers}
    shared = [SortedNumbers(other), SortedNumbers(dict(reversed(list(other.items()))))]
    fast = plan_target(target, desired, live, managed, NOW, shared=shared, **options)
    same_plan(fast, obvious_plan_target(target, desired, live, managed, NOW, **options))
    # a mapping of the same numbers in the same order is shared; any other is not
    assert len(shared) == 2 + (
        numbers != list(desired) and list(reversed(numbers)) != list(desired)
    )


@settings(max_examples=200, deadline=None)
@given(worlds(), st.data())
def test_changes_read_like_the_list_they_stand_for(world, data) -> None:
    target, desired, live, managed, options = world
    changes = plan_target(target, desired, live, managed, NOW, **options).changes
    listed = list(changes)
    n = len(listed)
    assert len(changes) == n and bool(changes) == bool(listed)
    for i in range(-n, n):
        assert changes[i] == listed[i]
    start = data.draw(st.integers(-n - 2, n + 2))
    stop = data.draw(st.integers(-n - 2, n + 2))
    step = data.draw(st.sampled_from([None, 1, 2, -1]))
    assert changes[start:stop:step] == listed[start:stop:step]
    assert [(a, list(run)) for a, run in runs_of(changes)] == [
        (a, list(run)) for a, run in runs_of(listed)
    ]
    for action, run in runs_of(changes):
        assert list(changes.of(action)) == [c for c in listed if c.action == action]
        assert len(run) == sum(1 for c in listed if c.action == action)
        if isinstance(run, DeclaredRun):  # random access of one run, then reading it again
            assert [run[i] for i in range(len(run))] == list(run)
            assert list(run) == [c for c in listed if c.action == action]


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_expired_numbers_and_fingerprints_are_the_obvious_ones(world) -> None:
    _, desired, live, managed, _ = world
    for now in INSTANTS[1:]:
        assert expired_numbers(desired, now) == {
            n for n, e in desired.items() if e.expires is not None and e.expires <= now
        }
    assert live_fingerprint(managed) == obvious_fingerprint(managed)
    if live is not None:
        assert live_fingerprint(live) == obvious_fingerprint(live)


def test_a_fingerprint_of_many_entries_is_hashed_in_blocks_alike() -> None:
    live = {
        f"+91987{i:07d}": LiveEntry(f"+91987{i:07d}", attrs=(("k", str(i % 3)),))
        for i in range(20_000)
    }
    assert live_fingerprint(live) == obvious_fingerprint(live)


def test_runs_of_a_list_cut_where_the_action_changes() -> None:
    a, b = Change("add", "+1"), Change("remove", "+2")
    assert runs_of([]) == []
    assert runs_of([a, a, b, a]) == [("add", [a, a]), ("remove", [b]), ("add", [a])]


@settings(max_examples=200, deadline=None)
@given(worlds(), st.integers(1, 5), st.integers(1, 6), st.sampled_from([1, 8]))
def test_entries_mapped_in_blocks_come_in_order(world, head, block, heap_from) -> None:
    target, desired, live, managed, options = world
    SortedNumbers.HEAD, kept = head, SortedNumbers.HEAD  # the heap's part and the sort's
    SortedNumbers.HEAP_FROM, kept_from = heap_from, SortedNumbers.HEAP_FROM
    try:
        tp = plan_target(target, desired, live, managed, NOW, **options)
        for _, run in runs_of(tp.changes):
            if isinstance(run, DeclaredRun):

                def fn(e, ids):
                    return (e.number, e.source, ids)

                expected = [(c.number, c.source, c.provider_ids) for c in run]
                blocks = list(run.mapped(fn, block))
                assert [x for b in blocks for x in b] == expected
                assert all(0 < len(b) <= block for b in blocks)
                assert [fn(e, i) for e, i in run.pairs()] == expected
                assert [fn(e, i) for e, i in run.pairs(whole=True)] == expected
                assert list(run.numbers(whole=True)) == [c.number for c in run]
        for whole_first in (False, True):  # the heap's head, then all; or all, then head
            order = SortedNumbers(desired)
            if whole_first:
                assert list(order.numbers(whole=True)) == sorted(desired)
            assert order.head() == sorted(desired)[:head]
            assert list(order.numbers()) == sorted(desired)
            assert list(order.numbers(whole=True)) == sorted(desired)
            assert order.sorted_numbers() == sorted(desired)
    finally:
        SortedNumbers.HEAD, SortedNumbers.HEAP_FROM = kept, kept_from


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_the_executors_action_map_is_read_from_the_runs_alike(world) -> None:
    """The executor's number -> action map is built from the runs (no Change per add):
    the same map as from every change in order."""
    from reconciler.apply import _Actions

    target, desired, live, managed, options = world
    tp = plan_target(target, desired, live, managed, NOW, **options)
    assert _Actions(tp).map() == {c.number: c.action for c in tp.changes}
    slow = obvious_plan_target(target, desired, live, managed, NOW, **options)
    assert _Actions(slow).map() == {c.number: c.action for c in slow.changes}
