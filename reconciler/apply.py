"""Carry out a plan: batched, concurrent, retrying, recorded batch by batch.

Owns execution only: batches come from each adapter (``batches``), requests
from ``send``; this module adds the concurrency limit per provider instance,
retries (``retry.py``), per-number outcome bookkeeping, state recording after
every batch (so a crash loses at most the batches in flight), progress and
the final report. It never decides *what* to change: that is the plan; and it
never draws anything: progress goes to an injected ``Progress``.

The event loop is the one resource every provider shares, so it does nothing
it can hand off: state is written by one thread of its own (``StateWriter``, in
order, each batch as soon as it is confirmed), each target's requests are sent
by as many workers as its provider allows, pulling batches one at a time, and a
target is set up (ops, guard, batches) just before its first request, not all
targets before any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from tenacity import RetryCallState

from .connections import Connections
from .domain import Applied, Batch, BatchResult, ManagedEntry, Op, Outcome, Target
from .errors import AuthError, ProviderError, RetryableError
from .gcpause import built_to_last, frozen_heap, keep_alive
from .operations.ui import Progress, QuietProgress, Stop
from .plan import DeclaredRun, Plan, TargetPlan, runs_of
from .policy import ProtectedRanges
from .providers import ProviderAdapter, adapter_class
from .report import ApplyReport, Failure
from .retry import DEFAULT_POLICY, RetryPolicy, retrying
from .state import StateBackend
from .state.base import BatchRecord

#: state-only records (adopt, forget) are written in chunks of this size
STATE_CHUNK = 1000

T = TypeVar("T")


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

    def suspects(
        self, target: Target, ops: Sequence[Op], managed: Collection[str], numbers: set[str]
    ) -> set[str]:
        """The numbers of ``ops`` that ``refusal`` might refuse (a superset, found with
        set operations): every other op passes without a call of ``refusal``.
        ``numbers``: the set of the ops' numbers (the caller has it already)."""
        out = numbers.intersection(self.opt_outs.get(target.name, ()))
        additions = [op.number for op in ops if op.kind in ("add", "adopt")]
        if additions:
            if self.ranges:
                out.update(additions)  # each is matched against the ranges
            elif self.protected:
                out.update(self.protected.intersection(additions))
        if not target.exclusive and len(additions) < len(ops):
            out.update(op.number for op in ops if op.kind == "remove" and op.number not in managed)
        return out


@dataclass
class _Left:
    """What an attempt at a batch left to send again, and when the provider said to."""

    ops: list[Op]
    retry_after: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # number -> provider's last words
    ok: int = 0  # outcomes of the attempt that were done or already so


def redacted(adapter: ProviderAdapter, outcomes: list[Outcome]) -> list[Outcome]:
    """``outcomes`` with every credential of ``adapter`` out of the provider's words
    (they may echo one). A batch's outcomes share a few reasons: each distinct text is
    redacted once, and an outcome is copied only if its text changes."""
    clean: dict[str, str] = {}
    out = []
    for o in outcomes:
        if o.reason:
            text = clean.get(o.reason)
            if text is None:
                text = clean[o.reason] = adapter.redact(o.reason)
            if text != o.reason:
                o = replace(o, reason=text)
        out.append(o)
    return out


class StateWriter:
    """Every state call of one apply, made in order by one thread of its own.

    A batch's outcomes are queued the moment the provider's answer is read
    (``record``: nothing is queued that the provider did not confirm) and written
    at once by the thread, in one transaction with any confirmed while the previous
    one was being written (each batch still all or nothing; serial + 1 per batch).
    Reads (``call``) run after every write queued before them, so the event loop
    never waits for SQLite or PostgreSQL and never shares their connection with the
    thread. After a failed write, ``record`` and ``check`` raise its error, so
    nothing more is sent that state could not record.
    """

    def __init__(self, state: StateBackend) -> None:
        self.state = state
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blocklist-state")
        self._lock = threading.Lock()
        self._queue: list[BatchRecord] = []
        self._draining = False
        self._error: BaseException | None = None

    def record(
        self,
        target: str,
        upserts: Sequence[ManagedEntry] = (),
        deletes: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        *,
        pending: Mapping[str, str] | None = None,
    ) -> None:
        """Queue one batch's outcomes (as ``StateBackend.record_batch`` takes them)."""
        self.check()
        with self._lock:
            self._queue.append(BatchRecord(target, upserts, deletes, meta, pending))
            if self._draining:
                return  # the thread's current drain takes it
            self._draining = True
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        """(The thread.) Write what is queued, group by group, until nothing is."""
        while True:
            with self._lock:
                group, self._queue = self._queue, []
                if not group:
                    self._draining = False
                    return
            try:
                self.state.record_batches(group)
            except BaseException as exc:  # noqa: BLE001 - raised again by check()
                with self._lock:
                    self._error = exc
                    self._queue.clear()
                    self._draining = False
                return

    def check(self) -> None:
        """Raise the error of a failed write, if one failed."""
        if self._error is not None:
            raise self._error

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the state thread, after every write queued before it."""
        self.check()
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    async def flush(self) -> None:
        """Wait until everything queued is written; raise if a write failed."""
        await asyncio.wrap_future(self._pool.submit(_nothing))
        self.check()

    def close(self) -> None:
        """Write what is still queued and end the thread (blocks: the end of a run)."""
        self._pool.shutdown(wait=True)


def _nothing() -> None:
    return None


class _Actions:
    """number -> the plan's action for one target, built on first use: only a report
    line needs it, so a target's first requests do not wait for it."""

    __slots__ = ("_changes", "_map")

    def __init__(self, tp: TargetPlan) -> None:
        self._changes = tp.changes
        self._map: dict[str, str] | None = None

    def get(self, number: str, default: str) -> str:
        return self.map().get(number, default)

    def map(self) -> dict[str, str]:
        found = self._map
        if found is None:
            found = self._map = {}
            for action, run in runs_of(self._changes):  # in order: a later change wins
                numbers = (
                    run.numbers(whole=True)
                    if isinstance(run, DeclaredRun)
                    else (c.number for c in run)
                )
                found.update(dict.fromkeys(numbers, action))  # no Change made per add
        return found


@dataclass
class _Head:
    """A target's first ops and what apply sends of them before the rest is set up."""

    taken: list[Op]  # the first ops of their kind, as ``write_ops`` returns them
    refused: list[tuple[Op, str]]  # those the guard refused, with its words
    passed: list[Op]  # those it let through
    removes: bool  # the ops taken are removes (else adds)
    #: sent at once: ``head_batches`` of the ops let through (None: not cut yet)
    batches: list[Batch] | None = None
    left: list[Op] = field(default_factory=list)  # let through, in no batch: the rest's

    def cut(self, adapter: ProviderAdapter, target: Target, meta: Mapping[str, str]) -> None:
        """The batches the adapter fixes from the ops let through, and what is left."""
        self.batches = adapter.head_batches(target, *self.join(self.passed, []), meta)
        sent = {id(op) for b in self.batches for op in b.ops}
        self.left = [op for op in self.passed if id(op) not in sent]

    def rest(self, removes: list[Op], adds: list[Op]) -> tuple[list[Op], list[Op]]:
        """``write_ops()`` as (the head's kind without the ops taken, the other kind):
        the ops taken must be its first ones."""
        own, other = (removes, adds) if self.removes else (adds, removes)
        count = len(self.taken)
        if [op.number for op in own[:count]] != [op.number for op in self.taken]:
            raise RuntimeError("a target's first ops changed between its head and the rest")
        return own[count:], other

    def join(self, own: list[Op], other: list[Op]) -> tuple[list[Op], list[Op]]:
        """(removes, adds) of ops of the head's kind and of the other kind."""
        return (own, other) if self.removes else (other, own)


#: rounds of a target's requests (its concurrency's worth each) set up after its first
#: round and before any target's rest (``Executor._set_up_more``)
MORE_ROUNDS = 4

#: seconds the set-up thread waits at most for every target's first round to be on its
#: way before it sets up anything more (``_FirstRounds``)
FIRST_ROUNDS_WAIT_S = 0.1

#: seconds a thread holds the GIL while another waits for it, during an apply
SWITCH_INTERVAL = 0.001


@contextlib.contextmanager
def prompt_switching() -> Iterator[None]:
    """Inside the block, a thread waiting for the GIL gets it within ``SWITCH_INTERVAL``
    (Python's default is 5 ms): the event loop waits for it at every wake-up while the
    set-up thread builds ops, and a request took 6 ms to be written at the default."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class _Countdown:
    """An event set once ``count`` jobs are done (at once if none)."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._event = asyncio.Event()
        if count <= 0:
            self._event.set()

    def done(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


class _FirstRounds:
    """Whether every target's first round is on its way (or it has none): counted down
    on the event loop, awaited by the set-up thread before its jobs after the heads."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._event = threading.Event()
        if count <= 0:
            self._event.set()

    def once(self) -> Callable[[], None]:
        """One target's count, taken the first time it is called only."""
        called = False

        def done() -> None:
            nonlocal called
            if not called:
                called = True
                self._left -= 1
                if self._left <= 0:
                    self._event.set()

        return done

    def wait(self, timeout: float) -> None:
        """(The set-up thread.) Until every target's first round is on its way, at most
        ``timeout`` seconds: a later set-up is only slower, never wrong, meanwhile."""
        self._event.wait(timeout)


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
        self._writer: StateWriter | None = None
        #: where targets are set up (ops, guard, batches): one thread, so the event loop
        #: goes on sending the requests of the targets already set up meanwhile
        self._setup: ThreadPoolExecutor | None = None
        self._read: dict[str, tuple[Collection[str], dict[str, str]]] = {}  # target -> state
        self._heads = _Countdown(0)  # the targets' head set-ups, done or not
        self._first_rounds = _FirstRounds(0)

    @property
    def writer(self) -> StateWriter:
        """The state writer of the run in progress."""
        if self._writer is None:
            raise RuntimeError("the state writer exists only while run() runs")
        return self._writer

    async def run(self, plan: Plan) -> ApplyReport:
        """Every target at once (set up one after another in the set-up thread, each
        sending as soon as it is ready). Returns when everything confirmed is recorded."""
        with frozen_heap(), prompt_switching():  # the plan and all it refers to outlive it
            return await self._run(plan)

    async def _run(self, plan: Plan) -> ApplyReport:
        self._writer = StateWriter(self.state)
        self._setup = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blocklist-setup")
        tasks: list[asyncio.Future[None]] = []
        try:
            names = [tp.target.name for tp in plan.targets]
            self._read = await self._writer.call(self._read_state, names)
            writing = sum(1 for tp in plan.targets if tp.has_writes())
            self._heads, self._first_rounds = _Countdown(writing), _FirstRounds(writing)
            # a target whose adapter is not open yet is set up first: its first request
            # waits for a connection too (for some, a token), made meanwhile
            opened = self.connections.opened
            first = sorted(plan.targets, key=lambda tp: opened(tp.target.provider) is not None)
            tasks = [asyncio.ensure_future(self.run_target(tp)) for tp in first]
            await asyncio.gather(*tasks)
            await self._writer.flush()
        except BaseException:
            for task in tasks:  # nothing more is sent once a target failed outright
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self._setup.shutdown(wait=True)
            self._writer.close()  # what was confirmed is written, whatever happened
            self._writer = None
        self.report.interrupted = self.stop.is_set()
        self.report.signal = self.stop.reason
        self.report.finished = dt.datetime.now(dt.UTC)
        return self.report

    # -- one target ---------------------------------------------------------------------

    def _read_state(self, names: list[str]) -> dict[str, tuple[Collection[str], dict[str, str]]]:
        """(The state thread.) Each target's managed numbers (unless planned) and
        metadata, read once before any request."""
        out: dict[str, tuple[Collection[str], dict[str, str]]] = {}
        for name in names:
            if self._managed is not None and name in self._managed:
                managed = self._managed[name]
            else:
                managed = self.state.read_target(name).keys()
            out[name] = (managed, self.state.target_meta(name))
        keep_alive()  # state's entries live as long as the run
        return out

    async def _in_setup(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._setup is not None
        return await asyncio.get_running_loop().run_in_executor(self._setup, fn, *args)

    async def _later_in_setup(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the set-up thread once every target's first round is on its
        way (``_FirstRounds``): the jobs after the heads."""
        return await self._in_setup(self._after_first_rounds, fn, *args)

    def _after_first_rounds(self, fn: Callable[..., T], *args: Any) -> T:
        self._first_rounds.wait(FIRST_ROUNDS_WAIT_S)
        return fn(*args)

    async def run_target(self, tp: TargetPlan) -> None:
        first_round = self._first_rounds.once()  # its first round is on its way, or none is
        try:
            await self._run_target(tp, first_round)
        finally:
            first_round()

    async def _run_target(self, tp: TargetPlan, first_round: Callable[[], None]) -> None:
        name = tp.target.name
        # as planned, or as the state thread read it when the run began (never from the
        # event loop: the state thread owns the connection)
        managed, meta = self._read[name]
        self.record_state_only(tp, managed)
        actions = _Actions(tp)
        if not tp.has_writes():
            return
        # set-ups are jobs of the one set-up thread, taken in order, back to back (the
        # thread takes the next job itself, not when the busy event loop gets round to
        # handing over): every target's head first (each target's first requests, sent
        # at once), then, once they are on their way (the thread's work held the event
        # loop up writing them: on a loaded machine, a first request at up to 66 ms
        # instead of 33 in apply_bench), the whole set-up of each target that could send
        # none early, then the next rounds of each other target, then the rest of each
        try:
            head = await self._in_setup(self._set_up_head, tp, managed, meta)
        finally:
            self._heads.done()
        sending: asyncio.Future[None] | None = None
        more: asyncio.Future[None] | None = None  # the next rounds' requests
        preparing: asyncio.Future[None] | None = None
        if head is not None:
            self._refused(name, head.refused, actions)
            if head.batches is None and head.passed:  # its adapter opens now: cut it here
                head.cut(self.connections.adapter(tp.target.provider), tp.target, meta)
            if head.batches:
                removes, adds = tp.write_counts()
                self.progress.start(name, removes + adds - len(head.refused))
                adapter = self.connections.adapter(tp.target.provider)
                sending = asyncio.ensure_future(
                    self._send(tp, adapter, head.batches, actions, started=first_round)
                )
            elif head.passed:  # its first requests need its whole set-up (a probe of all its adds)
                adapter = self.connections.adapter(tp.target.provider)
                preparing = asyncio.ensure_future(adapter.prepare_writes())
        if sending is None:
            first_round()
        try:
            if sending is not None:  # a target sending nothing yet is set up before the rests
                await self._heads.wait()
                assert head is not None and head.batches
                phase = head.batches[0].phase
                following = await self._later_in_setup(self._set_up_more, tp, managed, meta, head)
                if following is not None:  # taken with the head's: the rest is what is left
                    head = following
                    self._refused(name, head.refused, actions)
                    if head.batches:
                        adapter = self.connections.adapter(tp.target.provider)
                        more = asyncio.ensure_future(self._send(tp, adapter, head.batches, actions))
            refused, ops, batches = await self._later_in_setup(
                self._set_up, tp, managed, meta, head
            )
            if preparing is not None:  # a failure is the sends' to report (they meet it)
                await asyncio.gather(preparing, return_exceptions=True)
            self._refused(name, refused, actions)
            if ops is None:  # nothing more to send (a provider not opened yet is not opened)
                await asyncio.gather(*(task for task in (sending, more) if task is not None))
                return
            adapter = self.connections.adapter(tp.target.provider)
            if batches is None:  # its adapter was opened only now (no refresh before): here
                with built_to_last():
                    batches = adapter.batches(tp.target, *ops, meta)
            if sending is None:
                self.progress.start(name, sum(len(b.ops) for b in batches))
            else:  # the rest of the head's phase goes along with what the head still sends
                early = [b for b in batches if b.phase <= phase]
                batches = [b for b in batches if b.phase > phase]
                sent = (task for task in (sending, more) if task is not None)
                await asyncio.gather(*sent, self._send(tp, adapter, early, actions))
            for phase in sorted({b.phase for b in batches}):
                await self._send(tp, adapter, [b for b in batches if b.phase == phase], actions)
        except BaseException:  # the rest's set-up failed, or the run is cancelled
            for task in (sending, more, preparing):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            raise

    async def _send(
        self,
        tp: TargetPlan,
        adapter: ProviderAdapter,
        batches: list[Batch],
        actions: _Actions,
        started: Callable[[], None] | None = None,
    ) -> None:
        """``batches``, up to the adapter's concurrency at once: the workers take the next
        batch as each one frees (the adapter's semaphore caps what is in flight). The
        workers start a turn of the event loop apart: all started in one turn, each
        request would wait to be written (its body is, in a later turn) until all of
        them, and every other target's, were built (a first request at 60-130 ms
        instead of 20-70 in apply_bench). ``started``: called once every worker has begun
        its first request."""
        pulled = iter(batches)
        workers: list[asyncio.Future[None]] = []
        try:
            for _ in range(min(adapter.concurrency, len(batches))):
                if workers:
                    await asyncio.sleep(0)
                workers.append(asyncio.ensure_future(self._work(tp, adapter, pulled, actions)))
            if started is not None:
                await asyncio.sleep(0)  # the last worker's first step
                started()
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _work(
        self, tp: TargetPlan, adapter: ProviderAdapter, batches: Iterator[Batch], actions: _Actions
    ) -> None:
        for batch in batches:
            await self.run_batch(tp, adapter, batch, actions)

    def _refused(self, name: str, refused: list[tuple[Op, str]], actions: _Actions) -> None:
        for op, why in refused:
            self.failure(name, op.number, actions.get(op.number, op.kind), why)

    def _set_up_head(
        self, tp: TargetPlan, managed: Collection[str], meta: Mapping[str, str]
    ) -> _Head | None:
        """(The set-up thread.) A target's first requests, ready before the rest of its
        ops are built (20 000 ops take ~50 ms a target, and the targets are set up one
        after another): the batches ``adapter.head_batches`` fixes from its first ops,
        enough to fill its concurrency; cut from them on the event loop if its adapter
        is not open yet (it is opened there, and only with something to send). None
        where the rest is as quick to set up (a few ops)."""
        batch, width = self.connections.write_limits(tp.target.provider)
        caps = adapter_class(tp.target.type).capabilities
        removes, adds = tp.write_counts()
        first = (1 if removes and caps.remove_one_per_call else batch) * width
        if removes + adds <= first:  # a few ops: the whole set-up is as quick
            return None
        with built_to_last():
            head_removes, head_adds = tp.write_ops(first)
            taken = head_removes or head_adds
            passed, refused = self.screen(tp, taken, managed)
            head = _Head(taken, refused, passed, bool(head_removes))
            adapter = self.connections.opened(tp.target.provider)
            if adapter is not None:
                head.cut(adapter, tp.target, meta)
        return head

    def _set_up_more(
        self, tp: TargetPlan, managed: Collection[str], meta: Mapping[str, str], head: _Head
    ) -> _Head | None:
        """(The set-up thread.) The target's next ``MORE_ROUNDS`` rounds of requests of
        the head's kind, set up once every head is, before any target's rest: a rest
        takes ~50 ms per 20 000 ops, the rests one after another, and the target set up
        last sat idle for 0.3 s between its first round and its second. A head of every op taken
        so far (None if the head took them all): its batches are those the adapter
        fixes from what the head left and the next ops, screened as the rest is."""
        adapter = self.connections.opened(tp.target.provider)
        assert adapter is not None and head.batches is not None  # it sends: it is cut
        count = len(head.taken)
        with built_to_last():
            own, _ = head.rest(*tp.write_ops(count * (1 + MORE_ROUNDS)))
            if not own:
                return None
            passed, refused = self.screen(tp, own, managed, {op.number for op in head.taken})
            following = _Head(head.taken + own, refused, head.left + passed, head.removes)
            following.cut(adapter, tp.target, meta)
        return following

    def _set_up(
        self,
        tp: TargetPlan,
        managed: Collection[str],
        meta: Mapping[str, str],
        head: _Head | None = None,
    ) -> tuple[list[tuple[Op, str]], tuple[list[Op], list[Op]] | None, list[Batch] | None]:
        """(The set-up thread.) The plan's removes and adds (but the ``head``'s, sent
        already), each screened, then grouped into requests by ``adapter.batches``
        (pure) if the target's adapter is open already (the plan's refresh opened it):
        (the refused ops, the (removes, adds) left, None if none; their batches, None
        if the adapter was not open). The head's ops not in its batches go first."""
        with built_to_last():  # tens of thousands of new ops, as long-lived as the plan
            removes, adds = tp.write_ops()
            if head is None:
                (removes, refused), (adds, more) = (
                    self.screen(tp, removes, managed),
                    self.screen(tp, adds, managed),
                )
            else:  # the head's kind: none of the numbers it took, its leftovers first
                own, other = head.rest(removes, adds)
                (own, refused), (other, more) = (
                    self.screen(tp, own, managed, {op.number for op in head.taken}),
                    self.screen(tp, other, managed),
                )
                removes, adds = head.join(head.left + own, other)
            refused += more
            if not removes and not adds:
                return refused, None, None
            adapter = self.connections.opened(tp.target.provider)
            if adapter is None:
                return refused, (removes, adds), None
            return refused, (removes, adds), adapter.batches(tp.target, removes, adds, meta)

    def screen(
        self,
        tp: TargetPlan,
        ops: list[Op],
        managed: Collection[str],
        seen: Collection[str] = frozenset(),
    ) -> tuple[list[Op], list[tuple[Op, str]]]:
        """(``ops`` the guard lets through, each number once and none of ``seen`` (the
        head's, taken already); the refused ops, each with the guard's words). Reports
        nothing: safe to run off the event loop."""
        numbers = {op.number for op in ops}
        suspects = self.guard.suspects(tp.target, ops, managed, numbers)
        if not suspects and len(numbers) == len(ops) and numbers.isdisjoint(seen):
            return ops, []  # nothing the guard refuses, no repeats (a list of its own)
        out: list[Op] = []
        refused: list[tuple[Op, str]] = []
        taken = set(seen)
        for op in ops:
            if op.number in taken:
                continue  # the same number twice for one target: sent once
            taken.add(op.number)
            why = None
            if op.number in suspects:
                why = self.guard.refusal(tp.target, op.kind, op.number, managed)
            if why is None:
                out.append(op)
            else:
                refused.append((op, why))
        return out, refused

    def record_state_only(self, tp: TargetPlan, managed: Collection[str]) -> None:
        """Adopt (becomes managed) and forget (state cleanup): no API call."""
        name = tp.target.name
        adopts = []
        # the adopt run alone: every change of a first plan is mostly adds, held as
        # references to their entries, and a Change made for each would stall the loop
        for c in (c for action, run in tp.runs() if action == "adopt" for c in run):
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
            self.writer.record(name, upserts=adopts[i : i + STATE_CHUNK])
        if adopts:
            self.report.done[name]["adopt"] += len(adopts)
        for i in range(0, len(tp.forget), STATE_CHUNK):
            self.writer.record(name, deletes=tp.forget[i : i + STATE_CHUNK])
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
        self, tp: TargetPlan, adapter: ProviderAdapter, batch: Batch, actions: _Actions
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
            self.writer.check()  # state cannot record: send nothing more
            why = self._dead.get(adapter.instance)
            if why is None and self.stop.is_set():
                why = "not attempted: apply was interrupted"
            if why is not None:
                raise _Abandoned(why)
            started = time.monotonic()
            run.attempts += 1
            result = await adapter.send(tp.target, run.pending)
            result.outcomes = redacted(adapter, result.outcomes)
            left = self.record(tp, result, actions, run)
            self.report.batches += 1
            self.progress.batch(
                name, len(run.pending.ops) - len(left.ops), left.ok, time.monotonic() - started
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

    def finish(self, tp: TargetPlan, left: _Left, actions: _Actions, run: _BatchRun) -> None:
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
            self.writer.record(name, deletes=[op.number for op in absent])
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
        self, tp: TargetPlan, result: BatchResult, actions: _Actions, run: _BatchRun
    ) -> _Left:
        """Queue one attempt's outcomes for state (one transaction, written by the state
        thread); return what is left to send again (with the longest Retry-After the
        provider gave for it)."""
        name = tp.target.name
        run.sends += 1
        upserts: list[ManagedEntry] = []
        deletes: list[str] = []
        pending: dict[str, str] = {}
        done: Counter[str] = Counter()
        left = _Left([])
        applied = self.applied()
        outcomes = result.outcomes
        if len(outcomes) != len(run.pending.ops) or any(
            o.op is not op for o, op in zip(outcomes, run.pending.ops, strict=True)
        ):
            reported = {id(o.op) for o in outcomes}
            # an op the provider said nothing about was not carried out: send it again
            outcomes = list(outcomes) + [
                Outcome(op, "retryable", "not reported by the provider")
                for op in run.pending.ops
                if id(op) not in reported
            ]
        action_of = actions.map()
        for o in outcomes:
            op = o.op
            status = o.status
            if status == "done" or status == "already":  # o.ok
                left.ok += 1
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
                    done[action_of.get(op.number, op.kind)] += 1
                else:
                    deletes.append(op.number)
                    action = action_of.get(op.number, op.kind)
                    if action != "update":
                        done[action] += 1
            elif status in ("retryable", "unconfirmed"):
                if o.status == "unconfirmed":
                    run.unconfirmed[op.number] += 1
                left.ops.append(op)
                left.reasons[op.number] = o.reason or "not carried out (no reason given)"
                if o.retry_after is not None:
                    left.retry_after = max(left.retry_after or 0.0, o.retry_after)
            else:
                reason = o.reason or "failed (no reason given)"
                self.failure(name, op.number, actions.get(op.number, op.kind), reason)
                if op.kind == "remove":
                    pending[op.number] = reason
        if done:
            self.report.done[name].update(done)
        if upserts or deletes or pending or result.target_meta:
            self.writer.record(name, upserts, deletes, result.target_meta, pending=pending)
        return left

    def mark_pending(self, target: str, ops: list[Op], reasons: Mapping[str, str]) -> None:
        """Failed removes stay managed, with the provider's reason (``state list``)."""
        pending = {
            op.number: reasons.get(op.number) or "remove not confirmed"
            for op in ops
            if op.kind == "remove"
        }
        if pending:
            self.writer.record(target, pending=pending)

    def failure(self, target: str, number: str, action: str, reason: str) -> None:
        """One number that did not happen, with the provider's (or the guard's) words."""
        self.report.failures.append(Failure(target, number, action, reason))
        self.progress.failed(target, 1)

    def fail_all(
        self,
        target: str,
        ops: list[Op],
        actions: _Actions,
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
