"""Subprocess for the kill -9 test in test_state.py: records batches until killed.

Batch ``i`` upserts the 100 consecutive numbers ``+{BASE + 100*i + j}`` (j < 100)
with ``source="batch:i"`` and sets target metadata ``last_batch=i``, so the
test can tell a complete batch from a partial one. After opening it prints
``ready``; after each committed batch it prints the serial, flushed, so the
test knows which batches were committed before the kill.
"""

from __future__ import annotations

import argparse
import time

from reconciler.domain import ManagedEntry
from reconciler.state import current_lock_info, open_state

BASE = 15_550_000_000
BATCH = 100
TARGET = "crash/test"
MAX_SECONDS = 60.0  # never outlive a test that forgot us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--path")
    parser.add_argument("--dsn")
    args = parser.parse_args()

    state = open_state(args.backend, path=args.path, dsn=args.dsn)
    state.acquire_lock(current_lock_info("crash-test"))
    batch = state.serial()  # only this worker writes: serial == complete batches
    print("ready", flush=True)
    print(batch, flush=True)  # committed so far, by the workers killed before this one
    stop_at = time.monotonic() + MAX_SECONDS
    while time.monotonic() < stop_at:
        first = BASE + batch * BATCH
        state.record_batch(
            TARGET,
            [
                ManagedEntry(f"+{first + j}", reason="crash-test", source=f"batch:{batch}")
                for j in range(BATCH)
            ],
            meta={"last_batch": str(batch)},
        )
        batch += 1
        print(batch, flush=True)


if __name__ == "__main__":
    main()
