"""The default state backend: one SQLite file plus ``audit.log.jsonl`` beside it.

Owns the on-disk format of local state: the schema and its migrations, crash
safety (WAL with ``synchronous=NORMAL``, one ``BEGIN IMMEDIATE`` transaction per
recorded batch, so a killed process loses at most the batch in flight; a power
cut may also lose the last few commits, which the next plan sees again as live
entries to adopt, since every write is idempotent), the lock row and the audit log file. Every write touches only the rows
it names through the primary key, so its cost does not grow with the state.

It never deletes, replaces or "repairs" a file it cannot read: a foreign or
corrupt file is reported (``StateError`` naming the path) and left exactly as
it was. It knows nothing of providers or plans.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StateError
from .base import SCHEMA_VERSION, LockInfo
from .codec import audit_json, lock_error
from .sql import BUMP_SERIAL, DELETE_ENTRY, ENTRIES, LOCK, META, TARGET_META, SqlState, entry_select

log = logging.getLogger("blocklist.state")

AUDIT_FILE_NAME = "audit.log.jsonl"
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 0.5  # lock polling with a timeout

# Schema migrations by the version they lead to; run in order, each in the same
# transaction as the version bump. Version 1 created everything under short names;
# version 2 gives the tables the names they have in PostgreSQL (one schema), adds
# pending removes and the configuration a state belongs to.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE meta (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            lineage TEXT NOT NULL,
            serial INTEGER NOT NULL,
            schema_version INTEGER NOT NULL)""",
        """CREATE TABLE entries (
            target TEXT NOT NULL,
            number TEXT NOT NULL,
            expires TEXT,            -- ISO 8601, UTC; NULL = never
            reason TEXT,
            attrs TEXT,              -- JSON object, sorted keys; NULL = none
            provider_id TEXT,
            source TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (target, number)) WITHOUT ROWID""",
        "CREATE INDEX entries_by_number ON entries (number)",
        """CREATE TABLE target_meta (
            target TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (target, key)) WITHOUT ROWID""",
        """CREATE TABLE lock (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            actor TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            since TEXT NOT NULL,
            operation TEXT NOT NULL,
            token TEXT NOT NULL)""",
    ),
    2: (
        f"ALTER TABLE meta RENAME TO {META}",
        f"ALTER TABLE entries RENAME TO {ENTRIES}",
        f"ALTER TABLE target_meta RENAME TO {TARGET_META}",
        f"ALTER TABLE lock RENAME TO {LOCK}",
        "DROP INDEX entries_by_number",
        f"CREATE INDEX blocklist_entries_by_number ON {ENTRIES} (number)",
        f"ALTER TABLE {ENTRIES} ADD COLUMN pending TEXT",  # why the last remove failed
        f"ALTER TABLE {META} ADD COLUMN configuration TEXT",
    ),
    3: (  # when and by whom each number was recorded (blocklist why)
        f"ALTER TABLE {ENTRIES} ADD COLUMN first_applied TEXT",
        f"ALTER TABLE {ENTRIES} ADD COLUMN last_applied TEXT",
        f"ALTER TABLE {ENTRIES} ADD COLUMN applied_by TEXT",
        f"ALTER TABLE {ENTRIES} ADD COLUMN applied_commit TEXT",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION, "add a migration for the new SCHEMA_VERSION"

# Statements on hot paths, named so a test can check their query plans (no scans).
UPSERT_ENTRY = f"""INSERT INTO {ENTRIES}
        (target, number, expires, reason, attrs, provider_id, source, pending,
         first_applied, last_applied, applied_by, applied_commit)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (target, number) DO UPDATE SET
        expires = excluded.expires, reason = excluded.reason, attrs = excluded.attrs,
        provider_id = excluded.provider_id, source = excluded.source,
        pending = excluded.pending,
        first_applied = coalesce({ENTRIES}.first_applied, excluded.first_applied),
        last_applied = excluded.last_applied, applied_by = excluded.applied_by,
        applied_commit = excluded.applied_commit"""
_ROW = "(" + ", ".join(["?"] * 12) + ")"
_UPSERT_HEAD, _UPSERT_TAIL = UPSERT_ENTRY.split(f"VALUES {_ROW}")
#: rows per multi-row statement (12 variables a row; SQLite allows 32 766 a statement)
ROWS_PER_STATEMENT = 500


@functools.lru_cache(maxsize=64)
def upsert_entries(count: int) -> str:
    """``UPSERT_ENTRY`` for ``count`` rows in one statement: one step for the batch, so
    SQLite works with the GIL released once (``executemany`` releases and takes it
    again row by row, and the event loop's thread waits for it each time), and about a
    quarter less CPU than ``executemany`` for 100 rows."""
    return f"{_UPSERT_HEAD}VALUES {', '.join([_ROW] * count)}{_UPSERT_TAIL}"


@functools.lru_cache(maxsize=64)
def delete_entries(count: int) -> str:
    """``DELETE_ENTRY`` for ``count`` numbers of one target in one statement."""
    return f"DELETE FROM {ENTRIES} WHERE target = ? AND number IN ({', '.join(['?'] * count)})"


READ_TARGET = f"SELECT {entry_select()} FROM {ENTRIES} WHERE target = ?"
FIND_NUMBER = f"SELECT target, {entry_select()} FROM {ENTRIES} WHERE number = ?"
_LOCK_COLUMNS = "actor, host, pid, since, operation, token"
__all__ = [
    "BUMP_SERIAL",
    "DELETE_ENTRY",
    "FIND_NUMBER",
    "READ_TARGET",
    "UPSERT_ENTRY",
    "SqliteState",
]


class SqliteState(SqlState):
    """State in the SQLite file ``path``; ``create=False`` refuses to make a new one."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        self.audit_path = self.path.with_name(AUDIT_FILE_NAME)
        self._lock_token: str | None = None
        self._conn: sqlite3.Connection | None = None
        existed = self._check_file(create)
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {self.path}: {exc}") from exc
        try:
            if existed:
                self._quick_check(conn)
            # NORMAL: no fsync per commit (it was ~40 % of an apply's client time);
            # WAL still keeps every commit across a process crash
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -32768")  # 32 MiB
            self._conn = conn
            self._ensure_schema(create)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    # -- opening ----------------------------------------------------------------------

    def _check_file(self, create: bool) -> bool:
        """True if a database file is already there; refuses anything but SQLite."""
        try:
            with self.path.open("rb") as fh:
                header = fh.read(100)
        except FileNotFoundError:
            if not create:
                raise StateError(f"no state at {self.path} (run an apply first)") from None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(
                    f"cannot create state directory {self.path.parent}: {exc}"
                ) from exc
            return False
        except IsADirectoryError:
            raise StateError(f"state path {self.path} is a directory, not a database") from None
        except OSError as exc:
            raise StateError(f"cannot read state database {self.path}: {exc}") from exc
        if not header:  # an empty file is an empty SQLite database
            if not create:
                raise StateError(f"no state at {self.path} (run an apply first)")
            return False
        if len(header) < 100 or not header.startswith(SQLITE_HEADER):
            raise StateError(
                f"{self.path} is not a blocklist state database (not an SQLite file); "
                "it was left untouched"
            )
        return True

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            problem = str(exc)
        else:
            if rows == [("ok",)]:
                return
            problem = "; ".join(str(r[0]) for r in rows[:3])
        raise StateError(
            f"state database {self.path} is corrupt ({problem}); it was left untouched: "
            "restore it from a backup or import an export"
        )

    def _ensure_schema(self, create: bool) -> None:
        """Check the file is our state (or empty) before the first write, then switch it
        to WAL and create or migrate the schema."""
        conn = self._connection()
        with self._guard("reading the schema version"):
            version = self._schema_version(conn)
            if version > SCHEMA_VERSION:
                raise self._too_new(version)
            if version == 0:
                if not create:
                    raise StateError(f"no state at {self.path} (run an apply first)")
                foreign = conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                ).fetchall()
                if foreign:
                    raise StateError(
                        f"{self.path} is an SQLite database but not a blocklist state "
                        f"(it has tables {', '.join(r[0] for r in foreign[:5])}); "
                        "it was left untouched"
                    )
            # The first write to the file: only once we know it is ours.
            conn.execute("PRAGMA journal_mode = WAL")
        if version == SCHEMA_VERSION:
            return
        with self._write("creating or migrating the schema") as conn:
            version = self._schema_version(conn)  # another process may have done it
            if version > SCHEMA_VERSION:
                raise self._too_new(version)
            for target_version in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target_version]:
                    conn.execute(statement)
            if version == 0:
                conn.execute(
                    f"INSERT INTO {META} (id, lineage, serial, schema_version) VALUES (1, ?, 0, ?)",
                    (str(uuid.uuid4()), SCHEMA_VERSION),
                )
            else:
                conn.execute(
                    f"UPDATE {META} SET schema_version = ? WHERE id = 1", (SCHEMA_VERSION,)
                )

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, 'meta')",
                (META,),
            )
        }
        if not tables:
            return 0
        name = META if META in tables else "meta"  # "meta": version 1
        row = conn.execute(f"SELECT schema_version FROM {name} WHERE id = 1").fetchone()
        if row is None:
            raise StateError(f"state database {self.path} has no meta row; it was left untouched")
        return int(row[0])

    def _too_new(self, version: int) -> StateError:
        return StateError(
            f"state database {self.path} has schema version {version}, newer than this "
            f"tool's {SCHEMA_VERSION}; upgrade blocklist"
        )

    # -- plumbing ---------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state database {self.path} is closed")
        return self._conn

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"state database {self.path}: {doing}: {exc}") from exc

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        conn = self._connection()
        with self._guard(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error as exc:  # the original error matters more
                        log.warning("rollback failed in %s: %s", self.path, exc)
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._guard("reading"):
            return self._connection().execute(sql, params).fetchall()

    @contextmanager
    def _rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Iterable[Any]]:
        with self._guard("reading"):
            yield self._connection().execute(sql, params)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._guard("reading a snapshot"):
            conn.execute("BEGIN")  # one consistent snapshot
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _upsert_entries(
        self, conn: sqlite3.Connection, target: str, rows: list[tuple[Any, ...]]
    ) -> None:
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i : i + ROWS_PER_STATEMENT]
            params = [value for row in chunk for value in (target, *row)]
            conn.execute(upsert_entries(len(chunk)), params)

    def _delete_entries(self, conn: sqlite3.Connection, target: str, numbers: list[str]) -> int:
        deleted = 0
        for i in range(0, len(numbers), ROWS_PER_STATEMENT):
            chunk = numbers[i : i + ROWS_PER_STATEMENT]
            deleted += conn.execute(delete_entries(len(chunk)), (target, *chunk)).rowcount
        return deleted

    # -- locking ----------------------------------------------------------------------

    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = _POLL_FIRST_S
        while True:
            with self._write("taking the lock") as conn:
                row = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM {LOCK} WHERE id = 1").fetchone()
                if row is not None and _holder_is_dead(row):
                    # a run on this host that was killed (kill -9, power cut) left its row:
                    # its pid is gone, so nobody holds the lock any more
                    log.warning("taking over the stale lock of %s", _lock_info(row).describe())
                    conn.execute(f"DELETE FROM {LOCK} WHERE id = 1")
                    row = None
                if row is None:
                    token = uuid.uuid4().hex
                    conn.execute(
                        f"INSERT INTO {LOCK} (id, {_LOCK_COLUMNS}) VALUES (1, ?, ?, ?, ?, ?, ?)",
                        (
                            info.actor,
                            info.host,
                            info.pid,
                            info.since.isoformat(),
                            info.operation,
                            token,
                        ),
                    )
                    self._lock_token = token
                    return
                if self._lock_token is not None and row[5] == self._lock_token:
                    return  # we hold it already
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise lock_error(_lock_info(row))
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX_S)

    def release_lock(self) -> None:
        if self._lock_token is None:
            return
        with self._write("releasing the lock") as conn:
            conn.execute(f"DELETE FROM {LOCK} WHERE token = ?", (self._lock_token,))
        self._lock_token = None

    def lock_holder(self) -> LockInfo | None:
        rows = self._read(f"SELECT {_LOCK_COLUMNS} FROM {LOCK} WHERE id = 1")
        return _lock_info(rows[0]) if rows else None

    def break_lock(self) -> LockInfo | None:
        with self._write("breaking the lock") as conn:
            row = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM {LOCK} WHERE id = 1").fetchone()
            conn.execute(f"DELETE FROM {LOCK}")
        if row is None:
            return None
        if row[5] == self._lock_token:
            self._lock_token = None
        return _lock_info(row)

    # -- audit log --------------------------------------------------------------------

    def append_audit(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line to ``audit.log.jsonl``, fsynced before returning."""
        data = (audit_json(record) + "\n").encode("utf-8")
        try:
            fd = os.open(self.audit_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # never glue onto a line torn by a crash
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateError(f"cannot append to audit log {self.audit_path}: {exc}") from exc

    def read_audit(self) -> list[dict[str, Any]]:
        """Every record, oldest first; a line damaged by a crash is skipped with a warning."""
        try:
            text = self.audit_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read audit log {self.audit_path}: {exc}") from exc
        return parse_audit_lines(text, str(self.audit_path))

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._lock_token is not None:
                try:
                    conn.execute(f"DELETE FROM {LOCK} WHERE token = ?", (self._lock_token,))
                except sqlite3.Error as exc:  # the row stays; `state unlock` clears it
                    log.warning("could not release the state lock in %s: %s", self.path, exc)
                self._lock_token = None
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"SqliteState({str(self.path)!r})"


def _lock_info(row: tuple[Any, ...]) -> LockInfo:
    actor, host, pid, since, operation = row[:5]
    return LockInfo(
        actor=actor,
        host=host,
        pid=int(pid),
        since=datetime.fromisoformat(since),
        operation=operation,
    )


def parse_audit_lines(text: str, where: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            log.warning("skipping a damaged audit record at %s:%d", where, lineno)
            continue
        records.append(record)
    return records


def _holder_is_dead(row: Any) -> bool:
    """True when the lock row names a process on this host that no longer exists."""
    host, pid = row[1], row[2]
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False
