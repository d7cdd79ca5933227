"""One registry of classes found by module discovery, shared by the provider
adapters and their emulators: a type's module is its registration."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes of one kind by ``type_name``, found in a package's modules on first use.

    Every module of ``package`` (but those in ``skip`` and names starting with "_")
    that defines a subclass of ``base`` with a ``type_name`` registers it; tests may
    ``register`` a toy type and ``unregister`` it.
    """

    def __init__(self, package: str, path: Iterable[str], base: T, skip: Iterable[str]) -> None:
        self._package = package
        self._path = list(path)
        self._base = base
        self._skip = frozenset(skip)
        self._classes: dict[str, T] = {}
        self._discovered = False

    def register(self, cls: T) -> T:
        self._classes[cls.type_name] = cls
        return cls

    def unregister(self, type_name: str) -> None:
        self._classes.pop(type_name, None)

    def get(self, type_name: str) -> T:
        """The class of ``type_name``; KeyError for an unknown type."""
        self._discover()
        return self._classes[type_name]

    def names(self) -> tuple[str, ...]:
        """Every registered type, in registration order (modules by name)."""
        self._discover()
        return tuple(self._classes)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for info in sorted(pkgutil.iter_modules(self._path), key=lambda m: m.name):
            if info.name in self._skip or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{self._package}.{info.name}")
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, self._base)
                    and value is not self._base
                    and value.__module__ == module.__name__
                    and getattr(value, "type_name", None)
                ):
                    self._classes.setdefault(value.type_name, value)
