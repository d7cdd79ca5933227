"""The registry of provider types: one adapter module per type, found here.

Every module of this package (except ``base``) holds one provider type's
adapter, a ``ProviderAdapter`` subclass with its ``type_name`` and
``capabilities``: that class is the type's one registration (DNSControl's
``RegisterDomainServiceProviderType``). Everything else asks this registry:
the models (which types and scope fields exist), target naming, connections
(default base URL, credential keys), planning (native expiry, attributes) and
the ``providers`` command. Adding a provider type means adding its adapter
module here and its emulator module under ``reconciler.sandbox``; nothing else.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Capabilities, ProviderAdapter

_registry: Registry[type[ProviderAdapter]] = Registry(__name__, __path__, ProviderAdapter, {"base"})


def register(cls: type[ProviderAdapter]) -> type[ProviderAdapter]:
    """Register an adapter class under its ``type_name`` (modules of this package are
    registered on discovery; tests may register a toy type)."""
    return _registry.register(cls)


def unregister(type_name: str) -> None:
    _registry.unregister(type_name)


def provider_types() -> tuple[str, ...]:
    """Every registered provider type, in registration order."""
    return _registry.names()


def adapter_class(type_name: str) -> type[ProviderAdapter]:
    """The adapter class of a provider type; KeyError for an unknown type."""
    return _registry.get(type_name)


def scope_fields() -> dict[str, tuple[str, ...]]:
    """Provider type -> the target keys it knows (scope fields, then attributes)."""
    return {
        name: (*cls.capabilities.scope_fields, *cls.capabilities.attribute_fields)
        for name, cls in ((n, adapter_class(n)) for n in provider_types())
    }


__all__ = [
    "Capabilities",
    "ProviderAdapter",
    "adapter_class",
    "provider_types",
    "register",
    "scope_fields",
    "unregister",
]
