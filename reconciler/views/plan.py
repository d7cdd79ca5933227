"""Plan renderers: text for terminals, markdown for PR comments, JSON for machines.

Each renderer only reads a ``Plan`` and returns a string (without a trailing
newline); it never computes anything a plan does not already say, never
prints, and never decides on colour by itself (the caller passes ``color``).
``--mask-numbers`` is the ``mask`` flag of every renderer. The JSON document
built here is also the plan file's content (``reconciler.planfile``), so a
saved plan and ``plan --format json`` are one format.

Text and markdown have two layouts: ``by="number"`` (the default) prints a
change that is the same on several targets once, naming its targets;
``by="target"`` prints one block per target. Either way destructive changes
(remove, expire, update, re-add) come first and are the last to be cut when a
plan is too long to show whole; JSON always lists changes per target.
"""

from __future__ import annotations

import heapq
import html
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import click

from ..plan import ACTIONS, DESTRUCTIVE_ACTIONS, Change, Plan, TargetPlan
from .format import (
    MARKDOWN_LIMIT,
    cell_width,
    clean,
    day,
    day_of,
    group_thousands,
    instant,
    mask_number,
    mask_text,
    plural,
    share_lines_by_priority,
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
#: the summary's words per counted action, in ACTIONS order (destructive first)
_SUMMARY_WORDS = (
    ("remove", "to remove"),
    ("expire", "to expire"),
    ("update", "to update"),
    ("readd", "to re-add"),
    ("add", "to add"),
    ("adopt", "to adopt"),
)
_TABLE_HEADS = {
    "remove": "remove",
    "expire": "expire",
    "update": "update",
    "readd": "re-add",
    "add": "add",
    "adopt": "adopt",
    "optout": "opt-out",
    "unmanaged": "unmanaged",
}
#: the words of "N to remove", "…and N more to remove" per action
_COUNT_WORDS = {**dict(_SUMMARY_WORDS), "unmanaged": "unmanaged"}
NO_CHANGES = "No changes. Live state matches the desired state."
NOT_READABLE = "(live state not readable, using state)"
NOT_REFRESHED = (
    "Planned against state alone (--refresh=false): no provider was read, so drift "
    "cannot be seen, and apply never takes this plan for the reviewed one."
)
MORE_HINT = "(see the plan artifact / `blocklist show`)"
FULL_HINT = "(plan --full lists every line)"
REMOVED = "removed in this change"

_REASON_WIDTH = 30  # longer texts overflow their column instead of widening it
_REASON_MAX = 80  # longer reasons are cut (with …) on screen; JSON keeps them whole
_WHEN_WIDTH = 34  # "expires 2027-03-01 → 2027-06-01", "reject_type unsubscribe → invalid"
_WHERE_WIDTH = 48  # "was blocklists/fraud.yaml, removed in this change"
_TARGETS_SHOWN = 10  # a line names this many targets, then "and N more" (--full: all)
#: markdown lines longer than this put their targets on continuation lines
_MARKDOWN_WIDTH = 100
#: a markdown plan of at most this many change lines is shown open, without <details>
SMALL_PLAN_LINES = 20

_ORDER = {a: i for i, a in enumerate(ACTIONS)}


# -- shared helpers --------------------------------------------------------------------------


def summary_text(summary: dict[str, int], forget: int = 0) -> str:
    """``1 to remove, …, 3 to add, 2 to adopt; 120 unmanaged left alone.``"""
    text = ", ".join(f"{group_thousands(summary.get(a, 0))} {w}" for a, w in _SUMMARY_WORDS)
    if summary.get("optout"):
        n = summary["optout"]
        text += f"; {group_thousands(n)} declared opt-out{'s' if n != 1 else ''} left alone"
    text += f"; {group_thousands(summary.get('unmanaged', 0))} unmanaged left alone"
    if forget:
        text += f"; {group_thousands(forget)} to forget from state (no API call)"
    return text + "."


def update_text(c: Change) -> str:
    """Only what an update changes, dates as dates: ``expires 2027-03-01 → 2027-06-01``,
    ``reject_type unsubscribe → invalid``."""
    parts = []
    for key, old in c.before or ():
        new = c.after(key)
        if key == "expires":
            parts.append(f"expires {day_of(old) or 'never'} → {day_of(new) or 'never'}")
        else:
            parts.append(f"{key} {old or 'unset'} → {new or 'unset'}")
    return ", ".join(parts)


def when_text(c: Change) -> str:
    """The expiry column: what the line changes about time (or the update itself)."""
    if c.action == "update":
        return update_text(c)
    if c.action == "unmanaged":
        return ""
    if c.action == "optout":
        return "declared, but the user's own opt-out: left alone"
    if c.action == "remove":
        # what state recorded when it was applied: a remove does not "expire never"
        return f"recorded expiry {day(c.expires)}" if c.expires else "no expiry recorded"
    if c.expires is None:
        return "expires never"
    return f"{'expired' if c.action == 'expire' else 'expires'} {day(c.expires)}"


def where_text(c: Change, *, with_attrs: bool = True) -> str:
    """The source column. A remove is no longer declared: it names the file it was
    last applied from, not the line (which now holds another entry, if any)."""
    if c.action == "remove":
        if not c.source:
            return "not declared"
        head, sep, line = c.source.rpartition(":")
        file = head if sep and line.isdigit() else c.source
        return f"was {file}, {REMOVED}"
    if c.action == "unmanaged":
        return _attrs_text(c.attrs) if with_attrs else ""
    return c.source


def _attrs_text(attrs: Iterable[tuple[str, str]]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs)


def _listed(tp: TargetPlan, verbose: bool, start: int = 0) -> Iterator[Change]:
    """The change lines of a target from the ``start``-th on, lazily (views show a
    prefix of plans that may hold millions): unmanaged entries are a count unless
    ``verbose``. Whole runs before ``start`` are skipped without reading them."""
    for action, run in tp.runs():
        if action == "unmanaged" and not verbose:
            continue
        if start >= len(run):
            start -= len(run)
            continue
        yield from islice(run, start, None) if start else run
        start = 0


def _count_text(action: str, n: int, more: str = "") -> str:
    """``12 to remove``, ``12 more to remove``, ``1 declared opt-out``."""
    if action == "optout":
        return f"{group_thousands(n)}{more} declared opt-out{'s' if n != 1 else ''}"
    return f"{group_thousands(n)}{more} {_COUNT_WORDS[action]}"


def _more_text(hidden: Counter) -> str:
    """``8,731 more to add`` / ``8,781 more: 50 to update, 8,731 to add``."""
    kinds = [(a, hidden[a]) for a in ACTIONS if hidden.get(a)]
    if len(kinds) == 1:
        return _count_text(*kinds[0], more=" more")
    total = group_thousands(sum(n for _, n in kinds))
    return f"{total} more: " + ", ".join(_count_text(a, n) for a, n in kinds)


# -- the lines of a view -------------------------------------------------------------------


@dataclass(slots=True)
class PlanLine:
    """One change line: a change and, in the by-number layout, every target it applies
    to (with the provider attributes it takes there, e.g. ``reject_type=invalid``)."""

    change: Change
    targets: list[str] = field(default_factory=list)
    changes: int = 1  # per-target changes the line stands for

    @property
    def action(self) -> str:
        return self.change.action


def lines_by_number(plan: Plan, verbose: bool = False) -> Iterator[PlanLine]:
    """The plan's change lines, identical changes on several targets merged into one
    (same action, number, reason, expiry, source and old values), in ACTIONS order then
    by number. Lazy: every target's changes are already in that order, so a view that
    shows the first N lines merges only those, however large the plan."""
    streams = [_keyed(i, tp.changes, verbose) for i, tp in enumerate(plan.targets)]
    names = [tp.target.name for tp in plan.targets]
    run: list[tuple[int, Change]] = []
    run_key: tuple[int, str] | None = None
    for order, number, i, _, c in heapq.merge(*streams):
        if (order, number) != run_key:
            if run:
                yield from _merged(run, names)
            run, run_key = [], (order, number)
        run.append((i, c))
    if run:
        yield from _merged(run, names)


def _keyed(
    i: int, changes: list[Change], verbose: bool
) -> Iterator[tuple[int, str, int, int, Change]]:
    """A target's changes with the merge key (ACTIONS order, number, then position:
    never a tie, so two changes are never compared)."""
    for j, c in enumerate(changes):
        if verbose or c.action != "unmanaged":
            yield _ORDER[c.action], c.number, i, j, c


def _merged(run: list[tuple[int, Change]], names: list[str]) -> Iterator[PlanLine]:
    """One line per distinct change among one number's changes of one action."""
    if len(run) == 1:
        i, c = run[0]
        yield PlanLine(c, [_target_label(names[i], c)])
        return
    lines: dict[tuple[object, ...], PlanLine] = {}
    for i, c in run:
        key = (c.reason, c.expires, where_text(c, with_attrs=False), c.before)
        line = lines.get(key)
        if line is None:
            lines[key] = PlanLine(c, [_target_label(names[i], c)])
        else:
            line.targets.append(_target_label(names[i], c))
            line.changes += 1
    yield from lines.values()


def _target_label(name: str, c: Change) -> str:
    """``provider/account (reject_type=invalid)``: a target, and the attributes the change
    gives the number there (an update says them in its own column)."""
    if c.attrs and c.action != "update":
        return f"{name} ({_attrs_text(c.attrs)})"
    return name


def _targets_text(targets: list[str], limit: int | None) -> str:
    if limit is None or len(targets) <= limit:
        return "→ " + ", ".join(targets)
    more = len(targets) - limit
    return "→ " + ", ".join(targets[:limit]) + f" and {plural(more, 'more target', 'more targets')}"


class _Columns:
    """The columns of the lines a view shows: symbol, action, number, reason, when,
    where (and, by number, the targets), sized on those lines only."""

    def __init__(self, lines: list[PlanLine], mask: bool, *, by_number: bool) -> None:
        self.mask = mask
        self.by_number = by_number
        changes = [line.change for line in lines]
        self.label = max((len(LABELS[c.action]) for c in changes), default=0)
        self.number = max((len(c.number) for c in changes), default=0)
        self.reason = min(max((len(c.reason or "-") for c in changes), default=0), _REASON_WIDTH)
        self.when = min(max((len(when_text(c)) for c in changes), default=0), _WHEN_WIDTH)
        self.where = min(
            max((len(where_text(c, with_attrs=not by_number)) for c in changes), default=0),
            _WHERE_WIDTH,
        )

    def fields(self, c: Change) -> tuple[str, str, str, str]:
        number = mask_number(c.number) if self.mask else c.number
        reason = clean(c.reason) if c.reason else "-"
        if len(reason) > _REASON_MAX:
            reason = reason[: _REASON_MAX - 1] + "…"
        when = when_text(c)
        where = where_text(c, with_attrs=not self.by_number)
        if self.mask:
            reason, when = mask_text(reason), mask_text(when)
        return number, clean(reason), clean(when), clean(where)

    def head(self, line: PlanLine, mark: str) -> str:
        """The line up to (not including) its targets."""
        c = line.change
        number, reason, when, where = self.fields(c)
        parts = [
            mark,
            LABELS[c.action].ljust(self.label),
            number.ljust(self.number),
            reason.ljust(self.reason),
            when.ljust(self.when),
            where.ljust(self.where) if self.by_number else where,
        ]
        return "  ".join(p for p in parts if p).rstrip()

    def line(self, line: PlanLine, mark: str, limit: int | None = _TARGETS_SHOWN) -> str:
        head = self.head(line, mark)
        if not self.by_number:
            return head
        return f"{head.ljust(self.indent_of_targets(mark))}  {clean(_targets_text(line.targets, limit))}"

    def indent_of_targets(self, mark: str) -> int:
        widths = (len(mark), self.label, self.number, self.reason, self.when, self.where)
        return sum(widths) + 2 * (len(widths) - 1)

    def indent_of_number(self, mark: str) -> int:
        return len(mark) + 2 + self.label + 2


def _mark(action: str) -> str:
    symbol = SYMBOLS[action]
    return symbol + " " * (2 - cell_width(symbol))


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
    by: str = "number",
) -> str:
    """Terraform-like text. ``by="number"``: the change lines (one per distinct change,
    naming its targets), then each target's summary; ``by="target"``: one block per
    target. ``max_lines`` change lines per target (None: every line, ``--full``), taken
    destructive first, then ``…and N more``. Unmanaged entries are a count unless
    ``verbose``."""
    style = _Style(color)
    label = [] if plan.refreshed else [style(NOT_REFRESHED, fg="yellow", bold=True)]
    if not plan.has_changes and not verbose:
        return "\n".join(label + _no_changes_text(plan, style))
    out: list[str] = label + ([""] if label else [])
    if by == "target":
        for tp in plan.targets:
            out.extend(_target_text(tp, style, mask, max_lines, verbose, lines=True))
            out.append("")
    else:
        out.extend(_by_number_text(plan, style, mask, max_lines, verbose))
        for tp in plan.targets:
            out.extend(_target_text(tp, style, mask, max_lines, verbose, lines=False))
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


def _listed_of(tp: TargetPlan, verbose: bool) -> Counter:
    """A target's change lines per action (from its counts: no pass over its changes)."""
    return Counter({a: n for a, n in tp.summary().items() if n and (verbose or a != "unmanaged")})


def _listed_counts(plan: Plan, verbose: bool) -> Counter:
    counts: Counter = Counter()
    for tp in plan.targets:
        counts.update(_listed_of(tp, verbose))
    return counts


def _by_number_text(
    plan: Plan, style: _Style, mask: bool, max_lines: int | None, verbose: bool
) -> list[str]:
    """The change lines of the by-number layout. It shows as many lines as the
    per-target layout would (``max_lines`` per target with lines), destructive first."""
    listed = _listed_counts(plan, verbose)
    if not listed:
        return []
    stream = lines_by_number(plan, verbose)
    if max_lines is None:
        lines = list(stream)
    else:
        with_lines = sum(1 for tp in plan.targets if _listed_of(tp, verbose))
        lines = list(islice(stream, max(max_lines, 0) * with_lines))
    columns = _Columns(lines, mask, by_number=True)
    limit = None if max_lines is None else _TARGETS_SHOWN
    out = [style("Changes by number (--by target: one block per target):", bold=True)]
    for line in lines:
        text = columns.line(line, _mark(line.action), limit)
        out.append("  " + style(text, **STYLES[line.action]))
    shown: Counter = Counter()
    for line in lines:
        shown[line.action] += line.changes
    hidden = listed - shown
    if hidden:
        out.append(f"  …and {_more_text(hidden)} {FULL_HINT}")
    out.append("")
    return out


def _target_text(
    tp: TargetPlan, style: _Style, mask: bool, max_lines: int | None, verbose: bool, *, lines: bool
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

    if lines:
        listed = _listed(tp, verbose)
        # the changes are in ACTIONS order: the first lines are the destructive ones
        shown = list(listed) if max_lines is None else list(islice(listed, max(max_lines, 0)))
        plan_lines = [PlanLine(c) for c in shown]
        columns = _Columns(plan_lines, mask, by_number=False)
        for line in plan_lines:
            out.append("  " + style(columns.line(line, _mark(line.action)), **STYLES[line.action]))
        hidden = _listed_of(tp, verbose) - Counter(c.action for c in shown)
        if hidden:
            out.append(f"  …and {_more_text(hidden)} {FULL_HINT}")

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


def render_markdown(plan: Plan, *, mask: bool, by: str = "number") -> str:
    """A PR comment: a heading with the configuration's name, the summary, a table of
    counts per target, then the change lines, destructive first.

    Always shorter than ``MARKDOWN_LIMIT`` characters. A short plan (at most
    ``SMALL_PLAN_LINES`` change lines) is shown open; a longer one folds its lines into
    ``<details>`` blocks (one per action by number, one per target by target), each
    closed whole. Lines share what the frames leave: every destructive line that fits
    before any add or adopt; when destructive lines alone do not fit, the comment
    says so and points to the plan artifact.
    """
    budget = MARKDOWN_LIMIT - 1  # strictly below the limit
    forget = sum(len(t.forget) for t in plan.targets)
    name = clean(plan.configuration)
    head = [f"## blocklist plan: {_md_text(name)}\n" if name else "## blocklist plan\n", "\n"]
    if plan.has_changes:
        head.append(f"**{summary_text(plan.summary(), forget)}**\n")
    else:
        head.append(f"**{NO_CHANGES}**\n")
    head.append(f"\n`now` {instant(plan.now)}\n\n")
    if not plan.refreshed:
        head.append(f"> [!WARNING]\n> {NOT_REFRESHED}\n\n")
    if not plan.safe:
        head.append(
            "> [!CAUTION]\n> **The plan is unsafe**: `blocklist apply` refuses it unless "
            "`--allow-unsafe` is given.\n\n"
        )
    table = _table(plan, budget // 3)
    budget -= sum(map(len, head)) + sum(map(len, table))
    destructive = sum(plan.summary()[a] for a in DESTRUCTIVE_ACTIONS)
    overflow = _overflow_note(destructive, destructive)
    budget -= len(overflow)  # kept free in case destructive lines alone do not fit
    if by == "target":
        body, shown_destructive = _markdown_by_target(plan, mask, budget)
    else:
        body, shown_destructive = _markdown_by_number(plan, mask, budget)
    if shown_destructive < destructive:
        head.append(_overflow_note(shown_destructive, destructive))
    return "".join(head + table + body).rstrip("\n")


def _overflow_note(shown: int, total: int) -> str:
    return (
        "> [!WARNING]\n> **Not every destructive change fits in this comment:** "
        f"{group_thousands(shown)} of {group_thousands(total)} removes, expiries, updates and "
        "re-adds are shown. Review them all in the plan artifact "
        "(`blocklist show --full PLANFILE`).\n\n"
    )


def _md_code(text: str) -> str:
    """Text safe inside a code span in a table cell."""
    return clean(text).replace("`", "'").replace("|", "\\|")


def _md_text(text: str) -> str:
    """Text safe in a heading or a paragraph (no HTML, no emphasis or link syntax)."""
    escaped = html.escape(clean(text), quote=False)
    return "".join("\\" + ch if ch in "\\`*_[]<>#|~" else ch for ch in escaped)


def _table(plan: Plan, limit: int) -> list[str]:
    heads = ("target", *(_TABLE_HEADS[a] for a in ACTIONS), "notes")
    rows = [
        "| " + " | ".join(heads) + " |\n",
        "| --- |" + " ---: |" * len(ACTIONS) + " --- |\n",
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
_FENCES = "```diff\n```\n\n"


def _more_md(hidden: Counter) -> str:
    return f"…and {_more_text(hidden)} {MORE_HINT}\n\n" if hidden else ""


class _Lines:
    """Lines a section may show, in order, as many as the budget gives it (a
    ``format.Section``); ``shown`` are the plan lines behind the texts it took."""

    def __init__(self, candidates: Iterable[tuple[str, PlanLine]]) -> None:
        self._candidates = candidates
        self._offered: list[PlanLine] = []
        self.lines: list[str] = []

    def candidates(self) -> Iterator[str]:
        for text, line in self._candidates:
            self._offered.append(line)
            yield text

    @property
    def shown(self) -> list[PlanLine]:
        return self._offered[: len(self.lines)]  # the budget takes a prefix


def _target_notes(tp: TargetPlan, mask: bool) -> list[str]:
    """A target's unsafe reasons and warnings as callouts (never inside a fold)."""
    name = _md_code(tp.target.name)
    notes = []
    if not tp.safe:
        reasons = "; ".join(clean(mask_text(r) if mask else r) for r in tp.unsafe_reasons)
        reasons = html.escape(reasons, quote=False)
        notes.append(f"> [!WARNING]\n> **`{name}` is unsafe:** {reasons}\n\n")
    for warning in tp.warnings:
        text = html.escape(clean(mask_text(warning) if mask else warning), quote=False)
        notes.append(f"> [!NOTE]\n> **`{name}`:** {text}\n\n")
    return notes


def _notes(plan: Plan, mask: bool, budget: int) -> list[str]:
    """Unsafe reasons and warnings of every target, outside any fold, while they fit."""
    out: list[str] = []
    size = 0
    left = 0
    for tp in plan.targets:
        for note in _target_notes(tp, mask):
            if left or size + len(note) > budget:
                left += 1
                continue
            size += len(note)
            out.append(note)
    if left:
        out.append(f"…and {plural(left, 'more note', 'more notes')} {MORE_HINT}\n\n")
    return out


def _markdown_by_number(plan: Plan, mask: bool, budget: int) -> tuple[list[str], int]:
    """The by-number body: notes, then one block per action (destructive first); (the
    parts, how many destructive per-target changes the shown lines cover)."""
    parts = _notes(plan, mask, budget // 4)
    budget -= sum(map(len, parts))
    blind = [tp.target.name for tp in plan.targets if not tp.live_readable and tp.has_changes]
    if blind:
        names = ", ".join(f"`{_md_code(n)}`" for n in blind[:20])
        more = f" and {group_thousands(len(blind) - 20)} more" if len(blind) > 20 else ""
        note = f"_Live state not readable for {names}{more}: drift cannot be seen there._\n\n"
        if len(note) < budget // 4:
            parts.append(note)
            budget -= len(note)
    quiet = [tp for tp in plan.targets if not tp.has_changes]
    tail = _quiet_text(quiet, budget // 4)
    budget -= len(tail)

    listed = _listed_counts(plan, verbose=False)
    if not listed:
        return parts + [tail], 0
    lines = list(islice(lines_by_number(plan), _MARKDOWN_MAX_LINES))
    actions = [a for a in ACTIONS if listed.get(a)]
    if len(lines) <= SMALL_PLAN_LINES:  # the whole plan (islice stopped short): open
        pre = "### Changes\n\n"
        budget -= len(pre) + len(_FENCES) + len(_more_md(listed))
        section = _Lines(_diff_texts(lines, mask))
        share_lines_by_priority([[section]], budget)
        parts += [pre, "```diff\n", *section.lines, "```\n\n"]
        covered = _covered(section.shown)
        parts.append(_more_md(listed - covered))
        return parts + [tail], sum(covered[a] for a in DESTRUCTIVE_ACTIONS)

    sections: dict[str, _Lines] = {}
    frames: dict[str, tuple[str, str]] = {}
    for action in actions:
        summary = _count_text(action, listed[action])
        pre = f"<details><summary><b>{html.escape(summary)}</b></summary>\n\n"
        frames[action] = (pre, "</details>\n\n")
        budget -= len(pre) + len("</details>\n\n") + len(_FENCES)
        budget -= len(_more_md(Counter({action: listed[action]})))
        # each block its own columns: a long remove line does not widen the adds
        sections[action] = _Lines(_diff_texts([x for x in lines if x.action == action], mask))
    # one stream in ACTIONS order: every destructive line that fits comes before any other
    tiers = [[sections[a]] for a in actions]
    share_lines_by_priority(tiers, budget)
    covered_all: Counter = Counter()
    for action in actions:
        pre, post = frames[action]
        section = sections[action]
        covered = _covered(section.shown)
        covered_all += covered
        parts.append(pre)
        if section.lines:
            parts += ["```diff\n", *section.lines, "```\n\n"]
        parts.append(_more_md(Counter({action: listed[action]}) - covered))
        parts.append(post)
    return parts + [tail], sum(covered_all[a] for a in DESTRUCTIVE_ACTIONS)


def _covered(lines: list[PlanLine]) -> Counter:
    out: Counter = Counter()
    for line in lines:
        out[line.action] += line.changes
    return out


def _diff_texts(lines: list[PlanLine], mask: bool) -> list[tuple[str, PlanLine]]:
    """The lines of one ```diff block, with their columns: each on one line when every
    line of the block fits the width a PR comment shows, else each with its targets on
    continuation lines (so the targets stay aligned either way)."""
    columns = _Columns(lines, mask, by_number=True)
    texts = [columns.line(line, DIFF_MARKS[line.action]) for line in lines]
    if all(len(text) <= _MARKDOWN_WIDTH for text in texts):
        return [
            (text.replace("```", "'''") + "\n", line)
            for text, line in zip(texts, lines, strict=True)
        ]
    return [(_wrapped(columns, line), line) for line in lines]


def _wrapped(columns: _Columns, line: PlanLine) -> str:
    """One diff line with its targets on continuation lines (each with the same diff
    mark, so it keeps its colour)."""
    mark = DIFF_MARKS[line.action]
    head = columns.head(line, mark).replace("```", "'''")
    indent = mark + " " * (columns.indent_of_number(mark) - len(mark))
    out = [head]
    targets = [clean(t) for t in line.targets[:_TARGETS_SHOWN]]
    if len(line.targets) > _TARGETS_SHOWN:
        more = len(line.targets) - _TARGETS_SHOWN
        targets.append(f"and {plural(more, 'more target', 'more targets')}")
    current, on_line = indent + "→", 0
    for i, target in enumerate(targets):
        piece = " " + target + ("," if i < len(targets) - 1 else "")
        if on_line and len(current) + len(piece) > _MARKDOWN_WIDTH:
            out.append(current)
            current, on_line = indent + " ", 0
        current += piece
        on_line += 1
    out.append(current)
    return "\n".join(out).replace("```", "'''") + "\n"


def _quiet_text(quiet: list[TargetPlan], limit: int) -> str:
    if not quiet:
        return ""
    text = f"\nNo changes in {', '.join(f'`{_md_code(tp.target.name)}`' for tp in quiet)}.\n"
    if len(text) > limit:
        text = f"\nNo changes in {group_thousands(len(quiet))} other targets.\n"
    return text


def _markdown_by_target(plan: Plan, mask: bool, budget: int) -> tuple[list[str], int]:
    """The by-target body: one block per target with changes (a ``<details>`` unless
    the plan is short); (the parts, destructive per-target changes shown)."""
    sections: list[_TargetSection] = []
    quiet: list[TargetPlan] = []
    dropped = 0
    small = sum(_listed_counts(plan, verbose=False).values()) <= SMALL_PLAN_LINES
    frames = budget // 2 - 200  # frames may take half of what is left; lines get the rest
    for tp in plan.targets:
        if not tp.has_changes:
            quiet.append(tp)
            continue
        section = _TargetSection(tp, mask, folded=not small)
        if dropped or section.frame_cost > frames:
            dropped += 1
            continue
        frames -= section.frame_cost
        budget -= section.frame_cost
        sections.append(section)
    tail: list[str] = []
    if dropped:
        tail.append(f"\n…and {group_thousands(dropped)} more targets with changes {MORE_HINT}\n")
    tail.append(_quiet_text(quiet, budget - sum(map(len, tail)) - 100))
    budget -= sum(map(len, tail))

    # every destructive line of every target that fits before any other line
    share_lines_by_priority([[s.destructive for s in sections], [s.rest for s in sections]], budget)
    parts: list[str] = []
    shown = 0
    for section in sections:
        parts.extend(section.render())
        shown += len(section.destructive.lines)
    return parts + tail, shown


class _TargetSection:
    """One target's block: a fixed frame plus as many change lines as fit, destructive
    ones (the first of its changes) in one part and the rest in another."""

    def __init__(self, tp: TargetPlan, mask: bool, *, folded: bool) -> None:
        self.tp = tp
        n_destructive = sum(tp.count(a) for a in DESTRUCTIVE_ACTIONS)
        # columns are sized on the lines that can be shown at all, not on every change
        self.columns = _Columns(
            [PlanLine(c) for c in islice(_listed(tp, False), _MARKDOWN_MAX_LINES)],
            mask,
            by_number=False,
        )
        self.destructive = _Lines(self._texts(islice(_listed(tp, False), n_destructive)))
        self.rest = _Lines(self._texts(_listed(tp, False, n_destructive)))
        name = _md_code(tp.target.name)
        pre = _target_notes(tp, mask)
        summary = html.escape(summary_text(tp.summary(), len(tp.forget)), quote=False)
        code = html.escape(clean(tp.target.name), quote=False)
        if folded:
            pre.append(f"<details><summary><code>{code}</code>: {summary}</summary>\n\n")
            self.post = "</details>\n\n"
        else:
            pre.append(f"#### `{name}`: {summary}\n\n")
            self.post = ""
        if not tp.live_readable:
            pre.append(f"_{NOT_READABLE[1:-1]}: drift cannot be seen for this target._\n\n")
        self.pre = "".join(pre)
        # "…and N more" is never longer than with every change hidden
        self.frame_cost = (
            len(self.pre) + len(self.post) + len(_FENCES) + len(_more_md(self._all_counts()))
        )

    def _all_counts(self) -> Counter:
        counts = Counter(self.tp.summary())
        counts.pop("unmanaged", None)
        return +counts

    def _texts(self, changes: Iterable[Change]) -> Iterator[tuple[str, PlanLine]]:
        for c in changes:
            line = PlanLine(c)
            yield self.columns.line(line, DIFF_MARKS[c.action]).replace("```", "'''") + "\n", line

    def render(self) -> list[str]:
        out = [self.pre]
        lines = self.destructive.lines + self.rest.lines
        if lines:
            out += ["```diff\n", *lines, "```\n\n"]
        hidden = self._all_counts() - _covered(self.destructive.shown + self.rest.shown)
        out.append(_more_md(hidden))
        out.append(self.post)
        return out


# -- JSON --------------------------------------------------------------------------------------


def render_json(plan: Plan, *, mask: bool) -> str:
    """The plan document (``reconciler.planfile``), numbers masked if asked."""
    from ..planfile import plan_document_text

    return plan_document_text(plan, mask=mask)


def write_json(plan: Plan, write: Callable[[str], object], *, mask: bool) -> None:
    """``render_json`` handed to ``write`` in blocks (a plan of a million numbers is
    hundreds of megabytes of JSON: never built whole)."""
    from ..planfile import write_plan_document

    write_plan_document(plan, write, mask=mask)
