"""The command line: thin shells that parse options, call one library function,
render its result and map known errors to exit codes.

Exit codes: 0 success; 1 any error (one-line cause, never a traceback for bad
input, bad credentials or an unreachable provider); ``plan
--detailed-exitcode``: 2 changes, 3 changes including an unsafe target;
4 a stale saved plan; 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import BlocklistError, ConfigError, StalePlanError, StateError, UnsafePlanError

FORMATS = click.Choice(["text", "markdown", "json"])


# -- shared plumbing ----------------------------------------------------------------------


def fail(message: str, code: int = 1) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures become one line on stderr and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for p in exc.problems:
                click.echo(str(p), err=True)
            if os.environ.get("GITHUB_ACTIONS") == "true":
                for p in exc.problems:
                    click.echo(github_annotation(p))
            n = len(exc.problems)
            click.echo(f"Error: {n} problem{'s' if n != 1 else ''} in the desired state", err=True)
            sys.exit(1)
        except BlocklistError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


def github_annotation(problem: Any) -> str:
    message = str(problem.message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::error file={problem.file},line={problem.line},col={problem.col}::{message}"


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
    fn = click.option("--no-color", is_flag=True, help="No colour (also when NO_COLOR is set).")(fn)
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


def use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def parse_at(at: str | None) -> dt.datetime:
    from .expiry import parse_timestamp

    if at is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        return parse_timestamp(at)
    except ValueError as exc:
        raise BlocklistError(f"--at: {exc}") from None


def setup_logging(verbose: bool) -> None:
    import logging

    if verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
        for noisy in ("httpx", "httpcore"):  # their debug lines carry full URLs and headers
            logging.getLogger(noisy).setLevel(logging.WARNING)


def run_async(coro_fn: Callable[[asyncio.Event], Any]) -> Any:
    """Run a coroutine; the first Ctrl-C sets the stop event (finish what is in flight)."""

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            click.echo("\nInterrupted: finishing the requests in flight…", err=True)
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        return await coro_fn(stop)

    return asyncio.run(main())


def render(plan: Any, fmt: str, *, color: bool, mask: bool, verbose: bool) -> str:
    from .render import render_json, render_markdown, render_text

    if fmt == "json":
        return render_json(plan, mask=mask)
    if fmt == "markdown":
        return render_markdown(plan, mask=mask)
    return render_text(plan, color=color, mask=mask, verbose=verbose)


def append_step_summary(plan: Any, mask: bool) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if os.environ.get("GITHUB_ACTIONS") == "true" and path:
        from .render import render_markdown

        with open(path, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(plan, mask=mask) + "\n")


# -- commands -----------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blocklist")
def main() -> None:
    """Declarative blocklist-as-code: plan and apply phone blocklists across providers."""


@main.command()
@dir_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def validate(directory: Path, fmt: str) -> None:
    """Check the desired state offline: schema, numbers, duplicates, conflicts, protected."""
    from .desired import load_desired

    try:
        desired = load_desired(directory, str(directory))
    except ConfigError as exc:
        if fmt == "json":
            problems = [p.__dict__ for p in exc.problems]
            click.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
            if os.environ.get("GITHUB_ACTIONS") == "true":
                for p in exc.problems:
                    click.echo(github_annotation(p), err=True)
            sys.exit(1)
        raise
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
@handle_errors
def schema(out_dir: Path) -> None:
    """Write the JSON Schemas of providers.yaml and list files (generated from the models)."""
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
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 no changes, 2 changes, 3 changes with an unsafe target.",
)
@handle_errors
def plan(
    directory: Path,
    targets: tuple[str, ...],
    at: str | None,
    no_color: bool,
    verbose: bool,
    mask_numbers: bool,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
) -> None:
    """Refresh live state and print the plan."""
    from .connections import Connections
    from .desired import load_desired
    from .runner import make_plan, open_run_state, select_targets, stderr_progress

    setup_logging(verbose)
    desired = load_desired(directory, str(directory))
    chosen = select_targets(desired, targets)
    now = parse_at(at)
    state = open_run_state(desired.config, directory, create=False)
    try:

        async def go(stop: asyncio.Event) -> Any:
            async with Connections(desired.config, directory) as conns:
                return await make_plan(desired, conns, chosen, state, now, stderr_progress)

        the_plan = run_async(go)
    finally:
        if state is not None:
            state.close()
    click.echo(render(the_plan, fmt, color=use_color(no_color), mask=mask_numbers, verbose=verbose))
    if out is not None:
        from .planfile import save_plan

        the_plan.desired_digest = desired.digest()
        save_plan(the_plan, out)
        click.echo(f"Saved the plan to {out}; apply it with: blocklist apply {out}", err=True)
    append_step_summary(the_plan, mask_numbers)
    if detailed_exitcode and the_plan.has_changes:
        sys.exit(2 if the_plan.safe else 3)


@main.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@output_options
@click.option("--format", "fmt", type=FORMATS, default="text")
@handle_errors
def show(planfile: Path, no_color: bool, verbose: bool, mask_numbers: bool, fmt: str) -> None:
    """Render a saved plan without touching any provider."""
    from .planfile import load_plan

    the_plan = load_plan(planfile)
    click.echo(render(the_plan, fmt, color=use_color(no_color), mask=mask_numbers, verbose=verbose))


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
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON."
)
@handle_errors
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
    report: Path | None,
) -> None:
    """Apply a saved plan, or plan now and ask y/N."""
    from .runner import ApplyOptions, run_apply

    setup_logging(verbose)
    if planfile is None and not auto_approve and not sys.stdin.isatty():
        fail("apply needs --auto-approve when stdin is not a terminal (or a saved PLANFILE)")
    options = ApplyOptions(
        directory=directory,
        planfile=planfile,
        targets=targets,
        now=parse_at(at),
        auto_approve=auto_approve,
        allow_unsafe=allow_unsafe,
        lock_timeout=lock_timeout,
        color=use_color(no_color),
        mask=mask_numbers,
        verbose=verbose,
        confirm=lambda: click.confirm("Apply these changes?", default=False),
        echo=click.echo,
    )
    result = run_async(lambda stop: run_apply(options, stop))
    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if result.interrupted:
        sys.exit(130)
    if not result.ok:
        sys.exit(1)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def providers(fmt: str) -> None:
    """Provider types with their capabilities and limits."""
    from .providers import PROVIDER_TYPES, adapter_class

    caps = {name: adapter_class(name).capabilities.to_dict() for name in PROVIDER_TYPES}
    if fmt == "json":
        click.echo(json.dumps(caps, indent=2))
        return
    for name, c in caps.items():
        ops = ", ".join(k for k in ("list", "add", "remove") if c[f"can_{k}"])
        remove = "one per call" if c["remove_one_per_call"] else f"≤{c['batch_limit']} per request"
        click.echo(f"{name}")
        click.echo(f"  can:          {ops}")
        click.echo(f"  batch limit:  {c['batch_limit']} numbers per request; removes {remove}")
        click.echo(f"  removes by:   {c['remove_by']}")
        click.echo(f"  concurrency:  {c['concurrency_limit']} requests in flight")
        click.echo(
            f"  expiry:       {'native' if c['native_expiry'] else 'emulated (removed when expired)'}"
        )
        scope = ", ".join(c["scope_fields"]) or "(account)"
        click.echo(f"  scope:        {scope}")
        if c["attribute_fields"]:
            click.echo(f"  attributes:   {', '.join(c['attribute_fields'])}")
        click.echo(f"  credentials:  {', '.join(c['credential_keys'])}")
        click.echo(f"  base URL:     {c['default_base_url']}")
        click.echo(f"  wire format:  {c['wire_format']}")


@main.command()
@dir_option
@click.option("--port", type=int, default=8701, show_default=True, help="First port (0: any).")
@click.option(
    "--faults",
    default=None,
    help="Fault spec, e.g. '5xx=0.1,429=0.05,seed=7'; "
    "per provider: 'wooxy:5xx=0.1;kaleyra:drop=0.05'.",
)
@click.option(
    "--dialect",
    default=None,
    envvar="BLOCKLIST_SANDBOX_DIALECT",
    help="How emulators answer where the docs are silent: a dialect NAME for every "
    "emulator that has it, or 'wooxy:NAME;lox24:NAME'. --list-dialects shows them.",
)
@click.option("--list-dialects", is_flag=True, help="List every emulator's dialects and exit.")
@click.option("--reset", is_flag=True, help="Reseed the sandbox state and exit.")
@handle_errors
def sandbox(
    directory: Path,
    port: int,
    faults: str | None,
    dialect: str | None,
    list_dialects: bool,
    reset: bool,
) -> None:
    """Serve the provider emulators on loopback for anything that wants real HTTP."""
    from .sandboxcli import dialect_help, reset_sandbox, serve_sandbox

    if list_dialects:
        click.echo(dialect_help())
        return
    if reset:
        for line in reset_sandbox(directory):
            click.echo(line)
        return
    serve_sandbox(directory, port, faults, click.echo, dialect)


# -- import and audit ---------------------------------------------------------------------


@main.command("import")
@click.argument("target")
@dir_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The list file to write, inside -C (default: DIR/imported-PROVIDER-SCOPE.yaml).",
)
@click.option("--force", is_flag=True, help="Overwrite the file(s) if they exist.")
@click.option("--at", "at", help="Time written in the header (ISO, with zone), not now.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request.")
@handle_errors
def import_(
    target: str, directory: Path, out: Path | None, force: bool, at: str | None, verbose: bool
) -> None:
    """Write the live entries of TARGET as a list file and adopt them into state.

    TARGET is PROVIDER/SCOPE as plans name targets (kaleyra/sms, wooxy/account,
    lox24/7116), declared by a list or not yet; or a provider instance with one
    target. Opt-outs (the users' own), numbers a list already declares and
    protected numbers are not imported. Entries with different provider
    attributes (Wooxy reject types) go to one file each (-ATTRIBUTE suffix).
    The entries are recorded in state without any API call, so the next plan
    shows no changes for them. A provider that cannot list (Ozonetel) has
    nothing to import: declare its numbers in a list and apply instead.
    """
    from .importer import ImportOptions, run_import
    from .runner import stderr_progress

    setup_logging(verbose)
    options = ImportOptions(
        directory=directory, target=target, out=out, force=force, now=parse_at(at)
    )
    result = run_async(lambda stop: run_import(options, stderr_progress))
    for line in result.describe():
        click.echo(line)


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
@handle_errors
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
    stale state and unmanaged entries (informational unless --strict). Never writes
    to a provider or to state."""
    from .audit import AuditOptions, render, render_markdown, run_audit
    from .runner import stderr_progress

    setup_logging(verbose)
    options = AuditOptions(
        directory=directory, targets=targets, now=parse_at(at), window=window, strict=strict
    )
    report = run_async(lambda stop: run_audit(options, stderr_progress))
    click.echo(render(report, fmt, mask=mask_numbers, verbose=verbose))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if os.environ.get("GITHUB_ACTIONS") == "true" and summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(report, mask=mask_numbers) + "\n")
    if detailed_exitcode and not report.clean:
        sys.exit(2)


# -- state --------------------------------------------------------------------------------


@main.group()
def state() -> None:
    """Inspect and edit what this tool remembers it manages."""


def _open_existing_state(directory: Path) -> Any:
    from .desired import load_desired
    from .runner import open_run_state

    desired = load_desired(directory, str(directory))
    backend = open_run_state(desired.config, directory, create=False)
    if backend is None:
        raise StateError("no state yet (run `blocklist apply` first)")
    return backend


@state.command("list")
@dir_option
@click.option("--target", "targets", multiple=True, help="Only this target; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--mask-numbers", is_flag=True)
@handle_errors
def state_list(directory: Path, targets: tuple[str, ...], fmt: str, mask_numbers: bool) -> None:
    """Managed numbers per target."""
    from .expiry import iso
    from .render import mask_number

    backend = _open_existing_state(directory)
    with backend:
        names = [
            t
            for t in backend.targets()
            if not targets or t in targets or t.split("/", 1)[0] in targets
        ]
        show = mask_number if mask_numbers else (lambda n: n)
        if fmt == "json":
            out = {
                "lineage": backend.lineage(),
                "serial": backend.serial(),
                "targets": {
                    name: [
                        {
                            "number": show(e.number),
                            "expires": iso(e.expires),
                            "reason": e.reason,
                            "attrs": dict(e.attrs),
                            "provider_id": e.provider_id,
                            "source": e.source or None,
                        }
                        for _, e in sorted(backend.read_target(name).items())
                    ]
                    for name in names
                },
            }
            click.echo(json.dumps(out, indent=2))
            return
        click.echo(f"lineage {backend.lineage()}, serial {backend.serial()}")
        for name in names:
            entries = backend.read_target(name)
            click.echo(f"# {name}: {len(entries)} managed")
            for number, e in sorted(entries.items()):
                extra = f" expires {iso(e.expires)}" if e.expires else ""
                click.echo(f"  {show(number)}  {e.reason or ''}{extra}  {e.source}".rstrip())


@state.command("show")
@click.argument("number")
@dir_option
@handle_errors
def state_show(number: str, directory: Path) -> None:
    """Where a number is managed, with its recorded attributes."""
    from .expiry import iso
    from .numbers import InvalidNumber, normalise_live

    try:
        e164 = normalise_live(number)
    except InvalidNumber:
        e164 = number
    backend = _open_existing_state(directory)
    with backend:
        found = backend.find_number(e164)
        if not found:
            fail(f"{e164} is not in state")
        for target, e in found:
            click.echo(f"{target}: {e.number}")
            click.echo(f"  reason:      {e.reason or '-'}")
            click.echo(f"  expires:     {iso(e.expires) or 'never'}")
            for k, v in e.attrs:
                click.echo(f"  {k + ':':12} {v}")
            click.echo(f"  provider id: {e.provider_id or '-'}")
            click.echo(f"  source:      {e.source or '-'}")


@state.command("rm")
@click.argument("number")
@click.option("--target", "target", required=True, help="The target to forget it from.")
@dir_option
@handle_errors
def state_rm(number: str, target: str, directory: Path) -> None:
    """Forget a number in state without any API call."""
    from .numbers import normalise_live

    e164 = normalise_live(number)
    backend = _open_existing_state(directory)
    with backend:
        if not backend.forget(target, e164):
            fail(f"{e164} is not in state for {target}")
        click.echo(f"Forgot {e164} for {target} (no provider was called).")


@state.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@dir_option
@handle_errors
def state_export(file: Path, directory: Path) -> None:
    """Write the whole state as JSON (to move it between backends)."""
    from .state import export_to_file

    backend = _open_existing_state(directory)
    with backend:
        export_to_file(backend, file)
        click.echo(
            f"Exported state (lineage {backend.lineage()}, serial {backend.serial()}) to {file}"
        )


@state.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@dir_option
@click.option("--yes", "-y", is_flag=True, help="Replace the current state without asking.")
@handle_errors
def state_import(file: Path, directory: Path, yes: bool) -> None:
    """Replace the state with a JSON export (keeps the export's lineage)."""
    from .desired import load_desired
    from .runner import open_run_state
    from .state import import_from_file

    desired = load_desired(directory, str(directory))
    backend = open_run_state(desired.config, directory, create=True)
    assert backend is not None
    with backend:
        if backend.targets() and not yes:
            if not sys.stdin.isatty():
                fail("state is not empty: pass --yes to replace it")
            click.confirm("The current state will be replaced. Continue?", abort=True)
        import_from_file(backend, file)
        click.echo(f"Imported {file} (lineage {backend.lineage()}, serial {backend.serial()})")


@state.command("unlock")
@dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def state_unlock(directory: Path, yes: bool) -> None:
    """Break a stale apply lock."""
    backend = _open_existing_state(directory)
    with backend:
        holder = backend.lock_holder()
        if holder is None:
            click.echo("State is not locked.")
            return
        if not yes:
            if not sys.stdin.isatty():
                fail(f"state is locked by {holder.describe()}: pass --yes to break the lock")
            click.confirm(f"Break the lock held by {holder.describe()}?", abort=True)
        broken = backend.break_lock()
        click.echo(f"Broke the lock held by {(broken or holder).describe()}.")


def git_commit(directory: Path) -> str | None:
    """The commit being applied: GITHUB_SHA, or HEAD of the repository holding -C."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


__all__ = ["main", "StalePlanError", "UnsafePlanError"]


if __name__ == "__main__":  # python -m reconciler.cli
    main()
