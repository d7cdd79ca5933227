"""A list file's entries in their common shapes, read in bulk: one regex pass over
the ``entries:`` block instead of a Loc tree of a hundred thousand mappings.

``read_list`` returns the file's top-level mapping as ``yamlfast`` builds it, with
its ``entries`` value an ``EntryRows``: one row of raw texts per entry (the
number, and the texts of ``reason``, ``expires``, ``added``, ``ttl``, ``ticket``,
``note`` and ``owner``, quotes kept so that an empty value is told from an absent
one), a row per run of blank and comment lines between entries, and a row for any
other line (``other``: the block is not in the shapes read here). ``desired``
checks and builds the entries from the rows; whenever a row is ``other``, or an
entry has any problem, it loads the file with the generic loaders instead, which
also word the problems. So this module never decides what is valid: it only
declines.

The shapes read: block sequence items at one indentation, each either a number
(double-quoted without escapes, single-quoted without quotes inside, or plain
digits with an optional ``+`` and single spaces) or a mapping whose keys are, in
this order and each at most once, ``number`` (first, on the item's line), then
``reason``, ``expires``, ``added``, ``ttl``, ``ticket``, ``note``, ``owner``, each
on its own line with a one-line scalar; trailing comments; blank and comment lines
between items. Anything else (another key order, other keys, nested values,
comments inside an item, an ``entries`` value on its key's line) is declined.

``tests/test_yamlentries.py`` holds it to the generic path on random documents.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .yamlfast import USABLE, Bail, check_characters, parse, plain
from .yamlnodes import LocDict, LocList

#: a row: (short, number, reason, expires, added, ttl, ticket, note, owner, skip, other),
#: None where absent
Row = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class EntryRows:
    """The entries of a list file as rows of raw texts (see the module docstring), read
    as they are iterated (a list of them would hold a copy of every value at once)."""

    text: str  # the whole file, for the generic loaders when the rows will not do
    start: int  # where the block starts in the text
    end: int  # and where it ends
    line: int  # the line the first row starts on (1-based)
    col: int  # the column of every item's value or first key (1-based)

    @property
    def rows(self) -> Iterator[Row]:
        """Every row, in order; a row with ``other`` is a line not read here."""
        pattern = _rows_pattern(self.col - 3)
        return map(re.Match.groups, pattern.finditer(self.text, self.start, self.end))  # type: ignore[arg-type]


_DQ = r'"[^"\\\n]*+"'
_SQ = r"'(?:[^'\n]++|'')*+'"
# a plain scalar: a first character that starts one (no indicator, no space), then
# words of any characters but spaces, with ':' only between other characters (': '
# and a final ':' are mapping indicators), words after spaces not starting a comment;
# no trailing spaces (they are not part of the scalar)
_WORD_REST = r"[^\n: ]*+(?::[^\n: ]++)*+"
_PLAIN = rf"""[^\s\-?:,\[\]{{}}#&*!|>'"%@`]{_WORD_REST}(?:[ ]++[^\n:# ]{_WORD_REST})*+"""
_NUMBER = rf"""{_DQ}|'[^'\n]*+'|\+?[0-9]++(?:[ ][0-9]++)*+"""
_TEXT = rf"{_DQ}|{_SQ}|{_PLAIN}"
_WHEN = r"[0-9][0-9:.+\-TZ]*+(?:[ ]++[0-9:.+\-TZ]++)*+"
_END = r"(?:[ ]++(?:\#[^\n]*+)?)?\n"  # the end of a line: spaces, perhaps a comment
#: the keys after ``number``, in the order read, each with its value's pattern
KEYS = (
    ("reason", _TEXT),
    ("expires", _WHEN),
    ("added", _WHEN),
    ("ttl", _TEXT),
    ("ticket", _TEXT),
    ("note", _TEXT),
    ("owner", _TEXT),
)

_ENTRIES_KEY = re.compile(r"^entries:(?:[ ]++(?:\#[^\n]*+)?)?\n", re.MULTILINE)
_FIRST_ITEM = re.compile(r"(?:[ ]*+(?:\#[^\n]*+)?\n)*+([ ]*+)-[ ]")
#: the line break before the first line after the block: content at column 1 (and, for
#: items at column 1, not an item); a literal first makes the search fast
_BLOCK_END = re.compile(r"\n[^ \n#]")
_BLOCK_END_AT_0 = re.compile(r"\n(?:[^ \n#-]|-[^ \n])")


@functools.cache
def _rows_pattern(indent: int) -> re.Pattern[str]:
    """One row per match, matches tiling the block: an item, a run of blank and comment
    lines, or any other line (``other``: the block is not read here)."""
    item = " " * indent
    key = item + "  "
    keys = "".join(rf"(?:{key}{name}:[ ]++({value}){_END})?" for name, value in KEYS)
    return re.compile(
        rf"{item}-[ ](?:({_NUMBER}){_END}|number:[ ]++({_NUMBER}){_END}{keys})"
        rf"|((?:[ ]*+(?:\#[^\n]*+)?\n)++)"
        rf"|([^\n]*+\n|[^\n]++)"
    )


def read_list(text: str) -> LocDict | None:
    """The top-level mapping of a list file with its ``entries`` read as ``EntryRows``,
    exactly as ``yamlfast`` builds it otherwise; None when the text is not in the shape
    read here (the generic loaders then read it)."""
    if not USABLE:  # pragma: no cover
        return None
    try:
        return _read(text)
    except Bail:
        return None
    except Exception:  # a corner this reader did not foresee: the generic loaders decide
        return None


def scalar(raw: str) -> Any:
    """The value of a row's raw text: a quoted scalar's content, a plain scalar typed by
    ``yamlfast`` (PyYAML's resolver and constructor); ``Bail`` where it would decline."""
    first = raw[0]
    if first == '"':
        return raw[1:-1]
    if first == "'":
        return raw[1:-1].replace("''", "'")
    return plain(raw)


def _read(text: str) -> LocDict | None:
    key = _ENTRIES_KEY.search(text)
    if key is None:
        return None
    start = key.end()
    first = _FIRST_ITEM.match(text, start)
    if first is None:
        return None
    indent = len(first.group(1))
    end_at = (_BLOCK_END if indent else _BLOCK_END_AT_0).search(text, start - 1)
    end = end_at.start() + 1 if end_at is not None else len(text)
    check_characters(text)
    # the rest of the file without the block; what follows it moves back up after
    header: Any = parse(text[:start] + text[end:], checked=True)
    line = text.count("\n", 0, key.start()) + 1
    if end < len(text):
        _shift(header, line, text.count("\n", start, end))
    if (
        not isinstance(header, LocDict)
        or header.mark != (1, 1)
        or header.key_marks.get("entries") != (line, 1)
        or header["entries"] is not None
    ):
        return None
    del header.raws["entries"]  # a collection has no raw text
    header["entries"] = EntryRows(text, start, end, line + 1, indent + 3)
    return header


def _shift(node: Any, after: int, lines: int) -> None:
    """Move every mark of ``node`` below line ``after`` down by ``lines``."""
    if isinstance(node, LocDict):
        if node.mark[0] > after:
            node.mark = (node.mark[0] + lines, node.mark[1])
        for key, (line, col) in node.key_marks.items():
            if line > after:
                node.key_marks[key] = (line + lines, col)
        for value in node.values():
            _shift(value, after, lines)
    elif isinstance(node, LocList):
        if node.mark[0] > after:
            node.mark = (node.mark[0] + lines, node.mark[1])
        node.marks[:] = [(n + lines, c) if n > after else (n, c) for n, c in node.marks]
        for value in node:
            _shift(value, after, lines)
