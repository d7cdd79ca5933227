"""``blocklist block`` / ``unblock``: edit one list in place, and with ``--apply``
(break-glass) apply just those numbers' changes to the list's targets at once.

The edit (``edit_list``): the list file is edited with ``listedit`` (comments,
order and formatting kept), the edited directory is validated with
``load_desired`` before anything is written (an edit that breaks validation
writes nothing), then the file is written atomically and its diff returned. The
edited file is the catch-up change to commit and review: git stays the source
of truth.

Break-glass (``break_glass``): everything ``apply`` holds still holds. The state
is locked, the list's targets are refreshed and planned as ``apply`` plans them,
and only the given numbers' changes are kept (no state cleanups: unrelated
pending changes wait for the reviewed apply). Safety thresholds and the policy
are checked again on what is left, the executor runs with the same guard, and
the audit log gets a record of kind ``break-glass`` naming the actor.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..atomic import write_atomic
from ..desired import Desired, ListSource, load_desired
from ..errors import BlocklistError, UnsafePlanError
from ..expiry import parse_timestamp
from ..listedit import EntryFields, ListText, unified_diff
from ..models import TTL_PATTERN
from ..numbers import InvalidNumber, normalise
from ..plan import Plan, safety_problems
from ..policy import file_of
from ..report import ApplyReport
from ..yamlnodes import YamlProblem
from .apply import ApplyOptions, audit_record, execute, locked_run
from .common import add_policy_reasons, make_plan, target_safety
from .ui import UI, Stop


@dataclass
class BlockOptions:
    directory: Path
    list_name: str
    numbers: tuple[str, ...]  # as given: any format the list's default_region reads
    unblock: bool = False
    reason: str | None = None
    ticket: str | None = None
    expires: str | None = None  # a date or an ISO datetime with a zone
    ttl: str | None = None  # from today
    now: dt.datetime | None = None  # None: the wall clock
    dry_run: bool = False  # show the diff, write nothing
    allow_unsafe: bool = False
    lock_timeout: float | None = None


@dataclass
class EditResult:
    """What ``block`` or ``unblock`` did to the list file."""

    list_name: str
    file: str  # as problems name it
    path: Path
    numbers: list[str]  # E.164, in the order given
    diff: str = ""
    added: list[str] = field(default_factory=list)
    updated: list[tuple[str, list[str]]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    written: bool = False
    desired: Desired | None = None  # the desired state after the edit


@dataclass
class BreakGlassResult:
    plan: Plan
    report: ApplyReport


def numbers_from_lines(lines: Iterable[str]) -> list[str]:
    """Numbers read from stdin: one a line; blank lines and ``#`` comments skipped."""
    out = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            out.append(text)
    return out


def _fields(options: BlockOptions, now: dt.datetime) -> EntryFields:
    if options.expires and options.ttl:
        raise BlocklistError("give either --expires or --ttl, not both")
    expires: dt.date | dt.datetime | None = None
    if options.expires:
        text = options.expires.strip()
        try:
            expires = (
                dt.date.fromisoformat(text)
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)
                else parse_timestamp(text)
            )
        except ValueError as exc:
            raise BlocklistError(f"--expires: {exc}") from None
    if options.ttl and not re.match(TTL_PATTERN, options.ttl):
        raise BlocklistError(f"--ttl {options.ttl!r}: use e.g. 30d, 12w, 6mo, 1y")
    metadata = (("ticket", options.ticket),) if options.ticket else ()
    return EntryFields(
        reason=options.reason or None,
        expires=expires,
        ttl=options.ttl or None,
        added=now.date() if options.ttl else None,
        metadata=metadata,
    )


def find_list(desired: Desired, name: str) -> ListSource:
    """The list named ``name``; an error naming the known lists otherwise."""
    found = desired.lists_named(name)
    if not found:
        known = ", ".join(sorted({ls.name for ls in desired.list_files})) or "none"
        raise BlocklistError(f"unknown list {name!r} (lists: {known})")
    if len(found) > 1:
        files = ", ".join(ls.display for ls in found)
        raise BlocklistError(f"list {name!r} is written in {len(found)} files ({files})")
    return found[0]


def edit_list(options: BlockOptions) -> EditResult:
    """Edit the list, validate the result, write it (unless ``dry_run``), return the diff."""
    now = options.now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    fields = _fields(options, now)
    if options.unblock and not fields.empty:
        raise BlocklistError("unblock takes no --reason, --ticket, --expires or --ttl")
    if not options.numbers:
        raise BlocklistError("no numbers given (give them as arguments, or '-' to read stdin)")
    directory = options.directory
    before = load_desired(directory, str(directory))
    listed = find_list(before, options.list_name)
    numbers = _normalised(options.numbers, listed)
    try:
        text = listed.path.read_text(encoding="utf-8")
        doc = ListText(text, listed.display)
    except OSError as exc:
        raise BlocklistError(f"cannot read {listed.display}: {exc.strerror or exc}") from None
    except YamlProblem as exc:  # pragma: no cover - load_desired read it just now
        raise BlocklistError(str(exc)) from None
    result = EditResult(listed.name, listed.display, listed.path, numbers)
    refs = {ref.number: ref for ref in doc.entries() if ref.number is not None}
    elsewhere = _declared_in_sources(before, listed, numbers)
    if options.unblock:
        _unblock(doc, refs, elsewhere, listed, numbers, result)
    else:
        _block(doc, refs, elsewhere, numbers, fields, result)
    after_text = doc.dump()
    result.diff = unified_diff(text, after_text, listed.display)
    if not result.diff:
        result.desired = before
        return result
    # validate the directory as it will be, before anything is written
    after = load_desired(directory, str(directory), texts={listed.path: after_text})
    result.desired = after
    _notes(after, listed, numbers, result, options.unblock)
    if not options.dry_run:
        try:
            write_atomic(listed.path, after_text, mode=listed.path.stat().st_mode & 0o777)
        except OSError as exc:
            raise BlocklistError(f"cannot write {listed.display}: {exc.strerror or exc}") from None
        result.written = True
    return result


def _normalised(given: Iterable[str], listed: ListSource) -> list[str]:
    out: list[str] = []
    problems = []
    for raw in given:
        try:
            number = normalise(raw.strip(), listed.region)
        except InvalidNumber as exc:
            problems.append(f"{raw!r}: {exc}")
            continue
        if number not in out:
            out.append(number)
    if problems:
        shown = "; ".join(problems[:20]) + (
            f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        raise BlocklistError(f"invalid phone number{'s' if len(problems) > 1 else ''}: {shown}")
    return out


def _declared_in_sources(
    desired: Desired, listed: ListSource, numbers: list[str]
) -> dict[str, str]:
    """Numbers the list declares through its ``entries_from`` files: number -> file:line."""
    sources = {shown for _, shown in listed.sources}
    out: dict[str, str] = {}
    if not sources:
        return out
    for name in listed.targets:
        entries = desired.entries.get(name, {})
        for number in numbers:
            entry = entries.get(number)
            if entry is not None and file_of(entry.source) in sources:
                out.setdefault(number, entry.source)
    return out


def _block(
    doc: ListText,
    refs: dict,
    elsewhere: dict[str, str],
    numbers: list[str],
    fields: EntryFields,
    result: EditResult,
) -> None:
    for number in numbers:
        ref = refs.get(number)
        if ref is not None:
            if fields.empty:
                result.unchanged.append(number)
                result.notes.append(f"{number} is in the list already ({result.file}:{ref.line})")
                continue
            changes = doc.update(ref.index, fields)
            if changes:
                result.updated.append((number, changes))
            else:
                result.unchanged.append(number)
        elif number in elsewhere:
            if not fields.empty:
                raise BlocklistError(
                    f"{number} is declared in {elsewhere[number]} (entries_from of list "
                    f"{result.list_name}): change it there"
                )
            result.unchanged.append(number)
            result.notes.append(f"{number} is in the list already ({elsewhere[number]})")
        else:
            doc.add(number, fields)
            result.added.append(number)


def _unblock(
    doc: ListText,
    refs: dict,
    elsewhere: dict[str, str],
    listed: ListSource,
    numbers: list[str],
    result: EditResult,
) -> None:
    problems = []
    for number in numbers:
        if number in refs:
            continue
        if number in elsewhere:
            problems.append(
                f"{number} is declared in {elsewhere[number]} (entries_from of list "
                f"{listed.name}): remove it there"
            )
        else:
            problems.append(f"list {listed.name} ({listed.display}) does not declare {number}")
    if problems:
        raise BlocklistError("; ".join(problems) + "; nothing was changed")
    doc.remove(refs[n].index for n in numbers)
    result.removed.extend(numbers)


def _notes(
    after: Desired, listed: ListSource, numbers: list[str], result: EditResult, unblock: bool
) -> None:
    """What else declares the numbers on the list's targets."""
    for number in numbers:
        for name in listed.targets:
            entry = after.entries.get(name, {}).get(number)
            if entry is None or entry.list_name == listed.name:
                continue
            if unblock:
                result.notes.append(
                    f"{number} stays declared for {name} by list {entry.list_name} ({entry.source})"
                )
            else:
                result.notes.append(
                    f"{number} is also declared for {name} by list {entry.list_name} "
                    f"({entry.source})"
                )


# -- break-glass ---------------------------------------------------------------------------


def restrict(plan: Plan, numbers: Iterable[str], desired: Desired, managed: dict) -> Plan:
    """``plan`` with only the changes of ``numbers`` and no state cleanups, its safety
    thresholds and policy checked again on what is left."""
    wanted = set(numbers)
    targets = []
    for tp in plan.targets:
        kept = replace(
            tp,
            changes=[c for c in tp.changes if c.number in wanted],
            forget=[],
            unsafe_reasons=[],
            warnings=[],
            _counts=None,
        )
        kept.unsafe_reasons = safety_problems(kept, target_safety(desired, tp.target))
        targets.append(kept)
    add_policy_reasons(desired, targets, managed)
    return Plan(
        now=plan.now,
        targets=targets,
        desired_digest="",
        lineage=plan.lineage,
        serial=plan.serial,
        configuration=plan.configuration,
    )


async def break_glass(
    options: BlockOptions, edit: EditResult, ui: UI, stop: Stop
) -> BreakGlassResult:
    """Apply the edited numbers' changes to the list's targets at once."""
    desired = edit.desired
    assert desired is not None
    now = options.now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    listed = find_list(desired, edit.list_name)
    async with locked_run(desired, options.directory, lock_timeout=options.lock_timeout) as (
        conns,
        state,
        _,
    ):
        chosen = [desired.targets[name] for name in listed.targets if name in desired.targets]
        full, managed = await make_plan(desired, conns, chosen, state, now, ui, check_state=True)
        the_plan = restrict(full, edit.numbers, desired, managed)
        ui.show_plan(the_plan)
        report = ApplyReport(started=dt.datetime.now(dt.UTC))
        if not the_plan.has_changes:
            report.finished = report.started
            return BreakGlassResult(the_plan, report)
        if not the_plan.safe and not options.allow_unsafe:
            reasons = the_plan.unsafe_text()
            raise UnsafePlanError(
                f"the break-glass plan is unsafe ({reasons}); re-run with --allow-unsafe to "
                f"apply it (the edit of {edit.file} is written: commit it, or revert it)"
            )
        report = await execute(the_plan, desired, conns, state, managed, ui, stop)
        record = audit_record(
            report,
            ApplyOptions(directory=options.directory, allow_unsafe=options.allow_unsafe),
            the_plan,
        )
        record.update(
            {
                "kind": "break-glass",
                "command": "unblock" if options.unblock else "block",
                "list": edit.list_name,
                "file": edit.file,
                "numbers": len(edit.numbers),
                "target_names": [tp.target.name for tp in the_plan.targets if tp.changes],
            }
        )
        state.append_audit(record)
    return BreakGlassResult(the_plan, report)
