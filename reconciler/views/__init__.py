"""Views: every renderer of the tool's values, for terminals, PR comments and machines.

A view only reads a value (a ``Plan``, an ``AuditReport``, an ``ApplyReport``, ...)
and returns text; it never computes what the value does not say, never prints,
and never looks at the environment (the CLI passes colour and masking in). The
helpers all views share (numbers, dates, masking, cleaning, the markdown budget)
live in ``views.format``.
"""
