"""The apply report: what an apply did, target by target, and every failure with
the provider's own reason.

A value the executor fills in and the views render; ``ApplyReportDocument`` is
its one JSON definition (``apply --report FILE``, the audit log record) and
generates ``schemas/apply-report.schema.json``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .expiry import iso

FORMAT_VERSION = 1


@dataclass
class Failure:
    target: str
    number: str
    action: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "target": self.target,
            "number": self.number,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass
class ApplyReport:
    started: dt.datetime
    finished: dt.datetime | None = None
    done: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    batches: int = 0
    #: the signal that stopped the apply ("SIGINT", "SIGTERM"), if one did
    signal: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted

    def failed_counts(self) -> dict[str, Counter]:
        out: dict[str, Counter] = defaultdict(Counter)
        for f in self.failures:
            out[f.target][f.action] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed_counts()
        names = sorted(set(self.done) | set(failed))
        return {
            "format_version": FORMAT_VERSION,
            "started": iso(self.started),
            "finished": iso(self.finished),
            "ok": self.ok,
            "interrupted": self.interrupted,
            "batches": self.batches,
            "targets": [
                {
                    "name": n,
                    "done": dict(sorted(self.done[n].items())),
                    "failed": dict(sorted(failed[n].items())),
                }
                for n in names
            ],
            "failures": [f.to_dict() for f in self.failures],
        }


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FailureDocument(_Doc):
    target: str
    number: str
    action: str
    reason: str


class TargetReportDocument(_Doc):
    name: str
    done: dict[str, int]
    failed: dict[str, int]


class ApplyReportDocument(_Doc):
    """``apply --report FILE``."""

    format_version: Literal[1]
    started: str
    finished: str | None
    ok: bool
    interrupted: bool
    batches: int
    targets: list[TargetReportDocument]
    failures: list[FailureDocument]


def report_schema() -> dict[str, object]:
    """The JSON Schema of the apply report (``schemas/apply-report.schema.json``)."""
    schema = ApplyReportDocument.model_json_schema()
    schema["title"] = "blocklist apply report"
    return schema
