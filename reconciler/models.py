"""Pydantic models of the two kinds of desired-state file.

The single source of truth for their structure: they validate input
(unknown keys rejected), and generate the JSON Schemas under ``schemas/``.
Entries are validated in bulk by the model of their file; per-number work
(normalisation, expiry, merging) happens in ``desired.py`` on a fast path.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROVIDER_TYPE_NAMES = ("ozonetel", "wooxy", "phonely", "kaleyra", "lox24")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TTL_PATTERN = r"^[1-9][0-9]*(h|d|w|mo|y)$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvRef(_Strict):
    """A value read from the environment at run time: ``{env: VAR_NAME}``."""

    env: str = Field(pattern=ENV_PATTERN, description="name of the environment variable")


class Safety(_Strict):
    """Plan safety thresholds (per target)."""

    min_existing: int = Field(10, ge=0, description="thresholds apply from this many entries")
    max_remove_fraction: float = Field(
        0.3, ge=0, description="removes+expires above this share of existing entries is unsafe"
    )
    max_add_fraction: float = Field(
        1.0, ge=0, description="adds above this share of existing entries is unsafe"
    )


class StateSettings(_Strict):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = Field(".blocklist/state.db", description="sqlite: database file, relative to -C")
    dsn: EnvRef | None = Field(None, description="postgres: DSN from the environment")
    lock_timeout: float = Field(0, ge=0, description="seconds to wait for the apply lock")


class ProviderInstance(_Strict):
    type: Literal["ozonetel", "wooxy", "phonely", "kaleyra", "lox24"]
    base_url: str | None = Field(
        None,
        description="API base URL; 'sandbox' runs the built-in emulator; non-loopback must be https",
    )
    credentials: dict[str, EnvRef] = Field(
        default_factory=dict, description="values come from the environment, never from YAML"
    )
    auth_mode: Literal["token", "basic"] | None = Field(None, description="ozonetel only")
    concurrency: int | None = Field(None, ge=1, description="clamped to the type's hard limit")
    batch_size: int | None = Field(None, ge=1, description="clamped to the type's hard limit")
    timeout: float | None = Field(None, gt=0, description="seconds per request")
    default_region: str | None = Field(
        None,
        description="ISO 3166 region for live numbers the provider stores without a "
        "country code (ozonetel: IN unless set)",
    )
    safety: Safety | None = None
    sandbox_faults: str | None = Field(
        None, description="sandbox only: fault spec, e.g. '5xx=0.1,429=0.05,seed=7'"
    )
    sandbox_dialect: str | None = Field(
        None,
        description="sandbox only: how the emulator answers where the docs are silent "
        "(`blocklist sandbox --help` lists the dialects)",
    )


class ProvidersFile(_Strict):
    """``blocklists/providers.yaml``."""

    version: Literal[1]
    providers: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ProviderInstance]
    state: StateSettings = StateSettings()
    protected: list[str] = Field(default_factory=list, description="numbers no list may block")
    safety: Safety = Safety()


class TargetSpec(_Strict):
    """Where a list's numbers go: a provider instance plus its scope."""

    provider: str = Field(description="provider instance name from providers.yaml")
    group: str | None = Field(None, description="ozonetel: block-number group name (2-50 chars)")
    channel: Literal["sms", "whatsapp", "voice"] | None = Field(None, description="kaleyra")
    reject_type: Literal["import", "invalid", "unsubscribe", "undeliverable"] | None = Field(
        None, description="wooxy: reject type of the numbers"
    )
    agent_id: str | None = Field(None, description="phonely: agent id")
    group_id: int | None = Field(None, ge=1, description="lox24: group id")
    mode: Literal["default", "exclusive"] = Field(
        "default", description="exclusive: this tool owns the whole scope and removes the rest"
    )


class Defaults(_Strict):
    reason: str | None = None
    expires: dt.datetime | dt.date | None = None
    ttl: str | None = Field(None, pattern=TTL_PATTERN)


class Entry(_Strict):
    """The long form of an entry; the short form is just the number."""

    number: str | int
    reason: str | None = None
    expires: dt.datetime | dt.date | None = Field(
        None, description="a date (UTC midnight) or an ISO datetime with a zone"
    )
    added: dt.datetime | dt.date | None = None
    ttl: str | None = Field(None, pattern=TTL_PATTERN, description="e.g. 90d, 12w, 6mo, 1y")
    ticket: str | int | None = None
    note: str | None = None
    owner: str | None = None
    labels: list[str] | None = None
    meta: dict[str, Any] | None = Field(None, description="free-form metadata, never sent")

    @field_validator("expires", "added")
    @classmethod
    def _zone_required(cls, value: dt.datetime | dt.date | None) -> dt.datetime | dt.date | None:
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise ValueError("a datetime needs a time zone (e.g. 2027-03-01T09:00:00Z)")
        return value


class ListFile(_Strict):
    """A list file, e.g. ``blocklists/fraud.yaml``."""

    version: Literal[1]
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    default_region: str | None = Field(
        None, description="ISO 3166 region for national-format numbers, e.g. IN"
    )
    targets: list[TargetSpec] = Field(min_length=1)
    defaults: Defaults = Defaults()
    entries: list[Entry | str | int] = Field(default_factory=list)
