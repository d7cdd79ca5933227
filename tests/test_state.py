"""Behaviour of the state backends: the same tests run against SQLite and PostgreSQL.

The PostgreSQL server is a throwaway one started once per session
(``tests/pgserver.py``), or the server of ``BLOCKLIST_TEST_POSTGRES_DSN``
(a role allowed to create databases); each test gets a fresh database. Without
PostgreSQL binaries the postgres cases are skipped, unless
``BLOCKLIST_REQUIRE_POSTGRES`` is set (CI), where they fail instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgserver import create_database

from reconciler.domain import Applied, ManagedEntry
from reconciler.errors import LockError, StateError
from reconciler.state import (
    SCHEMA_VERSION,
    LockInfo,
    StateBackend,
    current_lock_info,
    export_to_file,
    import_from_file,
    open_state,
)
from reconciler.state import sqlite as sqlite_backend
from reconciler.state.base import BatchRecord
from reconciler.state.postgres import mask_dsn

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("state_crash_worker.py")
T1, T2 = "kaleyra/sms", "ozonetel/fraud-callers"
ALICE = LockInfo("alice", "runner-a", 4242, datetime(2026, 11, 22, 9, 30, tzinfo=UTC))
BOB = LockInfo("bob", "runner-b", 5353, datetime(2026, 11, 22, 9, 31, tzinfo=UTC), "plan")


# -- fixtures -------------------------------------------------------------------------------


_database_numbers = itertools.count()


@dataclass
class Store:
    """Where one test's state lives; ``open`` gives a new backend object on it."""

    backend: str
    path: Path | None = None
    dsn: str | None = None
    opened: list[StateBackend] = field(default_factory=list)

    def open(self, create: bool = True) -> StateBackend:
        state = open_state(self.backend, path=self.path, dsn=self.dsn, create=create)
        self.opened.append(state)
        return state

    def close_all(self) -> None:
        for state in self.opened:
            state.close()

    def set_schema_version(self, version: int) -> None:
        if self.backend == "sqlite":
            with sqlite3.connect(self.path) as conn:
                conn.execute("UPDATE blocklist_meta SET schema_version = ?", (version,))
            conn.close()
        else:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("UPDATE blocklist_meta SET schema_version = %s", (version,))


def new_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "sqlite":
        return Store("sqlite", path=tmp_path / "dot-blocklist" / "state.db")
    admin = request.getfixturevalue("pg_admin_dsn")
    name = f"state_{os.getpid()}_{next(_database_numbers)}"
    return Store("postgres", dsn=create_database(admin, name))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, not yet created state of each backend."""
    created = new_store(request.param, tmp_path, request)
    try:
        yield created
    finally:
        created.close_all()


def entry(number: str, **fields: object) -> ManagedEntry:
    return ManagedEntry(number, **fields)  # type: ignore[arg-type]


# -- identity -------------------------------------------------------------------------------


def test_a_new_state_has_a_lineage_that_never_changes(store: Store) -> None:
    first = store.open()
    lineage = first.lineage()
    assert uuid.UUID(lineage)
    assert first.serial() == 0
    first.record_batch(T1, [entry("+919876543210")])
    first.close()

    again = store.open(create=False)
    assert again.lineage() == lineage
    assert again.serial() == 1


def test_serial_counts_every_batch_and_every_forget(store: Store) -> None:
    state = store.open()
    state.record_batch(T1, [entry("+919876543210"), entry("+919876543211")])
    state.record_batch(T1, deletes=["+919876543211"])
    state.record_batch(T1)  # an empty batch is still a recorded batch
    assert state.serial() == 3
    assert state.forget(T1, "+919876543210") is True
    assert state.serial() == 4
    assert state.forget(T1, "+919876543210") is False  # nothing changed: serial stays
    assert state.serial() == 4


# -- reading and writing --------------------------------------------------------------------


def test_upserts_deletes_and_read_target_round_trip_every_field(store: Store) -> None:
    state = store.open()
    ist = timezone(timedelta(hours=5, minutes=30))
    full = entry(
        "+919876543210",
        expires=datetime(2027, 3, 1, 5, 30, tzinfo=ist),  # = 2027-03-01 00:00 UTC
        reason="fraud",
        attrs=(("reject_type", "invalid"), ("channel", "sms")),
        provider_ids=("ph-7116",),
        source="blocklists/fraud.yaml:12",
    )
    state.record_batch(T1, [full, entry("+14155550123")])
    state.record_batch(T2, [entry("+14155550123", reason="spam")])

    got = state.read_target(T1)
    assert set(got) == {"+919876543210", "+14155550123"}
    one = got["+919876543210"]
    assert one.expires == datetime(2027, 3, 1, tzinfo=UTC)
    assert one.expires.utcoffset() == timedelta(0)
    assert one.attrs == (("channel", "sms"), ("reject_type", "invalid"))  # sorted pairs
    assert (one.reason, one.provider_ids, one.source) == (
        "fraud",
        ("ph-7116",),
        "blocklists/fraud.yaml:12",
    )
    assert got["+14155550123"] == ManagedEntry("+14155550123")

    state.record_batch(
        T1,
        upserts=[entry("+919876543210", reason="chargeback")],  # replaces every field
        deletes=["+14155550123", "+10000000000"],  # deleting an unknown number is fine
    )
    assert state.read_target(T1) == {
        "+919876543210": ManagedEntry("+919876543210", reason="chargeback")
    }
    assert state.read_target(T2)["+14155550123"].reason == "spam"  # other target untouched
    assert state.read_target("nobody/here") == {}


def test_target_meta_is_kept_per_target_and_listed(store: Store) -> None:
    state = store.open()
    state.record_batch("ozonetel/b", meta={"group_id": "17"})  # metadata only
    state.record_batch("lox24/7116", [entry("+4915112345678")])
    state.record_batch("ozonetel/b", meta={"group_id": "18", "created": "yes"})
    assert state.target_meta("ozonetel/b") == {"created": "yes", "group_id": "18"}
    assert state.target_meta("lox24/7116") == {}
    assert state.targets() == ["lox24/7116", "ozonetel/b"]


def test_find_number_names_every_target_that_manages_it(store: Store) -> None:
    state = store.open()
    state.record_batch(T2, [entry("+919876543210", reason="a")])
    state.record_batch(T1, [entry("+919876543210", reason="b"), entry("+919876543211")])
    found = state.find_number("+919876543210")
    assert [(t, e.reason) for t, e in found] == [(T1, "b"), (T2, "a")]
    assert state.find_number("+10000000000") == []


def test_forget_removes_one_number_from_one_target(store: Store) -> None:
    state = store.open()
    state.record_batch(T1, [entry("+919876543210"), entry("+919876543211")])
    state.record_batch(T2, [entry("+919876543210")])
    assert state.forget(T1, "+919876543210")
    assert set(state.read_target(T1)) == {"+919876543211"}
    assert set(state.read_target(T2)) == {"+919876543210"}


numbers = st.sampled_from([f"+9198765432{i:02d}" for i in range(12)])
batches = st.lists(
    st.tuples(
        st.sampled_from([T1, T2]),
        st.lists(
            st.builds(
                ManagedEntry,
                number=numbers,
                reason=st.sampled_from([None, "fraud", "spam"]),
                expires=st.sampled_from([None, datetime(2027, 1, 1, tzinfo=UTC)]),
                attrs=st.sampled_from([(), (("reject_type", "invalid"),)]),
            ),
            max_size=6,
        ),
        st.lists(numbers, max_size=4),
    ),
    max_size=6,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches)
def test_state_matches_a_dictionary_model(store: Store, batches: list) -> None:
    state = store.opened[0] if store.opened else store.open()
    prefix = uuid.uuid4().hex[:8] + "/"  # each example gets targets of its own
    model: dict[str, dict[str, ManagedEntry]] = {T1: {}, T2: {}}
    serial = state.serial()
    for target, upserts, deletes in batches:
        state.record_batch(prefix + target, upserts, deletes)
        for e in upserts:
            model[target][e.number] = e
        for number in deletes:
            model[target].pop(number, None)
    assert state.serial() == serial + len(batches)
    for target, expected in model.items():
        assert state.read_target(prefix + target) == expected


applied_stamps = st.sampled_from(
    [
        None,
        Applied(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "ci"),
        Applied(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), "me", "c1"),
    ]
)
batch_records = st.lists(
    st.builds(
        BatchRecord,
        target=st.sampled_from([T1, T2]),
        upserts=st.lists(
            st.builds(
                ManagedEntry,
                number=numbers,
                reason=st.sampled_from([None, "fraud"]),
                expires=st.sampled_from([None, datetime(2027, 1, 1, tzinfo=UTC)]),
                attrs=st.sampled_from([(), (("reject_type", "invalid"),)]),
                provider_ids=st.sampled_from([(), ("17",), ("17", "18")]),
                applied=applied_stamps,
            ),
            max_size=8,
        ),
        deletes=st.lists(numbers, max_size=5),
        meta=st.sampled_from([None, {"group_id": "7"}]),
        pending=st.dictionaries(numbers, st.sampled_from(["not deleted", "5xx"]), max_size=2),
    ),
    max_size=8,
)


class RowByRowSqlite(sqlite_backend.SqliteState):
    """The obvious path: one single-row statement per entry (``executemany``)."""

    def _upsert_entries(self, conn, target, rows):  # type: ignore[no-untyped-def]
        conn.executemany(sqlite_backend.UPSERT_ENTRY, [(target, *row) for row in rows])

    def _delete_entries(self, conn, target, numbers):  # type: ignore[no-untyped-def]
        return conn.executemany(
            sqlite_backend.DELETE_ENTRY, [(target, n) for n in numbers]
        ).rowcount


def _comparable(state: StateBackend) -> dict:
    doc = state.export_state()
    doc.pop("lineage")
    return doc


@settings(max_examples=40, deadline=None)
@given(records=batch_records, chunk=st.sampled_from([1, 2, 3, 500]))
def test_sqlite_multi_row_statements_and_grouped_batches_equal_the_row_by_row_path(
    records: list, chunk: int
) -> None:
    """The fast paths of recording (a batch's rows in one multi-row statement, chunked at
    ``ROWS_PER_STATEMENT``; several batches in one transaction) leave exactly the state of
    the obvious path: single-row statements, one ``record_batch`` per batch."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fast = sqlite_backend.SqliteState(Path(tmp) / "fast.db")
        slow = RowByRowSqlite(Path(tmp) / "slow.db")
        was = sqlite_backend.ROWS_PER_STATEMENT
        sqlite_backend.ROWS_PER_STATEMENT = chunk
        try:
            fast.record_batches(records)
        finally:
            sqlite_backend.ROWS_PER_STATEMENT = was
        for r in records:
            slow.record_batch(r.target, r.upserts, r.deletes, r.meta, pending=r.pending)
        assert _comparable(fast) == _comparable(slow)
        assert fast.serial() == slow.serial() == len(records)
        fast.close()
        slow.close()


def test_grouped_batches_are_recorded_in_order_as_one_by_one(store: Store) -> None:
    """``record_batches`` on either backend equals the same batches one by one: a later
    batch's delete wins over an earlier upsert, pending marks and metadata are kept, and
    serial counts every batch."""
    grouped, single = store.open(), store.open()
    records = [
        BatchRecord(T1, [entry("+919876543210", reason="a"), entry("+919876543211")]),
        BatchRecord(T1, deletes=["+919876543210"], meta={"group_id": "9"}),
        BatchRecord(T2, [entry("+919876543210")], pending={"+919876543210": "nope"}),
        BatchRecord(T1, [entry("+919876543212")], ["+919876543211"]),
    ]
    grouped.record_batches(records)
    after_grouped = (grouped.read_target(T1), grouped.read_target(T2), grouped.target_meta(T1))
    serial = grouped.serial()
    assert serial == len(records)
    grouped.import_state({**grouped.export_state(), "targets": {}})  # start again
    base = grouped.serial()
    for r in records:
        single.record_batch(r.target, r.upserts, r.deletes, r.meta, pending=r.pending)
    assert (single.read_target(T1), single.read_target(T2), single.target_meta(T1)) == (
        after_grouped
    )
    assert single.serial() == base + len(records)


def test_sqlite_hot_statements_use_the_primary_key_or_an_index(tmp_path: Path) -> None:
    """record_batch (row by row and multi-row), read_target and find_number never scan:
    their cost does not grow with the size of the state."""
    state = open_state("sqlite", path=tmp_path / "state.db")
    state.close()
    conn = sqlite3.connect(tmp_path / "state.db")
    statements = {
        sqlite_backend.DELETE_ENTRY: ("t", "n"),
        sqlite_backend.BUMP_SERIAL: (),
        sqlite_backend.READ_TARGET: ("t",),
        sqlite_backend.FIND_NUMBER: ("n",),
        sqlite_backend.UPSERT_ENTRY: (
            "t",
            "n",
            None,
            None,
            None,
            None,
            "",
            None,
            None,
            None,
            None,
            None,
        ),
        sqlite_backend.upsert_entries(3): ("t", "n", None, None, None, None, "", None, None)
        + (None, None, None) * 1
        + ("t", "m", None, None, None, None, "", None, None, None, None, None) * 2,
        sqlite_backend.delete_entries(3): ("t", "a", "b", "c"),
    }
    for sql, params in statements.items():
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        # (a multi-row statement reads its own VALUES: "SCAN 3 CONSTANT ROWS")
        scans = [s for s in plan if s.startswith("SCAN") and not s.endswith("CONSTANT ROWS")]
        assert not scans, (sql, plan)
    conn.close()


# -- moving state ---------------------------------------------------------------------------


def _fill(state: StateBackend) -> None:
    state.record_batch(
        T1,
        [
            entry(
                "+919876543210",
                expires=datetime(2027, 3, 1, tzinfo=UTC),
                reason="fraud",
                attrs=(("reject_type", "invalid"),),
                source="blocklists/fraud.yaml:12",
            ),
            entry("+14155550123", provider_ids=("id-9",)),
        ],
        meta={"group_id": "7116"},
    )
    state.record_batch(T2, [entry("+4915112345678", reason="spam")])
    state.record_batch("ozonetel/empty", meta={"group_id": "1"})


def _contents(state: StateBackend) -> dict:
    data = state.export_state()
    del data["serial"]
    return data


def test_export_import_round_trip_sqlite_postgres_sqlite_keeps_lineage(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first, middle, last = (
        new_store("sqlite", tmp_path / "a", request),
        new_store("postgres", tmp_path, request),
        new_store("sqlite", tmp_path / "c", request),
    )
    try:
        origin = first.open()
        _fill(origin)
        for _ in range(5):
            origin.record_batch(T2)  # serial 8
        export_to_file(origin, tmp_path / "one.json")
        text = (tmp_path / "one.json").read_text()
        assert text.startswith("{\n") and json.loads(text)["targets"]  # pretty JSON

        pg = middle.open()
        pg.record_batch(T1, [entry("+10000000000")])  # replaced by the import
        import_from_file(pg, tmp_path / "one.json")
        assert pg.lineage() == origin.lineage()
        assert pg.serial() == 9  # max(1, 8) + 1
        assert _contents(pg) == _contents(origin)

        export_to_file(pg, tmp_path / "two.json")
        back = last.open()
        import_from_file(back, tmp_path / "two.json")
        assert back.lineage() == origin.lineage()
        assert back.serial() == 10
        assert _contents(back) == _contents(origin)
        assert back.read_target(T1) == origin.read_target(T1)
        assert back.target_meta("ozonetel/empty") == {"group_id": "1"}
    finally:
        for s in (first, middle, last):
            s.close_all()


def test_import_replaces_everything_and_bumps_serial(store: Store) -> None:
    state = store.open()
    _fill(state)
    exported = state.export_state()
    state.record_batch("extra/target", [entry("+10000000000")], meta={"k": "v"})
    for _ in range(4):
        state.record_batch(T1)
    state.import_state(exported)
    assert state.serial() == 3 + 1 + 4 + 1
    assert "extra/target" not in state.targets()
    assert _contents(state) == {k: v for k, v in exported.items() if k != "serial"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no state export at"),
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "not a state export"),
        ('{"hello": 1}', "not a state export"),
        ('{"format_version": 99, "lineage": "x", "serial": 1, "targets": {}}', "upgrade"),
        ('{"format_version": 1, "serial": 1, "targets": {}}', "no lineage"),
        (
            '{"format_version": 1, "lineage": "x", "serial": 1, '
            '"targets": {"t": {"entries": [{"reason": "x"}]}}}',
            "entries[0] has no number",
        ),
        (
            '{"format_version": 1, "lineage": "x", "serial": 1, '
            '"targets": {"t": {"entries": [{"number": "+1", "expires": "soon"}]}}}',
            "is not a date",
        ),
    ],
    ids=[
        "missing",
        "bad-json",
        "a-list",
        "no-format",
        "too-new",
        "no-lineage",
        "no-number",
        "bad-date",
    ],
)
def test_import_from_a_bad_file_is_refused_and_changes_nothing(
    store: Store, tmp_path: Path, content: str | None, message: str
) -> None:
    state = store.open()
    _fill(state)
    before = state.export_state()
    source = tmp_path / "export.json"
    if content is not None:
        source.write_text(content)
    with pytest.raises(StateError, match=re.escape(message)) as caught:
        import_from_file(state, source)
    assert str(source) in str(caught.value)
    assert state.export_state() == before


# -- opening: missing, corrupt, too new -----------------------------------------------------


def test_missing_state_with_create_false_says_to_run_an_apply(store: Store) -> None:
    with pytest.raises(StateError, match=r"no state .*\(run an apply first\)") as caught:
        store.open(create=False)
    if store.backend == "sqlite":
        assert str(store.path) in str(caught.value)
        assert not store.path.exists()  # nothing was created
    else:
        with psycopg.connect(store.dsn) as conn:
            assert conn.execute("SELECT to_regclass('blocklist_meta')").fetchone() == (None,)


def _corrupt_copies(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.db"
    state = open_state("sqlite", path=good)
    for b in range(20):
        state.record_batch(T1, [entry(f"+1555{b:03d}{j:04d}", reason="x" * 30) for j in range(100)])
    state.close()
    data = good.read_bytes()
    rng = random.Random(7)
    variants = {
        "not-sqlite": b"this is a text file, not a database\n" * 200,
        "random-bytes": rng.randbytes(8192),
        "damaged-pages": data[:8192] + rng.randbytes(8192) + data[16384:],
        "zeroed-pages": data[:12288] + bytes(8192) + data[20480:],
        "truncated": data[: len(data) // 2],
    }
    paths = {}
    for name, content in variants.items():
        path = tmp_path / name / "state.db"
        path.parent.mkdir()
        path.write_bytes(content)
        paths[name] = path
    return paths


@pytest.mark.parametrize("create", [True, False])
def test_corrupt_sqlite_file_is_reported_and_left_untouched(tmp_path: Path, create: bool) -> None:
    for name, path in _corrupt_copies(tmp_path).items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with pytest.raises(StateError) as caught:
            open_state("sqlite", path=path, create=create)
        assert str(path) in str(caught.value), name
        assert "untouched" in str(caught.value), name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        assert sorted(p.name for p in path.parent.iterdir()) == ["state.db"], name


def test_a_foreign_sqlite_database_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StateError, match="not a blocklist state"):
        open_state("sqlite", path=path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_state_newer_than_the_tool_asks_to_upgrade(store: Store) -> None:
    state = store.open()
    _fill(state)
    state.close()
    store.set_schema_version(SCHEMA_VERSION + 1)
    for create in (True, False):
        with pytest.raises(StateError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade"):
            store.open(create=create)
    store.set_schema_version(SCHEMA_VERSION)
    assert store.open(create=False).read_target(T2)  # untouched


# -- locking --------------------------------------------------------------------------------


def test_a_second_locker_fails_at_once_naming_the_holder(store: Store) -> None:
    first, second = store.open(), store.open()
    first.acquire_lock(ALICE)
    started = time.monotonic()
    with pytest.raises(LockError) as caught:
        second.acquire_lock(BOB)
    assert time.monotonic() - started < 2.0
    message = str(caught.value)
    assert message == f"state is locked by {ALICE.describe()}"
    assert "alice@runner-a (pid 4242, apply)" in message
    assert caught.value.holder == ALICE  # type: ignore[attr-defined]
    assert second.lock_holder() == ALICE
    first.acquire_lock(ALICE)  # taking it again while holding it is fine

    first.release_lock()
    assert second.lock_holder() is None
    second.acquire_lock(BOB)
    assert first.lock_holder() == BOB


def test_a_locker_with_a_timeout_waits_for_the_release(store: Store) -> None:
    first, second = store.open(), store.open()
    first.acquire_lock(ALICE)
    releaser = threading.Timer(0.4, first.release_lock)
    releaser.start()
    started = time.monotonic()
    try:
        second.acquire_lock(BOB, timeout=10)
    finally:
        releaser.join()
    waited = time.monotonic() - started
    assert 0.3 <= waited < 5.0
    assert first.lock_holder() == BOB


def test_a_locker_gives_up_when_its_timeout_runs_out(store: Store) -> None:
    first, second = store.open(), store.open()
    first.acquire_lock(ALICE)
    started = time.monotonic()
    with pytest.raises(LockError, match="alice@runner-a"):
        second.acquire_lock(BOB, timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 5.0


def test_release_lock_only_releases_our_own_lock(store: Store) -> None:
    first, second = store.open(), store.open()
    second.release_lock()  # holds nothing: a no-op
    first.acquire_lock(ALICE)
    second.release_lock()
    assert second.lock_holder() == ALICE


def test_break_lock_frees_a_lock_held_by_someone_else(store: Store) -> None:
    holder, breaker = store.open(), store.open()
    assert breaker.break_lock() is None  # nothing to break
    holder.acquire_lock(ALICE)
    assert breaker.break_lock() == ALICE
    assert breaker.lock_holder() is None
    breaker.acquire_lock(BOB)
    holder.release_lock()  # the old holder letting go must not free the new lock
    assert holder.lock_holder() == BOB


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(store: Store) -> None:
    if store.backend != "sqlite":
        pytest.skip("PostgreSQL frees the advisory lock with the dead session by itself")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = LockInfo("ci", socket.gethostname(), int(dead.stdout), ALICE.since)
    first, second = store.open(), store.open()
    first.acquire_lock(gone)
    first._lock_token = None  # type: ignore[attr-defined]  # as if its process died
    second.acquire_lock(BOB)
    assert second.lock_holder() == BOB
    alive = LockInfo("ci", socket.gethostname(), os.getppid(), ALICE.since)
    third, fourth = store.open(), store.open()
    second.release_lock()
    third.acquire_lock(alive)
    with pytest.raises(LockError):
        fourth.acquire_lock(BOB)


def test_closing_a_backend_releases_its_lock(store: Store) -> None:
    first, second = store.open(), store.open()
    first.acquire_lock(ALICE)
    first.close()
    second.acquire_lock(BOB)
    assert second.lock_holder() == BOB


def test_current_lock_info_names_the_ci_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("USER", "runner")
    info = current_lock_info("plan")
    assert (info.actor, info.pid, info.operation) == ("octocat", os.getpid(), "plan")
    assert info.since.tzinfo is not None and info.host
    monkeypatch.delenv("GITHUB_ACTOR")
    assert current_lock_info().actor == "runner"


# -- audit log ------------------------------------------------------------------------------


def test_audit_records_are_appended_and_read_back_in_order(store: Store) -> None:
    state = store.open()
    assert state.read_audit() == []
    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    records = [
        {"time": at, "actor": "alice", "counts": {"add": 3, "remove": 1}, "failures": []},
        {"time": at + timedelta(minutes=1), "actor": "bob", "commit": "abc123"},
        {"time": at + timedelta(minutes=2), "actor": "carol", "failures": [{"n": "+1"}]},
    ]
    for record in records:
        state.append_audit(record)
    got = store.open(create=False).read_audit()
    assert [r["actor"] for r in got] == ["alice", "bob", "carol"]
    assert got[0] == {**records[0], "time": "2026-11-22T10:00:00+00:00"}


def test_sqlite_audit_log_is_json_lines_beside_the_database(tmp_path: Path) -> None:
    state = open_state("sqlite", path=tmp_path / "state.db")
    state.append_audit({"actor": "alice"})
    log = tmp_path / "audit.log.jsonl"
    assert log.read_text() == '{"actor": "alice"}\n'
    with log.open("a") as fh:
        fh.write('{"actor": "torn by a cra')  # a crash mid-append
    state.append_audit({"actor": "bob"})
    assert [r["actor"] for r in state.read_audit()] == ["alice", "bob"]
    state.close()


# -- opening and connection errors ----------------------------------------------------------


def test_open_state_rejects_an_unknown_backend_or_a_missing_dsn() -> None:
    with pytest.raises(StateError, match="unknown state backend 'redis'"):
        open_state("redis")
    with pytest.raises(StateError, match="needs a DSN"):
        open_state("postgres")


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (
            "postgresql://ci:s3cr3t@db.example:5432/state",
            "postgresql://ci:***@db.example:5432/state",
        ),
        (
            "postgres://ci:p@ss@db/state?sslmode=require",
            "postgres://ci:***@db/state?sslmode=require",
        ),
        (
            "postgresql://db/state?user=ci&password=s3cr3t",
            "postgresql://db/state?user=ci&password=***",
        ),
        ("postgresql://ci@db/state", "postgresql://ci@db/state"),
        (
            "host=db user=ci password=s3cr3t dbname=state",
            "host=db user=ci password=*** dbname=state",
        ),
        ("host=db password = 'se cr\\'et' dbname=state", "host=db password = *** dbname=state"),
    ],
)
def test_mask_dsn_hides_the_password(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://ci:hunter2-secret@127.0.0.1:1/state?connect_timeout=3",
        "host=127.0.0.1 port=1 user=ci password=hunter2-secret connect_timeout=3",
        "host=127.0.0.1 password=hunter2 -secret",  # not even a valid DSN
    ],
)
def test_an_unreachable_postgres_is_one_line_without_the_password(dsn: str) -> None:
    with pytest.raises(StateError) as caught:
        open_state("postgres", dsn=dsn)
    message = str(caught.value)
    assert "hunter2" not in message and "secret" not in message
    assert "\n" not in message
    assert "PostgreSQL state" in message


# -- crash safety ---------------------------------------------------------------------------


def _last_reported(progress: Path) -> tuple[bool, int]:
    lines = progress.read_text().split()
    ready = "ready" in lines
    counts = [int(x) for x in lines if x.isdigit()]
    return ready, (counts[-1] if counts else 0)


def _worker_constants() -> tuple[int, int, str]:
    spec = importlib.util.spec_from_file_location("state_crash_worker", WORKER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BASE, module.BATCH, module.TARGET


def _check_after_kill(store: Store, progress: Path, worker_pid: int, where: str) -> int:
    BASE, BATCH, TARGET = _worker_constants()  # noqa: N806
    state = store.open()  # opens (and recovers) without complaint
    if store.backend == "sqlite":
        conn = sqlite3.connect(store.path)
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)], where
        conn.close()
    entries = state.read_target(TARGET)
    sizes = Counter((int(number[1:]) - BASE) // BATCH for number in entries)
    complete = len(sizes)
    assert all(size == BATCH for size in sizes.values()), (where, "a partial batch", sizes)
    assert sorted(sizes) == list(range(complete)), (where, "a hole in the batches")
    assert all(e.source == f"batch:{(int(n[1:]) - BASE) // BATCH}" for n, e in entries.items())
    assert state.serial() == complete, where
    _, reported = _last_reported(progress)
    # every batch the worker saw committed is there; at most the one in flight is extra
    assert reported <= complete <= reported + 1, (where, reported, complete)
    if complete:
        assert state.target_meta(TARGET) == {"last_batch": str(complete - 1)}, where

    holder = state.lock_holder()
    if store.backend == "sqlite":
        # the dead worker's row names it until the next locker sees its pid is gone
        if holder is not None:
            assert holder.pid == worker_pid and holder.operation == "crash-test", where
        state.acquire_lock(ALICE)  # taken over without `state unlock`
        state.release_lock()
    else:
        # its session died with it, and PostgreSQL let the advisory lock go
        state.acquire_lock(ALICE, timeout=10)
        state.release_lock()
    state.close()
    return complete


def test_kill_9_loses_at_most_the_batch_in_flight(store: Store, tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    moments = [  # (label, wait for "ready" first?, then sleep this long)
        ("while starting", False, rng.uniform(0.0, 0.6)),
        ("right after opening", True, rng.uniform(0.0, 0.03)),
        ("mid-run", True, rng.uniform(0.05, 0.25)),
        ("later", True, rng.uniform(0.3, 0.7)),
    ]
    args = [sys.executable, str(WORKER), "--backend", store.backend]
    args += ["--path", str(store.path)] if store.backend == "sqlite" else ["--dsn", store.dsn]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completes = []
    for label, wait_ready, delay in moments:
        where = f"kill {label} after {delay:.3f}s (seed {seed})"
        progress = tmp_path / f"progress-{len(completes)}.txt"
        with progress.open("wb") as out:
            worker = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 30
            while wait_ready and not _last_reported(progress)[0]:
                if worker.poll() is not None:
                    pytest.fail(f"worker died: {worker.stderr.read().decode()}")
                assert time.monotonic() < deadline, "worker never became ready"
                time.sleep(0.01)
            time.sleep(delay)
            assert worker.poll() is None, worker.stderr.read().decode()
        finally:
            worker.kill()  # SIGKILL
            worker.wait()
            worker.stderr.close()
        completes.append(_check_after_kill(store, progress, worker.pid, where))
    assert completes == sorted(completes)
    assert completes[-1] > 0, f"no batch was ever recorded (seed {seed})"


# -- per-number history and migrations ------------------------------------------------------


def test_history_keeps_when_first_recorded_and_updates_the_last(store: Store) -> None:
    from reconciler.domain import Applied

    state = store.open()
    t1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    t2 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    state.record_batch(T1, [entry("+919876543210", applied=Applied(t1, t1, "alice", "c0ffee"))])
    state.record_batch(T1, [entry("+919876543210", applied=Applied(t2, t2, "bob", "beef00"))])
    (got,) = state.read_target(T1).values()
    assert got.applied == Applied(t1, t2, "bob", "beef00")
    exported = state.export_state()
    assert exported["targets"][T1]["entries"][0]["applied"]["first"].startswith("2026-11-01")
    state.import_state(exported)
    assert next(iter(state.read_target(T1).values())).applied == Applied(t1, t2, "bob", "beef00")


def test_a_version_1_sqlite_state_migrates_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for statement in sqlite_backend.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (id, lineage, serial, schema_version) VALUES (1, 'lin', 7, 1)")
    conn.execute(
        "INSERT INTO entries (target, number, reason, source) VALUES (?, ?, 'fraud', 'a.yaml:3')",
        (T1, "+919876543210"),
    )
    conn.commit()
    conn.close()
    state = open_state("sqlite", path=path)
    try:
        assert state.lineage() == "lin" and state.serial() == 7
        (got,) = state.read_target(T1).values()
        assert (got.number, got.reason, got.source, got.pending, got.applied) == (
            "+919876543210", "fraud", "a.yaml:3", None, None,
        )  # fmt: skip
    finally:
        state.close()
    with sqlite3.connect(path) as check:
        version = check.execute("SELECT schema_version FROM blocklist_meta").fetchone()
    check.close()
    assert version == (SCHEMA_VERSION,)
