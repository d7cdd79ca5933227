"""The provider-agnostic values that flow between loader, planner, adapters and state.

Slotted dataclasses with no validation of their own (the loader validates
once). The per-number ones (DesiredEntry, LiveEntry, ManagedEntry) are built by
the hundred thousand, so they are not ``frozen`` (a frozen dataclass costs ~5x
to construct): treat every value here as immutable all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class Target:
    """One provider instance plus its scope, named ``INSTANCE/SCOPE-VALUE``."""

    name: str  # PROVIDER/SCOPE-VALUE
    provider: str  # instance name from providers.yaml
    type: str  # provider type (a registered one: ``blocklist providers``)
    scope: tuple[tuple[str, str], ...] = ()  # e.g. (("group", "fraud-callers"),)
    exclusive: bool = False  # mode: exclusive -> owns the whole scope

    def scope_dict(self) -> dict[str, str]:
        return dict(self.scope)

    def scope_value(self, key: str) -> str:
        return dict(self.scope)[key]


@dataclass(slots=True)
class DesiredEntry:
    """A number declared for a target, after merging all lists."""

    number: str  # E.164
    reason: str | None = None
    expires: datetime | None = None  # aware, UTC
    attrs: tuple[tuple[str, str], ...] = ()  # provider-visible attributes, e.g. reject_type
    source: str = ""  # "blocklists/fraud.yaml:12"
    list_name: str = ""


@dataclass(slots=True)
class LiveEntry:
    """A number as a provider reports it, normalised to E.164."""

    number: str  # E.164
    raw: str = ""  # as the provider wrote it
    attrs: tuple[tuple[str, str], ...] = ()  # e.g. (("reject_type", "unsubscribe"),)
    #: the provider's ids of the entry, where it removes by id (a provider may hold one
    #: number under several ids; all of them are removed)
    provider_ids: tuple[str, ...] = ()
    opt_out: bool = False  # added by the provider / its users (STOP): never removed
    #: the provider's text could not be read as one number (``number`` is then
    #: ``"?" + raw``): shown as unmanaged, never added over or removed, in any mode
    unparsed: bool = False


@dataclass(frozen=True, slots=True)
class Applied:
    """When and by whom this tool recorded a number (state's per-number history, for
    ``blocklist why``): one object per batch, shared by its entries."""

    first: datetime  # when it was first recorded (added or adopted)
    last: datetime  # when it was last recorded
    by: str | None = None  # the actor of that last apply
    commit: str | None = None  # the commit that apply ran at


@dataclass(slots=True)
class ManagedEntry:
    """What state remembers of a number this tool put there."""

    number: str
    expires: datetime | None = None
    reason: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()
    provider_ids: tuple[str, ...] = ()
    source: str = ""
    #: why the last remove of it failed; the entry stays managed until a remove is
    #: confirmed, so the next plan shows the remove again (None: nothing pending)
    pending: str | None = None
    applied: Applied | None = None  # when and by whom it was recorded


OpKind = Literal["add", "remove"]


# Op and Outcome: one per number written, built by the ten thousand before the first
# request of a target (not frozen, for the cost; hashed by value as a frozen one is).
@dataclass(slots=True, unsafe_hash=True)
class Op:
    """One write to carry out on a provider: an add or a remove of one number."""

    kind: OpKind
    number: str  # E.164
    expires: datetime | None = None
    attrs: tuple[tuple[str, str], ...] = ()
    provider_ids: tuple[str, ...] = ()  # for removes by id
    reason: str | None = None
    source: str = ""


OutcomeStatus = Literal["done", "already", "failed", "retryable", "unconfirmed"]


@dataclass(slots=True, unsafe_hash=True)
class Outcome:
    """The result of one Op, as the provider's reply says it.

    - ``done``: the provider confirmed it; ``already``: the provider confirmed the
      wanted state already held (already blocked / not in the list). Both count as done.
    - ``failed``: a failure the provider documents as permanent (e.g. an invalid
      number format): not re-sent.
    - ``retryable``: any other failure, whatever its wording: re-sent under the retry
      policy; the report keeps the provider's last reason.
    - ``unconfirmed``: a remove whose reply cannot tell "not there" from "failed"
      (one provider lists both under one key): re-sent, and counted as ``already``
      only when every send of the apply reported it so.
    """

    op: Op
    status: OutcomeStatus
    reason: str | None = None  # the provider's own words on failure
    provider_ids: tuple[str, ...] = ()  # ids the provider gave on add (where it removes by id)
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("done", "already")


@dataclass(slots=True)
class Batch:
    """Ops sent together in one request (or one logical call for one-per-call APIs).

    Batches with a lower ``phase`` of a target run to completion before higher ones
    (e.g. removes before adds, a group's creation before its updates).
    ``fields`` carries request-level values the ops share (e.g. one expiry).
    """

    ops: list[Op]
    phase: int = 0
    fields: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class BatchResult:
    """What one batch did: per-op outcomes, and target metadata to remember (group id)."""

    outcomes: list[Outcome]
    target_meta: dict[str, str] | None = None
