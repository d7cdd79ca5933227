"""Open one adapter per provider instance: credentials, HTTP client, sandbox.

Owns the edge between configuration and the network: reading credentials
from the environment (never from YAML, never printed), checking base URLs
(https unless loopback), building one keep-alive ``httpx.AsyncClient`` per
provider instance, and running the in-process emulator for
``base_url: sandbox``. Adapters never know which they talk to.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import __version__
from .errors import BlocklistError, CredentialError
from .models import ProviderInstance, ProvidersFile
from .providers import ProviderAdapter, adapter_class
from .providers.base import clamped
from .retry import DEFAULT_POLICY
from .sandbox import Emulator, emulator_class
from .sandbox.base import EmulatorTransport

SANDBOX = "sandbox"
SANDBOX_BASE_URL = "http://sandbox.invalid"
DEFAULT_TIMEOUT = 30.0
#: seconds an idle connection to a provider is kept (httpx's default is 5): a plan
#: reads every provider at once, and the connections of a read done in seconds sit
#: idle while another takes minutes, then through the plan's comparison; the apply
#: then had to connect again (each connection a few turns of a busy event loop, and
#: a TLS handshake). A server that closes one first is seen doing so; one closed just
#: as a request goes fails that request as a dropped connection, which is retried.
KEEPALIVE_S = 60.0


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every client of the process shares: httpx's default (certifi's
    CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), loaded once. Each client would
    otherwise load the bundle again (30-100 ms a client, on the event loop: the client
    of a provider that cannot be read is first opened by apply, and held its first
    request back by that much)."""
    return httpx.create_ssl_context()


def provider_client(
    base_url: str,
    *,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    limits: httpx.Limits | None = None,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | None = None,
    **options: Any,
) -> ProviderClient:
    """The client of one provider instance: httpx's API over aiohttp's transport
    (``reconciler.transport``: a request costs the event loop half the CPU), TLS as
    ``tls_context`` unless ``verify`` says otherwise; ``options`` go to httpx (event
    hooks, say). The adapters' tests build their clients here too, so they prove the
    transport that runs."""
    # here, not at the top: aiohttp builds its TLS contexts as it is imported (~115 ms and
    # 9 MiB of a 100 000-number plan), and a sandbox's clients answer in process
    from .transport import AiohttpTransport

    limits = limits or httpx.Limits()
    verify = verify or tls_context()
    return ProviderClient(
        base_url=base_url,
        timeout=timeout,
        limits=limits,
        headers=headers,
        verify=verify,  # for the proxies httpx mounts from the environment
        transport=AiohttpTransport(limits, verify),
        **options,
    )


class ProviderClient(httpx.AsyncClient):
    """httpx's client without two costs it pays on every request (~80 us of the
    event loop's ~2 ms a batched request), each with the same outcome as httpx's:

    - the request path merged with the base URL (~50 us: two URL parses) is kept
      per path string, for as long as the base URL is the same;
    - a response is handed to the cookie jar only when it sets a cookie (~30 us
      building urllib's request and response views of it); ``http.cookiejar``
      reads nothing but ``Set-Cookie`` and ``Set-Cookie2``.
    """

    #: merged URLs kept at most (a remove by id has a path of its own per number)
    MERGED_URLS = 512

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _ResponseCookies(self._cookies)
        self._merged: dict[str, tuple[httpx.URL, httpx.URL]] = {}

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._cookies = _ResponseCookies(cookies)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if type(url) is not str:
            return super()._merge_url(url)
        base = self.base_url
        kept = self._merged.get(url)
        if kept is not None and kept[0] is base:
            return kept[1]
        merged = super()._merge_url(url)
        if kept is not None or len(self._merged) < self.MERGED_URLS:
            self._merged[url] = (base, merged)
        return merged


class _ResponseCookies(httpx.Cookies):
    """A jar that skips a response setting no cookie (see ``ProviderClient``)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def base_url_problem(url: str) -> str | None:
    """Why ``url`` may not be used (None if fine): non-loopback URLs must be https."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: {url!r}"
    if parts.scheme == "https" or is_loopback(parts.hostname):
        return None
    return f"{url!r} is not https (only loopback addresses may use plain http)"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_credentials(
    name: str, inst: ProviderInstance, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Credential values from the environment; a missing variable names itself."""
    env = os.environ if env is None else env
    caps = adapter_class(inst.type).capabilities
    sandbox = inst.base_url == SANDBOX
    out: dict[str, str] = {}
    missing: list[str] = []
    for key in caps.credential_keys + caps.optional_credential_keys:
        ref = inst.credentials.get(key)
        if ref is None:
            if not sandbox and key not in caps.optional_credential_keys:
                missing.append(f"credentials.{key} is not configured")
            continue
        value = env.get(ref.env)
        if value:
            why = credential_problem(value)
            if why:
                missing.append(f"environment variable {ref.env} (credentials.{key}) {why}")
                continue
            out[key] = value
        elif not sandbox:
            missing.append(f"environment variable {ref.env} (credentials.{key}) is not set")
    if missing:
        raise CredentialError(f"provider {name}: " + "; ".join(missing))
    if sandbox and not set(caps.credential_keys) <= set(out):
        out = dict(emulator_class(inst.type).credentials)  # the sandbox accepts its own
    return out


def credential_problem(value: str) -> str | None:
    """Why a credential value cannot be sent (it goes into HTTP headers, paths and
    bodies), or None. Says what is wrong, never the value."""
    if value != value.strip():
        ends = "a newline" if value.endswith(("\n", "\r")) else "white space"
        return f"starts or ends with {ends} (e.g. from `echo` or a file): remove it"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "contains a control character"
    if not value.isascii():
        return "contains non-ASCII characters (credentials travel in HTTP headers: ASCII only)"
    return None


def sandbox_dir(root: Path) -> Path:
    """Where in-process emulators keep their live state: ``.blocklist/sandbox``."""
    return work_dir(root) / "sandbox"


def work_dir(root: Path) -> Path:
    """``.blocklist/`` inside the configuration directory: its state, audit log and
    sandbox, never shared with another configuration."""
    return root.resolve() / ".blocklist"


def per_type(spec: str | None, types: tuple[str, ...]) -> dict[str, str | None]:
    """``VALUE`` for every type, or ``TYPE:VALUE;TYPE:VALUE`` per type (the form of
    ``--faults``, ``--dialect`` and their environment variables)."""
    out: dict[str, str | None] = dict.fromkeys(types)
    for part in (spec or "").split(";"):
        part = part.strip()
        if not part:
            continue
        head, sep, rest = part.partition(":")
        if sep and head in types:
            out[head] = rest.strip()
        elif sep and "=" not in head:
            raise ValueError(f"unknown provider type {head!r}")
        else:
            for name in types:
                out[name] = part
    return out


def dialect_for(type_name: str, spec: str | None) -> str | None:
    """The dialect ``spec`` (as ``per_type`` reads it) gives ``type_name``; a bare name
    applies only to the emulators that have a dialect of that name."""
    from .sandbox import emulator_types

    chosen = per_type(spec, emulator_types()).get(type_name)
    if chosen and ":" not in (spec or "") and chosen not in emulator_class(type_name).dialects:
        return None
    return chosen


class Connections:
    """The adapters of one run, with their clients. Use as an async context manager."""

    def __init__(
        self, config: ProvidersFile, root: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.root = root
        self.env = os.environ if env is None else env
        self.adapters: dict[str, ProviderAdapter] = {}
        self.emulators: dict[str, Emulator] = {}
        self._clients: list[httpx.AsyncClient] = []
        if any(inst.base_url != SANDBOX for inst in config.providers.values()):
            # aiohttp's import (``provider_client``) now, where a provider is reached
            # over the network: not in the way of the first request of an apply
            from . import transport  # noqa: F401

    def opened(self, name: str) -> ProviderAdapter | None:
        """The adapter of provider instance ``name`` if it is open already, else None
        (never opens one: safe from another thread)."""
        return self.adapters.get(name)

    def write_limits(self, name: str) -> tuple[int, int]:
        """(numbers a write request, requests at once) of provider instance ``name``, as
        its adapter clamps them, without opening it (safe from another thread)."""
        inst = self.config.providers[name]
        caps = adapter_class(inst.type).capabilities
        return (
            clamped(inst.batch_size, caps.batch_limit),
            clamped(inst.concurrency, caps.concurrency_limit),
        )

    def adapter(self, name: str) -> ProviderAdapter:
        """The adapter of provider instance ``name``, opened on first use."""
        if name in self.adapters:
            return self.adapters[name]
        inst = self.config.providers[name]
        cls = adapter_class(inst.type)
        credentials = resolve_credentials(name, inst, self.env)
        caps = cls.capabilities
        _, concurrency = self.write_limits(name)
        timeout = httpx.Timeout(inst.timeout or DEFAULT_TIMEOUT, connect=10.0)
        # every request of an adapter holds one of its ``concurrency`` slots: as many
        # connections suffice, and each spare idle one is probed (a poll) per request
        limits = httpx.Limits(
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=KEEPALIVE_S,
        )
        headers = {"User-Agent": f"blocklist/{__version__}"}
        if inst.base_url == SANDBOX:
            emulator = self.emulator(name)
            client = httpx.AsyncClient(
                base_url=SANDBOX_BASE_URL,
                transport=EmulatorTransport(emulator),
                timeout=timeout,
                headers=headers,
            )
        else:
            client = provider_client(
                inst.base_url or caps.default_base_url,
                timeout=timeout,
                limits=limits,
                headers=headers,
            )
        self._clients.append(client)
        options: dict[str, object] = {
            "concurrency": inst.concurrency,  # adapters clamp both to the type's limits
            "batch_size": inst.batch_size,
        }
        if caps.auth_modes:
            options["auth_mode"] = inst.auth_mode or caps.auth_modes[0]
        region = inst.default_region or caps.default_region
        if region:
            options["default_region"] = region.upper()
        adapter = cls(name, client, credentials, options)
        adapter.read_policy = DEFAULT_POLICY  # each read request re-sent on its own
        self.adapters[name] = adapter
        return adapter

    def emulator(self, name: str) -> Emulator:
        """The in-process emulator behind a ``base_url: sandbox`` instance."""
        if name not in self.emulators:
            inst = self.config.providers[name]
            faults = inst.sandbox_faults or self.env.get("BLOCKLIST_SANDBOX_FAULTS")
            dialect = inst.sandbox_dialect or dialect_for(
                inst.type, self.env.get("BLOCKLIST_SANDBOX_DIALECT")
            )
            try:
                self.emulators[name] = emulator_class(inst.type)(
                    state_path=sandbox_dir(self.root) / f"{name}.json",
                    faults=faults,
                    dialect=dialect,
                )
            except ValueError as exc:  # an unknown dialect or a bad fault spec
                raise BlocklistError(f"provider {name} (sandbox): {exc}") from None
        return self.emulators[name]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
