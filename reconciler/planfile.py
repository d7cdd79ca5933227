"""The saved plan file (``plan --out FILE``, ``apply FILE``, ``show FILE``).

Owns the file: writing it atomically and reading it back into the exact
``Plan`` it was written from. Its content is the JSON plan of
``reconciler.render`` (format version, tool version, ``now``, desired digest,
state lineage and serial, per-target live fingerprint, every change), never
masked and ASCII-only. It holds plan data only: no configuration, so no
credential. Checking a loaded plan against fresh live state is apply's job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path

from . import __version__
from .domain import Target
from .errors import BlocklistError
from .plan import ACTIONS, FORMAT_VERSION, Change, Plan, TargetPlan
from .render import PLAN_KIND, dump_plan_dict, plan_to_dict


def save_plan(
    plan: Plan, path: str | os.PathLike[str], *, desired_digest: str | None = None
) -> None:
    """Write ``plan`` to ``path`` atomically (temp file in the same folder, then rename).

    ``desired_digest``, when given, is recorded instead of ``plan.desired_digest``.
    The file is readable by its owner only: it lists every number in full.
    """
    doc = plan_to_dict(plan, mask=False)
    if desired_digest is not None:
        doc["desired_digest"] = desired_digest
    text = dump_plan_dict(doc) + "\n"
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan file back into a ``Plan``; a ``BlocklistError`` says why one cannot be used."""

    def refuse(why: str) -> BlocklistError:
        return BlocklistError(f"{path}: not a blocklist plan file ({why})")

    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise refuse("no such file") from None
    except OSError as e:
        raise refuse(f"cannot read it: {e.strerror or e}") from None
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise refuse(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise refuse("no format_version")
    version = doc["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise refuse(f"format_version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise refuse(
            f"format version {version} is newer than this tool reads ({FORMAT_VERSION}); "
            "upgrade blocklist"
        )
    if version != FORMAT_VERSION:
        raise refuse(f"unknown format version {version}")
    if doc.get("kind") != PLAN_KIND:
        raise refuse(f"kind is {doc.get('kind')!r}, not {PLAN_KIND!r}")
    written_by = doc.get("tool_version")
    if not isinstance(written_by, str):
        raise refuse("no tool_version")
    if _version_key(written_by) > _version_key(__version__):
        raise refuse(
            f"written by blocklist {written_by}, newer than this tool ({__version__}); "
            "upgrade blocklist or plan again"
        )
    if doc.get("masked"):
        raise refuse("numbers are masked (written with --mask-numbers): it cannot be applied")
    try:
        return _plan_from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        detail = f"missing {e}" if isinstance(e, KeyError) else str(e)
        raise refuse(f"malformed: {detail}") from None


def _version_key(version: str) -> tuple[int, ...]:
    """``0.10.2rc1`` -> (0, 10, 2): the numeric release, enough to order our versions."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0].split("-")[0])[:3])


def _plan_from_dict(doc: dict[str, object]) -> Plan:
    parse = _InstantParser()
    targets = doc["targets"]
    if not isinstance(targets, list):
        raise TypeError("targets is not a list")
    serial = doc.get("serial")
    if serial is not None and (not isinstance(serial, int) or isinstance(serial, bool)):
        raise TypeError(f"serial {serial!r} is not a number")
    return Plan(
        now=parse.required(doc["now"]),
        targets=[_target_from_dict(t, parse) for t in targets],
        desired_digest=_str(doc.get("desired_digest") or "", "desired_digest"),
        lineage=_opt_str(doc.get("lineage"), "lineage"),
        serial=serial,
        tool_version=_str(doc["tool_version"], "tool_version"),
    )


def _target_from_dict(d: dict[str, object], parse: _InstantParser) -> TargetPlan:
    scope = d.get("scope") or {}
    if not isinstance(scope, dict):
        raise TypeError("scope is not an object")
    target = Target(
        name=_str(d["name"], "target name"),
        provider=_str(d["provider"], "provider"),
        type=_str(d["type"], "type"),
        scope=tuple((_str(k, "scope"), _str(v, "scope")) for k, v in scope.items()),
        exclusive=bool(d.get("exclusive", False)),
    )
    existing = d["existing"]
    if not isinstance(existing, int) or isinstance(existing, bool):
        raise TypeError(f"existing {existing!r} is not a number")
    return TargetPlan(
        target=target,
        live_readable=bool(d["live_readable"]),
        changes=[_change_from_dict(c, parse) for c in d["changes"]],  # type: ignore[attr-defined]
        existing=existing,
        fingerprint=_str(d["fingerprint"], "fingerprint"),
        forget=[_str(n, "forget") for n in d.get("forget") or []],  # type: ignore[attr-defined]
        unsafe_reasons=[_str(r, "unsafe_reasons") for r in d.get("unsafe_reasons") or []],  # type: ignore[attr-defined]
        warnings=[_str(w, "warnings") for w in d.get("warnings") or []],  # type: ignore[attr-defined]
        opt_outs=frozenset(_str(n, "opt_outs") for n in d.get("opt_outs") or []),  # type: ignore[attr-defined]
    )


def _change_from_dict(d: dict[str, object], parse: _InstantParser) -> Change:
    action = d["action"]
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    attrs = d.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise TypeError("attrs is not an object")
    before = None
    if "changes" in d:
        before = tuple(
            (_str(x["attribute"], "attribute"), _opt_str(x["from"], "from"))
            for x in d["changes"]  # type: ignore[attr-defined]
        )
    return Change(
        action=action,  # type: ignore[arg-type]
        number=_str(d["number"], "number"),
        reason=_opt_str(d.get("reason"), "reason"),
        expires=parse.optional(d.get("expires")),
        source=_opt_str(d.get("source"), "source") or "",
        attrs=tuple((_str(k, "attrs"), _str(v, "attrs")) for k, v in attrs.items()),
        provider_id=_opt_str(d.get("provider_id"), "provider_id"),
        before=before,
    )


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} {value!r} is not a string")
    return value


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


class _InstantParser:
    """``2027-03-01T00:00:00Z`` -> aware UTC datetime; cached (expiries repeat a lot)."""

    def __init__(self) -> None:
        self._cache: dict[str, dt.datetime] = {}

    def required(self, text: object) -> dt.datetime:
        if not isinstance(text, str):
            raise TypeError(f"instant {text!r} is not a string")
        value = self._cache.get(text)
        if value is None:
            parsed = dt.datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                raise ValueError(f"instant {text!r} has no time zone")
            value = self._cache[text] = parsed.astimezone(dt.UTC)
        return value

    def optional(self, text: object) -> dt.datetime | None:
        return None if text is None else self.required(text)
