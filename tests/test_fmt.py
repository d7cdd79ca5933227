"""``blocklist fmt`` over the CLI: canonical list files like ``terraform fmt``
(``--check`` exits 1 with the diff), the desired state unchanged by it, expired
entries pruned, and the pre-commit hook beside ``blocklist-validate``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.desired import load_desired

REPO = Path(__file__).resolve().parent.parent
AT = "2026-11-23T00:00:00Z"


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    return result


def comments(text: str) -> list[str]:
    return re.findall(r"#.*$", text, re.M)


def test_check_reports_then_fmt_writes_and_the_desired_state_is_the_same(project: Path) -> None:
    lists = project / "blocklists"
    before = {p.name: p.read_text() for p in lists.glob("*.yaml")}
    digest = load_desired(lists).digest()

    check = run("fmt", "--check", "--no-color")
    assert check.exit_code == 1
    assert '-  - number: "098765 43211"                # national format' in check.stdout
    assert '+  - number: "+919876543211"               # national format' in check.stdout
    assert "2 files would be reformatted." in check.stdout
    assert {p.name: p.read_text() for p in lists.glob("*.yaml")} == before  # nothing written

    done = run("fmt")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == (
        "Formatted 2 files: blocklists/fraud.yaml, blocklists/spam.yaml."
    )
    after = {p.name: p.read_text() for p in lists.glob("*.yaml")}
    assert after["providers.yaml"] == before["providers.yaml"]  # not a list: left alone
    for name in before:
        assert comments(after[name]) == comments(before[name]), name
    assert load_desired(lists).digest() == digest  # the same numbers, expiries, reasons

    again = run("fmt", "--check")
    assert again.exit_code == 0 and again.stdout.strip() == "2 files already formatted."


def test_fmt_takes_files_and_keeps_raw_forms_on_request(project: Path) -> None:
    spam = project / "blocklists" / "spam.yaml"
    result = run("fmt", "--raw-comments", str(spam))
    assert result.exit_code == 0, result.stderr
    text = spam.read_text()
    assert 'number: "+4915112345678"  # was 0151 12345678\n' in text
    assert (project / "blocklists" / "fraud.yaml").read_text() == (
        REPO / "blocklists" / "fraud.yaml"
    ).read_text()


def test_prune_expired_removes_what_has_expired(project: Path) -> None:
    result = run("fmt", "--prune-expired", "--at", "2027-01-01T00:00:00Z", "--no-color")
    assert result.exit_code == 0, result.stderr
    assert "blocklists/spam.yaml:20: pruned +919812345678, expired 2026-12-31" in result.stdout
    spam = (project / "blocklists" / "spam.yaml").read_text()
    assert "98123" not in spam and "campaign ends at new year" not in spam
    assert spam.count("number:") == 3
    plan = json.loads(run("plan", "--format", "json", "--at", "2027-01-01T00:00:00Z").stdout)
    assert not any(c["number"] == "+919812345678" for t in plan["targets"] for c in t["changes"])


def test_a_file_that_is_not_yaml_is_an_error_at_its_line(project: Path) -> None:
    bad = project / "blocklists" / "bad.yaml"
    bad.write_text("version: 1\nentries: [\n")
    result = run("fmt", "--check")
    assert result.exit_code == 1
    assert re.search(r"^blocklists/bad\.yaml:\d+:\d+: invalid YAML", result.stderr, re.M)


def test_the_pre_commit_hook_formats_the_files_it_is_given(project: Path) -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    assert set(by_id) == {"blocklist-validate", "blocklist-fmt"}
    hook = by_id["blocklist-fmt"]
    assert hook["entry"] == "blocklist fmt" and hook["language"] == "python"
    assert hook["pass_filenames"] is True
    assert re.search(hook["files"], "blocklists/fraud.yaml")
    assert re.search(hook["exclude"], "blocklists/providers.yaml")
    assert not re.search(hook["exclude"], "blocklists/fraud.yaml")
    # what pre-commit runs: the entry with the staged files; it changes them, so the
    # hook fails the commit until they are added again
    staged = ["blocklists/fraud.yaml", "blocklists/spam.yaml"]
    assert run(*hook["entry"].split()[1:], *staged).exit_code == 0
    assert run(*hook["entry"].split()[1:], "--check", *staged).exit_code == 0


def test_every_test_corpus_list_keeps_its_comments(tmp_path: Path) -> None:
    """The corpus's list files (valid or not), formatted where fmt can read them."""
    shutil.copytree(REPO / "tests" / "corpus", tmp_path / "corpus")
    checked = 0
    for path in sorted((tmp_path / "corpus").rglob("*.yaml")):
        before = path.read_bytes()
        result = run("fmt", str(path))
        if result.exit_code != 0:  # not YAML at all (the corpus has such files)
            assert path.read_bytes() == before
            continue
        if path.name == "providers.yaml":
            assert path.read_bytes() == before
            continue
        assert comments(path.read_text()) == comments(before.decode()), path
        checked += 1
    assert checked >= 10


def test_diff_shows_what_is_written_and_expiring_reads_as_text(project: Path) -> None:
    result = run("fmt", "--diff", "--no-color")
    assert result.exit_code == 0
    assert '+  - "+918045678901"                       # Bengaluru landline' in result.stdout
    assert "Formatted 2 files" in result.stdout
    text = run("expiring", "--within", "60d", "--at", AT, "--mask-numbers")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0] == "Expiring within 60d:"
    assert "+91981*****78" in text.stdout and "blocklists/spam.yaml:20" in text.stdout
    assert text.stdout.rstrip().endswith("0 entries expired, 1 entry expiring within 60d.")
