"""Audit views: text for terminals, markdown for issue bodies and step summaries,
versioned JSON for machines (its shape is in ``operations.audit``'s docstring)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Iterator

from ..expiry import iso
from ..operations.audit import (
    CATEGORIES,
    FINDING_CATEGORIES,
    LABELS,
    NOT_READABLE,
    AuditEntry,
    AuditReport,
    TargetAudit,
)
from .format import (
    MARKDOWN_LIMIT,
    clean,
    day,
    day_of,
    group_thousands,
    mask_number,
    mask_text,
    plural,
    share_lines,
)

FORMAT_VERSION = 1
AUDIT_KIND = "blocklist-audit"


def summary_text(report: AuditReport) -> str:
    """``3 findings: 1 drift, 2 expiring soon; 7 unmanaged (informational); …``."""
    s = report.summary()
    counted = FINDING_CATEGORIES + (("unmanaged",) if report.strict else ())
    parts = [f"{group_thousands(s[c])} {LABELS[c]}" for c in counted if s[c]]
    n = report.findings
    text = plural(n, "finding", "findings") + (": " + ", ".join(parts) if parts else "")
    if not report.strict:
        text += f"; {group_thousands(s['unmanaged'])} unmanaged (informational)"
    if s["unreadable_targets"]:
        text += f"; {plural(s['unreadable_targets'], 'target', 'targets')} not readable"
    return text + "."


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
        when = ", ".join(_mismatch(k, old, new) for k, old, new in e.changes)
    elif e.expires is not None:
        when = ("expired " if category == "expired_live" else "expires ") + day(e.expires)
    live = ""
    if category in ("expiring", "stale_state", "not_applied") and e.live is not None:
        live = "live" if e.live else "not live"
    return [LABELS[category], number, reason, when, live, e.source]


def _mismatch(key: str, live: str | None, declared: str | None) -> str:
    """``expires: live 2027-03-01, declared 2027-06-01`` (dates as dates, as plans say them)."""
    if key == "expires":
        return f"expires: live {day_of(live) or 'never'}, declared {day_of(declared) or 'never'}"
    return f"{key}: live {live or 'none'}, declared {declared or 'none'}"


def _shown_rows(
    t: TargetAudit, mask: bool, limit: int | None, categories: Iterable[str]
) -> tuple[dict[str, list[list[str]]], Callable[[list[str]], str]]:
    """The rows to show per category (at most ``limit`` each) and a formatter that lines
    their columns up across the whole target."""
    rows = {
        c: [[clean(f) for f in _fields(c, e, mask)] for e in t.of(c)[:limit]] for c in categories
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
    text = f"{t.target.name}: {plural(n, 'finding', 'findings')}"
    if not t.declared:
        text += " (no list declares this target; state still manages entries there)"
    elif not t.live_readable:
        text += f" ({NOT_READABLE})"
    return text


def _target_lines(t: TargetAudit, mask: bool, limit: int | None, verbose: bool) -> list[str]:
    listed = [c for c, _, _ in CATEGORIES if t.of(c) and (verbose or c != "unmanaged")]
    rows, line = _shown_rows(t, mask, limit, listed)
    out = [f"! warning: {clean(mask_text(w) if mask else w)}" for w in t.warnings]
    for category in listed:
        out += [line(row) for row in rows[category]]
        if len(t.of(category)) > len(rows[category]):
            extra = len(t.of(category)) - len(rows[category])
            out.append(f"…and {group_thousands(extra)} more {LABELS[category]}")
    unmanaged = t.of("unmanaged")
    if unmanaged and not verbose:
        opt = sum(1 for e in unmanaged if e.opt_out)
        extra = f", {group_thousands(opt)} of them opt-outs" if opt else ""
        out.append(
            f"{plural(len(unmanaged), 'unmanaged entry', 'unmanaged entries')} "
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
    """An issue body or step summary: summary table, then one ``<details>`` per target
    with findings. Always shorter than ``MARKDOWN_LIMIT``: the targets share the lines
    that fit, in turn, and each block is closed whole (never cut open)."""
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
        if t.warnings:
            notes.append("⚠️ see below")
        parts.append(
            f"| `{_md_code(t.target.name)}` | "
            + " | ".join(group_thousands(s[c]) for c, _, _ in CATEGORIES)
            + f" | {'; '.join(notes)} |\n"
        )
    parts.append("\n")
    tail = []
    if any(not t.live_readable and t.declared for t in report.targets):
        tail.append(
            "> Targets whose live state is not readable are checked against the lists and "
            "state only.\n"
        )
    sections = [_Section(t, mask, report.strict) for t in report.targets]
    sections = [s for s in sections if s.rows]
    budget = MARKDOWN_LIMIT - 1 - sum(map(len, parts)) - sum(map(len, tail))
    kept = []
    for section in sections:  # frames first: a target that cannot be framed is counted
        if section.frame_cost > budget - 200:
            break
        budget -= section.frame_cost
        kept.append(section)
    if len(kept) < len(sections):
        more = (
            f"\n…and {plural(len(sections) - len(kept), 'more target', 'more targets')} "
            "with findings (see `blocklist audit --format json`)\n"
        )
        tail.insert(0, more)
        budget -= len(more)
    share_lines(kept, budget)  # type: ignore[arg-type]
    for section in kept:
        parts.extend(section.render())
    parts.extend(tail)
    return "".join(parts).rstrip("\n")


def _md_code(text: str) -> str:
    """Text safe inside a code span in a table cell."""
    return clean(text).replace("`", "'").replace("|", "\\|")


_FENCE = "`" * 3


class _Section:
    """One target's ``<details>`` block: a fixed frame plus as many lines as fit."""

    def __init__(self, t: TargetAudit, mask: bool, strict: bool) -> None:
        listed = [c for c, _, _ in CATEGORIES if t.of(c)]
        rows, line = _shown_rows(t, mask, None, listed)
        self.rows = [(category, [line(row) for row in rows[category]]) for category in listed]
        self.lines: list[str] = []
        heading = html.escape(_target_heading(t, strict), quote=False)
        warnings = "".join(
            f"> [!NOTE]\n> {html.escape(clean(mask_text(w) if mask else w), quote=False)}\n\n"
            for w in t.warnings
        )
        self.pre = f"<details><summary><code>{heading}</code></summary>\n\n{warnings}{_FENCE}\n"
        self.post = f"{_FENCE}\n\n</details>\n\n"
        self.frame_cost = len(self.pre) + len(self.post) + 60

    def candidates(self) -> Iterator[str]:
        for category, lines in self.rows:
            explanation = next(e for c, _, e in CATEGORIES if c == category)
            yield f"# {LABELS[category]} ({group_thousands(len(lines))}): {explanation}\n"
            for text in lines:
                yield text.replace(_FENCE, "'''") + "\n"

    def render(self) -> list[str]:
        total = sum(1 + len(lines) for _, lines in self.rows)
        shown = len(self.lines)
        more = f"…and {group_thousands(total - shown)} more lines\n" if shown < total else ""
        return [self.pre, *self.lines, more, self.post]


def entry_json(e: AuditEntry, category: str, mask: bool) -> dict[str, object]:
    number = mask_number(e.number) if mask else e.number
    if category == "unmanaged":
        return {"number": number, "attrs": dict(e.attrs), "opt_out": e.opt_out}
    out: dict[str, object] = {
        "number": number,
        "reason": mask_text(e.reason) if (mask and e.reason) else e.reason,
        "expires": iso(e.expires),
        "source": e.source or None,
        "live": e.live,
    }
    if e.attrs:
        out["attrs"] = dict(e.attrs)
    if category == "mismatch":
        out["changes"] = [
            {"attribute": k, "live": old, "declared": new} for k, old, new in e.changes
        ]
    return out


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
                "warnings": [mask_text(w) if mask else w for w in t.warnings],
                **{c: [entry_json(e, c, mask) for e in t.of(c)] for c, _, _ in CATEGORIES},
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
