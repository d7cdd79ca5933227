"""``blocklist import`` (reconciler/importer.py) end to end against the in-process
sandbox: import then plan shows no changes, Ozonetel refuses, output is deterministic,
opt-outs stay out, the file validates, one file per reject type, and the refusals."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.domain import LiveEntry, Target
from reconciler.models import ListFile
from reconciler.operations.imports import list_name, render_list_yaml, select_entries

AT = "2026-11-23T00:00:00Z"


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in (result.output + result.stderr), result.stderr
    return result


def target_plan(name: str) -> dict:
    result = run("plan", "--format", "json", "--at", AT, "--target", name)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["targets"][0]


def listed_numbers(path: Path) -> list[str]:
    return [str(n) for n in yaml.safe_load(path.read_text())["entries"]]


def sandbox_state(project: Path, provider: str) -> tuple[Path, dict]:
    """The emulator's live state file (seeded first if no run has created it yet)."""
    path = project / "blocklists" / ".blocklist" / "sandbox" / f"{provider}.json"
    if not path.exists():
        assert run("plan", "--at", AT).exit_code == 0
    return path, json.loads(path.read_text())


def test_import_writes_the_file_and_the_next_plan_adopts(project) -> None:
    """Import goes through plan (Terraform's import blocks): the file is the change,
    state is untouched until apply, so a branch's unmerged import cannot make another
    branch's plan remove the numbers."""
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    before = target_plan("kaleyra/sms")
    assert before["summary"]["unmanaged"] == 2
    state_before = run("state", "list", "--format", "json").stdout

    result = run("import", "kaleyra/sms", "--at", AT)
    assert result.exit_code == 0, result.stderr
    written = project / "blocklists" / "imported-kaleyra-sms.yaml"
    assert f"Wrote {Path('blocklists') / written.name} (2 entries)." in result.stdout
    assert "State is unchanged" in result.stdout and "adopt" in result.stdout
    assert listed_numbers(written) == ["+919812300002", "+919812300003"]
    assert run("state", "list", "--format", "json").stdout == state_before

    # on another branch (the file not merged), nothing is removed
    kept = written.read_text()
    written.unlink()
    other = target_plan("kaleyra/sms")
    assert other["summary"]["remove"] == 0 and other["summary"]["unmanaged"] == 2
    written.write_text(kept)

    planned = target_plan("kaleyra/sms")
    assert planned["summary"]["adopt"] == 2
    assert sum(planned["summary"].values()) - planned["summary"]["adopt"] == 0
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    after = target_plan("kaleyra/sms")
    assert after["summary"] == dict.fromkeys(after["summary"], 0)
    assert run("plan", "--detailed-exitcode", "--at", AT, "--target", "kaleyra/sms").exit_code == 0
    state = json.loads(run("state", "list", "--format", "json", "--target", "kaleyra/sms").stdout)
    adopted = {e["number"]: e for e in state["targets"]["kaleyra/sms"]}
    assert adopted["+919812300002"]["source"].startswith("blocklists/imported-kaleyra-sms.yaml:")


def test_import_adopt_now_records_state_at_once(project) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    result = run("import", "kaleyra/sms", "--at", AT, "--adopt-now")
    assert result.exit_code == 0, result.stderr
    assert "Adopted 2 entries of kaleyra/sms into state (no provider was called)." in (
        result.stdout
    )
    after = target_plan("kaleyra/sms")
    assert after["summary"] == dict.fromkeys(after["summary"], 0)


def test_import_of_an_undeclared_target_declares_it(project) -> None:
    """kaleyra/whatsapp is in no list: import declares it; the next plan adopts its entry."""
    result = run("import", "kaleyra/whatsapp", "--at", AT)
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load((project / "blocklists" / "imported-kaleyra-whatsapp.yaml").read_text())
    assert data["targets"] == [{"provider": "kaleyra", "channel": "whatsapp"}]
    assert data["name"] == "imported-kaleyra-whatsapp"
    planned = target_plan("kaleyra/whatsapp")
    assert planned["summary"]["adopt"] == 1 and planned["summary"]["add"] == 0
    # and a sandbox LOX24 group id is written as the integer the schema wants
    assert run("import", "lox24/7116", "--at", AT).exit_code == 0
    lox = yaml.safe_load((project / "blocklists" / "imported-lox24-7116.yaml").read_text())
    assert lox["targets"] == [{"provider": "lox24", "group_id": 7116}]


def test_import_of_ozonetel_exits_1_and_says_what_to_do(project) -> None:
    for name in ("ozonetel/fraud-callers", "ozonetel", "ozonetel/another-group"):
        result = run("import", name)
        assert result.exit_code == 1
        message = result.stderr.strip()
        assert message.startswith("Error: ozonetel/"), message
        assert "cannot list its entries" in message
        assert "Declare the numbers in a list" in message and "blocklist apply" in message
        assert "state tracks them" in message
    assert sorted(p.name for p in (project / "blocklists").iterdir()) == [
        "fraud.yaml",
        "providers.yaml",
        "spam.yaml",
    ]
    assert not (
        project / "blocklists" / ".blocklist" / "state.db"
    ).exists()  # refused before any state


def test_output_is_deterministic_and_sorted(project, tmp_path_factory) -> None:
    path, data = sandbox_state(project, "phonely")
    data["agents"]["support-bot"].update(
        {"919000000003": "+919000000003", "12025550100": "+1 202-555-0100"}
    )
    path.write_text(json.dumps(data))
    assert run("import", "phonely/support-bot", "--at", AT).exit_code == 0
    written = project / "blocklists" / "imported-phonely-support-bot.yaml"
    first = written.read_bytes()
    numbers = listed_numbers(written)
    assert numbers == sorted(numbers) and "+12025550100" in numbers  # normalised, sorted

    assert run("import", "phonely/support-bot", "--at", AT, "--force").exit_code == 0
    assert written.read_bytes() == first

    other = tmp_path_factory.mktemp("again")
    shutil.copytree(
        project / "blocklists", other / "blocklists", ignore=shutil.ignore_patterns("imported-*")
    )
    shutil.copytree(
        project / "blocklists" / ".blocklist" / "sandbox", other / ".blocklist" / "sandbox"
    )
    result = run("import", "phonely/support-bot", "--at", AT, "-C", str(other / "blocklists"))
    assert result.exit_code == 0, result.stderr
    assert (other / "blocklists" / written.name).read_bytes() == first


def test_opt_outs_are_not_imported_and_the_header_says_so(project) -> None:
    result = run("import", "lox24/7116", "--at", AT)
    assert result.exit_code == 0, result.stderr
    written = project / "blocklists" / "imported-lox24-7116.yaml"
    text = written.read_text()
    # +4915112345601 unsubscribed itself (an opt-out); +919876543210 is declared already
    assert listed_numbers(written) == ["+4915112345602"]
    assert "+4915112345601" not in text
    header = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "1 opt-out (the users' own" in header and "1 already declared" in header
    assert f"at {AT}" in header and "blocklist 0.1.0" in header and "lox24/7116" in header
    assert "Not imported: 1 opt-out" in result.stdout
    # the opt-out stays unmanaged; the imported entry is adopted, with its LOX24 phone id
    plan = target_plan("lox24/7116")
    unmanaged = [c["number"] for c in plan["changes"] if c["action"] == "unmanaged"]
    assert unmanaged == ["+4915112345601"]
    assert run("apply", "--auto-approve", "--at", AT, "--target", "lox24").exit_code == 0
    state = json.loads(run("state", "list", "--format", "json", "--target", "lox24").stdout)
    entry = next(e for e in state["targets"]["lox24/7116"] if e["number"] == "+4915112345602")
    assert entry["provider_ids"]


def test_written_file_validates_against_the_schema_and_loader(project) -> None:
    assert run("import", "wooxy/account", "--at", AT).exit_code == 0
    written = project / "blocklists" / "imported-wooxy-account.yaml"
    text = written.read_text()
    assert text.splitlines()[0] == (
        "# yaml-language-server: $schema=../schemas/blocklist.schema.json"
    )
    ListFile.model_validate(yaml.safe_load(text))  # the model the schema is generated from
    result = run("validate")
    assert result.exit_code == 0 and result.stdout.startswith("Valid: 4 files, 3 lists")
    # the wooxy seed: +14155550199 (import) is imported; +919812300001 (unsubscribe) is an
    # opt-out; +919876543210 (invalid) is declared by fraud.yaml
    assert yaml.safe_load(text)["targets"] == [{"provider": "wooxy", "reject_type": "import"}]
    assert listed_numbers(written) == ["+14155550199"]


def test_several_reject_types_make_one_file_each(project) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    path, data = sandbox_state(project, "wooxy")
    created = next(iter(data["entries"].values()))["createdAt"]
    for number, kind in (
        ("+447911123457", "undeliverable"),
        ("+447911123458", "invalid"),
        ("+18005550100", "invalid"),  # protected: never written to a list
        ("+4470", "invalid"),  # the provider holds it, but it is no valid number
    ):
        data["entries"][number] = {"rejectType": kind, "createdAt": created}
    path.write_text(json.dumps(data))

    result = run("import", "wooxy", "--at", AT)
    assert result.exit_code == 0, result.stderr
    lists = project / "blocklists"
    files = sorted(p.name for p in lists.glob("imported-*.yaml"))
    assert files == [
        "imported-wooxy-account-import.yaml",
        "imported-wooxy-account-invalid.yaml",
        "imported-wooxy-account-undeliverable.yaml",
    ]
    invalid = yaml.safe_load((lists / files[1]).read_text())
    assert invalid["name"] == "imported-wooxy-account-invalid"
    assert invalid["targets"] == [{"provider": "wooxy", "reject_type": "invalid"}]
    assert invalid["entries"] == ["+447911123458"]
    assert "1 protected, 1 invalid" in result.stdout
    planned = target_plan("wooxy/account")
    assert planned["summary"]["adopt"] == 3 and planned["summary"]["remove"] == 0
    assert run("apply", "--auto-approve", "--at", AT, "--target", "wooxy").exit_code == 0
    assert run("plan", "--detailed-exitcode", "--at", AT, "--target", "wooxy").exit_code == 0


def test_refusals_overwrite_out_of_dir_and_unknown_targets(project, tmp_path) -> None:
    assert run("import", "kaleyra/whatsapp", "--at", AT).exit_code == 0
    again = run("import", "kaleyra/whatsapp", "--at", AT)
    assert again.exit_code == 1 and "exists: pass --force" in again.stderr

    outside = run("import", "kaleyra/whatsapp", "--out", str(tmp_path / "x.yaml"))
    assert outside.exit_code == 1 and "is not inside blocklists" in outside.stderr

    custom = run("import", "phonely/support-bot", "--out", "blocklists/team/phonely.yaml")
    assert custom.exit_code == 0, custom.stderr
    text = (project / "blocklists" / "team" / "phonely.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schemas/blocklist.schema.json")

    unknown = run("import", "nope/x")
    assert unknown.exit_code == 1 and "unknown target 'nope/x'" in unknown.stderr
    ambiguous = run("import", "kaleyra")  # kaleyra/sms and kaleyra/whatsapp are declared now
    assert ambiguous.exit_code == 1 and "several possible targets" in ambiguous.stderr
    bad_scope = run("import", "kaleyra/fax")
    assert bad_scope.exit_code == 1 and "channel must be one of" in bad_scope.stderr


def test_nothing_to_import_writes_nothing(project) -> None:
    assert run("apply", "--auto-approve", "--at", AT, "--target", "phonely").exit_code == 0
    assert run("import", "phonely/support-bot", "--at", AT).exit_code == 0  # +14155550142
    result = run("import", "phonely/support-bot", "--at", AT, "--out", "blocklists/more.yaml")
    assert result.exit_code == 0
    assert "Nothing to import from phonely/support-bot" in result.stdout
    assert not (project / "blocklists" / "more.yaml").exists()


def test_selection_and_rendering_are_pure() -> None:
    target = Target("wooxy/account", "wooxy", "wooxy")
    live = {
        "+14155550199": LiveEntry("+14155550199", attrs=(("reject_type", "import"),)),
        "+919812300001": LiveEntry(
            "+919812300001", attrs=(("reject_type", "unsubscribe"),), opt_out=True
        ),
        "+14155550123": LiveEntry("+14155550123", attrs=(("reject_type", "import"),)),
    }
    sel = select_entries(live, declared=[], protected=[], attribute_fields=("reject_type",))
    assert (sel.live, sel.opt_outs, sel.imported) == (3, 1, 2)
    group = sel.groups[0]
    group.name = list_name(target)
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    text = render_list_yaml(target, group, sel, now=now, schema_ref="s.json")
    data = yaml.safe_load(text)
    assert data["entries"] == ["+14155550123", "+14155550199"]
    assert data["name"] == "imported-wooxy-account" and data["version"] == 1
    assert list_name(Target("ozonetel/a b", "ozonetel", "ozonetel", (("group", "a b"),))) == (
        "imported-ozonetel-a-b"
    )


def test_numbers_in_protected_ranges_are_not_imported(project) -> None:
    """Bug: import left out single protected numbers but wrote numbers of a protected
    range into the list, which then failed to validate."""
    config = project / "blocklists" / "providers.yaml"
    config.write_text(config.read_text() + "policy:\n  protected_ranges: ['+1888']\n")
    path, data = sandbox_state(project, "wooxy")
    created = next(iter(data["entries"].values()))["createdAt"]
    data["entries"]["+18885550123"] = {"rejectType": "invalid", "createdAt": created}
    path.write_text(json.dumps(data))

    result = run("import", "wooxy", "--at", AT)
    assert result.exit_code == 0, result.stderr
    for written in (project / "blocklists").glob("imported-*.yaml"):
        assert "+18885550123" not in listed_numbers(written)
    assert "1 protected" in result.stdout
    assert run("validate").exit_code == 0


def test_an_import_keeps_the_desired_state_frozen_and_unfreezes_after(
    project, freeze_during_refresh
) -> None:
    """The desired state outlives the import: out of the collector's sight while it
    reads the target and writes the file, and nothing is left frozen after, failed or not."""
    import gc

    from reconciler.operations import imports

    frozen = freeze_during_refresh(imports)
    assert run("import", "kaleyra/sms", "--at", AT).exit_code == 0
    assert frozen and frozen[0] > 0
    assert gc.get_freeze_count() == 0
    assert run("import", "kaleyra/sms", "--at", AT).exit_code == 1  # the file exists now
    assert gc.get_freeze_count() == 0
