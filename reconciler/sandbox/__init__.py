"""Registry of provider emulators: type name -> emulator class (imported on first use)."""

from __future__ import annotations

import importlib

from .base import Emulator

_EMULATORS = {
    "ozonetel": "reconciler.sandbox.ozonetel:OzonetelEmulator",
    "wooxy": "reconciler.sandbox.wooxy:WooxyEmulator",
    "phonely": "reconciler.sandbox.phonely:PhonelyEmulator",
    "kaleyra": "reconciler.sandbox.kaleyra:KaleyraEmulator",
    "lox24": "reconciler.sandbox.lox24:Lox24Emulator",
}

EMULATOR_TYPES: tuple[str, ...] = tuple(_EMULATORS)


def emulator_class(type_name: str) -> type[Emulator]:
    """The emulator class of a provider type; KeyError for an unknown type."""
    module, _, attr = _EMULATORS[type_name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["EMULATOR_TYPES", "Emulator", "emulator_class"]
