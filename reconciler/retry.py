"""Retry policy for provider requests: exponential backoff with jitter, honouring
Retry-After, bounded in attempts and total time. Built on tenacity.

One policy serves both kinds of retry: a request that failed whole (429, 5xx,
timeouts, dropped connections: ``RetryableError``) and the numbers a provider
answered for one by one but did not carry out (``retry_if_result``). ``AuthError``
and every other error propagate at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
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
    either way, so that requests throttled together do not all come back together.

    The Retry-After is read from the error of a failed attempt, or from the
    ``retry_after`` attribute of an attempt's result (numbers answered "later")."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = wait_exponential_jitter(
            multiplier=policy.initial, max=policy.max_wait, jitter=policy.initial
        )

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is None:
            after = None
        elif outcome.failed:
            after = getattr(outcome.exception(), "retry_after", None)
        else:
            after = getattr(outcome.result(), "retry_after", None)
        if after is not None:
            jitter = random.uniform(0, self.policy.initial * 2 ** (state.attempt_number - 1))
            return min(
                float(after) + min(jitter, self.policy.max_wait), self.policy.max_retry_after
            )
        return self.backoff(state)


def retrying(
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    again: Callable[[Any], bool] | None = None,
    before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
) -> AsyncRetrying:
    """``await retrying(policy)(fn)`` or ``async for attempt in retrying(): ...``.

    ``again(result)`` says whether a result still needs another attempt (per-number
    retries); when the attempts run out, the last result is returned as it is, and
    the last error is raised as it is."""
    retry = retry_if_exception_type(RetryableError)
    if again is not None:
        retry = retry | retry_if_result(again)
    return AsyncRetrying(
        retry=retry,
        wait=_Wait(policy),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_seconds),
        before_sleep=before_sleep,
        retry_error_callback=_last_outcome if again is not None else None,
        reraise=True,
    )


def _last_outcome(state: RetryCallState) -> Any:
    assert state.outcome is not None
    return state.outcome.result()  # the last result, or the last error raised again
