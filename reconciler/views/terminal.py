"""The terminal and CI face of an operation: notices, the plan before the prompt,
the ``yes`` confirmation and apply's progress (``operations.ui.UI``).

On a terminal, apply draws a progress bar per target with its ETA, the retries
in progress (the provider's reason and the wait) and the failures so far; in CI
(no terminal) it prints one plain line per batch, per retry and per failure.
Colour follows ``--no-color`` and a non-empty ``NO_COLOR``, for the bar too.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import click

from ..plan import Plan
from .format import group_thousands
from .plan import render_text


def color_wanted(no_color: bool, stream: Any = None) -> bool:
    """Colour unless ``--no-color``, a non-empty ``NO_COLOR`` (no-color.org: an empty
    value does not count) or output that is not a terminal."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return (stream or sys.stdout).isatty()


class TerminalProgress:
    """A progress bar per target on a terminal; one plain line per event otherwise."""

    def __init__(self, *, color: bool, tty: bool | None = None) -> None:
        self.color = color
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._done: Counter = Counter()
        self._failed: Counter = Counter()
        self._total: dict[str, int] = {}

    def __enter__(self) -> TerminalProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                "[bold]{task.description}",
                BarColumn(),
                # counts as the plan and the report write them (8,731), not 8731
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True, no_color=not self.color, highlight=False),
                transient=False,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def _status(self, target: str, retrying: str = "") -> str:
        failed = self._failed[target]
        parts = [f"{group_thousands(failed)} failed" if failed else "", retrying]
        return " · ".join(p for p in parts if p)

    def start(self, target: str, total: int) -> None:
        self._total[target] = total
        if self._bar is not None:
            self._tasks[target] = self._bar.add_task(target, total=total, status="")

    def batch(self, target: str, size: int, ok: int, seconds: float) -> None:
        self._done[target] += size
        if self._bar is not None:
            task = self._tasks.get(target)
            if task is not None:
                self._bar.update(task, advance=size, status=self._status(target))
            return
        total = self._total.get(target, 0)
        done = f"{group_thousands(self._done[target])}/{group_thousands(total)}"
        _line(f"{target}: {done} ({ok}/{size} ok in batch, {seconds:.2f}s)")

    def retry(self, target: str, count: int, reason: str, wait: float) -> None:
        text = f"retrying {group_thousands(count)} in {wait:.1f}s: {_short(reason)}"
        if self._bar is not None:
            task = self._tasks.get(target)
            if task is not None:
                self._bar.update(task, status=self._status(target, text))
            return
        _line(f"{target}: {text}")

    def failed(self, target: str, count: int) -> None:
        self._failed[target] += count
        if self._bar is not None:
            task = self._tasks.get(target)
            if task is not None:
                self._bar.update(task, status=self._status(target))
            return
        _line(f"{target}: {group_thousands(self._failed[target])} failed so far")


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class TerminalUI:
    """The CLI's ``UI``: notices on stderr, the plan on stdout, a ``yes`` prompt."""

    def __init__(
        self,
        *,
        color: bool,
        mask: bool = False,
        verbose: bool = False,
        allow_unsafe: bool = False,
        full: bool = False,
        by: str = "number",
        show: Callable[[Plan], str] | None = None,
        ask: Callable[[str], str] | None = None,
    ) -> None:
        self.color = color
        self.mask = mask
        self.verbose = verbose
        self.allow_unsafe = allow_unsafe
        self.full = full  # every change line of the plan shown before the prompt
        self.by = by
        self._show = show
        self._ask = ask or (lambda text: click.prompt(text, default="", show_default=False))

    def notice(self, message: str) -> None:
        _line(message)

    def show_plan(self, plan: Plan) -> None:
        if self._show is not None:
            click.echo(self._show(plan))
            return
        click.echo(
            render_text(
                plan,
                color=self.color,
                mask=self.mask,
                verbose=self.verbose,
                allow_unsafe=self.allow_unsafe,
                max_lines=None if self.full else 50,
                by=self.by,
            )
        )

    def confirm(self, plan: Plan, *, allow_unsafe: bool) -> bool:
        """Terraform's prompt: only ``yes`` approves."""
        click.echo("")
        if not plan.safe and allow_unsafe:
            click.echo("The plan is unsafe; --allow-unsafe was given, so it can be applied.")
        click.echo("Do you want to apply these changes? Only 'yes' will be accepted.")
        answer = self._ask("  Enter a value")
        return answer.strip() == "yes"

    def progress(self) -> TerminalProgress:
        return TerminalProgress(color=self.color)
