"""The state backend interface: what this tool remembers between runs.

State records, per target, the managed numbers with the attributes last
applied, per-target metadata (e.g. a provider's group id), a ``lineage`` id,
a ``serial`` counter (+1 per recorded batch) and a schema version. Backends
(SQLite, PostgreSQL) implement this interface and nothing else; planning and
apply only talk to it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..domain import ManagedEntry

#: 2: one schema for both backends (``blocklist_*`` tables), pending removes, and the
#: configuration a state belongs to; 3: when and by whom each number was recorded
SCHEMA_VERSION = 3
EXPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LockInfo:
    """Who holds the apply lock."""

    actor: str
    host: str
    pid: int
    since: datetime  # aware, UTC
    operation: str = "apply"

    def describe(self) -> str:
        return (
            f"{self.actor}@{self.host} (pid {self.pid}, {self.operation}) "
            f"since {self.since.isoformat(timespec='seconds')}"
        )


@dataclass
class BatchRecord:
    """The arguments of one ``record_batch`` call, kept to be recorded later together
    with others (``record_batches``)."""

    target: str
    upserts: Sequence[ManagedEntry] = ()
    deletes: Sequence[str] = ()
    meta: Mapping[str, str] | None = None
    pending: Mapping[str, str] | None = field(default=None)


class StateBackend(abc.ABC):
    """One state store. Every method is synchronous and safe to call from one thread."""

    # -- identity ---------------------------------------------------------------------
    @abc.abstractmethod
    def lineage(self) -> str:
        """A UUID fixed when the state is created (kept by export/import)."""

    @abc.abstractmethod
    def serial(self) -> int:
        """Incremented by every recorded batch, import and forget."""

    # -- reading ----------------------------------------------------------------------
    @abc.abstractmethod
    def read_target(self, target: str) -> dict[str, ManagedEntry]:
        """Managed entries of one target, keyed by E.164 number."""

    @abc.abstractmethod
    def targets(self) -> list[str]:
        """Names of the targets that have managed entries or metadata, sorted."""

    @abc.abstractmethod
    def target_meta(self, target: str) -> dict[str, str]:
        """Metadata a provider adapter asked to remember for a target."""

    @abc.abstractmethod
    def find_number(self, number: str) -> list[tuple[str, ManagedEntry]]:
        """Every (target, entry) that manages ``number``."""

    # -- writing ----------------------------------------------------------------------
    @abc.abstractmethod
    def configuration(self) -> str | None:
        """The identity of the configuration this state belongs to (None: unclaimed)."""

    @abc.abstractmethod
    def claim_configuration(self, identity: str) -> None:
        """Record that this state belongs to the configuration ``identity``."""

    @abc.abstractmethod
    def record_batch(
        self,
        target: str,
        upserts: Iterable[ManagedEntry] = (),
        deletes: Iterable[str] = (),
        meta: Mapping[str, str] | None = None,
        *,
        pending: Mapping[str, str] | None = None,
    ) -> None:
        """Apply one batch's outcomes in ONE transaction whose cost does not grow with
        the size of the state; serial += 1. An upsert clears a pending mark;
        ``pending`` marks managed numbers whose remove failed, with the reason."""

    def record_batches(self, records: Sequence[BatchRecord]) -> None:
        """Record several batches, in order, each as ``record_batch`` would (serial +=
        one per batch). A backend may put them in one transaction (the SQL backends
        do): each batch is then still all or nothing, and so is the group."""
        for r in records:
            self.record_batch(r.target, r.upserts, r.deletes, r.meta, pending=r.pending)

    @abc.abstractmethod
    def forget(self, target: str, number: str) -> bool:
        """Remove ``number`` from ``target`` without any API call; True if it was there."""

    @abc.abstractmethod
    def move_target(self, source: str, destination: str) -> int:
        """Rename a target in state (entries and metadata); how many entries moved."""

    # -- locking ----------------------------------------------------------------------
    @abc.abstractmethod
    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> None:
        """Take the exclusive apply lock, waiting up to ``timeout`` seconds; raise
        ``LockError`` naming the holder (``LockInfo.describe()``) otherwise."""

    @abc.abstractmethod
    def release_lock(self) -> None:
        """Release the lock this object holds (no-op if it holds none)."""

    @abc.abstractmethod
    def lock_holder(self) -> LockInfo | None:
        """Who holds the lock now, if anyone."""

    @abc.abstractmethod
    def break_lock(self) -> LockInfo | None:
        """Break a stale lock held by someone else; return who held it."""

    # -- moving state -----------------------------------------------------------------
    @abc.abstractmethod
    def export_state(self) -> dict[str, Any]:
        """Everything as a JSON-serialisable dict (format_version, lineage, serial,
        schema_version, targets: {name: {meta, entries: [...]}})."""

    @abc.abstractmethod
    def import_state(self, data: Mapping[str, Any]) -> None:
        """Replace everything with an export (keeps its lineage); serial becomes
        max(own, imported) + 1."""

    # -- audit log --------------------------------------------------------------------
    @abc.abstractmethod
    def append_audit(self, record: Mapping[str, Any]) -> None:
        """Append one apply record to the audit log kept beside the state."""

    @abc.abstractmethod
    def read_audit(self) -> list[dict[str, Any]]:
        """Every audit record, oldest first."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and any lock held."""

    def __enter__(self) -> StateBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
