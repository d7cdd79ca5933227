"""The shared state backend: PostgreSQL, for CI runners that must share state.

Owns the ``blocklist_*`` tables (created and migrated by this tool, same
columns as the SQLite backend), one transaction per recorded batch, the apply
lock and the audit table. The lock is a session-level advisory lock on a
dedicated connection, held for as long as the lock is: if the runner dies, its
connection drops and PostgreSQL releases the lock by itself. A row beside it
describes the holder so a second runner can name it; a row whose advisory lock
is no longer held is stale and ignored.

Connection strings may carry a password: every message shows the DSN masked
(``mask_dsn``) and never a server message that could echo it. It knows nothing
of providers or plans.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.conninfo

from ..domain import ManagedEntry
from ..errors import LockError, StateError
from . import (
    audit_json,
    build_export,
    entries_from_rows,
    entry_columns,
    lock_error,
    parse_export,
)
from .base import SCHEMA_VERSION, LockInfo, StateBackend

# Advisory lock keys (64-bit, fixed). Advisory locks are per database: one state per database.
LOCK_KEY = int.from_bytes(b"blocklst", "big")
SCHEMA_LOCK_KEY = LOCK_KEY + 1  # serialises schema creation and migration
CONNECT_TIMEOUT_S = 10
BREAK_WAIT_S = 10.0  # how long break_lock waits for a terminated holder to go away
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 0.5

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE blocklist_meta (
            id integer PRIMARY KEY CHECK (id = 1),
            lineage text NOT NULL,
            serial bigint NOT NULL,
            schema_version integer NOT NULL)""",
        """CREATE TABLE blocklist_entries (
            target text NOT NULL,
            number text NOT NULL,
            expires timestamptz,
            reason text,
            attrs jsonb,
            provider_id text,
            source text NOT NULL DEFAULT '',
            PRIMARY KEY (target, number))""",
        "CREATE INDEX blocklist_entries_by_number ON blocklist_entries (number)",
        """CREATE TABLE blocklist_target_meta (
            target text NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (target, key))""",
        """CREATE TABLE blocklist_lock (
            id integer PRIMARY KEY CHECK (id = 1),
            actor text NOT NULL,
            host text NOT NULL,
            pid integer NOT NULL,
            since timestamptz NOT NULL,
            operation text NOT NULL,
            token text NOT NULL,
            backend_pid integer NOT NULL)""",
        """CREATE TABLE blocklist_audit (
            id bigserial PRIMARY KEY,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            record jsonb NOT NULL)""",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION, "add a migration for the new SCHEMA_VERSION"

UPSERT_ENTRIES = """INSERT INTO blocklist_entries
        (target, number, expires, reason, attrs, provider_id, source)
    SELECT %s, * FROM unnest(
        %s::text[], %s::text[]::timestamptz[], %s::text[], %s::text[]::jsonb[],
        %s::text[], %s::text[])
    ON CONFLICT (target, number) DO UPDATE SET
        expires = excluded.expires, reason = excluded.reason, attrs = excluded.attrs,
        provider_id = excluded.provider_id, source = excluded.source"""
DELETE_ENTRIES = "DELETE FROM blocklist_entries WHERE target = %s AND number = ANY(%s::text[])"
UPSERT_META = """INSERT INTO blocklist_target_meta (target, key, value) VALUES (%s, %s, %s)
    ON CONFLICT (target, key) DO UPDATE SET value = excluded.value"""
BUMP_SERIAL = "UPDATE blocklist_meta SET serial = serial + 1 WHERE id = 1"
READ_TARGET = """SELECT number, expires, reason, attrs::text, provider_id, source
    FROM blocklist_entries WHERE target = %s"""
FIND_NUMBER = """SELECT target, number, expires, reason, attrs::text, provider_id, source
    FROM blocklist_entries WHERE number = %s"""
LIST_TARGETS = """WITH RECURSIVE t(name) AS (
        SELECT (SELECT min(target) FROM blocklist_entries)
        UNION ALL
        SELECT (SELECT min(target) FROM blocklist_entries WHERE target > t.name) FROM t
        WHERE t.name IS NOT NULL)
    SELECT name FROM t WHERE name IS NOT NULL
    UNION SELECT target FROM blocklist_target_meta"""
ADVISORY_HOLDERS = """SELECT pid FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid::bigint = %s AND objid::bigint = %s"""
_LOCK_COLUMNS = "actor, host, pid, since, operation, token, backend_pid"


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (URI or key=value form)."""
    uri = re.match(r"(?is)^(postgres(?:ql)?://)(.*)$", dsn)
    if uri:
        scheme, rest = uri.groups()
        head, sep, query = rest.partition("?")
        if "@" in head:
            userinfo, host = head.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            head = f"{userinfo}@{host}"
        query = re.sub(r"(?i)((?:^|&)password=)[^&#]*", r"\1***", query)
        return f"{scheme}{head}{sep}{query}"
    return re.sub(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", r"\1***", dsn)


def _dsn_password(dsn: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except psycopg.Error:
        return None


class PostgresState(StateBackend):
    """State in the PostgreSQL database of ``dsn``; ``create=False`` refuses a new one."""

    def __init__(self, dsn: str, create: bool = True) -> None:
        self._dsn = dsn
        self.masked_dsn = mask_dsn(dsn)
        self._password = _dsn_password(dsn)
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._lock_token: str | None = None
        self._conn: psycopg.Connection[Any] | None = self._connect()
        try:
            self._ensure_schema(create)
        except BaseException:
            self.close()
            raise

    # -- connections and errors -------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            params = psycopg.conninfo.conninfo_to_dict(self._dsn)
        except psycopg.Error:
            # Neither libpq's message nor the DSN is shown: either may quote a fragment
            # of the password when the string cannot be parsed.
            raise StateError(
                "the PostgreSQL state DSN is not a valid connection string "
                "(expected postgresql://user@host/db or key=value pairs)"
            ) from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "blocklist")
        try:
            return psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the PostgreSQL state at {self.masked_dsn}: {self._cause(exc)}"
            ) from None

    def _cause(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        text = text.removeprefix("connection failed: ")
        if self._password and len(self._password) >= 3:
            text = text.replace(self._password, "***")
        return text

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise StateError(f"the PostgreSQL state at {self.masked_dsn} is closed")
        return self._conn

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(
                f"PostgreSQL state at {self.masked_dsn}: {doing}: {self._cause(exc)}"
            ) from None

    @contextmanager
    def _write(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        conn = self._connection()
        with self._guard(doing), conn.transaction():
            yield conn

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._guard("reading"):
            return self._connection().execute(sql, params).fetchall()

    # -- schema -----------------------------------------------------------------------

    def _ensure_schema(self, create: bool) -> None:
        conn = self._connection()
        with self._guard("reading the schema version"):
            version = self._schema_version(conn)
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise self._too_new(version)
        with self._write("creating or migrating the schema") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            version = self._schema_version(conn)  # another runner may have done it
            if version > SCHEMA_VERSION:
                raise self._too_new(version)
            if version == 0 and not create:
                raise StateError(
                    f"no state in the PostgreSQL database {self.masked_dsn} (run an apply first)"
                )
            for target_version in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target_version]:
                    conn.execute(statement)
            if version == 0:
                conn.execute(
                    "INSERT INTO blocklist_meta (id, lineage, serial, schema_version) "
                    "VALUES (1, %s, 0, %s)",
                    (str(uuid.uuid4()), SCHEMA_VERSION),
                )
            else:
                conn.execute(
                    "UPDATE blocklist_meta SET schema_version = %s WHERE id = 1",
                    (SCHEMA_VERSION,),
                )

    def _schema_version(self, conn: psycopg.Connection[Any]) -> int:
        (exists,) = conn.execute("SELECT to_regclass('blocklist_meta') IS NOT NULL").fetchone()
        if not exists:
            return 0
        row = conn.execute("SELECT schema_version FROM blocklist_meta WHERE id = 1").fetchone()
        if row is None:
            raise StateError(f"the PostgreSQL state at {self.masked_dsn} has no meta row")
        return int(row[0])

    def _too_new(self, version: int) -> StateError:
        return StateError(
            f"the PostgreSQL state at {self.masked_dsn} has schema version {version}, newer "
            f"than this tool's {SCHEMA_VERSION}; upgrade blocklist"
        )

    # -- identity ---------------------------------------------------------------------

    def lineage(self) -> str:
        return str(self._read("SELECT lineage FROM blocklist_meta WHERE id = 1")[0][0])

    def serial(self) -> int:
        return int(self._read("SELECT serial FROM blocklist_meta WHERE id = 1")[0][0])

    # -- reading ----------------------------------------------------------------------

    def read_target(self, target: str) -> dict[str, ManagedEntry]:
        with self._guard("reading a target"):
            cursor = self._connection().cursor()
            cursor.execute(READ_TARGET, (target,))
            return entries_from_rows(cursor)

    def targets(self) -> list[str]:
        return sorted(row[0] for row in self._read(LIST_TARGETS))

    def target_meta(self, target: str) -> dict[str, str]:
        rows = self._read(
            "SELECT key, value FROM blocklist_target_meta WHERE target = %s", (target,)
        )
        return dict(sorted(rows))

    def find_number(self, number: str) -> list[tuple[str, ManagedEntry]]:
        rows = sorted(self._read(FIND_NUMBER, (number,)), key=lambda row: row[0])
        return [(row[0], next(iter(entries_from_rows([row[1:]]).values()))) for row in rows]

    # -- writing ----------------------------------------------------------------------

    def record_batch(
        self,
        target: str,
        upserts: Iterable[ManagedEntry] = (),
        deletes: Iterable[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Upserts, then deletes, then metadata, then serial += 1: all or nothing."""
        by_number = {e.number: entry_columns(e) for e in upserts}  # the last one wins
        columns = [list(c) for c in zip(*by_number.values(), strict=True)]
        delete_list = list(deletes)
        meta_rows = [(target, k, v) for k, v in (meta or {}).items()]
        with self._write("recording a batch") as conn:
            if columns:
                conn.execute(UPSERT_ENTRIES, (target, *columns))
            if delete_list:
                conn.execute(DELETE_ENTRIES, (target, delete_list))
            if meta_rows:
                conn.cursor().executemany(UPSERT_META, meta_rows)
            conn.execute(BUMP_SERIAL)

    def forget(self, target: str, number: str) -> bool:
        """Serial += 1 only when something was forgotten (nothing changed otherwise)."""
        with self._write("forgetting a number") as conn:
            cursor = conn.execute(DELETE_ENTRIES, (target, [number]))
            removed = cursor.rowcount > 0
            if removed:
                conn.execute(BUMP_SERIAL)
        return removed

    # -- locking ----------------------------------------------------------------------

    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> None:
        if self._lock_conn is not None:
            return  # we hold it already
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = _POLL_FIRST_S
        looked_again = False
        conn = self._connect()
        try:
            while True:
                with self._guard("taking the lock"):
                    (got,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                    if got:
                        token = uuid.uuid4().hex
                        with conn.transaction():
                            # A row left behind by a holder whose session died is stale.
                            conn.execute("DELETE FROM blocklist_lock")
                            conn.execute(
                                f"INSERT INTO blocklist_lock (id, {_LOCK_COLUMNS}) "
                                "VALUES (1, %s, %s, %s, %s, %s, %s, %s)",
                                (
                                    info.actor,
                                    info.host,
                                    info.pid,
                                    info.since,
                                    info.operation,
                                    token,
                                    conn.info.backend_pid,
                                ),
                            )
                        self._lock_conn, self._lock_token = conn, token
                        return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    holder = self._live_holder(wait_for_row=0.5)
                    if holder is not None:
                        raise lock_error(holder)
                    if looked_again:
                        raise LockError("state is locked (the holder could not be identified)")
                    looked_again = True  # released between our try and now: try once more
                    continue
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, _POLL_MAX_S)
        finally:
            if self._lock_conn is not conn:
                conn.close()

    def release_lock(self) -> None:
        conn, token = self._lock_conn, self._lock_token
        self._lock_conn = self._lock_token = None
        if conn is None:
            return
        try:
            conn.execute("DELETE FROM blocklist_lock WHERE token = %s", (token,))
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        except psycopg.Error:
            pass  # the session is gone (broken lock): the server released the lock with it
        finally:
            conn.close()

    def lock_holder(self) -> LockInfo | None:
        return self._live_holder()

    def _advisory_holders(self) -> list[int]:
        rows = self._read(ADVISORY_HOLDERS, (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF))
        return [int(r[0]) for r in rows]

    def _live_holder(self, wait_for_row: float = 0.0) -> LockInfo | None:
        """The holder of the advisory lock, described by its row (or by its session)."""
        deadline = time.monotonic() + wait_for_row
        while True:
            pids = self._advisory_holders()
            if not pids:
                return None
            rows = self._read(
                f"SELECT {_LOCK_COLUMNS} FROM blocklist_lock WHERE backend_pid = %s",
                (pids[0],),
            )
            if rows:
                return _lock_info(rows[0])
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)  # the holder is writing its row right now
        # Locked, but nobody wrote a row: describe the session that holds the lock.
        session = self._read(
            "SELECT usename, client_addr::text, backend_start FROM pg_stat_activity WHERE pid = %s",
            (pids[0],),
        )
        user, addr, started = session[0] if session else (None, None, None)
        return LockInfo(
            actor=user or "unknown",
            host=addr or "unknown",
            pid=pids[0],
            since=(started or datetime.now(UTC)).astimezone(UTC),
            operation="unknown (PostgreSQL backend pid)",
        )

    def break_lock(self) -> LockInfo | None:
        if self._lock_conn is not None:  # our own: just let go
            holder = self._live_holder()
            self.release_lock()
            return holder
        holder = self._live_holder()
        stale = self._read(f"SELECT {_LOCK_COLUMNS} FROM blocklist_lock WHERE id = 1")
        for pid in self._advisory_holders():
            try:
                self._read("SELECT pg_terminate_backend(%s)", (pid,))
            except StateError as exc:
                raise StateError(
                    f"cannot break the lock held by PostgreSQL backend {pid} (terminating it "
                    f"needs the same role, pg_signal_backend or superuser): {exc}"
                ) from None
        deadline = time.monotonic() + BREAK_WAIT_S
        while self._advisory_holders():
            if time.monotonic() >= deadline:
                raise StateError("the lock holder's session did not end after it was terminated")
            time.sleep(0.05)
        with self._write("breaking the lock") as conn:
            conn.execute("DELETE FROM blocklist_lock")
        if holder is not None:
            return holder
        return _lock_info(stale[0]) if stale else None

    # -- moving state -----------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        conn = self._connection()
        with self._guard("exporting"), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            lineage, serial = conn.execute(
                "SELECT lineage, serial FROM blocklist_meta WHERE id = 1"
            ).fetchone()
            targets: dict[str, tuple[dict[str, str], list[ManagedEntry]]] = {}
            for (name,) in conn.execute(LIST_TARGETS).fetchall():
                meta = dict(
                    conn.execute(
                        "SELECT key, value FROM blocklist_target_meta WHERE target = %s",
                        (name,),
                    ).fetchall()
                )
                cursor = conn.cursor()
                cursor.execute(READ_TARGET, (name,))
                targets[name] = (meta, list(entries_from_rows(cursor).values()))
        return build_export(lineage, int(serial), targets)

    def import_state(self, data: Mapping[str, Any]) -> None:
        parsed = parse_export(data)
        with self._write("importing") as conn:
            conn.execute("TRUNCATE blocklist_entries, blocklist_target_meta")
            meta_rows = [
                (name, key, value)
                for name, (meta, _) in parsed.targets.items()
                for key, value in meta.items()
            ]
            if meta_rows:
                conn.cursor().executemany(UPSERT_META, meta_rows)
            with conn.cursor().copy(
                "COPY blocklist_entries (target, number, expires, reason, attrs, provider_id, "
                "source) FROM STDIN"
            ) as copy:
                for name, (_, entries) in parsed.targets.items():
                    for entry in entries:
                        copy.write_row((name, *entry_columns(entry)))
            conn.execute(
                "UPDATE blocklist_meta SET lineage = %s, serial = GREATEST(serial, %s) + 1 "
                "WHERE id = 1",
                (parsed.lineage, parsed.serial),
            )

    # -- audit log --------------------------------------------------------------------

    def append_audit(self, record: Mapping[str, Any]) -> None:
        text = audit_json(record)
        with self._write("appending to the audit log") as conn:
            conn.execute("INSERT INTO blocklist_audit (record) VALUES (%s::jsonb)", (text,))

    def read_audit(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT record::text FROM blocklist_audit ORDER BY id")
        return [json.loads(row[0]) for row in rows]

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.release_lock()
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __repr__(self) -> str:
        return f"PostgresState({self.masked_dsn!r})"


def _lock_info(row: tuple[Any, ...]) -> LockInfo:
    actor, host, pid, since, operation = row[:5]
    return LockInfo(
        actor=actor, host=host, pid=int(pid), since=since.astimezone(UTC), operation=operation
    )
