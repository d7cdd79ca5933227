"""``blocklist audit``: a read-only report of how live state, state and the lists agree.

Owns the audit report (a value, computed from the same inputs as a plan and
by the same diff, ``plan_target``); ``views.audit`` renders it. It never writes
to a provider or to state: it refreshes live state and reads state, as ``plan``
does.

Per target it reports these categories; all but ``unmanaged`` are *findings*
(``--detailed-exitcode`` exits 2 when there is one). Unmanaged entries are
informational, since a default configuration never touches them (opt-outs are
among them), unless ``strict`` makes them findings too.

| category | meaning | what apply does |
| --- | --- | --- |
| ``drift`` | declared and managed, missing live: removed by hand | re-adds it |
| ``mismatch`` | live and declared differ in a provider-visible attribute | updates it |
| ``not_applied`` | declared, not live, never applied | adds it |
| ``expired_live`` | declared expiry passed, still live, managed | expires it |
| ``expiring`` | declared expiry within the window (``--expiring-within``) | nothing yet |
| ``stale_state`` | in state but no list declares it (any more) | removes / forgets it |
| ``pending`` | managed, its last remove failed (the provider's reason kept) | removes it again |
| ``unmanaged`` | live, not declared, not managed | nothing |

A target whose provider cannot list cannot be audited against live
state: it is reported as such, with the checks that need only the lists and
state (``not_applied``, ``expiring``, ``stale_state``). Targets that only state
still names (every list dropped them) are audited from state alone.

JSON document (``format_version`` 1)::

    {"format_version": 1, "kind": "blocklist-audit", "tool_version": "0.1.0",
     "now": "…Z", "expiring_within": "14d", "expiring_before": "…Z", "strict": false,
     "clean": false, "findings": 3,
     "summary": {"drift": 1, …, "unmanaged": 7, "unreadable_targets": 1},
     "targets": [{"name": "sms-provider/sms", "provider": "sms-provider", "type": "…",
                  "scope": {"channel": "sms"}, "declared": true, "live_readable": true,
                  "counts": {"declared": 10, "live": 12, "managed": 10},
                  "findings": 1, "summary": {…},
                  "drift": [{"number": "+91…", "reason": "fraud", "expires": null,
                             "source": "blocklists/fraud.yaml:14", "live": false}],
                  "mismatch": [{…, "changes": [{"attribute": "reject_type",
                                                "live": "import", "declared": "invalid"}]}],
                  "not_applied": […], "expired_live": […], "expiring": […],
                  "stale_state": […],
                  "unmanaged": [{"number": "+91…", "attrs": {}, "opt_out": false}]}]}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from .. import __version__
from ..connections import Connections
from ..desired import Desired
from ..domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from ..errors import BlocklistError
from ..expiry import iso
from ..gcpause import frozen_heap, keep_alive, paused_gc
from ..models import ProvidersFile
from ..plan import Change, DeclaredRun, plan_target
from ..providers import adapter_class
from .common import load_frozen, open_run_state, refresh_targets, select_targets
from .ui import UI

#: (category, label, explanation), in report order; ``unmanaged`` last
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("drift", "drift", "declared and managed, missing live (removed by hand): apply re-adds"),
    ("mismatch", "mismatch", "live attribute differs from the list: apply updates"),
    ("not_applied", "not applied", "declared, never applied: apply adds"),
    ("expired_live", "expired but live", "expiry passed, still live: apply expires"),
    ("expiring", "expiring soon", "expires within the window"),
    ("stale_state", "stale state", "in state, no list declares it: apply removes or forgets"),
    ("pending", "pending remove", "its last remove failed, still managed: apply removes it again"),
    ("unmanaged", "unmanaged", "live, not declared, not managed: left alone"),
)
FINDING_CATEGORIES = tuple(c for c, _, _ in CATEGORIES if c != "unmanaged")
LABELS = {c: label for c, label, _ in CATEGORIES}
NOT_READABLE = "live state not readable: drift and unmanaged entries cannot be seen"

# -- the report (values) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One number in one category of a target's audit."""

    number: str
    reason: str | None = None
    expires: dt.datetime | None = None
    source: str = ""
    live: bool | None = None  # None: live state not readable
    attrs: tuple[tuple[str, str], ...] = ()
    opt_out: bool = False
    changes: tuple[tuple[str, str | None, str | None], ...] = ()  # (attribute, live, declared)


@dataclass
class TargetAudit:
    """The audit of one target."""

    target: Target
    declared: bool  # False: only state still names this target
    live_readable: bool
    counts: dict[str, int | None]  # declared, live (None if unreadable), managed
    entries: dict[str, list[AuditEntry]] = field(default_factory=dict)  # category -> entries
    warnings: list[str] = field(default_factory=list)  # what the plan warns a reviewer of

    def of(self, category: str) -> list[AuditEntry]:
        return self.entries.get(category, [])

    def summary(self) -> dict[str, int]:
        return {c: len(self.of(c)) for c, _, _ in CATEGORIES}

    def findings(self, strict: bool = False) -> int:
        cats = FINDING_CATEGORIES + (("unmanaged",) if strict else ())
        return sum(len(self.of(c)) for c in cats)


@dataclass
class AuditReport:
    """Everything the renderers need."""

    now: dt.datetime
    window: dt.timedelta
    window_text: str
    targets: list[TargetAudit]
    strict: bool = False
    tool_version: str = __version__

    @property
    def until(self) -> dt.datetime:
        return self.now + self.window

    @property
    def findings(self) -> int:
        return sum(t.findings(self.strict) for t in self.targets)

    @property
    def clean(self) -> bool:
        return self.findings == 0

    def summary(self) -> dict[str, int]:
        total = {c: 0 for c, _, _ in CATEGORIES}
        for t in self.targets:
            for k, v in t.summary().items():
                total[k] += v
        total["unreadable_targets"] = sum(1 for t in self.targets if not t.live_readable)
        return total


# -- computing (pure) ------------------------------------------------------------------------


def _from_change(c: Change | DesiredEntry, live: bool | None) -> AuditEntry:
    return AuditEntry(c.number, c.reason, c.expires, c.source, live, c.attrs)


def audit_target(
    target: Target,
    desired: Mapping[str, DesiredEntry],
    live: Mapping[str, LiveEntry] | None,
    managed: Mapping[str, ManagedEntry],
    now: dt.datetime,
    until: dt.datetime,
    *,
    native_expiry: bool = False,
    attribute_fields: Iterable[str] = (),
    declared_target: bool = True,
    marks_opt_outs: bool = True,
) -> TargetAudit:
    """Audit one target from its declared, live (None: unreadable) and managed entries.

    The action-based categories come from ``plan_target`` so that the audit and the
    plan never disagree on what apply would do.
    """
    readable = live is not None
    tp = plan_target(
        target,
        desired,
        live,
        managed,
        now,
        native_expiry=native_expiry,
        attribute_fields=attribute_fields,
        marks_opt_outs=marks_opt_outs,
    )
    runs = dict(tp.runs())  # action -> its changes (declared entries, for most)

    def of(action: str) -> Iterable[Change | DesiredEntry]:
        """The changes of ``action``; a declared run as its entries (the same fields,
        without a ``Change`` made for each of hundreds of thousands of adds)."""
        run = runs.get(action, ())
        return run.entries(whole=True) if isinstance(run, DeclaredRun) else run

    def is_live(number: str) -> bool | None:
        return (number in live) if live is not None else None

    first = itemgetter(0)
    entries: dict[str, list[AuditEntry]] = {
        "drift": [_from_change(c, False) for c in of("readd")],
        # an add is a declared number the provider does not have (or cannot tell)
        "not_applied": [_from_change(c, False if readable else None) for c in of("add")],
        "expired_live": [_from_change(c, True) for c in of("expire")],
    }
    mismatch = []
    for c in runs.get("update", ()):
        after = dict(c.attrs)
        changes = tuple(
            (k, old, iso(c.expires) if k == "expires" else after.get(k))
            for k, old in c.before or ()
        )
        mismatch.append(
            AuditEntry(c.number, c.reason, c.expires, c.source, True, c.attrs, changes=changes)
        )
    entries["mismatch"] = mismatch
    # (filtered, then sorted by number: the numbers are distinct keys)
    entries["expiring"] = [
        AuditEntry(e.number, e.reason, e.expires, e.source, is_live(n), e.attrs)
        for n, e in sorted(
            (
                (n, e)
                for n, e in desired.items()
                if e.expires is not None and now < e.expires <= until
            ),
            key=first,
        )
    ]
    entries["stale_state"] = [
        AuditEntry(n, m.reason, m.expires, m.source, is_live(n), m.attrs)
        for n, m in sorted(((n, m) for n, m in managed.items() if n not in desired), key=first)
    ]
    entries["pending"] = [
        AuditEntry(n, m.pending, m.expires, m.source, is_live(n), m.attrs)
        for n, m in sorted(((n, m) for n, m in managed.items() if m.pending is not None), key=first)
    ]
    unmanaged = []
    if live is not None:
        for n, e in sorted(((n, e) for n, e in live.items() if n not in managed), key=first):
            d = desired.get(n)
            if d is None or (d.expires is not None and d.expires <= now):
                unmanaged.append(AuditEntry(n, live=True, attrs=e.attrs, opt_out=e.opt_out))
    entries["unmanaged"] = unmanaged
    counts: dict[str, int | None] = {
        "declared": len(desired),
        "live": len(live) if live is not None else None,
        "managed": len(managed),
    }
    return TargetAudit(target, declared_target, readable, counts, entries, list(tp.warnings))


def build_report(
    desired: Desired,
    targets: list[Target],
    orphans: list[str],
    live: Mapping[str, Mapping[str, LiveEntry] | None],
    managed: Mapping[str, Mapping[str, ManagedEntry]],
    now: dt.datetime,
    window: dt.timedelta,
    window_text: str,
    strict: bool = False,
) -> AuditReport:
    """The report of the selected declared targets and of state-only (orphan) targets."""
    until = now + window
    audits = []
    for target in targets:
        caps = adapter_class(target.type).capabilities
        audits.append(
            audit_target(
                target,
                desired.entries.get(target.name, {}),
                live[target.name],
                managed.get(target.name, {}),
                now,
                until,
                native_expiry=caps.native_expiry,
                attribute_fields=caps.attribute_fields,
                marks_opt_outs=not caps.opt_outs_unmarked,
            )
        )
    for name in orphans:
        audits.append(
            audit_target(
                orphan_target(desired.config, name),
                {},
                None,
                managed.get(name, {}),
                now,
                until,
                declared_target=False,
            )
        )
    audits.sort(key=lambda a: a.target.name)
    return AuditReport(now, window, window_text, audits, strict)


def orphan_target(config: ProvidersFile, name: str) -> Target:
    """A Target for a name only state knows (its instance may be gone from providers.yaml)."""
    instance = name.split("/", 1)[0]
    inst = config.providers.get(instance)
    return Target(name, instance, inst.type if inst else "unknown")


def select_audit_targets(
    desired: Desired, state_targets: Iterable[str], names: Iterable[str] = ()
) -> tuple[list[Target], list[str]]:
    """(declared targets, state-only target names) named by ``--target``, or all."""
    names = list(names)
    orphans = sorted(set(state_targets) - set(desired.targets))
    if not names:
        return list(desired.targets.values()), orphans
    declared_names = []
    chosen_orphans: set[str] = set()
    for name in names:
        matched = [o for o in orphans if o == name or o.split("/", 1)[0] == name]
        chosen_orphans.update(matched)
        declared = any(t.name == name or t.provider == name for t in desired.targets.values())
        if declared or not matched:
            declared_names.append(name)  # select_targets names an unknown one
    targets = select_targets(desired, declared_names) if declared_names else []
    return targets, sorted(chosen_orphans)


# -- orchestration (read-only) ---------------------------------------------------------------


@dataclass
class AuditOptions:
    directory: Path
    targets: tuple[str, ...] = ()
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))
    window: str = "14d"
    strict: bool = False


def parse_window(text: str) -> dt.timedelta:
    from ..expiry import parse_duration_days

    try:
        return parse_duration_days(text)
    except ValueError as exc:
        raise BlocklistError(f"--expiring-within: {exc}") from None


async def run_audit(options: AuditOptions, ui: UI | None = None) -> AuditReport:
    """Refresh the selected targets and read state; write nothing anywhere."""
    window = parse_window(options.window)
    # the desired state, then state's and the live entries, outlive the audit: kept out
    # of the collector's sight until the report is built (as ``run_plan`` does)
    with frozen_heap():
        desired = load_frozen(options.directory)
        return await _audited(desired, options, ui, window)


async def _audited(
    desired: Desired,
    options: AuditOptions,
    ui: UI | None,
    window: dt.timedelta,
) -> AuditReport:
    state = open_run_state(desired, options.directory, create=False, write=False)
    try:
        state_targets = state.targets() if state is not None else []
        targets, orphans = select_audit_targets(desired, state_targets, options.targets)
        managed = {
            name: (state.read_target(name) if state is not None else {})
            for name in [t.name for t in targets] + orphans
        }
    finally:
        if state is not None:
            state.close()
    keep_alive()  # state's entries outlive the audit too
    async with Connections(desired.config, options.directory) as conns:
        live = await refresh_targets(conns, targets, ui)  # frozen as they are read
    with paused_gc():  # an entry per number, none of them garbage (gen-2 scans: 1.2 s)
        return build_report(
            desired,
            targets,
            orphans,
            live,
            managed,
            options.now,
            window,
            options.window,
            options.strict,
        )
