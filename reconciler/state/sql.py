"""What the two SQL state backends share: one schema, and every query on it.

Both backends keep the same tables with the same columns (``blocklist_meta``,
``blocklist_entries``, ``blocklist_target_meta``, ``blocklist_lock``), differing
only in column types (SQLite text where PostgreSQL has ``timestamptz`` and
``jsonb``). This base owns identity, reading, recording batches, forgetting,
pending removes and moving state; a backend supplies its connection, its
transactions, its lock and its audit log, plus the few statements where the two
dialects differ (bulk upserts and inserts). It knows nothing of providers or plans.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from ..domain import ManagedEntry
from .base import BatchRecord, StateBackend
from .codec import ENTRY_COLUMNS, build_export, entries_from_rows, entry_columns, parse_export

META = "blocklist_meta"
ENTRIES = "blocklist_entries"
TARGET_META = "blocklist_target_meta"
LOCK = "blocklist_lock"

# Statements on hot paths, written with "?" placeholders (``SqlState.q`` adapts them).
BUMP_SERIAL = f"UPDATE {META} SET serial = serial + 1 WHERE id = 1"
BUMP_SERIAL_BY = f"UPDATE {META} SET serial = serial + ? WHERE id = 1"
DELETE_ENTRY = f"DELETE FROM {ENTRIES} WHERE target = ? AND number = ?"
MARK_PENDING = f"UPDATE {ENTRIES} SET pending = ? WHERE target = ? AND number = ?"
UPSERT_META = f"""INSERT INTO {TARGET_META} (target, key, value) VALUES (?, ?, ?)
    ON CONFLICT (target, key) DO UPDATE SET value = excluded.value"""
# Distinct targets by skipping through the primary key (one probe per target, not a scan).
LIST_TARGETS = f"""WITH RECURSIVE t(name) AS (
        SELECT (SELECT min(target) FROM {ENTRIES})
        UNION ALL
        SELECT (SELECT min(target) FROM {ENTRIES} WHERE target > t.name) FROM t
        WHERE t.name IS NOT NULL)
    SELECT name FROM t WHERE name IS NOT NULL
    UNION SELECT target FROM {TARGET_META}
    ORDER BY 1"""


def entry_select(attrs: str = "attrs") -> str:
    """The entry columns in ``ENTRY_COLUMNS`` order (``attrs`` as the backend reads it)."""
    return ", ".join(attrs if c == "attrs" else c for c in ENTRY_COLUMNS)


class SqlState(StateBackend):
    """The shared half of a SQL backend (see the module docstring)."""

    #: the driver's placeholder ("?" for sqlite3, "%s" for psycopg)
    placeholder: ClassVar[str] = "?"
    #: how ``attrs`` is selected so that equal values decode once (text, not a dict)
    attrs_read: ClassVar[str] = "attrs"

    # -- what a backend supplies ----------------------------------------------------------

    @abc.abstractmethod
    def _write(self, doing: str) -> AbstractContextManager[Any]:
        """A connection inside one write transaction; a driver error becomes StateError
        naming ``doing``."""

    @abc.abstractmethod
    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """All rows of one query (``sql`` already adapted)."""

    @abc.abstractmethod
    def _rows(self, sql: str, params: tuple[Any, ...]) -> AbstractContextManager[Iterable[Any]]:
        """The rows of one query as they stream in (for a target of a million entries)."""

    @abc.abstractmethod
    def _snapshot(self) -> AbstractContextManager[Any]:
        """A connection inside one consistent, read-only snapshot."""

    @abc.abstractmethod
    def _upsert_entries(self, conn: Any, target: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert or replace rows of ``entry_columns`` for ``target``."""

    @abc.abstractmethod
    def _delete_entries(self, conn: Any, target: str, numbers: list[str]) -> int:
        """Delete these numbers of ``target``; how many rows went."""

    def _insert_all(self, conn: Any, rows: Iterator[tuple[Any, ...]]) -> None:
        """Insert (target, *entry_columns) rows into an empty table (import)."""
        columns = ", ".join(("target", *ENTRY_COLUMNS))
        marks = ", ".join("?" * (len(ENTRY_COLUMNS) + 1))
        self._executemany(conn, f"INSERT INTO {ENTRIES} ({columns}) VALUES ({marks})", rows)

    def _executemany(self, conn: Any, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        conn.executemany(self.q(sql), list(rows))

    def q(self, sql: str) -> str:
        """``sql`` with this driver's placeholder."""
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    # -- identity ---------------------------------------------------------------------

    def lineage(self) -> str:
        return str(self._read(f"SELECT lineage FROM {META} WHERE id = 1")[0][0])

    def serial(self) -> int:
        return int(self._read(f"SELECT serial FROM {META} WHERE id = 1")[0][0])

    def configuration(self) -> str | None:
        """The identity of the configuration this state belongs to (None: not claimed)."""
        return self._read(f"SELECT configuration FROM {META} WHERE id = 1")[0][0]

    def claim_configuration(self, identity: str) -> None:
        """Record which configuration this state belongs to (see ``StateBackend``)."""
        with self._write("recording the configuration") as conn:
            conn.execute(self.q(f"UPDATE {META} SET configuration = ? WHERE id = 1"), (identity,))

    # -- reading ----------------------------------------------------------------------

    def read_target(self, target: str) -> dict[str, ManagedEntry]:
        sql = f"SELECT {entry_select(self.attrs_read)} FROM {ENTRIES} WHERE target = ?"
        with self._rows(self.q(sql), (target,)) as rows:
            return entries_from_rows(rows)

    def targets(self) -> list[str]:
        return sorted(row[0] for row in self._read(LIST_TARGETS))

    def target_meta(self, target: str) -> dict[str, str]:
        rows = self._read(
            self.q(f"SELECT key, value FROM {TARGET_META} WHERE target = ?"), (target,)
        )
        return dict(sorted(rows))

    def find_number(self, number: str) -> list[tuple[str, ManagedEntry]]:
        sql = f"SELECT target, {entry_select(self.attrs_read)} FROM {ENTRIES} WHERE number = ?"
        rows = sorted(self._read(self.q(sql), (number,)), key=lambda row: row[0])
        return [(row[0], next(iter(entries_from_rows([row[1:]]).values()))) for row in rows]

    # -- writing ----------------------------------------------------------------------

    def record_batch(
        self,
        target: str,
        upserts: Iterable[ManagedEntry] = (),
        deletes: Iterable[str] = (),
        meta: Mapping[str, str] | None = None,
        *,
        pending: Mapping[str, str] | None = None,
    ) -> None:
        """Upserts, deletes, metadata, pending marks, then serial += 1: all or nothing."""
        self.record_batches([BatchRecord(target, tuple(upserts), tuple(deletes), meta, pending)])

    def record_batches(self, records: Sequence[BatchRecord]) -> None:
        """Each batch's upserts, deletes, metadata and pending marks in order, then
        serial += the number of batches: one transaction, all or nothing (a batch is
        never recorded in part)."""
        if not records:
            return
        rows = [_batch_rows(r) for r in records]
        with self._write("recording a batch") as conn:
            for target, upserts, deletes, meta_rows, pending_rows in rows:
                if upserts:
                    self._upsert_entries(conn, target, upserts)
                if deletes:
                    self._delete_entries(conn, target, deletes)
                if meta_rows:
                    self._executemany(conn, UPSERT_META, meta_rows)
                if pending_rows:
                    self._executemany(conn, MARK_PENDING, pending_rows)
            if len(records) == 1:
                conn.execute(BUMP_SERIAL)
            else:
                conn.execute(self.q(BUMP_SERIAL_BY), (len(records),))

    def forget(self, target: str, number: str) -> bool:
        """Serial += 1 only when something was forgotten (nothing changed otherwise)."""
        with self._write("forgetting a number") as conn:
            removed = self._delete_entries(conn, target, [number]) > 0
            if removed:
                conn.execute(BUMP_SERIAL)
        return removed

    def move_target(self, source: str, destination: str) -> int:
        """Give ``source``'s entries and metadata to ``destination`` (``state mv``)."""
        with self._write("moving a target") as conn:
            (count,) = conn.execute(
                self.q(f"SELECT count(*) FROM {ENTRIES} WHERE target = ?"), (source,)
            ).fetchone()
            for table in (ENTRIES, TARGET_META):
                conn.execute(
                    self.q(f"UPDATE {table} SET target = ? WHERE target = ?"),
                    (destination, source),
                )
            conn.execute(BUMP_SERIAL)
        return int(count)

    # -- moving state -----------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        select = self.q(f"SELECT {entry_select(self.attrs_read)} FROM {ENTRIES} WHERE target = ?")
        with self._snapshot() as conn:
            lineage, serial = conn.execute(
                f"SELECT lineage, serial FROM {META} WHERE id = 1"
            ).fetchone()
            targets: dict[str, tuple[dict[str, str], list[ManagedEntry]]] = {}
            for (name,) in conn.execute(LIST_TARGETS).fetchall():
                meta = dict(
                    conn.execute(
                        self.q(f"SELECT key, value FROM {TARGET_META} WHERE target = ?"), (name,)
                    ).fetchall()
                )
                entries = entries_from_rows(conn.execute(select, (name,)).fetchall())
                targets[name] = (meta, list(entries.values()))
        return build_export(lineage, int(serial), targets)

    def import_state(self, data: Mapping[str, Any]) -> None:
        parsed = parse_export(data)
        with self._write("importing") as conn:
            (own_serial,) = conn.execute(f"SELECT serial FROM {META} WHERE id = 1").fetchone()
            conn.execute(f"DELETE FROM {ENTRIES}")
            conn.execute(f"DELETE FROM {TARGET_META}")
            meta_rows = [
                (name, key, value)
                for name, (meta, _) in parsed.targets.items()
                for key, value in meta.items()
            ]
            if meta_rows:
                self._executemany(conn, UPSERT_META, meta_rows)
            self._insert_all(
                conn,
                (
                    (name, *entry_columns(e))
                    for name, (_, entries) in parsed.targets.items()
                    for e in entries
                ),
            )
            conn.execute(
                self.q(f"UPDATE {META} SET lineage = ?, serial = ? WHERE id = 1"),
                (parsed.lineage, max(int(own_serial), parsed.serial) + 1),
            )


def _batch_rows(r: BatchRecord) -> tuple[str, list[tuple[Any, ...]], list[str], list, list]:
    """One batch as the rows its statements take (encoded before the transaction)."""
    by_number = {e.number: entry_columns(e) for e in r.upserts}  # the last one wins
    meta_rows = [(r.target, k, v) for k, v in (r.meta or {}).items()]
    pending_rows = [(why, r.target, number) for number, why in (r.pending or {}).items()]
    return r.target, list(by_number.values()), list(r.deletes), meta_rows, pending_rows
