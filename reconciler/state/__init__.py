"""Opening a state backend, and moving state through a file.

This package owns the choice of backend (``open_state``), who is taking the
apply lock (``current_lock_info``) and moving state through a JSON file
(``export_to_file`` / ``import_from_file``). What the backends share lives in
``sql.py`` (the schema and its queries) and ``codec.py`` (one encoding of an
entry); the backends themselves, ``sqlite.py`` and ``postgres.py``, are imported
only when opened. It never talks to a provider and never decides what to apply.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_atomic
from ..ci import actor
from ..errors import StateError
from .base import EXPORT_FORMAT_VERSION, SCHEMA_VERSION, LockInfo, StateBackend
from .codec import parse_export

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
    read_only: bool = False,
) -> StateBackend:
    """Open (and, with ``create``, create or migrate) the state of ``backend``.

    ``path`` is the SQLite file (default ``.blocklist/state.db``); ``dsn`` the
    PostgreSQL connection string. ``read_only`` (plan, audit, why with a read-only
    DSN) never writes: no schema is created or migrated, the session is read-only.
    Raises ``StateError`` when the state is missing (``create=False``), corrupt, too
    new for this tool, unreachable, or (not ``read_only``) not writable.
    """
    if backend == "sqlite":
        from .sqlite import SqliteState

        return SqliteState(DEFAULT_SQLITE_PATH if path is None else path, create=create)
    if backend == "postgres":
        if not dsn:
            raise StateError("the postgres state backend needs a DSN (state.dsn)")
        from .postgres import PostgresState

        return PostgresState(dsn, create=create, read_only=read_only)
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
    """Who is running (``ci.actor``), this host and pid, now."""
    return LockInfo(
        actor=actor(),
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
    try:
        write_atomic(target, text)
    except OSError as exc:
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
