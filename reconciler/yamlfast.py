"""A fast loader for the plain, common subset of YAML that list files are written in.

``yamlload`` composes with libyaml, which builds a Python node object for every
scalar: for a list of 100 000 long-form entries that alone takes many seconds.
List files use a small, regular subset of YAML, which this module parses line by
line, producing exactly what ``yamlload`` produces for the same text: the same
values and types (plain scalars are typed by PyYAML's own YAML 1.1 resolver and
SafeConstructor) and the same ``LocDict``/``LocList`` with identical ``mark``,
``key_marks``, ``marks`` and ``raws``.

``load_fast`` returns ``None`` whenever the text strays outside the subset or is
not valid YAML, and the caller falls back to libyaml, which also words the error
messages. It never guesses: anything unusual means ``None``.

The subset: one document without markers or directives; full-line and trailing
comments; block mappings whose keys are plain scalars on one line; block
sequences (``- item``, ``- key: value`` starting a mapping, a sequence at its
parent key's indentation); values that are plain scalars, one-line quoted
scalars (double-quoted without escapes), one-line flow sequences or mappings of
such scalars, or empty (null). Not in it, so ``None``: tabs, anchors, aliases,
tags, block scalars, multi-line scalars or flow collections, nested flow
collections, quoted or complex keys, duplicate or merge keys, CR line breaks,
byte order marks, control characters and lines longer than 1000 characters.

While it runs, the cyclic garbage collector is paused (the values it builds have
no cycles, and collections would take a third of the time for a big list).
"""

from __future__ import annotations

import functools
import gc
import re
from typing import Any

import yaml

from .yamlnodes import LocDict, LocList

_STR = "tag:yaml.org,2002:str"

#: characters outside libyaml's printable set, and those it treats specially
#: (tab, CR, NEL, LS, PS, BOM): their presence sends the text to libyaml
_AWKWARD = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
#: the same for ASCII text: the bytes allowed
_ASCII_OK = b"\n" + bytes(range(0x20, 0x7F))
#: a line that starts with a document marker (or with what looks like one)
_MARKER = re.compile(r"^(?:---|\.\.\.)", re.MULTILINE)
#: longest line handled; libyaml forgets a possible key after 1024 characters
_MAX_LINE = 1000

# A plain scalar in block context (first character not an indicator, nor '-', '?', ':'),
# limited here to text without ':' or '#' and without trailing spaces.
_PLAIN = r"""[^\s\-?:,\[\]{}#&*!|>'"%@`][^:# ]*+(?: ++[^:# ]++)*+"""
# A line's indentation (group 1; empty when matched at a position), a block mapping key
# (2: plain, one line, as above), ':' and then either what commonly follows on the line
# (nothing, or a double-quoted scalar without escapes (3), a single-quoted one without
# quotes inside (4) or a plain scalar as above (5); and perhaps a comment), or, after
# spaces, anything else (6: for the general path). ``lastindex`` tells which.
_KEY_VALUE = re.compile(
    rf"""( *)({_PLAIN}) *+:(?:(?: ++(?:"([^"\\]*+)"|'([^']*+)'|({_PLAIN})))?(?: +#.*)? *$| +(.+))"""
)
# A line's indentation, then a block sequence entry: '-' then spaces or the line's end.
_ENTRY_LINE = re.compile(r"( *)-(?: +|$)")
# A plain scalar inside a flow collection: no ':', ',', brackets, braces or '#' at all.
_FLOW_PLAIN = re.compile(r"""(?:[^\s\-?:,\[\]{}#&*!|>'"%@`]|-(?=[^\s:,\[\]{}#]))[^:,\[\]{}#]*""")
#: characters that cannot start a plain scalar here ('-' is checked on its own)
_BAD_FIRST = frozenset("?:,[]{}#&*!|>'\"%@` ")

_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CONSTRUCTORS = yaml.constructor.SafeConstructor.yaml_constructors


def _resolvers() -> dict[str, tuple[tuple[str, Any], ...]]:
    """PyYAML's implicit resolvers by first character, as ``Resolver.resolve`` reads them."""
    table = yaml.resolver.Resolver.yaml_implicit_resolvers
    return {first: tuple((tag, rx.match) for tag, rx in pairs) for first, pairs in table.items()}


_RESOLVE = _resolvers()
#: resolvers for any first character would make ``plain`` wrong (PyYAML has none)
USABLE = None not in _RESOLVE


class Bail(Exception):
    """The text is outside the subset (or invalid): let libyaml load it."""


@functools.lru_cache(maxsize=65536)
def _construct(tag: str, value: str) -> Any:
    """What SafeConstructor makes of a plain scalar with a non-str tag (cached: list
    files repeat dates; the values are immutable)."""
    construct = _CONSTRUCTORS.get(tag)
    if construct is None:  # merge ('<<'), value ('=') and the like: not for us
        raise Bail
    try:
        return construct(_CONSTRUCTOR, yaml.ScalarNode(tag, value))
    except Exception:  # an invalid date, say: libyaml's path reports it
        raise Bail from None


def plain(value: str) -> Any:
    """The value PyYAML's SafeLoader gives the (non-empty) plain scalar ``value``:
    ``Resolver.resolve``'s rule (the first implicit resolver for its first character
    that matches, else str), then the SafeConstructor."""
    for tag, match in _RESOLVE.get(value[0], ()):
        if match(value):
            return value if tag == _STR else _construct(tag, value)
    return value


def text_or_int(raw: str) -> bool:
    """Whether the plain scalar ``raw`` is a str or an int (not a bool, a float, a date,
    null, …), as ``plain`` types it, without building the value where it is text;
    ``Bail`` where ``plain`` would."""
    for _, match in _RESOLVE.get(raw[0], ()):
        if match(raw):  # typed: what plain makes of it (and what it refuses)
            value = plain(raw)
            return isinstance(value, str | int) and not isinstance(value, bool)
    return True


def _tail_ok(line: str, p: int) -> bool:
    """Whether only spaces and perhaps a comment (after a space) follow position p."""
    if p == len(line):
        return True
    if line[p] != " ":
        return False
    rest = line[p:].lstrip(" ")
    return not rest or rest[0] == "#"


def _quoted(line: str, p: int) -> tuple[str, int]:
    """The content of the one-line quoted scalar opening at p, and the end position."""
    if line[p] == '"':
        end = line.find('"', p + 1)
        if end < 0:
            raise Bail
        value = line[p + 1 : end]
        if "\\" in value:
            raise Bail
        return value, end + 1
    end = p + 1
    while True:
        end = line.find("'", end)
        if end < 0:
            raise Bail
        if line.startswith("''", end):
            end += 2
            continue
        return line[p + 1 : end].replace("''", "'"), end + 1


def _flow_scalar(line: str, p: int) -> tuple[Any, str, int]:
    """A scalar item of a flow collection at p: value, raw text, end position."""
    if line[p] in "\"'":
        raw, end = _quoted(line, p)
        return raw, raw, end
    m = _FLOW_PLAIN.match(line, p)
    if m is None:
        raise Bail
    raw = m.group().rstrip(" ")
    return plain(raw), raw, p + len(raw)


def _skip(line: str, p: int) -> int:
    while line.startswith(" ", p):
        p += 1
    return p


def _flow(line: str, p: int, no: int) -> tuple[Any, int]:
    """The one-line flow sequence or mapping opening at p, and its end position."""
    if line[p] == "[":
        seq = LocList((no, p + 1))
        q = _skip(line, p + 1)
        if line.startswith("]", q):
            return seq, q + 1
        while True:
            item_at = q
            value, raw, q = _flow_scalar(line, q)
            seq.append(value)
            seq.marks.append((no, item_at + 1))
            seq.raws.append(raw)
            q = _skip(line, q)
            c = line[q : q + 1]
            if c == "]":
                return seq, q + 1
            if c != ",":
                raise Bail
            q = _skip(line, q + 1)
    mapping = LocDict((no, p + 1))
    q = _skip(line, p + 1)
    if line.startswith("}", q):
        return mapping, q + 1
    while True:
        m = _FLOW_PLAIN.match(line, q)
        if m is None:
            raise Bail
        text = m.group().rstrip(" ")
        key = plain(text)
        if key in mapping:
            raise Bail
        key_at = q
        q = _skip(line, q + len(text))
        if not line.startswith(": ", q):
            raise Bail
        value, raw, q = _flow_scalar(line, _skip(line, q + 2))
        mapping[key] = value
        mapping.key_marks[key] = (no, key_at + 1)
        mapping.raws[key] = raw
        q = _skip(line, q)
        c = line[q : q + 1]
        if c == "}":
            return mapping, q + 1
        if c != ",":
            raise Bail
        q = _skip(line, q + 1)


def _inline(line: str, p: int, no: int) -> tuple[Any, str | None]:
    """The value written on the line from p (a non-space): value and raw text (None
    for a collection). Only spaces and a comment may follow it."""
    c = line[p]
    if c == '"' or c == "'":
        raw, end = _quoted(line, p)
        if not _tail_ok(line, end):
            raise Bail
        return raw, raw
    if c == "[" or c == "{":
        value, end = _flow(line, p, no)
        if not _tail_ok(line, end):
            raise Bail
        return value, None
    if c in _BAD_FIRST or (c == "-" and line[p + 1 : p + 2] in ("", " ")):
        raise Bail
    raw = line[p:]
    cut = raw.find(" #")
    if cut >= 0:
        raw = raw[:cut]
    raw = raw.rstrip(" ")
    if ": " in raw or raw[-1] == ":":
        raise Bail
    return plain(raw), raw


def _is_entry(line: str, col: int) -> bool:
    """Whether a block sequence entry ('-' then a space or the line's end) is at col."""
    return line.startswith("-", col) and line[col + 1 : col + 2] in ("", " ")


def _indent(line: str) -> int:
    """The indentation of a line with content, or -1 for a blank or comment line."""
    s = line.lstrip(" ")
    return -1 if not s or s[0] == "#" else len(line) - len(s)


def check_characters(text: str) -> None:
    """Bail unless every character of ``text`` is one this parser may read."""
    if text.isascii():
        if text.encode("ascii").translate(None, _ASCII_OK):
            raise Bail
    elif _AWKWARD.search(text):
        raise Bail


def parse(text: str, *, checked: bool = False) -> Any:
    """The Loc tree of ``text``; ``checked``: its characters have been checked."""
    if not checked:
        check_characters(text)
    if _MARKER.search(text):
        raise Bail  # document markers (or a scalar at column 1 that looks like one)
    lines = text.split("\n")
    n = len(lines)
    if max(map(len, lines)) > _MAX_LINE:
        raise Bail
    key_value = _KEY_VALUE.match
    entry_line = _ENTRY_LINE.match
    cache: dict[str, Any] = {}  # plain scalar -> value, for this text
    cached = cache.get
    miss = cache  # a sentinel no value can be
    resolve = _RESOLVE

    def peek(i: int) -> tuple[int, int]:
        """The first line from i with content, and its indentation (n, -1 at the end)."""
        while i < n:
            indent = _indent(lines[i])
            if indent >= 0:
                return i, indent
            i += 1
        return n, -1

    def node(i: int, col: int) -> tuple[Any, int]:
        """The block collection whose first line is i, indented by col."""
        line = lines[i]
        if _is_entry(line, col):
            return sequence(i, col)
        m = key_value(line, col)
        if m is None:
            raise Bail
        return mapping(i, col, m)

    def mapping(i: int, col: int, m: Any) -> tuple[LocDict, int]:
        """The block mapping whose first key, at column col of line i, m matched
        (``_KEY_VALUE``); returns it and the first line after it."""
        no = i + 1
        at = col + 1
        out = LocDict((no, at))
        key_marks = out.key_marks
        raws = out.raws
        while True:
            text = m.group(2)
            key = cached(text, miss)
            if key is miss:
                key = cache[text] = plain(text)
            if key in out:
                raise Bail
            key_marks[key] = (no, at)
            kind = m.lastindex
            if kind == 5:  # a plain scalar
                raw = m.group(5)
                value = raw
                if raw[0] in resolve:
                    value = cached(raw, miss)
                    if value is miss:
                        value = cache[raw] = plain(raw)
                out[key] = value
                raws[key] = raw
                i += 1
            elif kind == 3 or kind == 4:  # a quoted scalar
                out[key] = raws[key] = m.group(kind)
                i += 1
            elif kind == 6:  # something else
                out[key], raw = _inline(lines[i], m.start(6), no)
                if raw is not None:
                    raws[key] = raw
                i += 1
            else:  # nothing after the ':' on this line
                j, indent = peek(i + 1)
                if indent > col:
                    out[key], i = node(j, indent)
                elif indent == col and _is_entry(lines[j], col):
                    out[key], i = sequence(j, col)  # at its key's indentation
                else:
                    out[key] = None
                    raws[key] = ""
                    i = j
            while True:  # the next key at col, or the end of this mapping
                if i == n:
                    return out, i
                line = lines[i]
                m = key_value(line)
                if m is not None:
                    indent = m.end(1)
                    if indent == col:
                        break
                    if indent < col:
                        return out, i
                    raise Bail
                s = line.lstrip(" ")
                if s and s[0] != "#":
                    if len(line) - len(s) < col:
                        return out, i
                    raise Bail  # a line at col or deeper that is no key
                i += 1
            no = i + 1

    def sequence(i: int, col: int) -> tuple[LocList, int]:
        """The block sequence whose first '-' is at column col of line i; returns it
        and the first line after it."""
        out = LocList((i + 1, col + 1))
        marks = out.marks
        raws = out.raws
        e = entry_line(lines[i])
        while True:
            line = lines[i]
            no = i + 1
            p = e.end()
            if p == len(line) or line[p] == "#":  # nothing after the '-' on this line
                j, indent = peek(i + 1)
                if indent > col:
                    marks.append((j + 1, indent + 1))
                    value, i = node(j, indent)
                    out.append(value)
                    raws.append(None)
                else:
                    marks.append((no, col + 2))
                    out.append(None)
                    raws.append("")
                    i = j
            elif _is_entry(line, p):
                raise Bail  # '- - x'
            else:
                marks.append((no, p + 1))
                m = key_value(line, p)
                if m is not None:
                    value, i = mapping(i, p, m)
                    out.append(value)
                    raws.append(None)
                else:
                    value, raw = _inline(line, p, no)
                    out.append(value)
                    raws.append(raw)
                    i += 1
            while True:  # the next entry at col, or the end of this sequence
                if i == n:
                    return out, i
                line = lines[i]
                e = entry_line(line)
                if e is not None:
                    indent = e.end(1)
                    if indent == col:
                        break
                    if indent < col:
                        return out, i
                    raise Bail
                s = line.lstrip(" ")
                if s and s[0] != "#":
                    if len(line) - len(s) > col:
                        raise Bail
                    return out, i  # (a key after a sequence at its key's indentation)
                i += 1

    try:
        i, indent = peek(0)
        if i == n:
            raise Bail  # an empty document: libyaml's path reports it
        value, i = node(i, indent)
        if peek(i)[0] != n:
            raise Bail
        return value
    finally:
        # the nested functions refer to each other through their closures: a cycle
        # holding the text's lines and scalar cache, which only the cyclic collector
        # frees, and the loader runs with it paused while the next files load
        peek = node = mapping = sequence = None  # type: ignore[assignment]


def load_fast(text: str, file: str) -> Any | None:
    """What ``yamlload.load_text(text, file)`` returns, or None when the text is
    outside the subset this module handles (or is not valid YAML)."""
    del file  # errors are libyaml's path's to report
    if not USABLE:  # pragma: no cover
        return None
    # the values built hold no reference cycles, and the cyclic collector would sweep
    # them again and again as they pile up
    collecting = gc.isenabled()
    gc.disable()
    try:
        return parse(text)
    except Bail:
        return None
    except Exception:  # a corner this parser did not foresee: libyaml decides
        return None
    finally:
        if collecting:
            gc.enable()
