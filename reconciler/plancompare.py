"""How a plan differs from another: the reviewed plan against a fresh one.

``apply PLANFILE`` refuses a saved plan unless it equals the plan computed now
(same targets, scopes and provider ids, the same changes, the same lineage,
serial and desired digest); ``plan --compare REVIEWED`` and the CI apply job
show the same differences change by change. Changes are compared as the plan
document writes them (``planfile.change_dict``), keyed by action and number, so
one extra line is one difference however long the plan; attribute-level
differences of one change come from ``deepdiff``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from deepdiff import DeepDiff

from .plan import Plan, TargetPlan
from .planfile import change_dict


@dataclass(frozen=True)
class Difference:
    """One way the reviewed plan and the fresh plan differ."""

    target: str  # "" for the plan as a whole
    what: str  # one line, e.g. "+ add +919876543210 is in the fresh plan only"

    def __str__(self) -> str:
        return f"{self.target}: {self.what}" if self.target else self.what


def _identity(tp: TargetPlan) -> dict[str, object]:
    t = tp.target
    return {
        "provider": t.provider,
        "type": t.type,
        "scope": t.scope_dict(),
        "exclusive": t.exclusive,
        "live_readable": tp.live_readable,
    }


def _keyed(tp: TargetPlan) -> dict[str, dict[str, object]]:
    """Changes by "ACTION NUMBER" (a repeated line gets "#2", so it is not lost)."""
    out: dict[str, dict[str, object]] = {}
    for c in tp.changes:
        key = f"{c.action} {c.number}"
        n = 1
        while key in out:
            n += 1
            key = f"{c.action} {c.number} #{n}"
        out[key] = change_dict(c)
    return out


def compare_plans(
    reviewed: Plan,
    fresh: Plan,
    *,
    digests: tuple[str, str] | None = None,
    limit: int | None = None,
) -> list[Difference]:
    """Every difference of ``reviewed`` from ``fresh`` (at most ``limit``), in target
    order. ``digests`` is (reviewed, fresh) desired-state digest to compare too."""
    return list(islice(_differences(reviewed, fresh, digests), limit))


def _differences(
    reviewed: Plan, fresh: Plan, digests: tuple[str, str] | None
) -> Iterator[Difference]:
    if digests is not None and digests[0] != digests[1]:
        yield Difference(
            "",
            "the plan has no digest of the desired state"
            if not digests[0]
            else "the lists changed since the plan was made (desired state digest differs)",
        )
    if not reviewed.refreshed:
        yield Difference(
            "", "the reviewed plan was made without reading the providers (--refresh=false)"
        )
    if reviewed.lineage != fresh.lineage:
        yield Difference("", f"state lineage differs ({reviewed.lineage} -> {fresh.lineage})")
    if (reviewed.serial or 0) != (fresh.serial or 0):
        yield Difference("", f"state serial differs ({reviewed.serial} -> {fresh.serial})")
    fresh_by_name = {tp.target.name: tp for tp in fresh.targets}
    saved_names = [tp.target.name for tp in reviewed.targets]
    for name in sorted(set(fresh_by_name) - set(saved_names)):
        yield Difference(name, "target is in the fresh plan only")
    for tp in reviewed.targets:
        name = tp.target.name
        now = fresh_by_name.get(name)
        if now is None:
            yield Difference(name, "target is in the reviewed plan only")
            continue
        if saved_names.count(name) > 1:
            yield Difference(name, "target appears more than once in the reviewed plan")
        for diff in _field_differences(_identity(tp), _identity(now), "target"):
            yield Difference(name, diff)
        if tp.fingerprint != now.fingerprint:
            yield Difference(name, "live state changed since the plan was made")
        if tp.forget != now.forget:
            yield Difference(name, "numbers to forget from state differ")
        for diff in _change_differences(tp, now):
            yield Difference(name, diff)


def _change_differences(reviewed: TargetPlan, fresh: TargetPlan) -> list[str]:
    if [change_dict(c) for c in reviewed.changes] == [change_dict(c) for c in fresh.changes]:
        return []  # the common case: checked in C, whatever the size
    saved, now = _keyed(reviewed), _keyed(fresh)
    out = []
    for key in saved.keys() - now.keys():
        out.append((key, f"{_line(saved[key])} is in the reviewed plan only"))
    for key in now.keys() - saved.keys():
        out.append((key, f"{_line(now[key])} is in the fresh plan only"))
    for key in saved.keys() & now.keys():
        if saved[key] != now[key]:
            fields = "; ".join(_field_differences(saved[key], now[key], key))
            out.append((key, f"{_line(now[key])}: {fields}"))
    if not out:
        out.append(("", "the same changes in another order"))
    return [text for _, text in sorted(out, key=lambda pair: (_sort_key(pair[0]), pair[1]))]


def _sort_key(key: str) -> tuple[str, str]:
    action, _, number = key.partition(" ")
    return number, action


_SYMBOL = {"add": "+", "readd": "+", "remove": "-", "expire": "⌛", "update": "~"}


def _line(change: dict[str, object]) -> str:
    action = str(change["action"])
    return f"{_SYMBOL.get(action, '=')} {action} {change['number']}"


def _field_differences(reviewed: object, fresh: object, what: str) -> list[str]:
    """Attribute-level differences of two documents, one short text each (deepdiff)."""
    diff = DeepDiff(reviewed, fresh, verbose_level=2, view="tree")
    out = []
    for kind, items in sorted(diff.items()):
        for item in items:
            path = item.path(output_format="list")
            where = ".".join(str(p) for p in path) or what
            if kind in ("dictionary_item_added", "iterable_item_added"):
                out.append(f"{where} only in the fresh plan ({item.t2!r})")
            elif kind in ("dictionary_item_removed", "iterable_item_removed"):
                out.append(f"{where} only in the reviewed plan ({item.t1!r})")
            else:
                out.append(f"{where}: reviewed {item.t1!r}, fresh {item.t2!r}")
    return sorted(out)


def summary_line(differences: list[Difference], total: int | None = None) -> str:
    """The one line apply prints when it refuses a saved plan."""
    first = str(differences[0])
    count = total if total is not None else len(differences)
    more = f" (and {count - 1} more difference{'s' if count != 2 else ''})" if count > 1 else ""
    return f"{first}{more}"
