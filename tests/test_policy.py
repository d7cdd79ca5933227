"""Policy as code (``policy:`` in providers.yaml), against the sandbox: required
metadata and protected ranges are validation errors at ``file:line``, all at
once; max_removes and per-target / per-list thresholds make a plan unsafe; the
executor re-checks protected ranges whatever plan it is given."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.apply import Executor, Guard
from reconciler.cli import main
from reconciler.connections import Connections
from reconciler.desired import load_desired
from reconciler.errors import ConfigError
from reconciler.plan import Change, Plan, TargetPlan
from reconciler.policy import ProtectedRanges
from reconciler.state import open_state

AT = "2026-11-23T00:00:00Z"


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    return result


def add_policy(project: Path, text: str) -> None:
    providers = project / "blocklists" / "providers.yaml"
    providers.write_text(providers.read_text() + "policy:\n" + text)


def problems(project: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_desired(project / "blocklists", "blocklists")
    return [str(p) for p in exc.value.problems]


def plan_json(*extra: str) -> dict:
    result = run("plan", "--format", "json", "--at", AT, *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_required_metadata_is_checked_on_every_entry_at_its_line(project: Path) -> None:
    add_policy(project, '  required_metadata:\n    ticket: "^(TS|OPS)-[0-9]+$"\n')
    (project / "blocklists" / "bulk.yaml").write_text(
        "version: 1\nname: bulk\ntargets: [{provider: kaleyra, channel: sms}]\n"
        "entries_from: rows.csv\n"
    )
    (project / "blocklists" / "rows.csv").write_text(
        "number,ticket\n+919822222222,TS-9\n+919833333333,JIRA-1\n+919844444444,\n"
    )
    found = problems(project)
    rule = "(policy.required_metadata at blocklists/providers.yaml:46)"
    assert found == [
        "blocklists/fraud.yaml:14:5: missing required metadata 'ticket' " + rule,
        "blocklists/fraud.yaml:19:5: missing required metadata 'ticket' " + rule,
        "blocklists/fraud.yaml:22:5: missing required metadata 'ticket' " + rule,
        "blocklists/fraud.yaml:26:5: missing required metadata 'ticket' " + rule,
        "blocklists/fraud.yaml:27:5: missing required metadata 'ticket' " + rule,
        "blocklists/rows.csv:3:1: ticket 'JIRA-1' does not match '^(TS|OPS)-[0-9]+$' "
        "(policy.required_metadata at blocklists/providers.yaml:46)",
        "blocklists/rows.csv:4:1: missing required metadata 'ticket' " + rule,
        "blocklists/spam.yaml:12:5: missing required metadata 'ticket' " + rule,
        "blocklists/spam.yaml:17:5: missing required metadata 'ticket' " + rule,
        "blocklists/spam.yaml:20:5: missing required metadata 'ticket' " + rule,
    ]
    # block then insists on a ticket, and writes nothing without one
    fraud = project / "blocklists" / "fraud.yaml"
    before = fraud.read_text()
    assert run("block", "+919876500001", "--list", "fraud-callers").exit_code == 1
    assert fraud.read_text() == before


def test_a_bad_pattern_and_bad_ranges_are_errors_at_their_line(project: Path) -> None:
    add_policy(
        project,
        '  required_metadata: {ticket: "(["}\n'
        "  protected_ranges:\n"
        '    - "1800"\n'
        '    - {from: "+14155550199", to: "+14155550100"}\n'
        "  max_removes: -1\n"
        "  safety:\n"
        "    targets: {kaleyra/whatsapp: {max_remove_fraction: 0.1}}\n",
    )
    found = problems(project)
    assert found[0].startswith("blocklists/providers.yaml:45:")
    assert "invalid regular expression '(['" in found[0]
    assert found[1].startswith("blocklists/providers.yaml:47:") and "'1800'" in found[1]
    assert found[2].startswith("blocklists/providers.yaml:48:")
    assert "'from' must not be greater than 'to'" in found[2]
    assert found[3].startswith("blocklists/providers.yaml:49:") and "max_removes" in found[3]
    assert len(found) == 4

    providers = project / "blocklists" / "providers.yaml"
    providers.write_text(providers.read_text().split("policy:")[0])
    add_policy(
        project,
        "  safety:\n    targets: {kaleyra/whatsapp: {}}\n    lists: {ghost: {}}\n",
    )
    assert problems(project) == [
        "blocklists/providers.yaml:46:15: policy.safety.targets: 'kaleyra/whatsapp' is not a "
        "declared target (declared: kaleyra/sms, lox24/7116, ozonetel/fraud-callers, "
        "phonely/support-bot, wooxy/account)",
        "blocklists/providers.yaml:47:13: policy.safety.lists: 'ghost' is not a declared list "
        "(declared: fraud-callers, sms-spam)",
    ]


def test_protected_prefixes_and_ranges_are_never_declared(project: Path) -> None:
    add_policy(
        project,
        "  protected_ranges:\n"
        '    - "+1415"             # the team\'s own DIDs\n'
        '    - {from: "+919845012300", to: "+919845012399"}\n'
        '    - "+1800"\n',
    )
    assert problems(project) == [
        "blocklists/fraud.yaml:19:5: +14155550123 (written '+14155550123') is in the "
        "protected range +1415 (blocklists/providers.yaml:46) and may not be blocked",
        "blocklists/fraud.yaml:26:5: +919845012345 (written '0091-98450-12345') is in the "
        "protected range +919845012300..+919845012399 (blocklists/providers.yaml:47) and "
        "may not be blocked",
    ]
    fraud = project / "blocklists" / "fraud.yaml"
    text = fraud.read_text()
    fraud.write_text(
        text.replace(
            '  - number: "+14155550123"\n    added: 2026-11-01\n    ttl: 90d'
            "                              # expires = added + ttl\n",
            "",
        ).replace('  - "0091-98450-12345"                    # 00 international prefix\n', "")
    )
    assert run("validate").exit_code == 0
    refused = run("block", "+18005550123", "--list", "fraud-callers")
    assert refused.exit_code == 1
    assert "is in the protected range +1800 (blocklists/providers.yaml:48)" in refused.stderr


def test_the_executor_re_checks_protected_ranges(project: Path) -> None:
    directory = project / "blocklists"
    desired = load_desired(directory)
    target = desired.targets["kaleyra/sms"]
    plan = Plan(
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
        [
            TargetPlan(
                target, True, [Change("add", "+18005550123"), Change("add", "+14155550150")], 3, ""
            )
        ],
    )
    ranges = ProtectedRanges(
        {"+1800": "providers.yaml:50"}, (("+14155550100", "+14155550199", "p:51"),)
    )
    sandbox = directory / ".blocklist" / "sandbox" / "kaleyra.json"

    async def go():
        with open_state("sqlite", path=directory / ".blocklist" / "state.db") as state:
            async with Connections(desired.config, directory) as conns:
                guard = Guard.of(plan, desired.protected, ranges)
                return await Executor(conns, state, guard=guard).run(plan)

    before = hashlib.sha256(sandbox.read_bytes()).hexdigest() if sandbox.exists() else None
    report = asyncio.run(go())
    reasons = {f.number: f.reason for f in report.failures}
    assert reasons == {
        "+18005550123": "refused: in the protected range +1800 (policy, providers.yaml:50), "
        "never blocked",
        "+14155550150": "refused: in the protected range +14155550100..+14155550199 (policy, "
        "p:51), never blocked",
    }
    assert report.batches == 0
    after = hashlib.sha256(sandbox.read_bytes()).hexdigest() if sandbox.exists() else None
    assert after == before


def test_max_removes_makes_a_plan_unsafe(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(
        fraud.read_text().replace(
            '  - "(080) 4567 8901"                     # Bengaluru landline\n', ""
        )
    )
    assert plan_json()["safe"] is True  # 5 removes: the default thresholds let it pass
    add_policy(project, "  max_removes: 4\n")
    plan = plan_json()
    assert plan["safe"] is False
    reasons = {t["name"]: t.get("unsafe_reasons") for t in plan["targets"]}
    assert all(reasons.values()), reasons
    refused = run("apply", "--auto-approve", "--at", AT)
    assert refused.exit_code == 1
    assert "the plan would remove or expire 5 numbers in all, more than policy.max_removes 4" in (
        refused.stderr
    )


def test_per_target_and_per_list_thresholds(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    spam = project / "blocklists" / "spam.yaml"
    spam.write_text(spam.read_text().split('  - number: "+91 98123 45678"')[0])
    assert plan_json()["safe"] is True
    add_policy(
        project,
        "  safety:\n"
        "    targets:\n"
        "      kaleyra/sms: {min_existing: 1, max_remove_fraction: 0.05}\n",
    )
    plan = plan_json()
    unsafe = {t["name"] for t in plan["targets"] if not t["safe"]}
    assert unsafe == {"kaleyra/sms"}

    providers = project / "blocklists" / "providers.yaml"
    providers.write_text(providers.read_text().split("policy:")[0])
    # the list's share: sms-spam put 4 numbers on each target and now removes 1 (25 %)
    add_policy(
        project,
        "  safety:\n    lists:\n      sms-spam: {min_existing: 4, max_remove_fraction: 0.2}\n",
    )
    plan = plan_json()
    reasons = {t["name"]: t.get("unsafe_reasons", []) for t in plan["targets"]}
    assert reasons["kaleyra/sms"] == [
        "list sms-spam would remove or expire 1 of its 4 entries here (25% > 20%)"
    ]
    assert not reasons["ozonetel/fraud-callers"]  # sms-spam does not target it
