"""``blocklist fmt``: list files in canonical form, like ``terraform fmt``.

Canonical: numbers in E.164, double-quoted (``--raw-comments`` keeps the form
they were written in as a comment on their line), the keys of long entries in
the order number, reason, expires, added, ttl, then metadata as written, the
layout ``blocklist import`` writes; comments and blank lines kept. With
``--prune-expired``, entries whose expiry has passed (now, or ``--at``) are
removed, from the lists' ``entries_from`` CSV files too. ``--check`` writes
nothing and reports what would change. Formatting is per file (a list's
``default_region`` reads its numbers): a file that is not a list (providers.yaml)
is left alone, and a number that cannot be read is left as written for
``validate`` to report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from ..desired import PROVIDERS_FILE, yaml_files
from ..errors import BlocklistError, ConfigError, Problem
from ..expiry import to_utc
from ..listedit import EditError, Pruned, format_text, unified_diff
from ..sources import SUFFIXES as SOURCE_SUFFIXES
from ..sources import Expiries, PrunedRow, SourceProblem, prune_expired, read_text
from ..yamlload import load_text
from ..yamlnodes import LocDict, YamlProblem


@dataclass
class FmtOptions:
    directory: Path  # used when no files are given
    files: tuple[Path, ...] = ()  # files or directories
    check: bool = False
    prune_expired: bool = False
    prune_only: bool = False  # prune, change nothing else
    raw_comments: bool = False
    now: dt.datetime | None = None  # None: the wall clock


@dataclass
class FmtFile:
    """One file fmt looked at."""

    path: Path
    shown: str
    diff: str = ""
    pruned: list[Pruned] = field(default_factory=list)
    pruned_rows: list[PrunedRow] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # numbers left alone

    @property
    def changed(self) -> bool:
        return bool(self.diff)


@dataclass
class FmtResult:
    files: list[FmtFile] = field(default_factory=list)
    written: bool = False
    check: bool = False

    @property
    def changed(self) -> list[FmtFile]:
        return [f for f in self.files if f.changed]


def run_fmt(options: FmtOptions) -> FmtResult:
    """Format every list file asked for; raise ConfigError (after writing the files
    that could be formatted) for those that cannot be read as YAML."""
    now = options.now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    prune_at = now if options.prune_expired or options.prune_only else None
    problems: list[Problem] = []
    result = FmtResult(check=options.check)
    for path in _files(options, problems):
        shown = path.as_posix()
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            problems.append(Problem(shown, 1, 1, f"cannot read file: {exc.strerror or exc}"))
            continue
        except UnicodeDecodeError as exc:
            problems.append(Problem(shown, 1, 1, f"file is not UTF-8: {exc.reason}"))
            continue
        try:
            done = format_text(
                text,
                shown,
                now=prune_at,
                raw_comments=options.raw_comments,
                prune_only=options.prune_only,
            )
        except YamlProblem as exc:
            problems.append(exc.problem)
            continue
        except EditError as exc:
            problems.append(Problem(shown, 1, 1, str(exc)))
            continue
        if done is None:
            continue  # not a list file
        new_text, report = done
        item = FmtFile(path, shown, unified_diff(text, new_text, shown), report.pruned)
        item.unreadable = report.unreadable
        result.files.append(item)
        if item.changed and not options.check:
            _write(path, new_text)
            result.written = True
        if prune_at is not None:
            result.files.extend(
                _prune_sources(path, new_text, shown, prune_at, options.check, problems)
            )
            result.written = result.written or (
                not options.check and any(f.pruned_rows for f in result.files)
            )
    if problems:
        raise ConfigError(problems)
    return result


def _files(options: FmtOptions, problems: list[Problem]) -> list[Path]:
    given = options.files or (options.directory,)
    out: list[Path] = []
    for path in given:
        if path.is_dir():
            found, unreadable = yaml_files(path)
            out.extend(p for p in found if p.name != PROVIDERS_FILE)
            problems.extend(Problem(p.as_posix(), 1, 1, why) for p, why in unreadable)
        elif path.exists():
            out.append(path)
        else:
            problems.append(Problem(path.as_posix(), 1, 1, "no such file"))
    return list(dict.fromkeys(out))


def _write(path: Path, text: str) -> None:
    try:
        write_atomic(path, text, mode=path.stat().st_mode & 0o777)
    except OSError as exc:
        raise BlocklistError(f"cannot write {path}: {exc.strerror or exc}") from None


def _prune_sources(
    path: Path, text: str, shown: str, now: dt.datetime, check: bool, problems: list[Problem]
) -> list[FmtFile]:
    """Prune the expired rows of a list's ``entries_from`` CSV files."""
    data = load_text(text, shown)
    if not isinstance(data, LocDict):
        return []
    given = data.get("entries_from")
    names = [given] if isinstance(given, str) else [n for n in given or () if isinstance(n, str)]
    defaults = data.get("defaults") if isinstance(data.get("defaults"), LocDict) else {}
    expires = defaults.get("expires")
    ttl = defaults.get("ttl")
    try:
        default_expires = to_utc(expires) if expires is not None else None
    except (ValueError, TypeError):
        default_expires = None
    out = []
    for name in names:
        source = path.parent / name
        if source.suffix.lower() not in SOURCE_SUFFIXES or not source.is_file():
            continue  # validate says why
        source_shown = source.as_posix()
        try:
            before = read_text(source)
            after, rows = prune_expired(
                source,
                before,
                now,
                Expiries(default_expires, ttl if isinstance(ttl, str) else None),
            )
        except OSError as exc:
            problems.append(Problem(source_shown, 1, 1, f"cannot read: {exc.strerror or exc}"))
            continue
        except SourceProblem as exc:
            problems.append(Problem(source_shown, exc.line, 1, exc.message))
            continue
        if not rows:
            continue
        item = FmtFile(source, source_shown, unified_diff(before, after, source_shown))
        item.pruned_rows = rows
        out.append(item)
        if not check:
            _write(source, after)
    return out
