"""One loopback HTTP server per test module, serving whichever emulator a test plugged in.

Starting and stopping a ``reconciler.sandbox.server`` per test costs a thread, a port
and a shutdown poll, so a module shares one server and each test plugs its own
emulator in (``loopback.plug(emulator)`` returns the base URL). Requests still go
over real HTTP on 127.0.0.1. Each connection is answered by the emulator plugged in
when it was opened: a request the last test's client wrote just before it hung up (a
cancelled page) may reach the server after the next test plugged its own in, and must
not be counted there.

The ``loopback`` fixture in ``conftest.py`` gives each module its own served
``Loopback``. A module whose plain helper functions (not fixtures) reach the server
holds one at module level instead and serves it with ``module_fixture``::

    LOOPBACK = Loopback("phonely")
    _loopback = module_fixture(LOOPBACK)  # autouse, module scope
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from reconciler.sandbox.base import Emulator
from reconciler.sandbox.server import serve


class Loopback:
    """What the loopback server serves: the emulator the running test plugged in."""

    def __init__(self, type_name: str = "loopback") -> None:
        self.type_name = type_name  # names the server thread
        self.emulator: Emulator | None = None  # what answers connections opened now
        self.url = ""  # the base URL while serving
        self._next: Emulator | None = None
        self._marker: object = None  # the address of the connection that switches
        self._switched = threading.Event()

    # -- what a test calls --------------------------------------------------------------

    def plug(self, emulator: Emulator) -> str:
        """Serve ``emulator`` on the connections opened from now on; returns the base URL.

        The server accepts connections in the order they were opened, so one opened
        here marks the switch: those accepted before it keep the emulator they had.
        """
        if not self.url:
            self.emulator = emulator
            return self.url
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self._next = emulator
        self._switched.clear()
        with socket.socket() as marker:
            marker.bind((host, 0))
            self._marker = marker.getsockname()
            marker.connect((host, int(port)))
            if not self._switched.wait(10):
                raise RuntimeError("the loopback server did not accept a connection in 10 s")
        return self.url

    @contextlib.contextmanager
    def plugged(self, emulator: Emulator) -> Iterator[str]:
        """``with loopback.plugged(emulator) as url:`` the same as ``plug``, as a block."""
        yield self.plug(emulator)

    @contextlib.contextmanager
    def serving(self) -> Iterator[Loopback]:
        """Serve on a free loopback port for the duration of the block."""
        with serve(self) as url:  # type: ignore[arg-type]  # duck-typed: for_connection
            self.url = url
            try:
                yield self
            finally:
                self.url = ""

    # -- what the server calls ----------------------------------------------------------

    def for_connection(self, client_address: object) -> Emulator:
        """The emulator of a connection just accepted (the server's thread calls this)."""
        if client_address == self._marker:
            self.emulator, self._marker = self._next, None
            self._switched.set()
        if self.emulator is None:
            raise RuntimeError("no emulator plugged into the loopback server")
        return self.emulator


def module_fixture(loopback: Loopback, *, autouse: bool = True):
    """A module-scoped fixture that serves ``loopback`` while the module's tests run."""

    @pytest.fixture(scope="module", autouse=autouse)
    def serve_loopback() -> Iterator[Loopback]:
        with loopback.serving() as served:
            yield served

    return serve_loopback
