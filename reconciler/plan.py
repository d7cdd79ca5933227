"""The plan: a value computed from desired, live and managed state.

Owns the diff of DESIGN.md's action table, the safety thresholds and the
live-state fingerprints that saved plans are checked against. Pure: no I/O,
no rendering (renderers only read a ``Plan``), no HTTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


@dataclass
class TargetPlan:
    """The plan of one target."""

    target: Target
    live_readable: bool
    changes: list[Change]  # in ACTIONS order (destructive first), then by number
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
            counts = dict.fromkeys(ACTIONS, 0)
            for c in self.changes:
                counts[c.action] += 1
            self._counts = counts
        return dict(self._counts)

    @property
    def has_changes(self) -> bool:
        counts = self.summary()
        return any(counts[a] for a in CHANGE_ACTIONS) or bool(self.forget)

    def write_ops(self) -> tuple[list[Op], list[Op]]:
        """(removes, adds) to send: update = remove then add; adopt/unmanaged send nothing."""
        removes: list[Op] = []
        adds: list[Op] = []
        for c in self.changes:
            if c.action in ("remove", "expire", "update"):
                removes.append(Op("remove", c.number, provider_ids=c.provider_ids, source=c.source))
            if c.action in ("add", "readd", "update"):
                adds.append(
                    Op("add", c.number, c.expires, c.attrs, reason=c.reason, source=c.source)
                )
        return removes, adds


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
    for number in sorted(live):
        e = live[number]
        expires = getattr(e, "expires", None)
        h.update(f"{number}|{e.attrs}|{','.join(e.provider_ids) or None}|{iso(expires)}\n".encode())
    return h.hexdigest()


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
) -> TargetPlan:
    """Diff one target. ``live`` is None when the provider cannot list: state stands in.

    Provider-visible attributes compared for updates: the ``attribute_fields``
    (e.g. reject_type) and, for providers with native expiry, the expiry.

    A live entry the provider marks as the user's own opt-out is never adopted,
    updated, re-added over, expired or removed, in any mode: declared, it is an
    ``optout`` line; managed, it is forgotten from state (it is the user's now).
    ``marks_opt_outs`` False means the provider cannot tell opt-outs apart:
    adopting a number that was live before this tool managed it gets a warning.
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
    changes: list[Change] = []
    forget: list[str] = []

    opt_outs = frozenset(n for n, e in live.items() if e.opt_out)
    for number, entry in desired.items():
        expired = entry.expires is not None and entry.expires <= now
        in_live = number in live
        in_managed = number in managed
        if number in opt_outs:
            if not expired:
                changes.append(_from_entry("optout", entry, live[number].provider_ids))
            if in_managed:
                forget.append(number)
            continue
        if expired:
            if in_live and in_managed:
                changes.append(_from_entry("expire", entry, live[number].provider_ids))
            elif in_live:
                changes.append(_unmanaged(live[number]))
            elif in_managed:
                forget.append(number)
            continue
        if not in_live:
            changes.append(_from_entry("readd" if in_managed else "add", entry))
            continue
        before = _differences(entry, live[number], managed.get(number), attr_keys, native_expiry)
        if before:
            changes.append(_from_entry("update", entry, live[number].provider_ids, before))
        elif not in_managed:
            changes.append(_from_entry("adopt", entry, live[number].provider_ids))

    for number, entry in live.items():
        if number in desired:
            continue
        m = managed.get(number)
        if entry.unparsed:
            changes.append(_unmanaged(entry))  # which number it is cannot be told
        elif entry.opt_out:
            changes.append(_unmanaged(entry))
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
            changes.append(_unmanaged(entry))
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
        fingerprint=live_fingerprint(live if readable else managed),
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
    if existing < safety.min_existing:
        return []
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
