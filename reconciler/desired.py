"""Load the desired state: every YAML file under the blocklists directory.

Owns: finding the files, validating them against ``models.py``, normalising
numbers, resolving expiry, building targets, merging lists per target and
detecting duplicates, conflicts and protected numbers. Reports every problem
of the run at once (``ConfigError``), each with file, line and column.
Knows nothing of providers' live state or of HTTP.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import targets
from .domain import DesiredEntry, Target
from .errors import ConfigError, Problem
from .expiry import add_ttl, iso, to_utc
from .gcpause import paused_gc
from .models import TTL_PATTERN, Entry, ListFile, ProvidersFile
from .numbers import InvalidNumber, fast_e164, is_known_region, normalise, remember_validated
from .plan import SortedNumbers
from .policy import MetadataRule, ProtectedRanges, entry_metadata, metadata_rules
from .providers import adapter_class
from .sources import SUFFIXES as SOURCE_SUFFIXES
from .sources import Expiries, SourceProblem, cell, open_table
from .yamlentries import EntryRows, scalar
from .yamlfast import Bail, text_or_int
from .yamlload import load_file, load_text
from .yamlnodes import LocDict, LocList, Mark, YamlProblem, quote

PROVIDERS_FILE = "providers.yaml"
_ENTRY_KEYS = frozenset(Entry.model_fields)
_SIMPLE_STR_KEYS = ("reason", "note", "owner")
_TTL = re.compile(TTL_PATTERN.removeprefix("^").removesuffix("$"))
Attrs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Declaration:
    """One list's entry of a watched number (``load_desired(watch=…)``), as written:
    what ``blocklist why`` shows, before lists are merged per target."""

    number: str  # E.164
    list_name: str
    source: str  # "blocklists/fraud.yaml:12"
    written: str  # the number as the list writes it
    reason: str | None
    expires: dt.datetime | None  # after defaults and ttl, as the plan uses it
    region: str | None  # the list's default_region
    targets: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (target name, attrs)
    metadata: tuple[tuple[str, Any], ...] = ()  # ticket, note, owner, added, ttl, …


#: region -> the watched number read with that default_region (None: not a number there)
Watch = Callable[[str | None], str | None]


@dataclass(frozen=True)
class ListSource:
    """Where a list is written: what ``block``, ``unblock`` and ``fmt`` edit, and what
    per-list policy attributes a change to."""

    name: str
    path: Path  # the list file
    display: str  # the list file as problems and sources name it ("blocklists/fraud.yaml")
    region: str | None
    targets: tuple[str, ...]  # target names
    sources: tuple[tuple[Path, str], ...] = ()  # entries_from files: (path, display)

    @property
    def files(self) -> frozenset[str]:
        """Every file the list's entries come from, as sources name them."""
        return frozenset((self.display, *(shown for _, shown in self.sources)))


@dataclass
class Desired:
    """The merged desired state of a run.

    Read-only once loaded: targets that hold the same entries (one list's targets with
    the same attributes) share one per-target mapping in ``entries``, and entries are
    shared between targets (a number's entry object, its expiry's datetime)."""

    root: Path
    config: ProvidersFile
    config_file: str
    targets: dict[str, Target]  # by target name, sorted
    entries: dict[str, dict[str, DesiredEntry]]  # target name -> number -> entry
    lists: list[str] = field(default_factory=list)  # list names, in file order
    files: int = 0
    protected: dict[str, str] = field(default_factory=dict)  # number -> source
    list_regions: dict[str, str | None] = field(default_factory=dict)  # list -> default_region
    #: every entry of the watched number (``load_desired(watch=…)``), in file order
    declarations: list[Declaration] = field(default_factory=list)
    #: every list with its file, in file order (``block``, ``fmt``, per-list policy)
    list_files: list[ListSource] = field(default_factory=list)
    #: policy: prefixes and ranges no list may block (the executor re-checks them)
    protected_ranges: ProtectedRanges = field(default_factory=ProtectedRanges)
    #: policy: where each rule is written ("max_removes" -> "blocklists/providers.yaml:9")
    policy_sources: dict[str, str] = field(default_factory=dict)
    #: every number declared for some target: what ``numbers.parse_live`` may take as
    #: validated (registered there by a weak reference, so it lives here)
    declared_numbers: Container[str] = field(
        default=frozenset(), init=False, repr=False, compare=False
    )

    def lists_named(self, name: str) -> list[ListSource]:
        return [ls for ls in self.list_files if ls.name == name]

    @property
    def configuration(self) -> str:
        """This configuration's name: providers.yaml ``name``, else the directory's path
        relative to the repository holding it (``blocklists``, ``envs/prod``), else the
        directory's own name. Plans, PR comments and the state's identity use it."""
        if self.config.name:
            return self.config.name
        here = self.root.resolve()
        for parent in (here, *here.parents):
            if (parent / ".git").exists():
                return here.relative_to(parent).as_posix() or here.name
        return here.name

    @property
    def numbers(self) -> int:
        """Distinct numbers declared across all targets."""
        seen: set[str] = set()
        for per_target in {id(m): m for m in self.entries.values()}.values():
            seen.update(per_target)
        return len(seen)

    def digest(self, orders: list[SortedNumbers] | None = None) -> str:
        """A stable digest of what is declared (for saved plans).

        The targets of one list share one mapping of entries: its text is made once
        and hashed for each of them (the last mapping's text is kept, no more). Each
        mapping is read in number order from an ``orders`` sort that holds its numbers
        (the diff's), else from one made here (and added to ``orders``)."""
        pool = orders if orders is not None else []
        h = hashlib.sha256()
        last: tuple[Mapping[str, DesiredEntry] | None, bytes] = (None, b"")
        for name in sorted(self.entries):
            target = self.targets[name]
            h.update(f"T{name}|{target.exclusive}\n".encode())
            entries = self.entries[name]
            if last[0] is not entries:
                order = SortedNumbers.shared(entries, pool)
                last = (entries, _entries_text(order.sorted_numbers(), order.entries_of(entries)))
            h.update(last[1])
        return h.hexdigest()


#: (expiry, reason, attrs) lines' tails kept by ``_entries_text`` (free-text reasons
#: need not repeat)
_TAILS_KEPT = 4096


def _entries_text(numbers: Iterable[str], entries: Iterable[DesiredEntry]) -> bytes:
    """What ``Desired.digest`` hashes of one target's entries (``entries``, in the order
    of their ``numbers``, number order): a line ``number|expiry|reason|attrs`` each. The
    text after the number is made once for each (expiry, reason, attrs) objects, which
    entries share (a million entries have a few hundred expiries)."""
    tails: dict[tuple[int, int, int], str] = {}
    parts: list[str] = []
    add = parts.append
    for n, e in zip(numbers, entries, strict=True):
        key = (id(e.expires), id(e.reason), id(e.attrs))  # alive, so never reused here
        tail = tails.get(key)
        if tail is None:
            if len(tails) >= _TAILS_KEPT:
                tails.clear()
            tail = tails[key] = f"|{iso(e.expires)}|{e.reason}|{e.attrs}\n"
        add(n)
        add(tail)
    return "".join(parts).encode()


YAML_SUFFIXES = (".yaml", ".yml")
#: directories under the lists that are not lists: this tool's own, and git's
SKIPPED_DIRECTORIES = frozenset({".blocklist", ".git"})


def yaml_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every ``*.yaml``/``*.yml`` under ``root`` (sorted, providers.yaml first), and
    every path that looks like one, or may hold one, but cannot be read, with why.

    Nothing is skipped in silence: a list that cannot be read would otherwise drop
    out of the desired state, and the next apply would remove its numbers. A
    dangling or looping symbolic link, a FIFO or device, a directory named like a
    list, an unreadable directory: each is an error naming it. Symbolic links to
    directories are followed (each real directory once)."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen_dirs: set[tuple[int, int]] = set()

    def walk(directory: Path) -> None:
        try:
            info = directory.stat()
            key = (info.st_dev, info.st_ino)
            if key in seen_dirs:
                problems.append((directory, "symbolic link loop: this directory is read already"))
                return
            seen_dirs.add(key)
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append((directory, f"cannot read directory: {exc.strerror or exc}"))
            return
        for entry in entries:
            path = Path(entry.path)
            listed = path.suffix in YAML_SUFFIXES
            try:
                info = path.stat()  # follows symbolic links
            except OSError as exc:
                if entry.is_symlink():
                    if exc.errno == errno.ELOOP:
                        problems.append((path, "symbolic link loop"))
                    elif listed or exc.errno != errno.ENOENT:
                        where = os.readlink(path)
                        problems.append((path, f"dangling symbolic link (to {where!r})"))
                elif listed:
                    problems.append((path, f"cannot read: {exc.strerror or exc}"))
                continue
            if stat.S_ISDIR(info.st_mode):
                if listed:
                    problems.append((path, "is a directory, not a list file"))
                elif entry.name not in SKIPPED_DIRECTORIES:
                    walk(path)
            elif listed:
                if stat.S_ISREG(info.st_mode):
                    files.append(path)
                else:
                    problems.append((path, "not a regular file (a FIFO, socket or device)"))

    walk(root)
    files.sort(key=lambda p: (p.name != PROVIDERS_FILE or p.parent != root, str(p)))
    return files, problems


def load_desired(
    root: Path | str,
    display_root: str | None = None,
    *,
    watch: Watch | None = None,
    expiring_before: dt.datetime | None = None,
    texts: Mapping[Path, str] | None = None,
) -> Desired:
    """Load and validate everything under ``root``; raise ConfigError with all problems.

    ``watch`` (``blocklist why``) reads one number with each list's default_region;
    every entry of it is kept in ``Desired.declarations`` with its metadata, which
    merging per target would otherwise drop. It costs one comparison per entry.
    ``expiring_before`` keeps there, instead, every entry that expires before then
    (``blocklist expiring``). ``texts`` gives the text of files as they would be
    after an edit (``block``, ``unblock``): validated before anything is written."""
    root = Path(root)
    shown = display_root if display_root is not None else str(root)
    loader = _Loader(root, shown, watch, expiring_before, texts)
    # what loading builds holds no reference cycles, and the cyclic collector would
    # otherwise rescan the hundreds of thousands of new objects again and again
    with paused_gc():
        return loader.run()


class _Loader:
    def __init__(
        self,
        root: Path,
        shown: str,
        watch: Watch | None = None,
        expiring_before: dt.datetime | None = None,
        texts: Mapping[Path, str] | None = None,
    ) -> None:
        self.root = root
        self.shown = shown.rstrip("/") or "."
        self.problems: list[Problem] = []
        self.watch = watch
        self.cutoff = expiring_before
        self.texts = dict(texts or {})
        self._watched: dict[str | None, str | None] = {}
        self.rules: tuple[MetadataRule, ...] = ()
        self.ranges = ProtectedRanges()
        #: every expiry computed, by value: equal instants share one datetime
        self._instants: dict[dt.datetime, dt.datetime] = {}
        #: the per-target mappings: id -> (the mapping, the targets holding it)
        self._holders: dict[int, tuple[dict[str, DesiredEntry], set[str]]] = {}

    def watched(self, region: str | None) -> str | None:
        """The watched number as a list with ``region`` reads it (None: no watch)."""
        if self.watch is None:
            return None
        if region not in self._watched:
            self._watched[region] = self.watch(region)
        return self._watched[region]

    # -- helpers -------------------------------------------------------------------------

    def display(self, path: Path) -> str:
        return f"{self.shown}/{path.relative_to(self.root).as_posix()}"

    @property
    def bulk(self) -> bool:
        """Whether list entries may be read in bulk (``bulk_entries``): not when each
        entry's metadata is needed (policy rules, ``watch``, ``expiring_before``)."""
        return not self.rules and self.watch is None and self.cutoff is None

    def read(self, path: Path, shown: str) -> Any:
        """A list file's tree (its entries perhaps as ``EntryRows``): its edited text if
        one is given (``texts``), else the file."""
        if path in self.texts:
            return load_text(self.texts[path], shown, rows=self.bulk)
        return load_file(path, shown, rows=self.bulk)

    def problem(self, file: str, mark: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(file, mark[0], mark[1], message))

    def pydantic_problems(
        self, file: str, data: Any, exc: ValidationError, context: str = ""
    ) -> None:
        for err in exc.errors(include_url=False):
            mark, path, raw = _locate(data, err["loc"])
            self.problem(file, mark, _message(err, path, raw, context))

    # -- the run -------------------------------------------------------------------------

    def run(self) -> Desired:
        if not self.root.is_dir():
            raise ConfigError([Problem(self.shown, 1, 1, "no such directory")])
        files, unreadable = yaml_files(self.root)
        for path, why in unreadable:
            self.problems.append(Problem(self.display(path), 1, 1, why))
        if not files and not unreadable:
            raise ConfigError(
                [Problem(self.shown, 1, 1, "no YAML files (expected providers.yaml and lists)")]
            )
        config_path = self.root / PROVIDERS_FILE
        config_file = self.display(config_path)
        if config_path not in files:
            if not any(path == config_path for path, _ in unreadable):
                self.problems.append(
                    Problem(config_file, 1, 1, "missing: providers.yaml is required")
                )
            raise ConfigError(self.problems)

        # providers.yaml first; then each list is parsed, merged and dropped before the
        # next is read, so only one file's YAML tree is in memory at a time
        try:
            config = self.load_config(config_file, load_file(config_path, config_file))
        except YamlProblem as exc:
            self.problems.append(exc.problem)
            config = None
        if config is None:
            for path in files:  # still report what is wrong in the lists
                if path != config_path:
                    try:
                        load_file(path, self.display(path))
                    except YamlProblem as exc:
                        self.problems.append(exc.problem)
            raise ConfigError(self.problems)

        protected = self.protected_numbers(config_file, config[1], config[0])
        desired = Desired(
            root=self.root,
            config=config[0],
            config_file=config_file,
            targets={},
            entries={},
            files=len(files),
            protected=protected,
        )
        self.load_policy(config_file, config[1], config[0], desired)
        target_modes: dict[str, tuple[bool, str]] = {}
        for path in files:
            if path == config_path:
                continue
            shown = self.display(path)
            try:
                data = self.read(path, shown)
            except YamlProblem as exc:
                self.problems.append(exc.problem)
                continue
            self.load_list(shown, data, desired, target_modes, path)
            del data
        self.check_policy_names(config_file, config[1], desired)
        if self.problems:
            raise ConfigError(self.problems)
        desired.targets = dict(sorted(desired.targets.items()))
        desired.entries = {name: desired.entries.get(name, {}) for name in desired.targets}
        desired.declared_numbers = _Declared(desired.entries.values())
        remember_validated(desired.declared_numbers)
        return desired

    def load_config(self, file: str, data: Any) -> tuple[ProvidersFile, Any] | None:
        if not isinstance(data, LocDict):
            self.problem(file, getattr(data, "mark", (1, 1)), "expected a mapping")
            return None
        try:
            config = ProvidersFile.model_validate(data)
        except ValidationError as exc:
            self.pydantic_problems(file, data, exc)
            return None
        providers = data.get("providers")
        for name, inst in config.providers.items():
            mark = (
                providers.key_marks.get(name, (1, 1)) if isinstance(providers, LocDict) else (1, 1)
            )
            caps = adapter_class(inst.type).capabilities
            allowed = caps.credential_keys + caps.optional_credential_keys
            for key in inst.credentials:
                if key not in allowed:
                    expected = ", ".join(allowed)
                    self.problem(
                        file,
                        mark,
                        f"providers.{name}.credentials: unknown key {key!r} for "
                        f"{inst.type} (expected: {expected})",
                    )
            if inst.auth_mode is not None and inst.auth_mode not in caps.auth_modes:
                modes = ", ".join(caps.auth_modes)
                self.problem(
                    file,
                    mark,
                    f"providers.{name}.auth_mode: {inst.type} takes "
                    + (f"one of {modes}" if modes else "no auth_mode")
                    + f" (got {quote(inst.auth_mode)})",
                )
            if inst.base_url not in (None, "sandbox"):
                from .connections import base_url_problem  # local: avoids an import cycle

                why = base_url_problem(inst.base_url)
                if why:
                    self.problem(file, mark, f"providers.{name}.base_url: {why}")
            elif inst.base_url is None:
                for key in caps.credential_keys:
                    if key not in inst.credentials:
                        self.problem(
                            file,
                            mark,
                            f"providers.{name}.credentials: missing {key!r} "
                            "(give {env: VARIABLE})",
                        )
        if config.state.backend == "postgres" and config.state.dsn is None:
            mark = data.key_marks.get("state", (1, 1))
            self.problem(file, mark, "state.dsn is required for the postgres backend")
        return config, data

    def protected_numbers(self, file: str, data: Any, config: ProvidersFile) -> dict[str, str]:
        out: dict[str, str] = {}
        items = data.get("protected") if isinstance(data, LocDict) else None
        if not isinstance(items, LocList):
            return out
        for i, _ in enumerate(config.protected):
            raw = items.raws[i] if items.raws[i] is not None else str(items[i])
            try:
                number = normalise(raw)
            except InvalidNumber as exc:
                self.problem(file, items.marks[i], f"protected number {quote(raw)}: {exc}")
                continue
            out[number] = f"{file}:{items.marks[i][0]}"
        return out

    def load_policy(self, file: str, data: Any, config: ProvidersFile, desired: Desired) -> None:
        """The policy's rules, each with the line it is written on."""
        node = data.get("policy") if isinstance(data, LocDict) else None
        if not isinstance(node, LocDict):
            return
        policy = config.policy
        where = {"policy": f"{file}:{data.key_marks['policy'][0]}"}
        for key, mark in node.key_marks.items():
            where[str(key)] = f"{file}:{mark[0]}"
        ranges = node.get("protected_ranges")
        range_sources = (
            [f"{file}:{m[0]}" for m in ranges.marks] if isinstance(ranges, LocList) else []
        )
        self.ranges = ProtectedRanges.of(policy, range_sources)
        required = node.get("required_metadata")
        rule_sources = (
            {str(k): f"{file}:{m[0]}" for k, m in required.key_marks.items()}
            if isinstance(required, LocDict)
            else {}
        )
        self.rules = metadata_rules(policy, rule_sources)
        desired.protected_ranges = self.ranges
        desired.policy_sources = where

    def check_policy_names(self, file: str, data: Any, desired: Desired) -> None:
        """Per-target and per-list thresholds must name a declared target and list."""
        policy = desired.config.policy
        node = data.get("policy") if isinstance(data, LocDict) else None
        safety = node.get("safety") if isinstance(node, LocDict) else None
        if not isinstance(safety, LocDict):
            return
        for kind, known in (("targets", desired.targets), ("lists", desired.lists)):
            given = getattr(policy.safety, kind)
            marks = safety.get(kind)
            for name in given:
                if name in known:
                    continue
                mark = (
                    marks.key_marks.get(name, marks.mark) if isinstance(marks, LocDict) else (1, 1)
                )
                names = ", ".join(sorted(known)) or "none"
                self.problem(
                    file,
                    mark,
                    f"policy.safety.{kind}: {name!r} is not a declared "
                    f"{kind[:-1]} (declared: {names})",
                )

    # -- list files ------------------------------------------------------------------------

    def load_list(
        self,
        file: str,
        data: Any,
        desired: Desired,
        target_modes: dict[str, tuple[bool, str]],
        path: Path | None = None,
    ) -> None:
        if not isinstance(data, LocDict):
            self.problem(file, getattr(data, "mark", (1, 1)), "expected a mapping")
            return
        bulk = None
        rows = data.get("entries")
        if isinstance(rows, EntryRows):
            bulk = self.bulk_entries(file, data, rows, desired)
            if bulk is None:  # the generic path, as if the bulk one never was
                try:
                    data = load_text(rows.text, file)
                except YamlProblem as exc:
                    self.problems.append(exc.problem)
                    return
        header = LocDict(data.mark)
        header.update({k: v for k, v in data.items() if k != "entries"})
        header.key_marks = data.key_marks
        header.raws = data.raws
        try:
            spec = ListFile.model_validate(header)
        except ValidationError as exc:
            self.pydantic_problems(file, header, exc)
            return
        entries = data.get("entries", LocList(data.mark))
        if entries is None:
            entries = LocList(data.mark)
        if not isinstance(entries, LocList | EntryRows):
            self.problem(file, data.key_marks.get("entries", data.mark), "entries must be a list")
            return
        region = spec.default_region
        if region is not None and not is_known_region(region):
            mark = data.key_marks.get("default_region", data.mark)
            self.problem(file, mark, f"default_region: unknown region {region!r}")
            return
        desired.lists.append(spec.name)
        desired.list_regions[spec.name] = region

        targets = self.list_targets(file, data, spec, desired, target_modes)
        defaults = spec.defaults
        default_expires = self.default_expires(defaults)
        run = _ListRun(self, desired, file, spec.name, region, targets, self.watched(region))
        if bulk is not None:
            run.take(bulk, rows.col if isinstance(rows, EntryRows) else 1)
        for i, item in enumerate(entries if isinstance(entries, LocList) else ()):
            mark = entries.marks[i]
            parsed = self.parse_entry(file, item, entries.raws[i], mark, region, defaults)
            if parsed is None:
                continue
            number, raw, reason, expires = parsed
            if expires is None and default_expires is not None:
                expires = default_expires
            if self.rules:
                for why in run.metadata_problems(item, defaults.reason):
                    self.problem(file, mark, why)
            run.declare(file, mark, number, raw, reason, expires, item)
        sources = self.load_sources(file, data, spec, path, run, default_expires)
        self.merge_run(run)
        if path is not None:
            desired.list_files.append(
                ListSource(
                    spec.name,
                    path,
                    file,
                    region,
                    tuple(t.name for t, _ in targets),
                    tuple(sources),
                )
            )

    def load_sources(
        self,
        file: str,
        data: LocDict,
        spec: ListFile,
        path: Path | None,
        run: _ListRun,
        default_expires: dt.datetime | None,
    ) -> list[tuple[Path, str]]:
        """Read the list's ``entries_from`` files, row by row, into the list's run."""
        given = spec.entries_from
        if given is None:
            return []
        names = [given] if isinstance(given, str) else list(given)
        node = data.get("entries_from")
        mark = data.key_marks.get("entries_from", data.mark)
        out: list[tuple[Path, str]] = []
        base = path.parent if path is not None else self.root
        for i, name in enumerate(names):
            where = node.marks[i] if isinstance(node, LocList) and i < len(node.marks) else mark
            source = base / name
            if source.suffix.lower() not in SOURCE_SUFFIXES:
                self.problem(
                    file, where, f"entries_from: {quote(name)} is neither a .csv nor a .txt file"
                )
                continue
            shown = self.source_display(source)
            try:
                if source.is_dir():
                    raise IsADirectoryError(21, "is a directory")
                table = open_table(source)
            except FileNotFoundError:
                self.problem(file, where, f"entries_from: {quote(name)} not found ({shown})")
                continue
            except OSError as exc:
                self.problem(
                    file, where, f"entries_from: cannot read {quote(name)}: {exc.strerror or exc}"
                )
                continue
            except SourceProblem as exc:
                self.problems.append(Problem(shown, exc.line, 1, exc.message))
                continue
            out.append((source, shown))
            try:
                self.load_rows(shown, table, run, spec.defaults, default_expires)
            except SourceProblem as exc:
                self.problems.append(Problem(shown, exc.line, 1, exc.message))
        return out

    def source_display(self, path: Path) -> str:
        try:
            return self.display(path)
        except ValueError:  # outside the lists' directory
            return path.as_posix()

    def load_rows(
        self,
        shown: str,
        table: Any,
        run: _ListRun,
        defaults: Any,
        default_expires: dt.datetime | None,
    ) -> None:
        """Every row of a source: the rules of a YAML entry, on a path without models."""
        index = table.index
        columns = table.columns
        width = len(columns)
        number_col = index["number"]
        reason_col = index.get("reason")
        ex, ad, tt = index.get("expires"), index.get("added"), index.get("ttl")
        expiries = Expiries(default_expires, defaults.ttl)
        region = run.region
        default_reason = defaults.reason
        rules = self.rules
        rule_cols = [(rule, index.get(rule.key)) for rule in rules]
        for line, row in table.rows:
            mark = (line, 1)
            if len(row) != width:
                self.problem(shown, mark, f"row has {len(row)} fields, the header has {width}")
                continue
            raw = row[number_col]
            try:
                number = normalise(raw, region)
            except InvalidNumber as exc:
                self.problem(shown, mark, f"invalid phone number {quote(raw)}: {exc}")
                continue
            if ex is None and ad is None and tt is None:
                expires, why = expiries.resolve("", "", "")
            else:
                expires, why = expiries.resolve(cell(row, ex), cell(row, ad), cell(row, tt))
            if why is not None:
                self.problem(shown, mark, why)
                continue
            reason = (row[reason_col] if reason_col is not None else "") or default_reason
            if rules:
                for rule, col in rule_cols:
                    value = row[col] if col is not None else None
                    if rule.key == "reason" and not value:
                        value = default_reason
                    problem = rule.problem(value)
                    if problem is not None:
                        self.problem(shown, mark, problem)
            run.declare(shown, mark, number, raw, reason, expires, (columns, row))

    def list_targets(
        self,
        file: str,
        data: LocDict,
        spec: ListFile,
        desired: Desired,
        target_modes: dict[str, tuple[bool, str]],
    ) -> list[tuple[Target, tuple[tuple[str, str], ...]]]:
        out: list[tuple[Target, tuple[tuple[str, str], ...]]] = []
        raw_targets = data.get("targets")
        names: set[str] = set()
        for i, t in enumerate(spec.targets):
            mark = raw_targets.marks[i] if isinstance(raw_targets, LocList) else data.mark
            try:
                target, attrs = targets.from_spec(t, desired.config)
            except targets.TargetProblem as exc:
                for message in exc.problems:
                    self.problem(file, mark, message)
                continue
            name = target.name
            if name in names:
                self.problem(file, mark, f"target {name} is listed twice in this list")
                continue
            names.add(name)
            where = f"{file}:{mark[0]}"
            if name in target_modes and target_modes[name][0] != target.exclusive:
                self.problem(
                    file,
                    mark,
                    f"target {name}: mode {t.mode!r} conflicts with {target_modes[name][1]}",
                )
                continue
            target_modes.setdefault(name, (target.exclusive, where))
            target = desired.targets.setdefault(name, target)
            out.append((target, attrs))
        return out

    def parse_entry(
        self,
        file: str,
        item: Any,
        raw_text: str | None,
        mark: tuple[int, int],
        region: str | None,
        defaults: Any,
    ) -> tuple[str, str, str | None, dt.datetime | None] | None:
        """(number, raw, reason, expires) of one entry, or None after reporting problems."""
        reason = defaults.reason
        expires_v: Any = None
        added_v: Any = None
        ttl = None
        if isinstance(item, LocDict):
            fields_ok = _fast_entry_ok(item)
            if not fields_ok:
                try:
                    model = Entry.model_validate(item)
                except ValidationError as exc:
                    self.pydantic_problems(file, item, exc, context="entry")
                    return None
                values = {k: getattr(model, k) for k in item}
            else:
                values = item
            raw = item.raws.get("number")
            if raw is None:
                if "number" not in item:
                    self.problem(file, mark, "entry needs 'number'")
                    return None
                raw = str(item["number"])
            reason = values.get("reason", reason) or reason
            expires_v = values.get("expires")
            added_v = values.get("added")
            ttl = values.get("ttl")
            num_mark = item.key_marks.get("number", mark)
        elif isinstance(item, str | int) and not isinstance(item, bool):
            raw = raw_text if raw_text is not None else str(item)
            num_mark = mark
        else:
            self.problem(file, mark, "entry must be a number or a mapping with 'number'")
            return None
        try:
            number = normalise(raw, region)
        except InvalidNumber as exc:
            self.problem(file, num_mark, f"invalid phone number {quote(raw)}: {exc}")
            return None
        expires, why = self.expiry(expires_v, added_v, ttl, defaults.ttl)
        if why is not None:
            self.problem(file, mark, why)
            return None
        return number, raw, reason, expires

    def expiry(
        self, expires: Any, added: Any, ttl: str | None, default_ttl: str | None
    ) -> tuple[dt.datetime | None, str | None]:
        """(the expiry, None) of an entry's ``expires``, ``added`` and ``ttl`` values, or
        (None, why not); equal instants share one datetime (a million entries have a few
        hundred expiries)."""
        if ttl is None and expires is None:
            ttl = default_ttl
        if expires is not None and ttl is not None:
            return None, "give either 'expires' or 'ttl', not both"
        try:
            if expires is not None:
                when = to_utc(expires)
            elif ttl is not None:
                if added is None:
                    return None, f"ttl {ttl!r} needs 'added' (the date it counts from)"
                when = add_ttl(to_utc(added), ttl)
            else:
                return None, None
        except (ValueError, OverflowError) as exc:
            return None, f"bad expiry: {exc}"
        return self._instants.setdefault(when, when), None

    def default_expires(self, defaults: Any) -> dt.datetime | None:
        """A list's ``defaults.expires`` as an instant (shared, as every expiry)."""
        if defaults.expires is None:
            return None
        when = to_utc(defaults.expires)
        return self._instants.setdefault(when, when)

    def bulk_entries(
        self, file: str, data: LocDict, block: EntryRows, desired: Desired
    ) -> dict[str, DesiredEntry] | None:
        """A list's entries read in bulk (``yamlentries``), checked by the rules of
        ``load_list``, ``parse_entry`` and ``_ListRun.declare``, before anything is
        recorded: None when the list or any row is not what is read here, or anything
        has a problem; the generic path then loads the list as if this one never ran
        (and words the problems)."""
        if not self.bulk:
            return None
        try:
            spec = ListFile.model_validate({k: v for k, v in data.items() if k != "entries"})
            default_expires = self.default_expires(spec.defaults)
        except (ValidationError, ValueError, OverflowError):
            return None
        region = spec.default_region
        if region is not None and not is_known_region(region):
            return None
        return self.load_entry_rows(
            file, spec.name, region, spec.defaults, default_expires, block, desired
        )

    def load_entry_rows(
        self,
        file: str,
        name: str,
        region: str | None,
        defaults: Any,
        default_expires: dt.datetime | None,
        block: EntryRows,
        desired: Desired,
    ) -> dict[str, DesiredEntry] | None:
        """``bulk_entries``' loop: every row, or None at the first that will not do."""
        protected = desired.protected
        ranges = self.ranges if self.ranges else None
        default_reason = defaults.reason
        #: raw text -> the entry's reason (None: none given), or _DECLINED
        reasons: dict[str | None, Any] = {None: default_reason}
        texts: dict[str, bool] = {}  # raw text -> whether it is text (note, owner)
        #: raw texts -> expiry, or _DECLINED
        expiries: dict[tuple[str | None, str | None, str | None], Any] = {}
        entries: dict[str, DesiredEntry] = {}
        line = block.line
        try:
            for (
                short,
                raw,
                reason,
                expires,
                added,
                ttl,
                ticket,
                note,
                owner,
                skip,
                odd,
            ) in block.rows:
                if skip:
                    line += skip.count("\n")
                    continue
                if odd:
                    return None
                here = line
                if short:
                    raw = short
                    line += 1
                else:
                    line += 8 - (reason, expires, added, ttl, ticket, note, owner).count(None)
                if raw[0] == '"' or raw[0] == "'":
                    raw = raw[1:-1]
                number = fast_e164(raw)
                if number is None:
                    number = normalise(raw, region)
                if number in entries or number in protected:
                    return None
                if ranges is not None and ranges.match(number) is not None:
                    return None
                why = reasons.get(reason, _DECLINED)
                if why is _DECLINED:
                    if reason in reasons:
                        return None
                    value = scalar(reason)
                    why = reasons[reason] = (
                        (value or default_reason) if isinstance(value, str) else _DECLINED
                    )
                    if why is _DECLINED:
                        return None
                if ticket and ticket[0] not in "\"'" and not text_or_int(ticket):
                    return None  # the model takes text or a whole number (not a boolean)
                if note or owner:
                    for text in (note, owner):
                        if text:
                            ok = texts.get(text)
                            if ok is None:
                                ok = texts[text] = isinstance(scalar(text), str)
                            if not ok:
                                return None
                key = (expires, added, ttl)
                when = expiries.get(key, expiries)
                if when is expiries:
                    when = expiries[key] = self.row_expiry(key, defaults, default_expires)
                if when is _DECLINED:
                    return None
                entries[number] = DesiredEntry(number, why, when, (), f"{file}:{here}", name)
        except (InvalidNumber, Bail):
            return None
        return entries

    def row_expiry(
        self,
        texts: tuple[str | None, str | None, str | None],
        defaults: Any,
        default_expires: dt.datetime | None,
    ) -> Any:
        """The expiry of a row's ``expires``, ``added`` and ``ttl`` texts (None: absent), or
        ``_DECLINED`` where ``parse_entry`` would find a problem (or the model would)."""
        values: list[Any] = []
        for text in texts[:2]:
            value = scalar(text) if text else None
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    return _DECLINED
            elif value is not None and not isinstance(value, dt.date):
                return _DECLINED
            values.append(value)
        ttl = scalar(texts[2]) if texts[2] else None
        if ttl is not None and not (isinstance(ttl, str) and _TTL.fullmatch(ttl)):
            return _DECLINED
        when, why = self.expiry(values[0], values[1], ttl, defaults.ttl)
        if why is not None:
            return _DECLINED
        return default_expires if when is None else when

    # -- merging per target ------------------------------------------------------------

    def merge_run(self, run: _ListRun) -> None:
        """A list's entries into each of its targets. The targets of a list with the same
        attributes share the entries and one mapping while they hold the same numbers;
        a mapping is copied when a later list changes only some of its targets."""
        if not run.entries:
            return
        groups: dict[Attrs, list[str]] = {}
        for target, attrs in run.targets:
            groups.setdefault(attrs, []).append(target.name)
        for attrs, names in groups.items():
            entries = run.entries
            if attrs:
                entries = {
                    n: DesiredEntry(n, e.reason, e.expires, attrs, e.source, e.list_name)
                    for n, e in entries.items()
                }
            self.merge_group(run, names, entries)

    def merge_group(
        self, run: _ListRun, names: list[str], entries: dict[str, DesiredEntry]
    ) -> None:
        maps = run.desired.entries
        holders = self._holders
        fresh: list[str] = []
        held: dict[int, list[str]] = {}
        for name in names:
            mapping = maps.get(name)
            if mapping is None:
                fresh.append(name)
            else:
                held.setdefault(id(mapping), []).append(name)
        if fresh:  # the first list of these targets: its entries are their mapping
            holders[id(entries)] = (entries, set(fresh))
            for name in fresh:
                maps[name] = entries
        for key, here in held.items():
            mapping, holding = holders[key]
            if len(holding) != len(here):  # other targets hold it too: not theirs to change
                holding.difference_update(here)
                mapping = dict(mapping)
                holders[id(mapping)] = (mapping, set(here))
                for name in here:
                    maps[name] = mapping
            self.merge_into(run, mapping, here, entries)

    def merge_into(
        self,
        run: _ListRun,
        mapping: dict[str, DesiredEntry],
        names: list[str],
        entries: dict[str, DesiredEntry],
    ) -> None:
        """``entries`` into the mapping of targets ``names``: a number in both is merged
        (no expiry beats any expiry, else the later expiry wins), unless their
        attributes conflict; new numbers follow in the list's order."""
        both = mapping.keys() & entries.keys()
        for number in both:
            existing, entry = mapping[number], entries[number]
            if existing.attrs != entry.attrs:
                file, mark = run.mark_of(number)
                for name in names:
                    self.problem(
                        file,
                        mark,
                        f"{number} for {name}: attributes "
                        f"{_attrs_text(entry.attrs)} conflict with {_attrs_text(existing.attrs)} "
                        f"at {existing.source}",
                    )
            elif existing.expires is not None and (
                entry.expires is None or entry.expires > existing.expires
            ):
                mapping[number] = entry
        if both:
            mapping.update({n: e for n, e in entries.items() if n not in both})
        else:
            mapping.update(entries)


class _ListRun:
    """One list being loaded: the checks every entry of it passes, from its YAML
    ``entries`` and its ``entries_from`` rows alike (duplicates, protected numbers and
    ranges), and its entries, which ``_Loader.merge_run`` merges into its targets."""

    __slots__ = (
        "loader",
        "desired",
        "file",
        "name",
        "region",
        "targets",
        "wanted",
        "entries",
        "rejected",
        "marks",
        "col",
    )

    def __init__(
        self,
        loader: _Loader,
        desired: Desired,
        file: str,
        name: str,
        region: str | None,
        targets: list[tuple[Target, tuple[tuple[str, str], ...]]],
        wanted: str | None,
    ) -> None:
        self.loader = loader
        self.desired = desired
        self.file = file
        self.name = name
        self.region = region
        self.targets = targets
        self.wanted = wanted
        self.entries: dict[str, DesiredEntry] = {}  # number -> its entry, in list order
        self.rejected: dict[str, tuple[str, int]] = {}  # numbers refused: number -> place
        self.marks: dict[str, Mark] = {}  # number -> its entry's mark (but bulk-read ones)
        self.col = 1  # the column of the bulk-read entries

    def take(self, entries: dict[str, DesiredEntry], col: int) -> None:
        """The entries read in bulk, before any other: each at column ``col``."""
        self.entries = entries
        self.col = col

    def first_at(self, number: str) -> tuple[str, int] | None:
        """Where the list declares ``number`` already: (file, line), or None."""
        entry = self.entries.get(number)
        if entry is None:
            return self.rejected.get(number)
        file, _, line = entry.source.rpartition(":")
        return file, int(line)

    def mark_of(self, number: str) -> tuple[str, Mark]:
        """The file and mark of the list's entry of ``number``."""
        file, line = self.first_at(number) or (self.file, 1)
        return file, self.marks.get(number, (line, self.col))

    def metadata_problems(self, item: Any, default_reason: str | None) -> list[str]:
        out = []
        for rule in self.loader.rules:
            why = rule.problem(entry_metadata(item, rule.key, default_reason))
            if why is not None:
                out.append(why)
        return out

    def declare(
        self,
        file: str,
        mark: Mark,
        number: str,
        raw: str,
        reason: str | None,
        expires: dt.datetime | None,
        item: Any,
    ) -> None:
        loader = self.loader
        desired = self.desired
        first = self.first_at(number)
        if first is not None:
            where = f"line {first[1]}" if first[0] == file else f"{first[0]}:{first[1]}"
            loader.problem(
                file, mark, f"duplicate number {number} (written {quote(raw)}; first at {where})"
            )
            return
        if number in desired.protected:
            self.rejected[number] = (file, mark[0])
            loader.problem(
                file,
                mark,
                f"{number} (written {quote(raw)}) is protected "
                f"({desired.protected[number]}) and may not be blocked",
            )
            return
        if loader.ranges:
            covered = loader.ranges.match(number)
            if covered is not None:
                self.rejected[number] = (file, mark[0])
                loader.problem(
                    file,
                    mark,
                    f"{number} (written {quote(raw)}) is in the protected range {covered[0]} "
                    f"({covered[1]}) and may not be blocked",
                )
                return
        source = f"{file}:{mark[0]}"
        self.entries[number] = DesiredEntry(number, reason, expires, (), source, self.name)
        self.marks[number] = mark
        cutoff = loader.cutoff
        if (self.wanted is not None and number == self.wanted) or (
            cutoff is not None and expires is not None and expires <= cutoff
        ):
            desired.declarations.append(
                Declaration(
                    number,
                    self.name,
                    source,
                    raw,
                    reason,
                    expires,
                    self.region,
                    tuple((t.name, attrs) for t, attrs in self.targets),
                    _row_metadata(*item) if isinstance(item, tuple) else _metadata(item),
                )
            )


def _row_metadata(columns: list[str], row: list[str]) -> tuple[tuple[str, Any], ...]:
    """A source row's cells besides number, reason and expires (ticket, added, ttl, …)."""
    return tuple(
        (name, value)
        for name, value in zip(columns, row, strict=True)
        if name not in _DECLARED_KEYS and value != ""
    )


#: what an entry says besides its number, reason and expiry (kept, never sent)
_DECLARED_KEYS = frozenset({"number", "reason", "expires"})


def _metadata(item: Any) -> tuple[tuple[str, Any], ...]:
    """An entry's other keys (ticket, note, owner, labels, meta, added, ttl) as plain
    JSON-able values, in the order the list writes them."""
    if not isinstance(item, dict):
        return ()
    return tuple((str(k), _plain(v)) for k, v in item.items() if k not in _DECLARED_KEYS)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return iso(to_utc(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


#: ``_Loader.row_expiry``: the row has a problem (the generic path reports it)
_DECLINED = object()


class _Declared:
    """Every number declared for some target (``numbers.remember_validated``)."""

    __slots__ = ("_mappings", "__weakref__")

    def __init__(self, mappings: Iterable[Mapping[str, DesiredEntry]]) -> None:
        self._mappings = tuple({id(m): m for m in mappings}.values())

    def __contains__(self, number: object) -> bool:
        # a loop, not any(): asked once per live number, and a generator costs more
        for mapping in self._mappings:  # noqa: SIM110
            if number in mapping:
                return True
        return False


def _attrs_text(attrs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in attrs) or "(none)"


def _fast_entry_ok(item: LocDict) -> bool:
    """True when a long-form entry needs no model validation (the common case)."""
    for key, value in item.items():
        if key not in _ENTRY_KEYS:
            return False
        if key == "number":
            if not isinstance(value, str | int) or isinstance(value, bool):
                return False
        elif key in _SIMPLE_STR_KEYS:
            if not isinstance(value, str):
                return False
        elif key in ("expires", "added"):
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    return False
            elif not isinstance(value, dt.date):
                return False
        elif key == "ttl":
            return False  # pattern check by the model
        elif key == "ticket":
            if not isinstance(value, str | int) or isinstance(value, bool):
                return False
        else:
            return False
    return True


def _locate(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[int, int], str, Any]:
    """Mark, dotted path and raw value of a pydantic error location in a Loc tree."""
    node = data
    mark = getattr(data, "mark", (1, 1))
    path: list[str] = []
    raw: Any = None
    for part in loc:
        if isinstance(node, LocDict) and part in node:
            mark = node.key_marks.get(part, mark)
            raw = node.raws.get(part, node[part])
            node = node[part]
            path.append(str(part))
        elif isinstance(node, LocList) and isinstance(part, int) and 0 <= part < len(node):
            mark = node.marks[part]
            raw = node.raws[part] if node.raws[part] is not None else node[part]
            node = node[part]
            path.append(f"[{part}]")
        elif isinstance(part, str) and part[:1].isupper():
            continue  # a union member tag such as 'Entry' (or policy's 'Prefix', 'Range')
        else:
            path.append(str(part))
            raw = None
    text = ".".join(path).replace(".[", "[")
    return mark, text, raw


def _message(err: dict[str, Any], path: str, raw: Any, context: str = "") -> str:
    kind = err["type"]
    key = path.rsplit(".", 1)[-1]
    parent = path.rsplit(".", 1)[0] if "." in path else context
    if kind == "extra_forbidden":
        return f"unknown key {key!r}" + (f" in {parent}" if parent else "")
    if kind == "missing":
        return f"missing required key {key!r}" + (f" in {parent}" if parent else "")
    if context:
        path = f"{context} {path}"
    if path.startswith("providers.") and ".credentials." in path:
        # never quote what was written: it may be a secret
        return f"{path}: credentials must be given as {{env: VARIABLE}}, never inline in YAML"
    if kind == "literal_error" and path == "version":
        return f"unsupported version {err['input']!r} (this tool reads version: 1)"
    msg = err["msg"].removeprefix("Value error, ")
    shown = f" (got {quote(raw)})" if raw is not None and not isinstance(raw, dict | list) else ""
    return f"{path}: {msg}{shown}"
