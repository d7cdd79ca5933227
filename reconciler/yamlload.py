"""Safe YAML loading that remembers where every value came from.

libyaml's C composer (``CSafeLoader``) builds the node tree; we construct
plain Python values from it ourselves so that every mapping and list keeps
the line and column of each of its items (``LocDict``/``LocList``), and the
raw text of each scalar (a phone number such as ``+919876543210`` must not
become an int). Aliases are allowed but their expansion is bounded, so an
alias bomb fails fast instead of exhausting memory. Duplicate keys are errors.

Lines and columns are 1-based, as editors and GitHub annotations count them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem
from .yamlentries import read_list
from .yamlfast import load_fast
from .yamlnodes import LocDict, LocList, Mark, YamlProblem, quote

__all__ = ["LocDict", "LocList", "YamlProblem", "load_file", "load_text"]

try:  # the C loader is a dependency of record (DESIGN.md); fall back only if absent
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _BaseLoader = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """libyaml's composer with a cached implicit-tag resolver: list files repeat the
    same scalars (reasons, dates, keys) and PyYAML's resolver is pure Python."""

    def resolve(self, kind: type, value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0] and value is not None:
            return _resolve_plain(value)
        return super().resolve(kind, value, implicit)


_RESOLVER = yaml.resolver.Resolver()


@functools.lru_cache(maxsize=65536)
def _resolve_plain(value: str) -> str:
    return _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))


#: most nodes an alias may expand a document to, beyond its own size
MAX_ALIAS_EXPANSION = 100_000


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str, distinct_nodes: int) -> None:
        self.file = file
        self.budget = distinct_nodes + MAX_ALIAS_EXPANSION
        self.constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node, message: str) -> YamlProblem:
        line, col = _mark(node)
        return YamlProblem(Problem(self.file, line, col, message))

    def build(self, node: yaml.Node) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(node, "alias expansion too large (possible alias bomb): refused")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            try:
                return self.constructor.construct_object(node)
            except yaml.YAMLError as exc:
                raise self.fail(
                    node, f"invalid value {quote(node.value)}: {_reason(exc)}"
                ) from None
            except (ValueError, OverflowError) as exc:  # e.g. a timestamp with month 13
                raise self.fail(node, f"invalid value {quote(node.value)}: {exc}") from None
        if isinstance(node, yaml.SequenceNode):
            out = LocList(_mark(node))
            for item in node.value:
                out.append(self.build(item))
                out.marks.append(_mark(item))
                out.raws.append(item.value if isinstance(item, yaml.ScalarNode) else None)
            return out
        if isinstance(node, yaml.MappingNode):
            out = LocDict(_mark(node))
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, "mapping keys must be plain strings")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(
                        key_node, "merge keys (<<) are not supported: write the keys out"
                    )
                key = self.build(key_node)
                if key in out:
                    first = out.key_marks[key]
                    raise self.fail(key_node, f"duplicate key {key!r} (first at line {first[0]})")
                out[key] = self.build(value_node)
                out.key_marks[key] = _mark(key_node)
                if isinstance(value_node, yaml.ScalarNode):
                    out.raws[key] = value_node.value
            return out
        raise self.fail(node, "unsupported YAML node")  # pragma: no cover


def _reason(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{context}: {problem}" if context and "found character" not in problem else problem


def _count(node: yaml.Node, seen: set[int]) -> None:
    """Count distinct nodes (aliases share node objects, so they count once)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.append(k)
                stack.append(v)


def load_text(text: str, file: str, *, rows: bool = False) -> Any:
    """Load one YAML document from text; raise YamlProblem with file:line:col.

    ``rows``: the text is a list file, whose ``entries`` may come back as
    ``yamlentries.EntryRows`` (the common shapes, read in bulk) instead of a LocList."""
    if rows and (read := read_list(text)) is not None:
        return read
    if (fast := load_fast(text, file)) is not None:  # the common subset, line by line
        return fast
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"invalid YAML: {_reason(exc)}"
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        indent = source[: len(source) - len(source.lstrip())]
        if "\t" in indent:
            col = indent.index("\t") + 1
            message = "invalid YAML: tab character in indentation (YAML indents with spaces)"
        raise YamlProblem(Problem(file, line, col, message)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(file, 1, 1, f"invalid YAML: {exc}")) from None
    if node is None:
        raise YamlProblem(Problem(file, 1, 1, "empty file: expected a mapping with 'version: 1'"))
    if "*" in text:  # aliases are possible: bound their expansion by the distinct nodes
        seen: set[int] = set()
        _count(node, seen)
        distinct = len(seen)
    else:
        distinct = 1 << 62
    return _Builder(file, distinct).build(node)


def load_file(path: Path, display: str | None = None, *, rows: bool = False) -> Any:
    """Read and load a YAML file (``rows``: as ``load_text``)."""
    file = display or str(path)
    return load_text(read_text(path, file), file, rows=rows)


def read_text(path: Path, file: str) -> str:
    """A YAML file's text (a byte order mark dropped); non-UTF-8 bytes are reported at
    their line, as YamlProblem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise YamlProblem(Problem(file, 1, 1, f"cannot read file: {exc.strerror}")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblem(
            Problem(file, line, col, f"file is not UTF-8 (byte 0x{data[exc.start]:02x})")
        ) from None
    return text[1:] if text.startswith("\ufeff") else text
