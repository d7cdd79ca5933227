"""One loopback HTTP server per test module, serving whichever emulator a test plugged in.

Starting and stopping a ``reconciler.sandbox.server`` per test costs a thread, a port
and a shutdown poll, so a module shares one server and each test plugs its own
emulator in (``loopback.plug(emulator)`` returns the base URL). Requests still go
over real HTTP on 127.0.0.1: the server only calls ``enter``/``process``/``leave``,
and ``Loopback`` forwards them to the emulator plugged in last.

The ``loopback`` fixture in ``conftest.py`` gives each module its own served
``Loopback``. A module whose plain helper functions (not fixtures) reach the server
holds one at module level instead and serves it with ``module_fixture``::

    LOOPBACK = Loopback("phonely")
    _loopback = module_fixture(LOOPBACK)  # autouse, module scope
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from reconciler.sandbox.base import Emulator
from reconciler.sandbox.server import serve


class Loopback:
    """What the loopback server serves: the emulator the running test plugged in."""

    def __init__(self, type_name: str = "loopback") -> None:
        self.type_name = type_name  # names the server thread
        self.emulator: Emulator | None = None
        self.url = ""  # the base URL while serving

    # -- what a test calls --------------------------------------------------------------

    def plug(self, emulator: Emulator) -> str:
        """Serve ``emulator`` from now on; returns the server's base URL."""
        self.emulator = emulator
        return self.url

    @contextlib.contextmanager
    def plugged(self, emulator: Emulator) -> Iterator[str]:
        """``with loopback.plugged(emulator) as url:`` the same as ``plug``, as a block."""
        yield self.plug(emulator)

    @contextlib.contextmanager
    def serving(self) -> Iterator[Loopback]:
        """Serve on a free loopback port for the duration of the block."""
        with serve(self) as url:  # type: ignore[arg-type]  # duck-typed: enter/process/leave
            self.url = url
            try:
                yield self
            finally:
                self.url = ""

    # -- what the server calls ----------------------------------------------------------

    def _current(self) -> Emulator:
        if self.emulator is None:
            raise RuntimeError("no emulator plugged into the loopback server")
        return self.emulator

    def enter(self) -> float:
        return self._current().enter()

    def process(self, request: httpx.Request) -> httpx.Response:
        return self._current().process(request)

    def leave(self) -> None:
        self._current().leave()


def module_fixture(loopback: Loopback, *, autouse: bool = True):
    """A module-scoped fixture that serves ``loopback`` while the module's tests run."""

    @pytest.fixture(scope="module", autouse=autouse)
    def serve_loopback() -> Iterator[Loopback]:
        with loopback.serving() as served:
            yield served

    return serve_loopback
