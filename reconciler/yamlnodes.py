"""What a loaded YAML document is made of: mappings and lists that remember where
each item came from (line and column, 1-based, as editors and GitHub
annotations count them) and the raw text of each scalar.

Both loaders (``yamlload``'s libyaml path and ``yamlfast``'s line parser) build
these, and ``desired`` reads them; the types live apart so neither loader
imports the other's module for them.
"""

from __future__ import annotations

from typing import Any

from .errors import Problem

Mark = tuple[int, int]  # (line, col), 1-based


class LocDict(dict):
    """A mapping that remembers the place of itself, of each key and of each raw scalar."""

    __slots__ = ("mark", "key_marks", "raws")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}
        self.raws: dict[Any, str] = {}


class LocList(list):
    """A sequence that remembers its place, each item's place and each raw scalar."""

    __slots__ = ("mark", "marks", "raws")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.marks: list[Mark] = []
        self.raws: list[str | None] = []


class YamlProblem(Exception):
    """The file cannot be loaded; carries the Problem to report."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def quote(text: object, limit: int = 80) -> str:
    """``repr`` of input for an error message, at most ~``limit`` characters: a number
    of a million characters is not echoed whole."""
    shown = repr(text)
    if len(shown) <= limit:
        return shown
    size = len(text) if isinstance(text, str) else len(shown)
    return f"{shown[: limit - 1]}…' ({size:,} characters)"
