"""The shared loopback server keeps each test's requests with that test's emulator."""

from __future__ import annotations

import socket

from loopback import Loopback

from reconciler.sandbox.phonely import PhonelyEmulator


def raw_get(sock: socket.socket, path: str) -> bytes:
    """One HTTP/1.1 GET on an open socket; returns the status line."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock.makefile("rb").readline()


def test_a_request_on_a_connection_of_the_last_test_reaches_that_tests_emulator(tmp_path):
    """A request the last test's client wrote before it hung up (a cancelled page) can
    reach the server after the next test plugged its emulator in; it is counted by the
    emulator that was plugged in when its connection was opened, never by the next."""
    earlier = PhonelyEmulator(state_path=tmp_path / "earlier.json")
    later = PhonelyEmulator(state_path=tmp_path / "later.json")
    with Loopback().serving() as loopback:
        host, port = loopback.plug(earlier).removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as late:
            loopback.plug(later)
            assert raw_get(late, "/v1/blocklist").startswith(b"HTTP/1.1")
        with socket.create_connection((host, int(port))) as fresh:
            assert raw_get(fresh, "/v1/blocklist").startswith(b"HTTP/1.1")
    assert earlier.counters.to_dict()["total_requests"] == 1
    assert later.counters.to_dict()["total_requests"] == 1
