"""``blocklist plan``: refresh live state and compute the plan (a value).

Rendering, saving and exit codes are the caller's; this only wires the desired
state, state (read-only: a first plan needs no state), the providers and the
diff together.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..connections import Connections
from ..desired import Desired
from ..errors import CredentialError
from ..gcpause import frozen_heap
from ..plan import Plan, SortedNumbers
from ..state import StateBackend
from .common import (
    build_plan,
    load_frozen,
    managed_of,
    open_run_state,
    refresh_targets,
    select_targets,
)
from .ui import UI


@dataclass
class PlanOptions:
    directory: Path
    targets: tuple[str, ...] = ()
    now: dt.datetime | None = None  # None: the wall clock
    digest: bool = False  # record the desired-state digest (a plan to be saved)
    refresh: bool = True  # False: plan against state alone (no provider is called)


@dataclass
class PlanResult:
    plan: Plan
    desired: Desired


async def run_plan(options: PlanOptions, ui: UI | None = None) -> PlanResult:
    # the desired state outlives the plan: no full collection during refresh and diff
    # need traverse its millions of objects (nor the live entries, once read)
    with frozen_heap():
        desired = load_frozen(options.directory)
        return await _planned(desired, options, ui)


async def _planned(desired: Desired, options: PlanOptions, ui: UI | None) -> PlanResult:
    chosen = select_targets(desired, options.targets)
    now = options.now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    state = _plan_state(desired, options, ui)
    orders: list[SortedNumbers] = []  # the diff's sorts, which the digest reads too
    try:
        if options.refresh:
            managed = managed_of(state, chosen)
            async with Connections(desired.config, options.directory) as conns:
                live = await refresh_targets(conns, chosen, ui)  # frozen as they are read
            # the in-process emulators hold every live entry again (~190 MB at a million
            # numbers), and the adapters what only apply needs: gone before the diff
            del conns
            the_plan = build_plan(desired, chosen, live, managed, now, state, orders)
            del live, managed  # the plan keeps what it shows, not the live entries
        else:
            # no credential, no request: state stands in for every target's live state,
            # as it does for a provider that cannot list (a fork's pull request has no
            # secrets; the plan says so, and apply never takes it for the real one)
            managed = managed_of(state, chosen)
            the_plan = build_plan(
                desired, chosen, dict.fromkeys(managed), managed, now, state, orders
            )
            the_plan.refreshed = False
    finally:
        if state is not None:
            state.close()
    if options.digest:
        the_plan.desired_digest = desired.digest(orders)
    return PlanResult(the_plan, desired)


def _plan_state(desired: Desired, options: PlanOptions, ui: UI | None) -> StateBackend | None:
    """State, read-only. With --refresh=false and the state's DSN variable unset (a
    fork's pull request has no secret) the plan is of the lists against empty state,
    as a first plan is, instead of failing: such a plan is never applied."""
    try:
        return open_run_state(desired, options.directory, create=False, write=False)
    except CredentialError as exc:
        if options.refresh:
            raise
        if ui:
            ui.notice(f"{exc}: planning against empty state (--refresh=false)")
        return None
