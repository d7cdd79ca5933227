"""Thin orchestration of plan and apply: select targets, open state, refresh,
diff, lock, check a saved plan for staleness, execute, audit.

Wires the loader (``desired``), the adapters (``connections``), the state
backend, the planner, the executor and the renderers; holds no logic of its
own beyond that wiring.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .apply import ApplyProgress, ApplyReport, Executor, Guard
from .connections import Connections, work_dir
from .desired import Desired
from .domain import LiveEntry, ManagedEntry, Target
from .errors import BlocklistError, CredentialError, StalePlanError, UnsafePlanError
from .models import ProvidersFile, Safety
from .plan import Plan, plan_target
from .providers import adapter_class
from .state import StateBackend, current_lock_info, open_state

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    path = Path(config.state.path)
    return path if path.is_absolute() else root.resolve().parent / path


def open_run_state(config: ProvidersFile, root: Path, *, create: bool) -> StateBackend | None:
    """The configured state backend; None when a sqlite state does not exist yet and
    ``create`` is False (a first plan reads as empty state)."""
    settings = config.state
    if settings.backend == "postgres":
        assert settings.dsn is not None
        dsn = os.environ.get(settings.dsn.env)
        if not dsn:
            raise CredentialError(
                f"state: environment variable {settings.dsn.env} (state.dsn) is not set"
            )
        return open_state("postgres", dsn=dsn)
    path = state_path(config, root)
    if not path.exists() and not create:
        return None
    return open_state("sqlite", path=path, create=create)


def audit_log_dir(root: Path) -> Path:
    return work_dir(root)


async def refresh_targets(
    connections: Connections,
    targets: list[Target],
    progress: Progress | None = None,
) -> dict[str, dict[str, LiveEntry] | None]:
    """Live entries of every target, concurrently (each adapter keeps its own limits).
    None for a target whose provider cannot list."""

    async def one(target: Target) -> tuple[str, dict[str, LiveEntry] | None]:
        adapter = connections.adapter(target.provider)
        if not adapter.capabilities.can_list:
            if progress:
                progress(f"{target.name}: live state not readable, using state")
            return target.name, None
        started = time.monotonic()
        # every read request is re-sent on its own (ProviderAdapter.read): retrying the
        # whole refresh would start a list of many pages over for one failing page
        entries = await adapter.refresh(target)
        live: dict[str, LiveEntry] = {}
        for e in entries:
            if e.number in live:  # the same number twice (e.g. LOX24 duplicates): keep all ids
                first = live[e.number]
                ids = ",".join(i for i in (first.provider_id, e.provider_id) if i)
                live[e.number] = LiveEntry(
                    first.number, first.raw, first.attrs, ids or None, first.opt_out or e.opt_out
                )
            else:
                live[e.number] = e
        if progress:
            elapsed = time.monotonic() - started
            progress(f"{target.name}: {len(live):,} live entries ({elapsed:.1f}s)")
        return target.name, live

    for target in targets:  # credentials of every provider are checked before any request
        connections.adapter(target.provider)
    results = await asyncio.gather(*(one(t) for t in targets))
    return dict(results)


def managed_of(
    state: StateBackend | None, targets: list[Target]
) -> dict[str, dict[str, ManagedEntry]]:
    if state is None:
        return {t.name: {} for t in targets}
    return {t.name: state.read_target(t.name) for t in targets}


def build_plan(
    desired: Desired,
    targets: list[Target],
    live: dict[str, dict[str, LiveEntry] | None],
    managed: dict[str, dict[str, ManagedEntry]],
    now: dt.datetime,
    state: StateBackend | None,
) -> Plan:
    """Diff every selected target (pure given its inputs)."""
    # the diff builds one Change per line of the plan and no reference cycles: the
    # cyclic GC would only rescan the millions of objects alive (17 % of a 1 M diff)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_plan(desired, targets, live, managed, now, state)
    finally:
        if was_enabled:
            gc.enable()


def _build_plan(
    desired: Desired,
    targets: list[Target],
    live: dict[str, dict[str, LiveEntry] | None],
    managed: dict[str, dict[str, ManagedEntry]],
    now: dt.datetime,
    state: StateBackend | None,
) -> Plan:
    plans = []
    for target in targets:
        caps = adapter_class(target.type).capabilities
        inst = desired.config.providers[target.provider]
        safety: Safety = inst.safety or desired.config.safety
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
            )
        )
    return Plan(
        now=now,
        targets=plans,
        desired_digest="",  # computed only for a saved plan (plan --out): it is costly
        lineage=state.lineage() if state else None,
        serial=state.serial() if state else 0,
    )


async def make_plan(
    desired: Desired,
    connections: Connections,
    targets: list[Target],
    state: StateBackend | None,
    now: dt.datetime,
    progress: Progress | None = None,
) -> Plan:
    live = await refresh_targets(connections, targets, progress)
    return build_plan(desired, targets, live, managed_of(state, targets), now, state)


# -- apply ---------------------------------------------------------------------------------


@dataclass
class ApplyOptions:
    directory: Path
    planfile: Path | None
    targets: tuple[str, ...]
    now: dt.datetime
    auto_approve: bool
    allow_unsafe: bool
    lock_timeout: float | None
    color: bool
    mask: bool
    verbose: bool
    confirm: Callable[[], bool]
    echo: Callable[..., None]


def check_stale(saved: Plan, fresh: Plan) -> None:
    """Refuse a saved plan whose live state, lineage or serial changed since."""
    problems = []
    if saved.lineage is not None and fresh.lineage is not None and saved.lineage != fresh.lineage:
        problems.append(f"state lineage changed ({saved.lineage} -> {fresh.lineage})")
    if (saved.serial or 0) != (fresh.serial or 0):
        problems.append(f"state serial changed ({saved.serial} -> {fresh.serial})")
    fresh_by_name = {t.target.name: t for t in fresh.targets}
    for tp in saved.targets:
        now_tp = fresh_by_name.get(tp.target.name)
        if now_tp is not None and now_tp.fingerprint != tp.fingerprint:
            problems.append(f"live state of {tp.target.name} changed")
    if problems:
        raise StalePlanError(
            "the saved plan is stale: " + "; ".join(problems) + ". Run `blocklist plan` again."
        )


async def run_apply(options: ApplyOptions, stop: asyncio.Event) -> ApplyReport:
    """Lock, plan (or load and check a saved plan), confirm, execute, record the audit."""
    from .desired import load_desired
    from .render import render_text

    desired = load_desired(options.directory, str(options.directory))
    state = open_run_state(desired.config, options.directory, create=True)
    assert state is not None
    timeout = (
        options.lock_timeout
        if options.lock_timeout is not None
        else desired.config.state.lock_timeout
    )
    try:
        state.acquire_lock(current_lock_info("apply"), timeout=timeout)
        try:
            async with Connections(desired.config, options.directory) as conns:
                if options.planfile is not None:
                    the_plan = await load_checked_plan(options, desired, conns, state)
                else:
                    chosen = select_targets(desired, options.targets)
                    the_plan = await make_plan(
                        desired, conns, chosen, state, options.now, stderr_progress
                    )
                    options.echo(
                        render_text(
                            the_plan,
                            color=options.color,
                            mask=options.mask,
                            verbose=options.verbose,
                        )
                    )
                report = ApplyReport(started=dt.datetime.now(dt.UTC))
                if not the_plan.has_changes:
                    report.finished = report.started
                    return report
                if not the_plan.safe and not options.allow_unsafe:
                    reasons = "; ".join(
                        f"{t.target.name}: {r}" for t in the_plan.targets for r in t.unsafe_reasons
                    )
                    raise UnsafePlanError(
                        f"the plan is unsafe ({reasons}); re-run with --allow-unsafe to apply it"
                    )
                if options.planfile is None and not options.auto_approve and not options.confirm():
                    options.echo("Apply cancelled.")
                    return report
                guard = Guard.of(the_plan, desired.protected)
                with ApplyProgress() as progress:
                    executor = Executor(conns, state, progress=progress, stop=stop, guard=guard)
                    report = await executor.run(the_plan)
                options.echo(render_report(report, options.mask))
                state.append_audit(audit_record(report, options.directory))
                return report
        finally:
            state.release_lock()
    finally:
        state.close()


async def load_checked_plan(
    options: ApplyOptions, desired: Desired, conns: Connections, state: StateBackend
) -> Plan:
    from .planfile import load_plan

    assert options.planfile is not None
    saved = load_plan(options.planfile)
    names = [tp.target.name for tp in saved.targets]
    missing = [n for n in names if n not in desired.targets]
    if missing:
        raise StalePlanError(
            f"the saved plan names targets no longer declared: {', '.join(missing)}"
        )
    chosen = [desired.targets[n] for n in names]
    fresh = await make_plan(desired, conns, chosen, state, saved.now, stderr_progress)
    check_stale(saved, fresh)
    return saved


def render_report(report: ApplyReport, mask: bool) -> str:
    from .render import mask_number

    lines = []
    data = report.to_dict()
    for t in data["targets"]:
        done = ", ".join(f"{n} {a}" for a, n in t["done"].items()) or "nothing"
        failed = ", ".join(f"{n} {a}" for a, n in t["failed"].items())
        lines.append(f"{t['name']}: done {done}" + (f"; FAILED {failed}" if failed else ""))
    if report.failures:
        lines.append(f"{len(report.failures)} failures:")
        for f in report.failures:
            number = mask_number(f.number) if mask else f.number
            lines.append(f"  {f.target} {f.action} {number}: {f.reason}")
    if report.interrupted:
        lines.append("Apply interrupted: what was in flight is recorded; run apply again.")
    elif report.ok:
        lines.append("Apply complete.")
    else:
        lines.append("Apply finished with failures.")
    return "\n".join(lines)


def audit_record(report: ApplyReport, directory: Path) -> dict[str, object]:
    from .cli import git_commit

    data = report.to_dict()
    return {
        "time": data["finished"],
        "started": data["started"],
        "actor": os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown",
        "host": socket.gethostname(),
        "commit": git_commit(directory),
        "ok": data["ok"],
        "interrupted": data["interrupted"],
        "targets": data["targets"],
        "failures": data["failures"],
    }
