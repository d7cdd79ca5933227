"""Views of ``blocklist expiring``: a text table, markdown for the expiry pull
request's description and the job summary, and versioned JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from ..expiry import iso
from ..operations.expiry import ExpiringEntry, ExpiryReport
from .format import MARKDOWN_LIMIT, clean, day, mask_number, plural

FORMAT_VERSION = 1


def render_expiry(report: ExpiryReport, fmt: str, *, mask: bool = False) -> str:
    if fmt == "json":
        return render_json(report, mask=mask)
    if fmt == "markdown":
        return render_markdown(report, mask=mask)
    return render_text(report, mask=mask)


def _number(entry: ExpiringEntry, mask: bool) -> str:
    return mask_number(entry.number) if mask else entry.number


def _days_left(report: ExpiryReport, entry: ExpiringEntry) -> str:
    """Calendar days (UTC) until the entry expires: ``today``, ``in 5 days``."""
    days = (entry.expires.astimezone(dt.UTC).date() - report.now.astimezone(dt.UTC).date()).days
    if days <= 0:
        return "today"
    return f"in {days} day{'s' if days != 1 else ''}"


def render_text(report: ExpiryReport, *, mask: bool = False) -> str:
    lines = []
    for title, entries in (
        ("Expired (prune with `blocklist fmt --prune-expired`)", report.expired),
        (f"Expiring within {report.window}", report.expiring),
    ):
        if not entries:
            continue
        lines.append(f"{title}:")
        for e in entries:
            ticket = f"  {clean(e.ticket)}" if e.ticket else ""
            lines.append(
                f"  {_number(e, mask):<16} {day(e.expires):<20} {e.list_name}  {e.source}{ticket}"
            )
    lines.append(
        f"{plural(len(report.expired), 'entry', 'entries')} expired, "
        f"{plural(len(report.expiring), 'entry', 'entries')} expiring within {report.window}."
    )
    return "\n".join(lines)


def _cell(text: str | None) -> str:
    return clean(text or "").replace("|", "\\|") or "—"


def _table(report: ExpiryReport, entries: Iterable[ExpiringEntry], mask: bool) -> list[str]:
    rows = [
        "| number | list | expires | | ticket | reason | source |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        rows.append(
            f"| `{_number(e, mask)}` | {_cell(e.list_name)} | {day(e.expires)} | "
            f"{_days_left(report, e) if e.expires > report.now else 'expired'} | "
            f"{_cell(e.ticket)} | {_cell(e.reason)} | `{_cell(e.source)}` |"
        )
    return rows


def render_markdown(report: ExpiryReport, *, mask: bool = False) -> str:
    """Under the markdown budget whatever the number of entries: rows past it are
    counted, not shown."""
    out = ["## blocklist expiry", ""]
    out.append(
        f"{plural(len(report.expired), 'entry has', 'entries have')} expired and "
        f"{plural(len(report.expiring), 'entry expires', 'entries expire')} within "
        f"{report.window} (as of {iso(report.now)})."
    )
    for title, entries, about in (
        (
            "Pruned by this change (expired)",
            report.expired,
            "Their expiry has passed: the providers dropped them already (or the next apply "
            "does); this removes them from the lists.",
        ),
        (
            f"Expiring within {report.window}",
            report.expiring,
            "To renew one, give it a later `expires` (or `ttl`) in its list, on main, with "
            "its ticket: `blocklist block NUMBER --list LIST --expires DATE --ticket T`.",
        ),
    ):
        if not entries:
            continue
        out += ["", f"### {title}", "", about, ""]
        budget = MARKDOWN_LIMIT // 2 - sum(len(line) + 1 for line in out)
        rows = _table(report, entries, mask)
        shown = 0
        for row in rows:
            if len(row) + 1 > budget:
                break
            out.append(row)
            budget -= len(row) + 1
            shown += 1
        left = len(rows) - shown
        if left > 0:
            out.append("")
            out.append(f"…and {left:,} more (run `blocklist expiring` to see them all).")
    return "\n".join(out) + "\n"


def render_json(report: ExpiryReport, *, mask: bool = False) -> str:
    def item(e: ExpiringEntry) -> dict[str, object]:
        return {
            "number": _number(e, mask),
            "list": e.list_name,
            "source": e.source,
            "written": None if mask else e.written,
            "expires": iso(e.expires),
            "ticket": e.ticket,
            "reason": e.reason,
        }

    return json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "now": iso(report.now),
            "until": iso(report.until),
            "window": report.window,
            "expired": [item(e) for e in report.expired],
            "expiring": [item(e) for e in report.expiring],
        },
        indent=2,
    )
