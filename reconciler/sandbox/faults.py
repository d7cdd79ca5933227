"""Fault injection for the emulators: what to break, how often, reproducibly.

A ``FaultSpec`` is parsed from a short string such as
``latency=50ms,jitter=10ms,5xx=0.1,429=0.05,retry_after=1,reset=0.02,timeout=0.01,drop=0.05,partial=0.05,reason=Try again,seed=7``.
``reason`` is the text a provider gives for an injected per-number failure (any
words but a comma), so tests can prove adapters do not depend on our wording.
Every decision draws from one seeded ``random.Random`` so that the same seed and
the same request order inject the same faults.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field, fields

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


def _seconds(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 50ms or 1.5s)")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value


@dataclass
class FaultSpec:
    """Rates are probabilities per request (``partial`` per number)."""

    latency: float = 0.0  # seconds from a request's arrival to its answer
    jitter: float = 0.0  # plus uniform 0..jitter seconds
    error_5xx: float = 0.0
    burst_429: float = 0.0  # chance a request starts a 429 burst lasting retry_after seconds
    retry_after: float = 1.0
    reset: float = 0.0  # connection dropped before the request is processed
    timeout: float = 0.0  # no answer until the client gives up
    drop: float = 0.0  # "commit then drop": the write is applied, the answer is lost
    partial: float = 0.0  # per-number failure, where the API reports per number
    reason: str = ""  # its words ("": each emulator's own default)
    seed: int = 0

    _KEYS = {
        "latency": "latency",
        "jitter": "jitter",
        "5xx": "error_5xx",
        "429": "burst_429",
        "retry_after": "retry_after",
        "reset": "reset",
        "timeout": "timeout",
        "drop": "drop",
        "partial": "partial",
        "reason": "reason",
        "seed": "seed",
    }

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        spec = cls()
        if not text:
            return spec
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            attr = cls._KEYS.get(key.strip())
            if not sep or attr is None:
                known = ", ".join(cls._KEYS)
                raise ValueError(f"unknown fault {part!r} (known: {known})")
            if attr in ("latency", "jitter", "retry_after"):
                setattr(spec, attr, _seconds(value))
            elif attr == "seed":
                setattr(spec, attr, int(value))
            elif attr == "reason":
                spec.reason = value.strip()
            else:
                rate = float(value)
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"fault rate {key}={value} must be between 0 and 1")
                setattr(spec, attr, rate)
        return spec

    @property
    def active(self) -> bool:
        return any(
            getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("seed", "retry_after", "reason")
        )


@dataclass
class Faults:
    """The running fault injector of one emulator (thread-safe)."""

    spec: FaultSpec = field(default_factory=FaultSpec)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.spec.seed)
        self._lock = threading.Lock()
        self._burst_until = 0.0

    def _draw(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def delay(self) -> float:
        s = self.spec
        if not s.latency and not s.jitter:
            return 0.0
        with self._lock:
            return s.latency + (self._rng.uniform(0, s.jitter) if s.jitter else 0.0)

    def before(self, now: float) -> str | None:
        """A fault to inject before processing: '429', '5xx', 'reset', 'timeout' or None."""
        s = self.spec
        if self._burst_until > now:
            return "429"
        if self._draw(s.burst_429):
            self._burst_until = now + s.retry_after
            return "429"
        if self._draw(s.error_5xx):
            return "5xx"
        if self._draw(s.reset):
            return "reset"
        if self._draw(s.timeout):
            return "timeout"
        return None

    def retry_after_left(self, now: float) -> int:
        return max(1, int(round(self._burst_until - now)))

    def drop_after_commit(self) -> bool:
        return self._draw(self.spec.drop)

    def fail_number(self) -> bool:
        return self._draw(self.spec.partial)


def monotonic() -> float:
    return time.monotonic()
