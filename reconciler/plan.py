"""The plan: a value computed from desired, live and managed state.

Owns the diff of DESIGN.md's action table, the safety thresholds and the
live-state fingerprints that saved plans are checked against. Pure: no I/O,
no rendering (renderers only read a ``Plan``), no HTTP.

A plan of a million numbers holds millions of changes (every declared number is
an add on every target it is new to), so a target's changes are kept as one run
per action, and the runs that come from declared entries (adds, re-adds, adopts,
expiries, declared opt-outs) hold references to those entries rather than a
``Change`` each: a ``Change`` is made when one is read. Adds, nearly all of a
first plan, are not even listed: they are the declared numbers, in number order
(sorted once, shared by every target that declares the same numbers), minus the
few that are planned otherwise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import chain, compress, filterfalse, islice, repeat, starmap
from typing import TypeVar, overload

from . import __version__
from .domain import DesiredEntry, LiveEntry, ManagedEntry, Op, Target
from .expiry import iso
from .models import Safety

#: every action, in the order plans show them: what takes a number off a list or
#: changes it first (a reviewer must see those before any add), then adds and adopts
#: ("optout": declared, but live as the user's own opt-out, so left alone and never
#: managed). Text, markdown, JSON and the plan file all follow this order.
ACTIONS = ("remove", "expire", "update", "readd", "add", "adopt", "optout", "unmanaged")
#: the actions a reviewer must never miss: shown first, truncated last
DESTRUCTIVE_ACTIONS = frozenset({"remove", "expire", "update", "readd"})
#: actions that call a provider's API
WRITE_ACTIONS = frozenset({"add", "readd", "update", "expire", "remove"})
#: actions that count as "changes" for --detailed-exitcode
CHANGE_ACTIONS = WRITE_ACTIONS | {"adopt"}

T = TypeVar("T")


@dataclass(slots=True)
class Change:
    """One line of a plan (immutable by convention; not frozen: plans hold millions)."""

    action: str
    number: str
    reason: str | None = None
    expires: dt.datetime | None = None
    source: str = ""
    attrs: tuple[tuple[str, str], ...] = ()
    provider_ids: tuple[str, ...] = ()
    before: tuple[tuple[str, str | None], ...] | None = None  # update: attribute -> old value

    def after(self, key: str) -> str | None:
        """The value an update gives attribute ``key`` (``expires`` as an instant)."""
        if key == "expires":
            return iso(self.expires)
        return dict(self.attrs).get(key)


# -- changes held by reference -----------------------------------------------------------------


class SortedNumbers:
    """The numbers of a desired mapping in number order, shared by every target whose
    mapping holds the same numbers in the same order (the targets of one list).

    Computed as far as they are read: the first ``HEAD`` by a heap selection (a text
    plan shows a few dozen adds per target; a full sort of a million numbers costs ten
    times more), all of them, one full sort, only when a reader goes on; a reader that
    reads them all (a plan file, apply) asks for ``numbers(whole=True)``: the sort
    alone (the heap first would add ~2x a sort of 20 000, 0.1 s at a million)."""

    __slots__ = ("_keys", "_head", "_sorted", "_expired", "_entries")

    HEAD = 4096

    def __init__(self, keys: Mapping[str, object]) -> None:
        self._keys = keys
        self._head: list[str] | None = None
        self._sorted: list[str] | None = None
        self._expired: list[tuple[Mapping[str, DesiredEntry], dt.datetime, set[str]]] = []
        #: id(mapping) -> (the mapping, its entries in number order)
        self._entries: dict[int, tuple[Mapping[str, DesiredEntry], list[DesiredEntry]]] = {}

    @classmethod
    def shared(cls, desired: Mapping[str, object], pool: list[SortedNumbers]) -> SortedNumbers:
        """The sort in ``pool`` that ``fits`` ``desired``, else a new one, added to it."""
        order = next((o for o in pool if o.fits(desired)), None)
        if order is None:
            order = cls(desired)
            pool.append(order)
        return order

    def __len__(self) -> int:
        return len(self._keys)

    def fits(self, keys: Mapping[str, object]) -> bool:
        """Whether ``keys`` holds these numbers in the same order (the loader builds a
        list's targets alike: one walk, pointer comparisons mostly)."""
        mine = self._keys
        return mine is keys or (len(mine) == len(keys) and all(map(operator.eq, mine, keys)))

    def expired(self, desired: Mapping[str, DesiredEntry], now: dt.datetime) -> set[str]:
        """``expired_numbers(desired, now)``, found once for the targets that declare the
        very same entries (a list's targets without attributes of their own)."""
        for seen, at, numbers in self._expired:
            if at == now and (
                seen is desired or all(map(operator.is_, seen.values(), desired.values()))
            ):
                return numbers
        numbers = expired_numbers(desired, now)
        self._expired.append((desired, now, numbers))
        return numbers

    #: below this many numbers a full sort is cheaper than the heap's ``HEAD``
    HEAP_FROM = 8

    def head(self) -> list[str]:
        """The first ``HEAD`` numbers in number order (all of them, if fewer)."""
        if self._head is None:
            if self._sorted is None and len(self._keys) > self.HEAD * self.HEAP_FROM:
                self._head = heapq.nsmallest(self.HEAD, self._keys)
            else:
                self._head = self.sorted_numbers()[: self.HEAD]
        return self._head

    def sorted_numbers(self) -> list[str]:
        """Every number in number order (sorted once, when a reader goes past the head)."""
        if self._sorted is None:
            self._sorted = sorted(self._keys)
        return self._sorted

    def entries_of(self, desired: Mapping[str, DesiredEntry]) -> list[DesiredEntry]:
        """The entries of ``desired`` (which holds these numbers) in number order, looked
        up once for every reader of them all: a plan file reads the adds of a list's
        targets one after another, the digest each mapping, and a lookup in number order
        misses the memory caches (half the time of a plan file at a million numbers)."""
        held = self._entries.get(id(desired))
        if held is None:
            entries = list(map(desired.__getitem__, self.sorted_numbers()))
            held = self._entries[id(desired)] = (desired, entries)
        return held[1]

    def numbers(self, whole: bool = False) -> Iterator[str]:
        """Every number, in number order; ``whole``: the reader will read them all."""
        if whole or self._sorted is not None:
            return iter(self.sorted_numbers())
        return self._head_first()

    def _head_first(self) -> Iterator[str]:
        head = self.head()
        yield from head
        if len(self._keys) > len(head):
            yield from islice(self.sorted_numbers(), len(head), None)


class DeclaredRun(Sequence[Change]):
    """The changes of one action that come from declared entries, by number: either an
    explicit list of numbers (with the live provider ids of each, where the action
    names them), or every number of a ``SortedNumbers`` but those in the ``skip`` sets
    (a target's adds). Holds references only; iterating makes each ``Change``."""

    __slots__ = ("action", "_desired", "_numbers", "_ids", "_order", "_skip", "_len")

    def __init__(
        self,
        action: str,
        desired: Mapping[str, DesiredEntry],
        numbers: list[str] | None = None,
        ids: list[tuple[str, ...]] | None = None,
        *,
        order: SortedNumbers | None = None,
        skip: tuple[Set[str], ...] = (),
        count: int = 0,
    ) -> None:
        self.action = action
        self._desired = desired
        self._numbers = numbers
        self._ids = ids
        self._order = order
        self._skip = tuple(s for s in skip if s)
        self._len = len(numbers) if numbers is not None else count

    def numbers(self, whole: bool = False) -> Iterator[str]:
        """The numbers, in order (a lazy run filters the shared order as it goes);
        ``whole``: the reader reads them all (``SortedNumbers.numbers``)."""
        if self._numbers is not None:
            return iter(self._numbers)
        assert self._order is not None
        numbers: Iterator[str] = self._order.numbers(whole)
        for skip in self._skip:
            numbers = filterfalse(skip.__contains__, numbers)
        return numbers

    def entries(self, whole: bool = False) -> Iterator[DesiredEntry]:
        """The declared entries the changes come from, in order (``whole``: from the
        order's entries, minus the skipped numbers, where the run is lazy)."""
        if not whole or self._numbers is not None:
            return map(self._desired.__getitem__, self.numbers(whole))
        assert self._order is not None
        entries = self._order.entries_of(self._desired)
        if not self._skip:
            return iter(entries)
        numbers = self._order.sorted_numbers()
        skipped = map(self._skip[0].__contains__, numbers)
        for skip in self._skip[1:]:
            skipped = map(operator.or_, skipped, map(skip.__contains__, numbers))
        return compress(entries, map(operator.not_, skipped))

    def pairs(self, whole: bool = False) -> Iterator[tuple[DesiredEntry, tuple[str, ...]]]:
        """(declared entry, live provider ids) of each change, in order; the ids are
        ``()`` where the action names none (adds, re-adds)."""
        if self._ids is None:
            return zip(self.entries(whole), repeat(()))  # noqa: B905 (repeat is endless)
        return zip(self.entries(whole), self._ids, strict=True)

    def mapped(
        self, fn: Callable[[DesiredEntry, tuple[str, ...]], T], block: int = 1 << 16
    ) -> Iterator[list[T]]:
        """``fn(entry, provider ids)`` of each change, in order, in lists of at most
        ``block``: what ``map`` over ``pairs`` gives, cut into blocks. (Reading the
        entries a block at a time in memory order instead was measured slower, at
        100 000 and at 1 000 000 numbers: 21-24 s against 20 s of JSON lines.)"""
        made = starmap(fn, self.pairs(whole=True))
        return iter(lambda: list(islice(made, block)), [])

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Change]:
        action = self.action
        for e, ids in self.pairs():
            yield Change(action, e.number, e.reason, e.expires, e.source, e.attrs, ids)

    @overload
    def __getitem__(self, index: int) -> Change: ...
    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...
    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        if self._numbers is None:  # random access: list the numbers once
            self._numbers = list(self.numbers(whole=True))
            self._order, self._skip = None, ()
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step == 1:
                return list(islice(self, start, stop))
            return list(self)[index]
        number = self._numbers[index]
        ids = self._ids[index] if self._ids is not None else ()
        e = self._desired[number]
        return Change(self.action, e.number, e.reason, e.expires, e.source, e.attrs, ids)

    def __repr__(self) -> str:
        return f"DeclaredRun({self.action!r}, {self._len} changes)"


class Changes(Sequence[Change]):
    """A target's changes as one run per action, in ACTIONS order, each by number. A
    read-only sequence of ``Change`` like the list it stands for (equal to it, too)."""

    __slots__ = ("_runs", "_len")

    def __init__(self, runs: Iterable[tuple[str, Sequence[Change]]]) -> None:
        self._runs = [(a, r) for a, r in runs if len(r)]
        self._len = sum(len(r) for _, r in self._runs)

    def runs(self) -> list[tuple[str, Sequence[Change]]]:
        """(action, its changes), in order, for those with any."""
        return list(self._runs)

    def of(self, action: str) -> Sequence[Change]:
        for a, run in self._runs:
            if a == action:
                return run
        return ()

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIONS, 0)
        for a, run in self._runs:
            counts[a] += len(run)
        return counts

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Change]:
        return chain.from_iterable(run for _, run in self._runs)

    @overload
    def __getitem__(self, index: int) -> Change: ...
    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...
    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step == 1:
                return list(islice(self, start, stop))
            return list(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("change index out of range")
        for _, run in self._runs:
            if index < len(run):
                return run[index]
            index -= len(run)
        raise IndexError("change index out of range")  # pragma: no cover

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str | bytes) or not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(map(operator.eq, self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{a}: {len(r)}" for a, r in self._runs)
        return f"Changes({inner})"


def runs_of(changes: Sequence[Change]) -> list[tuple[str, Sequence[Change]]]:
    """(action, changes) runs of a target's changes in their order: a ``Changes``'
    own runs, or a plain list (a loaded plan, a test's) cut where the action changes."""
    if isinstance(changes, Changes):
        return changes.runs()
    out: list[tuple[str, Sequence[Change]]] = []
    start = 0
    for i in range(1, len(changes) + 1):
        if i == len(changes) or changes[i].action != changes[start].action:
            out.append((changes[start].action, changes[start:i]))
            start = i
    return out


@dataclass
class TargetPlan:
    """The plan of one target."""

    target: Target
    live_readable: bool
    #: in ACTIONS order (destructive first), then by number: a ``Changes`` from the diff,
    #: a list from a plan file (or a test)
    changes: Sequence[Change]
    existing: int  # entries live (or, if unreadable, in state) before the plan
    fingerprint: str  # of the live state (or state) the plan was computed from
    forget: list[str] = field(default_factory=list)  # state-only cleanups, no API call
    unsafe_reasons: list[str] = field(default_factory=list)
    #: live numbers the provider marks as the users' own opt-outs (the executor's guard)
    opt_outs: frozenset[str] = frozenset()
    #: what a reviewer should know that is not a change (e.g. adopts of possible opt-outs)
    warnings: list[str] = field(default_factory=list)
    _counts: dict[str, int] | None = field(default=None, repr=False, compare=False)

    @property
    def safe(self) -> bool:
        return not self.unsafe_reasons

    def count(self, action: str) -> int:
        return self.summary().get(action, 0)

    def summary(self) -> dict[str, int]:
        """Changes per action (counted once: a plan is not changed after it is built)."""
        if self._counts is None:
            if isinstance(self.changes, Changes):
                counts = self.changes.counts()
            else:
                counts = dict.fromkeys(ACTIONS, 0)
                for c in self.changes:
                    counts[c.action] += 1
            self._counts = counts
        return dict(self._counts)

    @property
    def has_changes(self) -> bool:
        counts = self.summary()
        return any(counts[a] for a in CHANGE_ACTIONS) or bool(self.forget)

    def runs(self) -> list[tuple[str, Sequence[Change]]]:
        """(action, changes) in plan order (``runs_of``)."""
        return runs_of(self.changes)

    def has_writes(self) -> bool:
        """Whether ``write_ops`` has anything to send (from the counts alone)."""
        counts = self.summary()
        return any(counts.get(a) for a in _REMOVING + _ADDING)

    def write_counts(self) -> tuple[int, int]:
        """How many (removes, adds) ``write_ops`` returns, from the counts alone."""
        counts = self.summary()
        return sum(counts[a] for a in _REMOVING), sum(counts[a] for a in _ADDING)

    def write_ops(self, first: int | None = None) -> tuple[list[Op], list[Op]]:
        """(removes, adds) to send: update = remove then add; adopt/unmanaged send nothing.

        ``first``: only the first ``first`` ops of the kind sent first (the removes, or
        the adds of a target without removes), the other list empty: the head of what
        the whole call returns, built without the rest (apply sends it meanwhile)."""
        removes: list[Op] = []
        adds: list[Op] = []
        removes_first = first is not None and self.write_counts()[0] > 0
        for action, run in self.runs():
            if action in _REMOVING:  # none when the head is the adds
                removes.extend(
                    islice(
                        (
                            Op("remove", c.number, provider_ids=c.provider_ids, source=c.source)
                            for c in run
                        ),
                        _room(removes, first),
                    )
                )
            if action in _ADDING and not removes_first:
                if isinstance(run, DeclaredRun):  # straight from the entries: no Change
                    # (positional: a keyword call costs 0.4 us more an op, 20 000 per target)
                    made = (
                        Op("add", e.number, e.expires, e.attrs, (), e.reason, e.source)
                        for e in run.entries(whole=first is None)
                    )
                else:
                    made = (
                        Op("add", c.number, c.expires, c.attrs, reason=c.reason, source=c.source)
                        for c in run
                    )
                adds.extend(islice(made, _room(adds, first)))
        # the old order: each change's remove and add in ACTIONS order, adds after removes
        return removes, adds


def _room(ops: list[Op], first: int | None) -> int | None:
    """How many more ops ``write_ops`` takes (None: all)."""
    return None if first is None else max(0, first - len(ops))


#: the actions that send a remove, and those that send an add (an update sends both)
_REMOVING = ("remove", "expire", "update")
_ADDING = ("add", "readd", "update")


@dataclass
class Plan:
    """Everything a renderer, a plan file or apply needs."""

    now: dt.datetime
    targets: list[TargetPlan]
    desired_digest: str = ""
    lineage: str | None = None
    serial: int | None = None
    tool_version: str = __version__
    configuration: str = ""  # the configuration's name (``Desired.configuration``)
    #: False: planned against state only (``plan --refresh=false``), no provider read
    refreshed: bool = True

    @property
    def safe(self) -> bool:
        return all(t.safe for t in self.targets)

    def unsafe_text(self) -> str:
        """Why the plan is unsafe, one ``target: reason`` after another (for errors)."""
        return "; ".join(f"{t.target.name}: {r}" for t in self.targets for r in t.unsafe_reasons)

    @property
    def has_changes(self) -> bool:
        return any(t.has_changes for t in self.targets)

    def summary(self) -> dict[str, int]:
        total = dict.fromkeys(ACTIONS, 0)
        for t in self.targets:
            for k, v in t.summary().items():
                total[k] += v
        return total


# -- the diff ------------------------------------------------------------------------------


def live_fingerprint(live: Mapping[str, LiveEntry] | Mapping[str, ManagedEntry]) -> str:
    """Digest of a target's live entries (numbers, attributes, ids)."""
    h = hashlib.sha256()
    shown: dict[tuple[tuple[str, str], ...], str] = {}  # attrs -> its text (few distinct)
    has_expiry: dict[type, bool] = {}
    lines: list[str] = []
    for number in sorted(live):
        e = live[number]
        kind = type(e)
        if kind not in has_expiry:
            has_expiry[kind] = hasattr(kind, "expires")
        expires = getattr(e, "expires", None) if has_expiry[kind] else None
        attrs = e.attrs
        text = shown.get(attrs)
        if text is None:
            text = shown[attrs] = str(attrs)
        lines.append(f"{number}|{text}|{','.join(e.provider_ids) or None}|{iso(expires)}\n")
        if len(lines) == 8192:
            h.update("".join(lines).encode())
            lines.clear()
    h.update("".join(lines).encode())
    return h.hexdigest()


def expired_numbers(desired: Mapping[str, DesiredEntry], now: dt.datetime) -> set[str]:
    """The declared numbers whose expiry is at or before ``now``."""
    return {n for n, e in desired.items() if e.expires is not None and e.expires <= now}


def plan_target(
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
    shared: list[SortedNumbers] | None = None,
) -> TargetPlan:
    """Diff one target. ``live`` is None when the provider cannot list: state stands in.

    Provider-visible attributes compared for updates: the ``attribute_fields``
    (e.g. reject_type) and, for providers with native expiry, the expiry.

    A live entry the provider marks as the user's own opt-out is never adopted,
    updated, re-added over, expired or removed, in any mode: declared, it is an
    ``optout`` line; managed, it is forgotten from state (it is the user's now).
    ``marks_opt_outs`` False means the provider cannot tell opt-outs apart:
    adopting a number that was live before this tool managed it gets a warning.

    ``shared``: the ``SortedNumbers`` of the plan's other targets, to share one sort
    (and the expired numbers) with those that declare the same numbers; this target's
    is added when none fits. Every mapping is keyed by number.

    Only the declared numbers that are live, managed or expired are looked at one by
    one; every other declared number is an add, and the adds are not listed (a
    ``DeclaredRun`` over the sorted numbers, minus the ones looked at).
    """
    readable = live is not None
    if live is None:
        # the provider cannot list: what state says we put there is our best knowledge,
        # minus what the provider has already expired by itself
        live = {
            n: LiveEntry(n, n, m.attrs, m.provider_ids)
            for n, m in managed.items()
            if not (native_expiry and m.expires is not None and m.expires <= now)
        }
    attr_keys = tuple(attribute_fields)
    forget: list[str] = []
    declared: dict[str, list[str]] = {a: [] for a in ("expire", "readd", "adopt", "optout")}
    ids: dict[str, list[tuple[str, ...]]] = {a: [] for a in ("expire", "adopt", "optout")}
    updates: list[Change] = []
    removes: list[Change] = []
    unmanaged: list[Change] = []

    order = SortedNumbers.shared(desired, shared if shared is not None else [])
    opt_outs = frozenset(n for n, e in live.items() if e.opt_out)
    expired = order.expired(desired, now)
    looked_at = desired.keys() & live.keys()
    if managed:
        looked_at |= desired.keys() & managed.keys()
    for number in sorted(looked_at):  # declared, and live or managed
        entry = desired[number]
        in_live = number in live
        in_managed = number in managed
        if number in opt_outs:
            if number not in expired:
                declared["optout"].append(number)
                ids["optout"].append(live[number].provider_ids)
            if in_managed:
                forget.append(number)
            continue
        if number in expired:
            if in_live and in_managed:
                declared["expire"].append(number)
                ids["expire"].append(live[number].provider_ids)
            elif in_live:
                unmanaged.append(_unmanaged(live[number]))
            else:
                forget.append(number)
            continue
        if not in_live:
            declared["readd"].append(number)  # managed, not live: drift
            continue
        have = live[number]
        m = managed.get(number)
        if _unchanged(entry, have, m, attr_keys, native_expiry):
            before = None
        else:
            before = _differences(entry, have, m, attr_keys, native_expiry)
        if before:
            updates.append(_from_entry("update", entry, have.provider_ids, before))
        elif not in_managed:
            declared["adopt"].append(number)
            ids["adopt"].append(have.provider_ids)

    undeclared_unmanaged: list[Change] = []
    for number in sorted([n for n in live if n not in desired]):
        entry = live[number]
        m = managed.get(number)
        if entry.unparsed:
            undeclared_unmanaged.append(_unmanaged(entry))  # which number it is cannot be told
        elif entry.opt_out:
            undeclared_unmanaged.append(_unmanaged(entry))
            if m is not None:
                forget.append(number)
        elif m is not None:
            removes.append(
                Change(
                    "remove", number, m.reason, m.expires, m.source, entry.attrs, entry.provider_ids
                )
            )
        elif target.exclusive:
            removes.append(
                Change("remove", number, None, None, "", entry.attrs, entry.provider_ids)
            )
        else:
            undeclared_unmanaged.append(_unmanaged(entry))
    if managed:
        forget.extend(n for n in managed if n not in live and n not in desired)
    if unmanaged and undeclared_unmanaged:
        unmanaged.extend(undeclared_unmanaged)
        unmanaged.sort(key=operator.attrgetter("number"))
    else:
        unmanaged = unmanaged or undeclared_unmanaged

    # the adds: every other declared number (expired ones not looked at are nothing)
    count = len(desired) - len(looked_at) - len(expired) + len(expired & looked_at)
    adds = DeclaredRun("add", desired, order=order, skip=(looked_at, expired), count=count)

    def run(action: str) -> DeclaredRun:
        return DeclaredRun(action, desired, declared[action], ids.get(action))

    changes = Changes(
        [
            ("remove", removes),
            ("expire", run("expire")),
            ("update", updates),
            ("readd", run("readd")),
            ("add", adds),
            ("adopt", run("adopt")),
            ("optout", run("optout")),
            ("unmanaged", unmanaged),
        ]
    )
    plan = TargetPlan(
        target=target,
        live_readable=readable,
        changes=changes,
        existing=len(live),
        fingerprint=live_fingerprint(live if readable else managed),
        forget=sorted(forget),
        opt_outs=opt_outs,
        _counts=changes.counts(),  # counted while building: the runs know their sizes
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


def _from_entry(
    action: str,
    entry: DesiredEntry,
    provider_ids: tuple[str, ...] = (),
    before: tuple[tuple[str, str | None], ...] | None = None,
) -> Change:
    return Change(
        action,
        entry.number,
        entry.reason,
        entry.expires,
        entry.source,
        entry.attrs,
        provider_ids,
        before,
    )


def _unmanaged(entry: LiveEntry) -> Change:
    return Change("unmanaged", entry.number, None, None, "", entry.attrs, entry.provider_ids)


def _unchanged(
    entry: DesiredEntry,
    live: LiveEntry,
    managed: ManagedEntry | None,
    attr_keys: tuple[str, ...],
    native_expiry: bool,
) -> bool:
    """True when ``_differences`` would find nothing, told without building its dicts
    (a plan after an apply compares every declared number): the same attributes (or
    none compared), and the same expiry where it is compared."""
    if attr_keys and entry.attrs != live.attrs:
        return False
    return not native_expiry or managed is None or entry.expires == managed.expires


def _differences(
    entry: DesiredEntry,
    live: LiveEntry,
    managed: ManagedEntry | None,
    attr_keys: tuple[str, ...],
    native_expiry: bool,
) -> tuple[tuple[str, str | None], ...] | None:
    """Provider-visible attributes that differ: ((attribute, old value), ...) or None."""
    want: dict[str, str | None] = {k: dict(entry.attrs).get(k) for k in attr_keys}
    have: dict[str, str | None] = {k: dict(live.attrs).get(k) for k in attr_keys}
    if native_expiry and managed is not None:
        want["expires"] = iso(entry.expires)
        have["expires"] = iso(managed.expires)
    # an attribute the list does not set is not compared (the provider's default stands);
    # the records are flat and tiny, so a direct comparison is all it takes
    changed = tuple(
        (k, have[k])
        for k in sorted(want)
        if want[k] != have[k] and (want[k] is not None or k == "expires")
    )
    return changed or None


def safety_problems(plan: TargetPlan, safety: Safety) -> list[str]:
    """Why a target's plan is unsafe (octoDNS-style thresholds), or []."""
    existing = plan.existing
    if existing < safety.min_existing or existing == 0:
        return []  # no share of nothing (``min_existing: 0`` must not divide by zero)
    reasons = []
    removing = plan.count("remove") + plan.count("expire")
    if removing > safety.max_remove_fraction * existing:
        reasons.append(
            f"would remove or expire {removing:,} of {existing:,} entries "
            f"({removing / existing:.0%} > {safety.max_remove_fraction:.0%})"
        )
    adding = plan.count("add") + plan.count("readd")
    if adding > safety.max_add_fraction * existing:
        reasons.append(
            f"would add {adding:,} entries to {existing:,} "
            f"({adding / existing:.0%} > {safety.max_add_fraction:.0%})"
        )
    return reasons
