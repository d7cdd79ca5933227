"""``blocklist why NUMBER``: everything this tool knows of one number, as a value.

The evidence a support team needs when a caller disputes a block: every list
entry that declares the number (file:line, reason, expiry, metadata such as a
ticket), what each target's provider says now (asked by number where the
adapter can, else read from the whole list; a provider that cannot list says
so and state stands in), what state recorded when it was applied, the applies
of the audit log that wrote to each target, whether it is a user's own opt-out
or a protected number, and what the next plan would do with it there.

Reads only: no write to a provider, to state or to the audit log.

What the audit log can and cannot say: an apply's record holds counts per
target and the failures per number (``operations.apply.audit_record``), not
the numbers it sent. So for a number it gives its failures exactly, and for
its sending only the applies that wrote to the target (the first and the
last): one of them sent it if state manages it, but which is not recorded.
The report says so rather than guess.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..connections import Connections
from ..desired import Declaration, Desired, Watch, load_desired
from ..domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from ..errors import BlocklistError
from ..numbers import InvalidNumber, normalise
from ..plan import Change, plan_target
from ..providers import adapter_class
from .common import open_run_state, refresh_targets, select_targets
from .ui import UI

#: what the audit log cannot tell, said wherever applies are shown
AUDIT_LIMIT = (
    "the audit log counts each apply's changes per target; when this number was first "
    "and last recorded, by whom and at which commit is in its state record (kept since "
    "state schema 3: earlier records have none)"
)


@dataclass
class WhyOptions:
    directory: Path
    number: str  # as the user typed it: E.164, national (with a list's region), 00…
    targets: tuple[str, ...] = ()
    now: dt.datetime | None = None  # None: the wall clock


@dataclass(frozen=True)
class ApplyRecord:
    """One apply of the audit log, as far as it concerns one target."""

    time: str | None
    actor: str | None
    host: str | None
    commit: str | None
    done: dict[str, int]  # per action, on this target
    failed: dict[str, int]


@dataclass(frozen=True)
class NumberFailure:
    """A failure of this number in an apply (the audit log records these per number)."""

    time: str | None
    actor: str | None
    commit: str | None
    action: str
    reason: str


@dataclass
class LiveStatus:
    """What the provider says of the number on one target now."""

    #: "blocked", "not blocked", "not readable" (the provider cannot list), "not read"
    #: (the target is only in state) or "error"
    status: str
    read: str | None = None  # "by number" or "whole list"
    entry: LiveEntry | None = None
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.status in ("blocked", "not blocked")


@dataclass
class TargetWhy:
    """The number on one target."""

    name: str
    provider: str | None  # instance; None for a target only state still knows
    type: str | None
    declared: DesiredEntry | None  # the merged entry the plan uses (None: not declared)
    expired: bool
    live: LiveStatus
    #: True: the user's own opt-out; False: not one; None: cannot be told (not live, not
    #: read, or the provider does not mark opt-outs)
    opt_out: bool | None
    opt_outs_unmarked: bool
    managed: ManagedEntry | None  # what state recorded when it was applied
    plan: str | None  # what the next plan does: an action, "forget", "no change"; None: unknown
    change: Change | None = None  # the next plan's line for it, if it has one
    applies: list[ApplyRecord] = field(default_factory=list)
    failures: list[NumberFailure] = field(default_factory=list)


@dataclass
class WhyReport:
    """Everything ``blocklist why`` found (``views.why`` renders it)."""

    number: str  # E.164
    written: str  # as given
    now: dt.datetime
    configuration: str
    protected: str | None  # where providers.yaml protects it (None: not protected)
    declarations: list[Declaration]
    targets: list[TargetWhy]
    lineage: str | None = None  # of the state read (None: no state yet)
    serial: int | None = None
    audit_records: int = 0

    @property
    def errors(self) -> list[str]:
        """``TARGET: why its live state could not be read`` for every failed read."""
        return [f"{t.name}: {t.live.error}" for t in self.targets if t.live.status == "error"]

    @property
    def blocked_on(self) -> list[str]:
        return [t.name for t in self.targets if t.live.status == "blocked"]


def number_reading(written: str) -> Watch:
    """The ``load_desired`` watch for ``written``: the E.164 form a list with a given
    default_region reads it as (None where it is no valid number)."""

    def read(region: str | None) -> str | None:
        try:
            return normalise(written, region)
        except InvalidNumber:
            return None

    return read


def resolve_number(written: str, desired: Desired) -> str:
    """``written`` in E.164: as it stands when international, else as the lists'
    default regions read it. When two regions read it as two numbers, the one a list
    declares (as its own region reads it) is meant; an error when none reads it, or
    when it stays ambiguous (write it with its country code then)."""
    read = number_reading(written)
    international = read(None)
    if international is not None:
        return international
    readings: dict[str, list[str]] = {}
    for name, region in desired.list_regions.items():
        number = read(region) if region else None
        if number is not None:
            readings.setdefault(number, []).append(f"{name} ({region})")
    if len(readings) == 1:
        return next(iter(readings))
    declared = {d.number for d in desired.declarations} & set(readings)
    if len(declared) == 1:
        return declared.pop()
    if not readings:
        try:
            normalise(written)
        except InvalidNumber as exc:
            hint = "" if written.strip().startswith(("+", "00")) else "; write it as +CC…"
            raise BlocklistError(f"{written!r} is not a phone number: {exc}{hint}") from None
    shown = "; ".join(f"{n} for {', '.join(lists)}" for n, lists in readings.items())
    raise BlocklistError(f"{written!r} is ambiguous: {shown}. Write it with its country code.")


async def run_why(options: WhyOptions, ui: UI | None = None) -> WhyReport:
    """Read the lists, state, the audit log and every selected target's live state."""
    desired = load_desired(
        options.directory, str(options.directory), watch=number_reading(options.number)
    )
    number = resolve_number(options.number, desired)
    declarations = [d for d in desired.declarations if d.number == number]
    now = options.now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    chosen = select_targets(desired, options.targets)
    state = open_run_state(desired, options.directory, create=False, write=False)
    try:
        managed = dict(state.find_number(number)) if state is not None else {}
        audit = state.read_audit() if state is not None else []
        lineage = state.lineage() if state is not None else None
        serial = state.serial() if state is not None else None
    finally:
        if state is not None:
            state.close()

    async with Connections(desired.config, options.directory) as conns:
        statuses = await asyncio.gather(*(_live_status(conns, t, number, ui) for t in chosen))
    live = {t.name: status for t, status in zip(chosen, statuses, strict=True)}
    targets = [
        _target_why(t, desired, number, live[t.name], managed.get(t.name), audit, now)
        for t in chosen
    ]
    # a target no list declares any more, where state still manages the number: the
    # scope behind its name is not known, so its provider cannot be asked
    for name in sorted(set(managed) - set(desired.targets)):
        picked = any(name == n or name.split("/")[0] == n for n in options.targets)
        if options.targets and not picked:
            continue
        targets.append(
            TargetWhy(
                name=name,
                provider=None,
                type=None,
                declared=None,
                expired=False,
                live=LiveStatus("not read"),
                opt_out=None,
                opt_outs_unmarked=False,
                managed=managed[name],
                plan=None,
                applies=_applies(audit, name),
                failures=_failures(audit, name, number),
            )
        )
    protected = desired.protected.get(number)
    if protected is None and (covered := desired.protected_ranges.match(number)) is not None:
        protected = f"range {covered[0]} ({covered[1]})"
    return WhyReport(
        number=number,
        written=options.number,
        now=now,
        configuration=desired.configuration,
        protected=protected,
        declarations=declarations,
        targets=targets,
        lineage=lineage,
        serial=serial,
        audit_records=len(audit),
    )


async def _live_status(
    conns: Connections, target: Target, number: str, ui: UI | None
) -> LiveStatus:
    """Ask the provider about one number: by number where the adapter offers it
    (``lookup(target, numbers)`` returning live entries, or ``blocklisted(target,
    numbers)`` returning the numbers found), else from a refresh of the whole list."""
    try:
        adapter = conns.adapter(target.provider)
        if not adapter.capabilities.can_list:
            return LiveStatus("not readable")
        lookup = getattr(adapter, "lookup", None)
        blocklisted = getattr(adapter, "blocklisted", None)
        if lookup is not None:
            entries: Sequence[LiveEntry] = await lookup(target, [number])
            entry = next((e for e in entries if e.number == number), None)
            read = "by number"
        elif blocklisted is not None:
            found = await blocklisted(target, [number])
            entry = LiveEntry(number, number) if number in found else None
            read = "by number"
        else:
            entries_of = (await refresh_targets(conns, [target], ui))[target.name] or {}
            entry = entries_of.get(number)
            read = "whole list"
    except BlocklistError as exc:
        return LiveStatus("error", error=str(exc))
    return LiveStatus("blocked" if entry is not None else "not blocked", read, entry)


def _target_why(
    target: Target,
    desired: Desired,
    number: str,
    live: LiveStatus,
    managed: ManagedEntry | None,
    audit: list[dict[str, Any]],
    now: dt.datetime,
) -> TargetWhy:
    caps = adapter_class(target.type).capabilities
    declared = desired.entries.get(target.name, {}).get(number)
    expired = bool(declared and declared.expires is not None and declared.expires <= now)
    entry = live.entry
    if entry is None:
        opt_out = None
    elif entry.opt_out:
        opt_out = True
    else:
        opt_out = None if caps.opt_outs_unmarked else False
    return TargetWhy(
        name=target.name,
        provider=target.provider,
        type=target.type,
        declared=declared,
        expired=expired,
        live=live,
        opt_out=opt_out,
        opt_outs_unmarked=caps.opt_outs_unmarked,
        managed=managed,
        **_next_plan(target, number, declared, live, managed, now, desired),
        applies=_applies(audit, target.name),
        failures=_failures(audit, target.name, number),
    )


def _next_plan(
    target: Target,
    number: str,
    declared: DesiredEntry | None,
    live: LiveStatus,
    managed: ManagedEntry | None,
    now: dt.datetime,
    desired: Desired,
) -> dict[str, Any]:
    """What the next plan does with the number on this target (the plan's own diff,
    on this number alone): ``plan`` and ``change``; ``plan`` None when its live state
    could not be read."""
    if live.status not in ("blocked", "not blocked", "not readable"):
        return {"plan": None}
    caps = adapter_class(target.type).capabilities
    inst = desired.config.providers[target.provider]
    readable = live.status != "not readable"
    tp = plan_target(
        target,
        {number: declared} if declared else {},
        ({number: live.entry} if live.entry else {}) if readable else None,
        {number: managed} if managed else {},
        now,
        native_expiry=caps.native_expiry,
        attribute_fields=caps.attribute_fields,
        safety=inst.safety or desired.config.safety,
        marks_opt_outs=not caps.opt_outs_unmarked,
    )
    if tp.changes:
        return {"plan": tp.changes[0].action, "change": tp.changes[0]}
    return {"plan": "forget" if tp.forget else "no change"}


def _applies(audit: list[dict[str, Any]], target: str) -> list[ApplyRecord]:
    """The applies that wrote to (or failed on) ``target``, oldest first."""
    out = []
    for record in audit:
        for t in record.get("targets") or ():
            if isinstance(t, Mapping) and t.get("name") == target:
                done = _counts(t.get("done"))
                failed = _counts(t.get("failed"))
                if done or failed:
                    out.append(
                        ApplyRecord(
                            _text(record.get("time")),
                            _text(record.get("actor")),
                            _text(record.get("host")),
                            _text(record.get("commit")),
                            done,
                            failed,
                        )
                    )
    return out


def _failures(audit: list[dict[str, Any]], target: str, number: str) -> list[NumberFailure]:
    out = []
    for record in audit:
        for f in record.get("failures") or ():
            if isinstance(f, Mapping) and f.get("target") == target and f.get("number") == number:
                out.append(
                    NumberFailure(
                        _text(record.get("time")),
                        _text(record.get("actor")),
                        _text(record.get("commit")),
                        str(f.get("action", "")),
                        str(f.get("reason", "")),
                    )
                )
    return out


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and v}


def _text(value: object) -> str | None:
    return None if value is None else str(value)
