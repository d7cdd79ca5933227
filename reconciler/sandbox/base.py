"""The base of every provider emulator: one request handler, usable two ways.

An emulator is a synchronous function ``httpx.Request -> httpx.Response`` over a
JSON-serialisable ``state`` dict. ``EmulatorTransport`` runs it in-process for
``base_url: sandbox``; ``reconciler.sandbox.server`` serves it on loopback. Both
go through ``Emulator.process`` so there is no difference in behaviour.

The base owns what every emulator shares: persistence (atomic writes), fault
injection, counters and the ``/__sandbox/*`` debug endpoints. Subclasses own
the provider's API: routes, auth, limits, error bodies and quirks.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from .faults import Faults, FaultSpec

DEBUG_PREFIX = "/__sandbox/"


@dataclass
class Counters:
    """What tests and benchmarks read: requests, sizes, concurrency, violations, faults."""

    requests: Counter = field(default_factory=Counter)  # endpoint -> requests
    numbers: Counter = field(default_factory=Counter)  # endpoint -> numbers carried in total
    max_numbers: dict[str, int] = field(default_factory=dict)  # endpoint -> most in one request
    in_flight: int = 0
    max_in_flight: int = 0
    limit_violations: Counter = field(default_factory=Counter)  # what -> times
    auth_failures: int = 0
    repeated_after_auth_failure: int = 0
    faults: Counter = field(default_factory=Counter)  # kind -> times injected

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "numbers": dict(self.numbers),
            "max_numbers": dict(self.max_numbers),
            "max_in_flight": self.max_in_flight,
            "limit_violations": dict(self.limit_violations),
            "auth_failures": self.auth_failures,
            "repeated_after_auth_failure": self.repeated_after_auth_failure,
            "faults": dict(self.faults),
        }


class DroppedConnection(Exception):
    """The emulator drops the connection instead of answering (reset, commit-then-drop)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class Timeout(Exception):
    """The emulator never answers; the client's timeout must fire."""


DEFAULT_DIALECT = "default"


class Emulator:
    """Base class. Subclasses set ``type_name`` and ``credentials`` and implement
    ``initial_state``, ``endpoint_of``, ``credential_of``, ``route``,
    ``server_error`` and ``rate_limited``.

    **Dialects.** Where the provider's documentation is silent (CONTRACTS.md
    [INFER]), a real server may answer differently from our first guess. Each
    emulator names its defensible alternatives in ``dialects``: dialect name ->
    the options it runs with (an object of the subclass's own choosing, read as
    ``self.quirks``). ``default`` is the first guess; every adapter test suite
    runs against every dialect, so no adapter depends on one guess.
    """

    type_name: ClassVar[str]
    #: credentials the sandbox accepts by default (key names as in providers.yaml)
    credentials: ClassVar[dict[str, str]]
    #: dialect name -> options (see the class docstring); "default" must be there
    dialects: ClassVar[Mapping[str, Any]] = {DEFAULT_DIALECT: None}
    #: dialect name -> one line saying what it answers differently (for --help, docs)
    dialect_notes: ClassVar[Mapping[str, str]] = {DEFAULT_DIALECT: "the first guess"}
    #: endpoints that change state (persisted after they run)
    write_methods: ClassVar[frozenset[str]] = frozenset({"POST", "PUT", "DELETE", "PATCH"})

    def __init__(
        self,
        *,
        state_path: Path | str | None = None,
        faults: FaultSpec | str | None = None,
        credentials: dict[str, str] | None = None,
        clock: Any = time.time,
        seed: bool = True,
        persist: bool = True,
        dialect: str | None = None,
    ) -> None:
        name = dialect or DEFAULT_DIALECT
        if name not in self.dialects:
            known = ", ".join(self.dialects)
            raise ValueError(f"unknown {self.type_name} dialect {name!r} (known: {known})")
        self.dialect = name
        self.quirks: Any = self.dialects[name]
        self.state_path = Path(state_path) if state_path else None
        self.accepted = dict(credentials or type(self).credentials)
        self.clock = clock
        self.persist = persist and self.state_path is not None
        spec = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.faults = Faults(spec)
        self.counters = Counters()
        self.lock = threading.RLock()
        self._rejected_credentials: set[str] = set()
        self._generation = 0  # +1 per write request: invalidates ordered snapshots
        self._snapshots: dict[str, tuple[tuple[int, int], list[Any]]] = {}
        self.state: dict[str, Any] = self._load(seed)

    # -- what subclasses implement ------------------------------------------------

    def initial_state(self, seed: bool) -> dict[str, Any]:
        """The state of a fresh emulator; ``seed`` adds the pre-seeded entries."""
        raise NotImplementedError

    def endpoint_of(self, request: httpx.Request) -> str:
        """A stable label such as ``POST /v3/phone-blacklist/add`` for counters."""
        return f"{request.method} {request.url.path}"

    def credential_of(self, request: httpx.Request) -> str | None:
        """The credential the request presents (to count repeats after a 401/403)."""
        return None

    def route(self, request: httpx.Request) -> httpx.Response:
        """The provider's API. Runs under ``self.lock``; mutates ``self.state``."""
        raise NotImplementedError

    def server_error(self) -> httpx.Response:
        """A 5xx in the provider's documented error shape."""
        return httpx.Response(500, json={"error": "Internal server error"})

    def rate_limited(self, retry_after: int) -> httpx.Response:
        """A 429 in the provider's shape, with ``Retry-After``."""
        return httpx.Response(
            429, json={"error": "Too Many Requests"}, headers={"Retry-After": str(retry_after)}
        )

    # -- helpers for subclasses ----------------------------------------------------

    def count_numbers(self, endpoint: str, n: int) -> None:
        self.counters.numbers[endpoint] += n
        if n > self.counters.max_numbers.get(endpoint, 0):
            self.counters.max_numbers[endpoint] = n

    def violation(self, what: str) -> None:
        """Record a request that broke a documented limit (the reply is the API's own)."""
        self.counters.limit_violations[what] += 1

    def auth_rejected(self, request: httpx.Request) -> None:
        """Call when answering 401/403 (or the provider's auth error) to a request."""
        self.counters.auth_failures += 1
        cred = self.credential_of(request)
        if cred is not None:
            self._rejected_credentials.add(cred)

    def ordered(self, key: str, items: dict[str, Any]) -> list[tuple[str, Any]]:
        """``list(items.items())``, kept between requests until the next write, so that
        offset paging through a long list is not quadratic (each page would otherwise
        skip ``offset`` items again)."""
        stamp = (self._generation, len(items))
        cached = self._snapshots.get(key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, list(items.items()))
            self._snapshots[key] = cached
        return cached[1]

    def fail_number(self) -> bool:
        """Whether to fail this number as a per-number partial failure (fault injection)."""
        if self.faults.fail_number():
            self.counters.faults["partial"] += 1
            return True
        return False

    def failure_reason(self, default: str) -> str:
        """The words of an injected per-number failure: the fault spec's ``reason`` if
        it gives one (any text: adapters must not depend on ours), else ``default``."""
        return self.faults.spec.reason or default

    # -- the shared request path ---------------------------------------------------

    def for_connection(self, client_address: object) -> Emulator:
        """What answers a connection the server just accepted: this emulator. (The tests'
        shared server answers each with the emulator plugged in when it was opened.)"""
        return self

    def enter(self) -> float:
        """A request arrives: count it in flight; return its latency (the time from its
        arrival to its answer)."""
        with self.lock:
            self.counters.in_flight += 1
            self.counters.max_in_flight = max(self.counters.max_in_flight, self.counters.in_flight)
        return self.faults.delay()

    def leave(self) -> None:
        with self.lock:
            self.counters.in_flight -= 1

    def process(self, request: httpx.Request) -> httpx.Response:
        """Handle one request (body already read). Raises DroppedConnection or Timeout
        when a fault says the client must get no answer."""
        path = request.url.path
        if path.startswith(DEBUG_PREFIX):
            return self._debug(request, path[len(DEBUG_PREFIX) :])
        with self.lock:
            endpoint = self.endpoint_of(request)
            self.counters.requests[endpoint] += 1
            cred = self.credential_of(request)
            if cred is not None and cred in self._rejected_credentials:
                self.counters.repeated_after_auth_failure += 1
            fault = self.faults.before(time.monotonic())
            if fault:
                self.counters.faults[fault] += 1
                if fault == "429":
                    return self.rate_limited(self.faults.retry_after_left(time.monotonic()))
                if fault == "5xx":
                    return self.server_error()
                if fault == "reset":
                    raise DroppedConnection("reset")
                raise Timeout()
            response = self.route(request)
            if request.method in self.write_methods:
                self.save()
                if response.status_code < 400 and self.faults.drop_after_commit():
                    self.counters.faults["drop"] += 1
                    raise DroppedConnection("drop")
            return response

    # -- debug endpoints (not part of any provider's API) ------------------------------

    def _debug(self, request: httpx.Request, what: str) -> httpx.Response:
        with self.lock:
            if what == "counters":
                return httpx.Response(200, json=self.counters.to_dict())
            if what == "state":
                return httpx.Response(200, json=self.state)
            if what == "reset" and request.method == "POST":
                self.reset()
                return httpx.Response(200, json={"reset": True})
        return httpx.Response(404, json={"error": f"no sandbox debug endpoint {what!r}"})

    # -- persistence ---------------------------------------------------------------

    def reset(self, seed: bool = True) -> None:
        with self.lock:
            self.state = self.initial_state(seed)
            self.counters = Counters()
            self._rejected_credentials.clear()
            self.save()

    def _load(self, seed: bool) -> dict[str, Any]:
        if self.state_path and self.state_path.exists():
            try:
                return json.loads(self.state_path.read_text())
            except (OSError, ValueError):
                pass  # a broken sandbox file is reseeded: it is test data, not state
        state = self.initial_state(seed)
        self.state = state
        self.save()
        return state

    def save(self) -> None:
        """Write the state atomically (temp file + rename). Subclasses skip it when a
        request changed nothing; reaching here means the state may have changed."""
        self._generation += 1  # ordered snapshots are stale now
        if not self.persist or self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.state, fh, separators=(",", ":"))
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline`` (not at all if it has).

    An emulated latency is the time a request takes to be answered from its arrival,
    the emulator's own work counted in it, as a provider's response time is: an
    emulator is one Python process whose work for concurrent requests runs one at a
    time, which no real provider does; waiting first and working after added that
    queue to every answer (~0.6 ms an add of 100 numbers: 6 ms for ten at once)."""
    left = deadline - time.monotonic()
    if left > 0:
        time.sleep(left)


class EmulatorTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Runs an emulator in-process for httpx (async and sync clients)."""

    def __init__(self, emulator: Emulator, timeout: float = 30.0) -> None:
        self.emulator = emulator
        self.timeout = timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        arrived = time.monotonic()
        await request.aread()
        delay = self.emulator.enter()
        try:
            try:
                return self._answer(request)
            finally:
                left = arrived + delay - time.monotonic()
                if left > 0:
                    await asyncio.sleep(left)
        finally:
            self.emulator.leave()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        arrived = time.monotonic()
        request.read()
        delay = self.emulator.enter()
        try:
            try:
                return self._answer(request)
            finally:
                sleep_until(arrived + delay)
        finally:
            self.emulator.leave()

    def _answer(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.emulator.process(request)
        except DroppedConnection as exc:
            raise httpx.ReadError(f"connection dropped by sandbox ({exc.kind})") from None
        except Timeout:
            raise httpx.ReadTimeout("sandbox never answered (injected timeout)") from None
        # detach from the emulator's request object, as a network reply would be
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=response.content,
            request=request,
        )
