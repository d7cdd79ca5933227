"""``blocklist why`` views: the evidence on one number as text for a person (a
support ticket) and as versioned JSON for tools.

Only reads a ``WhyReport``; says plainly what cannot be known (a provider that
cannot list, a provider that does not mark users' own opt-outs, which apply
sent the number) instead of guessing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable

from ..desired import Declaration
from ..domain import ManagedEntry
from ..expiry import iso
from ..operations.why import AUDIT_LIMIT, ApplyRecord, TargetWhy, WhyReport
from .format import clean, day, group_thousands, mask_number, mask_text, plural
from .plan import update_text

FORMAT_VERSION = 1
WHY_KIND = "blocklist-why"
_LABEL = 11  # width of the labels of a target's block


def render_why(report: WhyReport, *, fmt: str = "text", mask: bool = False) -> str:
    """``fmt`` "json" or "text"."""
    if fmt == "json":
        return json.dumps(why_to_dict(report, mask=mask), indent=2, ensure_ascii=False)
    return render_text(report, mask=mask)


# -- text ---------------------------------------------------------------------------------


def render_text(report: WhyReport, *, mask: bool = False) -> str:
    """The verdict first (where it is blocked, where not, where it cannot be known),
    then the list entries, then one block per target, then what state and the audit
    log can and cannot say."""
    number = mask_number(report.number) if mask else report.number
    written = report.written.strip()
    head = number if mask or written == report.number else f"{number} (written {written!r})"
    out = [head, _verdict(report), ""]
    if report.protected:
        out.append(f"Protected: yes ({clean(report.protected)}): no list may block it.")
    else:
        out.append("Protected: no.")
    out.append("")
    if report.declarations:
        n = len(report.declarations)
        out.append(f"Declared by {plural(n, 'list entry', 'list entries')}:")
        for d in report.declarations:
            out.extend(_declaration_lines(d, report, mask))
    else:
        out.append("Declared by no list.")
    for t in report.targets:
        out.append("")
        out.extend(_target_lines(t, report, mask))
    out.append("")
    if report.lineage is None:
        out.append("State: none yet (nothing was ever applied in this configuration).")
    else:
        out.append(
            f"State: lineage {report.lineage}, serial {report.serial}; audit log: "
            f"{plural(report.audit_records, 'apply', 'applies')}. Note: {AUDIT_LIMIT}."
        )
    return "\n".join(out)


def _hider(mask: bool) -> Callable[[str], str]:
    return mask_text if mask else (lambda text: text)


def _verdict(report: WhyReport) -> str:
    """One line a support agent can read out: where it is blocked, where not, and
    where it cannot be known."""
    blocked = [t.name for t in report.targets if t.live.status == "blocked"]
    free = [t.name for t in report.targets if t.live.status == "not blocked"]
    parts = []
    if blocked:
        parts.append(f"blocked on {_names(blocked)}")
    if free:
        parts.append(f"not blocked on {_names(free)}")
    unknown = []
    for t in report.targets:
        if t.live.status in ("not readable", "not read"):
            state = "managed in state" if t.managed else "not in state"
            unknown.append(f"{t.name}: {state}")
        elif t.live.status == "error":
            unknown.append(f"{t.name}: could not be read")
    if unknown:
        parts.append(f"unknown on {_names(unknown)}")
    if not parts:
        return "No target selected."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _names(names: list[str]) -> str:
    return f"{plural(len(names), 'target', 'targets')} ({', '.join(clean(n) for n in names)})"


def _declaration_lines(d: Declaration, report: WhyReport, mask: bool) -> list[str]:
    hide = _hider(mask)
    reason = clean(hide(d.reason)) if d.reason else "-"
    out = [f"  {clean(d.list_name)}  {clean(d.source)}  {reason}  {_expiry(d.expires, report)}"]
    details = [] if mask else [f"written {d.written!r}"]
    details += [f"{clean(k)} {clean(hide(_value(v)))}" for k, v in d.metadata]
    if details:
        out.append("    " + "; ".join(details))
    targets = [f"{n} ({_attrs(a)})" if a else n for n, a in sorted(d.targets)]
    out.append("    → " + ", ".join(clean(t) for t in targets))
    return out


def _value(value: object) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _attrs(attrs: Iterable[tuple[str, str]]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs)


def _expiry(expires: dt.datetime | None, report: WhyReport) -> str:
    if expires is None:
        return "expires never"
    return f"{'expired' if expires <= report.now else 'expires'} {day(expires)}"


def _target_lines(t: TargetWhy, report: WhyReport, mask: bool) -> list[str]:
    hide = _hider(mask)

    def row(label: str, text: str) -> str:
        return f"  {label.ljust(_LABEL)}{clean(text)}"

    out = [f"# {clean(t.name)}"]
    if t.declared is None:
        out.append(row("declared", "no"))
    else:
        d = t.declared
        attrs = f", {_attrs(d.attrs)}" if d.attrs else ""
        reason = hide(d.reason) if d.reason else "-"
        out.append(row("declared", f"{reason}, {_expiry(d.expires, report)}{attrs} ({d.source})"))
    out.append(row("live", _live_text(t)))
    out.append(row("opt-out", _opt_out_text(t)))
    out.append(row("state", _state_text(t.managed, report, mask)))
    out.append(row("applies", _applies_text(t.applies)))
    if t.failures:
        for f in t.failures:
            who = f" by {f.actor}" if f.actor else ""
            out.append(row("failure", f"{f.time or '?'}{who}: {f.action} failed: {hide(f.reason)}"))
    else:
        out.append(row("failures", "none recorded for this number"))
    out.append(row("next plan", _plan_text(t)))
    return out


def _live_text(t: TargetWhy) -> str:
    live = t.live
    if live.status == "not readable":
        return "live state not readable (the provider cannot list): state below is the only record"
    if live.status == "not read":
        return "not read: no list declares this target any more (state still manages it)"
    if live.status == "error":
        return f"could not be read: {live.error}"
    how = "asked by number" if live.read == "by number" else "read from the whole list"
    text = f"{live.status} ({how})"
    entry = live.entry
    if entry is not None:
        extra = []
        if entry.attrs:
            extra.append(_attrs(entry.attrs))
        if entry.provider_ids:
            extra.append(_ids_text(entry.provider_ids))
        if entry.raw and entry.raw != entry.number:
            extra.append(f"stored as {entry.raw!r}")
        if extra:
            text += "; " + ", ".join(extra)
    return text


def _ids_text(ids: tuple[str, ...]) -> str:
    return f"provider id{'s' if len(ids) > 1 else ''} {', '.join(ids)}"


def _opt_out_text(t: TargetWhy) -> str:
    if t.opt_out is True:
        return "yes: the user's own opt-out (never managed, never removed by this tool)"
    if t.opt_out is False:
        return "no"
    if t.live.entry is not None and t.opt_outs_unmarked:
        return f"cannot tell: {t.type} does not mark users' own opt-outs"
    return "-"


def _state_text(m: ManagedEntry | None, report: WhyReport, mask: bool) -> str:
    if m is None:
        return "not managed"
    hide = _hider(mask)
    reason = hide(m.reason) if m.reason else "-"
    expiry = f"expires {day(m.expires)}" if m.expires else "no expiry"
    text = f"managed: {reason}, {expiry}, applied from {m.source or 'no recorded source'}"
    if m.attrs:
        text += f", {_attrs(m.attrs)}"
    if m.provider_ids:
        text += f", {_ids_text(m.provider_ids)}"
    if m.applied is not None:
        a = m.applied
        who = f" by {a.by}" if a.by else ""
        at = f" at {a.commit[:12]}" if a.commit else ""
        first = iso(a.first)
        text += f"; first recorded {first}, last {iso(a.last)}{who}{at}"
    if m.pending:
        text += f"; PENDING remove (last failed: {hide(m.pending)})"
    return text


def _applies_text(applies: list[ApplyRecord]) -> str:
    if not applies:
        return "none recorded for this target"

    def one(a: ApplyRecord) -> str:
        who = f" by {a.actor}" if a.actor else ""
        commit = f" at {a.commit[:12]}" if a.commit else ""
        done = ", ".join(f"{group_thousands(n)} {k}" for k, n in a.done.items()) or "nothing"
        return f"{a.time or '?'}{who}{commit} ({done})"

    if len(applies) == 1:
        return f"1 apply wrote to this target: {one(applies[0])}"
    return (
        f"{group_thousands(len(applies))} applies wrote to this target: first {one(applies[0])}; "
        f"last {one(applies[-1])}"
    )


def _plan_text(t: TargetWhy) -> str:
    if t.plan is None:
        return "unknown (live state not read)"
    if t.plan == "unmanaged" and t.opt_out:
        return "leave it: the user's own opt-out"
    if t.plan == "update" and t.change is not None:
        return f"update it: {update_text(t.change)}"
    words = {
        "add": "add it",
        "readd": "re-add it (removed by hand: drift)",
        "update": "update it",
        "expire": "remove it: its expiry has passed",
        "remove": "remove it: no list declares it any more",
        "adopt": "adopt it (live, not yet managed; no API call)",
        "optout": "leave it: the user's own opt-out",
        "unmanaged": "leave it: live but neither declared nor managed (unmanaged)",
        "forget": "forget it from state (no API call)",
        "no change": "no change",
    }
    return words.get(t.plan, t.plan)


# -- JSON ---------------------------------------------------------------------------------


def why_to_dict(report: WhyReport, *, mask: bool = False) -> dict[str, object]:
    """The ``blocklist why --format json`` document."""
    num = mask_number if mask else (lambda n: n)
    hide = _hider(mask)
    return {
        "format_version": FORMAT_VERSION,
        "kind": WHY_KIND,
        "number": num(report.number),
        "written": None if mask else report.written,
        "now": iso(report.now),
        "configuration": report.configuration,
        "masked": mask,
        "protected": {"source": report.protected} if report.protected else None,
        "blocked_on": report.blocked_on,
        "declarations": [
            {
                "list": d.list_name,
                "source": d.source,
                "written": None if mask else d.written,
                "reason": hide(d.reason) if d.reason else d.reason,
                "expires": iso(d.expires),
                "expired": d.expires is not None and d.expires <= report.now,
                "metadata": dict(d.metadata),
                "targets": [{"name": n, "attrs": dict(a)} for n, a in sorted(d.targets)],
            }
            for d in report.declarations
        ],
        "targets": [_target_dict(t, mask) for t in report.targets],
        "state": None
        if report.lineage is None
        else {"lineage": report.lineage, "serial": report.serial},
        "audit": {"records": report.audit_records, "limit": AUDIT_LIMIT},
    }


def _target_dict(t: TargetWhy, mask: bool) -> dict[str, object]:
    hide = _hider(mask)
    d = t.declared
    m = t.managed
    e = t.live.entry
    return {
        "name": t.name,
        "provider": t.provider,
        "type": t.type,
        "declared": None
        if d is None
        else {
            "reason": hide(d.reason) if d.reason else d.reason,
            "expires": iso(d.expires),
            "expired": t.expired,
            "source": d.source,
            "attrs": dict(d.attrs),
        },
        "live": {
            "status": t.live.status,
            "read": t.live.read,
            "attrs": dict(e.attrs) if e else None,
            "provider_ids": list(e.provider_ids) if e else None,
            "stored_as": hide(e.raw) if e and e.raw else None,
            "error": t.live.error,
        },
        "opt_out": t.opt_out,
        "opt_outs_unmarked": t.opt_outs_unmarked,
        "state": None
        if m is None
        else {
            "reason": hide(m.reason) if m.reason else m.reason,
            "expires": iso(m.expires),
            "attrs": dict(m.attrs),
            "provider_ids": list(m.provider_ids),
            "source": m.source or None,
            "pending": hide(m.pending) if m.pending else None,
            "applied": None
            if m.applied is None
            else {
                "first": iso(m.applied.first),
                "last": iso(m.applied.last),
                "by": m.applied.by,
                "commit": m.applied.commit,
            },
        },
        "next_plan": t.plan,
        "next_plan_changes": None
        if t.change is None or t.change.before is None
        else [{"attribute": k, "from": old, "to": t.change.after(k)} for k, old in t.change.before],
        "applies": [
            {
                "time": a.time,
                "actor": a.actor,
                "host": a.host,
                "commit": a.commit,
                "done": a.done,
                "failed": a.failed,
            }
            for a in t.applies
        ],
        "failures": [
            {
                "time": f.time,
                "actor": f.actor,
                "commit": f.commit,
                "action": f.action,
                "reason": hide(f.reason),
            }
            for f in t.failures
        ],
    }
