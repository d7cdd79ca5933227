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
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

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


E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
PREFIX_PATTERN = r"^\+[0-9]{1,15}$"


class NumberRange(_Strict):
    """Every number from ``from`` to ``to`` (both E.164, of the same length), inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: str = Field(alias="from", pattern=E164_PATTERN, description="first number (E.164)")
    end: str = Field(alias="to", pattern=E164_PATTERN, description="last number (E.164)")

    @model_validator(mode="after")
    def _ordered(self) -> NumberRange:
        if len(self.start) != len(self.end):
            raise ValueError("'from' and 'to' must have the same number of digits")
        if self.start > self.end:
            raise ValueError("'from' must not be greater than 'to'")
        return self


def _range_kind(value: Any) -> str:
    return "Range" if isinstance(value, dict | NumberRange) else "Prefix"


#: a prefix ('+1800') or a {from, to} range; the tags keep errors to the form written
ProtectedRange = Annotated[
    Annotated[str, Field(pattern=PREFIX_PATTERN), Tag("Prefix")]
    | Annotated[NumberRange, Tag("Range")],
    Discriminator(_range_kind),
]


class PolicySafety(_Strict):
    """Safety thresholds for one target or one list, over the instance's and the global."""

    targets: dict[str, Safety] = Field(
        default_factory=dict,
        description="target name (INSTANCE/SCOPE, as plans name it) -> thresholds of that "
        "target; they replace the instance's and the global thresholds",
    )
    lists: dict[str, Safety] = Field(
        default_factory=dict,
        description="list name -> thresholds of that list's share of each of its targets: "
        "the target's managed entries that state attributes to the list's files (the source "
        "recorded when they were applied), against the plan's changes whose source is one of "
        "those files; checked besides the target's own thresholds",
    )


class Policy(_Strict):
    """Rules enforced before anything reaches a provider (``policy:`` in providers.yaml)."""

    required_metadata: dict[str, str] = Field(
        default_factory=dict,
        description="metadata key -> regular expression (searched, as JSON Schema's pattern) "
        "that every entry's value of it must match, e.g. {ticket: '^TS-[0-9]+$'}; an entry "
        "may give the key itself, under meta:, or as a column of its entries_from file",
    )
    protected_ranges: list[ProtectedRange] = Field(
        default_factory=list,
        description="E.164 prefixes (e.g. '+1800' for a toll-free range) or {from, to} ranges "
        "that no list may block, besides the single numbers of 'protected'",
    )
    max_removes: int | None = Field(
        None,
        ge=0,
        description="a plan that would remove or expire more numbers than this, summed over its "
        "targets, is unsafe (apply refuses it without --allow-unsafe)",
    )
    safety: PolicySafety = PolicySafety()

    @field_validator("required_metadata")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for key, pattern in value.items():
            if key == "number":
                raise ValueError("'number' is not metadata")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{key}: invalid regular expression {pattern!r}: {exc}") from None
        return value


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
    policy: Policy = Policy()


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
    entries_from: str | list[str] | None = Field(
        None,
        description="more entries from a file beside this one (or several): a .csv with a "
        "header row ('number' required; 'reason', 'expires', 'added', 'ttl' and metadata "
        "columns optional) or a .txt with one number per line",
    )


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
