"""Edit list files in place, keeping every comment: ``block`` and ``unblock`` add,
update and remove entries, ``fmt`` writes a list in its canonical form and prunes
expired entries.

Owns the round trip of a list file's text. ruamel.yaml's round-trip tree is what
is edited and dumped (comments, blank lines, order, quoting and flow style kept);
the loader's own tree (``yamlload``) says what each scalar means, as the desired
state reads it. The two read YAML differently (ruamel 1.2, the loader 1.1: an
unquoted ``+919876543210`` is text to one and a number without its ``+`` to the
other), so the loader's raw text wins, and every plain scalar that is not text is
written back exactly as it was written. Text in, text out: writing the file
(atomically) and validating the result are the operations' job.

A comment ruamel keeps after an item (the full-line comments below it, before the
next item) is moved, when that item is removed or reordered, to stay where it was
in the file: only the comments on a removed entry's own lines go with it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from .errors import BlocklistError
from .expiry import add_ttl, iso, to_utc
from .numbers import InvalidNumber, normalise
from .yamlload import load_text
from .yamlnodes import LocDict, LocList

#: the keys of a long entry in canonical order; metadata keys follow, as written
CANONICAL_KEYS = ("number", "reason", "expires", "added", "ttl")
_RANK = {k: i for i, k in enumerate(CANONICAL_KEYS)}


class EditError(BlocklistError):
    """A list file that cannot be edited as asked (names the file and why)."""


class _Verbatim(str):
    """A plain scalar written back exactly as it was written."""


def _represent_verbatim(representer: Any, data: _Verbatim) -> Any:
    text = str(data)
    tag = representer.dumper.resolver.resolve(ScalarNode, text, (True, False))
    return representer.represent_scalar(tag, text)


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 1 << 16  # never fold a long line
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    y.representer.add_representer(_Verbatim, _represent_verbatim)
    return y


@dataclass(frozen=True)
class EntryFields:
    """What ``block`` writes into an entry besides its number."""

    reason: str | None = None
    expires: dt.date | dt.datetime | None = None
    ttl: str | None = None
    added: dt.date | None = None  # with ttl: the date it counts from
    metadata: tuple[tuple[str, str], ...] = ()  # ticket, note, owner, in this order

    @property
    def empty(self) -> bool:
        return not (self.reason or self.expires or self.ttl or self.metadata)

    def items(self) -> list[tuple[str, Any]]:
        """(key, value) in canonical order, for the keys given."""
        out: list[tuple[str, Any]] = []
        if self.reason is not None:
            out.append(("reason", self.reason))
        if self.expires is not None:
            out.append(("expires", self.expires))
        if self.ttl is not None:
            out.append(("added", self.added))
            out.append(("ttl", self.ttl))
        out.extend(self.metadata)
        return out


@dataclass(frozen=True)
class EntryRef:
    """An entry of a list file: its position, its number and where it is written."""

    index: int
    number: str | None  # E.164; None when the loader cannot read it as a number
    raw: str  # as written
    line: int
    long: bool  # a mapping (number plus keys), not just the number
    expires: dt.datetime | None  # after defaults and ttl (None: never, or unreadable)
    ticket: str | None = None
    reason: str | None = None


@dataclass
class Pruned:
    """An entry that ``prune_expired`` removed."""

    number: str  # E.164 where it can be read, else as written
    line: int
    expires: dt.datetime
    ticket: str | None = None


@dataclass
class FormatReport:
    """What formatting one list text changed."""

    numbers: int = 0  # numbers rewritten in E.164
    reordered: int = 0  # long entries whose keys were put in canonical order
    pruned: list[Pruned] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (line, why): left alone


class ListText:
    """One list file's text, loaded for editing; ``dump()`` gives the edited text.

    ``canonical`` lays the file out as ``fmt`` writes it (2-space mappings, sequences
    indented under their key); otherwise the file's own indentation is kept."""

    def __init__(self, text: str, file: str, *, canonical: bool = False) -> None:
        self.file = file
        self.original = text
        # what ruamel does not keep by itself: a byte order mark, CRLF line ends
        self.bom = "\ufeff" if text.startswith("\ufeff") else ""
        self.crlf = "\r\n" in text
        text = text.removeprefix("\ufeff").replace("\r\n", "\n")
        self.loc = load_text(text, file)  # YamlProblem: the loader's own words
        if not isinstance(self.loc, LocDict):
            raise EditError(f"{file}: not a list file (expected a mapping)")
        try:
            _, sequence, offset = load_yaml_guess_indent(text)
        except YAMLError as exc:  # pragma: no cover - the loader accepted it
            raise EditError(f"{file}: cannot be edited: {exc}") from None
        if canonical or sequence is None or offset is None or sequence < offset + 2:
            sequence, offset = 4, 2
        self.yaml = _yaml(max(sequence - offset, 2), sequence, offset)
        body = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        self.yaml.explicit_start = bool(body) and (body[0] == "---" or body[0].startswith("--- "))
        self.yaml.explicit_end = bool(body) and body[-1] == "..."
        try:
            self.doc = self.yaml.load(text)
        except YAMLError as exc:  # pragma: no cover - the loader accepted it
            raise EditError(f"{file}: cannot be edited: {exc}") from None
        if not isinstance(self.doc, CommentedMap):
            raise EditError(f"{file}: not a list file (expected a mapping)")
        _pin(self.doc, self.loc)
        self._removed_lines: set[int] = set()
        region = self.loc.get("default_region")
        self.region = region if isinstance(region, str) else None

    @property
    def is_list(self) -> bool:
        """A list file (not providers.yaml, not some other YAML)."""
        return "providers" not in self.loc and ("targets" in self.loc or "entries" in self.loc)

    @property
    def name(self) -> str | None:
        name = self.loc.get("name")
        return name if isinstance(name, str) else None

    def dump(self) -> str:
        """The edited text; ``EditError`` rather than a text that lost a comment (other
        than those on the lines of removed entries)."""
        out = io.StringIO()
        self.yaml.dump(self.doc, out)
        text = out.getvalue()
        kept: Counter[str] = Counter()
        for _, comment in _comments(text):
            kept[comment] += 1
            if comment.startswith("was ") and "; " in comment:  # --raw-comments' prefix
                kept[comment.split("; ", 1)[1]] += 1
        lost = []
        for line, comment in _comments(self.original):
            if line in self._removed_lines:
                continue
            if kept[comment] > 0:
                kept[comment] -= 1
            else:
                lost.append((line, comment))
        if lost:
            line, comment = lost[0]
            raise EditError(
                f"{self.file}:{line}: cannot be rewritten without losing the comment "
                f"{comment!r}: edit it by hand"
            )
        return self.bom + (text.replace("\n", "\r\n") if self.crlf else text)

    # -- reading -----------------------------------------------------------------------

    def _loc_entries(self) -> LocList:
        entries = self.loc.get("entries")
        return entries if isinstance(entries, LocList) else LocList((1, 1))

    def _defaults(self) -> tuple[dt.datetime | None, str | None, str | None]:
        defaults = self.loc.get("defaults")
        if not isinstance(defaults, LocDict):
            return None, None, None
        expires = defaults.get("expires")
        ttl = defaults.get("ttl")
        reason = defaults.get("reason")
        when = None
        if isinstance(expires, dt.date):
            try:
                when = to_utc(expires)
            except ValueError:
                when = None
        return (
            when,
            ttl if isinstance(ttl, str) else None,
            reason if isinstance(reason, str) else None,
        )

    def entries(self) -> list[EntryRef]:
        """Every entry as the loader reads it, in file order."""
        default_expires, default_ttl, default_reason = self._defaults()
        out = []
        loc = self._loc_entries()
        for i, item in enumerate(loc):
            line = loc.marks[i][0]
            if isinstance(item, LocDict):
                raw = item.raws.get("number")
                if raw is None:
                    raw = "" if item.get("number") is None else str(item["number"])
                ticket = item.get("ticket")
                reason = item.get("reason")
                expires = _expiry(item, default_expires, default_ttl)
                long = True
            else:
                raw = loc.raws[i] if loc.raws[i] is not None else str(item)
                ticket = None
                reason = None
                expires = _expiry({}, default_expires, default_ttl)
                long = False
            try:
                number = normalise(raw, self.region) if raw else None
            except InvalidNumber:
                number = None
            out.append(
                EntryRef(
                    i,
                    number,
                    raw,
                    line,
                    long,
                    expires,
                    None if ticket is None else str(ticket),
                    reason if isinstance(reason, str) else default_reason,
                )
            )
        return out

    # -- block and unblock ---------------------------------------------------------------

    def seq(self) -> CommentedSeq:
        """The ``entries`` sequence, made (block style) if the file has none or an empty one."""
        entries = self.doc.get("entries")
        if isinstance(entries, CommentedSeq):
            if not entries and entries.fa.flow_style():
                entries.fa.set_block_style()
            return entries
        if entries is not None and self.loc.get("entries") is not None:
            raise EditError(f"{self.file}: 'entries' is not a list")
        new = CommentedSeq()
        self.doc["entries"] = new
        return new

    def number_style(self) -> type[str]:
        """How the list quotes its numbers (its first entry's style; double by default)."""
        for item in self.doc.get("entries") or ():
            scalar = item.get("number") if isinstance(item, CommentedMap) else item
            if isinstance(scalar, SingleQuotedScalarString):
                return SingleQuotedScalarString
            if isinstance(scalar, DoubleQuotedScalarString):
                return DoubleQuotedScalarString
            if isinstance(scalar, _Verbatim | int):
                return _Verbatim
            break
        return DoubleQuotedScalarString

    def add(self, number: str, fields: EntryFields) -> None:
        """Append an entry: the short form for a number alone, else the long form."""
        seq = self.seq()
        tail = _detach_tail(seq, len(seq) - 1) if len(seq) else ""
        scalar = self.number_style()(number)
        if fields.empty:
            seq.append(scalar)
        else:
            item = CommentedMap()
            item["number"] = scalar
            for key, value in fields.items():
                item[key] = _value(value)
            seq.append(item)
        _attach_tail(seq, len(seq) - 1, tail)

    def update(self, index: int, fields: EntryFields) -> list[str]:
        """Give entry ``index`` these fields (a short entry becomes a long one); what
        changed, as ``key: old -> new``."""
        seq = self.seq()
        item = seq[index]
        if not isinstance(item, CommentedMap):
            tail = _detach_tail(seq, index)
            head = _take_token(seq, index)
            long = CommentedMap()
            long["number"] = item
            if head is not None:
                long.ca.items["number"] = [None, None, head, None]
            seq[index] = long
            _attach_tail(seq, index, tail)
            item = long
        tail = _detach_tail(seq, index)
        changes: list[str] = []
        wanted = dict(fields.items())
        if fields.expires is not None:
            for key in ("ttl", "added"):
                if key in item:
                    changes.append(f"{key}: {_shown(item[key])} -> (removed)")
                    del item[key]
        if fields.ttl is not None and "expires" in item:
            changes.append(f"expires: {_shown(item['expires'])} -> (removed)")
            del item["expires"]
        for key, value in wanted.items():
            old = item.get(key)
            if old is not None and _shown(old) == _shown(value):
                continue
            changes.append(
                f"{key}: {_shown(old) if old is not None else '(none)'} -> {_shown(value)}"
            )
            if key in item:
                item[key] = _value(value)
            else:
                item.insert(_position(item, key), key, _value(value))
        _attach_tail(seq, index, tail)
        return changes

    def remove(self, indices: Iterable[int]) -> None:
        """Remove entries (with the comments on their own lines; the comments below
        them stay where they are)."""
        gone = sorted(set(indices), reverse=True)
        if not gone:
            return
        loc = self._loc_entries()
        starts = [mark[0] for mark in loc.marks]
        last = len(self.original.splitlines()) + 1
        for index in gone:
            end = starts[index + 1] if index + 1 < len(starts) else last
            self._removed_lines.update(range(starts[index], end))
        seq = self.seq()
        for index in gone:
            tail = _detach_tail(seq, index)
            del seq[index]
            if index > 0:
                _attach_tail(seq, index - 1, tail)
            elif tail:
                _attach_before_first(self.doc, seq, tail)
        if not seq:
            _write_empty(self.doc, seq)

    # -- fmt -----------------------------------------------------------------------------

    def canonicalise(self, *, raw_comments: bool = False) -> FormatReport:
        """Numbers in E.164, double-quoted; long entries' keys in canonical order."""
        report = FormatReport()
        seq = self.doc.get("entries")
        if not isinstance(seq, CommentedSeq):
            return report
        for ref in self.entries():
            if ref.number is None:
                report.unreadable.append((ref.line, ref.raw))
                continue
            item = seq[ref.index]
            if isinstance(item, CommentedMap):
                if _canonical_number(item, "number", ref, raw_comments):
                    report.numbers += 1
                if _reorder(seq, ref.index):
                    report.reordered += 1
            elif _canonical_number(seq, ref.index, ref, raw_comments):
                report.numbers += 1
        return report

    def prune_expired(self, now: dt.datetime) -> list[Pruned]:
        """Remove the entries whose expiry is ``now`` or earlier."""
        gone = [ref for ref in self.entries() if ref.expires is not None and ref.expires <= now]
        if gone:
            self.remove(ref.index for ref in gone)
        return [
            Pruned(ref.number or ref.raw, ref.line, ref.expires, ref.ticket)
            for ref in gone
            if ref.expires is not None
        ]


_COMMENT = re.compile(r"(?:^|\s)#\s?(.*?)\s*$")


def _comments(text: str) -> list[tuple[int, str]]:
    """(line, text) of every comment: what follows a ``#`` at a line's start or after a
    space (a ``#`` inside a quoted value counts too: it must survive as well)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _COMMENT.search(line)
        if m and m.group(1):
            out.append((number, m.group(1)))
    return out


def unified_diff(before: str, after: str, file: str) -> str:
    """``git diff``-style text of an edit ("" when nothing changed)."""
    if before == after:
        return ""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{file}",
        tofile=f"b/{file}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def format_text(
    text: str,
    file: str,
    *,
    now: dt.datetime | None = None,
    raw_comments: bool = False,
    prune_only: bool = False,
) -> tuple[str, FormatReport] | None:
    """``text`` in canonical form (``now``: expired entries pruned too; ``prune_only``:
    nothing else changed); None when it is not a list file."""
    doc = ListText(text, file, canonical=not prune_only)
    if not doc.is_list:
        return None
    report = FormatReport() if prune_only else doc.canonicalise(raw_comments=raw_comments)
    if now is not None:
        report.pruned = doc.prune_expired(now)
    if prune_only and not report.pruned:
        return text, report
    return doc.dump(), report


# -- values --------------------------------------------------------------------------------


def _pin(node: Any, loc: Any) -> None:
    """Write every plain scalar that is not text back as the loader read it."""
    if isinstance(node, CommentedMap) and isinstance(loc, LocDict):
        for key, loc_key in zip(list(node), list(loc), strict=False):
            value = node[key]
            if isinstance(value, CommentedMap | CommentedSeq):
                _pin(value, loc.get(loc_key))
            elif not isinstance(value, str) and loc_key in loc.raws:
                node[key] = _Verbatim(loc.raws[loc_key])
    elif isinstance(node, CommentedSeq) and isinstance(loc, LocList):
        for i, value in enumerate(node):
            if i >= len(loc):
                break
            if isinstance(value, CommentedMap | CommentedSeq):
                _pin(value, loc[i])
            elif not isinstance(value, str) and loc.raws[i] is not None:
                node[i] = _Verbatim(loc.raws[i])


def _value(value: Any) -> Any:
    """A value as ``block`` writes it: dates plain, instants in ISO form, text plain
    where YAML 1.1 reads it back as the same text, else double-quoted."""
    if isinstance(value, dt.datetime):
        return _Verbatim(iso(to_utc(value)) or "")
    if isinstance(value, dt.date):
        # a new object each time: one shared date would be dumped as an anchor and aliases
        return dt.date(value.year, value.month, value.day)
    text = str(value)
    dumped = yaml.safe_dump(text, width=1 << 16, allow_unicode=True)
    if "\n" in text or dumped.startswith(("'", '"')) or yaml.safe_load(text) != text:
        return DoubleQuotedScalarString(text)
    return text


def _shown(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return iso(to_utc(value)) or ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _position(item: CommentedMap, key: str) -> int:
    """Where ``key`` goes among the keys of a long entry: canonical keys in their
    order, metadata after them."""
    rank = _RANK.get(key, len(_RANK))
    keys = list(item)
    for i, existing in enumerate(keys):
        if _RANK.get(existing, len(_RANK)) > rank:
            return i
    return len(keys)


def _expiry(item: Any, default_expires: dt.datetime | None, default_ttl: str | None) -> Any:
    """An entry's expiry as ``desired`` computes it (None: none, or not readable)."""
    expires = item.get("expires")
    added = item.get("added")
    ttl = item.get("ttl")
    try:
        if expires is not None and ttl is not None:
            return None
        if expires is not None:
            return to_utc(expires) if isinstance(expires, dt.date) else None
        if ttl is None:
            ttl = default_ttl
        if ttl is not None:
            if not isinstance(added, dt.date) or not isinstance(ttl, str):
                return None
            return add_ttl(to_utc(added), ttl)
    except (ValueError, OverflowError):
        return None
    return default_expires


def _reorder(seq: CommentedSeq, index: int) -> bool:
    """Put the keys of the long entry ``seq[index]`` in canonical order. The full-line
    comments above a key move with it (those above the key that becomes first go just
    below it); those below the entry stay below it."""
    item = seq[index]
    keys = list(item)
    order = sorted(keys, key=lambda k: _RANK.get(k, len(_RANK)))
    if keys == order:
        return False
    below = _detach_tail(seq, index)
    above = {key: _detach_tail(item, prev) for prev, key in zip(keys, keys[1:], strict=False)}
    for key in order:
        item.move_to_end(key)
    _attach_tail(item, order[0], above.get(order[0], ""))
    for prev, key in zip(order, order[1:], strict=False):
        _attach_tail(item, prev, above.get(key, ""))
    _attach_tail(seq, index, below)
    return True


def _canonical_number(container: Any, key: Any, ref: EntryRef, raw_comments: bool) -> bool:
    """Write the number at ``container[key]`` as a double-quoted E.164 string."""
    current = container[key]
    assert ref.number is not None
    if isinstance(current, DoubleQuotedScalarString) and str(current) == ref.number:
        return False
    container[key] = DoubleQuotedScalarString(ref.number)
    if raw_comments and ref.raw != ref.number:
        _prefix_eol_comment(container, key, f"was {ref.raw}")
    return True


# -- comments ------------------------------------------------------------------------------
#
# ruamel keeps what follows an item in one comment token on the item's last line:
# the rest of that line (its own comment) and then the full-line comments and blank
# lines below it. The helpers split the two, so that the lines below an item stay
# where they are when the item moves or goes.


def _slot(container: Any, key: Any) -> tuple[Any, Any]:
    """The (container, key) whose comment slot holds what follows ``container[key]``."""
    value = container[key]
    if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
        return _slot(value, list(value)[-1])
    if isinstance(value, CommentedSeq) and value and not value.fa.flow_style():
        return _slot(value, len(value) - 1)
    return container, key


def _position_of(container: Any) -> int:
    return 0 if isinstance(container, CommentedSeq) else 2


def _token(container: Any, key: Any) -> CommentToken | None:
    slot = container.ca.items.get(key)
    if not slot:
        return None
    return slot[_position_of(container)]


def _set_token(container: Any, key: Any, token: CommentToken | None) -> None:
    slot = container.ca.items.get(key)
    pos = _position_of(container)
    if slot is None:
        if token is None:
            return
        slot = container.ca.items[key] = [None, None, None, None]
    slot[pos] = token
    if not any(slot):
        del container.ca.items[key]


def _new_token(value: str, column: int = 0) -> CommentToken:
    return CommentToken(value, CommentMark(column), None)


def _detach_tail(container: Any, key: Any) -> str:
    """Cut the lines below item ``key`` off its comment token; return them."""
    where, k = _slot(container, key)
    token = _token(where, k)
    if token is None:
        return ""
    value = token.value
    cut = value.find("\n")
    if cut < 0 or cut == len(value) - 1:
        return ""
    head, tail = value[: cut + 1], value[cut + 1 :]
    if head.strip():
        token.value = head
    else:
        _set_token(where, k, None)
    return tail


def _attach_tail(container: Any, key: Any, tail: str) -> None:
    """Put ``tail`` (lines) below item ``key``."""
    if not tail:
        return
    where, k = _slot(container, key)
    token = _token(where, k)
    if token is None:
        _set_token(where, k, _new_token("\n" + tail))
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + tail


def _take_token(container: Any, key: Any) -> CommentToken | None:
    token = _token(container, key)
    _set_token(container, key, None)
    return token


def _attach_before_first(doc: CommentedMap, seq: CommentedSeq, tail: str) -> None:
    """Put ``tail`` between ``entries:`` (and the comments below it) and its first item."""
    pre = seq.ca.comment[1] if seq.ca.comment and len(seq.ca.comment) > 1 else None
    if pre:
        last = pre[-1]
        last.value = (last.value if last.value.endswith("\n") else last.value + "\n") + tail
        return
    token = seq.ca.comment[0] if seq.ca.comment else None
    if token is None and doc.ca.items.get("entries"):
        token = doc.ca.items["entries"][2]
    if token is not None:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + tail
        return
    token = _new_token("\n" + tail)
    if seq.ca.comment:
        seq.ca.comment[0] = token
    else:
        seq.ca.comment = [token, None]
    slot = doc.ca.items.setdefault("entries", [None, None, None, None])
    slot[2] = token


def _write_empty(doc: CommentedMap, seq: CommentedSeq) -> None:
    """``entries: []`` for a list left empty, its comments after it."""
    comment = seq.ca.comment or [None, None]
    slot = doc.ca.items.get("entries") or [None, None, None, None]
    eol = comment[0] or slot[2]
    pre = (comment[1] if len(comment) > 1 else None) or slot[3] or []
    empty = CommentedSeq()
    empty.fa.set_flow_style()
    doc["entries"] = empty
    text = (eol.value if eol is not None else "\n") + "".join(t.value for t in pre)
    doc.ca.items.pop("entries", None)
    if text.strip():
        column = eol.column if eol is not None and eol.value.startswith("#") else 0
        doc.ca.items["entries"] = [None, None, _new_token(text, column), None]


def _prefix_eol_comment(container: Any, key: Any, text: str) -> None:
    """Start the comment on ``container[key]``'s line with ``text``."""
    token = _token(container, key)
    if token is None:
        container.yaml_add_eol_comment(f"# {text}", key)
        return
    value = token.value
    if value.startswith("#"):
        token.value = f"# {text}; " + value[1:].lstrip()
    else:
        token.value = f"# {text}" + value
