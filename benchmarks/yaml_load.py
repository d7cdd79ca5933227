"""How much faster is the line-based YAML loader than the libyaml path?

Generates, deterministically, one list file of N long-form entries (default
100 000; four lines each, like ``blocklists/fraud.yaml``: a quoted number, a
reason, an expiry date and a ticket), then times loading it through
``reconciler.yamlfast.load_fast`` and through the libyaml path that
``yamlload.load_text`` falls back to (compose + build), checks that both give
the same result, and prints the best wall and CPU times of a few runs of each
and their ratios. The machine may be shared and noisy: the ratios are the
figures to read. Prints
figures only; it passes or fails nothing.

    python benchmarks/yaml_load.py                  # 100 000 entries, best of 3
    python benchmarks/yaml_load.py --entries 10000 --runs 5
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from typing import Any

import yaml

from reconciler import yamlload
from reconciler.yamlfast import load_fast

HEADER = """\
# yaml-language-server: $schema=../schemas/blocklist.schema.json
version: 1
name: fraud-callers
description: Confirmed fraud callers (trust & safety)
default_region: IN             # lets entries be written in national format
targets:
  - {provider: ozonetel, group: fraud-callers}
  - {provider: kaleyra, channel: sms}
  - {provider: wooxy, reject_type: invalid}
defaults: {reason: fraud}
entries:
"""
REASONS = ["chargeback", "fraud", "sim-box fraud", "spoofed caller id", "phishing"]


def list_file(entries: int, seed: int = 42) -> str:
    """A list file of `entries` long-form entries, 4 lines each."""
    rng = random.Random(seed)
    out = [HEADER]
    for i in range(entries):
        number = f"+91{9_000_000_000 + rng.randrange(999_999_999)}"
        quote = '"' if i % 2 else "'"
        day = 1 + i % 28
        out.append(
            f"  - number: {quote}{number}{quote}\n"
            f"    reason: {REASONS[i % len(REASONS)]}\n"
            f"    expires: 2027-{1 + i % 12:02d}-{day:02d}\n"
            f"    ticket: TS-{i + 1000}{'   # escalated' if i % 7 == 0 else ''}\n"
        )
    return "".join(out)


def libyaml_path(text: str) -> Any:
    """What ``yamlload.load_text`` does when the fast path declines."""
    node = yaml.compose(text, Loader=yamlload._Loader)
    return yamlload._Builder("bench.yaml", 1 << 62).build(node)


def best(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """The best wall and CPU times of `runs` calls of fn, and its result."""
    walls, cpus = [], []
    result = None
    for _ in range(runs):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return min(walls), min(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    text = list_file(args.entries)
    lines = text.count("\n")
    print(f"{args.entries} entries, {lines} lines, {len(text) / 1e6:.1f} MB")
    fast_wall, fast_cpu, fast = best(lambda: load_fast(text, "bench.yaml"), args.runs)
    if fast is None:
        raise SystemExit("load_fast declined the generated file")
    slow_wall, slow_cpu, slow = best(lambda: libyaml_path(text), max(1, args.runs - 1))
    if fast != slow or fast["entries"].marks != slow["entries"].marks:
        raise SystemExit("load_fast and the libyaml path disagree")
    print("                                  wall s    CPU s")
    print(f"fast path (yamlfast.load_fast):  {fast_wall:7.3f}  {fast_cpu:7.3f}")
    print(f"libyaml path (compose + build):  {slow_wall:7.3f}  {slow_cpu:7.3f}")
    print(
        f"speed-up:                        {slow_wall / fast_wall:6.1f}x  {slow_cpu / fast_cpu:6.1f}x"
    )


if __name__ == "__main__":
    main()
