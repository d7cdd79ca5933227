"""Opening a state backend, and what every backend shares.

This package owns the choice of backend (``open_state``), who is taking the
apply lock (``current_lock_info``), moving state through a JSON file
(``export_to_file`` / ``import_from_file``) and the one encoding of a
``ManagedEntry`` as table columns and as JSON that both backends use, so an
export from SQLite imports into PostgreSQL unchanged. It never talks to a
provider and never decides what to apply. The backends themselves live in
``sqlite.py`` and ``postgres.py`` and are imported only when opened.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..domain import ManagedEntry
from ..errors import LockError, StateError
from .base import EXPORT_FORMAT_VERSION, SCHEMA_VERSION, LockInfo, StateBackend

if TYPE_CHECKING:  # pragma: no cover
    from .postgres import PostgresState
    from .sqlite import SqliteState

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "EXPORT_FORMAT_VERSION",
    "SCHEMA_VERSION",
    "LockInfo",
    "PostgresState",
    "SqliteState",
    "StateBackend",
    "current_lock_info",
    "export_to_file",
    "import_from_file",
    "open_state",
]

DEFAULT_SQLITE_PATH = Path(".blocklist/state.db")
BACKENDS = ("sqlite", "postgres")


def open_state(
    backend: str,
    *,
    path: str | Path | None = None,
    dsn: str | None = None,
    create: bool = True,
) -> StateBackend:
    """Open (and, with ``create``, create or migrate) the state of ``backend``.

    ``path`` is the SQLite file (default ``.blocklist/state.db``); ``dsn`` the
    PostgreSQL connection string. Raises ``StateError`` when the state is missing
    (``create=False``), corrupt, too new for this tool or unreachable.
    """
    if backend == "sqlite":
        from .sqlite import SqliteState

        return SqliteState(DEFAULT_SQLITE_PATH if path is None else path, create=create)
    if backend == "postgres":
        if not dsn:
            raise StateError("the postgres state backend needs a DSN (state.dsn)")
        from .postgres import PostgresState

        return PostgresState(dsn, create=create)
    raise StateError(f"unknown state backend {backend!r} (expected one of: {', '.join(BACKENDS)})")


def __getattr__(name: str) -> Any:
    # Lazy re-exports: importing the package must not import psycopg.
    if name == "SqliteState":
        from .sqlite import SqliteState

        return SqliteState
    if name == "PostgresState":
        from .postgres import PostgresState

        return PostgresState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def current_lock_info(operation: str = "apply") -> LockInfo:
    """Who is running: actor from ``GITHUB_ACTOR`` or ``USER``, this host and pid, now."""
    actor = os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown"
    return LockInfo(
        actor=actor,
        host=socket.gethostname(),
        pid=os.getpid(),
        since=datetime.now(UTC),
        operation=operation,
    )


# -- moving state through a file ---------------------------------------------------------


def export_to_file(backend: StateBackend, path: str | Path) -> None:
    """Write ``backend.export_state()`` to ``path`` as pretty JSON with sorted keys.

    The file is written beside its final name and renamed into place, so an
    interrupted export never leaves a half-written file under that name.
    """
    target = Path(path)
    data = backend.export_state()
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except OSError as exc:
        raise StateError(f"cannot write state export {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise StateError(f"cannot write state export {target}: {exc.strerror or exc}") from exc


def import_from_file(backend: StateBackend, path: str | Path) -> None:
    """Replace ``backend``'s state with the export in ``path`` (keeps its lineage)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateError(f"no state export at {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read state export {source}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{source} is not a state export: invalid JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    try:
        parse_export(data)  # fail before touching the backend
    except StateError as exc:
        raise StateError(f"{source}: {exc}") from None
    backend.import_state(data)


# -- one encoding of an entry, shared by the backends ------------------------------------


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


def entry_columns(entry: ManagedEntry) -> tuple[Any, ...]:
    """(number, expires, reason, attrs, provider_id, source) as stored in a table."""
    return (
        entry.number,
        encode_expires(entry.expires),
        entry.reason,
        encode_attrs(tuple(entry.attrs)),
        entry.provider_id,
        entry.source or "",
    )


def entries_from_rows(rows: Iterable[tuple[Any, ...]]) -> dict[str, ManagedEntry]:
    """Build entries from (number, expires, reason, attrs, provider_id, source) rows.

    Expiries and attribute sets repeat across thousands of rows, so each distinct
    text is decoded once. A million new objects would set off the cyclic garbage
    collector again and again (a third of the time on 3.11) while none of them can
    be garbage yet, so it is paused while they are built.
    """
    expires_cache: dict[Any, datetime | None] = {None: None}
    attrs_cache: dict[Any, tuple[tuple[str, str], ...]] = {None: ()}
    out: dict[str, ManagedEntry] = {}
    with _gc_paused():
        for number, expires, reason, attrs, provider_id, source in rows:
            try:
                when = expires_cache[expires]
            except KeyError:
                when = expires_cache[expires] = _decode_expires_any(expires)
            try:
                pairs = attrs_cache[attrs]
            except KeyError:
                pairs = attrs_cache[attrs] = _decode_attrs_any(attrs)
            out[number] = ManagedEntry(number, when, reason, pairs, provider_id, source)
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode_expires_any(value: Any) -> datetime | None:
    if isinstance(value, datetime):  # PostgreSQL timestamptz
        return value.astimezone(UTC)
    return decode_expires(value)


def _decode_attrs_any(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):  # PostgreSQL jsonb
        return tuple(sorted(value.items()))
    return decode_attrs(value)


def entry_to_json(entry: ManagedEntry) -> dict[str, Any]:
    return {
        "number": entry.number,
        "expires": encode_expires(entry.expires),
        "reason": entry.reason,
        "attrs": dict(entry.attrs),
        "provider_id": entry.provider_id,
        "source": entry.source or "",
    }


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
    unknown = set(raw) - {"number", "expires", "reason", "attrs", "provider_id", "source"}
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
    for key in ("reason", "provider_id", "source"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise StateError(f"state export: {where}.{key} must be a string")
    return ManagedEntry(
        number=number,
        expires=expires,
        reason=raw.get("reason"),
        attrs=tuple(sorted(attrs.items())),
        provider_id=raw.get("provider_id"),
        source=raw.get("source") or "",
    )


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
