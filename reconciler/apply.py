"""Carry out a plan: batched, concurrent, retrying, recorded batch by batch.

Owns execution only: batches come from each adapter (``batches``), requests
from ``send``; this module adds the concurrency limit per provider instance,
retries (``retry.py``), per-number outcome bookkeeping, state recording after
every batch (so a crash loses at most the batches in flight), progress and
the final report. It never decides *what* to change: that is the plan; and it
never draws anything: progress goes to an injected ``Progress``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from tenacity import RetryCallState

from .connections import Connections
from .domain import Applied, Batch, BatchResult, ManagedEntry, Op, Outcome, Target
from .errors import AuthError, ProviderError, RetryableError
from .operations.ui import Progress, QuietProgress, Stop
from .plan import Plan, TargetPlan
from .policy import ProtectedRanges
from .providers import ProviderAdapter
from .report import ApplyReport, Failure
from .retry import DEFAULT_POLICY, RetryPolicy, retrying
from .state import StateBackend

#: state-only records (adopt, forget) are written in chunks of this size
STATE_CHUNK = 1000


@dataclass(frozen=True)
class Guard:
    """The invariants the executor holds whatever plan it is given (DESIGN.md
    "Semantics of a plan"): it never adds a protected number, never removes a number
    state does not manage (outside ``mode: exclusive``), never touches a user's own
    opt-out. A plan file edited by hand, or a planner bug, cannot get past it."""

    protected: frozenset[str] = frozenset()
    #: target name -> numbers the provider marks as the users' own opt-outs
    opt_outs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: policy.protected_ranges: prefixes and ranges never blocked either
    ranges: ProtectedRanges = field(default_factory=ProtectedRanges)

    @classmethod
    def of(
        cls, plan: Plan, protected: Collection[str] = (), ranges: ProtectedRanges | None = None
    ) -> Guard:
        """The guard of a freshly computed plan (its live opt-outs) and the protected
        numbers and ranges of the configuration."""
        return cls(
            frozenset(protected),
            {tp.target.name: tp.opt_outs for tp in plan.targets},
            ranges or ProtectedRanges(),
        )

    def refusal(
        self, target: Target, kind: str, number: str, managed: Collection[str]
    ) -> str | None:
        """Why ``kind`` (add, remove, adopt) of ``number`` is refused, or None."""
        if number in self.opt_outs.get(target.name, ()):
            return "refused: the provider marks it as the user's own opt-out, never touched"
        if kind in ("add", "adopt") and number in self.protected:
            return "refused: a protected number (providers.yaml) is never blocked"
        if kind in ("add", "adopt") and self.ranges:
            covered = self.ranges.match(number)
            if covered is not None:
                return (
                    f"refused: in the protected range {covered[0]} (policy, {covered[1]}), "
                    "never blocked"
                )
        if kind == "remove" and not target.exclusive and number not in managed:
            return "refused: state does not record it as managed by this tool"
        return None


@dataclass
class _Left:
    """What an attempt at a batch left to send again, and when the provider said to."""

    ops: list[Op]
    retry_after: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # number -> provider's last words


class Executor:
    """Runs the write operations of a plan against the providers."""

    def __init__(
        self,
        connections: Connections,
        state: StateBackend,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        progress: Progress | None = None,
        stop: Stop | None = None,
        guard: Guard | None = None,
        managed: Mapping[str, Collection[str]] | None = None,
        actor: str | None = None,
        commit: str | None = None,
    ) -> None:
        self.connections = connections
        self.state = state
        self.policy = policy
        self.progress: Progress = progress or QuietProgress()
        self.stop = stop or Stop()
        self.guard = guard or Guard()
        self._managed = managed  # target -> managed numbers when planned (None: read state)
        self.actor, self.commit = actor, commit  # written with every number recorded
        self.report = ApplyReport(started=dt.datetime.now(dt.UTC))
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._dead: dict[str, str] = {}  # provider instance -> why it is not called again

    async def run(self, plan: Plan) -> ApplyReport:
        await asyncio.gather(*(self.run_target(tp) for tp in plan.targets))
        self.report.interrupted = self.stop.is_set()
        self.report.signal = self.stop.reason
        self.report.finished = dt.datetime.now(dt.UTC)
        return self.report

    # -- one target ---------------------------------------------------------------------

    def managed(self, target: str) -> Collection[str]:
        if self._managed is not None and target in self._managed:
            return self._managed[target]
        return self.state.read_target(target).keys()

    async def run_target(self, tp: TargetPlan) -> None:
        name = tp.target.name
        managed = self.managed(name)
        self.record_state_only(tp, managed)
        actions = {c.number: c.action for c in tp.changes}
        removes, adds = tp.write_ops()
        removes = self.allowed(tp, removes, managed, actions)
        adds = self.allowed(tp, adds, managed, actions)
        if not removes and not adds:
            return
        adapter = self.connections.adapter(tp.target.provider)
        batches = adapter.batches(tp.target, removes, adds, self.state.target_meta(name))
        self.progress.start(name, sum(len(b.ops) for b in batches))
        for phase in sorted({b.phase for b in batches}):
            group = [b for b in batches if b.phase == phase]
            await asyncio.gather(*(self.run_batch(tp, adapter, b, actions) for b in group))

    def allowed(
        self, tp: TargetPlan, ops: list[Op], managed: Collection[str], actions: dict[str, str]
    ) -> list[Op]:
        """``ops`` minus what the guard refuses (reported) and repeats of the same op."""
        out: list[Op] = []
        seen: set[str] = set()
        for op in ops:
            if op.number in seen:
                continue  # the same number twice for one target: sent once
            seen.add(op.number)
            why = self.guard.refusal(tp.target, op.kind, op.number, managed)
            if why is None:
                out.append(op)
            else:
                action = actions.get(op.number, op.kind)
                self.failure(tp.target.name, op.number, action, why)
        return out

    def record_state_only(self, tp: TargetPlan, managed: Collection[str]) -> None:
        """Adopt (becomes managed) and forget (state cleanup): no API call."""
        name = tp.target.name
        adopts = []
        for c in tp.changes:
            if c.action != "adopt":
                continue
            why = self.guard.refusal(tp.target, "adopt", c.number, managed)
            if why is not None:
                self.failure(name, c.number, "adopt", why)
                continue
            adopts.append(
                ManagedEntry(
                    c.number,
                    c.expires,
                    c.reason,
                    c.attrs,
                    c.provider_ids,
                    c.source,
                    applied=self.applied(),
                )  # fmt: skip
            )
        for i in range(0, len(adopts), STATE_CHUNK):
            self.state.record_batch(name, upserts=adopts[i : i + STATE_CHUNK])
        if adopts:
            self.report.done[name]["adopt"] += len(adopts)
        for i in range(0, len(tp.forget), STATE_CHUNK):
            self.state.record_batch(name, deletes=tp.forget[i : i + STATE_CHUNK])
        if tp.forget:
            self.report.done[name]["forget"] += len(tp.forget)

    def limit(self, adapter: ProviderAdapter) -> asyncio.Semaphore:
        sem = self._limits.get(adapter.instance)
        if sem is None:
            sem = asyncio.Semaphore(adapter.concurrency)
            self._limits[adapter.instance] = sem
        return sem

    # -- one batch ----------------------------------------------------------------------

    async def run_batch(
        self, tp: TargetPlan, adapter: ProviderAdapter, batch: Batch, actions: dict[str, str]
    ) -> None:
        """Send a batch, then what is left of it, under one retry policy.

        A request that failed whole (429, 5xx, a dropped connection) and the numbers the
        provider answered for but did not carry out (``retryable``, ``unconfirmed``) are
        sent again with the same backoff, ``policy.attempts`` times in all. What is still
        left then is a failure with the provider's last words; a remove that failed stays
        managed, marked pending, so the next plan shows it again.
        """
        name = tp.target.name
        run = _BatchRun(batch)

        async def attempt() -> _Left:
            why = self._dead.get(adapter.instance)
            if why is None and self.stop.is_set():
                why = "not attempted: apply was interrupted"
            if why is not None:
                raise _Abandoned(why)
            started = time.monotonic()
            run.attempts += 1
            result = await adapter.send(tp.target, run.pending)
            result.outcomes = [  # provider words may echo a credential: never let it out
                replace(o, reason=adapter.redact(o.reason)) if o.reason else o
                for o in result.outcomes
            ]
            left = self.record(tp, result, actions, run)
            self.report.batches += 1
            ok = sum(1 for o in result.outcomes if o.ok)
            self.progress.batch(
                name, len(run.pending.ops) - len(left.ops), ok, time.monotonic() - started
            )
            return left

        async def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            assert outcome is not None
            if outcome.failed:
                reason, count = str(outcome.exception()), len(run.pending.ops)
            else:
                left = outcome.result()
                run.pending = Batch(left.ops, run.pending.phase, run.pending.fields)
                reason = next(iter(left.reasons.values()), "not carried out")
                count = len(left.ops)
            wait = state.upcoming_sleep
            self.progress.retry(name, count, reason, wait)

        async with self.limit(adapter):
            try:
                left = await retrying(
                    self.policy, again=lambda left: bool(left.ops), before_sleep=before_sleep
                )(attempt)
            except _Abandoned as exc:
                self.fail_all(name, run.pending.ops, actions, exc.reason)
                return
            except AuthError as exc:
                self._dead[adapter.instance] = f"not attempted: {exc.reason}"
                self.fail_all(
                    name, run.pending.ops, actions, f"authentication failed: {exc.reason}"
                )
                return
            except RetryableError as exc:
                reason = f"gave up after {run.attempts} attempts: {exc}"
                self.fail_all(name, run.pending.ops, actions, reason, pending=True)
                return
            except ProviderError as exc:
                self.fail_all(name, run.pending.ops, actions, str(exc), pending=True)
                return
            self.finish(tp, left, actions, run)

    def finish(self, tp: TargetPlan, left: _Left, actions: dict[str, str], run: _BatchRun) -> None:
        """What is left after the last attempt: a remove reported "not deleted" by every
        send is absent (confirmed by the re-sends); anything else failed."""
        if not left.ops:
            return
        name = tp.target.name
        absent = [
            op
            for op in left.ops
            if op.kind == "remove" and run.sends >= 2 and run.unconfirmed[op.number] == run.sends
        ]
        if absent:
            self.state.record_batch(name, deletes=[op.number for op in absent])
            for op in absent:
                action = actions.get(op.number, op.kind)
                if action != "update":
                    self.report.done[name][action] += 1
        gone = {op.number for op in absent}
        failed = [op for op in left.ops if op.number not in gone]
        for op in failed:
            last = left.reasons.get(op.number) or "not carried out (no reason given)"
            reason = f"still failing after {run.attempts} attempts: {last}"
            self.failure(name, op.number, actions.get(op.number, op.kind), reason)
        self.mark_pending(name, failed, left.reasons)

    def applied(self) -> Applied:
        """The history stamp of numbers recorded now (one object per batch)."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return Applied(now, now, self.actor, self.commit)

    def record(
        self, tp: TargetPlan, result: BatchResult, actions: dict[str, str], run: _BatchRun
    ) -> _Left:
        """Write one attempt's outcomes to state in one transaction; return what is left
        to send again (with the longest Retry-After the provider gave for it)."""
        name = tp.target.name
        run.sends += 1
        upserts: list[ManagedEntry] = []
        deletes: list[str] = []
        pending: dict[str, str] = {}
        left = _Left([])
        applied = self.applied()
        reported = {id(o.op) for o in result.outcomes}
        outcomes = list(result.outcomes)
        # an op the provider said nothing about was not carried out: send it again
        outcomes += [
            Outcome(op, "retryable", "not reported by the provider")
            for op in run.pending.ops
            if id(op) not in reported
        ]
        for o in outcomes:
            op = o.op
            action = actions.get(op.number, op.kind)
            if o.ok:
                if op.kind == "add":
                    ids = o.provider_ids or op.provider_ids
                    upserts.append(
                        ManagedEntry(
                            op.number,
                            op.expires,
                            op.reason,
                            op.attrs,
                            ids,
                            op.source,
                            applied=applied,
                        )  # fmt: skip
                    )
                    self.report.done[name][action] += 1
                else:
                    deletes.append(op.number)
                    if action != "update":
                        self.report.done[name][action] += 1
            elif o.status in ("retryable", "unconfirmed"):
                if o.status == "unconfirmed":
                    run.unconfirmed[op.number] += 1
                left.ops.append(op)
                left.reasons[op.number] = o.reason or "not carried out (no reason given)"
                if o.retry_after is not None:
                    left.retry_after = max(left.retry_after or 0.0, o.retry_after)
            else:
                reason = o.reason or "failed (no reason given)"
                self.failure(name, op.number, action, reason)
                if op.kind == "remove":
                    pending[op.number] = reason
        if upserts or deletes or pending or result.target_meta:
            self.state.record_batch(name, upserts, deletes, result.target_meta, pending=pending)
        return left

    def mark_pending(self, target: str, ops: list[Op], reasons: Mapping[str, str]) -> None:
        """Failed removes stay managed, with the provider's reason (``state list``)."""
        pending = {
            op.number: reasons.get(op.number) or "remove not confirmed"
            for op in ops
            if op.kind == "remove"
        }
        if pending:
            self.state.record_batch(target, pending=pending)

    def failure(self, target: str, number: str, action: str, reason: str) -> None:
        """One number that did not happen, with the provider's (or the guard's) words."""
        self.report.failures.append(Failure(target, number, action, reason))
        self.progress.failed(target, 1)

    def fail_all(
        self,
        target: str,
        ops: list[Op],
        actions: dict[str, str],
        reason: str,
        *,
        pending: bool = False,
    ) -> None:
        for op in ops:
            self.failure(target, op.number, actions.get(op.number, op.kind), reason)
        if pending:
            self.mark_pending(target, ops, {op.number: reason for op in ops})


class _Abandoned(Exception):
    """A batch not (or no longer) sent: its provider failed auth, or apply was stopped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _BatchRun:
    """One batch through its attempts: what is still to send, and how often each
    remove was answered "not deleted, maybe absent"."""

    pending: Batch
    attempts: int = 0  # sent (answered or not)
    sends: int = 0  # answered
    unconfirmed: Counter = field(default_factory=Counter)
