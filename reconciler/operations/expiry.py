"""``blocklist expiring``: the declared entries that have expired or will within a
window, with their tickets: what the daily expiry pull request prunes and what it
asks reviewers to renew.

Offline: reads the lists (their ``entries_from`` files too) and nothing else.
Expiry is the plan's (``expires``, or ``added`` + ``ttl``, or the list's defaults).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ..desired import Declaration, load_desired
from ..errors import BlocklistError
from ..expiry import parse_duration_days


@dataclass
class ExpiryOptions:
    directory: Path
    now: dt.datetime
    window: str = "14d"


@dataclass(frozen=True)
class ExpiringEntry:
    number: str  # E.164
    list_name: str
    source: str  # file:line
    written: str  # as the list writes it
    expires: dt.datetime
    ticket: str | None
    reason: str | None


@dataclass
class ExpiryReport:
    now: dt.datetime
    until: dt.datetime
    window: str
    expired: list[ExpiringEntry] = field(default_factory=list)  # expires <= now
    expiring: list[ExpiringEntry] = field(default_factory=list)  # now < expires <= until


def run_expiring(options: ExpiryOptions) -> ExpiryReport:
    """Every declared entry expired by ``now`` or expiring by ``now + window``."""
    try:
        until = options.now + parse_duration_days(options.window)
    except ValueError as exc:
        raise BlocklistError(f"--within: {exc}") from None
    desired = load_desired(options.directory, str(options.directory), expiring_before=until)
    report = ExpiryReport(options.now, until, options.window)
    for d in desired.declarations:
        if d.expires is None:
            continue
        entry = _entry(d)
        (report.expired if d.expires <= options.now else report.expiring).append(entry)
    report.expired.sort(key=lambda e: (e.expires, e.source))
    report.expiring.sort(key=lambda e: (e.expires, e.source))
    return report


def _entry(d: Declaration) -> ExpiringEntry:
    assert d.expires is not None
    ticket = dict(d.metadata).get("ticket")
    return ExpiringEntry(
        d.number,
        d.list_name,
        d.source,
        d.written,
        d.expires,
        None if ticket in (None, "") else str(ticket),
        d.reason,
    )
