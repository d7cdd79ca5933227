"""Error types of the whole tool.

Each error carries the fields a renderer needs; only the CLI turns them into
text and exit codes. Nothing here may hold a credential value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One validation problem at a place in a file."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class BlocklistError(Exception):
    """Base of every expected failure: the CLI prints it on one line and exits 1."""

    exit_code = 1


class ConfigError(BlocklistError):
    """The desired state (YAML under blocklists/) is invalid; holds every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.message))
        first = self.problems[0] if self.problems else "invalid configuration"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{first}{more}")


class CredentialError(BlocklistError):
    """A credential is missing from the environment (names the variable, never a value)."""


class ProviderError(BlocklistError):
    """A provider answered something we cannot use (or could not be reached)."""

    def __init__(
        self, provider: str, endpoint: str, message: str, status: int | None = None
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.status = status
        self.reason = message
        where = f"{provider}: {endpoint}"
        if status is not None:
            where += f" (HTTP {status})"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        # rebuilt from its fields, not from its message (copy.copy, pickling): the
        # credential gate hands each refused request its own copy of the first refusal
        return (type(self), (self.provider, self.endpoint, self.reason, self.status), self.__dict__)


class AuthError(ProviderError):
    """401/403 or the provider's own "authentication failed": never retried."""


class RetryableError(ProviderError):
    """429, 5xx, timeouts, dropped connections: the request may be sent again."""

    def __init__(
        self,
        provider: str,
        endpoint: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, endpoint, message, status)
        self.retry_after = retry_after


class StateError(BlocklistError):
    """The state backend is missing, corrupt or unreachable."""


class LockError(StateError):
    """Another run holds the state lock."""


class StalePlanError(BlocklistError):
    """A saved plan no longer matches live state or state."""

    exit_code = 4


class UnsafePlanError(BlocklistError):
    """The plan crosses a safety threshold and --allow-unsafe was not given."""


class Interrupted(BlocklistError):
    """Ctrl-C (SIGINT, exit 130) or SIGTERM (what a CI runner sends on cancel, 143)."""

    CODES = {"SIGINT": 130, "SIGTERM": 143}

    def __init__(self, signal: str = "SIGINT") -> None:
        super().__init__(f"interrupted ({signal})")
        self.signal = signal
        self.exit_code = self.CODES.get(signal, 130)


class Differs(BlocklistError):
    """``plan --compare``: the plan now is not the reviewed one (exit 4, as apply)."""

    exit_code = 4
