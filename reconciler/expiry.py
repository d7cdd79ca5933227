"""Expiry arithmetic: dates, zoned datetimes and ``added`` + ``ttl``.

Declarative, never relative to now: ``expires = added + ttl``. A bare date
means UTC midnight of that day. All results are aware UTC datetimes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from functools import lru_cache

_TTL = re.compile(r"^([1-9][0-9]*)(h|d|w|mo|y)$")


def to_utc(value: dt.date | dt.datetime) -> dt.datetime:
    """A date -> UTC midnight; an aware datetime -> the same instant in UTC."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime needs a time zone")
        return value.astimezone(dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def add_ttl(start: dt.datetime, ttl: str) -> dt.datetime:
    """``start`` + ``ttl`` where ttl is e.g. 24h, 90d, 12w, 6mo, 1y (calendar months/years)."""
    m = _TTL.match(ttl)
    if not m:
        raise ValueError(f"invalid ttl {ttl!r} (use e.g. 90d, 12w, 6mo, 1y)")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "h":
        return start + dt.timedelta(hours=n)
    if unit == "d":
        return start + dt.timedelta(days=n)
    if unit == "w":
        return start + dt.timedelta(weeks=n)
    months = n if unit == "mo" else 12 * n
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return start.replace(year=year, month=month0 + 1, day=day)


def parse_duration_days(text: str) -> dt.timedelta:
    """``14d``/``2w``/``36h`` as a timedelta (for --expiring-within)."""
    m = _TTL.match(text.strip())
    if not m or m.group(2) in ("mo", "y"):
        raise ValueError(f"invalid duration {text!r} (use e.g. 14d, 2w, 36h)")
    n, unit = int(m.group(1)), m.group(2)
    return {"h": dt.timedelta(hours=n), "d": dt.timedelta(days=n), "w": dt.timedelta(weeks=n)}[unit]


#: the instants a run may be planned at: every expiry, window and TTL computed from
#: them stays inside what datetime can hold
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def parse_timestamp(text: str) -> dt.datetime:
    """``--at``: an ISO date or datetime with a zone, between 1970 and 9000."""
    value = text.strip()
    shown = value[:40] + ("…" if len(value) > 40 else "")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        if len(value) == 10:
            parsed = to_utc(dt.date.fromisoformat(value))
        else:
            parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {shown!r} needs a time zone (e.g. a trailing Z)")
        parsed = parsed.astimezone(dt.UTC)
    except OverflowError:
        parsed = None
    except ValueError as exc:
        if "time zone" in str(exc):
            raise
        raise ValueError(f"invalid timestamp {shown!r} (use e.g. 2026-11-22T00:00:00Z)") from None
    if parsed is None or not EARLIEST <= parsed < LATEST:
        raise ValueError(f"timestamp {shown!r} is out of range (1970 to 8999)")
    return parsed


@lru_cache(maxsize=65536)
def iso(value: dt.datetime | None) -> str | None:
    """Canonical text of an instant: ``2027-03-01T00:00:00Z`` (cached: lists share a few
    hundred expiries across hundreds of thousands of entries)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
