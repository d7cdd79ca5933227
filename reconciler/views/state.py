"""State views: ``state list`` (text with aligned columns, or JSON) and ``state show``."""

from __future__ import annotations

import json

from ..domain import ManagedEntry
from ..expiry import iso
from ..operations.state import StateListing
from .format import clean, day, group_thousands, mask_number


def render_listing(listing: StateListing, *, fmt: str, mask: bool) -> str:
    show = mask_number if mask else (lambda n: n)
    if fmt == "json":
        out = {
            "lineage": listing.lineage,
            "serial": listing.serial,
            "targets": {
                name: [_entry_json(e, show(e.number)) for e in entries.values()]
                for name, entries in listing.targets.items()
            },
        }
        return json.dumps(out, indent=2)
    lines = [f"lineage {listing.lineage}, serial {listing.serial}"]
    for name, entries in listing.targets.items():
        lines.append(f"# {name}: {group_thousands(len(entries))} managed")
        rows = [
            [
                show(e.number),
                clean(e.reason or "-"),
                f"expires {day(e.expires)}" if e.expires else "expires never",
                e.source or "-",
                f"PENDING remove: {clean(e.pending)}" if e.pending else "",
            ]
            for e in entries.values()
        ]
        widths = [max((len(r[i]) for r in rows), default=0) for i in range(5)]
        for row in rows:
            lines.append("  " + "  ".join(f.ljust(widths[i]) for i, f in enumerate(row)).rstrip())
    return "\n".join(lines)


def _entry_json(e: ManagedEntry, number: str) -> dict[str, object]:
    return {
        "number": number,
        "expires": iso(e.expires),
        "reason": e.reason,
        "attrs": dict(e.attrs),
        "provider_ids": list(e.provider_ids),
        "source": e.source or None,
        "pending": e.pending,
    }


def render_found(found: list[tuple[str, ManagedEntry]]) -> str:
    lines = []
    for target, e in found:
        lines.append(f"{target}: {e.number}")
        lines.append(f"  reason:      {e.reason or '-'}")
        lines.append(f"  expires:     {day(e.expires) or 'never'}")
        for k, v in e.attrs:
            lines.append(f"  {k + ':':12} {v}")
        lines.append(f"  provider id: {', '.join(e.provider_ids) or '-'}")
        lines.append(f"  source:      {e.source or '-'}")
        if e.pending:
            lines.append(f"  pending:     remove failed: {clean(e.pending)}")
    return "\n".join(lines)
