"""Views of the list-editing commands: the diff and summary of ``block`` and
``unblock``, and of ``fmt`` (files changed, entries pruned, numbers left alone)."""

from __future__ import annotations

import click

from ..operations.block import EditResult
from ..operations.fmt import FmtResult
from .format import clean, day, mask_number, mask_text, plural


def render_diff(diff: str, *, color: bool, mask: bool = False) -> str:
    """A unified diff, coloured as ``git diff`` colours it on a terminal."""
    out = []
    for line in diff.splitlines():
        text = mask_text(line) if mask else line
        if not color:
            out.append(text)
        elif line.startswith(("+++", "---")):
            out.append(click.style(text, bold=True))
        elif line.startswith("@@"):
            out.append(click.style(text, fg="cyan"))
        elif line.startswith("+"):
            out.append(click.style(text, fg="green"))
        elif line.startswith("-"):
            out.append(click.style(text, fg="red"))
        else:
            out.append(text)
    return "\n".join(out)


def render_edit(result: EditResult, *, color: bool, mask: bool = False) -> str:
    """The diff, then one line per number that was not simply added or removed, then
    what was done."""
    shown = mask_number if mask else (lambda n: n)
    lines = []
    if result.diff:
        lines.append(render_diff(result.diff, color=color, mask=mask))
    for number, changes in result.updated:
        lines.append(f"Updated {shown(number)}: {'; '.join(clean(c) for c in changes)}")
    for note in result.notes:
        lines.append(mask_text(note) if mask else note)
    verb = "Would change" if not result.written and result.diff else "Changed"
    parts = []
    if result.added:
        parts.append(f"{plural(len(result.added), 'number', 'numbers')} added")
    if result.updated:
        parts.append(f"{len(result.updated):,} updated")
    if result.removed:
        parts.append(f"{plural(len(result.removed), 'number', 'numbers')} removed")
    if result.unchanged:
        parts.append(f"{len(result.unchanged):,} unchanged")
    if result.diff:
        lines.append(f"{verb} {result.file} (list {result.list_name}): {', '.join(parts)}.")
    else:
        lines.append(f"No change to {result.file} (list {result.list_name}).")
    return "\n".join(lines)


def render_fmt(result: FmtResult, *, color: bool, show_diff: bool) -> str:
    """What fmt changed (or, with --check, would change) and what it pruned."""
    lines = []
    for f in result.files:
        for line, raw in f.unreadable:
            lines.append(f"{f.shown}:{line}: left as written: not a phone number {raw!r}")
        if not f.changed:
            continue
        if show_diff:
            lines.append(render_diff(f.diff, color=color))
        for p in f.pruned:
            ticket = f" ({p.ticket})" if p.ticket else ""
            lines.append(f"{f.shown}:{p.line}: pruned {p.number}{ticket}, expired {day(p.expires)}")
        for row in f.pruned_rows:
            ticket = dict(row.metadata).get("ticket")
            extra = f" ({ticket})" if ticket else ""
            lines.append(
                f"{f.shown}:{row.line}: pruned {row.number}{extra}, expired {day(row.expires)}"
            )
    changed = result.changed
    if result.check:
        if changed:
            lines.append(f"{plural(len(changed), 'file', 'files')} would be reformatted.")
        else:
            lines.append(f"{plural(len(result.files), 'file', 'files')} already formatted.")
    elif changed:
        names = ", ".join(f.shown for f in changed)
        lines.append(f"Formatted {plural(len(changed), 'file', 'files')}: {names}.")
    else:
        lines.append(f"{plural(len(result.files), 'file', 'files')} already formatted.")
    return "\n".join(lines)
