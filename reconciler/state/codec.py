"""One encoding of state, shared by the backends: entries as table rows and as JSON,
the export document, audit records.

So an export from SQLite imports into PostgreSQL unchanged, and a row read from
either backend becomes the same ``ManagedEntry``. Pure functions; no I/O.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..domain import Applied, ManagedEntry
from ..errors import LockError, StateError
from ..gcpause import paused_gc
from .base import EXPORT_FORMAT_VERSION, SCHEMA_VERSION, LockInfo


@functools.lru_cache(maxsize=4096)
def encode_expires(expires: datetime | None) -> str | None:
    """ISO 8601 text in UTC (``2027-03-01T00:00:00+00:00``); a naive datetime counts as UTC."""
    if expires is None:
        return None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires.astimezone(UTC).isoformat()


def decode_expires(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def encode_attrs(attrs: tuple[tuple[str, str], ...]) -> str | None:
    """A JSON object with sorted keys, or None when there are no attributes."""
    pairs = dict(attrs)
    if not pairs:
        return None
    return json.dumps(pairs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode_attrs(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    return tuple(sorted(json.loads(text).items()))


def encode_ids(ids: tuple[str, ...]) -> str | None:
    """A number's provider ids as one column, joined by "," (the only provider that
    removes by id gives integer ids); None when there is none."""
    return ",".join(ids) or None


def decode_ids(text: str | None) -> tuple[str, ...]:
    return tuple(p for p in (text or "").split(",") if p)


#: the columns of an entry row, in the order of ``entry_columns``
ENTRY_COLUMNS = (
    "number",
    "expires",
    "reason",
    "attrs",
    "provider_id",
    "source",
    "pending",
    "first_applied",
    "last_applied",
    "applied_by",
    "applied_commit",
)


def entry_columns(entry: ManagedEntry) -> tuple[Any, ...]:
    """The values of ``ENTRY_COLUMNS`` as stored."""
    applied, attrs, ids = entry.applied, entry.attrs, entry.provider_ids
    return (
        entry.number,
        encode_expires(entry.expires),
        entry.reason,
        encode_attrs(tuple(attrs)) if attrs else None,
        encode_ids(ids) if ids else None,
        entry.source or "",
        entry.pending,
        encode_expires(applied.first) if applied else None,
        encode_expires(applied.last) if applied else None,
        applied.by if applied else None,
        applied.commit if applied else None,
    )


def entries_from_rows(rows: Iterable[tuple[Any, ...]]) -> dict[str, ManagedEntry]:
    """Build entries from rows of ``ENTRY_COLUMNS``.

    Expiries and attribute sets repeat across thousands of rows, so each distinct
    text is decoded once. A million new objects would set off the cyclic garbage
    collector again and again (a third of the time on 3.11) while none of them can
    be garbage yet, so it is paused while they are built.
    """
    expires_cache: dict[Any, datetime | None] = {None: None}
    attrs_cache: dict[Any, tuple[tuple[str, str], ...]] = {None: ()}
    applied_cache: dict[tuple[Any, ...], Applied | None] = {(None, None, None, None): None}
    out: dict[str, ManagedEntry] = {}
    with paused_gc():
        for row in rows:
            number, expires, reason, attrs, provider_id, source, pending = row[:7]
            history = tuple(row[7:11])
            try:
                applied = applied_cache[history]
            except KeyError:
                first, last, by, commit = history
                applied = applied_cache[history] = Applied(
                    _decode_expires_any(first) or _decode_expires_any(last),  # type: ignore[arg-type]
                    _decode_expires_any(last) or _decode_expires_any(first),  # type: ignore[arg-type]
                    by,
                    commit,
                )
            try:
                when = expires_cache[expires]
            except KeyError:
                when = expires_cache[expires] = _decode_expires_any(expires)
            try:
                pairs = attrs_cache[attrs]
            except KeyError:
                pairs = attrs_cache[attrs] = _decode_attrs_any(attrs)
            ids = decode_ids(provider_id) if provider_id else ()
            out[number] = ManagedEntry(number, when, reason, pairs, ids, source, pending, applied)
    return out


def _decode_expires_any(value: Any) -> datetime | None:
    if isinstance(value, datetime):  # PostgreSQL timestamptz
        return value.astimezone(UTC)
    return decode_expires(value)


def _decode_attrs_any(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):  # PostgreSQL jsonb
        return tuple(sorted(value.items()))
    return decode_attrs(value)


def entry_to_json(entry: ManagedEntry) -> dict[str, Any]:
    out = {
        "number": entry.number,
        "expires": encode_expires(entry.expires),
        "reason": entry.reason,
        "attrs": dict(entry.attrs),
        "provider_ids": list(entry.provider_ids),
        "source": entry.source or "",
    }
    if entry.pending is not None:
        out["pending"] = entry.pending
    if entry.applied is not None:
        out["applied"] = {
            "first": encode_expires(entry.applied.first),
            "last": encode_expires(entry.applied.last),
            "by": entry.applied.by,
            "commit": entry.applied.commit,
        }
    return out


def build_export(
    lineage: str,
    serial: int,
    targets: Mapping[str, tuple[Mapping[str, str], Iterable[ManagedEntry]]],
) -> dict[str, Any]:
    """The export document (see ``StateBackend.export_state``); entries sorted by number."""
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "lineage": lineage,
        "serial": serial,
        "schema_version": SCHEMA_VERSION,
        "targets": {
            name: {
                "meta": dict(sorted(meta.items())),
                "entries": [entry_to_json(e) for e in sorted(entries, key=lambda e: e.number)],
            }
            for name, (meta, entries) in sorted(targets.items())
        },
    }


@dataclass(frozen=True)
class ParsedExport:
    lineage: str
    serial: int
    targets: dict[str, tuple[dict[str, str], list[ManagedEntry]]]


def parse_export(data: Any) -> ParsedExport:
    """Check an export document and turn it into entries; ``StateError`` names what is wrong."""
    if not isinstance(data, Mapping):
        raise StateError("not a state export (expected a JSON object)")
    if "format_version" not in data or "targets" not in data:
        raise StateError("not a state export (no format_version/targets)")
    version = data["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError(f"not a state export (format_version {version!r})")
    if version > EXPORT_FORMAT_VERSION:
        raise StateError(
            f"state export format {version} is newer than this tool understands "
            f"({EXPORT_FORMAT_VERSION}); upgrade blocklist"
        )
    if version != EXPORT_FORMAT_VERSION:
        raise StateError(f"unsupported state export format {version}")
    lineage = data.get("lineage")
    if not isinstance(lineage, str) or not lineage:
        raise StateError("state export has no lineage")
    serial = data.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise StateError(f"state export has an invalid serial {serial!r}")
    raw_targets = data["targets"]
    if not isinstance(raw_targets, Mapping):
        raise StateError("state export: targets must be an object")
    targets: dict[str, tuple[dict[str, str], list[ManagedEntry]]] = {}
    for name, body in raw_targets.items():
        where = f"targets[{name!r}]"
        if not isinstance(body, Mapping):
            raise StateError(f"state export: {where} must be an object")
        meta = body.get("meta", {})
        if not isinstance(meta, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise StateError(f"state export: {where}.meta must map strings to strings")
        raw_entries = body.get("entries", [])
        if not isinstance(raw_entries, list):
            raise StateError(f"state export: {where}.entries must be a list")
        entries: list[ManagedEntry] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_entries):
            entry = _entry_from_json(raw, f"{where}.entries[{i}]")
            if entry.number in seen:
                raise StateError(f"state export: {where} lists {entry.number} twice")
            seen.add(entry.number)
            entries.append(entry)
        targets[name] = (dict(meta), entries)
    return ParsedExport(lineage=lineage, serial=serial, targets=targets)


def _entry_from_json(raw: Any, where: str) -> ManagedEntry:
    if not isinstance(raw, Mapping):
        raise StateError(f"state export: {where} must be an object")
    unknown = set(raw) - {*ENTRY_COLUMNS[:7], "provider_ids", "applied"}
    if unknown:
        raise StateError(f"state export: {where} has unknown keys {sorted(unknown)}")
    number = raw.get("number")
    if not isinstance(number, str) or not number:
        raise StateError(f"state export: {where} has no number")
    expires_text = raw.get("expires")
    try:
        if expires_text is not None and not isinstance(expires_text, str):
            raise ValueError(expires_text)
        expires = decode_expires(expires_text)
    except ValueError:
        raise StateError(f"state export: {where}.expires {expires_text!r} is not a date") from None
    attrs = raw.get("attrs") or {}
    if not isinstance(attrs, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
    ):
        raise StateError(f"state export: {where}.attrs must map strings to strings")
    for key in ("reason", "provider_id", "source", "pending"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise StateError(f"state export: {where}.{key} must be a string")
    ids = raw.get("provider_ids")
    if ids is None:  # an export written before ids became a list: one comma-joined string
        ids = list(decode_ids(raw.get("provider_id")))
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise StateError(f"state export: {where}.provider_ids must be a list of strings")
    return ManagedEntry(
        number=number,
        expires=expires,
        reason=raw.get("reason"),
        attrs=tuple(sorted(attrs.items())),
        provider_ids=tuple(ids),
        source=raw.get("source") or "",
        pending=raw.get("pending"),
        applied=_applied_from_json(raw.get("applied"), where),
    )


def _applied_from_json(raw: Any, where: str) -> Applied | None:
    if raw is None:
        return None
    try:
        first, last = decode_expires(raw["first"]), decode_expires(raw["last"])
        by, commit = raw.get("by"), raw.get("commit")
        if (
            first is None
            or last is None
            or not all(v is None or isinstance(v, str) for v in (by, commit))
        ):
            raise ValueError(raw)
    except (KeyError, TypeError, ValueError):
        raise StateError(f"state export: {where}.applied is not a valid record") from None
    return Applied(first, last, by, commit)


def lock_error(holder: LockInfo) -> LockError:
    """The error a second runner gets; ``.holder`` carries who has the lock."""
    error = LockError(f"state is locked by {holder.describe()}")
    error.holder = holder  # type: ignore[attr-defined]
    return error


def audit_json(record: Mapping[str, Any]) -> str:
    """One audit record as compact JSON (datetimes and other values via ``str``)."""
    try:
        return json.dumps(dict(record), sort_keys=True, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StateError(f"audit record is not JSON-serialisable: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
