"""What a reviewer reads: the plan views pinned by golden files (tests/golden/), and the
promises of issue "plans that reviewers can read" checked on large plans.

- order: removes, expiries, updates and re-adds before adds and adopts, in text,
  markdown and JSON;
- truncation: adds and adopts are cut first; a destructive line is never hidden while
  room remains; markdown stays under the limit and says when destructive lines alone
  do not fit; ``--full`` prints every line;
- by number: a change that is the same on several targets is one line naming them;
- truthful lines: a remove names the file it was applied from and its recorded
  expiry; dates are dates at UTC midnight; an update shows only what changes;
  counts have one separator (a comma) everywhere.

``BLOCKLIST_UPDATE_GOLDEN=1 pytest tests/test_render_golden.py`` rewrites the files.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from click.testing import CliRunner
from golden import check_golden

from reconciler.cli import main
from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from reconciler.plan import ACTIONS, DESTRUCTIVE_ACTIONS, Change, Plan, TargetPlan, plan_target
from reconciler.planfile import plan_to_dict, save_plan
from reconciler.report import ApplyReport
from reconciler.views.format import MARKDOWN_LIMIT, group_thousands
from reconciler.views.plan import render_json, render_markdown, render_text
from reconciler.views.report import render_report

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
KALEYRA = Target("kaleyra/sms", "kaleyra", "kaleyra", (("channel", "sms"),))
LOX24 = Target("lox24/7116", "lox24", "lox24", (("group_id", "7116"),))
OZONETEL = Target("ozonetel/fraud-callers", "ozonetel", "ozonetel", (("group", "fraud-callers"),))
WOOXY = Target("wooxy/account", "wooxy", "wooxy")
INVALID = (("reject_type", "invalid"),)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def fraud(number: str, line: int, reason: str = "fraud", expires=None, attrs=()) -> DesiredEntry:
    return DesiredEntry(number, reason, expires, attrs, f"blocklists/fraud.yaml:{line}", "fraud")


def review_plan() -> Plan:
    """One fraud list on four targets after an edit: one number added everywhere, one
    expiry moved (Ozonetel keeps expiries natively), a reject type changed (Wooxy), one
    number expired, one removed by hand (drift), one adopted, and two numbers of
    another list taken out (removes, one with a recorded expiry)."""
    declared = {
        "+919876543210": (14, "fraud", None),
        "+919876543211": (15, "chargeback", utc(2027, 6, 1)),
        "+919988776655": (22, "sim-box fraud", utc(2027, 6, 30, 12, 30)),
        "+14155550123": (19, "fraud", utc(2026, 11, 1)),
        "+918045678901": (27, "fraud", None),
        "+919845012345": (26, "fraud", None),
    }

    def desired(attrs=()) -> dict[str, DesiredEntry]:
        return {n: fraud(n, line, r, e, attrs) for n, (line, r, e) in declared.items()}

    spam = {
        "+447911123456": ManagedEntry(
            "+447911123456", utc(2027, 9, 1), "spam", source="blocklists/spam.yaml:17"
        ),
        "+4915112345678": ManagedEntry(
            "+4915112345678", None, "spam", source="blocklists/spam.yaml:12"
        ),
    }
    applied = {
        n: ManagedEntry(n, e, r, source=f"blocklists/fraud.yaml:{line}")
        for n, (line, r, e) in declared.items()
        if n in ("+919876543211", "+14155550123", "+918045678901")
    }
    applied["+919876543211"].expires = utc(2027, 3, 1)  # what the last apply sent

    def live(*numbers: str, attrs=()) -> dict[str, LiveEntry]:
        return {n: LiveEntry(n, n, attrs) for n in numbers}

    kaleyra = plan_target(
        KALEYRA,
        desired(),
        live(
            "+919876543211",
            "+14155550123",
            "+918045678901",
            "+919845012345",
            "+447911123456",
            "+4915112345678",
            "+14155550199",
        ),
        {**applied, **spam},
        NOW,
    )
    lox24 = plan_target(
        LOX24,
        desired(),
        live("+919876543211", "+14155550123", "+919845012345", "+447911123456"),
        {**applied, "+447911123456": spam["+447911123456"]},
        NOW,
    )
    ozonetel = plan_target(
        OZONETEL,
        {n: e for n, e in desired().items() if n != "+919845012345"},
        None,
        {n: applied[n] for n in ("+919876543211", "+918045678901")},
        NOW,
        native_expiry=True,
    )
    wooxy_live = live("+14155550123", "+918045678901", "+919845012345", attrs=INVALID)
    wooxy_live["+919876543211"] = LiveEntry("+919876543211", attrs=(("reject_type", "import"),))
    wooxy = plan_target(
        WOOXY,
        desired(INVALID),
        wooxy_live,
        applied,
        NOW,
        attribute_fields=("reject_type",),
    )
    return Plan(
        NOW,
        [kaleyra, lox24, ozonetel, wooxy],
        desired_digest="d" * 64,
        lineage="L1",
        serial=3,
        configuration="prod",
    )


def bulk(
    target: Target, adds: int, removes: int = 0, updates: int = 0, start: int = 0
) -> TargetPlan:
    """``removes`` removes, ``updates`` expiry updates and ``adds`` adds (in plan order)."""
    changes = [
        Change("remove", f"+4915{i:09d}", "spam", None, "blocklists/spam.yaml:9")
        for i in range(removes)
    ]
    changes += [
        Change(
            "update",
            f"+4916{i:09d}",
            "spam",
            utc(2027, 6, 1),
            f"blocklists/spam.yaml:{i + 1}",
            before=(("expires", "2027-03-01T00:00:00Z"),),
        )
        for i in range(updates)
    ]
    changes += [
        Change("add", f"+9190{start + i:08d}", "fraud", None, f"blocklists/bulk.yaml:{i + 1}")
        for i in range(adds)
    ]
    return TargetPlan(target, True, changes, removes + updates, "f" * 64)


def change_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if re.match(r"\s*(\+|~|⌛|-|=|!|\?) ", x)]


# -- golden files --------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["number", "target"])
def test_text_golden(by: str) -> None:
    check_golden(f"plan-by-{by}.txt", render_text(review_plan(), color=False, mask=False, by=by))


@pytest.mark.parametrize("by", ["number", "target"])
def test_markdown_golden(by: str) -> None:
    check_golden(f"plan-by-{by}.md", render_markdown(review_plan(), mask=False, by=by))


def test_masked_text_golden() -> None:
    plan = review_plan()
    check_golden("plan-masked.txt", render_text(plan, color=False, mask=True, verbose=True))


def test_truncation_golden() -> None:
    """Five lines per target: the removes and updates first, then what is left of the
    adds; the counts of what is hidden, per action, with a comma."""
    plan = Plan(NOW, [bulk(KALEYRA, 1_234, removes=3, updates=1), bulk(LOX24, 2, start=1_232)])
    for by in ("number", "target"):
        text = render_text(plan, color=False, mask=False, max_lines=5, by=by)
        check_golden(f"plan-truncated-by-{by}.txt", text)


def test_folded_markdown_golden() -> None:
    """More than a screenful of lines: folded per action, destructive blocks first."""
    plan = Plan(
        NOW, [bulk(KALEYRA, 30, removes=2), bulk(LOX24, 10, start=25)], configuration="prod"
    )
    check_golden("plan-folded.md", render_markdown(plan, mask=False))


def test_full_prints_every_line() -> None:
    plan = Plan(NOW, [bulk(KALEYRA, 60, removes=2), bulk(LOX24, 60)])
    full = render_text(plan, color=False, mask=False, max_lines=None)
    check_golden("plan-full.txt", full)
    assert len(change_lines(full)) == 62 and "more" not in full
    by_target = render_text(plan, color=False, mask=False, max_lines=None, by="target")
    assert len(change_lines(by_target)) == 122 and "more" not in by_target
    assert len(change_lines(render_text(plan, color=False, mask=False, by="target"))) == 100


def test_json_golden_lists_destructive_changes_first() -> None:
    plan = review_plan()
    text = render_json(plan, mask=False)
    check_golden("plan.json", text)
    for target in json.loads(text)["targets"]:
        order = [ACTIONS.index(c["action"]) for c in target["changes"]]
        assert order == sorted(order)
    assert list(json.loads(text)["summary"]) == list(ACTIONS)


# -- the promises, on the scenario ---------------------------------------------------------


def test_by_number_is_one_line_per_change_naming_its_targets() -> None:
    text = render_text(review_plan(), color=False, mask=False)
    add = next(line for line in change_lines(text) if "+919876543210" in line)
    assert add.split()[:2] == ["+", "add"]
    assert add.endswith(
        "→ kaleyra/sms, lox24/7116, ozonetel/fraud-callers, wooxy/account (reject_type=invalid)"
    )
    assert text.count("+919876543210") == 1
    by_target = render_text(review_plan(), color=False, mask=False, by="target")
    assert by_target.count("+919876543210") == 4


def test_lines_are_truthful_about_removes_dates_and_updates() -> None:
    text = render_text(review_plan(), color=False, mask=False, by="target")
    removes = [line for line in change_lines(text) if line.split()[1] == "remove"]
    assert removes and all(
        line.endswith("was blocklists/spam.yaml, removed in this change") for line in removes
    )
    assert any("recorded expiry 2027-09-01" in line for line in removes)
    assert any("no expiry recorded" in line for line in removes)
    assert not any("never" in line for line in removes)
    update = next(line for line in change_lines(text) if "chargeback" in line and "~" in line)
    assert "expires 2027-03-01 → 2027-06-01" in update and "T00:00:00Z" not in update
    assert "reject_type import → invalid" in text
    assert "expires 2027-06-30T12:30:00Z" in text  # a time of day stays
    assert "T00:00:00Z" not in text


def test_markdown_shows_the_configuration_and_a_short_plan_open() -> None:
    md = render_markdown(review_plan(), mask=False)
    assert md.startswith("## blocklist plan: prod\n")
    assert "<details>" not in md and "### Changes" in md
    assert md.index("-  remove") < md.index("+  add")


# -- ordering and truncation on large plans ------------------------------------------------


def issue_plan() -> Plan:
    """The issue's plan: 8,731 adds and 50 updates on each of five targets."""
    names = ("kaleyra/sms", "lox24/7116", "ozonetel/fraud-callers", "phonely/bot", "wooxy/account")
    targets = [Target(n, n.split("/")[0], n.split("/")[0]) for n in names]
    return Plan(NOW, [bulk(t, 8_731, updates=50) for t in targets])


def test_no_update_is_hidden_behind_adds() -> None:
    plan = issue_plan()
    for by in ("number", "target"):
        text = render_text(plan, color=False, mask=False, by=by)
        updates = [line for line in change_lines(text) if line.split()[1] == "update"]
        assert len(updates) == (50 if by == "number" else 250), by
        md = render_markdown(plan, mask=False, by=by)
        assert len(md) < MARKDOWN_LIMIT
        assert md.count("!  update") == (50 if by == "number" else 250), by
        assert md.index("!  update") < md.index("+  add")
        assert "Not every destructive change fits" not in md
    text = render_text(plan, color=False, mask=False)
    update = next(line for line in change_lines(text) if "update" in line)
    assert update.endswith(
        "→ kaleyra/sms, lox24/7116, ozonetel/fraud-callers, phonely/bot, wooxy/account"
    )
    # 250 lines (50 per target): 50 updates, then 200 adds of five targets each
    assert "…and 42,655 more to add (plan --full lists every line)" in text


@pytest.mark.parametrize("by", ["number", "target"])
def test_markdown_of_100_000_changes_puts_every_destructive_line_first(by: str) -> None:
    targets = [
        bulk(Target(f"p{i}/s", f"p{i}", f"p{i}"), n, removes=40, updates=10, start=i * 60_000)
        for i, n in enumerate([60_000, 30_000, 9_000, 990, 10])
    ]
    plan = Plan(NOW, targets)
    md = render_markdown(plan, mask=False, by=by)
    assert MARKDOWN_LIMIT - 2_000 < len(md) < MARKDOWN_LIMIT
    # by number, the five targets' removes and updates (the same numbers) are one line each
    lines = 1 if by == "number" else 5
    assert md.count("\n-  remove") == 40 * lines and md.count("\n!  update") == 10 * lines
    last_destructive = max(md.rfind("\n-  remove"), md.rfind("\n!  update"))
    if by == "number":
        assert last_destructive < md.index("\n+  add")
    assert md.count("<details>") == md.count("</details>") > 0
    assert "Not every destructive change fits" not in md


@pytest.mark.parametrize("by", ["number", "target"])
def test_markdown_says_so_when_destructive_lines_alone_do_not_fit(by: str) -> None:
    targets = [bulk(Target(f"p{i}/s", f"p{i}", f"p{i}"), 100, removes=0) for i in range(2)]
    targets[0].changes[:0] = [
        Change("remove", f"+4915{i:09d}", "spam", None, "blocklists/spam.yaml:9")
        for i in range(70_000)
    ]
    targets[0]._counts = None
    plan = Plan(NOW, targets)
    md = render_markdown(plan, mask=False, by=by)
    assert len(md) < MARKDOWN_LIMIT
    shown = md.count("\n-  remove")
    assert 100 < shown < 70_000
    assert (
        f"**Not every destructive change fits in this comment:** {group_thousands(shown)} "
        "of 70,000 removes"
    ) in md
    assert md.index("Not every destructive change fits") < md.index("| target |")
    assert "+  add" not in md  # no add while a remove is left out
    assert md.count("<details>") == md.count("</details>")


def test_destructive_lines_come_first_in_a_truncated_text() -> None:
    plan = Plan(NOW, [bulk(KALEYRA, 100, removes=3, updates=2)])
    for by in ("number", "target"):
        lines = change_lines(render_text(plan, color=False, mask=False, max_lines=4, by=by))
        assert [line.split()[1] for line in lines] == ["remove"] * 3 + ["update"]


# -- one separator everywhere --------------------------------------------------------------


def test_counts_have_one_separator_in_plan_markdown_and_report() -> None:
    assert group_thousands(8_731) == "8,731" and group_thousands(1_000_000) == "1,000,000"
    plan = Plan(NOW, [bulk(KALEYRA, 8_731)])
    assert "8,731 to add" in render_text(plan, color=False, mask=False)
    assert "| `kaleyra/sms` | 0 | 0 | 0 | 0 | 8,731 |" in render_markdown(plan, mask=False)
    report = ApplyReport(started=NOW, finished=NOW)
    report.done["kaleyra/sms"]["add"] = 8_731
    assert render_report(report, mask=False).splitlines()[0] == "kaleyra/sms: done 8,731 add"


# -- the command line ----------------------------------------------------------------------


def test_show_takes_by_and_full(tmp_path) -> None:
    path = tmp_path / "plan.json"
    save_plan(Plan(NOW, [bulk(KALEYRA, 70, removes=1), bulk(LOX24, 70)]), path)
    run = CliRunner().invoke
    default = run(main, ["show", str(path), "--no-color"])
    assert default.exit_code == 0, default.output
    assert "→ kaleyra/sms, lox24/7116" in default.output
    by_target = run(main, ["show", str(path), "--by", "target", "--no-color"]).output
    assert "→" not in by_target and by_target.count("…and") == 2
    full = run(main, ["show", str(path), "--full", "--by", "target", "--no-color"]).output
    assert len(change_lines(full)) == 141 and "…and" not in full
    md = run(main, ["show", str(path), "--format", "markdown", "--by", "target"]).output
    assert "<details><summary><code>kaleyra/sms</code>" in md
    doc = json.loads(run(main, ["show", str(path), "--format", "json"]).output)
    assert doc == plan_to_dict(Plan(NOW, [bulk(KALEYRA, 70, removes=1), bulk(LOX24, 70)]))
    bad = run(main, ["show", str(path), "--by", "list"])
    assert bad.exit_code == 2 and "'number', 'target'" in bad.output


def test_destructive_actions_are_the_first_actions() -> None:
    assert set(ACTIONS[: len(DESTRUCTIVE_ACTIONS)]) == DESTRUCTIVE_ACTIONS
