"""``blocklist block`` / ``unblock`` over the CLI against the sandbox: edit in place
(comments and layout kept), validate before writing, print the diff; ``--apply``
(break-glass) applies just those numbers to the list's targets at once, under
every safety rule of apply, and records ``break-glass`` with the actor."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main

AT = "2026-11-23T00:00:00Z"
SANDBOX_FILES = ("ozonetel", "kaleyra", "wooxy", "phonely", "lox24")


def run(*args: str, input: str | None = None, env: dict | None = None):
    result = CliRunner().invoke(main, list(args), input=input, env=env)
    text = result.output + result.stderr
    assert "Traceback" not in text, text
    return result


def fraud(project: Path) -> Path:
    return project / "blocklists" / "fraud.yaml"


def on_provider(project: Path, number: str) -> set[str]:
    """The emulators whose live state holds ``number`` (in any wire format)."""
    folder = project / "blocklists" / ".blocklist" / "sandbox"
    digits = number.lstrip("+")
    return {
        name
        for name in SANDBOX_FILES
        if (folder / f"{name}.json").exists() and digits in (folder / f"{name}.json").read_text()
    }


def audit_log(project: Path) -> list[dict]:
    path = project / "blocklists" / ".blocklist" / "audit.log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def plan_json() -> dict:
    result = run("plan", "--format", "json", "--at", AT)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_block_edits_in_place_validates_and_prints_the_diff(project: Path) -> None:
    before = fraud(project).read_text()
    result = run(
        "block",
        "098765 00001",  # national, read with the list's default_region (IN)
        "--list",
        "fraud-callers",
        "--reason",
        "sim box",
        "--ticket",
        "TS-77",
        "--no-color",
    )
    assert result.exit_code == 0, result.stderr
    after = fraud(project).read_text()
    assert after == before + '  - number: "+919876500001"\n    reason: sim box\n    ticket: TS-77\n'
    assert result.stdout.startswith("--- a/blocklists/fraud.yaml\n+++ b/blocklists/fraud.yaml\n")
    assert '+  - number: "+919876500001"' in result.stdout
    assert "1 number added" in result.stdout
    assert run("validate").exit_code == 0

    # a short entry when only the number is given, in the list's quoting
    assert run("block", "+919876500002", "--list", "fraud-callers").exit_code == 0
    assert fraud(project).read_text().endswith('  - "+919876500002"\n')


def test_block_never_repeats_a_number_it_updates_it(project: Path) -> None:
    result = run("block", "+91 98765 43211", "--list", "fraud-callers", "--expires", "2027-09-01")
    assert result.exit_code == 0, result.stderr
    text = fraud(project).read_text()
    assert text.count("43211") == 1
    assert "expires: 2027-09-01                   # UTC midnight" in text  # comment kept
    assert "Updated +919876543211: expires: 2027-03-01 -> 2027-09-01" in result.stdout

    again = run("block", "+919876543210", "--list", "fraud-callers")
    assert again.exit_code == 0
    assert "is in the list already (blocklists/fraud.yaml:14)" in again.stdout
    assert "No change to blocklists/fraud.yaml" in again.stdout


def test_a_block_that_breaks_validation_writes_nothing(project: Path) -> None:
    before = fraud(project).read_text()
    result = run("block", "+18005550100", "--list", "fraud-callers")
    assert result.exit_code == 1
    assert "is protected (blocklists/providers.yaml:43) and may not be blocked" in result.stderr
    assert fraud(project).read_text() == before


def test_an_unknown_list_names_the_known_lists(project: Path) -> None:
    result = run("block", "+919876500001", "--list", "fraud")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: unknown list 'fraud' (lists: fraud-callers, sms-spam)"


def test_unblock_removes_and_an_undeclared_number_is_an_error(project: Path) -> None:
    before = fraud(project).read_text()
    missing = run("unblock", "+919876543210", "+919999999999", "--list", "fraud-callers")
    assert missing.exit_code == 1
    assert (
        "list fraud-callers (blocklists/fraud.yaml) does not declare +919999999999"
        in missing.stderr
    )
    assert fraud(project).read_text() == before  # nothing at all was removed

    result = run("unblock", "0091-98450-12345", "--list", "fraud-callers", "--no-color")
    assert result.exit_code == 0, result.stderr
    assert '-  - "0091-98450-12345"                    # 00 international prefix' in result.stdout
    assert fraud(project).read_text() == before.replace(
        '  - "0091-98450-12345"                    # 00 international prefix\n', ""
    )


def test_bulk_block_from_stdin_and_ttl_from_today(project: Path) -> None:
    numbers = "".join(f"+9198765{i:05d}\n" for i in range(200)) + "# a comment\n\n"
    result = run(
        "block",
        "-",
        "--list",
        "sms-spam",
        "--ttl",
        "30d",
        "--at",
        "2026-12-01T10:00:00Z",
        input=numbers,
    )
    assert result.exit_code == 0, result.stderr
    assert "200 numbers added" in result.stdout
    text = (project / "blocklists" / "spam.yaml").read_text()
    assert text.count("    added: 2026-12-01\n    ttl: 30d\n") == 200
    assert run("validate").exit_code == 0


def test_dry_run_prints_the_diff_and_writes_nothing(project: Path) -> None:
    before = fraud(project).read_text()
    result = run("block", "+919876500001", "--list", "fraud-callers", "--dry-run")
    assert result.exit_code == 0 and '+  - "+919876500001"' in result.stdout
    assert "Would change blocklists/fraud.yaml" in result.stdout
    assert fraud(project).read_text() == before


def test_break_glass_block_reaches_every_provider_type_and_nothing_else(project: Path) -> None:
    pending = plan_json()  # a fresh sandbox: the shipped entries are still to add
    assert any(c["number"] == "+918045678901" for t in pending["targets"] for c in t["changes"])
    assert not on_provider(project, "+918045678901")

    result = run(
        "block",
        "+919876500009",
        "--list",
        "fraud-callers",
        "--ticket",
        "TS-1",
        "--apply",
        "--at",
        AT,
        env={"GITHUB_ACTOR": "alice"},
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Commit blocklists/fraud.yaml" in result.stderr
    assert on_provider(project, "+919876500009") == set(SANDBOX_FILES)
    # an unrelated pending change stays unapplied
    assert not on_provider(project, "+918045678901")
    after = plan_json()
    numbers = {c["number"] for t in after["targets"] for c in t["changes"] if c["action"] == "add"}
    assert "+919876500009" not in numbers and "+918045678901" in numbers

    (record,) = audit_log(project)
    assert record["kind"] == "break-glass" and record["actor"] == "alice"
    assert record["command"] == "block" and record["list"] == "fraud-callers"
    assert record["numbers"] == 1 and record["ok"] is True
    assert "commit" in record and len(record["target_names"]) == 5
    assert {t["name"]: t["done"] for t in record["targets"]}["kaleyra/sms"] == {"add": 1}


def test_break_glass_unblock_removes_from_the_providers(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    assert on_provider(project, "+918045678901") == set(SANDBOX_FILES)
    result = run("unblock", "(080) 4567 8901", "--list", "fraud-callers", "--apply", "--at", AT)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not on_provider(project, "+918045678901")
    assert plan_json()["summary"]["remove"] == 0
    assert audit_log(project)[-1]["command"] == "unblock"


def test_break_glass_keeps_the_safety_rules(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    providers = project / "blocklists" / "providers.yaml"
    providers.write_text(providers.read_text() + "policy:\n  max_removes: 2\n")
    result = run("unblock", "+919876543210", "--list", "fraud-callers", "--apply", "--at", AT)
    assert result.exit_code == 1
    assert "the break-glass plan is unsafe" in result.stderr
    assert "more than policy.max_removes 2 (blocklists/providers.yaml:45)" in result.stderr
    assert on_provider(project, "+919876543210") == set(SANDBOX_FILES)  # nothing removed
    assert "+919876543210" not in fraud(project).read_text()  # the edit stays: revert or commit

    forced = run("unblock", "+918045678901", "--list", "fraud-callers", "--apply", "--allow-unsafe")
    assert forced.exit_code == 0, forced.stdout + forced.stderr
    assert audit_log(project)[-1]["allow_unsafe"] is True


def test_break_glass_waits_for_no_one_holding_the_lock(project: Path) -> None:
    from reconciler.state import current_lock_info, open_state

    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    state = open_state("sqlite", path=project / "blocklists" / ".blocklist" / "state.db")
    state.acquire_lock(current_lock_info("apply"))
    try:
        result = run("block", "+919876500009", "--list", "fraud-callers", "--apply")
    finally:
        state.release_lock()
        state.close()
    assert result.exit_code == 1 and "state is locked by" in result.stderr
    assert not on_provider(project, "+919876500009")


def test_masked_output_another_directory_and_a_lock_timeout(project: Path) -> None:
    moved = project / "lists"
    (project / "blocklists").rename(moved)
    result = run(
        "block",
        "+919876500001",
        "--list",
        "fraud-callers",
        "-C",
        str(moved),
        "--mask-numbers",
        "--no-color",
        "--apply",
        "--lock-timeout",
        "5",
        "--at",
        AT,
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert '+  - "+91987*****01"' in result.stdout and "+919876500001" not in result.stdout
    assert (moved / "fraud.yaml").read_text().endswith('  - "+919876500001"\n')
