"""Bulk list sources (``entries_from:`` a CSV or TXT file beside the list): the same
rules as YAML entries, every error at ``file:line``, planned and pruned like them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.desired import load_desired
from reconciler.errors import ConfigError

AT = "2026-11-23T00:00:00Z"
LIST = """\
version: 1
name: bulk-fraud
default_region: IN
targets:
  - {provider: kaleyra, channel: sms}
  - {provider: wooxy, reject_type: invalid}
defaults: {reason: fraud wave}
entries_from: fraud-numbers.csv    # exported from the case tool
entries:
  - "+919811111111"
"""


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    return result


def write(project: Path, csv_text: str, list_text: str = LIST, name: str = "fraud-numbers.csv"):
    (project / "blocklists" / "bulk.yaml").write_text(list_text)
    (project / "blocklists" / name).write_text(csv_text)


def problems(project: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_desired(project / "blocklists", "blocklists")
    return [str(p) for p in exc.value.problems]


def test_csv_rows_are_declared_and_planned_with_their_line(project: Path) -> None:
    write(
        project,
        "number,reason,expires,ticket,case_owner\n"
        "+919822222222,sim box,2027-01-31,TS-1,ana\n"
        "09833333333,,,TS-2,\n"
        "\n"
        '"+91 98444 44444",,2027-01-31T10:00:00+05:30,TS-3,bo\n',
    )
    desired = load_desired(project / "blocklists", "blocklists")
    sms = desired.entries["kaleyra/sms"]
    assert sms["+919822222222"].source == "blocklists/fraud-numbers.csv:2"
    assert sms["+919822222222"].reason == "sim box"
    assert sms["+919833333333"].reason == "fraud wave"  # the list's default
    assert sms["+919833333333"].expires is None
    assert sms["+919844444444"].source == "blocklists/fraud-numbers.csv:5"
    assert sms["+919844444444"].expires.isoformat() == "2027-01-31T04:30:00+00:00"
    # rows sharing an expiry share its datetime (a million rows, a few hundred dates)
    assert sms["+919811111111"].source == "blocklists/bulk.yaml:10"
    wooxy = desired.entries["wooxy/account"]["+919822222222"]
    assert wooxy.attrs == (("reject_type", "invalid"),)
    (listed,) = desired.lists_named("bulk-fraud")
    assert listed.files == {"blocklists/bulk.yaml", "blocklists/fraud-numbers.csv"}

    plan = json.loads(run("plan", "--format", "json", "--at", AT, "--target", "kaleyra").stdout)
    adds = {c["number"]: c["source"] for t in plan["targets"] for c in t["changes"]}
    assert adds["+919822222222"] == "blocklists/fraud-numbers.csv:2"


def test_rows_share_their_expiry_objects(project: Path) -> None:
    write(
        project, "number,expires\n" + "".join(f"+91982222{i:04d},2027-01-31\n" for i in range(50))
    )
    desired = load_desired(project / "blocklists", "blocklists")
    rows = [e for e in desired.entries["kaleyra/sms"].values() if ".csv:" in e.source]
    assert len(rows) == 50 and len({id(e.expires) for e in rows}) == 1


def test_every_error_names_the_file_and_line_all_at_once(project: Path) -> None:
    write(
        project,
        "number,reason,expires,ttl,added\n"
        "+919822222222,,,,\n"
        "not-a-number,,,,\n"
        "+919822222222,,,,\n"  # duplicate in the file
        "+919811111111,,,,\n"  # duplicate of the YAML entry
        "+18005550100,,,,\n"  # protected
        "+919855555555,,2027-02-30,,\n"
        "+919866666666,,2027-01-01,30d,2026-12-01\n"
        "+919877777777,,,30d,\n"
        "+919888888888,,,3 days,2026-12-01\n"
        "+919899999999,too,many,fields,here,!\n",
    )
    assert problems(project) == [
        "blocklists/fraud-numbers.csv:3:1: invalid phone number 'not-a-number': phone number "
        "contains characters other than digits",
        "blocklists/fraud-numbers.csv:4:1: duplicate number +919822222222 (written "
        "'+919822222222'; first at line 2)",
        "blocklists/fraud-numbers.csv:5:1: duplicate number +919811111111 (written "
        "'+919811111111'; first at blocklists/bulk.yaml:10)",
        "blocklists/fraud-numbers.csv:6:1: +18005550100 (written '+18005550100') is protected "
        "(blocklists/providers.yaml:43) and may not be blocked",
        "blocklists/fraud-numbers.csv:7:1: bad expiry: invalid date or time '2027-02-30' (use "
        "e.g. 2027-03-01 or 2027-03-01T09:00:00Z)",
        "blocklists/fraud-numbers.csv:8:1: give either 'expires' or 'ttl', not both",
        "blocklists/fraud-numbers.csv:9:1: ttl '30d' needs 'added' (the date it counts from)",
        "blocklists/fraud-numbers.csv:10:1: ttl '3 days' is not a duration (use e.g. 90d, 12w, "
        "6mo, 1y)",
        "blocklists/fraud-numbers.csv:11:1: row has 6 fields, the header has 5",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            None,
            "blocklists/bulk.yaml:8:1: entries_from: 'fraud-numbers.csv' not found "
            "(blocklists/fraud-numbers.csv)",
        ),
        (
            "",
            "blocklists/fraud-numbers.csv:1:1: empty: expected a header row naming a "
            "'number' column",
        ),
        (
            "phone,reason\n+919822222222,x\n",
            "blocklists/fraud-numbers.csv:1:1: header: no 'number' column (columns: phone, reason)",
        ),
        (
            b"number\n+919822222222\n\xe9\n",
            "blocklists/fraud-numbers.csv:3:1: not UTF-8 (byte 0xe9)",
        ),
    ],
)
def test_a_missing_or_unreadable_source_is_an_error(project: Path, content, expected) -> None:
    write(project, "number\n")
    source = project / "blocklists" / "fraud-numbers.csv"
    if content is None:
        source.unlink()
    elif isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content)
    assert problems(project) == [expected]
    result = run("validate")
    assert result.exit_code == 1 and expected in result.stderr


def test_a_txt_source_one_number_a_line(project: Path) -> None:
    text = LIST.replace("fraud-numbers.csv", "more.txt")
    write(
        project,
        "# from the carrier\n+919822222222\n\n098 3333 3333   # national\n",
        text,
        "more.txt",
    )
    desired = load_desired(project / "blocklists", "blocklists")
    sms = desired.entries["kaleyra/sms"]
    assert sms["+919833333333"].source == "blocklists/more.txt:4"
    (project / "blocklists" / "more.txt").write_text("+919822222222\nnope\n")
    assert problems(project) == [
        "blocklists/more.txt:2:1: invalid phone number 'nope': phone number contains "
        "characters other than digits"
    ]


def test_fmt_prunes_expired_rows_and_expiring_lists_them(project: Path) -> None:
    csv_text = (
        "number,reason,expires,ticket\n"
        "+919822222222,wave,2026-12-20,TS-1\n"
        "+919833333333,,,TS-2\n"
        "+919844444444,,2027-01-02,TS-3\n"
    )
    write(project, csv_text)
    listed = run("expiring", "--at", "2026-12-25T00:00:00Z", "--format", "json")
    report = json.loads(listed.stdout)
    assert [(e["number"], e["ticket"], e["source"]) for e in report["expired"]] == [
        ("+919822222222", "TS-1", "blocklists/fraud-numbers.csv:2")
    ]
    assert [e["ticket"] for e in report["expiring"] if e["list"] == "bulk-fraud"] == ["TS-3"]

    result = run("fmt", "--prune-only", "--at", "2026-12-25T00:00:00Z", "--no-color")
    assert result.exit_code == 0, result.stderr
    assert "blocklists/fraud-numbers.csv:2: pruned +919822222222 (TS-1), expired 2026-12-20" in (
        result.stdout
    )
    source = project / "blocklists" / "fraud-numbers.csv"
    assert source.read_text() == csv_text.replace("+919822222222,wave,2026-12-20,TS-1\n", "")
    assert (project / "blocklists" / "bulk.yaml").read_text() == LIST  # nothing else changed
    assert run("validate").exit_code == 0
