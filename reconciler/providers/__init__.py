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

import importlib
import pkgutil

from .base import Capabilities, ProviderAdapter

_NOT_ADAPTERS = frozenset({"base"})
_registry: dict[str, type[ProviderAdapter]] = {}
_discovered = False


def register(cls: type[ProviderAdapter]) -> type[ProviderAdapter]:
    """Register an adapter class under its ``type_name`` (modules of this package are
    registered on discovery; tests may register a toy type)."""
    _registry[cls.type_name] = cls
    return cls


def unregister(type_name: str) -> None:
    _registry.pop(type_name, None)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_ADAPTERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, ProviderAdapter)
                and value is not ProviderAdapter
                and value.__module__ == module.__name__
                and getattr(value, "type_name", None)
            ):
                _registry.setdefault(value.type_name, value)


def provider_types() -> tuple[str, ...]:
    """Every registered provider type, in registration order."""
    _discover()
    return tuple(_registry)


def adapter_class(type_name: str) -> type[ProviderAdapter]:
    """The adapter class of a provider type; KeyError for an unknown type."""
    _discover()
    return _registry[type_name]


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
