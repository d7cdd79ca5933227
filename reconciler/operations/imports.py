"""``blocklist import``: bring what a provider already blocks under management.

Owns turning the live entries of ONE target into list files that validate
against ``schemas/blocklist.schema.json``, and adopting those entries into
state without any API write (as a plan's ``adopt`` would, under the apply
lock). The pure parts (resolving a target name, choosing what to import,
writing the YAML text) are separate from the orchestration (``run_import``).
It must never write to a provider, and never rewrite a file it did not create
unless told to (``force``).

Choices, documented in ``blocklist import --help``:

- TARGET is a declared target (``INSTANCE/SCOPE``), a target no list declares yet
  (also ``INSTANCE/SCOPE-VALUE``, as plans
  name targets), or a bare instance name when it has a single target.
- Not imported: opt-outs (``LiveEntry.opt_out``: the users' own, e.g. STOP
  replies; they stay unmanaged), numbers some list already declares for the
  target (re-declaring them without their expiry would change what they
  mean), protected numbers (no list may block them) and numbers that are not
  valid (a list would reject them). The header counts each.
- Entries with different provider attributes (e.g. reject types) cannot
  share a list, whose target gives one value: one file per attribute set,
  named with a suffix (``imported-INSTANCE-account-import.yaml``, ``…-invalid.yaml``).
- Files must be inside the blocklists directory: the entries are adopted into
  state, and a managed entry that no list declares would be removed by the
  next apply.
- A provider that cannot list its entries has nothing to import:
  ``CannotImportError`` says to declare the numbers and apply instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import __version__, targets
from ..atomic import write_atomic
from ..connections import Connections
from ..desired import Desired, load_desired
from ..domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from ..errors import BlocklistError, ConfigError
from ..expiry import iso
from ..gcpause import frozen_heap
from ..models import NAME_PATTERN
from ..numbers import InvalidNumber, normalise
from ..policy import ProtectedRanges
from ..providers import adapter_class
from ..state import StateBackend, current_lock_info
from .common import load_frozen, open_run_state, refresh_targets
from .ui import UI

SCHEMA_FILE = "blocklist.schema.json"
#: state records are written in chunks of this size (one transaction each)
STATE_CHUNK = 1000
_NAME_RE = re.compile(NAME_PATTERN)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


class CannotImportError(BlocklistError):
    """The target's provider cannot list its entries, so there is nothing to import."""


# -- resolving the target ------------------------------------------------------------------


def resolve_target(desired: Desired, name: str) -> Target:
    """The target ``name`` means: a declared one, or one built from ``INSTANCE/SCOPE``."""
    try:
        return targets.from_name(name, desired.config, desired.targets.values())
    except targets.TargetProblem as exc:
        raise BlocklistError(str(exc)) from None


def cannot_list_message(target: Target) -> str:
    scope = ", ".join(f"{k}: {v}" for k, v in target.scope)
    spec = f"{{provider: {target.provider}{', ' + scope if scope else ''}}}"
    return (
        f"{target.name}: {target.type} cannot list its entries (its API has no read "
        "endpoint), so there is nothing to import. Declare the numbers in a list instead "
        f"(targets: [{spec}]) and run `blocklist apply`: numbers already blocked there "
        "count as added, and from then on state tracks them."
    )


# -- choosing what to import (pure) --------------------------------------------------------


@dataclass
class ImportGroup:
    """The entries of one output file: they share their provider attributes."""

    attrs: tuple[tuple[str, str], ...]
    entries: list[LiveEntry]
    path: Path | None = None
    name: str = ""


@dataclass
class Selection:
    """What a target's live entries split into."""

    live: int
    groups: list[ImportGroup]
    opt_outs: int = 0
    declared: int = 0
    protected: int = 0
    invalid: int = 0  # the provider holds them, but a list could not declare them

    @property
    def imported(self) -> int:
        return sum(len(g.entries) for g in self.groups)


def group_live_entries(
    live: Mapping[str, LiveEntry], attribute_fields: Iterable[str]
) -> list[ImportGroup]:
    """Live entries by their provider attributes, each group sorted by number."""
    keys = tuple(attribute_fields)
    groups: dict[tuple[tuple[str, str], ...], list[LiveEntry]] = {}
    for number in sorted(live):
        entry = live[number]
        attrs = tuple((k, v) for k, v in sorted(entry.attrs) if k in keys and v)
        groups.setdefault(attrs, []).append(entry)
    return [ImportGroup(attrs, entries) for attrs, entries in sorted(groups.items())]


def select_entries(
    live: Mapping[str, LiveEntry],
    declared: Iterable[str],
    protected: Iterable[str],
    attribute_fields: Iterable[str],
    protected_ranges: ProtectedRanges | None = None,
) -> Selection:
    """Split live entries into groups to import and the counts of what is left out.

    A number the provider holds but that is not a valid number (which a list file
    would reject) is left out too, and counted as ``invalid``.
    """
    declared_set = set(declared)
    protected_set = set(protected)
    keep: dict[str, LiveEntry] = {}
    sel = Selection(live=len(live), groups=[])
    for number, entry in live.items():
        if entry.opt_out:
            sel.opt_outs += 1
        elif number in protected_set or (protected_ranges and protected_ranges.match(number)):
            sel.protected += 1
        elif number in declared_set:
            sel.declared += 1
        elif not _valid(number):
            sel.invalid += 1
        else:
            keep[number] = entry
    sel.groups = group_live_entries(keep, attribute_fields)
    return sel


def _valid(number: str) -> bool:
    try:
        return normalise(number) == number
    except InvalidNumber:
        return False


def list_name(target: Target, attrs: tuple[tuple[str, str], ...] = ()) -> str:
    """``imported-<instance>-<scope>[-<attribute values>]``, a valid list name."""
    scope = "-".join(v for _, v in target.scope) or "account"
    parts = ["imported", target.provider, scope, *(v for _, v in attrs)]
    name = _UNSAFE_NAME_CHARS.sub("-", "-".join(parts)).strip("-.")[:63]
    if not _NAME_RE.match(name):  # pragma: no cover - the prefix makes it valid
        raise BlocklistError(f"cannot make a list name from {target.name!r}")
    return name


def output_paths(
    directory: Path, target: Target, groups: list[ImportGroup], out: Path | None
) -> None:
    """Name each group and give it its file: ``out`` (or ``<DIR>/<name>.yaml``) when
    there is one group; with several, a ``-<attribute values>`` suffix on each."""
    several = len(groups) > 1
    for g in groups:
        g.name = list_name(target, g.attrs if several else ())
        if out is None:
            g.path = directory / f"{g.name}.yaml"
        elif several:
            suffix = _UNSAFE_NAME_CHARS.sub("-", "-".join(v for _, v in g.attrs))
            g.path = out.with_name(f"{out.stem}-{suffix}{out.suffix or '.yaml'}")
        else:
            g.path = out


def candidate_paths(
    directory: Path,
    target: Target,
    live: Mapping[str, LiveEntry],
    attribute_fields: Iterable[str],
    out: Path | None,
) -> set[Path]:
    """Every file an import of ``live`` may write, whichever groups end up non-empty."""
    groups = group_live_entries(live, attribute_fields)
    paths: set[Path] = set()
    for subset in (groups[:1], groups):
        fresh = [ImportGroup(g.attrs, g.entries) for g in subset]
        output_paths(directory, target, fresh, out)
        paths.update(g.path for g in fresh if g.path is not None)
    return paths


# -- the YAML text (pure) ------------------------------------------------------------------


def _scalar(value: object) -> str:
    """A YAML scalar: ints as they are, plain words plain, anything else double-quoted
    (JSON strings are valid YAML)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def target_spec(target: Target, attrs: tuple[tuple[str, str], ...]) -> dict[str, object]:
    """The ``targets:`` item of a list, typed as the schema wants (an integer scope
    value is written as a number)."""
    cls = adapter_class(target.type)
    raw: dict[str, object] = {"provider": target.provider}
    for key, value in (*target.scope, *attrs):
        raw[key] = int(value) if cls.field_schema(key).get("type") == "integer" else value
    if target.exclusive:
        raw["mode"] = "exclusive"
    return raw


def render_list_yaml(
    target: Target,
    group: ImportGroup,
    selection: Selection,
    *,
    now: dt.datetime,
    schema_ref: str,
    files: int = 1,
    adopted_now: bool = False,
) -> str:
    """The list file of one group: schema line, provenance header, list, sorted entries."""
    spec = target_spec(target, group.attrs)
    flow = ", ".join(f"{k}: {_scalar(v)}" for k, v in spec.items())
    attrs = ", ".join(f"{k}={v}" for k, v in group.attrs)
    here = f"This file: {_entries(len(group.entries))}"
    if files > 1:
        here += f" with {attrs} (one of {files} files, one per attribute set)"
    sel = selection
    about = (
        f"Imported by `blocklist import` (blocklist {__version__}) at {iso(now)} from the "
        f"live entries of {target.name} (provider instance {target.provider}, type "
        f"{target.type}). {here}. Of {_count(sel.live, 'live entry', 'live entries')}, not "
        f"imported: {_count(sel.opt_outs, 'opt-out', 'opt-outs')} (the users' own, e.g. STOP "
        f"replies: they stay unmanaged), {sel.declared} already declared by other lists, "
        f"{_count(sel.protected, 'protected number', 'protected numbers')}, "
        f"{_count(sel.invalid, 'invalid number', 'invalid numbers')}. "
        + (
            "These entries were adopted into state (no provider was called): from now on, "
            "removing a number here removes it from the provider on the next apply."
            if adopted_now
            else "The next plan shows them as adopt and apply records them in state (no "
            "provider call); from then on, removing a number here removes it from the provider."
        )
    )
    lines = [
        f"# yaml-language-server: $schema={schema_ref}",
        *textwrap.wrap(about, width=88, initial_indent="# ", subsequent_indent="# "),
        "version: 1",
        f"name: {group.name}",
        f"description: {_scalar('Imported from the live entries of ' + target.name)}",
        "targets:",
        f"  - {{{flow}}}",
        "entries:",
    ]
    lines += [f'  - "{e.number}"' for e in group.entries]
    return "\n".join(lines) + "\n"


def schema_reference(directory: Path, path: Path) -> str:
    """The schema path relative to the file: ``schemas/`` sits beside the lists' directory."""
    schema = directory.resolve().parent / "schemas" / SCHEMA_FILE
    return Path(os.path.relpath(schema, path.resolve().parent)).as_posix()


# -- orchestration -------------------------------------------------------------------------


@dataclass
class ImportOptions:
    directory: Path
    target: str
    out: Path | None = None
    force: bool = False
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))
    adopt_now: bool = False  # record the entries in state at once (no plan, no review)


@dataclass
class ImportResult:
    target: Target
    selection: Selection
    written: list[tuple[Path, int]]  # (file, entries)
    adopted: int
    adopted_now: bool = False

    def describe(self) -> list[str]:
        """What a person reads after an import."""
        sel = self.selection
        out = []
        if not self.written:
            out.append(
                f"Nothing to import from {self.target.name} ({_entries(sel.live)} live): "
                "no file written, state unchanged."
            )
        for path, n in self.written:
            out.append(f"Wrote {path} ({_entries(n)}).")
        if self.written and self.adopted_now:
            out.append(
                f"Adopted {_entries(self.adopted)} of {self.target.name} into state "
                "(no provider was called)."
            )
        elif self.written:
            out.append(
                "State is unchanged: commit the file; the next `blocklist plan` shows its "
                "entries as adopt, and `blocklist apply` records them (no provider call)."
            )
        out.append(
            f"Not imported: {_count(sel.opt_outs, 'opt-out', 'opt-outs')} (the users' own; "
            f"they stay unmanaged), {sel.declared} already declared, {sel.protected} "
            f"protected, {sel.invalid} invalid."
        )
        return out


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _entries(n: int) -> str:
    return _count(n, "entry", "entries")


def _display(directory: Path, shown: str, path: Path) -> str:
    rel = path.resolve().relative_to(directory.resolve()).as_posix()
    return f"{shown.rstrip('/') or '.'}/{rel}"


def _inside(directory: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, mode=0o644, fsync=False)


async def run_import(options: ImportOptions, ui: UI | None = None) -> ImportResult:
    """Refresh one target, write its list file(s), check they load, adopt the entries."""
    # the desired state outlives the import: full collections need not traverse it
    with frozen_heap():
        desired = load_frozen(options.directory)
        return await _run_import(desired, options, ui)


async def _run_import(desired: Desired, options: ImportOptions, ui: UI | None) -> ImportResult:
    directory = options.directory
    target = resolve_target(desired, options.target)
    caps = adapter_class(target.type).capabilities
    if not caps.can_list:
        raise CannotImportError(cannot_list_message(target))
    if options.out is not None and not _inside(directory, options.out):
        raise BlocklistError(
            f"--out {options.out} is not inside {directory}: the imported entries are "
            "adopted into state, and entries no list declares would be removed by the next "
            "apply. Write the file inside the lists directory."
        )

    if not options.adopt_now:
        # Terraform's import blocks: the list file is the change; the next plan shows
        # its entries as adopt and apply records them. Nothing is written to state, so
        # a list file not merged yet cannot make another branch's plan remove them.
        async with Connections(desired.config, directory) as conns:
            live = (await refresh_targets(conns, [target], ui))[target.name] or {}
        return _import(desired, target, live, options, None)
    state = open_run_state(desired, directory, create=True)
    assert state is not None
    try:
        state.acquire_lock(current_lock_info("import"), timeout=desired.config.state.lock_timeout)
        try:
            async with Connections(desired.config, directory) as conns:
                live = (await refresh_targets(conns, [target], ui))[target.name] or {}
            return _import(desired, target, live, options, state)
        finally:
            state.release_lock()
    finally:
        state.close()


def _import(
    desired: Desired,
    target: Target,
    live: dict[str, LiveEntry],
    options: ImportOptions,
    state: StateBackend | None,
) -> ImportResult:
    """Choose, write and check the list file(s); with ``state``, adopt at once."""
    directory = options.directory
    shown = str(directory)
    caps = adapter_class(target.type).capabilities
    # files this import may overwrite (with --force) do not count as declaring
    # their numbers: their entries are re-read from live
    replaced = {
        _display(directory, shown, path)
        for path in candidate_paths(directory, target, live, caps.attribute_fields, options.out)
    }
    declared = [
        n
        for n, e in desired.entries.get(target.name, {}).items()
        if e.source.rsplit(":", 1)[0] not in replaced
    ]
    selection = select_entries(
        live, declared, desired.protected, caps.attribute_fields, desired.protected_ranges
    )
    output_paths(directory, target, selection.groups, options.out)
    written = _write_groups(directory, target, selection, options)
    files = [(g.path, len(g.entries)) for g in written if g.path is not None]
    if not written or state is None:
        return ImportResult(target, selection, files, 0, adopted_now=False)
    adopted = _adopt(directory, shown, target, written, state)
    return ImportResult(target, selection, files, adopted, adopted_now=True)


def _write_groups(
    directory: Path, target: Target, selection: Selection, options: ImportOptions
) -> list[ImportGroup]:
    groups = [g for g in selection.groups if g.entries]
    for g in groups:
        assert g.path is not None
        if g.path.exists() and not options.force:
            raise BlocklistError(f"{g.path} exists: pass --force to overwrite it")
    previous: dict[Path, str | None] = {}
    for g in groups:
        assert g.path is not None
        previous[g.path] = g.path.read_text(encoding="utf-8") if g.path.exists() else None
        text = render_list_yaml(
            target,
            g,
            selection,
            now=options.now,
            schema_ref=schema_reference(directory, g.path),
            files=len(groups),
            adopted_now=options.adopt_now,
        )
        _write_atomic(g.path, text)
    try:
        load_desired(directory, str(directory))
    except ConfigError:
        for path, text in previous.items():  # leave the lists as they were
            if text is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomic(path, text)
        raise
    return groups


def _adopt(
    directory: Path,
    shown: str,
    target: Target,
    written: list[ImportGroup],
    state: StateBackend,
) -> int:
    """Record the written entries in state as an apply's adopt would (no API call)."""
    reloaded = load_desired(directory, shown).entries.get(target.name, {})
    upserts: list[ManagedEntry] = []
    for g in written:
        for live in g.entries:
            declared: DesiredEntry | None = reloaded.get(live.number)
            if declared is None:  # pragma: no cover - the file was just checked to load
                continue
            upserts.append(
                ManagedEntry(
                    live.number,
                    declared.expires,
                    declared.reason,
                    declared.attrs,
                    live.provider_ids,
                    declared.source,
                )
            )
    for i in range(0, len(upserts), STATE_CHUNK):
        state.record_batch(target.name, upserts=upserts[i : i + STATE_CHUNK])
    return len(upserts)
