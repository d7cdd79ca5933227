"""What every view shares: counts, dates, masking, one-line cleaning and the
markdown budget, so that a plan, an audit and an apply report say a number, a
date or a masked phone number the same way.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from typing import Protocol

from ..expiry import iso

#: markdown output stays strictly below this many characters (GitHub comments and
#: issue bodies take 65 536)
MARKDOWN_LIMIT = 60_000

_E164_IN_TEXT = re.compile(r"\+\d{6,15}")


def mask_number(number: str) -> str:
    """``+919876543210`` -> ``+91987*****10``: keep ``+``, 5 leading and 2 trailing digits.

    Short numbers keep fewer leading digits so that at least 3 are always hidden.
    """
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus) :]
    n = len(digits)
    tail = 2 if n > 4 else 0
    head = min(5, max(n - tail - 3, 0))
    return plus + digits[:head] + "*" * (n - head - tail) + digits[n - tail :]


def mask_text(text: str) -> str:
    """Mask every E.164-looking number (``+`` and 6-15 digits) inside free text."""
    return _E164_IN_TEXT.sub(lambda m: mask_number(m.group(0)), text)


def group_thousands(n: int) -> str:
    """``9870`` -> ``9,870``: one separator in plans, reports, audits and markdown. A
    comma, not a space: a plain space lets a table cell wrap a count ("8 / 731"), and
    a narrow no-break space is invisible in many terminal fonts and logs."""
    return f"{n:,}"


def plural(n: int, one: str, many: str) -> str:
    """``1 number``, ``9,870 numbers``."""
    return f"{group_thousands(n)} {one if n == 1 else many}"


def clean(text: str) -> str:
    """One line of plain text: every character that is not printable (newlines, tabs,
    ANSI escapes, line separators) becomes a space, so provider or list text can
    neither break a line nor colour a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " for c in text)


def day(value: dt.datetime | None) -> str:
    """A date when the instant is UTC midnight, else the full instant; "" for None."""
    return day_of(iso(value))


def day_of(text: str | None) -> str:
    """``day`` of an instant already written as ``iso`` does (``2027-03-01T00:00:00Z``
    -> ``2027-03-01``); "" for None. Lists mostly give dates: a time of day only when
    there is one keeps the columns narrow."""
    text = text or ""
    return text[:10] if text.endswith("T00:00:00Z") else text


def instant(value: dt.datetime) -> str:
    """``iso`` with sub-second precision kept when there is any (plan files round-trip)."""
    if value.microsecond:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return iso(value) or ""


def cell_width(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# -- the markdown budget ----------------------------------------------------------------


class Section(Protocol):
    """A block of a markdown document that holds as many lines as the budget allows."""

    lines: list[str]

    def candidates(self) -> Iterator[str]:
        """The lines it could show, in order, each ending in a newline."""
        ...


def share_lines(sections: list[Section], budget: int) -> int:
    """Give each section one more line in turn while it fits: equal line counts, and
    a document that never passes ``budget`` characters; returns what is left of the
    budget. Sections are framed whole by their caller (a ``<details>`` block is never
    cut open)."""
    pending = {i: s.candidates() for i, s in enumerate(sections)}
    while pending:
        for i in list(pending):
            line = next(pending[i], None)
            if line is None or len(line) > budget:
                del pending[i]
                continue
            budget -= len(line)
            sections[i].lines.append(line)
    return budget


def share_lines_by_priority(tiers: list[list[Section]], budget: int) -> int:
    """``share_lines`` tier after tier: no line of a later tier is taken while a line
    of an earlier one still fits (destructive changes before adds); returns what is
    left of the budget."""
    for sections in tiers:
        budget = share_lines(sections, budget)
    return budget
