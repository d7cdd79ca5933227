"""``blocklist apply``: lock, plan (or check a reviewed plan), confirm, execute,
record the audit.

A saved plan is applied only if it IS the plan: it is recomputed now for its
targets and refused (``StalePlanError``, exit 4) unless the saved changes,
target names, scopes, provider ids, live fingerprints, state lineage and serial
and the desired-state digest equal the fresh plan's. What is executed is the
fresh plan (equal by then), with the guard built from what the providers said
just now; the executor refuses, whatever it is given, to add a protected
number, to remove what state does not manage or to touch a user's opt-out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..apply import Executor, Guard
from ..ci import actor, git_commit
from ..connections import Connections
from ..desired import Desired
from ..errors import StalePlanError, UnsafePlanError
from ..gcpause import frozen_heap
from ..plan import Plan
from ..plancompare import compare_plans, summary_line
from ..planfile import load_plan
from ..report import ApplyReport
from ..state import StateBackend, current_lock_info
from .common import load_frozen, make_plan, open_run_state, select_targets
from .ui import UI, Stop

#: differences described when a saved plan is refused (the rest are counted)
_DESCRIBED = 1000


@dataclass
class ApplyOptions:
    directory: Path
    planfile: Path | None = None
    targets: tuple[str, ...] = ()
    now: dt.datetime | None = None  # None: the wall clock
    auto_approve: bool = False
    allow_unsafe: bool = False
    lock_timeout: float | None = None
    init_state: bool = False  # an empty state file may be started afresh


@dataclass
class ApplyResult:
    """What an apply did (``report``) and what it was asked to do (``plan``)."""

    report: ApplyReport
    plan: Plan | None = None
    cancelled: bool = False


async def run_apply(options: ApplyOptions, ui: UI, stop: Stop) -> ApplyResult:
    """Lock, plan or check the saved plan, confirm, execute, record the audit."""
    # the desired state outlives the run: out of the collector's sight (``run_plan``);
    # the executor freezes the plan and the live entries too when it starts
    with frozen_heap():
        desired = load_frozen(options.directory)
        async with locked_run(
            desired,
            options.directory,
            lock_timeout=options.lock_timeout,
            init_state=options.init_state,
        ) as (conns, state, state_was_new):
            return await _apply_locked(options, ui, stop, desired, conns, state, state_was_new)


@contextlib.asynccontextmanager
async def locked_run(
    desired: Desired,
    directory: Path,
    *,
    lock_timeout: float | None = None,
    init_state: bool = False,
) -> AsyncIterator[tuple[Connections, StateBackend, bool]]:
    """The state, opened for writing and locked for this apply, and the providers'
    connections: (connections, state, whether the state was new)."""
    state = open_run_state(desired, directory, create=True, init_state=init_state)
    assert state is not None
    state_was_new = state.serial() == 0 and not state.targets()
    timeout = lock_timeout if lock_timeout is not None else desired.config.state.lock_timeout
    try:
        state.acquire_lock(current_lock_info("apply"), timeout=timeout)
        try:
            async with Connections(desired.config, directory) as conns:
                yield conns, state, state_was_new
        finally:
            state.release_lock()
    finally:
        state.close()


async def _apply_locked(
    options: ApplyOptions,
    ui: UI,
    stop: Stop,
    desired: Desired,
    conns: Connections,
    state: StateBackend,
    state_was_new: bool,
) -> ApplyResult:
    now = options.now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    if options.planfile is not None:
        the_plan, managed = await _checked_plan(options, ui, desired, conns, state, state_was_new)
    else:
        chosen = select_targets(desired, options.targets)
        the_plan, managed = await make_plan(
            desired, conns, chosen, state, now, ui, check_state=True
        )
        ui.show_plan(the_plan)
    report = ApplyReport(started=dt.datetime.now(dt.UTC))
    if not the_plan.has_changes:
        report.finished = report.started
        return ApplyResult(report, the_plan)
    if not the_plan.safe and not options.allow_unsafe:
        reasons = the_plan.unsafe_text()
        raise UnsafePlanError(
            f"the plan is unsafe ({reasons}); re-run with --allow-unsafe to apply it"
        )
    if (
        options.planfile is None
        and not options.auto_approve
        and not ui.confirm(the_plan, allow_unsafe=options.allow_unsafe)
    ):
        report.finished = dt.datetime.now(dt.UTC)
        return ApplyResult(report, the_plan, cancelled=True)
    report = await execute(the_plan, desired, conns, state, managed, ui, stop)
    state.append_audit(audit_record(report, options, the_plan))
    return ApplyResult(report, the_plan)


async def execute(
    the_plan: Plan,
    desired: Desired,
    conns: Connections,
    state: StateBackend,
    managed: Mapping[str, Mapping[str, object]],
    ui: UI,
    stop: Stop,
) -> ApplyReport:
    """Carry out a fresh plan under the guard of what the providers said just now and of
    the configuration's protected numbers and ranges, with progress through ``ui``."""
    guard = Guard.of(the_plan, desired.protected, desired.protected_ranges)
    managed_numbers = {name: entries.keys() for name, entries in managed.items()}
    with ui.progress() as progress:
        executor = Executor(
            conns,
            state,
            progress=progress,
            stop=stop,
            guard=guard,
            managed=managed_numbers,
            actor=actor(),
            commit=git_commit(desired.root),
        )
        return await executor.run(the_plan)


async def _checked_plan(
    options: ApplyOptions,
    ui: UI,
    desired: Desired,
    conns: Connections,
    state: StateBackend,
    state_was_new: bool,
) -> tuple[Plan, dict]:
    """The fresh plan of the saved plan's targets, if and only if it equals the saved
    one; ``--target`` applies only the saved plan's changes for those targets."""
    assert options.planfile is not None
    saved = load_plan(options.planfile)
    names = [tp.target.name for tp in saved.targets]
    if options.targets:
        wanted = {t.name for t in select_targets(desired, options.targets)}
        absent = sorted(wanted - set(names))
        if absent:
            raise StalePlanError(
                f"the saved plan has no plan for {', '.join(absent)} (--target): "
                "plan those targets again"
            )
        saved.targets = [tp for tp in saved.targets if tp.target.name in wanted]
        names = [tp.target.name for tp in saved.targets]
    missing = [n for n in names if n not in desired.targets]
    if missing:
        raise StalePlanError(
            f"the saved plan is stale: it names targets no longer declared: {', '.join(missing)}"
        )
    chosen = [desired.targets[n] for n in dict.fromkeys(names)]
    fresh, managed = await make_plan(desired, conns, chosen, state, saved.now, ui, check_state=True)
    compared = fresh
    if saved.lineage is None and state_was_new:
        # planned before any state existed, applied to the state this apply just made
        compared = Plan(fresh.now, fresh.targets, fresh.desired_digest, None, fresh.serial)
    differences = compare_plans(
        saved, compared, digests=(saved.desired_digest, desired.digest()), limit=_DESCRIBED
    )
    if differences:
        count = len(differences)
        total = f"{count}+" if count >= _DESCRIBED else None
        line = summary_line(differences, None)
        if total:
            line = line.replace(f"(and {count - 1} more", f"(and {count - 1}+ more")
        raise StalePlanError(
            f"the saved plan is stale (not the plan now): {line}. Run `blocklist plan` again "
            f"(`blocklist plan --compare {options.planfile}` shows every difference)."
        )
    return fresh, managed


def audit_record(report: ApplyReport, options: ApplyOptions, plan: Plan) -> dict[str, object]:
    """The audit log's record of one apply: who, where, at which commit, what."""
    data = report.to_dict()
    record: dict[str, object] = {
        "time": data["finished"],
        "started": data["started"],
        "actor": actor(),
        "host": socket.gethostname(),
        "commit": git_commit(options.directory),
        "ok": data["ok"],
        "interrupted": data["interrupted"],
        "targets": data["targets"],
        "failures": data["failures"],
        "plan_file": str(options.planfile) if options.planfile else None,
        "allow_unsafe": options.allow_unsafe,
    }
    if report.signal:
        record["signal"] = report.signal
    return record
