"""The registry of provider emulators: one emulator module per provider type.

Every module of this package that holds an ``Emulator`` subclass with a
``type_name`` registers it (``base``, ``faults``, ``server`` and ``cli`` are the
sandbox's own machinery). ``emulator_class(type)`` runs the in-process sandbox
(``base_url: sandbox``) and ``blocklist sandbox`` serves every one on loopback.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Emulator

_registry: Registry[type[Emulator]] = Registry(
    __name__, __path__, Emulator, {"base", "faults", "server", "cli"}
)


def register(cls: type[Emulator]) -> type[Emulator]:
    """Register an emulator under its ``type_name`` (tests may register a toy)."""
    return _registry.register(cls)


def unregister(type_name: str) -> None:
    _registry.unregister(type_name)


def emulator_types() -> tuple[str, ...]:
    return _registry.names()


def emulator_class(type_name: str) -> type[Emulator]:
    """The emulator class of a provider type; KeyError for an unknown type."""
    return _registry.get(type_name)


__all__ = ["Emulator", "emulator_class", "emulator_types", "register", "unregister"]
