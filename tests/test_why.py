"""``blocklist why NUMBER`` against the in-process sandbox, on all five provider types:
the lists that declare a number, its live status per target (by number where the
adapter can ask so), state, the audit log, opt-outs and protected numbers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.domain import LiveEntry, Target
from reconciler.errors import ProviderError
from reconciler.operations.why import WhyOptions, run_why
from reconciler.providers import adapter_class
from reconciler.state import open_state

AT = "2026-11-23T00:00:00Z"
TARGETS = [
    "kaleyra/sms",
    "lox24/7116",
    "ozonetel/fraud-callers",
    "phonely/support-bot",
    "wooxy/account",
]


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in (result.output + result.stderr), result.stderr
    return result


def why_json(*args: str, code: int = 0) -> dict:
    result = run("why", *args, "--format", "json", "--at", AT)
    assert result.exit_code == code, result.output + result.stderr
    return json.loads(result.stdout)


def by_name(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["targets"]}


@pytest.fixture
def applied(project: Path) -> Path:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    return project


def test_before_any_apply_every_target_is_asked_and_nothing_is_in_state(project) -> None:
    doc = why_json("+919876543210")
    assert doc["kind"] == "blocklist-why" and doc["format_version"] == 1
    assert doc["number"] == "+919876543210" and doc["state"] is None
    assert doc["protected"] is None
    [declared] = doc["declarations"]
    assert declared["list"] == "fraud-callers" and declared["source"].endswith("fraud.yaml:14")
    assert [t["name"] for t in declared["targets"]] == TARGETS
    assert {t["name"]: t["attrs"] for t in declared["targets"]}["wooxy/account"] == {
        "reject_type": "invalid"
    }
    targets = by_name(doc)
    assert list(targets) == TARGETS
    # seeded live on four targets (not by this tool): the next plan adopts it there
    for name in ("kaleyra/sms", "lox24/7116", "phonely/support-bot", "wooxy/account"):
        assert targets[name]["live"]["status"] == "blocked", name
        assert targets[name]["next_plan"] == "adopt" and targets[name]["state"] is None
    # the provider types that can be asked by number are, the others read their list
    assert targets["kaleyra/sms"]["live"]["read"] == "by number"
    assert targets["lox24/7116"]["live"]["read"] == "whole list"
    assert targets["lox24/7116"]["live"]["provider_ids"]
    assert targets["wooxy/account"]["live"]["attrs"] == {"reject_type": "invalid"}
    ozonetel = targets["ozonetel/fraud-callers"]
    assert ozonetel["live"]["status"] == "not readable" and ozonetel["next_plan"] == "add"
    assert doc["blocked_on"] == [n for n in TARGETS if n != "ozonetel/fraud-callers"]


def test_after_an_apply_state_and_the_audit_log_are_shown(applied, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "support-lead")
    doc = why_json("+919876543211")
    targets = by_name(doc)
    assert doc["state"]["lineage"] and doc["audit"]["records"] == 1
    assert "is in its state record" in doc["audit"]["limit"]
    for name in TARGETS:
        t = targets[name]
        assert t["state"]["reason"] == "chargeback", name
        assert t["state"]["expires"] == "2027-03-01T00:00:00Z"
        assert t["state"]["source"].endswith("fraud.yaml:15")
        history = t["state"]["applied"]  # per number: when, by whom (state schema 3)
        assert history["first"] == history["last"] and history["by"], name
        assert t["next_plan"] == "no change", name
        [apply] = t["applies"]
        assert apply["actor"] and apply["done"].get("add", 0) >= 1 and apply["time"]
        assert t["failures"] == []
    assert targets["ozonetel/fraud-callers"]["live"]["status"] == "not readable"
    assert targets["lox24/7116"]["state"]["provider_ids"]  # lox24 removes by id


def test_a_national_number_is_read_as_the_list_that_declares_it(applied) -> None:
    doc = why_json("098765 43211")  # IN in fraud.yaml (DE would read it otherwise)
    assert doc["number"] == "+919876543211" and doc["written"] == "098765 43211"
    [declared] = doc["declarations"]
    assert declared["metadata"] == {"ticket": "TS-1234"}
    assert declared["expires"] == "2027-03-01T00:00:00Z" and declared["expired"] is False
    text = run("why", "098765 43211", "--at", AT).stdout
    assert text.startswith("+919876543211 (written '098765 43211')\nBlocked on 4 targets")
    assert "ticket TS-1234" in text and "blocklists/fraud.yaml:15  chargeback" in text


def test_opt_outs_are_told_where_the_provider_marks_them(project) -> None:
    wooxy = by_name(why_json("+919812300001"))["wooxy/account"]
    assert wooxy["live"]["status"] == "blocked" and wooxy["opt_out"] is True
    assert wooxy["next_plan"] == "unmanaged"
    lox24 = by_name(why_json("+4915112345601"))["lox24/7116"]
    assert lox24["live"]["status"] == "blocked" and lox24["opt_out"] is True
    kaleyra = by_name(why_json("+919812300002"))["kaleyra/sms"]  # a STOP reply
    assert kaleyra["live"]["status"] == "blocked" and kaleyra["opt_out"] is None
    assert kaleyra["opt_outs_unmarked"] is True
    text = run("why", "+919812300002", "--at", AT, "--target", "kaleyra").stdout
    assert "opt-out    cannot tell: kaleyra does not mark users' own opt-outs" in text


def test_a_protected_number_says_where_it_is_protected(project) -> None:
    doc = why_json("+18005550100")
    assert doc["protected"] == {"source": "blocklists/providers.yaml:43"}
    assert doc["declarations"] == [] and doc["blocked_on"] == []
    text = run("why", "+18005550100", "--at", AT).stdout
    assert "Protected: yes (blocklists/providers.yaml:43)" in text
    assert "Declared by no list." in text


def test_a_number_taken_out_of_the_lists_is_a_remove_with_its_record(applied) -> None:
    fraud = applied / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text().replace('  - "+919876543210"', "  # gone"))
    doc = why_json("+919876543210")
    assert doc["declarations"] == []
    for name, t in by_name(doc).items():
        assert t["declared"] is None and t["state"]["source"].endswith("fraud.yaml:14"), name
        assert t["next_plan"] == "remove", name


def test_failures_of_the_number_come_from_the_audit_log(applied) -> None:
    state = open_state("sqlite", path=applied / "blocklists" / ".blocklist" / "state.db")
    state.append_audit(
        {
            "time": "2026-11-24T10:00:00Z",
            "actor": "ops-bot",
            "host": "ci",
            "commit": "0123456789abcdef",
            "ok": False,
            "targets": [{"name": "phonely/support-bot", "done": {}, "failed": {"add": 1}}],
            "failures": [
                {
                    "target": "phonely/support-bot",
                    "number": "+919876543211",
                    "action": "add",
                    "reason": "agent busy",
                }
            ],
        }
    )
    state.close()
    phonely = by_name(why_json("+919876543211"))["phonely/support-bot"]
    assert phonely["failures"] == [
        {
            "time": "2026-11-24T10:00:00Z",
            "actor": "ops-bot",
            "commit": "0123456789abcdef",
            "action": "add",
            "reason": "agent busy",
        }
    ]
    assert [a["actor"] for a in phonely["applies"]][-1] == "ops-bot"
    text = run("why", "+919876543211", "--at", AT, "--target", "phonely").stdout
    assert "failure    2026-11-24T10:00:00Z by ops-bot: add failed: agent busy" in text
    assert "applies    2 applies wrote to this target: first " in text
    assert "last 2026-11-24T10:00:00Z by ops-bot at 0123456789ab" in text


def test_target_selection_masking_and_bad_input(project) -> None:
    doc = why_json("+919876543210", "--target", "kaleyra", "--target", "lox24/7116")
    assert [t["name"] for t in doc["targets"]] == ["kaleyra/sms", "lox24/7116"]
    masked = run("why", "+919876543210", "--at", AT, "--mask-numbers")
    assert "+919876543210" not in masked.stdout and "+91987*****10" in masked.stdout
    bad = run("why", "hello")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: 'hello' is not a phone number")
    unknown = run("why", "+919876543210", "--target", "nope")
    assert unknown.exit_code == 1 and "unknown target 'nope'" in unknown.stderr


def test_a_lookup_by_number_is_preferred_and_a_read_error_is_reported(project, monkeypatch) -> None:
    asked: list[tuple[str, list[str]]] = []

    async def lookup(self, target: Target, numbers):  # noqa: ANN001 - an adapter method
        asked.append((target.name, list(numbers)))
        return [LiveEntry(numbers[0], "0" + numbers[0][3:], provider_ids=("p-1",))]

    async def refused(self, target: Target):  # noqa: ANN001
        raise ProviderError(self.instance, "GET /v1/contacts", "HTTP 503: try later")

    monkeypatch.setattr(adapter_class("phonely"), "lookup", lookup, raising=False)
    monkeypatch.setattr(adapter_class("wooxy"), "refresh", refused)
    options = WhyOptions(project / "blocklists", "+919876543210", ("phonely", "wooxy"))
    report = asyncio.run(run_why(options))
    phonely, wooxy = report.targets
    assert asked == [("phonely/support-bot", ["+919876543210"])]
    assert phonely.live.status == "blocked" and phonely.live.read == "by number"
    assert wooxy.live.status == "error" and "HTTP 503" in (wooxy.live.error or "")
    assert wooxy.plan is None and report.errors == [f"wooxy/account: {wooxy.live.error}"]


def test_the_next_plan_says_what_an_update_changes(applied) -> None:
    fraud = applied / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text().replace("expires: 2027-03-01", "expires: 2027-06-01"))
    ozonetel = by_name(why_json("+919876543211"))["ozonetel/fraud-callers"]  # native expiry
    assert ozonetel["next_plan"] == "update"
    assert ozonetel["next_plan_changes"] == [
        {"attribute": "expires", "from": "2027-03-01T00:00:00Z", "to": "2027-06-01T00:00:00Z"}
    ]
    text = run("why", "+919876543211", "--at", AT, "--target", "ozonetel").stdout
    assert "next plan  update it: expires 2027-03-01 → 2027-06-01" in text


def test_a_number_in_a_protected_range_says_which_range(project) -> None:
    """Bug: why looked only at the single protected numbers, not policy ranges."""
    config = project / "blocklists" / "providers.yaml"
    config.write_text(config.read_text() + "policy:\n  protected_ranges: ['+1888']\n")
    doc = why_json("+18885550123")
    assert doc["protected"] == {"source": "range +1888 (blocklists/providers.yaml:45)"}
    text = run("why", "+18885550123", "--at", AT).stdout
    assert "Protected: yes (range +1888 (blocklists/providers.yaml:45))" in text
