"""End to end through the CLI against the in-process sandbox: plan, apply, re-plan,
saved plans, staleness, safety, CI surfaces and state commands."""

from __future__ import annotations

import gc
import json
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main

AT = "2026-11-23T00:00:00Z"


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input)
    assert "Traceback" not in (result.output + result.stderr), result.stderr
    assert gc.get_freeze_count() == 0  # no command leaves the heap frozen (gcpause)
    return result


def plan_json(*extra: str) -> dict:
    result = run("plan", "--format", "json", "--at", AT, *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_plan_apply_replan_is_empty_and_unmanaged_survive(project) -> None:
    first = plan_json()
    assert {t["name"] for t in first["targets"]} == {
        "kaleyra/sms",
        "lox24/7116",
        "ozonetel/fraud-callers",
        "phonely/support-bot",
        "wooxy/account",
    }
    unmanaged = first["summary"]["unmanaged"]
    assert unmanaged == 7 and first["summary"]["add"] == 38 and first["summary"]["adopt"] == 4
    ozonetel = next(t for t in first["targets"] if t["name"] == "ozonetel/fraud-callers")
    assert ozonetel["live_readable"] is False
    assert run("plan", "--detailed-exitcode", "--at", AT).exit_code == 2

    applied = run("apply", "--auto-approve", "--at", AT, "--report", "report.json")
    assert applied.exit_code == 0, applied.output + applied.stderr
    assert "Apply complete." in applied.output
    report = json.loads(Path("report.json").read_text())
    assert report["ok"] and report["failures"] == []

    again = run("plan", "--detailed-exitcode", "--at", AT)
    assert again.exit_code == 0, again.output
    assert "No changes." in again.output
    assert plan_json()["summary"]["unmanaged"] == unmanaged  # seeded opt-outs left alone

    state = run("state", "list", "--format", "json")
    assert state.exit_code == 0
    targets = json.loads(state.stdout)["targets"]
    assert len(targets["kaleyra/sms"]) == 10  # 9 added + 1 adopted
    audit = (project / "blocklists" / ".blocklist" / "audit.log.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["ok"] is True


def test_apply_needs_auto_approve_without_a_terminal(project) -> None:
    result = run("apply", "--at", AT)
    assert result.exit_code == 1
    assert "needs --auto-approve" in result.stderr


def test_saved_plan_applies_exactly_and_refuses_when_stale(project) -> None:
    assert run("plan", "--out", "p.json", "--at", AT, "--target", "kaleyra").exit_code == 0
    shown = run("show", "p.json", "--format", "json")
    assert json.loads(shown.stdout)["summary"]["add"] == 9
    assert run("apply", "p.json").exit_code == 0
    # the plan is now stale: state serial and live state moved on
    stale = run("apply", "p.json")
    assert stale.exit_code == 4
    assert "stale" in stale.stderr
    after = plan_json("--target", "kaleyra/sms")
    assert after["summary"]["add"] == 0


def test_unsafe_plan_is_refused_without_allow_unsafe(project) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    fraud = project / "blocklists" / "fraud.yaml"
    text = fraud.read_text()
    fraud.write_text(text.split("entries:")[0] + "entries: []\n")
    assert run("plan", "--detailed-exitcode", "--at", AT).exit_code == 3
    refused = run("apply", "--auto-approve", "--at", AT)
    assert refused.exit_code == 1
    assert "unsafe" in refused.stderr and "--allow-unsafe" in refused.stderr
    assert run("apply", "--auto-approve", "--allow-unsafe", "--at", AT).exit_code == 0
    assert run("plan", "--detailed-exitcode", "--at", AT).exit_code == 0


def test_github_step_summary_gets_the_markdown(project, monkeypatch) -> None:
    summary = project / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run("plan", "--at", AT).exit_code == 0
    text = summary.read_text()
    assert text.startswith("## blocklist plan: blocklists") and "kaleyra/sms" in text
    # eleven change lines (by number): shown open, not folded into <details>
    assert "```diff\n" in text and "<details>" not in text


def test_mask_numbers(project) -> None:
    out = run("plan", "--mask-numbers", "--at", AT).output
    assert "+91987*****10" in out and "+919876543210" not in out


def test_missing_credentials_and_unreachable_provider_are_one_line(project, monkeypatch) -> None:
    providers = project / "blocklists" / "providers.yaml"
    text = providers.read_text()
    providers.write_text(
        text.replace(
            "  kaleyra:\n    type: kaleyra\n    base_url: sandbox\n",
            "  kaleyra:\n    type: kaleyra\n",
        )
    )
    monkeypatch.delenv("KALEYRA_API_KEY", raising=False)
    result = run("plan", "--at", AT)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: provider kaleyra: environment variable KALEYRA_API_KEY (credentials.api_key) "
        "is not set; environment variable KALEYRA_SID (credentials.sid) is not set"
    )
    providers.write_text(
        text.replace(
            "  kaleyra:\n    type: kaleyra\n    base_url: sandbox\n",
            "  kaleyra:\n    type: kaleyra\n    base_url: http://127.0.0.1:9\n",
        )
    )
    monkeypatch.setenv("KALEYRA_API_KEY", "k-secret-value")
    monkeypatch.setenv("KALEYRA_SID", "HXSECRET")
    result = run("plan", "--at", AT, "--target", "kaleyra")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("Error: kaleyra: ")
    assert "connection failed" in result.stderr
    assert "k-secret-value" not in result.stderr and "HXSECRET" not in result.stderr


def test_unknown_target_and_bad_at(project) -> None:
    assert "unknown target 'nope'" in run("plan", "--target", "nope").stderr
    bad = run("plan", "--at", "2026-11-23T00:00:00")
    assert bad.exit_code == 1 and "needs a time zone" in bad.stderr


def test_providers_command_lists_five_types() -> None:
    out = json.loads(run("providers", "--format", "json").stdout)
    assert set(out) == {"ozonetel", "wooxy", "phonely", "kaleyra", "lox24"}
    assert out["wooxy"]["concurrency_limit"] == 10 and out["wooxy"]["remove_one_per_call"]
    assert out["ozonetel"]["can_list"] is False
    assert "batch limit" in run("providers").output
