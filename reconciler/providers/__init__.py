"""Registry of provider types: name -> adapter class (imported on first use)."""

from __future__ import annotations

import importlib

from .base import Capabilities, ProviderAdapter

_ADAPTERS = {
    "ozonetel": "reconciler.providers.ozonetel:OzonetelAdapter",
    "wooxy": "reconciler.providers.wooxy:WooxyAdapter",
    "phonely": "reconciler.providers.phonely:PhonelyAdapter",
    "kaleyra": "reconciler.providers.kaleyra:KaleyraAdapter",
    "lox24": "reconciler.providers.lox24:Lox24Adapter",
}

PROVIDER_TYPES: tuple[str, ...] = tuple(_ADAPTERS)


def adapter_class(type_name: str) -> type[ProviderAdapter]:
    """The adapter class of a provider type; KeyError for an unknown type."""
    module, _, attr = _ADAPTERS[type_name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["PROVIDER_TYPES", "Capabilities", "ProviderAdapter", "adapter_class"]
