"""Is loading a list's entries from a CSV file (``entries_from:``) at least as fast as
loading the same entries written in YAML?

Generates, deterministically and in a temporary directory, two configurations that
declare the same N entries (default 1 000 000) for one target: one list file with N
long-form YAML entries (a quoted number, a reason, an expiry date and a ticket, as in
``benchmarks/yaml_load.py``), and one list file with ``entries_from: numbers.csv``,
a CSV of N rows with the same four columns. Then times ``load_desired`` on each (the
whole validation: parsing, numbers, expiry, duplicates, merging), checks both give the
same desired state, and prints the best wall and CPU seconds of a few runs and their
ratio. The machine may be shared and noisy: CPU seconds are printed beside wall time,
and the ratio is the figure to read. Prints figures only; it passes or fails nothing.

    python benchmarks/entries_from_load.py                     # 1 000 000 entries, best of 2
    python benchmarks/entries_from_load.py --entries 100000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.desired import load_desired

PROVIDERS = """\
version: 1
providers:
  sms:
    type: kaleyra
    base_url: sandbox
"""
HEADER = """\
version: 1
name: bulk
default_region: IN
targets:
  - {provider: sms, channel: sms}
defaults: {reason: fraud}
"""
REASONS = ["chargeback", "fraud", "sim-box fraud", "spoofed caller id", "phishing"]


def rows(entries: int, seed: int = 42) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)
    numbers: set[str] = set()
    while len(numbers) < entries:
        numbers.add(f"+91{9_000_000_000 + rng.randrange(999_999_999)}")
    out = []
    for i, number in enumerate(sorted(numbers)):
        out.append(
            (
                number,
                REASONS[i % len(REASONS)],
                f"2027-{1 + i % 12:02d}-{1 + i % 28:02d}",
                f"TS-{i}",
            )
        )
    return out


def write_yaml(root: Path, data: list[tuple[str, str, str, str]]) -> None:
    root.mkdir()
    (root / "providers.yaml").write_text(PROVIDERS)
    with open(root / "bulk.yaml", "w", encoding="utf-8") as fh:
        fh.write(HEADER + "entries:\n")
        for number, reason, expires, ticket in data:
            fh.write(
                f'  - number: "{number}"\n    reason: {reason}\n'
                f"    expires: {expires}\n    ticket: {ticket}\n"
            )


def write_csv(root: Path, data: list[tuple[str, str, str, str]]) -> None:
    root.mkdir()
    (root / "providers.yaml").write_text(PROVIDERS)
    (root / "bulk.yaml").write_text(HEADER + "entries_from: numbers.csv\n")
    with open(root / "numbers.csv", "w", encoding="utf-8") as fh:
        fh.write("number,reason,expires,ticket\n")
        for row in data:
            fh.write(",".join(row) + "\n")


def best(root: Path, runs: int) -> tuple[float, float, object]:
    wall = cpu = float("inf")
    desired = None
    for _ in range(runs):
        desired = None
        w0, c0 = time.perf_counter(), time.process_time()
        desired = load_desired(root)
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, desired


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "reconciler"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in reconciler/" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"commit {commit()}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"load average {load:.1f}"
    )
    data = rows(args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        yaml_dir, csv_dir = Path(tmp) / "yaml", Path(tmp) / "csv"
        write_yaml(yaml_dir, data)
        write_csv(csv_dir, data)
        sizes = (
            (yaml_dir / "bulk.yaml").stat().st_size / 2**20,
            (csv_dir / "numbers.csv").stat().st_size / 2**20,
        )
        del data
        y_wall, y_cpu, y_desired = best(yaml_dir, args.runs)
        y_digest, y_count = y_desired.digest(), y_desired.numbers
        del y_desired
        c_wall, c_cpu, c_desired = best(csv_dir, args.runs)
        same = c_desired.digest() == y_digest and c_desired.numbers == y_count
    print(f"{args.entries:,} entries, best of {args.runs} runs of load_desired (seconds):")
    print(f"  {'source':<28} {'file MiB':>9} {'wall':>8} {'CPU':>8}")
    print(f"  {'YAML (4-line long entries)':<28} {sizes[0]:>9.1f} {y_wall:>8.2f} {y_cpu:>8.2f}")
    print(f"  {'CSV (entries_from)':<28} {sizes[1]:>9.1f} {c_wall:>8.2f} {c_cpu:>8.2f}")
    print(
        f"  CSV / YAML: wall {c_wall / y_wall:.2f}, CPU {c_cpu / y_cpu:.2f} "
        f"({y_cpu / c_cpu:.1f}x faster); same desired state: {same}"
    )


if __name__ == "__main__":
    main()
