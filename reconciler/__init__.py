"""blocklist: a declarative blocklist-as-code reconciler."""

__version__ = "0.1.0"
