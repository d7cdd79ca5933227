"""`blocklist state …` commands after an apply against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.state import LockInfo, current_lock_info, open_state

AT = "2026-11-23T00:00:00Z"


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def applied(project: Path) -> Path:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    return project


def test_state_before_any_apply_is_a_clear_error(project: Path) -> None:
    result = run("state", "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: no state yet (run `blocklist apply` first)"


def test_list_show_rm(applied) -> None:
    listed = run("state", "list")
    assert listed.exit_code == 0 and "# kaleyra/sms: 10 managed" in listed.stdout
    shown = run("state", "show", "+91 98765 43211")
    assert shown.exit_code == 0
    assert "kaleyra/sms: +919876543211" in shown.stdout and "chargeback" in shown.stdout
    assert run("state", "rm", "+919876543211", "--target", "kaleyra/sms").exit_code == 0
    assert (
        "+919876543211"
        not in json.loads(
            run("state", "list", "--format", "json", "--target", "kaleyra/sms").stdout
        )["targets"]["kaleyra/sms"]
    )
    missing = run("state", "rm", "+919876543211", "--target", "kaleyra/sms")
    assert missing.exit_code == 1 and "is not in state" in missing.stderr
    # forgotten, but still live: the next plan adopts it back without an API write
    plan = json.loads(run("plan", "--format", "json", "--at", AT, "--target", "kaleyra").stdout)
    assert plan["summary"]["adopt"] == 1 and plan["summary"]["add"] == 0


def test_export_import_round_trip_keeps_lineage(applied) -> None:
    before = json.loads(run("state", "list", "--format", "json").stdout)
    assert run("state", "export", "state.json").exit_code == 0
    exported = json.loads(Path("state.json").read_text())
    assert exported["lineage"] == before["lineage"]
    for db in (applied / "blocklists" / ".blocklist").glob(
        "state.db*"
    ):  # the sandbox's live state stays
        db.unlink()
    assert run("state", "import", "state.json").exit_code == 0
    after = json.loads(run("state", "list", "--format", "json").stdout)
    assert after["lineage"] == before["lineage"] and after["targets"] == before["targets"]
    assert run("plan", "--detailed-exitcode", "--at", AT).exit_code == 0
    refused = run("state", "import", "state.json")  # not empty, no --yes, no terminal
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    Path("bad.json").write_text("{not json")
    bad = run("state", "import", "bad.json", "--yes")
    assert bad.exit_code == 1 and "not a state export" in bad.stderr


def test_a_second_apply_fails_naming_the_holder_and_unlock_breaks_it(applied) -> None:
    state = open_state("sqlite", path=applied / "blocklists" / ".blocklist" / "state.db")
    holder = LockInfo("alice", "ci-runner-7", 4242, current_lock_info().since)
    state.acquire_lock(holder)
    try:
        result = run("apply", "--auto-approve", "--at", AT)
        assert result.exit_code == 1
        assert "state is locked by alice@ci-runner-7 (pid 4242, apply)" in result.stderr
        refused = run("state", "unlock")
        assert refused.exit_code == 1 and "--yes" in refused.stderr
        broke = run("state", "unlock", "--yes")
        assert broke.exit_code == 0 and "alice@ci-runner-7" in broke.stdout
        assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    finally:
        state.close()


def test_corrupt_state_is_reported_and_left_alone(applied) -> None:
    db = applied / "blocklists" / ".blocklist" / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (applied / "blocklists" / ".blocklist" / extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    result = run("plan", "--at", AT)
    assert result.exit_code == 1 and "state.db" in result.stderr
    assert db.read_bytes() == b"this is not a database" * 100


def test_state_mv_gives_a_renamed_target_its_managed_numbers(applied: Path) -> None:
    """Renaming Ozonetel's group in the lists would add every number to the new name
    and remove them from the old one; `state mv` first makes the next plan empty."""
    fraud = applied / "blocklists" / "fraud.yaml"
    before = json.loads(run("state", "list", "--format", "json").stdout)["targets"]
    moved = before["ozonetel/fraud-callers"]
    assert moved
    fraud.write_text(fraud.read_text().replace("group: fraud-callers", "group: fraud-team"))
    renamed = json.loads(run("plan", "--format", "json", "--at", AT, "--target", "ozonetel").stdout)
    assert renamed["summary"]["add"] == len(moved)  # without state mv: a whole new group

    done = run("state", "mv", "ozonetel/fraud-callers", "ozonetel/fraud-team")
    assert done.exit_code == 0, done.output
    assert f"Moved {len(moved)} managed entries" in done.stdout
    after = json.loads(run("state", "list", "--format", "json").stdout)["targets"]
    assert "ozonetel/fraud-callers" not in after and after["ozonetel/fraud-team"] == moved
    plan = run("plan", "--detailed-exitcode", "--at", AT, "--target", "ozonetel")
    assert plan.exit_code == 0, plan.stdout  # nothing to add, nothing to remove

    unknown = run("state", "mv", "ozonetel/fraud-callers", "ozonetel/other")
    assert (
        unknown.exit_code == 1 and "state has no target 'ozonetel/fraud-callers'" in unknown.stderr
    )
    taken = run("state", "mv", "ozonetel/fraud-team", "kaleyra/sms")
    assert taken.exit_code == 1 and "already has a target 'kaleyra/sms'" in taken.stderr
    other = run("state", "mv", "ozonetel/fraud-team", "kaleyra/whatsapp")
    assert other.exit_code == 1 and "different provider instances" in other.stderr
