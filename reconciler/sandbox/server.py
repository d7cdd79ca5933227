"""Serve emulators over real HTTP on loopback (``blocklist sandbox`` and the tests).

A thin stdlib ``ThreadingHTTPServer`` that turns each HTTP request into an
``httpx.Request``, hands it to ``Emulator.process`` and writes the answer back,
with HTTP/1.1 keep-alive. Dropped-connection and timeout faults close the socket
without an answer, as a broken network would.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .base import DroppedConnection, Emulator, Timeout, sleep_until

#: how long an injected timeout holds the connection before closing it
TIMEOUT_HOLD_SECONDS = 35.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # without TCP_NODELAY every keep-alive reply waits ~40 ms for a delayed ACK
    disable_nagle_algorithm = True
    server: _EmulatorServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # quiet: the counters say what happened

    def _serve(self) -> None:
        arrived = time.monotonic()
        emulator = self.server.serving[self.request]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host, port = self.server.server_address[:2]
        request = httpx.Request(
            self.command,
            f"http://{host}:{port}{self.path}",
            headers=list(self.headers.items()),
            content=body,
        )
        delay = emulator.enter()
        try:
            try:
                try:
                    response = emulator.process(request)
                finally:  # answered ``delay`` after it arrived, the emulator's work in it
                    sleep_until(arrived + delay)
            except DroppedConnection:
                self._drop()
                return
            except Timeout:
                time.sleep(min(TIMEOUT_HOLD_SECONDS, self.server.timeout_hold))
                self._drop()
                return
        finally:
            emulator.leave()
        payload = response.content
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class _EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request is normal (timeouts, kill -9): no traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def __init__(self, address: tuple[str, int], emulator: Emulator, timeout_hold: float):
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.timeout_hold = timeout_hold
        self.serving: dict[object, Emulator] = {}  # connection -> what answers it

    def process_request(self, request: object, client_address: object) -> None:
        """Bind each connection to its emulator here, in the order of accepting them: its
        thread, and so its first request, may come much later."""
        self.serving[request] = self.emulator.for_connection(client_address)
        super().process_request(request, client_address)  # type: ignore[arg-type]

    def shutdown_request(self, request: object) -> None:
        self.serving.pop(request, None)
        super().shutdown_request(request)  # type: ignore[arg-type]


class LoopbackServer:
    """One emulator served on 127.0.0.1 in a background thread."""

    def __init__(
        self, emulator: Emulator, port: int = 0, host: str = "127.0.0.1", timeout_hold: float = 35.0
    ) -> None:
        self.emulator = emulator
        self._server = _EmulatorServer((host, port), emulator, timeout_hold)
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05),
            name=f"sandbox-{emulator.type_name}",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def serve(emulator: Emulator, port: int = 0, timeout_hold: float = 35.0) -> Iterator[str]:
    """Serve ``emulator`` on loopback for the duration of the block; yields its base URL."""
    server = LoopbackServer(emulator, port, timeout_hold=timeout_hold).start()
    try:
        yield server.base_url
    finally:
        server.stop()
