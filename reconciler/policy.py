"""Policy as code: the rules of ``policy:`` in providers.yaml, as pure checks.

Owns what each rule means: protected prefixes and ranges (which numbers they
cover), required metadata (which entry values satisfy a key's pattern), a
plan's maximum of removes and the per-list safety thresholds (a list's share of
a target). ``desired`` reports entry violations as validation problems at their
line, ``operations.common`` adds the plan rules to a plan's unsafe reasons, and
the executor's ``Guard`` re-checks the protected ranges. Nothing here reads a
file, calls a provider or renders.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .domain import ManagedEntry
from .models import NumberRange, Policy, Safety


@dataclass(frozen=True)
class ProtectedRanges:
    """Prefixes and ranges no list may block, each with where it is written."""

    prefixes: Mapping[str, str] = field(default_factory=dict)  # "+1800" -> "providers.yaml:40"
    ranges: tuple[tuple[str, str, str], ...] = ()  # (from, to, source)
    _starts: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(self.prefixes))

    @classmethod
    def of(cls, policy: Policy, sources: Iterable[str] = ()) -> ProtectedRanges:
        """The protected ranges of ``policy``; ``sources`` names each item's place."""
        where = list(sources)
        prefixes: dict[str, str] = {}
        ranges: list[tuple[str, str, str]] = []
        for i, item in enumerate(policy.protected_ranges):
            source = where[i] if i < len(where) else "providers.yaml"
            if isinstance(item, NumberRange):
                ranges.append((item.start, item.end, source))
            else:
                prefixes.setdefault(item, source)
        return cls(prefixes, tuple(ranges))

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.ranges)

    def match(self, number: str) -> tuple[str, str] | None:
        """(the rule as written, where) of the first prefix or range covering ``number``."""
        if self.prefixes and number.startswith(self._starts):
            for prefix, source in self.prefixes.items():
                if number.startswith(prefix):
                    return prefix, source
        for start, end, source in self.ranges:
            if len(number) == len(start) and start <= number <= end:
                return f"{start}..{end}", source
        return None


@dataclass(frozen=True)
class MetadataRule:
    """One ``required_metadata`` key and the pattern its value must match."""

    key: str
    pattern: str
    source: str  # where the rule is written ("blocklists/providers.yaml:44")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` (None: the entry does not give the key) breaks the rule, or None."""
        if value is None or value == "":
            return (
                f"missing required metadata {self.key!r} "
                f"(policy.required_metadata at {self.source})"
            )
        text = str(value)
        if re.search(self.pattern, text) is None:
            return (
                f"{self.key} {text!r} does not match {self.pattern!r} "
                f"(policy.required_metadata at {self.source})"
            )
        return None


def metadata_rules(policy: Policy, sources: Mapping[str, str]) -> tuple[MetadataRule, ...]:
    """The required-metadata rules, each with the place it is written."""
    return tuple(
        MetadataRule(key, pattern, sources.get(key, "providers.yaml"))
        for key, pattern in policy.required_metadata.items()
    )


def entry_metadata(item: Any, key: str, default_reason: str | None = None) -> Any:
    """The value an entry gives ``key``: the key itself, else under ``meta:``;
    ``reason`` falls back to the list's default."""
    if isinstance(item, Mapping):
        if key in item:
            return item[key]
        meta = item.get("meta")
        if isinstance(meta, Mapping) and key in meta:
            return meta[key]
    if key == "reason":
        return default_reason
    return None


# -- plan rules ----------------------------------------------------------------------------

REMOVING = frozenset({"remove", "expire"})
ADDING = frozenset({"add", "readd"})


def file_of(source: str) -> str:
    """``blocklists/fraud.yaml:12`` -> ``blocklists/fraud.yaml``."""
    head, sep, tail = source.rpartition(":")
    return head if sep and tail.isdigit() else source


def max_removes_reason(removing: int, limit: int | None, source: str) -> str | None:
    """Why a plan removing ``removing`` numbers in all is unsafe under ``max_removes``."""
    if limit is None or removing <= limit:
        return None
    return (
        f"the plan would remove or expire {removing:,} numbers in all, more than "
        f"policy.max_removes {limit:,} ({source})"
    )


def list_share_reasons(
    list_name: str,
    files: Collection[str],
    safety: Safety,
    changes: Iterable[Any],
    managed: Mapping[str, ManagedEntry],
) -> list[str]:
    """Why a list's share of one target's plan is unsafe, or [].

    The share: the target's managed entries that state attributes to the list's files
    (their recorded source), and the plan's changes whose source is one of them."""
    existing = sum(1 for m in managed.values() if file_of(m.source) in files)
    if existing < safety.min_existing or existing == 0:
        return []
    removing = adding = 0
    for c in changes:
        if c.action in REMOVING or c.action in ADDING:
            if file_of(c.source) not in files:
                continue
            if c.action in REMOVING:
                removing += 1
            else:
                adding += 1
    reasons = []
    if removing > safety.max_remove_fraction * existing:
        reasons.append(
            f"list {list_name} would remove or expire {removing:,} of its {existing:,} entries "
            f"here ({removing / existing:.0%} > {safety.max_remove_fraction:.0%})"
        )
    if adding > safety.max_add_fraction * existing:
        reasons.append(
            f"list {list_name} would add {adding:,} entries to its {existing:,} here "
            f"({adding / existing:.0%} > {safety.max_add_fraction:.0%})"
        )
    return reasons
