"""The registry of provider emulators: one emulator module per provider type.

Every module of this package that holds an ``Emulator`` subclass with a
``type_name`` registers it (``base``, ``faults``, ``server`` and ``cli`` are the
sandbox's own machinery). ``emulator_class(type)`` runs the in-process sandbox
(``base_url: sandbox``) and ``blocklist sandbox`` serves every one on loopback.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Emulator

_NOT_EMULATORS = frozenset({"base", "faults", "server", "cli"})
_registry: dict[str, type[Emulator]] = {}
_discovered = False


def register(cls: type[Emulator]) -> type[Emulator]:
    """Register an emulator under its ``type_name`` (tests may register a toy)."""
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
        if info.name in _NOT_EMULATORS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Emulator)
                and value is not Emulator
                and value.__module__ == module.__name__
                and getattr(value, "type_name", None)
            ):
                _registry.setdefault(value.type_name, value)


def emulator_types() -> tuple[str, ...]:
    _discover()
    return tuple(_registry)


def emulator_class(type_name: str) -> type[Emulator]:
    """The emulator class of a provider type; KeyError for an unknown type."""
    _discover()
    return _registry[type_name]


__all__ = ["Emulator", "emulator_class", "emulator_types", "register", "unregister"]
