"""Operations: plan, apply, audit, import, why, block/unblock, fmt and expiring as
functions that return values.

Each takes its options and, where it talks to providers, an injected ``ui.UI``
(notices, confirmation, progress), and returns a value (``PlanResult``,
``ApplyResult``, ``AuditReport``, ``ImportResult``, ``WhyReport``, ``EditResult``,
``BreakGlassResult``, ``FmtResult``, ``ExpiryReport``) for the views to render. None
of them prints, prompts, uses click or looks at the environment beyond what ``ci``
provides.
"""
