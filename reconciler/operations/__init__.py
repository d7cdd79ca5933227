"""Operations: plan, apply, audit, import and why as functions that return values.

Each takes its options and an injected ``ui.UI`` (notices, confirmation,
progress) and returns a value (``PlanResult``, ``ApplyResult``, ``AuditReport``,
``ImportResult``, ``WhyReport``) for the views to render. None of them prints,
prompts, uses click or looks at the environment beyond what ``ci`` provides.
"""
