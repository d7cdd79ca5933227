"""Carry out a plan: batched, concurrent, retrying, recorded batch by batch.

Owns execution only: batches come from each adapter (``batches``), requests
from ``send``; this module adds the concurrency limit per provider instance,
retries (``retry.py``), per-number outcome bookkeeping, state recording after
every batch (so a crash loses at most the batches in flight), progress and
the final report. It never decides *what* to change: that is the plan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .connections import Connections
from .domain import Batch, BatchResult, ManagedEntry, Op
from .errors import AuthError, ProviderError, RetryableError
from .expiry import iso
from .plan import Plan, TargetPlan
from .providers import ProviderAdapter
from .retry import DEFAULT_POLICY, RetryPolicy, retrying
from .state import StateBackend

#: state-only records (adopt, forget) are written in chunks of this size
STATE_CHUNK = 1000


@dataclass
class Failure:
    target: str
    number: str
    action: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "target": self.target,
            "number": self.number,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass
class ApplyReport:
    started: dt.datetime
    finished: dt.datetime | None = None
    done: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    batches: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted

    def failed_counts(self) -> dict[str, Counter]:
        out: dict[str, Counter] = defaultdict(Counter)
        for f in self.failures:
            out[f.target][f.action] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed_counts()
        names = sorted(set(self.done) | set(failed))
        return {
            "format_version": 1,
            "started": iso(self.started),
            "finished": iso(self.finished),
            "ok": self.ok,
            "interrupted": self.interrupted,
            "batches": self.batches,
            "targets": [
                {
                    "name": n,
                    "done": dict(sorted(self.done[n].items())),
                    "failed": dict(sorted(failed[n].items())),
                }
                for n in names
            ],
            "failures": [f.to_dict() for f in self.failures],
        }


class ApplyProgress:
    """A progress bar per target on a terminal; one plain line per batch otherwise."""

    def __init__(self, *, enabled: bool = True, tty: bool | None = None) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._done: Counter = Counter()
        self._total: dict[str, int] = {}

    def __enter__(self) -> ApplyProgress:
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "[bold]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def start(self, target: str, total: int) -> None:
        self._total[target] = total
        if self._bar is not None:
            self._tasks[target] = self._bar.add_task(target, total=total)

    def batch(self, target: str, size: int, ok: int, seconds: float) -> None:
        self._done[target] += size
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.advance(self._tasks[target], size)
            return
        total = self._total.get(target, 0)
        print(
            f"{target}: {self._done[target]}/{total} ({ok}/{size} ok in batch, {seconds:.2f}s)",
            file=sys.stderr,
            flush=True,
        )


class Executor:
    """Runs the write operations of a plan against the providers."""

    def __init__(
        self,
        connections: Connections,
        state: StateBackend,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        progress: ApplyProgress | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.connections = connections
        self.state = state
        self.policy = policy
        self.progress = progress or ApplyProgress(enabled=False)
        self.stop = stop or asyncio.Event()
        self.report = ApplyReport(started=dt.datetime.now(dt.UTC))
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._dead: dict[str, str] = {}  # provider instance -> why it is not called again

    async def run(self, plan: Plan) -> ApplyReport:
        await asyncio.gather(*(self.run_target(tp) for tp in plan.targets))
        self.report.interrupted = self.stop.is_set()
        self.report.finished = dt.datetime.now(dt.UTC)
        return self.report

    # -- one target ---------------------------------------------------------------------

    async def run_target(self, tp: TargetPlan) -> None:
        name = tp.target.name
        self.record_state_only(tp)
        removes, adds = tp.write_ops()
        if not removes and not adds:
            return
        adapter = self.connections.adapter(tp.target.provider)
        actions = {c.number: c.action for c in tp.changes}
        batches = adapter.batches(tp.target, removes, adds, self.state.target_meta(name))
        self.progress.start(name, sum(len(b.ops) for b in batches))
        for phase in sorted({b.phase for b in batches}):
            group = [b for b in batches if b.phase == phase]
            await asyncio.gather(*(self.run_batch(tp, adapter, b, actions) for b in group))

    def record_state_only(self, tp: TargetPlan) -> None:
        """Adopt (becomes managed) and forget (state cleanup): no API call."""
        name = tp.target.name
        adopts = [
            ManagedEntry(c.number, c.expires, c.reason, c.attrs, c.provider_id, c.source)
            for c in tp.changes
            if c.action == "adopt"
        ]
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
            sem = asyncio.Semaphore(adapter.capabilities.concurrency_limit)
            self._limits[adapter.instance] = sem
        return sem

    # -- one batch ----------------------------------------------------------------------

    async def run_batch(
        self, tp: TargetPlan, adapter: ProviderAdapter, batch: Batch, actions: dict[str, str]
    ) -> None:
        name = tp.target.name
        async with self.limit(adapter):
            pending = batch
            # ops a provider reported retryable are re-sent as often, and with the same
            # backoff, as a request that failed whole (RetryPolicy.attempts)
            for round_ in range(self.policy.attempts):
                why = self._dead.get(adapter.instance)
                if why is None and self.stop.is_set():
                    why = "not attempted: apply was interrupted"
                if why is not None:
                    self.fail_all(name, pending.ops, actions, why)
                    return
                started = time.monotonic()
                try:
                    result = await self.send(adapter, tp, pending)
                except AuthError as exc:
                    self._dead[adapter.instance] = f"not attempted: {exc.reason}"
                    self.fail_all(
                        name, pending.ops, actions, f"authentication failed: {exc.reason}"
                    )
                    return
                except RetryableError as exc:
                    self.fail_all(name, pending.ops, actions, f"gave up after retries: {exc}")
                    return
                except ProviderError as exc:
                    self.fail_all(name, pending.ops, actions, str(exc))
                    return
                retry_ops, retry_after = self.record(tp, result, actions)
                self.report.batches += 1
                ok = sum(1 for o in result.outcomes if o.ok)
                self.progress.batch(
                    name, len(pending.ops) - len(retry_ops), ok, time.monotonic() - started
                )
                if not retry_ops:
                    return
                if round_ + 1 < self.policy.attempts:
                    await asyncio.sleep(self.backoff(round_, retry_after))
                pending = Batch(retry_ops, pending.phase, pending.fields)
            self.fail_all(name, pending.ops, actions, "still failing after retries")

    def backoff(self, round_: int, retry_after: float | None) -> float:
        """Seconds before re-sending ops reported retryable: the provider's Retry-After
        if it gave one, else exponential backoff; plus jitter either way."""
        p = self.policy
        wait = retry_after if retry_after is not None else min(p.initial * 2**round_, p.max_wait)
        return min(wait + random.uniform(0, p.initial), p.max_retry_after)

    async def send(self, adapter: ProviderAdapter, tp: TargetPlan, batch: Batch) -> BatchResult:
        async for attempt in retrying(self.policy):
            with attempt:
                return await adapter.send(tp.target, batch)
        raise AssertionError("unreachable")  # pragma: no cover

    def record(
        self, tp: TargetPlan, result: BatchResult, actions: dict[str, str]
    ) -> tuple[list[Op], float | None]:
        """Write a batch's outcomes to state in one transaction; return the ops to
        re-send and the longest Retry-After the provider gave for them."""
        name = tp.target.name
        upserts: list[ManagedEntry] = []
        deletes: list[str] = []
        retry: list[Op] = []
        retry_after: float | None = None
        for o in result.outcomes:
            op = o.op
            action = actions.get(op.number, op.kind)
            if o.ok:
                if op.kind == "add":
                    pid = o.provider_id or op.provider_id
                    upserts.append(
                        ManagedEntry(op.number, op.expires, op.reason, op.attrs, pid, op.source)
                    )
                    self.report.done[name][action] += 1
                else:
                    deletes.append(op.number)
                    if action != "update":
                        self.report.done[name][action] += 1
            elif o.status == "retryable":
                retry.append(op)
                if o.retry_after is not None:
                    retry_after = max(retry_after or 0.0, o.retry_after)
            else:
                self.report.failures.append(
                    Failure(name, op.number, action, o.reason or "failed (no reason given)")
                )
        if upserts or deletes or result.target_meta:
            self.state.record_batch(name, upserts, deletes, result.target_meta)
        return retry, retry_after

    def fail_all(self, target: str, ops: list[Op], actions: dict[str, str], reason: str) -> None:
        for op in ops:
            self.report.failures.append(
                Failure(target, op.number, actions.get(op.number, op.kind), reason)
            )
