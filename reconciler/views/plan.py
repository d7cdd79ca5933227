"""Plan renderers: text for terminals, markdown for PR comments, JSON for machines.

Each renderer only reads a ``Plan`` and returns a string (without a trailing
newline); it never computes anything a plan does not already say, never
prints, and never decides on colour by itself (the caller passes ``color``).
``--mask-numbers`` is the ``mask`` flag of every renderer. The JSON document
built here is also the plan file's content (``reconciler.planfile``), so a
saved plan and ``plan --format json`` are one format.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

import click

from ..plan import ACTIONS, Change, Plan, TargetPlan
from .format import (
    MARKDOWN_LIMIT,
    cell_width,
    clean,
    day,
    group_thousands,
    instant,
    mask_number,
    mask_text,
    plural,
    share_lines,
)

SYMBOLS = {
    "add": "+",
    "readd": "+",
    "update": "~",
    "expire": "⌛",
    "remove": "-",
    "adopt": "=",
    "optout": "!",
    "unmanaged": "?",
}
LABELS = {
    "add": "add",
    "readd": "re-add (drift)",
    "update": "update",
    "expire": "expire",
    "remove": "remove",
    "adopt": "adopt",
    "optout": "opt-out",
    "unmanaged": "unmanaged",
}
#: click.style arguments per action (text output with colour)
STYLES: dict[str, dict[str, object]] = {
    "add": {"fg": "green"},
    "readd": {"fg": "green"},
    "update": {"fg": "yellow"},
    "expire": {"fg": "yellow"},
    "remove": {"fg": "red"},
    "adopt": {"fg": "cyan"},
    "optout": {"fg": "magenta"},
    "unmanaged": {"dim": True},
}
#: first column of a line in a ```diff block (GitHub colours +, - and !)
DIFF_MARKS = {
    "add": "+",
    "readd": "+",
    "update": "!",
    "expire": "-",
    "remove": "-",
    "adopt": " ",
    "optout": " ",
    "unmanaged": " ",
}
_SUMMARY_WORDS = (
    ("add", "to add"),
    ("readd", "to re-add"),
    ("update", "to update"),
    ("expire", "to expire"),
    ("remove", "to remove"),
    ("adopt", "to adopt"),
)
_TABLE_HEADS = ("add", "re-add", "update", "expire", "remove", "adopt", "opt-out", "unmanaged")
NO_CHANGES = "No changes. Live state matches the desired state."
NOT_READABLE = "(live state not readable, using state)"
MORE_HINT = "(see the plan artifact / `blocklist show`)"

_REASON_WIDTH = 30  # longer texts overflow their column instead of widening it
_REASON_MAX = 80  # longer reasons are cut (with …) on screen; JSON keeps them whole
_WHEN_WIDTH = 24


# -- shared helpers --------------------------------------------------------------------------


def summary_text(summary: dict[str, int], forget: int = 0) -> str:
    """``3 to add, 1 to re-add, …, 2 to adopt; 120 unmanaged left alone.``"""
    text = ", ".join(f"{group_thousands(summary.get(a, 0))} {w}" for a, w in _SUMMARY_WORDS)
    if summary.get("optout"):
        n = summary["optout"]
        text += f"; {group_thousands(n)} declared opt-out{'s' if n != 1 else ''} left alone"
    text += f"; {group_thousands(summary.get('unmanaged', 0))} unmanaged left alone"
    if forget:
        text += f"; {group_thousands(forget)} to forget from state (no API call)"
    return text + "."


class _LineFormat:
    """The columns of one target's change lines: symbol, action, number, reason, when, where."""

    def __init__(self, changes: list[Change], mask: bool) -> None:
        self.mask = mask
        self.label = max((len(LABELS[c.action]) for c in changes), default=0)
        self.number = max((len(c.number) for c in changes), default=0)
        self.reason = min(max((len(c.reason or "-") for c in changes), default=0), _REASON_WIDTH)
        self.when = min(max((len(self._when(c)) for c in changes), default=0), _WHEN_WIDTH)

    @staticmethod
    def _when(c: Change) -> str:
        if c.action == "update":
            return c.update_text()
        if c.action == "unmanaged":
            return ""
        if c.action == "optout":
            return "declared, but the user's own opt-out: left alone"
        if c.expires is None:
            return "expires never"
        return f"{'expired' if c.action == 'expire' else 'expires'} {day(c.expires)}"

    def fields(self, c: Change) -> tuple[str, str, str, str]:
        number = mask_number(c.number) if self.mask else c.number
        reason = clean(c.reason) if c.reason else "-"
        if len(reason) > _REASON_MAX:
            reason = reason[: _REASON_MAX - 1] + "…"
        when = self._when(c)
        where = c.source
        if c.action == "unmanaged" and c.attrs:
            where = " ".join(f"{k}={v}" for k, v in c.attrs)
        if self.mask:
            reason, when = mask_text(reason), mask_text(when)
        return number, clean(reason), clean(when), clean(where)

    def line(self, c: Change, mark: str) -> str:
        number, reason, when, where = self.fields(c)
        parts = [
            mark,
            LABELS[c.action].ljust(self.label),
            number.ljust(self.number),
            reason.ljust(self.reason),
            when.ljust(self.when),
            where,
        ]
        return "  ".join(p for p in parts if p).rstrip()


# -- text --------------------------------------------------------------------------------------


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, **style: object) -> str:
        return click.style(text, **style) if self.color else text  # type: ignore[arg-type]


def render_text(
    plan: Plan,
    *,
    color: bool,
    mask: bool,
    max_lines: int | None = 50,
    verbose: bool = False,
    allow_unsafe: bool = False,
) -> str:
    """Terraform-like text, grouped by target; ``max_lines`` change lines per target
    (None: all), then ``…and N more``. Unmanaged entries are a count unless ``verbose``."""
    style = _Style(color)
    if not plan.has_changes and not verbose:
        return "\n".join(_no_changes_text(plan, style))
    out: list[str] = []
    for tp in plan.targets:
        out.extend(_target_text(tp, style, mask, max_lines, verbose))
        out.append("")
    forget = sum(len(t.forget) for t in plan.targets)
    if plan.has_changes:
        out.append(style(f"Total: {summary_text(plan.summary(), forget)}", bold=True))
    else:
        out.append(NO_CHANGES)
    if not plan.safe:
        text = (
            "The plan is UNSAFE (see above): --allow-unsafe is given, so apply carries it out."
            if allow_unsafe
            else "The plan is UNSAFE (see above): apply refuses it unless --allow-unsafe is given."
        )
        out.append(style(text, fg="red", bold=True))
    return "\n".join(out)


def _no_changes_text(plan: Plan, style: _Style) -> list[str]:
    out = [style(NO_CHANGES, bold=True)]
    unmanaged = plan.summary()["unmanaged"]
    if unmanaged:
        text = plural(unmanaged, "unmanaged entry", "unmanaged entries")
        out.append(style(f"{text} left alone (-v lists them).", dim=True))
    blind = [t.target.name for t in plan.targets if not t.live_readable]
    if blind:
        out.append(
            style(
                f"Live state not readable for {', '.join(blind)}: compared with state "
                "(drift cannot be seen there).",
                fg="yellow",
            )
        )
    return out


def _target_text(
    tp: TargetPlan, style: _Style, mask: bool, max_lines: int | None, verbose: bool
) -> list[str]:
    header = style(f"# {clean(tp.target.name)}", bold=True)
    if not tp.live_readable:
        header += " " + style(NOT_READABLE, fg="yellow")
    if not tp.safe:
        header += " " + style("UNSAFE", fg="red", bold=True)
    out = [header]
    for reason in tp.unsafe_reasons:
        text = mask_text(reason) if mask else reason
        out.append(style(f"  ! unsafe: {clean(text)}", fg="red"))
    for warning in tp.warnings:
        text = mask_text(warning) if mask else warning
        out.append(style(f"  ! warning: {clean(text)}", fg="yellow"))

    listed = [c for c in tp.changes if verbose or c.action != "unmanaged"]
    shown = listed if max_lines is None else listed[: max(max_lines, 0)]
    fmt = _LineFormat(shown, mask)
    for c in shown:
        symbol = SYMBOLS[c.action]
        mark = symbol + " " * (2 - cell_width(symbol))
        out.append("  " + style(fmt.line(c, mark), **STYLES[c.action]))
    if len(listed) > len(shown):
        out.append(f"  …and {group_thousands(len(listed) - len(shown))} more")

    summary = tp.summary()
    if summary["unmanaged"] and not verbose:
        out.append(
            style(
                f"  ? {plural(summary['unmanaged'], 'unmanaged entry', 'unmanaged entries')}"
                " left alone (-v lists them)",
                dim=True,
            )
        )
    if tp.forget:
        out.append(
            f"  {plural(len(tp.forget), 'number', 'numbers')} to forget from state "
            "(no longer live; no API call)"
        )
    if tp.has_changes:
        out.append(f"  Plan: {summary_text(summary, len(tp.forget))}")
    else:
        unmanaged = f" {group_thousands(summary['unmanaged'])} unmanaged left alone."
        out.append("  No changes." + (unmanaged if summary["unmanaged"] else ""))
    return out


# -- markdown ----------------------------------------------------------------------------------


def render_markdown(plan: Plan, *, mask: bool) -> str:
    """A PR comment: title, summary table, then one ``<details>`` per target with changes.

    Always shorter than ``MARKDOWN_LIMIT`` characters: change lines share what the table
    and the per-target frames leave, one line per target in turn, and each target says
    how many it could not show.
    """
    budget = MARKDOWN_LIMIT - 1  # strictly below the limit
    forget = sum(len(t.forget) for t in plan.targets)
    head = ["## blocklist plan\n", "\n"]
    if plan.has_changes:
        head.append(f"**{summary_text(plan.summary(), forget)}**\n")
    else:
        head.append(f"**{NO_CHANGES}**\n")
    head.append(f"\n`now` {instant(plan.now)}\n\n")
    if not plan.safe:
        head.append(
            "> [!CAUTION]\n> **The plan is unsafe**: `blocklist apply` refuses it unless "
            "`--allow-unsafe` is given.\n\n"
        )
    parts = head + _table(plan, budget // 3)
    budget -= sum(map(len, parts))

    sections: list[_Section] = []
    quiet: list[str] = []
    dropped = 0
    frames = budget // 2 - 200  # frames may take half of what is left; lines get the rest
    for tp in plan.targets:
        if not tp.has_changes:
            quiet.append(f"`{_md_code(tp.target.name)}`")
            continue
        section = _Section(tp, mask)
        if dropped or section.frame_cost > frames:
            dropped += 1
            continue
        frames -= section.frame_cost
        budget -= section.frame_cost
        sections.append(section)
    tail: list[str] = []
    if dropped:
        tail.append(f"\n…and {group_thousands(dropped)} more targets with changes {MORE_HINT}\n")
    if quiet:
        text = f"\nNo changes in {', '.join(quiet)}.\n"
        if len(text) > budget - sum(map(len, tail)) - 100:
            text = f"\nNo changes in {group_thousands(len(quiet))} other targets.\n"
        tail.append(text)
    budget -= sum(map(len, tail))

    share_lines(sections, budget)
    for section in sections:
        parts.extend(section.render())
    parts.extend(tail)
    return "".join(parts).rstrip("\n")


def _md_code(text: str) -> str:
    """Text safe inside a code span in a table cell."""
    return clean(text).replace("`", "'").replace("|", "\\|")


def _table(plan: Plan, limit: int) -> list[str]:
    heads = ("target", *_TABLE_HEADS, "notes")
    rows = [
        "| " + " | ".join(heads) + " |\n",
        "| --- |" + " ---: |" * len(_TABLE_HEADS) + " --- |\n",
    ]
    size = sum(map(len, rows))
    hidden = 0
    for tp in plan.targets:
        notes = []
        if not tp.safe:
            notes.append("⚠️ unsafe")
        if not tp.live_readable:
            notes.append("live not readable, using state")
        if tp.forget:
            notes.append(f"{group_thousands(len(tp.forget))} to forget from state")
        counts = tp.summary()
        row = (
            f"| `{_md_code(tp.target.name)}` | "
            + " | ".join(group_thousands(counts[a]) for a in ACTIONS)
            + f" | {'; '.join(notes)} |\n"
        )
        if hidden or size + len(row) > limit:
            hidden += 1
            continue
        size += len(row)
        rows.append(row)
    total = plan.summary()
    rows.append(
        f"| **total ({plural(len(plan.targets), 'target', 'targets')})** | "
        + " | ".join(f"**{group_thousands(total[a])}**" for a in ACTIONS)
        + f" | {'' if plan.safe else '⚠️ unsafe'} |\n"
    )
    if hidden:
        rows.append(f"\n…and {group_thousands(hidden)} more targets {MORE_HINT}\n")
    rows.append("\n")
    return rows


#: no comment under MARKDOWN_LIMIT characters can hold more change lines than this
_MARKDOWN_MAX_LINES = MARKDOWN_LIMIT // 20


class _Section:
    """One target's ``<details>`` block: a fixed frame plus as many change lines as fit."""

    def __init__(self, tp: TargetPlan, mask: bool) -> None:
        self.tp = tp
        self.changes = [c for c in tp.changes if c.action != "unmanaged"]
        # columns are sized on the lines that can be shown at all, not on every change
        self.format = _LineFormat(self.changes[:_MARKDOWN_MAX_LINES], mask)
        self.lines: list[str] = []
        name = _md_code(tp.target.name)
        pre = []
        if not tp.safe:
            reasons = "; ".join(clean(mask_text(r) if mask else r) for r in tp.unsafe_reasons)
            pre.append(f"> [!WARNING]\n> **`{name}` is unsafe:** {reasons}\n\n")
        for warning in tp.warnings:
            text = clean(mask_text(warning) if mask else warning)
            pre.append(f"> [!NOTE]\n> **`{name}`:** {html.escape(text, quote=False)}\n\n")
        summary = html.escape(summary_text(tp.summary(), len(tp.forget)), quote=False)
        pre.append(
            f"<details><summary><code>{html.escape(clean(tp.target.name), quote=False)}</code>"
            f": {summary}</summary>\n\n"
        )
        if not tp.live_readable:
            pre.append(f"_{NOT_READABLE[1:-1]}: drift cannot be seen for this target._\n\n")
        self.pre = "".join(pre)
        self.post = "</details>\n\n"
        self.fences = "```diff\n```\n\n"
        self.frame_cost = (
            len(self.pre) + len(self.post) + len(self.fences) + len(self._more(len(self.changes)))
        )

    def candidates(self) -> Iterator[str]:
        for c in self.changes:
            yield self.format.line(c, DIFF_MARKS[c.action]) + "\n"

    @staticmethod
    def _more(n: int) -> str:
        return f"…and {group_thousands(n)} more {MORE_HINT}\n\n" if n else ""

    def render(self) -> list[str]:
        out = [self.pre]
        if self.lines:
            out += ["```diff\n", *self.lines, "```\n\n"]
        out.append(self._more(len(self.changes) - len(self.lines)))
        out.append(self.post)
        return out


# -- JSON --------------------------------------------------------------------------------------


def render_json(plan: Plan, *, mask: bool) -> str:
    """The plan document (``reconciler.planfile``), numbers masked if asked."""
    from ..planfile import plan_document_text

    return plan_document_text(plan, mask=mask)
