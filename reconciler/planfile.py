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
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import __version__
from .atomic import write_atomic
from .errors import BlocklistError
from .expiry import iso
from .plan import ACTIONS, Change, Plan, TargetPlan
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
    """The plan document as plain data (what ``PlanDocument`` validates)."""
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
        "targets": [_target_dict(tp, mask) for tp in plan.targets],
    }


def _target_dict(tp: TargetPlan, mask: bool) -> dict[str, object]:
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
        "changes": [change_dict(c, mask) for c in tp.changes],
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
    return "".join(_document_chunks(plan_to_dict(plan, mask=mask)))


def _document_chunks(doc: dict[str, object]) -> Iterator[str]:
    """Objects indented by two spaces, except changes: one compact object per line.

    ``json.dumps(indent=2)`` runs in pure Python (≈8-12 s for 1 M changes); the change
    lines here take ≈1.2 s."""
    encode = _compact_encoder()

    def obj(d: dict[str, object], pad: str) -> Iterator[str]:
        inner = pad + "  "
        yield "{\n"
        for i, (key, value) in enumerate(d.items()):
            if i:
                yield ",\n"
            yield f"{inner}{encode(key)}: "
            if key == "targets" and isinstance(value, list) and value:
                yield "[\n"
                for j, t in enumerate(value):
                    yield (",\n" if j else "") + inner + "  "
                    yield from obj(t, inner + "  ")
                yield f"\n{inner}]"
            elif key == "changes" and isinstance(value, list) and value:
                yield "[\n"
                yield ",\n".join(inner + "  " + encode(c) for c in value)
                yield f"\n{inner}]"
            else:
                yield encode(value)
        yield f"\n{pad}}}"

    yield from obj(doc, "")


def _compact_encoder() -> Callable[[object], str]:
    """``json.dumps`` with default settings, minus its per-call set-up.

    ``JSONEncoder.encode`` builds a fresh C encoder on every call (≈3 s for 1 M changes);
    one C encoder built once (``json.encoder.c_make_encoder``, what ``encode`` itself
    uses) does the same in ≈1.2 s. Falls back to the public API where it is missing.
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
    every number in full). ``desired_digest``, when given, is recorded instead of
    ``plan.desired_digest``."""
    if desired_digest is not None:
        plan.desired_digest = desired_digest
    text = plan_document_text(plan, mask=False) + "\n"
    write_atomic(path, text, encoding="ascii", mode=0o600)


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
