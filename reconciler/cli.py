"""The command line: thin shells that parse options, call one operation, render
its result with a view and choose the exit code.

Every expected failure is mapped to one line on stderr and its exit code once,
in ``BlocklistGroup``: 0 success; 1 any error (never a traceback for bad input,
bad credentials or an unreachable provider); ``plan --detailed-exitcode``: 2
changes, 3 changes including an unsafe target; 4 a saved plan that is not the
plan now; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__, ci
from .errors import BlocklistError, ConfigError, Differs, Interrupted
from .operations.ui import Stop

FORMATS = click.Choice(["text", "markdown", "json"])
T = TypeVar("T")


# -- one mapping of errors to exit codes ---------------------------------------------------


class BlocklistGroup(click.Group):
    """The group every command runs under: expected failures become one line on
    stderr (every problem of the desired state, with GitHub annotations in Actions)
    and their error's exit code; nothing expected ends in a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for p in exc.problems:
                click.echo(str(p), err=True)
            if ci.in_github_actions():
                for p in exc.problems:
                    click.echo(ci.annotation(p))
            n = len(exc.problems)
            click.echo(f"Error: {n} problem{'s' if n != 1 else ''} in the desired state", err=True)
            raise click.exceptions.Exit(1) from None
        except Interrupted as exc:
            click.echo(f"Interrupted ({exc.signal}).", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except BlocklistError as exc:
            click.echo(f"Error: {exc}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None


# -- shared options -------------------------------------------------------------------------


def dir_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-C",
        "--dir",
        "directory",
        default="blocklists",
        show_default=True,
        envvar="BLOCKLIST_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory holding providers.yaml and the lists.",
    )(fn)


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--no-color", is_flag=True, help="No colour (also when NO_COLOR is set, non-empty)."
    )(fn)
    fn = click.option("-v", "--verbose", is_flag=True, help="More detail, incl. unmanaged lines.")(
        fn
    )
    fn = click.option(
        "--mask-numbers", is_flag=True, help="Show +91987*****10 instead of full numbers."
    )(fn)
    return fn


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--target",
        "targets",
        multiple=True,
        help="Only this target (PROVIDER/SCOPE) or provider; repeatable.",
    )(fn)
    fn = click.option("--at", "at", help="Plan as of this time (ISO, with zone), not now.")(fn)
    return fn


def parse_at(at: str | None) -> dt.datetime:
    from .expiry import parse_timestamp

    if at is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        return parse_timestamp(at)
    except ValueError as exc:
        raise BlocklistError(f"--at: {exc}") from None


def setup_logging(verbose: bool) -> None:
    if verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
        # their debug lines carry full URLs and headers, and asyncio's says which
        # selector it uses: neither is for a person reading a plan
        for noisy in ("httpx", "httpcore", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def run_async(
    make: Callable[[Stop], Coroutine[Any, Any, T]], *, graceful: bool = False
) -> tuple[T, str | None]:
    """Run an operation; (its result, the signal that asked it to stop, if any).

    SIGINT (Ctrl-C) and SIGTERM (what a CI runner sends on cancel) are handled alike.
    A ``graceful`` operation (apply) gets a stop event on the first signal and
    finishes the requests in flight, records them and reports; a second signal, or
    any signal to another operation, stops at once (``Interrupted``)."""
    received: list[str] = []

    async def main() -> T:
        stop = Stop()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(name: str) -> None:
            received.append(name)
            if graceful and not stop.is_set():
                click.echo(f"\n{name}: finishing the requests in flight…", err=True)
                stop.set(name)
            else:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal, sig.name)
        return await make(stop)

    try:
        result = asyncio.run(main())
    except asyncio.CancelledError:
        raise Interrupted(received[-1] if received else "SIGINT") from None
    return result, (received[0] if received else None)


def terminal_ui(
    no_color: bool,
    mask: bool = False,
    verbose: bool = False,
    allow_unsafe: bool = False,
    *,
    full: bool = False,
    by: str = "number",
) -> Any:
    from .views.terminal import TerminalUI, color_wanted

    return TerminalUI(
        color=color_wanted(no_color),
        mask=mask,
        verbose=verbose,
        allow_unsafe=allow_unsafe,
        full=full,
        by=by,
    )


def echo_plan(
    plan: Any, fmt: str, *, color: bool, mask: bool, verbose: bool, full: bool, by: str = "number"
) -> None:
    """Print a plan in ``fmt`` and a newline; JSON is streamed in blocks (a plan of a
    million numbers is hundreds of megabytes of it, never built whole)."""
    from .views.plan import render_markdown, render_text, write_json

    if fmt == "json":
        write_json(plan, lambda text: click.echo(text, nl=False), mask=mask)
        click.echo()
    elif fmt == "markdown":
        click.echo(render_markdown(plan, mask=mask, by=by))
    else:
        max_lines = None if full else 50
        click.echo(
            render_text(plan, color=color, mask=mask, verbose=verbose, max_lines=max_lines, by=by)
        )


def layout_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--full`` and ``--by`` of the commands that render a plan (plan, show, and
    apply for the plan it shows before asking)."""
    fn = click.option(
        "--by",
        "by",
        type=click.Choice(["number", "target"]),
        default="number",
        show_default=True,
        help="One line per number naming its targets, or one block per target.",
    )(fn)
    fn = click.option("--full", is_flag=True, help="Every change line in text (no '…and N more').")(
        fn
    )
    return fn


# -- commands -----------------------------------------------------------------------------


@click.group(cls=BlocklistGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blocklist")
def main() -> None:
    """Declarative blocklist-as-code: plan and apply phone blocklists across providers."""


@main.command()
@dir_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def validate(directory: Path, fmt: str) -> None:
    """Check the desired state offline: schema, numbers, duplicates, conflicts, protected."""
    from .desired import load_desired

    try:
        desired = load_desired(directory, str(directory))
    except ConfigError as exc:
        if fmt != "json":
            raise
        problems = [p.__dict__ for p in exc.problems]
        click.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
        if ci.in_github_actions():
            for p in exc.problems:
                click.echo(ci.annotation(p), err=True)
        raise click.exceptions.Exit(1) from None
    summary = {
        "files": desired.files,
        "lists": len(desired.lists),
        "numbers": desired.numbers,
        "targets": len(desired.targets),
    }
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "problems": [], **summary}, indent=2))
    else:
        click.echo(
            f"Valid: {summary['files']} files, {summary['lists']} lists, "
            f"{summary['numbers']} numbers, {summary['targets']} targets."
        )


@main.command()
@click.option(
    "--out",
    "out_dir",
    default="schemas",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
def schema(out_dir: Path) -> None:
    """Write the JSON Schemas (providers.yaml, list files, plan files, apply reports)."""
    from .schemas import write_schemas

    for path in write_schemas(out_dir):
        click.echo(f"wrote {path}")


@main.command()
@dir_option
@target_options
@output_options
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan."
)
@click.option(
    "--compare",
    "compare",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Show how the plan now differs from this saved (reviewed) plan; exit 4 if it does.",
)
@layout_options
@click.option(
    "--refresh",
    "refresh",
    type=click.BOOL,
    default=True,
    show_default=True,
    help="--refresh=false: plan against state alone, calling no provider and needing no "
    "credential (a fork's pull request); such a plan is labelled and never applied.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 no changes, 2 changes, 3 changes with an unsafe target.",
)
def plan(
    directory: Path,
    targets: tuple[str, ...],
    at: str | None,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
    fmt: str,
    out: Path | None,
    compare: Path | None,
    full: bool,
    by: str,
    refresh: bool,
    detailed_exitcode: bool,
) -> None:
    """Refresh live state and print the plan."""
    from .operations.plan import PlanOptions, run_plan
    from .views.terminal import color_wanted

    setup_logging(verbose)
    if compare is not None:
        _compare(directory, compare, fmt, mask_numbers)
        return
    options = PlanOptions(directory, targets, parse_at(at), digest=out is not None, refresh=refresh)
    ui = terminal_ui(no_color)
    result, _ = run_async(lambda stop: run_plan(options, ui))
    the_plan = result.plan
    color = color_wanted(no_color)
    echo_plan(the_plan, fmt, color=color, mask=mask_numbers, verbose=verbose, full=full, by=by)
    if out is not None:
        from .planfile import save_plan

        try:
            save_plan(the_plan, out)
        except OSError as exc:
            raise BlocklistError(f"cannot write the plan to {out}: {exc.strerror or exc}") from None
        click.echo(f"Saved the plan to {out}; apply it with: blocklist apply {out}", err=True)
    if ci.in_github_actions():
        from .views.plan import render_markdown

        ci.append_step_summary(render_markdown(the_plan, mask=mask_numbers, by=by))
    if detailed_exitcode and the_plan.has_changes:
        raise click.exceptions.Exit(2 if the_plan.safe else 3)


def _compare(directory: Path, reviewed_file: Path, fmt: str, mask: bool) -> None:
    """``plan --compare``: the plan now, for the reviewed plan's targets and ``now``."""
    from .operations.plan import PlanOptions, run_plan
    from .plancompare import compare_plans
    from .planfile import load_plan
    from .views.compare import render_comparison

    reviewed = load_plan(reviewed_file)
    names = tuple(dict.fromkeys(tp.target.name for tp in reviewed.targets))
    options = PlanOptions(directory, names, reviewed.now, digest=True)
    result, _ = run_async(lambda stop: run_plan(options, terminal_ui(True)))
    fresh = result.plan
    differences = compare_plans(
        reviewed, fresh, digests=(reviewed.desired_digest, fresh.desired_digest)
    )
    click.echo(render_comparison(differences, reviewed_file, fmt=fmt, mask=mask))
    if ci.in_github_actions():
        ci.append_step_summary(
            render_comparison(differences, reviewed_file, fmt="markdown", mask=mask)
        )
    if differences:
        raise Differs(f"the plan now differs from {reviewed_file} ({len(differences)} differences)")


@main.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@output_options
@click.option("--format", "fmt", type=FORMATS, default="text")
@layout_options
def show(
    planfile: Path,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
    fmt: str,
    full: bool,
    by: str,
) -> None:
    """Render a saved plan without touching any provider."""
    from .planfile import load_plan
    from .views.terminal import color_wanted

    the_plan = load_plan(planfile)
    color = color_wanted(no_color)
    echo_plan(the_plan, fmt, color=color, mask=mask_numbers, verbose=verbose, full=full, by=by)


@main.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@dir_option
@target_options
@output_options
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--allow-unsafe", is_flag=True, help="Apply even if a safety threshold is crossed.")
@click.option(
    "--lock-timeout",
    type=float,
    default=None,
    help="Seconds to wait for the state lock (default: fail at once).",
)
@click.option(
    "--init-state",
    is_flag=True,
    help="Start a new state where the state file is empty (a new lineage: every number "
    "the old state managed becomes unmanaged).",
)
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON."
)
@layout_options
def apply(
    planfile: Path | None,
    directory: Path,
    targets: tuple[str, ...],
    at: str | None,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
    auto_approve: bool,
    allow_unsafe: bool,
    lock_timeout: float | None,
    init_state: bool,
    report: Path | None,
    full: bool,
    by: str,
) -> None:
    """Apply a saved plan (only if it is still the plan), or plan now and ask.

    With PLANFILE and --target, only the saved plan's changes for those targets
    are checked and applied."""
    from .operations.apply import ApplyOptions, run_apply
    from .views.report import render_report

    setup_logging(verbose)
    if planfile is None and not auto_approve and not sys.stdin.isatty():
        raise BlocklistError(
            "apply needs --auto-approve when stdin is not a terminal (or a saved PLANFILE)"
        )
    options = ApplyOptions(
        directory=directory,
        planfile=planfile,
        targets=targets,
        now=parse_at(at) if at else None,
        auto_approve=auto_approve,
        allow_unsafe=allow_unsafe,
        lock_timeout=lock_timeout,
        init_state=init_state,
    )
    ui = terminal_ui(no_color, mask_numbers, verbose, allow_unsafe, full=full, by=by)
    result, stopped_by = run_async(lambda stop: run_apply(options, ui, stop), graceful=True)
    if result.cancelled:
        click.echo("Apply cancelled.")
        return
    the_report = result.report
    if the_plan_has_writes(result):
        click.echo(render_report(the_report, mask=mask_numbers))
    elif not the_report.failures:
        click.echo("No changes: nothing to apply.")
    if report is not None:
        from .atomic import write_atomic

        write_atomic(report, json.dumps(the_report.to_dict(), indent=2) + "\n")
    if the_report.interrupted:
        raise Interrupted(stopped_by or "SIGINT")
    if not the_report.ok:
        raise click.exceptions.Exit(1)


def the_plan_has_writes(result: Any) -> bool:
    return result.plan is not None and result.plan.has_changes


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def providers(fmt: str) -> None:
    """Provider types with their capabilities and limits."""
    from .providers import adapter_class, provider_types
    from .views.providers import render_providers

    caps = {name: adapter_class(name).capabilities.to_dict() for name in provider_types()}
    click.echo(render_providers(caps, fmt=fmt))


@main.command()
@dir_option
@click.option("--port", type=int, default=8701, show_default=True, help="First port (0: any).")
@click.option(
    "--faults",
    default=None,
    help="Fault spec, e.g. '5xx=0.1,429=0.05,seed=7'; "
    "per provider type: 'TYPE:5xx=0.1;TYPE:drop=0.05'.",
)
@click.option(
    "--dialect",
    default=None,
    envvar="BLOCKLIST_SANDBOX_DIALECT",
    help="How emulators answer where the docs are silent: a dialect NAME for every "
    "emulator that has it, or 'TYPE:NAME;TYPE:NAME'. --list-dialects shows them.",
)
@click.option("--list-dialects", is_flag=True, help="List every emulator's dialects and exit.")
@click.option("--reset", is_flag=True, help="Reseed the sandbox state and exit.")
def sandbox(
    directory: Path,
    port: int,
    faults: str | None,
    dialect: str | None,
    list_dialects: bool,
    reset: bool,
) -> None:
    """Serve the provider emulators on loopback for anything that wants real HTTP."""
    from .sandbox.cli import dialect_help, reset_sandbox, serve_sandbox

    if list_dialects:
        click.echo(dialect_help())
        return
    if reset:
        for line in reset_sandbox(directory):
            click.echo(line)
        return
    serve_sandbox(directory, port, faults, click.echo, dialect)


@main.command("import")
@click.argument("target")
@dir_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The list file to write, inside -C (default: DIR/imported-PROVIDER-SCOPE.yaml).",
)
@click.option("--force", is_flag=True, help="Overwrite the file(s) if they exist.")
@click.option(
    "--adopt-now",
    is_flag=True,
    help="Also record the entries in state at once (no plan, no review), as before.",
)
@click.option("--at", "at", help="Time written in the header (ISO, with zone), not now.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request.")
def import_(
    target: str,
    directory: Path,
    out: Path | None,
    force: bool,
    adopt_now: bool,
    at: str | None,
    verbose: bool,
) -> None:
    """Write the live entries of TARGET as a list file; the next plan adopts them.

    TARGET is INSTANCE/SCOPE-VALUE as plans name targets (INSTANCE/account for a
    type without scope), declared by a list or not yet; or a provider instance with one
    target. Opt-outs (the users' own), numbers a list already declares and
    protected numbers are not imported. Entries with different provider
    attributes (e.g. reject types) go to one file each (-ATTRIBUTE suffix).
    State is not written: commit the file, and the next plan shows its entries
    as adopt (apply records them, with no API call), as Terraform's import blocks
    do; --adopt-now records them at once instead. A provider that cannot list its
    entries has nothing to import: declare its numbers in a list and apply instead.
    """
    from .operations.imports import ImportOptions, run_import

    setup_logging(verbose)
    options = ImportOptions(
        directory=directory,
        target=target,
        out=out,
        force=force,
        now=parse_at(at),
        adopt_now=adopt_now,
    )
    result, _ = run_async(lambda stop: run_import(options, terminal_ui(True)))
    for line in result.describe():
        click.echo(line)


@main.command()
@click.argument("number")
@dir_option
@target_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--mask-numbers", is_flag=True, help="Show +91987*****10 instead of full numbers.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request.")
def why(
    number: str,
    directory: Path,
    targets: tuple[str, ...],
    at: str | None,
    fmt: str,
    mask_numbers: bool,
    verbose: bool,
) -> None:
    """Everything known of NUMBER: the lists and targets that declare it, its live
    status per target, its state record and the applies of the audit log, opt-out
    and protected status. NUMBER may be written as any list writes it (national
    numbers are read with the lists' default_region). Reads only; exit 1 if a
    provider could not be read."""
    from .operations.why import WhyOptions, run_why
    from .views.why import render_why

    setup_logging(verbose)
    options = WhyOptions(directory, number, targets, parse_at(at))
    report, _ = run_async(lambda stop: run_why(options, terminal_ui(True)))
    click.echo(render_why(report, fmt=fmt, mask=mask_numbers))
    for error in report.errors:
        click.echo(f"Error: live state of {error}", err=True)
    if report.errors:
        raise click.exceptions.Exit(1)


@main.command()
@dir_option
@target_options
@output_options
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.option(
    "--expiring-within",
    "window",
    default="14d",
    show_default=True,
    help="Report declared entries expiring within this long (e.g. 14d, 2w, 36h).",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when clean, 2 when there are findings."
)
@click.option("--strict", is_flag=True, help="Unmanaged entries count as findings too.")
def audit(
    directory: Path,
    targets: tuple[str, ...],
    at: str | None,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
    fmt: str,
    window: str,
    detailed_exitcode: bool,
    strict: bool,
) -> None:
    """Read-only report: drift, mismatches, unapplied, expired-but-live, expiring soon,
    pending removes, stale state and unmanaged entries (informational unless --strict).
    Never writes to a provider or to state."""
    from .operations.audit import AuditOptions, run_audit
    from .views.audit import render, render_markdown

    setup_logging(verbose)
    options = AuditOptions(
        directory=directory, targets=targets, now=parse_at(at), window=window, strict=strict
    )
    report, _ = run_async(lambda stop: run_audit(options, terminal_ui(no_color)))
    click.echo(render(report, fmt, mask=mask_numbers, verbose=verbose))
    if ci.in_github_actions():
        ci.append_step_summary(render_markdown(report, mask=mask_numbers))
    if detailed_exitcode and not report.clean:
        raise click.exceptions.Exit(2)


# -- editing lists: block, unblock, fmt, expiring ---------------------------------------


def edit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What ``block`` and ``unblock`` share: the list, the directory, --apply."""
    for option in reversed(
        [
            click.argument("numbers", nargs=-1),
            click.option(
                "--list", "list_name", required=True, help="The list to edit (its name: field)."
            ),
            dir_option,
            click.option(
                "--apply",
                "apply_now",
                is_flag=True,
                help="Break-glass: apply just these numbers' changes to the list's targets "
                "now (every safety rule of apply holds); commit the edited file afterwards.",
            ),
            click.option("--dry-run", is_flag=True, help="Print the diff; write nothing."),
            click.option(
                "--allow-unsafe",
                is_flag=True,
                help="With --apply: apply even if a safety threshold or policy is crossed.",
            ),
            click.option(
                "--lock-timeout",
                type=float,
                default=None,
                help="With --apply: seconds to wait for the state lock (default: fail at once).",
            ),
            click.option("--at", "at", help="Today for --ttl, now for --apply (ISO, with zone)."),
            output_options,
        ]
    ):
        fn = option(fn)
    return fn


def _numbers_arg(numbers: tuple[str, ...]) -> tuple[str, ...]:
    """NUMBER... with ``-`` read from stdin (one number a line, ``#`` comments)."""
    if "-" not in numbers:
        return numbers
    from .operations.block import numbers_from_lines

    stdin = numbers_from_lines(sys.stdin)
    return tuple(n for given in numbers for n in (stdin if given == "-" else [given]))


def _edit(options: Any, apply_now: bool, no_color: bool, mask: bool, verbose: bool) -> None:
    from .operations.block import break_glass, edit_list
    from .views.edit import render_edit
    from .views.report import render_report
    from .views.terminal import color_wanted

    setup_logging(verbose)
    if apply_now and options.dry_run:
        raise BlocklistError("--apply and --dry-run cannot be combined")
    result = edit_list(options)
    click.echo(render_edit(result, color=color_wanted(no_color), mask=mask))
    if not apply_now:
        return
    ui = terminal_ui(no_color, mask, verbose, options.allow_unsafe)
    done, stopped_by = run_async(lambda stop: break_glass(options, result, ui, stop), graceful=True)
    if done.plan.has_changes:
        click.echo(render_report(done.report, mask=mask))
    else:
        click.echo("Break-glass: nothing to apply (the providers hold these numbers already).")
    if result.written:
        click.echo(
            f"Commit {result.file}: it is the catch-up change of this break-glass apply.",
            err=True,
        )
    if done.report.interrupted:
        raise Interrupted(stopped_by or "SIGINT")
    if not done.report.ok:
        raise click.exceptions.Exit(1)


@main.command()
@edit_options
@click.option("--reason", help="The entry's reason (else the list's default).")
@click.option("--ticket", help="The entry's ticket (metadata: kept, never sent).")
@click.option("--expires", help="Expiry: a date (UTC midnight) or an ISO datetime with a zone.")
@click.option("--ttl", help="Expire this long after today (e.g. 30d, 12w, 6mo): added + ttl.")
def block(
    numbers: tuple[str, ...],
    list_name: str,
    directory: Path,
    apply_now: bool,
    dry_run: bool,
    allow_unsafe: bool,
    lock_timeout: float | None,
    at: str | None,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
    reason: str | None,
    ticket: str | None,
    expires: str | None,
    ttl: str | None,
) -> None:
    """Add NUMBER... to a list file in place (comments and layout kept), validate the
    result and print the diff. A number the list has already is updated, never
    repeated. NUMBER may be written in any form the list's default_region reads;
    '-' reads numbers from stdin, one a line. With --apply, the numbers are blocked on
    the list's targets at once (break-glass, recorded in the audit log with the actor):
    commit the edited file as the catch-up change."""
    from .operations.block import BlockOptions

    options = BlockOptions(
        directory=directory,
        list_name=list_name,
        numbers=_numbers_arg(numbers),
        reason=reason,
        ticket=ticket,
        expires=expires,
        ttl=ttl,
        now=parse_at(at) if at else None,
        dry_run=dry_run,
        allow_unsafe=allow_unsafe,
        lock_timeout=lock_timeout,
    )
    _edit(options, apply_now, no_color, mask_numbers, verbose)


@main.command()
@edit_options
def unblock(
    numbers: tuple[str, ...],
    list_name: str,
    directory: Path,
    apply_now: bool,
    dry_run: bool,
    allow_unsafe: bool,
    lock_timeout: float | None,
    at: str | None,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
) -> None:
    """Remove NUMBER... from a list file in place, validate the result and print the
    diff; a number the list does not declare is an error (nothing is changed). With
    --apply, the numbers are removed from the list's targets at once (break-glass)."""
    from .operations.block import BlockOptions

    options = BlockOptions(
        directory=directory,
        list_name=list_name,
        numbers=_numbers_arg(numbers),
        unblock=True,
        now=parse_at(at) if at else None,
        dry_run=dry_run,
        allow_unsafe=allow_unsafe,
        lock_timeout=lock_timeout,
    )
    _edit(options, apply_now, no_color, mask_numbers, verbose)


@main.command("fmt")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@dir_option
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; print the diff and exit 1 if anything would change.",
)
@click.option("--diff", "show_diff", is_flag=True, help="Print the diff of what is written.")
@click.option(
    "--prune-expired", is_flag=True, help="Remove entries whose expiry has passed (now, or --at)."
)
@click.option(
    "--prune-only",
    is_flag=True,
    help="Only remove expired entries, change nothing else (implies --prune-expired).",
)
@click.option(
    "--raw-comments",
    is_flag=True,
    help="Keep the form a number was written in as a comment on its line.",
)
@click.option("--at", "at", help="Prune as of this time (ISO, with zone), not now.")
@click.option("--no-color", is_flag=True, help="No colour (also when NO_COLOR is set).")
def fmt_command(
    files: tuple[Path, ...],
    directory: Path,
    check: bool,
    show_diff: bool,
    prune_expired: bool,
    prune_only: bool,
    raw_comments: bool,
    at: str | None,
    no_color: bool,
) -> None:
    """Write list files in canonical form, like terraform fmt: numbers in E.164
    (double-quoted), long entries' keys in order (number, reason, expires, added, ttl,
    then metadata), comments kept. FILE... are files or directories (default: -C).
    providers.yaml and other files that are not lists are left alone."""
    from .operations.fmt import FmtOptions, run_fmt
    from .views.edit import render_fmt
    from .views.terminal import color_wanted

    options = FmtOptions(
        directory=directory,
        files=files,
        check=check,
        prune_expired=prune_expired,
        prune_only=prune_only,
        raw_comments=raw_comments,
        now=parse_at(at) if at else None,
    )
    result = run_fmt(options)
    click.echo(render_fmt(result, color=color_wanted(no_color), show_diff=check or show_diff))
    if check and result.changed:
        raise click.exceptions.Exit(1)


@main.command()
@dir_option
@click.option("--within", "window", default="14d", show_default=True, help="e.g. 14d, 2w, 36h.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.option("--at", "at", help="As of this time (ISO, with zone), not now.")
@click.option("--mask-numbers", is_flag=True, help="Show +91987*****10 instead of full numbers.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when an entry has expired (fmt --prune-expired would remove it), else 0.",
)
def expiring(
    directory: Path,
    window: str,
    fmt: str,
    at: str | None,
    mask_numbers: bool,
    detailed_exitcode: bool,
) -> None:
    """Declared entries that have expired, or expire within --within, with their
    tickets and lines: what to prune and what to renew. Offline."""
    from .operations.expiry import ExpiryOptions, run_expiring
    from .views.expiry import render_expiry

    report = run_expiring(ExpiryOptions(directory, parse_at(at), window))
    click.echo(render_expiry(report, fmt, mask=mask_numbers))
    if detailed_exitcode and report.expired:
        raise click.exceptions.Exit(2)


# -- state --------------------------------------------------------------------------------


@main.group()
def state() -> None:
    """Inspect and edit what this tool remembers it manages (no provider is called)."""


def _confirm(yes: bool) -> Callable[[str, str], bool]:
    """``--yes``, else a y/N question on a terminal, else the operation's refusal."""

    def ask(question: str, refusal: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise BlocklistError(refusal)
        return click.confirm(question, default=False)

    return ask


@state.command("list")
@dir_option
@click.option("--target", "targets", multiple=True, help="Only this target; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--mask-numbers", is_flag=True)
def state_list(directory: Path, targets: tuple[str, ...], fmt: str, mask_numbers: bool) -> None:
    """Managed numbers per target (pending removes are marked)."""
    from .operations.state import list_state
    from .views.state import render_listing

    click.echo(render_listing(list_state(directory, targets), fmt=fmt, mask=mask_numbers))


@state.command("show")
@click.argument("number")
@dir_option
def state_show(number: str, directory: Path) -> None:
    """Where a number is managed, with its recorded attributes."""
    from .operations.state import find_number
    from .views.state import render_found

    e164, found = find_number(directory, number)
    if not found:
        raise BlocklistError(f"{e164} is not in state")
    click.echo(render_found(found))


@state.command("rm")
@click.argument("number")
@click.option("--target", "target", required=True, help="The target to forget it from.")
@dir_option
def state_rm(number: str, target: str, directory: Path) -> None:
    """Forget a number in state without any API call."""
    from .operations.state import forget_number

    e164 = forget_number(directory, number, target)
    click.echo(f"Forgot {e164} for {target} (no provider was called).")


@state.command("mv")
@click.argument("source")
@click.argument("destination")
@dir_option
def state_mv(source: str, destination: str, directory: Path) -> None:
    """Give SOURCE's managed entries to the target DESTINATION (e.g. after renaming a
    group in the lists), so the next plan adopts nothing and removes nothing."""
    from .operations.state import move_target

    n = move_target(directory, source, destination)
    click.echo(f"Moved {n} managed entries from {source} to {destination} (no provider called).")


@state.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@dir_option
def state_export(file: Path, directory: Path) -> None:
    """Write the whole state as JSON (to move it between backends)."""
    from .operations.state import export_state

    lineage, serial = export_state(directory, file)
    click.echo(f"Exported state (lineage {lineage}, serial {serial}) to {file}")


@state.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@dir_option
@click.option("--yes", "-y", is_flag=True, help="Replace the current state without asking.")
def state_import(file: Path, directory: Path, yes: bool) -> None:
    """Replace the state with a JSON export (keeps the export's lineage)."""
    from .operations.state import import_state

    done = import_state(directory, file, _confirm(yes))
    if done is None:
        raise click.exceptions.Exit(1)
    lineage, serial = done
    click.echo(f"Imported {file} (lineage {lineage}, serial {serial})")


@state.command("unlock")
@dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def state_unlock(directory: Path, yes: bool) -> None:
    """Break a stale apply lock."""
    from .operations.state import unlock

    holder, broken = unlock(directory, _confirm(yes))
    if holder is None:
        click.echo("State is not locked.")
    elif broken:
        click.echo(f"Broke the lock held by {holder.describe()}.")
    else:
        raise click.exceptions.Exit(1)


def entry() -> None:
    """The ``blocklist`` command: ``main``, then, once the command is done, an exit that
    does not free every object one by one (mypy's ``fast_exit`` does the same): a plan
    of 100 000 numbers spent 0.2-0.3 s of its 1.5 s on that. Only with no other thread
    running, after the ``atexit`` handlers and with the output flushed (``exit_code``);
    otherwise Python's usual exit."""
    try:
        main()
    except SystemExit as done:
        code = exit_code(done.code)
        if code is not None:
            os._exit(code)
        raise


def exit_code(code: object) -> int | None:
    """The exit status ``SystemExit(code)`` means, with the output flushed and the
    ``atexit`` handlers run; None where the process must exit as usual: a message as
    the code (Python prints it), another thread running, output that cannot be
    flushed (a closed pipe: Python reports it), an interpreter without the hook."""
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
        return None
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None or threading.active_count() != 1:
        return None
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return None
    run_exit_functions()  # and forgets them: an exit as usual after it runs none again
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    return code or 0


if __name__ == "__main__":  # python -m reconciler.cli
    entry()
