"""What do the other commands that load the desired state cost, as whole processes?

``blocklist plan`` (text, ``--format json``, ``--out``), ``blocklist validate`` (offline: load and check), ``blocklist audit`` (load,
refresh every target, report) and ``blocklist import TARGET`` (load, refresh one
target, write a list file, load again) on ``plan_bench.py``'s data: 100 000
long-form entries in one list for five sandbox targets, the in-process
emulators pre-seeded with live entries, an empty state. Each command runs as
its own process (``python -m reconciler.cli``-like, with ``PYTHONPATH`` set to
the code measured) in a fresh copy of the data, so that code versions can be
compared side by side:

    python benchmarks/commands_bench.py                        # this checkout
    python benchmarks/commands_bench.py --rev before=2aa8e53 --code after=.
    python benchmarks/commands_bench.py --entries 10000 --runs 5 --only validate

``--rev NAME=REV`` measures ``reconciler/`` as it is at a git revision (extracted
with ``git archive`` into a temporary directory), ``--code NAME=DIR`` a checkout.
For each command and code: wall seconds, CPU seconds (user + system of that
process alone, from ``os.wait4``) and peak RSS (the process's own ``VmHWM``,
read as it exits: ``ru_maxrss`` would carry over this parent's), the seconds
the child spent in the cyclic garbage collector (``gc.callbacks``), the median of
``--runs`` runs and their range, with the load average before and after. Prints
figures only; it passes or fails nothing.

The measured code's bytecode is compiled first (``compileall``), as Python itself
caches it on a first run: where ``PYTHONDONTWRITEBYTECODE`` is set (as on the
machines these figures come from) every run would otherwise compile ~50 modules
again (~0.3 s), which no installed ``blocklist`` does.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import plan_bench  # noqa: E402  (the data generator, shared)

AT = "2026-11-22T00:00:00Z"  # plan_bench's NOW
#: command name -> its arguments (run in the data's copy; lists in ./blocklists)
COMMANDS: dict[str, list[str]] = {
    # issue 18: the plan as a user runs it (what plan_bench.py's whole processes run)
    "plan-text": ["plan", "-C", "blocklists", "--at", AT, "--no-color"],
    "plan-json": ["plan", "-C", "blocklists", "--at", AT, "--format", "json"],
    "plan-out": ["plan", "-C", "blocklists", "--at", AT, "--no-color", "--out", "plan.json"],
    "validate": ["validate", "-C", "blocklists"],
    "audit": ["audit", "-C", "blocklists", "--at", AT],
    "import": [
        "import",
        "kaleyra/sms",
        "-C",
        "blocklists",
        "--at",
        AT,
        "--out",
        "blocklists/imported.yaml",
    ],
}

#: run the CLI as ``blocklist`` does, and write this process's VmHWM when it exits
WRAPPER = r"""
import atexit, gc, os, sys, time

_gc = [0.0, 0.0]  # seconds inside the cyclic collector; when the running one started

def _timed(phase, info):
    if phase == "start":
        _gc[1] = time.perf_counter()
    else:
        _gc[0] += time.perf_counter() - _gc[1]

def _peak():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
                    out.write(f"{line.split()[1]} {_gc[0]:.3f}")

gc.callbacks.append(_timed)
atexit.register(_peak)
import reconciler
where = os.path.realpath(reconciler.__file__)
if not where.startswith(os.path.realpath(os.environ["BENCH_CODE"]) + os.sep):
    sys.exit(f"reconciler imported from {where}, not from {os.environ['BENCH_CODE']}")
import reconciler.cli
sys.argv[0] = "blocklist"
getattr(reconciler.cli, "entry", reconciler.cli.main)()  # the script's (main before entry)
"""


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def extract(rev: str, into: Path) -> Path:
    """``reconciler/`` as it is at git revision ``rev``, under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "reconciler"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def compile_code(code: Path) -> None:
    """The bytecode of ``code``'s ``reconciler/``, as a first run would leave it."""
    if not compileall.compile_dir(str(code / "reconciler"), quiet=1):
        sys.exit(f"cannot compile {code / 'reconciler'}")


def run_once(code: Path, data: Path, command: str, scratch: Path) -> dict[str, Any]:
    """One run of ``command`` in a fresh copy of ``data``: wall, CPU, peak RSS."""
    compile_code(code)
    work = scratch / "run"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(data / "blocklists", work / "blocklists", symlinks=True)
    peak_file = scratch / "peak"
    peak_file.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(code), BENCH_CODE=str(code / "reconciler"))
    env["BENCH_PEAK_FILE"] = str(peak_file)
    env.pop("GITHUB_ACTIONS", None)
    # output to files, not pipes: a child blocked on a full pipe would never exit
    with open(scratch / "out", "wb") as out, open(scratch / "err", "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, *COMMANDS[command]],
            cwd=work,
            env=env,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kib, gc_seconds = peak_file.read_text().split() if peak_file.exists() else ("nan", "nan")
    peak = float(peak_kib) / 1024
    said = (scratch / "err").read_text().strip() or (scratch / "out").read_text().strip()
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak": peak,
        "gc": float(gc_seconds),
        "exit": proc.returncode,
        "said": (said.splitlines()[-1:] or [""])[0][:100],
    }


def spread(values: list[float], unit: str = "") -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.2f}{unit}"
    return f"{median:.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(COMMANDS), help="repeatable")
    parser.add_argument("--code", action="append", default=[], help="NAME=DIR (repeatable)")
    parser.add_argument("--rev", action="append", default=[], help="NAME=REV (repeatable)")
    parser.add_argument("--keep", help="generate the data under this directory and keep it")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="commands-bench-"))
    try:
        codes: list[tuple[str, Path]] = []
        for spec in args.rev:
            name, _, rev = spec.partition("=")
            codes.append((name, extract(rev, scratch / f"rev-{name}")))
        for spec in args.code:
            name, _, path = spec.partition("=")
            codes.append((name, Path(path).resolve()))
        if not codes:
            codes.append(("this checkout", REPO))
        data = (Path(args.keep) if args.keep else scratch) / f"n{args.entries}"
        print(f"machine: {plan_bench.machine()}")
        print(f"-- generating {args.entries:,} entries in {data} …", flush=True)
        meta = plan_bench.write_dataset(data, args.entries)
        print(
            f"   {meta['files']} list file(s), {meta['bytes'] / 2**20:.0f} MiB of YAML, "
            f"{meta['live_declared']:,} declared + {meta['unmanaged']:,} unmanaged live "
            f"per listable target (generated in {meta['generate_s']:.1f} s, not counted)"
        )
        commands = args.only or list(COMMANDS)
        rows = []
        for command in commands:
            for name, code in codes:
                before = load_average()
                runs = [run_once(code, data, command, scratch) for _ in range(args.runs)]
                after = load_average()
                failed = [r for r in runs if r["exit"] not in (0, 2)]
                rows.append((command, name, runs, before, after, failed))
                print(
                    f"   {command:<9} {name:<14} wall {spread([r['wall'] for r in runs])} s, "
                    f"CPU {spread([r['cpu'] for r in runs])} s, "
                    f"GC {spread([r['gc'] for r in runs])} s, "
                    f"peak {spread([r['peak'] for r in runs], ' MiB')}"
                    + (f"  FAILED: {failed[0]['said']}" if failed else ""),
                    flush=True,
                )
        print(f"\n== {args.entries:,} entries, median of {args.runs} (range) ==")
        print(
            "| command | code | wall s | CPU s | of which GC s | peak RSS MiB "
            "| load average (before → after) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for command, name, runs, before, after, failed in rows:
            note = f" **failed**: {failed[0]['said']}" if failed else ""
            print(
                f"| `{command}` | {name} | {spread([r['wall'] for r in runs])} "
                f"| {spread([r['cpu'] for r in runs])} | {spread([r['gc'] for r in runs])} "
                f"| {spread([r['peak'] for r in runs])} | {before} → {after}{note} |"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
