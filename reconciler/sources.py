"""Bulk entry sources (a list's ``entries_from:``): CSV files with a header row and
TXT files with one number per line, for lists that arrive by the hundred thousand
from spreadsheets.

Owns the two file formats: reading one in bulk (``csv`` module, rows with their
line numbers), the expiry of a row (resolved once per distinct combination of
values: a million rows share a few hundred dates, and share their datetime
objects too) and removing expired rows (``blocklist fmt --prune-expired``). The
rules an entry obeys (numbers, duplicates, conflicts, protected numbers, policy)
are ``desired``'s, the same as for YAML entries; nothing here normalises a number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .expiry import add_ttl, to_utc
from .models import TTL_PATTERN

SUFFIXES = (".csv", ".txt")
#: the columns with a meaning; any other column is metadata (kept, never sent)
KNOWN_COLUMNS = ("number", "reason", "expires", "added", "ttl")

_TTL = re.compile(TTL_PATTERN)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SourceProblem(Exception):
    """A source file cannot be read as one; ``line`` is where (1: the file as a whole)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Table:
    """A source file read: its columns and its rows (line, cells), blank rows skipped."""

    columns: list[str]  # as the header names them, lower-cased
    index: dict[str, int]  # column name -> position
    rows: Iterator[tuple[int, list[str]]]


def read_text(path: Path) -> str:
    """The file's text (UTF-8, a byte order mark dropped); ``OSError`` as open raises it,
    ``SourceProblem`` at the line of a byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceProblem(line, f"not UTF-8 (byte 0x{data[exc.start]:02x})") from None
    return text[1:] if text.startswith("\ufeff") else text


def lines_of(text: str) -> list[str]:
    """The lines as the csv module counts them (``\\n``-terminated, kept whole)."""
    return io.StringIO(text, newline="").readlines()


def open_table(path: Path, text: str | None = None) -> Table:
    """Read ``path`` (or its ``text``) as a source; ``SourceProblem`` for a bad header."""
    if text is None:
        text = read_text(path)
    if path.suffix.lower() == ".txt":
        return Table(["number"], {"number": 0}, _txt_rows(text))
    lines = lines_of(text)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise SourceProblem(reader.line_num or 1, f"header: {exc}") from None
    if header is None or not any(cell.strip() for cell in header):
        raise SourceProblem(1, "empty: expected a header row naming a 'number' column")
    columns = [cell.strip().lower() for cell in header]
    index: dict[str, int] = {}
    for i, name in enumerate(columns):
        if not name:
            raise SourceProblem(1, f"header: column {i + 1} has no name")
        if name in index:
            raise SourceProblem(1, f"header: column {name!r} is named twice")
        index[name] = i
    if "number" not in index:
        shown = ", ".join(columns)
        raise SourceProblem(1, f"header: no 'number' column (columns: {shown})")
    return Table(columns, index, _csv_rows(reader))


def _csv_rows(reader: Any) -> Iterator[tuple[int, list[str]]]:
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SourceProblem(reader.line_num, f"invalid CSV: {exc}") from None
        if row and (len(row) > 1 or row[0].strip()):
            yield reader.line_num, row


def _txt_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    for line_no, line in enumerate(text.split("\n"), 1):
        value = line.split("#", 1)[0].strip() if "#" in line else line.strip()
        if value:
            yield line_no, [value]


def parse_when(text: str) -> dt.datetime:
    """A cell's date (UTC midnight) or ISO datetime with a zone, as an aware UTC instant."""
    value = text.strip()
    try:
        if _DATE.match(value):
            return to_utc(dt.date.fromisoformat(value))
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"invalid date or time {value!r} (use e.g. 2027-03-01 or 2027-03-01T09:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r}: a datetime needs a time zone (e.g. 2027-03-01T09:00:00Z)")
    return parsed.astimezone(dt.UTC)


class Expiries:
    """The expiry of a row from its ``expires``, ``added`` and ``ttl`` cells and the
    list's defaults, by the rules of a YAML entry; each distinct combination is
    resolved once and its datetime shared."""

    def __init__(self, default_expires: dt.datetime | None, default_ttl: str | None) -> None:
        self.default_expires = default_expires
        self.default_ttl = default_ttl
        self._cache: dict[tuple[str, str, str], tuple[dt.datetime | None, str | None]] = {}

    def resolve(self, expires: str, added: str, ttl: str) -> tuple[dt.datetime | None, str | None]:
        """(expiry, None) or (None, why the cells are wrong)."""
        key = (expires, added, ttl)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(expires.strip(), added.strip(), ttl.strip())
        return found

    def _resolve(self, expires: str, added: str, ttl: str) -> tuple[dt.datetime | None, str | None]:
        if ttl and not _TTL.match(ttl):
            return None, f"ttl {ttl!r} is not a duration (use e.g. 90d, 12w, 6mo, 1y)"
        if not ttl and not expires:
            ttl = self.default_ttl or ""
        if expires and ttl:
            return None, "give either 'expires' or 'ttl', not both"
        try:
            if expires:
                return parse_when(expires), None
            if ttl:
                if not added:
                    return None, f"ttl {ttl!r} needs 'added' (the date it counts from)"
                return add_ttl(parse_when(added), ttl), None
        except (ValueError, OverflowError) as exc:
            return None, f"bad expiry: {exc}"
        return self.default_expires, None


def cell(row: list[str], column: int | None) -> str:
    """A row's cell of ``column`` ("" when the table has no such column)."""
    return row[column] if column is not None else ""


@dataclass(frozen=True)
class PrunedRow:
    """A row ``prune_expired`` removed."""

    line: int
    number: str  # as written
    expires: dt.datetime
    metadata: tuple[tuple[str, str], ...]


def prune_expired(
    path: Path, text: str, now: dt.datetime, expiries: Expiries
) -> tuple[str, list[PrunedRow]]:
    """``text`` without the rows that have expired by ``now``; every other line (the
    header, blank lines, rows whose expiry is not valid) is kept byte for byte. A TXT
    source has no expiry: nothing to prune."""
    if path.suffix.lower() != ".csv":
        return text, []
    lines = lines_of(text)
    table = open_table(path, text)
    ex, ad, tt = (table.index.get(k) for k in ("expires", "added", "ttl"))
    number_col = table.index["number"]
    known = {table.index[k] for k in KNOWN_COLUMNS if k in table.index}
    drop: list[tuple[int, int]] = []
    pruned: list[PrunedRow] = []
    previous_end = 1  # the header's last line
    for end, row in table.rows:
        start = previous_end + 1
        previous_end = end
        if len(row) != len(table.columns):
            continue
        when, why = expiries.resolve(cell(row, ex), cell(row, ad), cell(row, tt))
        if why is None and when is not None and when <= now:
            meta = tuple(
                (table.columns[i], v) for i, v in enumerate(row) if i not in known and v.strip()
            )
            pruned.append(PrunedRow(end, row[number_col].strip(), when, meta))
            drop.append((start, end))
    if not drop:
        return text, []
    kept: list[str] = []
    position = 1
    for start, end in drop:
        # blank lines csv skipped belong to the row after them: keep them
        first = start
        while first < end and not lines[first - 1].strip():
            first += 1
        kept.extend(lines[position - 1 : first - 1])
        position = end + 1
    kept.extend(lines[position - 1 :])
    return "".join(kept), pruned
