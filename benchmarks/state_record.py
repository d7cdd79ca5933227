"""Does recording a batch cost the same in a big state as in a small one?

Prefills a state with 1 000 000 numbers in one transaction, reads that target
back, then records 10 000 batches of 100 new numbers into it (one transaction
each, as apply does) and prints the time of the first and of the last 1 000
batches and their ratio. A ratio near 1 means a batch's cost does not grow
with the state. Prints figures only; it passes or fails nothing.

    python benchmarks/state_record.py                      # SQLite in a temp dir
    python benchmarks/state_record.py --backend postgres   # throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from reconciler.domain import ManagedEntry
from reconciler.state import StateBackend, open_state

TARGET = "kaleyra/sms"
FIRST_NUMBER = 15_550_000_000  # +1 555 000 0000 upwards
EXPIRES = datetime(2027, 3, 1, tzinfo=UTC)


def entries(start: int, count: int) -> Iterator[ManagedEntry]:
    for i in range(start, start + count):
        yield ManagedEntry(
            number=f"+{FIRST_NUMBER + i}",
            expires=EXPIRES if i % 3 == 0 else None,
            reason="fraud",
            attrs=(("reject_type", "invalid"),) if i % 2 else (),
            source=f"blocklists/fraud.yaml:{i % 50_000 + 1}",
        )


def open_backend(args: argparse.Namespace, stack: ExitStack) -> tuple[StateBackend, str]:
    if args.backend == "sqlite":
        directory = (
            Path(args.dir) if args.dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        path = directory / "state.db"
        return open_state("sqlite", path=path), f"sqlite {path}"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pgserver import PgServer  # the throwaway server of the tests

    server = stack.enter_context(PgServer(durable=True))
    dsn = server.create_database("bench")
    return open_state("postgres", dsn=dsn), f"postgres (throwaway server, fsync on) {dsn}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--prefill", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=1_000, help="batches in each timed window")
    parser.add_argument("--dir", help="SQLite: directory for state.db (default: a temp dir)")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        state, where = open_backend(args, stack)
        stack.callback(state.close)
        print(f"backend: {where}")

        started = time.perf_counter()
        state.record_batch(TARGET, entries(0, args.prefill))
        print(
            f"prefill {args.prefill:,} numbers in one transaction: "
            f"{time.perf_counter() - started:.2f} s"
        )

        started = time.perf_counter()
        got = state.read_target(TARGET)
        print(f"read_target of {len(got):,} entries: {time.perf_counter() - started:.2f} s")
        del got

        # Wall time includes the fsync of every commit, which on a shared disk varies with
        # the neighbours; this process's CPU time is the work that could grow with the state.
        wall: list[float] = []
        cpu: list[float] = []
        next_number = args.prefill
        for _ in range(args.batches):
            batch = list(entries(next_number, args.batch_size))
            next_number += args.batch_size
            w0, c0 = time.perf_counter(), time.process_time()
            state.record_batch(TARGET, batch)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)

        n = args.window
        print(
            f"recorded {args.batches:,} batches of {args.batch_size}: {sum(wall):.2f} s wall, "
            f"median {statistics.median(wall) * 1e3:.2f} ms/batch"
        )
        for label, part_wall, part_cpu in (
            (f"first {n:,}", wall[:n], cpu[:n]),
            (f"last  {n:,}", wall[-n:], cpu[-n:]),
        ):
            print(
                f"{label} batches: {sum(part_wall):.3f} s wall "
                f"(median {statistics.median(part_wall) * 1e3:.2f} ms/batch), "
                f"{sum(part_cpu):.3f} s CPU"
            )
        print(
            f"ratio last/first: wall {sum(wall[-n:]) / sum(wall[:n]):.2f}, "
            f"CPU {sum(cpu[-n:]) / sum(cpu[:n]):.2f}"
        )
        print(f"serial: {state.serial():,}")

        started = time.perf_counter()
        got = state.read_target(TARGET)
        print(f"read_target of {len(got):,} entries: {time.perf_counter() - started:.2f} s")
        del got
        if args.backend == "sqlite":
            path = state.path  # type: ignore[attr-defined]
            state.close()
            size = path.stat().st_size / 2**20
            started = time.perf_counter()
            open_state("sqlite", path=path, create=False).close()
            print(
                f"reopen with quick_check ({size:.0f} MiB): {time.perf_counter() - started:.2f} s"
            )


if __name__ == "__main__":
    sys.exit(main())
