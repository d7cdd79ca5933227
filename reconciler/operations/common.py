"""What every operation wires the same way: choosing targets, opening state,
reading live state and diffing.

Plan, apply, audit, import and why all start here, so that they select the
same targets, read state with the same checks and diff with the same
``plan_target``. Nothing here renders, prompts or reads the environment beyond
the state DSN's variable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..connections import Connections, work_dir
from ..desired import Desired, load_desired
from ..domain import LiveEntry, ManagedEntry, Target
from ..errors import BlocklistError, CredentialError, StateError
from ..gcpause import built_to_last, keep_alive, paused_gc, rare_full_collections
from ..models import ProvidersFile, Safety
from ..plan import Plan, SortedNumbers, TargetPlan, plan_target
from ..policy import list_share_reasons, max_removes_reason
from ..providers import adapter_class
from ..state import StateBackend, open_state
from .ui import UI

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def select_targets(desired: Desired, names: Iterable[str] = ()) -> list[Target]:
    """Targets named by ``--target`` (full name or bare provider instance), or all."""
    names = list(names)
    if not names:
        return list(desired.targets.values())
    chosen: dict[str, Target] = {}
    for name in names:
        matched = [t for t in desired.targets.values() if t.name == name or t.provider == name]
        if not matched:
            known = ", ".join(desired.targets) or "none"
            raise BlocklistError(f"unknown target {name!r} (targets: {known})")
        for t in matched:
            chosen[t.name] = t
    return [chosen[n] for n in sorted(chosen)]


def state_path(config: ProvidersFile, root: Path) -> Path:
    """The SQLite state file: a relative path is inside the configuration directory."""
    path = Path(config.state.path)
    return path if path.is_absolute() else root.resolve() / path


def open_run_state(
    desired: Desired,
    root: Path,
    *,
    create: bool,
    init_state: bool = False,
    write: bool = True,
) -> StateBackend | None:
    """The configured state backend, checked to belong to this configuration.

    ``write`` False (plan, audit, why) uses ``state.read_dsn`` when one is set and
    opens PostgreSQL read-only; True (apply, import, the state commands) uses
    ``state.dsn`` and refuses a role that cannot write. None when a sqlite state does
    not exist yet and ``create`` is False (a first plan reads as empty state).

    A state file that exists but holds nothing (zero bytes: a failed copy, a
    truncated restore) is an error unless ``init_state``: starting a new lineage
    there would turn every number the old state managed into an unmanaged one. So is
    a state left at the location used before state moved into the configuration
    directory: planning without it would adopt and remove as if nothing were managed.
    """
    config = desired.config
    settings = config.state
    if settings.backend == "postgres":
        ref = settings.read_dsn if (not write and settings.read_dsn is not None) else settings.dsn
        assert ref is not None
        dsn = os.environ.get(ref.env)
        if not dsn:
            which = "state.read_dsn" if ref is settings.read_dsn else "state.dsn"
            raise CredentialError(f"state: environment variable {ref.env} ({which}) is not set")
        state = open_state("postgres", dsn=dsn, create=create, read_only=not write)
        return _claimed(state, desired, f"the PostgreSQL state of {ref.env}", write)
    path = state_path(config, root)
    if not path.exists():
        old = root.resolve().parent / settings.path
        if not Path(settings.path).is_absolute() and old.is_file():
            raise StateError(
                f"no state at {path}, but there is one at {old}, where state was kept before "
                "it moved into the configuration directory: move it there (with its "
                f"audit.log.jsonl): mkdir -p {path.parent} && mv {old.parent}/* {path.parent}/"
            )
        if not create:
            return None
    if path.is_file() and path.stat().st_size == 0 and not init_state:
        raise StateError(
            f"state file {path} is empty (0 bytes): it is not a state, and starting a new "
            "one would forget every number the old state managed. Restore it from a "
            "backup or `state import` an export; or, to start from nothing, pass --init-state"
        )
    return _claimed(open_state("sqlite", path=path, create=create), desired, str(path), write)


def _claimed(state: StateBackend, desired: Desired, where: str, write: bool) -> StateBackend:
    """``state`` if it belongs to this configuration; a state nobody claimed yet is
    claimed by the first run that writes it."""
    this = desired.configuration
    try:
        recorded = state.configuration()
        if recorded is None:
            if write:
                state.claim_configuration(this)
        elif recorded != this:
            raise StateError(
                f"{where} belongs to the configuration {recorded!r}, not to {this!r} "
                f"({desired.root}): each configuration needs its own state (set state.path "
                f"or state.dsn), or, if this configuration was renamed, write "
                f"`name: {recorded}` in its providers.yaml"
            )
    except BaseException:
        state.close()
        raise
    return state


def audit_log_dir(root: Path) -> Path:
    return work_dir(root)


def managed_of(
    state: StateBackend | None, targets: Iterable[Target], *, check: bool = False
) -> dict[str, dict[str, ManagedEntry]]:
    """What state manages per target; with ``check``, every row is validated first (an
    apply must not send a request and then trip over a garbled row)."""
    out = {t.name: state.read_target(t.name) if state else {} for t in targets}
    if check:
        for name, entries in out.items():
            for number in entries:
                if not _E164.match(number):
                    shown = number[:40] + ("…" if len(number) > 40 else "")
                    raise StateError(
                        f"state row {name} {shown!r} is not an E.164 number; nothing was "
                        f"sent. Forget it with `blocklist state rm {shown!r} --target {name}`"
                    )
    return out


def load_frozen(directory: Path) -> Desired:
    """``load_desired``, frozen at once inside a ``frozen_heap`` block (it outlives the
    run), before the collector is back on: its first young collection would otherwise
    traverse every object the load built (0.3 s of a million numbers)."""
    with built_to_last():
        desired = load_desired(directory, str(directory))
    return desired


async def refresh_targets(
    connections: Connections, targets: list[Target], ui: UI | None = None
) -> dict[str, dict[str, LiveEntry] | None]:
    """Live entries of every target, concurrently (each adapter keeps its own limits).
    None for a target whose provider cannot list."""

    def can_list(target: Target) -> bool:  # from the type: opening an adapter needs credentials
        return adapter_class(target.type).capabilities.can_list

    async def one(target: Target) -> tuple[str, dict[str, LiveEntry] | None]:
        if not can_list(target):  # never called, so its credentials are not needed here
            if ui:
                ui.notice(f"{target.name}: live state not readable, using state")
            return target.name, None
        adapter = connections.adapter(target.provider)
        started = time.monotonic()
        # every read request is re-sent on its own (ProviderAdapter.read): retrying the
        # whole refresh would start a list of many pages over for one failing page
        entries = await adapter.refresh(target)
        live: dict[str, LiveEntry] = {}
        for e in entries:
            if e.number in live:  # the same number twice (duplicates in a group): keep all ids
                first = live[e.number]
                ids = first.provider_ids + tuple(
                    i for i in e.provider_ids if i not in first.provider_ids
                )
                live[e.number] = LiveEntry(
                    first.number, first.raw, first.attrs, ids, first.opt_out or e.opt_out
                )
            else:
                live[e.number] = e
        if ui:
            elapsed = time.monotonic() - started
            entries_word = "entry" if len(live) == 1 else "entries"
            ui.notice(f"{target.name}: {len(live):,} live {entries_word} ({elapsed:.1f}s)")
        keep_alive()  # the live entries outlive the refresh
        return target.name, live

    for target in targets:  # credentials of every provider read are checked before any request
        if can_list(target):
            connections.adapter(target.provider)
    keep_alive()  # the providers (a sandbox's emulators and their state) outlive it too
    with rare_full_collections():
        results = await asyncio.gather(*(one(t) for t in targets))
    return dict(results)


def build_plan(
    desired: Desired,
    targets: list[Target],
    live: Mapping[str, Mapping[str, LiveEntry] | None],
    managed: Mapping[str, Mapping[str, ManagedEntry]],
    now: dt.datetime,
    state: StateBackend | None,
    orders: list[SortedNumbers] | None = None,
) -> Plan:
    """Diff every selected target (pure given its inputs). Targets that declare the
    same numbers (one list's targets) share one sort of them, kept in ``orders`` when
    given (for ``Desired.digest``)."""
    # the diff builds no reference cycles: the cyclic GC would only rescan the objects
    # alive, which at a million numbers are many
    with paused_gc():
        plans = []
        shared: list[SortedNumbers] = orders if orders is not None else []
        for target in targets:
            caps = adapter_class(target.type).capabilities
            safety = target_safety(desired, target)
            plans.append(
                plan_target(
                    target,
                    desired.entries.get(target.name, {}),
                    live[target.name],
                    managed[target.name],
                    now,
                    native_expiry=caps.native_expiry,
                    attribute_fields=caps.attribute_fields,
                    safety=safety,
                    marks_opt_outs=not caps.opt_outs_unmarked,
                    shared=shared,
                )
            )
        add_policy_reasons(desired, plans, managed)
    return Plan(
        now=now,
        targets=plans,
        desired_digest="",  # computed only for a saved plan (plan --out): it is costly
        lineage=state.lineage() if state else None,
        serial=state.serial() if state else 0,
        configuration=desired.configuration,
    )


def target_safety(desired: Desired, target: Target) -> Safety:
    """A target's thresholds: policy.safety.targets, else its instance's, else the global."""
    own = desired.config.policy.safety.targets.get(target.name)
    if own is not None:
        return own
    return desired.config.providers[target.provider].safety or desired.config.safety


def add_policy_reasons(
    desired: Desired,
    plans: Iterable[TargetPlan],
    managed: Mapping[str, Mapping[str, ManagedEntry]],
) -> None:
    """Append to each target's unsafe reasons what the policy finds: a list over its
    thresholds on that target, and, on every target that removes, a plan over
    ``policy.max_removes``."""
    plans = list(plans)
    policy = desired.config.policy
    if policy.safety.lists:
        for tp in plans:
            for listed in desired.list_files:
                safety = policy.safety.lists.get(listed.name)
                if safety is None or tp.target.name not in listed.targets:
                    continue
                tp.unsafe_reasons.extend(
                    list_share_reasons(
                        listed.name,
                        listed.files,
                        safety,
                        tp.changes,
                        managed.get(tp.target.name, {}),
                    )
                )
    if policy.max_removes is not None:
        removing = {tp.target.name: tp.count("remove") + tp.count("expire") for tp in plans}
        where = desired.policy_sources.get("max_removes", desired.config_file)
        why = max_removes_reason(sum(removing.values()), policy.max_removes, where)
        if why is not None:
            for tp in plans:
                if removing[tp.target.name]:
                    tp.unsafe_reasons.append(why)


async def make_plan(
    desired: Desired,
    connections: Connections,
    targets: list[Target],
    state: StateBackend | None,
    now: dt.datetime,
    ui: UI | None = None,
    *,
    check_state: bool = False,
) -> tuple[Plan, dict[str, dict[str, ManagedEntry]]]:
    """Refresh and diff: the plan, and what state managed when it was computed."""
    managed = managed_of(state, targets, check=check_state)
    live = await refresh_targets(connections, targets, ui)
    return build_plan(desired, targets, live, managed, now, state), managed
