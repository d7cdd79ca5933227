"""The diff (DESIGN.md's action table) as a pure function, with property tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from reconciler.gcpause import rare_full_collections
from reconciler.models import Safety
from reconciler.plan import CHANGE_ACTIONS, plan_target

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
PAST = NOW - dt.timedelta(days=1)
FUTURE = NOW + dt.timedelta(days=30)
T = Target("wooxy/account", "wooxy", "wooxy")
NUMBERS = [f"+9198765432{i:02d}" for i in range(12)]


def d(n: str, expires=None, reject=None) -> DesiredEntry:
    attrs = (("reject_type", reject),) if reject else ()
    return DesiredEntry(n, "fraud", expires, attrs, "blocklists/x.yaml:1", "x")


def live(n: str, reject=None, opt_out=False, pid: str | None = None) -> LiveEntry:
    attrs = (("reject_type", reject),) if reject else ()
    return LiveEntry(n, n, attrs, (pid,) if pid else (), opt_out)


def m(n: str, expires=None, reject=None) -> ManagedEntry:
    attrs = (("reject_type", reject),) if reject else ()
    return ManagedEntry(n, expires, "fraud", attrs)


def actions(tp) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in tp.changes:
        out.setdefault(c.action, []).append(c.number)
    return out


def test_every_action_of_the_table() -> None:
    n = NUMBERS
    desired = {
        n[0]: d(n[0]),  # add
        n[1]: d(n[1]),  # re-add (managed, missing live)
        n[2]: d(n[2], reject="invalid"),  # update (reject type differs)
        n[3]: d(n[3], expires=PAST),  # expire (live + managed)
        n[5]: d(n[5]),  # adopt (live, not managed)
        n[8]: d(n[8], expires=PAST),  # expired, live, unmanaged -> unmanaged
    }
    live_ = {x: live(x) for x in (n[2], n[3], n[4], n[5], n[6], n[8])}
    live_[n[2]] = live(n[2], reject="import")
    managed = {x: m(x) for x in (n[1], n[2], n[3], n[4], n[9])}
    tp = plan_target(T, desired, live_, managed, NOW, attribute_fields=("reject_type",))
    assert actions(tp) == {
        "add": [n[0]],
        "readd": [n[1]],
        "update": [n[2]],
        "expire": [n[3]],
        "remove": [n[4]],  # undeclared, live, managed
        "adopt": [n[5]],
        "unmanaged": [n[6], n[8]],
    }
    assert tp.forget == [n[9]]  # managed, gone from live, not declared: state cleanup
    update = next(c for c in tp.changes if c.action == "update")
    assert update.before == (("reject_type", "import"),)
    assert update.after("reject_type") == "invalid"


def test_exclusive_removes_unmanaged_but_never_opt_outs() -> None:
    target = Target("wooxy/account", "wooxy", "wooxy", exclusive=True)
    live_ = {NUMBERS[0]: live(NUMBERS[0]), NUMBERS[1]: live(NUMBERS[1], opt_out=True)}
    tp = plan_target(target, {}, live_, {}, NOW)
    assert actions(tp) == {"remove": [NUMBERS[0]], "unmanaged": [NUMBERS[1]]}


def test_unreadable_provider_plans_from_state_and_native_expiry() -> None:
    target = Target("ozonetel/fraud", "ozonetel", "ozonetel", (("group", "fraud"),))
    desired = {
        NUMBERS[0]: d(NUMBERS[0], FUTURE),
        NUMBERS[1]: d(NUMBERS[1], FUTURE + dt.timedelta(1)),
    }
    managed = {
        NUMBERS[0]: m(NUMBERS[0], FUTURE),  # same expiry: nothing
        NUMBERS[1]: m(NUMBERS[1], FUTURE),  # expiry changed: update
        NUMBERS[2]: m(NUMBERS[2], PAST),  # expired natively by the provider: forget
        NUMBERS[3]: m(NUMBERS[3]),  # undeclared: remove
    }
    tp = plan_target(target, desired, None, managed, NOW, native_expiry=True)
    assert not tp.live_readable
    assert actions(tp) == {"update": [NUMBERS[1]], "remove": [NUMBERS[3]]}
    assert tp.forget == [NUMBERS[2]]


def test_safety_thresholds() -> None:
    live_ = {n: live(n) for n in NUMBERS[:10]}
    managed = {n: m(n) for n in NUMBERS[:10]}
    desired = {n: d(n) for n in NUMBERS[:6]}  # removes 4 of 10 = 40 %
    tp = plan_target(T, desired, live_, managed, NOW, safety=Safety())
    assert not tp.safe
    assert tp.unsafe_reasons == ["would remove or expire 4 of 10 entries (40% > 30%)"]
    desired = {n: d(n) for n in NUMBERS[:8]}  # 2 of 10 = 20 %
    assert plan_target(T, desired, live_, managed, NOW).safe
    small = {n: live(n) for n in NUMBERS[:9]}  # fewer than 10 existing: thresholds off
    assert plan_target(T, {}, small, {n: m(n) for n in small}, NOW).safe


# -- properties -----------------------------------------------------------------------------

expiry = st.sampled_from([None, PAST, FUTURE])
reject = st.sampled_from([None, "import", "invalid"])


@st.composite
def worlds(draw):
    pool = NUMBERS
    desired = {n: d(n, draw(expiry), draw(reject)) for n in draw(st.sets(st.sampled_from(pool)))}
    live_ = {
        n: live(n, draw(st.sampled_from(["import", "invalid", "unsubscribe"])), draw(st.booleans()))
        for n in draw(st.sets(st.sampled_from(pool)))
    }
    managed = {n: m(n) for n in draw(st.sets(st.sampled_from(pool)))}
    return desired, live_, managed, draw(st.booleans())


def simulate(tp, live_, managed):
    """Apply a plan's changes the way apply does: the provider's list and state after."""
    live_ = dict(live_)
    managed = dict(managed)
    for c in tp.changes:
        if c.action in ("remove", "expire", "update"):
            live_.pop(c.number, None)
            managed.pop(c.number, None)
        if c.action in ("add", "readd", "update"):
            live_[c.number] = LiveEntry(c.number, c.number, c.attrs)
            managed[c.number] = ManagedEntry(c.number, c.expires, c.reason, c.attrs)
        if c.action == "adopt":
            managed[c.number] = ManagedEntry(c.number, c.expires, c.reason, c.attrs)
    for n in tp.forget:
        managed.pop(n, None)
    return live_, managed


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_applying_a_plan_converges(world) -> None:
    desired, live_, managed, exclusive = world
    target = Target("wooxy/account", "wooxy", "wooxy", exclusive=exclusive)
    kw = {"attribute_fields": ("reject_type",)}
    tp = plan_target(target, desired, live_, managed, NOW, **kw)
    new_live, new_managed = simulate(tp, live_, managed)
    active = {n for n, e in desired.items() if e.expires is None or e.expires > NOW}
    opt_outs = {n for n, e in live_.items() if e.opt_out}
    # a user's own opt-out is never touched nor managed, declared or not, in any mode
    for n in opt_outs:
        assert new_live[n] is live_[n] and n not in new_managed
    active -= opt_outs
    # every other active declared number is live with the declared attributes, and managed
    for n in active:
        assert n in new_live and n in new_managed
        want = dict(desired[n].attrs).get("reject_type")
        if want:
            assert dict(new_live[n].attrs)["reject_type"] == want
    # nothing unmanaged was removed in default mode; opt-outs never
    for n, e in live_.items():
        if n not in desired and n not in managed and (not exclusive or e.opt_out):
            assert n in new_live
    # state is exactly what is active and ours
    assert set(new_managed) == active | {n for n in new_managed if n in new_live and n in desired}
    assert set(new_managed) <= set(new_live)
    # planning again from the result is empty
    again = plan_target(target, desired, new_live, new_managed, NOW, **kw)
    assert not any(c.action in CHANGE_ACTIONS for c in again.changes), again.changes
    assert again.forget == []


def test_dropping_an_expiry_is_an_update_on_native_expiry_providers() -> None:
    target = Target("ozonetel/fraud", "ozonetel", "ozonetel", (("group", "fraud"),))
    desired = {NUMBERS[0]: d(NUMBERS[0])}  # no expiry any more
    managed = {NUMBERS[0]: m(NUMBERS[0], FUTURE)}
    tp = plan_target(target, desired, None, managed, NOW, native_expiry=True)
    assert actions(tp) == {"update": [NUMBERS[0]]}
    assert tp.changes[0].before == (("expires", "2026-12-22T00:00:00Z"),)
    assert tp.changes[0].after("expires") is None


def test_thresholds_from_zero_entries_do_not_divide_by_zero() -> None:
    # min_existing: 0 is allowed; a target with nothing live has no share to exceed
    desired = {n: d(n) for n in NUMBERS[:3]}
    tp = plan_target(T, desired, {}, {}, NOW, safety=Safety(min_existing=0))
    assert tp.safe and tp.count("add") == 3


def test_a_plan_freezes_what_it_loaded_before_the_collector_is_back(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No collection from the load to the refresh traverses the young objects the load
    built (the first after a paused load traversed all of them: 0.3 s of a million
    numbers); and targets are read with full collections ten times rarer."""
    from reconciler.operations import common
    from reconciler.operations import plan as plan_op
    from reconciler.providers.kaleyra import KaleyraAdapter

    numbers = [f"+9198765{i:05d}" for i in range(3000)]
    (project / "blocklists" / "many.yaml").write_text(
        "version: 1\nname: many\ntargets:\n  - {provider: kaleyra, channel: sms}\n"
        "entries:\n" + "".join(f'  - "{n}"\n' for n in numbers)
    )
    events: list[object] = []
    real_load, real_read = common.load_desired, KaleyraAdapter.refresh

    def load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        events.append("load")
        return real_load(*args, **kwargs)

    async def read(self, target):  # noqa: ANN001, ANN202
        events.append(("read", gc.get_threshold()))
        return await real_read(self, target)

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and "load" in events and not any(type(e) is tuple for e in events):
            events.append(gc.get_count()[0])  # the young objects it traverses

    monkeypatch.setattr(common, "load_desired", load)
    monkeypatch.setattr(KaleyraAdapter, "refresh", read)
    normal = gc.get_threshold()
    gc.callbacks.append(seen)
    try:
        asyncio.run(plan_op.run_plan(plan_op.PlanOptions(project / "blocklists", now=NOW)))
    finally:
        gc.callbacks.remove(seen)
    young = [e for e in events if type(e) is int]
    assert all(n <= 2 * normal[0] for n in young), young
    assert ("read", (normal[0], normal[1], normal[2] * 10)) in events
    assert gc.get_threshold() == normal


def test_full_collections_are_rarer_inside_the_blocks_only_even_when_they_overlap() -> None:
    """Concurrent refreshes (``blocklist why`` reads targets at once) overlap their
    blocks: the threshold is raised once and restored when the last one ends."""
    before = gc.get_threshold()
    raised = (before[0], before[1], before[2] * 10)
    with pytest.raises(RuntimeError), rare_full_collections():
        assert gc.get_threshold() == raised
        raise RuntimeError
    assert gc.get_threshold() == before
    first, second = rare_full_collections(), rare_full_collections()
    first.__enter__()
    second.__enter__()
    assert gc.get_threshold() == raised
    first.__exit__(None, None, None)  # the first ends before the second
    assert gc.get_threshold() == raised
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_a_plan_keeps_the_desired_state_frozen_while_it_refreshes_and_unfreezes_after(
    project: Path, monkeypatch: pytest.MonkeyPatch, freeze_during_refresh
) -> None:
    """The desired state is out of the collector's sight during refresh and diff (it
    outlives them), and nothing is left frozen once the plan is made, even if it fails."""
    from reconciler.operations import plan as plan_op

    frozen = freeze_during_refresh(plan_op)
    options = plan_op.PlanOptions(project / "blocklists", now=NOW)
    result = asyncio.run(plan_op.run_plan(options))
    assert result.plan.targets and frozen and frozen[0] > 0
    assert gc.get_freeze_count() == 0

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("a bug in the diff")

    monkeypatch.setattr(plan_op, "build_plan", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(plan_op.run_plan(options))
    assert gc.get_freeze_count() == 0
