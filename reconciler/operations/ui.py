"""The UI an operation talks to: notices, the plan before a confirmation, the
confirmation itself and apply's progress.

Operations never print, prompt or draw a progress bar: they call an object
that follows ``UI``. The CLI gives them a terminal or CI implementation
(``views.terminal``); tests and library callers give ``QuietUI`` or their own.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from ..plan import Plan


class Progress(Protocol):
    """What the executor reports while it works (one call per event)."""

    def start(self, target: str, total: int) -> None:
        """``target`` has ``total`` numbers to send."""

    def batch(self, target: str, size: int, ok: int, seconds: float) -> None:
        """``size`` numbers of ``target`` are finished (``ok`` of them succeeded)."""

    def retry(self, target: str, count: int, reason: str, wait: float) -> None:
        """``count`` numbers of ``target`` are sent again in ``wait`` seconds, because
        of ``reason`` (the provider's words)."""

    def failed(self, target: str, count: int) -> None:
        """``count`` numbers of ``target`` failed for good."""


class UI(Protocol):
    """Everything an operation may need from whoever runs it."""

    def notice(self, message: str) -> None:
        """A line of progress while reading (``INSTANCE/SCOPE: 120 live entries``)."""

    def show_plan(self, plan: Plan) -> None:
        """The plan apply is about to carry out (before the confirmation)."""

    def confirm(self, plan: Plan, *, allow_unsafe: bool) -> bool:
        """Whether to carry out ``plan``; False cancels the apply."""

    def progress(self) -> ProgressSession:
        """A context manager giving the ``Progress`` of one apply."""


class ProgressSession(Protocol):
    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> None: ...


class Stop:
    """A request to stop, and why (the signal): apply finishes what is in flight,
    records it and reports; nothing new is sent after it is set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str | None = None

    def set(self, reason: str = "SIGINT") -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class QuietProgress:
    """A ``Progress`` that records nothing (library use, tests)."""

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, target: str, total: int) -> None:
        return None

    def batch(self, target: str, size: int, ok: int, seconds: float) -> None:
        return None

    def retry(self, target: str, count: int, reason: str, wait: float) -> None:
        return None

    def failed(self, target: str, count: int) -> None:
        return None


class QuietUI:
    """A ``UI`` that shows nothing and approves every plan (library use, tests)."""

    def __init__(self, approve: bool = True) -> None:
        self.approve = approve
        self.notices: list[str] = []

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def show_plan(self, plan: Plan) -> None:
        return None

    def confirm(self, plan: Plan, *, allow_unsafe: bool) -> bool:
        return self.approve

    def progress(self) -> QuietProgress:
        return QuietProgress()
