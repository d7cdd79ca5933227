"""The streamed plan document (``planfile.write_plan_document``: change lines encoded
field by field, in blocks, adds straight from the declared entries) against the obvious
writer: ``plan_to_dict`` built whole, then ``json.dumps`` of every value (one compact
change per line, everything else indented by two spaces), as the document was first
written.

Random plans, both kinds: hand-made changes of every action with awkward text (quotes,
backslashes, control and non-ASCII characters, numbers inside reasons for masking), and
plans of the diff, whose changes are held by reference. Masked and not; in one piece,
in tiny blocks and through the saved file. Every document also validates as a
``PlanDocument``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import __version__
from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from reconciler.plan import ACTIONS, Change, Plan, SortedNumbers, TargetPlan, plan_target
from reconciler.planfile import (
    PlanDocument,
    plan_document_text,
    plan_to_dict,
    save_plan,
    write_plan_document,
)
from reconciler.views.plan import render_json

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def obvious_document(plan: Plan, mask: bool) -> str:
    """``plan_to_dict``, then ``json.dumps``: the writer as it was first written."""

    def obj(d: dict[str, object], pad: str) -> Iterator[str]:
        inner = pad + "  "
        yield "{\n"
        for i, (key, value) in enumerate(d.items()):
            if i:
                yield ",\n"
            yield f"{inner}{json.dumps(key)}: "
            if key == "targets" and isinstance(value, list) and value:
                yield "[\n"
                for j, t in enumerate(value):
                    yield (",\n" if j else "") + inner + "  "
                    yield from obj(t, inner + "  ")
                yield f"\n{inner}]"
            elif key == "changes" and isinstance(value, list) and value:
                yield "[\n"
                yield ",\n".join(inner + "  " + json.dumps(c) for c in value)
                yield f"\n{inner}]"
            else:
                yield json.dumps(value)
        yield f"\n{pad}}}"

    return "".join(obj(plan_to_dict(plan, mask=mask), ""))


# -- random plans ----------------------------------------------------------------------------

awkward = st.text(
    st.sampled_from(list('ab "\\\n\t\x1b\u2028é✓+9198765432107') + ["\U0001f600"]), max_size=14
)
numbers = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
zones = st.sampled_from(
    [
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(dt.timedelta(seconds=1, microseconds=500_000)),  # a fraction: allowed
    ]
)
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=zones
)
attr_pairs = st.lists(st.tuples(awkward, awkward), max_size=2).map(tuple)
ids = st.lists(awkward.filter(bool), max_size=2).map(tuple)
changes = st.builds(
    Change,
    action=st.sampled_from(ACTIONS),
    number=numbers,
    reason=st.none() | awkward,
    expires=st.none() | instants,
    source=awkward,
    attrs=attr_pairs,
    provider_ids=ids,
    before=st.none() | st.lists(st.tuples(awkward, st.none() | awkward), max_size=2).map(tuple),
)
targets = st.builds(
    Target, name=awkward, provider=awkward, type=awkward, scope=attr_pairs, exclusive=st.booleans()
)
hand_made = st.builds(
    TargetPlan,
    target=targets,
    live_readable=st.booleans(),
    changes=st.lists(changes, max_size=5),
    existing=st.integers(0, 10**6),
    fingerprint=st.text(alphabet="0123456789abcdef", max_size=64),
    forget=st.lists(numbers, max_size=2),
    unsafe_reasons=st.lists(awkward, max_size=2),
    opt_outs=st.frozensets(numbers, max_size=2),
    warnings=st.lists(awkward, max_size=2),
)

POOL = [f"+9198765432{i:02d}" for i in range(12)] + ["+14155550100"]
#: an instant at 12:00:00.5 in a zone half a second ahead: UTC noon, shown with its fraction
HALF = dt.timezone(dt.timedelta(microseconds=500_000))
NOON = [
    dt.datetime(2027, 1, 1, 12, tzinfo=dt.UTC),
    dt.datetime(2027, 1, 1, 12, 0, 0, 500_000, HALF),
]
INSTANTS = [
    None,
    NOW - dt.timedelta(days=1),
    NOW + dt.timedelta(days=9),
    dt.datetime(2027, 3, 1, 18, 0, 0, 250, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
]
pick_attrs = st.sampled_from([(), (("reject_type", "invalid"),), (("reject_type", 'é"x'),)])


@st.composite
def diffed(draw) -> TargetPlan:
    """A target's plan from the diff (adds held by reference, not listed)."""
    desired = {
        n: DesiredEntry(
            n,
            draw(st.none() | awkward),
            draw(st.sampled_from(INSTANTS[:3] + NOON) | instants),
            draw(pick_attrs),
            draw(awkward),
        )
        for n in draw(st.lists(st.sampled_from(POOL), unique=True))
    }
    live = {
        n: LiveEntry(n, n, draw(pick_attrs), draw(ids), draw(st.booleans()))
        for n in draw(st.lists(st.sampled_from(POOL), unique=True))
    }
    managed = {
        n: ManagedEntry(n, draw(st.sampled_from(INSTANTS)), draw(st.none() | awkward))
        for n in draw(st.lists(st.sampled_from(POOL), unique=True))
    }
    target = Target("wooxy/account", "wooxy", "wooxy", exclusive=draw(st.booleans()))
    return plan_target(
        target,
        desired,
        live if draw(st.booleans()) else None,
        managed,
        NOW,
        native_expiry=draw(st.booleans()),
        attribute_fields=("reject_type",),
    )


plans = st.builds(
    Plan,
    now=instants,
    targets=st.lists(hand_made | diffed(), max_size=3),
    desired_digest=st.text(alphabet="0123456789abcdef", max_size=64),
    lineage=st.none() | awkward,
    serial=st.none() | st.integers(0, 10**9),
    tool_version=st.just(__version__),
    configuration=awkward,
    refreshed=st.booleans(),
)


@pytest.fixture(autouse=True)
def small_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans of a dozen numbers still go past the heap's part into the full sort."""
    monkeypatch.setattr(SortedNumbers, "HEAD", 3)
    monkeypatch.setattr(SortedNumbers, "HEAP_FROM", 1)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans, mask=st.booleans(), block=st.sampled_from([1, 7, 1 << 20]))
def test_the_streamed_document_is_the_obvious_one(plan: Plan, mask: bool, block: int) -> None:
    expected = obvious_document(plan, mask)
    assert plan_document_text(plan, mask=mask) == expected
    assert render_json(plan, mask=mask) == expected
    parts: list[str] = []
    write_plan_document(plan, parts.append, mask=mask, block=block)
    assert "".join(parts) == expected
    assert all(parts) and (block > 1 or all(len(p) <= 200_000 for p in parts))
    doc = json.loads(expected)
    assert doc == plan_to_dict(plan, mask=mask)
    PlanDocument.model_validate(doc)
    assert expected.isascii()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans)
def test_a_saved_plan_is_the_obvious_document(tmp_path: Path, plan: Plan) -> None:
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    assert path.read_bytes() == (obvious_document(plan, False) + "\n").encode("ascii")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_lines_of_many_adds_in_blocks_are_the_obvious_ones() -> None:
    """More adds than a block holds, past the heap's part, some skipped."""
    desired = {
        f"+9198{i * 7919 % 100_000:06d}": DesiredEntry(
            f"+9198{i * 7919 % 100_000:06d}",
            ("fraud", None, "x\u2713")[i % 3],
            (None, NOW + dt.timedelta(days=i % 5), NOW - dt.timedelta(days=1))[i % 3],
            (("reject_type", "invalid"),) if i % 4 == 0 else (),
            f"blocklists/l.yaml:{i}",
        )
        for i in range(70_000)
    }
    live = {n: LiveEntry(n) for n in list(desired)[::13]}
    tp = plan_target(Target("p/s", "p", "p"), desired, live, {}, NOW)
    plan = Plan(NOW, [tp])
    for mask in (False, True):
        assert render_json(plan, mask=mask) == obvious_document(plan, mask)


def test_equal_instants_that_show_differently_are_not_confused() -> None:
    """UTC noon, and noon and a half second in a zone half a second ahead: equal, hashed
    alike, written differently (the local fraction shows)."""
    desired = {
        n: DesiredEntry(n, "fraud", when, (), "l.yaml:1")
        for n, when in zip(POOL, NOON + NOON[::-1], strict=False)
    }
    listed = [Change("add", n, "fraud", e.expires) for n, e in desired.items()]
    plan = Plan(NOW, [plan_target(Target("p/s", "p", "p"), desired, {}, {}, NOW)])
    plan.targets.append(TargetPlan(Target("q/s", "q", "q"), True, listed, 0, ""))
    text = render_json(plan, mask=False)
    assert text == obvious_document(plan, False)
    assert text.count('"2027-01-01T12:00:00.000000Z"') == 4
