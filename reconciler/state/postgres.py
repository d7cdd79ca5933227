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

from ..errors import LockError, StateError
from .base import SCHEMA_VERSION, LockInfo
from .codec import ENTRY_COLUMNS, audit_json, lock_error
from .sql import ENTRIES, SqlState

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
    2: (
        "ALTER TABLE blocklist_entries ADD COLUMN pending text",  # why the last remove failed
        "ALTER TABLE blocklist_meta ADD COLUMN configuration text",
    ),
    3: (  # when and by whom each number was recorded (blocklist why)
        "ALTER TABLE blocklist_entries ADD COLUMN first_applied timestamptz",
        "ALTER TABLE blocklist_entries ADD COLUMN last_applied timestamptz",
        "ALTER TABLE blocklist_entries ADD COLUMN applied_by text",
        "ALTER TABLE blocklist_entries ADD COLUMN applied_commit text",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION, "add a migration for the new SCHEMA_VERSION"

UPSERT_ENTRIES = """INSERT INTO blocklist_entries
        (target, number, expires, reason, attrs, provider_id, source, pending,
         first_applied, last_applied, applied_by, applied_commit)
    SELECT %s, * FROM unnest(
        %s::text[], %s::text[]::timestamptz[], %s::text[], %s::text[]::jsonb[],
        %s::text[], %s::text[], %s::text[],
        %s::text[]::timestamptz[], %s::text[]::timestamptz[], %s::text[], %s::text[])
    ON CONFLICT (target, number) DO UPDATE SET
        expires = excluded.expires, reason = excluded.reason, attrs = excluded.attrs,
        provider_id = excluded.provider_id, source = excluded.source,
        pending = excluded.pending,
        first_applied = coalesce(blocklist_entries.first_applied, excluded.first_applied),
        last_applied = excluded.last_applied, applied_by = excluded.applied_by,
        applied_commit = excluded.applied_commit"""
DELETE_ENTRIES = "DELETE FROM blocklist_entries WHERE target = %s AND number = ANY(%s::text[])"
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


class PostgresState(SqlState):
    """State in the PostgreSQL database of ``dsn``; ``create=False`` refuses a new one."""

    placeholder = "%s"
    attrs_read = "attrs::text"

    def __init__(self, dsn: str, create: bool = True, read_only: bool = False) -> None:
        self._dsn = dsn
        self.read_only = read_only
        self.masked_dsn = mask_dsn(dsn)
        self._password = _dsn_password(dsn)
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._lock_token: str | None = None
        self._conn: psycopg.Connection[Any] | None = self._connect()
        try:
            self._ensure_schema(create)
            if not read_only:
                self._check_writable()
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
        if self.read_only:  # the server refuses any write in this session
            params["options"] = (
                params.get("options", "") + " -c default_transaction_read_only=on"
            ).strip()
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

    @contextmanager
    def _rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Iterable[Any]]:
        with self._guard("reading"):
            cursor = self._connection().cursor()
            cursor.execute(sql, params)
            yield cursor

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._connection()
        with self._guard("reading a snapshot"), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    def _upsert_entries(
        self, conn: psycopg.Connection[Any], target: str, rows: list[tuple[Any, ...]]
    ) -> None:
        columns = [list(c) for c in zip(*rows, strict=True)]  # one array per column
        conn.execute(UPSERT_ENTRIES, (target, *columns))

    def _delete_entries(
        self, conn: psycopg.Connection[Any], target: str, numbers: list[str]
    ) -> int:
        return conn.execute(DELETE_ENTRIES, (target, numbers)).rowcount

    def _executemany(self, conn: Any, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        conn.cursor().executemany(self.q(sql), list(rows))

    def _insert_all(self, conn: Any, rows: Iterator[tuple[Any, ...]]) -> None:
        columns = ", ".join(("target", *ENTRY_COLUMNS))
        with conn.cursor().copy(f"COPY {ENTRIES} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    # -- schema -----------------------------------------------------------------------

    def _ensure_schema(self, create: bool) -> None:
        conn = self._connection()
        with self._guard("reading the schema version"):
            version = self._schema_version(conn)
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise self._too_new(version)
        if self.read_only:
            if version == 0:
                raise StateError(
                    f"no state in the PostgreSQL database {self.masked_dsn} (run an apply first)"
                )
            raise StateError(
                f"the PostgreSQL state at {self.masked_dsn} has schema version {version}; this "
                f"tool reads {SCHEMA_VERSION}, and a read-only DSN cannot upgrade it: run an "
                "apply (read-write state.dsn) first"
            )
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

    def _check_writable(self) -> None:
        """Apply and the state commands write: refuse a role that cannot, at once and
        plainly, before any lock is taken or any request sent."""
        rows = self._read(
            "SELECT has_table_privilege('blocklist_entries', 'INSERT,UPDATE,DELETE'), "
            "has_table_privilege('blocklist_lock', 'INSERT,DELETE')"
        )
        if not all(rows[0]):
            raise StateError(
                f"the PostgreSQL role of {self.masked_dsn} cannot write the state (it may "
                "only read): apply needs the read-write DSN (state.dsn); a read-only role "
                "belongs in state.read_dsn, for plan, audit and why"
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
