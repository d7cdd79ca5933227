"""The plan document, both ways: ``plan --format json``, ``plan --out FILE``,
``show FILE`` and ``apply FILE`` all read and write it here and nowhere else.

A pydantic model (``PlanDocument``) is the one definition of the document: it
validates what is read (unknown keys, wrong types and impossible values are
refused with the place they are at), and generates ``schemas/plan.schema.json``.
Writing goes through a fast encoder that emits exactly the model's fields (one
compact change per line), because a plan of a million changes must not be built
as objects twice. A saved plan is never masked and ASCII-only; it holds plan data
only (no configuration, so no credential). Checking a loaded plan against fresh
live state is apply's job, not this module's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import __version__
from .atomic import atomic_file
from .domain import DesiredEntry
from .errors import BlocklistError
from .expiry import iso
from .plan import ACTIONS, Change, DeclaredRun, Plan, TargetPlan, runs_of
from .views.format import instant, mask_number, mask_text

#: version of the document; a reader refuses newer ones
FORMAT_VERSION = 1
#: the ``kind`` of a JSON plan document (tells a plan file from any other JSON)
PLAN_KIND = "blocklist-plan"

Action = Literal[ACTIONS]  # type: ignore[valid-type]
Instant = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AttributeChange(_Doc):
    """One attribute an update changes."""

    attribute: str
    to: str | None
    from_: str | None = Field(alias="from")

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class ChangeDocument(_Doc):
    """One line of a plan."""

    action: Action
    number: str
    reason: str | None
    expires: Instant | None
    source: str | None
    attrs: dict[str, str] | None = None
    provider_ids: list[str] | None = None
    changes: list[AttributeChange] | None = None


class TargetDocument(_Doc):
    """The plan of one target."""

    name: str
    provider: str
    type: str
    scope: dict[str, str]
    exclusive: bool
    live_readable: bool
    existing: int = Field(ge=0)
    fingerprint: str
    safe: bool
    unsafe_reasons: list[str]
    warnings: list[str] = []
    opt_outs: list[str] = []
    summary: dict[str, int]
    forget: list[str]
    changes: list[ChangeDocument]


class PlanDocument(_Doc):
    """A whole plan: what ``plan --format json`` prints and ``plan --out`` saves."""

    format_version: Literal[1]
    kind: Literal["blocklist-plan"]
    tool_version: str
    configuration: str = ""
    refreshed: bool = True
    now: Instant
    masked: bool
    safe: bool
    has_changes: bool
    desired_digest: str
    lineage: str | None
    serial: int | None = Field(ge=0)
    summary: dict[str, int]
    targets: list[TargetDocument]


def plan_schema() -> dict[str, object]:
    """The JSON Schema of the plan document (``schemas/plan.schema.json``)."""
    schema = PlanDocument.model_json_schema(by_alias=True)
    schema["title"] = "blocklist plan"
    return schema


# -- writing ----------------------------------------------------------------------------------


def plan_to_dict(plan: Plan, *, mask: bool = False) -> dict[str, object]:
    """The plan document as plain data (what ``PlanDocument`` validates). Built whole:
    for tests and small plans; ``write_plan_document`` writes the same without it."""
    return {
        **_plan_head(plan, mask),
        "targets": [
            {**_target_head(tp, mask), "changes": [change_dict(c, mask) for c in tp.changes]}
            for tp in plan.targets
        ],
    }


def _plan_head(plan: Plan, mask: bool) -> dict[str, object]:
    """The document's fields before ``targets`` (the last one)."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": PLAN_KIND,
        "tool_version": plan.tool_version,
        "configuration": plan.configuration,
        "refreshed": plan.refreshed,
        "now": instant(plan.now),
        "masked": mask,
        "safe": plan.safe,
        "has_changes": plan.has_changes,
        "desired_digest": plan.desired_digest,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "summary": plan.summary(),
    }


def _target_head(tp: TargetPlan, mask: bool) -> dict[str, object]:
    """A target's fields before ``changes`` (the last one)."""
    t = tp.target
    hide: Callable[[str], str] = mask_text if mask else str
    return {
        "name": t.name,
        "provider": t.provider,
        "type": t.type,
        "scope": t.scope_dict(),
        "exclusive": t.exclusive,
        "live_readable": tp.live_readable,
        "existing": tp.existing,
        "fingerprint": tp.fingerprint,
        "safe": tp.safe,
        "unsafe_reasons": [hide(r) for r in tp.unsafe_reasons],
        "warnings": [hide(w) for w in tp.warnings],
        "opt_outs": [mask_number(n) if mask else n for n in sorted(tp.opt_outs)],
        "summary": tp.summary(),
        "forget": [mask_number(n) for n in tp.forget] if mask else list(tp.forget),
    }


def change_dict(c: Change, mask: bool = False) -> dict[str, object]:
    """One change as the document writes it (optional keys only when set)."""
    out: dict[str, object] = {
        "action": c.action,
        "number": mask_number(c.number) if mask else c.number,
        "reason": mask_text(c.reason) if (mask and c.reason) else c.reason,
        "expires": _instant_or_none(c.expires),
        "source": c.source or None,
    }
    if c.attrs:
        out["attrs"] = dict(c.attrs)
    if c.provider_ids:
        out["provider_ids"] = list(c.provider_ids)
    if c.before is not None:
        out["changes"] = [{"attribute": k, "from": old, "to": c.after(k)} for k, old in c.before]
    return out


def _instant_or_none(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return instant(value) if value.microsecond else iso(value)


def plan_document_text(plan: Plan, *, mask: bool = False) -> str:
    """The document as indented JSON with one compact change per line (no trailing
    newline). ASCII only (``\\uXXXX`` escapes), so it survives any terminal, pipe or
    file encoding; ``json.loads`` gives ``plan_to_dict`` back."""
    parts: list[str] = []
    write_plan_document(plan, parts.append, mask=mask)
    return "".join(parts)


def write_plan_document(
    plan: Plan, write: Callable[[str], object], *, mask: bool = False, block: int = 1 << 20
) -> None:
    """Write the document (``plan_document_text``) to ``write`` in blocks of about
    ``block`` characters, never whole in memory (a plan of a million numbers is five
    million change lines)."""
    blocks = _Blocks(write, block)
    _write_document(plan, blocks.write, mask)
    blocks.flush()


class _Blocks:
    """Pieces of text handed on in blocks of about ``size`` characters."""

    def __init__(self, write: Callable[[str], object], size: int) -> None:
        self.out = write
        self.size = size
        self.parts: list[str] = []
        self.held = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.held += len(text)
        if self.held >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.out("".join(self.parts))
            self.parts.clear()
            self.held = 0


#: change lines handed to ``write`` at a time (about 130 kB)
_LINES_PER_WRITE = 1000
UTC = dt.UTC
#: what comes before an item of an indented object or list: the first, any other
_NEXT = ("\n", ",\n")


def _write_document(plan: Plan, write: Callable[[str], object], mask: bool) -> None:
    """The document (no trailing newline), in pieces: objects indented by two spaces,
    except changes, one compact object per line, encoded straight from the plan (no
    dict per change).

    ``json.dumps(indent=2)`` runs in pure Python; the fields here are encoded with the
    C string encoder ``json`` itself uses, so each line is what ``json.dumps`` writes
    for its ``change_dict`` (a differential test holds them to it)."""
    encode = _compact_encoder()
    write("{")
    for i, (key, value) in enumerate(_plan_head(plan, mask).items()):
        write(f"{_NEXT[bool(i)]}  {encode(key)}: {encode(value)}")
    write(',\n  "targets": ')
    if not plan.targets:
        write("[]")
    else:
        write("[")
        lines = _ChangeLines(encode, mask)
        for j, tp in enumerate(plan.targets):
            write(f"{_NEXT[bool(j)]}    {{")
            for i, (key, value) in enumerate(_target_head(tp, mask).items()):
                write(f"{_NEXT[bool(i)]}      {encode(key)}: {encode(value)}")
            write(',\n      "changes": ')
            if not len(tp.changes):
                write("[]")
            else:
                write("[\n")
                lines.write(tp, write)
                write("\n      ]")
            write("\n    }")
        write("\n  ]")
    write("\n}")


class _ChangeLines:
    """The change lines of a target, each ``json.dumps(change_dict(c))`` indented by
    eight spaces, made from the fields with the values that repeat (reasons, expiries,
    attributes) encoded once."""

    _PAD = "        "
    _CACHED = 4096  # distinct values kept per field (free-text reasons need not repeat)

    def __init__(self, encode: Callable[[object], str], mask: bool) -> None:
        self.encode = encode
        self.mask = mask
        self.string = json.encoder.encode_basestring_ascii
        self.reasons: dict[str | None, str] = {}
        self.instants: dict[dt.datetime | None, str] = {}
        self.attrs: dict[tuple[tuple[str, str], ...], str] = {}

    def write(self, tp: TargetPlan, write: Callable[[str], object]) -> None:
        first = True
        for action, run in runs_of(tp.changes):
            if isinstance(run, DeclaredRun):
                blocks = self._declared(action, run)
            else:
                made = map(self.line, run)
                blocks = iter(lambda: list(islice(made, _LINES_PER_WRITE)), [])  # noqa: B023
            for lines in blocks:
                write(("" if first else ",\n") + ",\n".join(lines))
                first = False

    def _declared(self, action: str, run: DeclaredRun) -> Iterator[str]:
        """Lines straight from the declared entries of a run (never an update: no
        ``changes`` key), made in the order ``DeclaredRun.mapped`` reads them."""
        string, reason_of, instant_of, attrs_of = self.string, self.reason, self.instant, self.attr
        reasons, instants = self.reasons.get, self.instants.get  # hits, without a call
        head = f'{self._PAD}{{"action": {string(action)}, "number": '
        hide = mask_number if self.mask else None

        def line(e: DesiredEntry, ids: tuple[str, ...]) -> str:
            try:
                number = string(hide(e.number) if hide else e.number)
                source = string(e.source) if e.source else "null"
                reason = reasons(e.reason) or reason_of(e.reason)
                expires = e.expires
                when = instants(expires) if expires is None or expires.tzinfo is UTC else None
                tail = (attrs_of(e.attrs) if e.attrs else "") + (self.ids(ids) if ids else "")
                return (
                    f'{head}{number}, "reason": {reason}, "expires": '
                    f'{when or instant_of(expires)}, "source": {source}{tail}}}'
                )
            except TypeError:  # a value the fast path does not know: the plain encoder
                c = Change(action, e.number, e.reason, e.expires, e.source, e.attrs, ids)
                return self._PAD + self.encode(change_dict(c, self.mask))

        return run.mapped(line, _LINES_PER_WRITE * 64)

    def line(self, c: Change) -> str:
        string = self.string
        try:
            number = string(mask_number(c.number) if self.mask else c.number)
            source = string(c.source) if c.source else "null"
            tail = (self.attr(c.attrs) if c.attrs else "") + (
                self.ids(c.provider_ids) if c.provider_ids else ""
            )
            if c.before is not None:
                before = [{"attribute": k, "from": old, "to": c.after(k)} for k, old in c.before]
                tail += f', "changes": {self.encode(before)}'
            return (
                f'{self._PAD}{{"action": {string(c.action)}, "number": {number}, "reason": '
                f'{self.reason(c.reason)}, "expires": {self.instant(c.expires)}, "source": '
                f"{source}{tail}}}"
            )
        except TypeError:
            return self._PAD + self.encode(change_dict(c, self.mask))

    def reason(self, reason: str | None) -> str:
        text = self.reasons.get(reason)
        if text is None:
            shown = mask_text(reason) if (self.mask and reason) else reason
            text = "null" if shown is None else self.string(shown)
            if len(self.reasons) < self._CACHED:
                self.reasons[reason] = text
        return text

    def instant(self, value: dt.datetime | None) -> str:
        # cached for UTC instants only: an equal instant in a zone whose offset has a
        # fraction of a second shows its local fraction (``_instant_or_none``)
        utc = value is None or value.tzinfo is dt.UTC
        text = self.instants.get(value) if utc else None
        if text is None:
            shown = _instant_or_none(value)
            text = "null" if shown is None else self.string(shown)
            if utc and len(self.instants) < self._CACHED:
                self.instants[value] = text
        return text

    def attr(self, attrs: tuple[tuple[str, str], ...]) -> str:
        text = self.attrs.get(attrs)
        if text is None:
            text = f', "attrs": {self.encode(dict(attrs))}'
            if len(self.attrs) < self._CACHED:
                self.attrs[attrs] = text
        return text

    def ids(self, ids: tuple[str, ...]) -> str:
        return f', "provider_ids": {self.encode(list(ids))}'


def _compact_encoder() -> Callable[[object], str]:
    """``json.dumps`` with default settings, minus its per-call set-up.

    ``JSONEncoder.encode`` builds a fresh C encoder on every call; one C encoder built
    once (``json.encoder.c_make_encoder``, what ``encode`` itself uses) does the same
    at a third of the cost. Falls back to the public API where it is missing.
    """
    public = json.JSONEncoder(check_circular=False).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    escape = getattr(json.encoder, "c_encode_basestring_ascii", None)
    if make is None or escape is None:
        return public

    def default(value: object) -> object:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    try:
        # (markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan)
        c_encode = make(None, default, escape, None, ": ", ", ", False, False, True)
        if "".join(c_encode({"a": [1, None, "é"]}, 0)) != public({"a": [1, None, "é"]}):
            return public
    except TypeError:  # a Python whose private signature changed
        return public

    return lambda value: "".join(c_encode(value, 0))


def save_plan(
    plan: Plan, path: str | os.PathLike[str], *, desired_digest: str | None = None
) -> None:
    """Write ``plan`` to ``path`` atomically, readable by its owner only (it lists
    every number in full), streamed: never whole in memory. ``desired_digest``, when
    given, is recorded instead of ``plan.desired_digest``."""
    if desired_digest is not None:
        plan.desired_digest = desired_digest
    with atomic_file(path, mode=0o600) as fh:
        write_plan_document(plan, lambda text: fh.write(text.encode("ascii")))
        fh.write(b"\n")


# -- reading ----------------------------------------------------------------------------------


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan file back into the exact ``Plan`` it was written from; a
    ``BlocklistError`` says why one cannot be used."""

    def refuse(why: str) -> BlocklistError:
        return BlocklistError(f"{path}: not a blocklist plan file ({why})")

    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise refuse("no such file") from None
    except OSError as e:
        raise refuse(f"cannot read it: {e.strerror or e}") from None
    try:
        head = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise refuse(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(head, dict) or "format_version" not in head:
        raise refuse("no format_version")
    version = head["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise refuse(f"format_version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise refuse(
            f"format version {version} is newer than this tool reads ({FORMAT_VERSION}); "
            "upgrade blocklist"
        )
    if version != FORMAT_VERSION:
        raise refuse(f"unknown format version {version}")
    if head.get("kind") != PLAN_KIND:
        raise refuse(f"kind is {head.get('kind')!r}, not {PLAN_KIND!r}")
    written_by = head.get("tool_version")
    if not isinstance(written_by, str):
        raise refuse("no tool_version")
    if _version_key(written_by) > _version_key(__version__):
        raise refuse(
            f"written by blocklist {written_by}, newer than this tool ({__version__}); "
            "upgrade blocklist or plan again"
        )
    if head.get("masked"):
        raise refuse("numbers are masked (written with --mask-numbers): it cannot be applied")
    try:
        doc = PlanDocument.model_validate(head)
    except ValidationError as exc:
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise refuse(f"malformed: {_describe(exc.errors(include_url=False)[0])}{more}") from None
    return plan_from_document(doc)


def _describe(err: dict[str, object]) -> str:
    """One validation error of the document, said plainly."""
    loc = tuple(err["loc"])  # type: ignore[arg-type]
    where = ".".join(str(p) for p in loc) or "document"
    value = err.get("input")
    kind = err["type"]
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:59] + "…"
    if kind == "missing":
        return f"missing {loc[-1]!r} (at {where})"
    if kind == "literal_error" and loc and loc[-1] == "action":
        return f"unknown action {shown} (at {where})"
    if kind == "string_type":
        return f"{where} {shown} is not a string"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{where} {shown} is not a number"
    if kind == "string_pattern_mismatch" and isinstance(value, str):
        zoned = value.endswith("Z") or "+" in value[10:]
        why = "is not an instant" if zoned else "has no time zone (write it with a trailing Z)"
        return f"{where} {shown} {why}"
    return f"{where}: {err['msg']}"


def _version_key(version: str) -> tuple[int, ...]:
    """``0.10.2rc1`` -> (0, 10, 2): the numeric release, enough to order our versions."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0].split("-")[0])[:3])


def plan_from_document(doc: PlanDocument) -> Plan:
    """The ``Plan`` a validated document describes."""
    parse = _InstantParser()
    return Plan(
        now=parse(doc.now),
        targets=[_target_from_document(t, parse) for t in doc.targets],
        desired_digest=doc.desired_digest,
        lineage=doc.lineage,
        serial=doc.serial,
        tool_version=doc.tool_version,
        configuration=doc.configuration,
        refreshed=doc.refreshed,
    )


def _target_from_document(t: TargetDocument, parse: _InstantParser) -> TargetPlan:
    from .domain import Target

    return TargetPlan(
        target=Target(t.name, t.provider, t.type, tuple(t.scope.items()), t.exclusive),
        live_readable=t.live_readable,
        changes=[
            Change(
                action=c.action,
                number=c.number,
                reason=c.reason,
                expires=parse(c.expires) if c.expires is not None else None,
                source=c.source or "",
                attrs=tuple((c.attrs or {}).items()),
                provider_ids=tuple(c.provider_ids or ()),
                before=tuple((x.attribute, x.from_) for x in c.changes)
                if c.changes is not None
                else None,
            )
            for c in t.changes
        ],
        existing=t.existing,
        fingerprint=t.fingerprint,
        forget=list(t.forget),
        unsafe_reasons=list(t.unsafe_reasons),
        warnings=list(t.warnings),
        opt_outs=frozenset(t.opt_outs),
    )


class _InstantParser:
    """``2027-03-01T00:00:00Z`` -> aware UTC datetime; cached (expiries repeat a lot)."""

    def __init__(self) -> None:
        self._cache: dict[str, dt.datetime] = {}

    def __call__(self, text: str) -> dt.datetime:
        value = self._cache.get(text)
        if value is None:
            value = self._cache[text] = dt.datetime.fromisoformat(text).astimezone(dt.UTC)
        return value
