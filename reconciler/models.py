"""Pydantic models of the two kinds of desired-state file.

The single source of truth for their structure: they validate input
(unknown keys rejected), and generate the JSON Schemas under ``schemas/``.
Entries are validated in bulk by the model of their file; per-number work
(normalisation, expiry, merging) happens in ``desired.py`` on a fast path.

What depends on the provider types (which types exist, the scope and attribute
keys of a target) comes from the provider registry, so a new provider type
needs no change here: ``targets.py`` checks a target's keys against its type,
and the schema functions below add the registered keys for editors.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .providers import adapter_class, provider_types

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
    path: str = Field(
        ".blocklist/state.db",
        description="sqlite: database file; relative paths are inside the configuration "
        "directory (-C), so two configurations never share a state",
    )
    dsn: EnvRef | None = Field(None, description="postgres: DSN from the environment")
    read_dsn: EnvRef | None = Field(
        None,
        description="postgres: a read-only DSN (a SELECT-only role) for plan, audit and why; "
        "apply uses dsn",
    )
    lock_timeout: float = Field(0, ge=0, description="seconds to wait for the apply lock")


class ProviderInstance(_Strict):
    type: str = Field(description="a registered provider type (see `blocklist providers`)")
    base_url: str | None = Field(
        None,
        description="API base URL; 'sandbox' runs the built-in emulator; non-loopback must be https",
    )
    credentials: dict[str, EnvRef] = Field(
        default_factory=dict, description="values come from the environment, never from YAML"
    )
    auth_mode: str | None = Field(
        None, description="for provider types with several auth modes (`blocklist providers`)"
    )
    concurrency: int | None = Field(None, ge=1, description="clamped to the type's hard limit")
    batch_size: int | None = Field(None, ge=1, description="clamped to the type's hard limit")
    timeout: float | None = Field(None, gt=0, description="seconds per request")
    default_region: str | None = Field(
        None,
        description="ISO 3166 region for live numbers the provider stores without a "
        "country code (some types default to their home region: `blocklist providers`)",
    )
    safety: Safety | None = None
    sandbox_faults: str | None = Field(
        None, description="sandbox only: fault spec, e.g. '5xx=0.1,429=0.05,seed=7'"
    )

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in provider_types():
            raise ValueError(
                f"unknown provider type {value!r} (known: {', '.join(provider_types())})"
            )
        return value

    sandbox_dialect: str | None = Field(
        None,
        description="sandbox only: how the emulator answers where the docs are silent "
        "(`blocklist sandbox --help` lists the dialects)",
    )


class ProvidersFile(_Strict):
    """``blocklists/providers.yaml``."""

    version: Literal[1]
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="this configuration's name (e.g. prod): in plan headings, PR comments "
        "and its state's identity; default: the directory's path in the repository",
    )
    providers: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ProviderInstance]
    state: StateSettings = StateSettings()
    protected: list[str] = Field(default_factory=list, description="numbers no list may block")
    safety: Safety = Safety()


class TargetSpec(BaseModel):
    """Where a list's numbers go: a provider instance plus its scope.

    The scope and attribute keys (e.g. a group, a channel) depend on the instance's
    provider type: they are kept here as given and checked by ``targets.py``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str = Field(description="provider instance name from providers.yaml")
    mode: Literal["default", "exclusive"] = Field(
        "default", description="exclusive: this tool owns the whole scope and removes the rest"
    )

    def fields(self) -> dict[str, Any]:
        """The scope and attribute keys given, with their values."""
        return dict(self.model_extra or {})


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


# -- JSON Schemas (with the registered provider types) ------------------------------------


def providers_file_schema() -> dict[str, Any]:
    """``schemas/providers.schema.json``: the model, with the registered types."""
    schema = ProvidersFile.model_json_schema()
    instance = schema["$defs"]["ProviderInstance"]["properties"]
    instance["type"]["enum"] = list(provider_types())
    modes = sorted({m for t in provider_types() for m in adapter_class(t).capabilities.auth_modes})
    if modes:
        instance["auth_mode"] = {
            "anyOf": [{"enum": modes}, {"type": "null"}],
            "default": None,
            "description": instance["auth_mode"]["description"],
        }
    return schema


def list_file_schema() -> dict[str, Any]:
    """``schemas/blocklist.schema.json``: the model, with every registered type's target
    keys (an editor then completes ``channel: sms`` and flags ``chanel``)."""
    schema = ListFile.model_json_schema()
    target = schema["$defs"]["TargetSpec"]
    properties = target.setdefault("properties", {})
    per_key: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for type_name in provider_types():
        cls = adapter_class(type_name)
        caps = cls.capabilities
        for key in (*caps.scope_fields, *caps.attribute_fields):
            per_key.setdefault(key, []).append((type_name, cls.field_schema(key)))
    for key, uses in sorted(per_key.items()):
        described = "; ".join(f"{t}: {s.get('description', key)}" for t, s in uses)
        bodies = [{k: v for k, v in s.items() if k != "description"} for _, s in uses]
        body = bodies[0] if all(b == bodies[0] for b in bodies) else {"anyOf": bodies}
        properties[key] = {**body, "description": described}
    target["additionalProperties"] = False
    return schema
