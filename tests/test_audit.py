"""``blocklist audit`` (reconciler/audit.py): each kind of finding in a scenario that
sets it up, exit codes, the JSON shape, markdown for issues and step summaries, and
that an audit writes nothing to providers or state."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from test_plan_differential import NOW as WORLD_NOW
from test_plan_differential import obvious_plan_target, worlds

from reconciler.cli import main
from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from reconciler.operations.audit import CATEGORIES, AuditReport, audit_target
from reconciler.views.audit import render_markdown
from reconciler.views.format import MARKDOWN_LIMIT

AT = "2026-11-23T00:00:00Z"
TARGETS = {
    "kaleyra/sms",
    "lox24/7116",
    "ozonetel/fraud-callers",
    "phonely/support-bot",
    "wooxy/account",
}


@pytest.fixture
def project(project: Path) -> Path:
    """The shipped blocklists, applied at AT against a fresh sandbox."""
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    return project


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in (result.output + result.stderr), result.stderr
    return result


def audit_json(*extra: str, code: int | None = None) -> dict:
    result = run("audit", "--format", "json", "--at", AT, *extra)
    if code is not None:
        assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def target(report: dict, name: str) -> dict:
    return next(t for t in report["targets"] if t["name"] == name)


def numbers(entries: list[dict]) -> list[str]:
    return [e["number"] for e in entries]


def test_clean_after_apply_exit_0_and_json_shape(project) -> None:
    report = audit_json("--detailed-exitcode", code=0)
    assert report["format_version"] == 1 and report["kind"] == "blocklist-audit"
    assert report["now"] == AT and report["expiring_within"] == "14d"
    assert report["expiring_before"] == "2026-12-07T00:00:00Z"
    assert report["clean"] is True and report["findings"] == 0 and report["strict"] is False
    categories = [c for c, _, _ in CATEGORIES]
    assert set(report["summary"]) == {*categories, "unreadable_targets"}
    assert report["summary"]["unmanaged"] == 7 and report["summary"]["unreadable_targets"] == 1
    assert {t["name"] for t in report["targets"]} == TARGETS
    sms = target(report, "kaleyra/sms")
    assert set(sms) >= {
        "name",
        "provider",
        "type",
        "scope",
        "declared",
        "live_readable",
        "counts",
        "findings",
        "summary",
        *categories,
    }
    assert sms["scope"] == {"channel": "sms"} and sms["live_readable"] is True
    assert sms["counts"] == {"declared": 10, "live": 12, "managed": 10}
    assert numbers(sms["unmanaged"]) == ["+919812300002", "+919812300003"]
    lox = target(report, "lox24/7116")
    opt_out = next(e for e in lox["unmanaged"] if e["number"] == "+4915112345601")
    assert opt_out["opt_out"] is True


def test_unmanaged_entries_are_findings_only_with_strict(project) -> None:
    assert run("audit", "--at", AT, "--detailed-exitcode").exit_code == 0
    strict = run("audit", "--at", AT, "--detailed-exitcode", "--strict")
    assert strict.exit_code == 2
    assert "Findings: 7 findings: 7 unmanaged; 1 target not readable." in strict.stdout


def test_drift_a_managed_number_removed_by_hand(project) -> None:
    path = project / "blocklists" / ".blocklist" / "sandbox" / "kaleyra.json"
    data = json.loads(path.read_text())
    del data["channels"]["sms"]["+919876543211"]
    path.write_text(json.dumps(data))

    report = audit_json("--detailed-exitcode", code=2)
    sms = target(report, "kaleyra/sms")
    assert sms["drift"] == [
        {
            "number": "+919876543211",
            "reason": "chargeback",
            "expires": "2027-03-01T00:00:00Z",
            "source": "blocklists/fraud.yaml:15",
            "live": False,
        }
    ]
    assert report["findings"] == 1 and report["summary"]["drift"] == 1
    text = run("audit", "--at", AT).stdout
    assert "# kaleyra/sms: 1 finding" in text
    assert "drift" in text and "+919876543211" in text
    assert "Findings: 1 finding: 1 drift; 7 unmanaged (informational)" in text


def test_expired_entries_still_live(project) -> None:
    """At 2027-04-01 the chargeback entry (expires 2027-03-01) is expired and still live
    where expiry is emulated; Ozonetel expires natively, so it is not reported there."""
    report = audit_json("--at", "2027-04-01T00:00:00Z", "--detailed-exitcode", code=2)
    for name in ("kaleyra/sms", "lox24/7116", "phonely/support-bot", "wooxy/account"):
        expired = numbers(target(report, name)["expired_live"])
        assert "+919876543211" in expired, name
    assert target(report, "ozonetel/fraud-callers")["expired_live"] == []


def test_entries_expiring_within_the_window(project) -> None:
    """+919812345678 expires 2026-12-31: 38 days after AT."""
    assert audit_json("--detailed-exitcode", code=0)["summary"]["expiring"] == 0
    report = audit_json("--expiring-within", "40d", "--detailed-exitcode", code=2)
    sms = target(report, "kaleyra/sms")
    assert sms["expiring"] == [
        {
            "number": "+919812345678",
            "reason": "spam",
            "expires": "2026-12-31T00:00:00Z",
            "source": "blocklists/spam.yaml:20",
            "live": True,
        }
    ]
    assert report["summary"]["expiring"] == 3  # kaleyra, lox24, wooxy
    bad = run("audit", "--expiring-within", "2mo")
    assert bad.exit_code == 1 and "--expiring-within: invalid duration" in bad.stderr


def test_stale_state_after_an_entry_is_removed_without_applying(project) -> None:
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text().replace('  - "0091-98450-12345"', ""))
    report = audit_json("--detailed-exitcode", code=2)
    sms = target(report, "kaleyra/sms")
    assert numbers(sms["stale_state"]) == ["+919845012345"]
    assert sms["stale_state"][0]["live"] is True
    ozonetel = target(report, "ozonetel/fraud-callers")
    assert ozonetel["stale_state"] == [
        {
            "number": "+919845012345",
            "reason": "fraud",
            "expires": None,
            "source": "blocklists/fraud.yaml:26",
            "live": None,  # Ozonetel cannot be read
        }
    ]


def test_unreadable_targets_are_listed_and_checked_from_state(project) -> None:
    report = audit_json()
    ozonetel = target(report, "ozonetel/fraud-callers")
    assert ozonetel["live_readable"] is False and ozonetel["counts"]["live"] is None
    assert ozonetel["unmanaged"] == [] and ozonetel["drift"] == []
    text = run("audit", "--at", AT).stdout
    assert "# ozonetel/fraud-callers: 0 findings (live state not readable" in text
    assert "1 target not readable" in text
    # what needs no live state is still checked there: a new, unapplied entry
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text() + '  - "+919000000001"\n')
    only = audit_json("--target", "ozonetel", "--detailed-exitcode", code=2)
    assert [t["name"] for t in only["targets"]] == ["ozonetel/fraud-callers"]
    assert numbers(only["targets"][0]["not_applied"]) == ["+919000000001"]


def test_a_target_no_list_declares_any_more_is_audited_from_state(project) -> None:
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(
        fraud.read_text().replace("  - {provider: phonely, agent_id: support-bot}\n", "")
    )
    report = audit_json("--detailed-exitcode", code=2)
    orphan = target(report, "phonely/support-bot")
    assert orphan["declared"] is False and orphan["live_readable"] is False
    assert len(orphan["stale_state"]) == 6  # 5 added, 1 adopted
    only = audit_json("--target", "phonely/support-bot")
    assert [t["name"] for t in only["targets"]] == ["phonely/support-bot"]
    assert "no list declares this target" in run("audit", "--at", AT).stdout


def test_mismatch_of_a_provider_attribute(project) -> None:
    path = project / "blocklists" / ".blocklist" / "sandbox" / "wooxy.json"
    data = json.loads(path.read_text())
    data["entries"]["+919845012345"]["rejectType"] = "undeliverable"  # declared: invalid
    path.write_text(json.dumps(data))
    report = audit_json("--detailed-exitcode", code=2)
    (entry,) = target(report, "wooxy/account")["mismatch"]
    assert entry["number"] == "+919845012345"
    assert entry["changes"] == [
        {"attribute": "reject_type", "live": "undeliverable", "declared": "invalid"}
    ]


def test_audit_writes_nothing(project) -> None:
    sandbox = project / "blocklists" / ".blocklist" / "sandbox"
    before = {p.name: p.read_bytes() for p in sandbox.glob("*.json")}
    state_before = run("state", "list", "--format", "json").stdout
    audit_log = (project / "blocklists" / ".blocklist" / "audit.log.jsonl").read_text()
    for fmt in ("text", "markdown", "json"):
        assert run("audit", "--at", "2027-04-01T00:00:00Z", "--format", fmt).exit_code == 0
    assert {p.name: p.read_bytes() for p in sandbox.glob("*.json")} == before
    assert run("state", "list", "--format", "json").stdout == state_before  # serial too
    assert (project / "blocklists" / ".blocklist" / "audit.log.jsonl").read_text() == audit_log


def test_markdown_step_summary_and_masking(project, monkeypatch) -> None:
    summary = project / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run("audit", "--at", AT, "--expiring-within", "40d", "--mask-numbers")
    assert result.exit_code == 0
    text = summary.read_text()
    assert text.startswith("## blocklist audit") and "<details>" in text
    assert "+91981*****78" in text and "+919812345678" not in text
    assert "+919812345678" not in result.stdout
    md = run("audit", "--at", AT, "--format", "markdown").stdout
    assert "| target |" in md and "`ozonetel/fraud-callers`" in md


def test_markdown_stays_under_the_limit_for_huge_reports() -> None:
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    t = Target("kaleyra/sms", "kaleyra", "kaleyra", (("channel", "sms"),))
    managed = {f"+9198{i:08d}": ManagedEntry(f"+9198{i:08d}", reason="x" * 40) for i in range(5000)}
    audit = audit_target(t, {}, {}, managed, now, now)
    md = render_markdown(AuditReport(now, dt.timedelta(), "0d", [audit]), mask=False)
    assert len(md) < MARKDOWN_LIMIT and "…and" in md


def test_audit_target_categories_are_pure() -> None:
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    soon = now + dt.timedelta(days=3)
    t = Target("phonely/bot", "phonely", "phonely", (("agent_id", "bot"),))
    desired = {
        "+14155550100": DesiredEntry("+14155550100", source="l.yaml:1"),  # drift
        "+14155550101": DesiredEntry("+14155550101", expires=now, source="l.yaml:2"),  # expired
        "+14155550102": DesiredEntry("+14155550102", expires=soon, source="l.yaml:3"),  # soon
        "+14155550103": DesiredEntry("+14155550103", source="l.yaml:4"),  # not applied
    }
    live = {
        n: LiveEntry(n) for n in ("+14155550101", "+14155550102", "+14155550104", "+14155550105")
    }
    managed = {n: ManagedEntry(n) for n in ("+14155550100", "+14155550101", "+14155550102")}
    managed["+14155550105"] = ManagedEntry("+14155550105")  # stale: no longer declared
    audit = audit_target(t, desired, live, managed, now, now + dt.timedelta(days=14))
    got = {c: [e.number for e in audit.of(c)] for c, _, _ in CATEGORIES}
    assert got == {
        "drift": ["+14155550100"],
        "mismatch": [],
        "not_applied": ["+14155550103"],
        "expired_live": ["+14155550101"],
        "expiring": ["+14155550102"],
        "stale_state": ["+14155550105"],
        "pending": [],
        "unmanaged": ["+14155550104"],
    }
    assert audit.findings() == 5 and audit.findings(strict=True) == 6


def obvious_audit_entries(tp, desired, live, managed, now, until) -> dict:
    """audit_target's categories as first written: one Change per change of the plan,
    whole mappings sorted."""
    from reconciler.expiry import iso
    from reconciler.operations.audit import AuditEntry

    by_action: dict = {}
    for c in tp.changes:
        by_action.setdefault(c.action, []).append(c)

    def is_live(number):
        return (number in live) if live is not None else None

    def entry(c, is_it):
        return AuditEntry(c.number, c.reason, c.expires, c.source, is_it, c.attrs)

    out = {
        "drift": [entry(c, False) for c in by_action.get("readd", [])],
        "not_applied": [entry(c, is_live(c.number)) for c in by_action.get("add", [])],
        "expired_live": [entry(c, True) for c in by_action.get("expire", [])],
    }
    out["mismatch"] = [
        AuditEntry(
            c.number,
            c.reason,
            c.expires,
            c.source,
            True,
            c.attrs,
            changes=tuple(
                (k, old, iso(c.expires) if k == "expires" else dict(c.attrs).get(k))
                for k, old in c.before or ()
            ),
        )
        for c in by_action.get("update", [])
    ]
    out["expiring"] = [
        AuditEntry(e.number, e.reason, e.expires, e.source, is_live(n), e.attrs)
        for n, e in sorted(desired.items())
        if e.expires is not None and now < e.expires <= until
    ]
    out["stale_state"] = [
        AuditEntry(n, m.reason, m.expires, m.source, is_live(n), m.attrs)
        for n, m in sorted(managed.items())
        if n not in desired
    ]
    out["pending"] = [
        AuditEntry(n, m.pending, m.expires, m.source, is_live(n), m.attrs)
        for n, m in sorted(managed.items())
        if m.pending is not None
    ]
    unmanaged = []
    if live is not None:
        for n, e in sorted(live.items()):
            d = desired.get(n)
            if n not in managed and (d is None or (d.expires is not None and d.expires <= now)):
                unmanaged.append(AuditEntry(n, live=True, attrs=e.attrs, opt_out=e.opt_out))
    out["unmanaged"] = unmanaged
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_the_audit_of_a_fast_plan_is_the_obvious_audit(world) -> None:
    """audit_target reads a plan's adds as their declared entries (no Change each) and
    filters before it sorts: the same audit as one Change per change, all sorted."""
    from reconciler.plan import plan_target

    target, desired, live, managed, options = world
    options = {k: v for k, v in options.items() if k != "safety"}
    until = WORLD_NOW + dt.timedelta(days=40)
    fast = audit_target(target, desired, live, managed, WORLD_NOW, until, **options)
    tp = obvious_plan_target(target, desired, live, managed, WORLD_NOW, **options)
    assert fast.entries == obvious_audit_entries(tp, desired, live, managed, WORLD_NOW, until)
    assert plan_target(target, desired, live, managed, WORLD_NOW, **options).changes == tp.changes


def test_an_audit_keeps_the_heap_frozen_while_it_refreshes_and_unfreezes_after(
    project: Path, freeze_during_refresh
) -> None:
    """As a plan: the desired state (and state's entries) out of the collector's sight
    during the refresh, nothing left frozen once the report is built."""
    import asyncio
    import gc

    from reconciler.operations import audit as audit_op

    frozen = freeze_during_refresh(audit_op)
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    report = asyncio.run(audit_op.run_audit(audit_op.AuditOptions(project / "blocklists", now=now)))
    assert report.targets and frozen and frozen[0] > 0
    assert gc.get_freeze_count() == 0
