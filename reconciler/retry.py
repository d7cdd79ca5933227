"""Retry policy for provider requests: exponential backoff with jitter, honouring
Retry-After, bounded in attempts and total time. Built on tenacity.

Only ``RetryableError`` (429, 5xx, timeouts, dropped connections) is retried;
``AuthError`` and every other error propagate at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from .errors import RetryableError


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    total_seconds: float = 120.0
    initial: float = 0.1
    max_wait: float = 10.0
    max_retry_after: float = 60.0


DEFAULT_POLICY = RetryPolicy()


class _Wait:
    """Retry-After when the provider gave one, else exponential backoff; with jitter
    either way, so that requests throttled together do not all come back together."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = wait_exponential_jitter(
            multiplier=policy.initial, max=policy.max_wait, jitter=policy.initial
        )

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            jitter = random.uniform(0, self.policy.initial * 2 ** (state.attempt_number - 1))
            return min(
                float(after) + min(jitter, self.policy.max_wait), self.policy.max_retry_after
            )
        return self.backoff(state)


def retrying(policy: RetryPolicy = DEFAULT_POLICY) -> AsyncRetrying:
    """``async for attempt in retrying(): with attempt: ...``"""
    return AsyncRetrying(
        retry=retry_if_exception_type(RetryableError),
        wait=_Wait(policy),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_seconds),
        reraise=True,
    )
