"""``Desired.digest``'s text of a target's entries (``desired._entries_text``, which
formats each (expiry, reason, attrs) once, over a ``SortedNumbers``' entries) against
the obvious one, a line per entry formatted in full: saved plans are checked against
this digest, so it must not move; and the digest made with the diff's sorts is the one
made without them.

Random entries whose expiries, reasons and attrs are shared objects, equal copies, or
equal instants in other time zones (the same text from other objects)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import desired as desired_mod
from reconciler.desired import _entries_text
from reconciler.domain import DesiredEntry
from reconciler.expiry import iso
from reconciler.plan import SortedNumbers

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
POOL = [f"+9198765432{i:02d}" for i in range(20)] + ["+14155550100", "+4915112345678"]


def obvious_text(entries: Mapping[str, DesiredEntry]) -> bytes:
    return "".join(
        f"{n}|{iso(entries[n].expires)}|{entries[n].reason}|{entries[n].attrs}\n"
        for n in sorted(entries)
    ).encode()


def copy_of(value: object, fresh: bool) -> object:
    """``value``, or (``fresh``) an equal object that is not it."""
    if not fresh or value is None:
        return value
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(0) if value.tzinfo is dt.UTC else value.astimezone(IST)
    if isinstance(value, str):
        return "".join(list(value))
    return tuple(tuple(pair) for pair in value)  # attrs


expiries = st.sampled_from(
    [None, NOW, NOW + dt.timedelta(days=30), (NOW + dt.timedelta(days=30)).astimezone(IST)]
)
reasons = st.sampled_from([None, "fraud", "spam", "sim-box fraud", "a reason with | in it"])
attrs = st.sampled_from([(), (("reject_type", "invalid"),), (("reject_type", "unsubscribe"),)])
entry = st.tuples(expiries, reasons, attrs, st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(POOL), entry, max_size=len(POOL)), st.integers(1, 4))
def test_the_digest_text_is_each_entry_formatted_in_full(draws, kept):
    entries = {
        number: DesiredEntry(
            number,
            copy_of(reason, fresh_reason),
            copy_of(expires, fresh_expires),
            copy_of(attrs, fresh_attrs),
            "lists/a.yaml:1",
            "a",
        )
        for number, (expires, reason, attrs, fresh_expires, fresh_reason, fresh_attrs) in (
            draws.items()
        )
    }
    order = SortedNumbers(entries)
    made = _entries_text(order.sorted_numbers(), order.entries_of(entries))
    assert made == obvious_text(entries)
    saved = desired_mod._TAILS_KEPT
    desired_mod._TAILS_KEPT = kept  # the tails' cache emptied as it fills, too
    try:
        assert _entries_text(order.sorted_numbers(), order.entries_of(entries)) == made
    finally:
        desired_mod._TAILS_KEPT = saved


def test_the_digest_is_the_same_with_the_diffs_sorts(project) -> None:  # noqa: ANN001
    """The digest reads each mapping from the diff's sorts where one holds its numbers
    (one sort for a list's targets, attributes or not): the same digest as its own."""
    from reconciler.desired import load_desired
    from reconciler.operations.common import build_plan, select_targets

    desired = load_desired(project / "blocklists")
    alone = desired.digest()
    targets = select_targets(desired)
    orders: list[SortedNumbers] = []
    empty: dict = {t.name: {} for t in targets}
    build_plan(desired, targets, empty, empty, NOW, None, orders)
    assert orders  # the diff's
    made = len(orders)
    assert desired.digest(orders) == alone
    assert len(orders) == made  # every mapping's numbers were in one of them
    assert desired.digest([]) == alone
