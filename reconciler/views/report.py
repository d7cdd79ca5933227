"""The apply report as text: per target what was done and what failed, then
every failure with the provider's own reason."""

from __future__ import annotations

from ..report import ApplyReport
from .format import clean, group_thousands, mask_number, mask_text


def render_report(report: ApplyReport, *, mask: bool) -> str:
    lines = []
    data = report.to_dict()
    for t in data["targets"]:
        done = ", ".join(f"{group_thousands(n)} {a}" for a, n in t["done"].items()) or "nothing"
        failed = ", ".join(f"{group_thousands(n)} {a}" for a, n in t["failed"].items())
        lines.append(f"{t['name']}: done {done}" + (f"; FAILED {failed}" if failed else ""))
    if report.failures:
        n = len(report.failures)
        lines.append(f"{group_thousands(n)} failure{'s' if n != 1 else ''}:")
        for f in report.failures:
            number = mask_number(f.number) if mask else f.number
            reason = mask_text(f.reason) if mask else f.reason
            lines.append(f"  {f.target} {f.action} {number}: {clean(reason)}")
    if report.interrupted:
        lines.append("Apply interrupted: what was in flight is recorded; run apply again.")
    elif report.ok:
        lines.append("Apply complete.")
    else:
        lines.append("Apply finished with failures.")
    return "\n".join(lines)
