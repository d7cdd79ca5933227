"""The small base every provider adapter fills in.

An adapter declares its capabilities and implements three verbs:
``refresh`` (read a target's live entries), ``batches`` (group writes into
provider-sized requests; pure) and ``send`` (carry out one batch). Retries,
concurrency, progress and state recording are the executor's business, not
the adapter's: ``send`` sends each request once and raises
``RetryableError``/``AuthError`` for the executor to act on.

Adapters never put a credential in an exception, a log line or a repr; their
error messages name endpoints by template (``GET /v1/{sid}/...``), not URL.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

import httpx

from ..domain import Batch, BatchResult, LiveEntry, Op, Target
from ..errors import AuthError, ProviderError, RetryableError
from ..numbers import parse_live
from ..retry import RetryPolicy, retrying

log = logging.getLogger("blocklist.provider")

T = TypeVar("T")


@dataclass(frozen=True)
class Capabilities:
    """What a provider type can do and the limits that shape apply."""

    can_list: bool
    can_add: bool
    can_remove: bool
    batch_limit: int  # numbers per write request (documented, or our conservative choice)
    concurrency_limit: int  # requests in flight at once, per provider instance
    native_expiry: bool
    remove_by: Literal["number", "provider_id"]
    remove_one_per_call: bool
    scope_fields: tuple[str, ...]  # target keys that select the scope
    attribute_fields: tuple[str, ...]  # target keys that are provider-visible entry attributes
    credential_keys: tuple[str, ...]
    default_base_url: str
    wire_format: str  # how numbers go on the wire, e.g. "E.164 with +"
    notes: str = ""
    #: the provider holds users' own opt-outs (STOP replies) but does not mark them,
    #: so an adopted number may be one (the plan warns)
    opt_outs_unmarked: bool = False
    #: region of live numbers stored without a country code, unless the instance
    #: sets ``default_region`` (a provider's documented home region, if it has one)
    default_region: str | None = None
    #: credential keys an instance may leave out (e.g. an existing token to use as given)
    optional_credential_keys: tuple[str, ...] = ()
    #: values ``auth_mode`` may take in providers.yaml (the first is the default);
    #: empty: the type has one way to authenticate and takes no ``auth_mode``
    auth_modes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clamped(wanted: object, limit: int) -> int:
    """A configured ``batch_size`` or ``concurrency`` (None: not set), never above the
    type's documented ``limit``."""
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
        return min(limit, wanted)
    return limit


class ProviderAdapter:
    """Base of one provider type's adapter; one instance per provider instance."""

    type_name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: how idempotent reads (each page of a refresh) are re-sent on 429, 5xx, timeouts
    #: and dropped connections; None sends every request once. ``Connections`` sets it
    #: for real runs; an adapter used bare (as in its unit tests) keeps None.
    read_policy: RetryPolicy | None = None

    def __init__(
        self,
        instance: str,
        client: httpx.AsyncClient,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.instance = instance
        self.client = client
        self._in_flight: asyncio.Semaphore | None = None
        self._in_flight_loop: asyncio.AbstractEventLoop | None = None
        self._auth_lock: asyncio.Lock | None = None
        self._auth_lock_loop: asyncio.AbstractEventLoop | None = None
        self._auth_proven = False  # a request got an answer that was not about auth
        self._auth_failure: AuthError | None = None  # the credential was refused
        self._credentials = dict(credentials)  # never printed: see __repr__
        self.options = dict(options or {})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.instance}>"

    # -- scope -----------------------------------------------------------------

    @classmethod
    def scope_problems(cls, key: str, value: object) -> str | None:
        """Why ``value`` is not acceptable for scope/attribute ``key`` (None if it is)."""
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            return f"{key} must be a non-empty string"
        return None

    @classmethod
    def canonical(cls, key: str, value: object) -> str:
        """The one text of a valid scope/attribute value (``07116`` and ``7116`` are one
        group id), so two lists naming the same scope share one target."""
        return str(value)

    @classmethod
    def field_schema(cls, key: str) -> dict[str, Any]:
        """The JSON Schema of target key ``key`` for editors (``schemas/``)."""
        return {"type": "string", "minLength": 1, "description": key}

    @classmethod
    def target_name(cls, instance: str, scope: Mapping[str, str]) -> str:
        """``PROVIDER/SCOPE-VALUE``; a type without scope fields is ``PROVIDER/account``."""
        values = [str(scope[f]) for f in cls.capabilities.scope_fields if f in scope]
        return f"{instance}/{'/'.join(values) if values else 'account'}"

    # -- what every adapter needs ---------------------------------------------

    def live_entry(self, raw: str, **fields: Any) -> LiveEntry:
        """A ``LiveEntry`` for a number as the provider wrote it: normalised like a
        declared number (with the instance's ``default_region``), or, when it cannot
        be told which number it is, ``unparsed`` (shown as unmanaged, never touched)."""
        number = parse_live(raw, self.options.get("default_region"))
        if number is None:
            return LiveEntry(number="?" + raw.strip(), raw=raw, unparsed=True, **fields)
        return LiveEntry(number=number, raw=raw, **fields)

    def redact(self, text: str) -> str:
        """``text`` with every credential value of this instance (keys, SIDs, uids,
        tokens) replaced by ``[redacted]``: provider bodies may echo the request."""
        for value in sorted(self._credentials.values(), key=len, reverse=True):
            if value and len(value) >= 3:
                text = text.replace(value, "[redacted]")
                if ":" in value:  # an ``id:key`` token: each half is secret too
                    for part in value.split(":"):
                        if len(part) >= 4:
                            text = text.replace(part, "[redacted]")
        return text

    # -- the three verbs -------------------------------------------------------

    async def refresh(self, target: Target) -> list[LiveEntry]:
        """Every live entry of the target, normalised to E.164."""
        raise NotImplementedError(f"{self.type_name} cannot list its entries")

    def batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """Group ops into requests: removes (phase 0) before adds (phase 1).

        ``meta`` is what state remembers of the target (e.g. a group id it learned).
        """
        size = 1 if self.capabilities.remove_one_per_call else self.batch_size
        out = [Batch(list(removes[i : i + size]), phase=0) for i in range(0, len(removes), size)]
        step = self.batch_size
        out += [Batch(list(adds[i : i + step]), phase=1) for i in range(0, len(adds), step)]
        return out

    def head_batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """The batches ``batches`` makes of a target's first ops (its first removes, or
        its first adds when it has no removes; the other list empty) that ``batches`` of
        all its ops makes too: apply sends them while it sets up the rest, and the rest's
        batches together with these are ``batches`` of everything (no extra request).

        Chunking keeps a prefix's full chunks, so these are the full batches. An
        adapter that groups its own way (its own ``batches``) sends nothing early unless
        it says which of its batches a prefix fixes (its own ``head_batches``)."""
        own = type(self)
        if own.batches is not ProviderAdapter.batches and (
            own.head_batches is ProviderAdapter.head_batches
        ):
            return []
        return self.full_batches(target, removes, adds, meta)

    def full_batches(
        self, target: Target, removes: Sequence[Op], adds: Sequence[Op], meta: Mapping[str, str]
    ) -> list[Batch]:
        """The batches of ``batches`` that hold as many ops as one request takes: those
        a prefix of the ops fixes wherever ``batches`` cuts them into chunks."""
        full = 1 if removes and self.capabilities.remove_one_per_call else self.batch_size
        return [b for b in self.batches(target, removes, adds, meta) if len(b.ops) == full]

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        """Carry out one batch: one request (or one per number for one-per-call removes)."""
        raise NotImplementedError

    async def prepare_writes(self) -> None:
        """Get what every write request needs first (a token to generate), so that it is
        fetched while the executor still builds a target's batches, not before the
        first of them. Nothing by default; a failure is left to the sends to report."""

    # -- HTTP helpers shared by adapters ---------------------------------------

    @property
    def batch_size(self) -> int:
        """Numbers per write request for this instance: providers.yaml ``batch_size``
        (``options["batch_size"]``), never above the type's documented limit."""
        return self._clamped("batch_size", self.capabilities.batch_limit)

    @property
    def concurrency(self) -> int:
        """Requests in flight at once for this instance: providers.yaml ``concurrency``,
        never above the type's limit. The class's ``capabilities`` stay what the type
        documents: planning and apply read the same values."""
        return self._clamped("concurrency", self.capabilities.concurrency_limit)

    def _clamped(self, key: str, limit: int) -> int:
        return clamped(self.options.get(key), limit)

    def in_flight_limit(self) -> asyncio.Semaphore:
        """The one semaphore that caps this adapter's requests in flight, refresh pages
        and sends together (a provider may refuse more than N concurrent requests).
        Made inside the running loop, and again if a later ``asyncio.run`` brings another."""
        loop = asyncio.get_running_loop()
        if self._in_flight is None or self._in_flight_loop is not loop:
            self._in_flight, self._in_flight_loop = asyncio.Semaphore(self.concurrency), loop
        return self._in_flight

    async def gated(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one request behind the credential gate of this provider instance.

        Until some request has shown that the credential works, requests go one at a
        time; the first refusal of the credential (``AuthError``) closes the gate, and
        every other request of the instance fails at once with the same error, unsent.
        So a run sends at most one request with a rejected credential per instance,
        however many targets and batches fan out (a provider may lock an IP out).
        Every adapter sends each HTTP request through here (its one ``_call``); a
        gated call must not call another gated one.
        """
        try:
            return await self._gated(call)
        except ProviderError as exc:
            clean = self.redact(str(exc))
            if clean != str(exc):  # a body that echoed a credential: never let it out
                exc.reason = self.redact(exc.reason)
                exc.args = (clean,)
            raise

    async def _gated(self, call: Callable[[], Awaitable[T]]) -> T:
        if self._auth_failure is not None:
            raise copy.copy(self._auth_failure)
        if not self._auth_proven:
            loop = asyncio.get_running_loop()
            if self._auth_lock is None or self._auth_lock_loop is not loop:
                self._auth_lock, self._auth_lock_loop = asyncio.Lock(), loop
            async with self._auth_lock:
                if self._auth_failure is not None:
                    raise copy.copy(self._auth_failure)
                if not self._auth_proven:
                    try:
                        result = await call()
                    except AuthError as exc:
                        self._auth_failure = exc
                        raise
                    except RetryableError:
                        raise  # a 5xx or a dropped connection says nothing of the credential
                    except ProviderError:
                        self._auth_proven = True  # an answer, and not about auth
                        raise
                    self._auth_proven = True
                    return result
        try:
            return await call()
        except AuthError as exc:  # refused after all (a token revoked mid-run): stop too
            self._auth_failure = exc
            raise

    @property
    def credential_proven(self) -> bool:
        """Whether a request of this instance got an answer that was not about auth."""
        return self._auth_proven

    async def read(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one idempotent read request, re-sent under ``read_policy``.

        A long list is read page by page; one failing page must not start the whole
        read over (at a 10 % error rate, 30 pages in a row almost never all succeed).
        """
        if self.read_policy is None:
            return await call()
        async for attempt in retrying(self.read_policy):
            with attempt:
                return await call()
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | str | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: Sequence[int] = (),
    ) -> httpx.Response:
        """Send one request; map transport failures, 429/5xx and 401/403 to our errors.

        ``endpoint`` is the template used in messages (never the real URL, which may
        hold an account id). Statuses in ``ok_statuses`` are returned as they are,
        even if they would otherwise raise.
        """
        content = None
        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        started = time.monotonic()
        try:
            resp = await self.client.request(
                method, path, content=content, params=params, headers=hdrs
            )
        except httpx.TimeoutException:
            raise RetryableError(self.instance, endpoint, "request timed out") from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self.instance, endpoint, f"connection failed ({type(exc).__name__})"
            ) from None
        log.debug(
            "%s %s -> %s in %.0f ms",
            self.instance,
            endpoint,
            resp.status_code,
            (time.monotonic() - started) * 1000,
        )
        status = resp.status_code
        if status in ok_statuses:
            return resp
        if status == 429 or status >= 500:
            raise RetryableError(
                self.instance,
                endpoint,
                short_body(resp) or ("rate limited" if status == 429 else "server error"),
                status,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if status in (401, 403):
            raise AuthError(self.instance, endpoint, short_body(resp) or "unauthorised", status)
        return resp

    def json_of(self, resp: httpx.Response, endpoint: str) -> Any:
        """The JSON body, or a ProviderError naming provider, endpoint and status."""
        try:
            return resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            kind = resp.headers.get("content-type", "unknown content type")
            raise ProviderError(
                self.instance,
                endpoint,
                f"reply is not JSON ({kind}): {short_body(resp)!r}",
                resp.status_code,
            ) from None

    def malformed(self, resp: httpx.Response, endpoint: str, what: str) -> ProviderError:
        """A ProviderError for a JSON reply that lacks what the docs promise."""
        return ProviderError(self.instance, endpoint, f"unexpected reply: {what}", resp.status_code)


def short_body(resp: httpx.Response, limit: int = 200) -> str:
    """The start of a reply body, on one line, for error messages."""
    try:
        text = resp.text
    except Exception:  # noqa: BLE001 - undecodable bodies are shown as absent
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ReadAhead(Generic[T]):
    """The pages of an offset-paged read without a total, fetched ahead of the reader.

    The reader still asks for its offsets one after another (``page``), so it reads
    exactly what a sequential read would, and ends where the provider's own end signal
    says; meanwhile the next pages are guessed at the stride of the first page's rows
    and fetched, as many ahead as pages keep coming back full (1, 2, … up to
    ``width`` in flight: a list of one page costs no extra request), none once a page
    comes back short or empty. A guessed page the reader never asks for (past the end,
    or out of step after a short page) is a read wasted: at most ``width - 1`` a read.
    Used as ``async with``: at the end of a read every fetch still running is awaited
    (its rows, or its error, dropped), so what a read sends does not depend on timing;
    a read ended by an error (or cancelled) cancels them instead.
    """

    def __init__(self, fetch: Callable[[int], Awaitable[list[T]]], width: int) -> None:
        self._fetch = fetch
        self._width = max(1, width)
        self._tasks: dict[int, asyncio.Task[list[T]]] = {}
        self._stride = 0  # rows of the first page: the guessed page size
        self._ahead = 0  # pages fetched ahead of the one read

    def _start(self, offset: int) -> asyncio.Task[list[T]]:
        task = self._tasks.get(offset)
        if task is None:
            task = self._tasks[offset] = asyncio.ensure_future(self._fetch(offset))
        return task

    async def page(self, offset: int) -> list[T]:
        """The rows at ``offset`` (fetched now, unless fetched ahead already)."""
        rows = await self._start(offset)
        del self._tasks[offset]
        if offset == 0:
            self._stride = len(rows)
        if rows and len(rows) == self._stride:
            self._ahead = min(self._ahead + 1, self._width)
            for k in range(1, self._ahead + 1):
                self._start(offset + len(rows) * k)
        else:  # a short or empty page: no more guesses
            self._ahead, self._width = 0, 1
        return rows

    async def __aenter__(self) -> ReadAhead[T]:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        if kind is not None:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
