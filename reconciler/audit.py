"""``blocklist audit``: a read-only report of how live state, state and the lists agree.

Owns the audit report (a value, computed from the same inputs as a plan and
by the same diff, ``plan_target``) and its three renderers (text, markdown
for issues and step summaries, versioned JSON). It never writes to a provider
or to state: it refreshes live state and reads state, as ``plan`` does.

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
| ``unmanaged`` | live, not declared, not managed | nothing |

A target whose provider cannot list (Ozonetel) cannot be audited against live
state: it is reported as such, with the checks that need only the lists and
state (``not_applied``, ``expiring``, ``stale_state``). Targets that only state
still names (every list dropped them) are audited from state alone.

JSON document (``format_version`` 1)::

    {"format_version": 1, "kind": "blocklist-audit", "tool_version": "0.1.0",
     "now": "…Z", "expiring_within": "14d", "expiring_before": "…Z", "strict": false,
     "clean": false, "findings": 3,
     "summary": {"drift": 1, …, "unmanaged": 7, "unreadable_targets": 1},
     "targets": [{"name": "kaleyra/sms", "provider": "kaleyra", "type": "kaleyra",
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
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .connections import Connections
from .desired import Desired, load_desired
from .domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from .errors import BlocklistError
from .expiry import iso
from .models import ProvidersFile
from .plan import Change, plan_target
from .providers import adapter_class
from .render import mask_number, mask_text

FORMAT_VERSION = 1
AUDIT_KIND = "blocklist-audit"
#: markdown output stays strictly below this many characters (GitHub issue bodies: 65 536)
MARKDOWN_LIMIT = 60_000

#: (category, label, explanation), in report order; ``unmanaged`` last
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("drift", "drift", "declared and managed, missing live (removed by hand): apply re-adds"),
    ("mismatch", "mismatch", "live attribute differs from the list: apply updates"),
    ("not_applied", "not applied", "declared, never applied: apply adds"),
    ("expired_live", "expired but live", "expiry passed, still live: apply expires"),
    ("expiring", "expiring soon", "expires within the window"),
    ("stale_state", "stale state", "in state, no list declares it: apply removes or forgets"),
    ("unmanaged", "unmanaged", "live, not declared, not managed: left alone"),
)
FINDING_CATEGORIES = tuple(c for c, _, _ in CATEGORIES if c != "unmanaged")
LABELS = {c: label for c, label, _ in CATEGORIES}
NOT_READABLE = "live state not readable: drift and unmanaged entries cannot be seen"

Progress = Callable[[str], None]


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

    def to_json(self, category: str, mask: bool) -> dict[str, object]:
        number = mask_number(self.number) if mask else self.number
        if category == "unmanaged":
            return {"number": number, "attrs": dict(self.attrs), "opt_out": self.opt_out}
        out: dict[str, object] = {
            "number": number,
            "reason": mask_text(self.reason) if (mask and self.reason) else self.reason,
            "expires": iso(self.expires),
            "source": self.source or None,
            "live": self.live,
        }
        if self.attrs:
            out["attrs"] = dict(self.attrs)
        if category == "mismatch":
            out["changes"] = [
                {"attribute": k, "live": old, "declared": new} for k, old, new in self.changes
            ]
        return out


@dataclass
class TargetAudit:
    """The audit of one target."""

    target: Target
    declared: bool  # False: only state still names this target
    live_readable: bool
    counts: dict[str, int | None]  # declared, live (None if unreadable), managed
    entries: dict[str, list[AuditEntry]] = field(default_factory=dict)  # category -> entries

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


def _from_change(c: Change, live: bool | None) -> AuditEntry:
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
    )
    by_action: dict[str, list[Change]] = {}
    for c in tp.changes:
        by_action.setdefault(c.action, []).append(c)

    def is_live(number: str) -> bool | None:
        return (number in live) if live is not None else None

    entries: dict[str, list[AuditEntry]] = {
        "drift": [_from_change(c, False) for c in by_action.get("readd", [])],
        "not_applied": [_from_change(c, is_live(c.number)) for c in by_action.get("add", [])],
        "expired_live": [_from_change(c, True) for c in by_action.get("expire", [])],
    }
    mismatch = []
    for c in by_action.get("update", []):
        after = dict(c.attrs)
        changes = tuple(
            (k, old, iso(c.expires) if k == "expires" else after.get(k))
            for k, old in c.before or ()
        )
        mismatch.append(
            AuditEntry(c.number, c.reason, c.expires, c.source, True, c.attrs, changes=changes)
        )
    entries["mismatch"] = mismatch
    entries["expiring"] = [
        AuditEntry(e.number, e.reason, e.expires, e.source, is_live(n), e.attrs)
        for n, e in sorted(desired.items())
        if e.expires is not None and now < e.expires <= until
    ]
    entries["stale_state"] = [
        AuditEntry(n, m.reason, m.expires, m.source, is_live(n), m.attrs)
        for n, m in sorted(managed.items())
        if n not in desired
    ]
    unmanaged = []
    if live is not None:
        for n, e in sorted(live.items()):
            if n in managed:
                continue
            d = desired.get(n)
            if d is None or (d.expires is not None and d.expires <= now):
                unmanaged.append(AuditEntry(n, live=True, attrs=e.attrs, opt_out=e.opt_out))
    entries["unmanaged"] = unmanaged
    counts: dict[str, int | None] = {
        "declared": len(desired),
        "live": len(live) if live is not None else None,
        "managed": len(managed),
    }
    return TargetAudit(target, declared_target, readable, counts, entries)


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
    from .runner import select_targets

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
    from .expiry import parse_duration_days

    try:
        return parse_duration_days(text)
    except ValueError as exc:
        raise BlocklistError(f"--expiring-within: {exc}") from None


async def run_audit(options: AuditOptions, progress: Progress | None = None) -> AuditReport:
    """Refresh the selected targets and read state; write nothing anywhere."""
    from .runner import open_run_state, refresh_targets

    window = parse_window(options.window)
    desired = load_desired(options.directory, str(options.directory))
    state = open_run_state(desired.config, options.directory, create=False)
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
    async with Connections(desired.config, options.directory) as conns:
        live = await refresh_targets(conns, targets, progress)
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


# -- rendering -------------------------------------------------------------------------------


def _day(value: dt.datetime | None) -> str:
    text = iso(value) or ""
    return text[:10] if text.endswith("T00:00:00Z") else text


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def summary_text(report: AuditReport) -> str:
    """``3 findings: 1 drift, 2 expiring soon; 7 unmanaged (informational); …``."""
    s = report.summary()
    counted = FINDING_CATEGORIES + (("unmanaged",) if report.strict else ())
    parts = [f"{s[c]} {LABELS[c]}" for c in counted if s[c]]
    n = report.findings
    text = _plural(n, "finding", "findings") + (": " + ", ".join(parts) if parts else "")
    if not report.strict:
        text += f"; {s['unmanaged']} unmanaged (informational)"
    if s["unreadable_targets"]:
        text += f"; {_plural(s['unreadable_targets'], 'target', 'targets')} not readable"
    return text + "."


def _clean(text: str) -> str:
    """One line of plain text: control characters (newlines, escapes) become spaces."""
    return "".join(c if c.isprintable() else " " for c in text)


def _fields(category: str, e: AuditEntry, mask: bool) -> list[str]:
    """The columns of one line: label, number, then reason, when, live, source (or, for
    an unmanaged entry, its attributes)."""
    number = mask_number(e.number) if mask else e.number
    if category == "unmanaged":
        attrs = " ".join(f"{k}={v}" for k, v in e.attrs)
        return [LABELS[category], number, (attrs + (" (opt-out)" if e.opt_out else "")).strip()]
    reason = e.reason or "-"
    if mask:
        reason = mask_text(reason)
    when = ""
    if category == "mismatch":
        when = ", ".join(
            f"{k}: live {old or 'none'}, declared {new or 'none'}" for k, old, new in e.changes
        )
    elif e.expires is not None:
        when = ("expired " if category == "expired_live" else "expires ") + _day(e.expires)
    live = ""
    if category in ("expiring", "stale_state", "not_applied") and e.live is not None:
        live = "live" if e.live else "not live"
    return [LABELS[category], number, reason, when, live, e.source]


def _shown_rows(
    t: TargetAudit, mask: bool, limit: int | None, categories: Iterable[str]
) -> tuple[dict[str, list[list[str]]], Callable[[list[str]], str]]:
    """The rows to show per category (at most ``limit`` each) and a formatter that lines
    their columns up across the whole target."""
    rows = {
        c: [[_clean(f) for f in _fields(c, e, mask)] for e in t.of(c)[:limit]] for c in categories
    }
    widths: dict[int, int] = {}
    for per_category in rows.values():
        for row in per_category:
            for i, f in enumerate(row):
                widths[i] = max(widths.get(i, 0), len(f))

    def line(row: list[str]) -> str:
        return "  ".join(f.ljust(widths[i]) for i, f in enumerate(row)).rstrip()

    return rows, line


def _target_heading(t: TargetAudit, strict: bool) -> str:
    n = t.findings(strict)
    text = f"{t.target.name}: {_plural(n, 'finding', 'findings')}"
    if not t.declared:
        text += " (no list declares this target; state still manages entries there)"
    elif not t.live_readable:
        text += f" ({NOT_READABLE})"
    return text


def _target_lines(t: TargetAudit, mask: bool, limit: int | None, verbose: bool) -> list[str]:
    listed = [c for c, _, _ in CATEGORIES if t.of(c) and (verbose or c != "unmanaged")]
    rows, line = _shown_rows(t, mask, limit, listed)
    out = []
    for category in listed:
        out += [line(row) for row in rows[category]]
        if len(t.of(category)) > len(rows[category]):
            out.append(f"…and {len(t.of(category)) - len(rows[category])} more {LABELS[category]}")
    unmanaged = t.of("unmanaged")
    if unmanaged and not verbose:
        opt = sum(1 for e in unmanaged if e.opt_out)
        extra = f", {opt} of them opt-outs" if opt else ""
        out.append(
            f"{_plural(len(unmanaged), 'unmanaged entry', 'unmanaged entries')} "
            f"left alone{extra} (-v lists them)"
        )
    return out


def render_text(
    report: AuditReport, *, mask: bool, verbose: bool = False, max_lines: int | None = 50
) -> str:
    """One block per target, then the total. Unmanaged entries are a count unless verbose."""
    out = [
        f"Audit at {iso(report.now)} (expiring within {report.window_text}: "
        f"until {iso(report.until)})",
        "",
    ]
    for t in report.targets:
        out.append(f"# {_target_heading(t, report.strict)}")
        out += ["  " + line for line in _target_lines(t, mask, max_lines, verbose)]
        out.append("")
    out.append(("Clean: " if report.clean else "Findings: ") + summary_text(report))
    return "\n".join(out)


def render_markdown(report: AuditReport, *, mask: bool) -> str:
    """An issue body or step summary: summary table, then ``<details>`` per target with
    findings. Always shorter than ``MARKDOWN_LIMIT``: fewer lines per category until it fits."""
    limit: int | None = 200
    while True:
        text = _markdown(report, mask, limit)
        if len(text) < MARKDOWN_LIMIT or limit == 0:
            return text[: MARKDOWN_LIMIT - 1]
        limit = limit // 2 if limit and limit > 1 else 0


def _markdown(report: AuditReport, mask: bool, limit: int | None) -> str:
    heads = [LABELS[c] for c, _, _ in CATEGORIES]
    parts = [
        "## blocklist audit\n\n",
        f"**{'Clean' if report.clean else 'Findings'}: {summary_text(report)}**\n\n",
        f"`now` {iso(report.now)} · expiring within {report.window_text} "
        f"(until {iso(report.until)})"
        + (" · strict: unmanaged entries count as findings" if report.strict else "")
        + "\n\n",
        "| target | " + " | ".join(heads) + " | notes |\n",
        "| --- |" + " ---: |" * len(heads) + " --- |\n",
    ]
    for t in report.targets:
        s = t.summary()
        notes = []
        if not t.declared:
            notes.append("no list declares it")
        elif not t.live_readable:
            notes.append("live not readable")
        parts.append(
            f"| `{t.target.name}` | "
            + " | ".join(str(s[c]) for c, _, _ in CATEGORIES)
            + f" | {'; '.join(notes)} |\n"
        )
    parts.append("\n")
    for t in report.targets:
        listed = [c for c, _, _ in CATEGORIES if t.of(c)]
        rows, line = _shown_rows(t, mask, limit, listed)
        lines = []
        for category, _, explanation in CATEGORIES:
            if category not in rows:
                continue
            items = t.of(category)
            lines.append(f"# {LABELS[category]} ({len(items)}): {explanation}")
            lines += [line(row) for row in rows[category]]
            if len(items) > len(rows[category]):
                lines.append(f"…and {len(items) - len(rows[category])} more")
        if not lines:
            continue
        heading = _target_heading(t, report.strict).replace("<", "&lt;")
        body = "\n".join(lines).replace("```", "'''")
        parts.append(
            f"<details><summary><code>{heading}</code></summary>\n\n```\n{body}\n```\n\n"
            "</details>\n\n"
        )
    if any(not t.live_readable and t.declared for t in report.targets):
        parts.append(
            "> Targets whose live state is not readable are checked against the lists and "
            "state only.\n"
        )
    return "".join(parts).rstrip("\n")


def report_to_dict(report: AuditReport, *, mask: bool) -> dict[str, object]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": AUDIT_KIND,
        "tool_version": report.tool_version,
        "now": iso(report.now),
        "expiring_within": report.window_text,
        "expiring_before": iso(report.until),
        "strict": report.strict,
        "clean": report.clean,
        "findings": report.findings,
        "summary": report.summary(),
        "targets": [
            {
                "name": t.target.name,
                "provider": t.target.provider,
                "type": t.target.type,
                "scope": t.target.scope_dict(),
                "declared": t.declared,
                "live_readable": t.live_readable,
                "counts": t.counts,
                "findings": t.findings(report.strict),
                "summary": t.summary(),
                **{c: [e.to_json(c, mask) for e in t.of(c)] for c, _, _ in CATEGORIES},
            }
            for t in report.targets
        ],
    }


def render_json(report: AuditReport, *, mask: bool) -> str:
    return json.dumps(report_to_dict(report, mask=mask), indent=2)


def render(report: AuditReport, fmt: str, *, mask: bool, verbose: bool = False) -> str:
    if fmt == "json":
        return render_json(report, mask=mask)
    if fmt == "markdown":
        return render_markdown(report, mask=mask)
    return render_text(report, mask=mask, verbose=verbose)
