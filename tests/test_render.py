"""Plan renderers (reconciler/views/plan.py): text, markdown, JSON and number masking.

Exact layouts are pinned by the golden files of test_render_golden.py; these tests
say what each layout must hold."""

from __future__ import annotations

import datetime as dt
import json
import re

from hypothesis import given
from hypothesis import strategies as st

from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from reconciler.plan import ACTIONS, Change, Plan, TargetPlan, plan_target
from reconciler.planfile import plan_to_dict
from reconciler.views.format import MARKDOWN_LIMIT, mask_number
from reconciler.views.plan import render_json, render_markdown, render_text

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
MAR_1 = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
KALEYRA = Target("kaleyra/sms", "kaleyra", "kaleyra", (("channel", "sms"),))
OZONETEL = Target("ozonetel/fraud-callers", "ozonetel", "ozonetel", (("group", "fraud-callers"),))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def declared(number: str, line: int, reason: str = "fraud", expires=None, attrs=()):
    return DesiredEntry(number, reason, expires, attrs, f"blocklists/fraud.yaml:{line}")


def every_action_plan() -> Plan:
    """kaleyra/sms: one change of every action, one unmanaged entry and one number to forget;
    ozonetel (cannot list): two adds, plus an unsafe remove-everything target."""
    desired = {
        "+919876543210": declared("+919876543210", 12),
        "+919876543211": declared("+919876543211", 13, "chargeback", MAR_1),
        "+919876543212": declared(
            "+919876543212", 14, expires=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        ),
        "+919876543213": declared("+919876543213", 15, attrs=(("reject_type", "invalid"),)),
        "+919876543214": declared("+919876543214", 16),
        "+919876543215": declared("+919876543215", 17),  # live as the user's own opt-out
    }
    live = {
        "+919876543212": LiveEntry("+919876543212"),
        "+919876543213": LiveEntry("+919876543213", attrs=(("reject_type", "unsubscribe"),)),
        "+919876543214": LiveEntry("+919876543214"),
        "+14155550123": LiveEntry("+14155550123"),
        "+14155550199": LiveEntry("+14155550199"),  # unmanaged
        "+919876543215": LiveEntry("+919876543215", opt_out=True),
    }
    managed = {
        n: ManagedEntry(n, reason="spam", source="blocklists/old.yaml:3")
        for n in (
            "+919876543211",
            "+919876543212",
            "+919876543213",
            "+14155550123",
            "+447700900123",
        )
    }
    kaleyra = plan_target(KALEYRA, desired, live, managed, NOW, attribute_fields=("reject_type",))
    ozonetel = plan_target(
        OZONETEL,
        {n: declared(n, 20 + i) for i, n in enumerate(["+14155550100", "+14155550101"])},
        None,
        {},
        NOW,
    )
    lox_managed = {f"+4915112345{i:03d}": ManagedEntry(f"+4915112345{i:03d}") for i in range(12)}
    lox_live = {n: LiveEntry(n, provider_ids=(str(i),)) for i, n in enumerate(lox_managed)}
    lox = plan_target(
        Target("lox24/7116", "lox24", "lox24", (("group_id", "7116"),)),
        {},
        lox_live,
        lox_managed,
        NOW,
    )
    return Plan(NOW, [kaleyra, ozonetel, lox], desired_digest="abc", lineage="L1", serial=7)


def quiet_plan(unmanaged: int = 0, readable: bool = True) -> Plan:
    live = {f"+1415555{i:04d}": LiveEntry(f"+1415555{i:04d}") for i in range(unmanaged)}
    desired = {"+919876543210": declared("+919876543210", 1)}
    live["+919876543210"] = LiveEntry("+919876543210")
    managed = {"+919876543210": ManagedEntry("+919876543210")}
    tp = plan_target(KALEYRA, desired, live if readable else None, managed, NOW)
    return Plan(NOW, [tp])


def bulk_target(name: str, n: int, action: str = "add", reason: str = "fraud") -> TargetPlan:
    provider, scope = name.split("/")
    changes = [
        Change(action, f"+91{90000000 + i:08d}00", reason, None, f"blocklists/bulk.yaml:{i + 1}")
        for i in range(n)
    ]
    return TargetPlan(
        Target(name, provider, provider, (("group", scope),)), True, changes, n, "f" * 64
    )


def change_lines(text: str) -> list[str]:
    lines = text.splitlines()
    return [x for x in lines if re.match(r"  (\+|~|⌛|-|=|\?) ", x) and "lists them" not in x]


# -- text ----------------------------------------------------------------------------------------


def test_text_shows_one_line_per_change_with_symbol_number_reason_expiry_and_source():
    text = render_text(every_action_plan(), color=False, mask=False, by="target")
    kaleyra = text.split("# ozonetel/fraud-callers")[0]
    lines = change_lines(kaleyra)
    assert [line.split()[0] for line in lines] == ["-", "⌛", "~", "+", "+", "="]
    remove, expire, update, readd, add, adopt = lines
    assert "+919876543210" in add and "fraud" in add and "expires never" in add
    assert add.endswith("blocklists/fraud.yaml:12")
    assert "re-add (drift)" in readd and "chargeback" in readd and "expires 2027-03-01" in readd
    assert "reject_type unsubscribe → invalid" in update
    assert "expired 2026-01-01" in expire and expire.endswith("blocklists/fraud.yaml:14")
    # a remove names the file it was applied from (its old line may hold another entry
    # now) and what state recorded of its expiry, not "expires never"
    assert "+14155550123" in remove and "spam" in remove
    assert remove.endswith("was blocklists/old.yaml, removed in this change")
    assert "no expiry recorded" in remove and "never" not in remove and ":3" not in remove
    assert "adopt" in adopt and "+919876543214" in adopt


def test_text_by_number_names_the_targets_of_each_change_once():
    text = render_text(every_action_plan(), color=False, mask=False)
    lines = change_lines(text.split("\n# ")[0])
    assert [line.split()[0] for line in lines[:16]] == ["-"] * 13 + ["⌛", "~", "+"]
    assert lines[0].endswith("was blocklists/old.yaml, removed in this change  → kaleyra/sms")
    assert len(lines) == 20 and lines[-1].endswith("→ kaleyra/sms")
    # every target still has its block with its summary
    assert "# lox24/7116 UNSAFE" in text and text.count("  Plan: ") == 3


def test_text_groups_by_target_and_says_when_live_state_is_not_readable():
    text = render_text(every_action_plan(), color=False, mask=False)
    headers = [line for line in text.splitlines() if line.startswith("# ")]
    assert headers[0] == "# kaleyra/sms"
    assert headers[1] == "# ozonetel/fraud-callers (live state not readable, using state)"
    assert headers[2].startswith("# lox24/7116")


def test_text_unsafe_target_says_why():
    text = render_text(every_action_plan(), color=False, mask=False)
    assert "# lox24/7116 UNSAFE" in text
    assert "  ! unsafe: would remove or expire 12 of 12 entries (100% > 30%)" in text
    assert "apply refuses it unless --allow-unsafe" in text


def test_text_summary_per_target_and_total():
    text = render_text(every_action_plan(), color=False, mask=False)
    assert (
        "  Plan: 1 to remove, 1 to expire, 1 to update, 1 to re-add, 1 to add, 1 to adopt; "
        "1 declared opt-out left alone; 1 unmanaged left alone; 1 to forget from state (no API call)."
    ) in text
    assert (
        "  Plan: 0 to remove, 0 to expire, 0 to update, 0 to re-add, 2 to add, 0 to adopt; " in text
    )
    assert (
        "Total: 13 to remove, 1 to expire, 1 to update, 1 to re-add, 3 to add, 1 to adopt; "
        "1 declared opt-out left alone; 1 unmanaged left alone; 1 to forget from state (no API call)."
    ) in text


def test_text_unmanaged_is_a_count_unless_verbose():
    plan = every_action_plan()
    text = render_text(plan, color=False, mask=False)
    assert "  ? 1 unmanaged entry left alone (-v lists them)" in text
    assert "+14155550199" not in text
    verbose = render_text(plan, color=False, mask=False, verbose=True)
    assert any("unmanaged" in line and "+14155550199" in line for line in change_lines(verbose))


def test_text_shows_the_first_lines_then_how_many_more():
    plan = Plan(NOW, [bulk_target("wooxy/account", 9_920), bulk_target("phonely/bot", 3)])
    text = render_text(plan, color=False, mask=False, by="target")
    wooxy, phonely = text.split("# phonely/bot")
    assert len(change_lines(wooxy)) == 50
    assert "  …and 9,870 more to add" in wooxy
    assert len(change_lines(phonely)) == 3 and "more" not in phonely
    assert "Plan: 0 to remove, 0 to expire, 0 to update, 0 to re-add, 9,920 to add" in wooxy
    full = render_text(plan, color=False, mask=False, max_lines=None, by="target")
    assert len(change_lines(full)) == 9_923
    # by number: as many lines as the per-target layout shows, the first three (the
    # numbers both targets share) naming both targets
    text = render_text(plan, color=False, mask=False)
    lines = change_lines(text)
    assert len(lines) == 100 and lines[0].endswith("→ wooxy/account, phonely/bot")
    assert "  …and 9,820 more to add (plan --full lists every line)" in text
    assert len(change_lines(render_text(plan, color=False, mask=False, max_lines=None))) == 9_920


def test_text_no_changes():
    text = render_text(quiet_plan(unmanaged=3, readable=True), color=False, mask=False)
    assert text.splitlines()[0] == "No changes. Live state matches the desired state."
    assert "3 unmanaged entries left alone" in text
    blind = render_text(quiet_plan(readable=False), color=False, mask=False)
    assert "Live state not readable for kaleyra/sms" in blind


def test_text_colour_only_when_asked():
    plan = every_action_plan()
    plain = render_text(plan, color=False, mask=False, verbose=True)
    assert "\x1b" not in plain
    coloured = render_text(plan, color=True, mask=False, verbose=True)
    assert ANSI.sub("", coloured) == plain
    lines = coloured.splitlines()

    def line_of(word: str) -> str:
        return next(line for line in lines if word in ANSI.sub("", line) and "+" in line)

    assert "\x1b[32m" in line_of("re-add (drift)")  # green
    assert "\x1b[33m" in line_of("update ")  # yellow
    assert "\x1b[31m" in line_of("remove ")  # red
    assert "\x1b[36m" in line_of("adopt ")  # cyan
    assert "\x1b[2m" in line_of("unmanaged ")  # dim


def test_text_control_characters_from_lists_cannot_reach_the_terminal():
    tp = bulk_target("wooxy/account", 1, reason="evil\x1b[2J\nnext line")
    text = render_text(Plan(NOW, [tp]), color=False, mask=False)
    assert "\x1b" not in text and "evil [2J next line" in text


# -- markdown ------------------------------------------------------------------------------------


def test_markdown_summary_table_first_then_details_per_target():
    md = render_markdown(every_action_plan(), mask=False, by="target")
    assert md.startswith("## blocklist plan")
    table = md.index(
        "| target | remove | expire | update | re-add | add | adopt | opt-out | unmanaged |"
    )
    assert table < md.index("<details>")
    assert "| `kaleyra/sms` | 1 | 1 | 1 | 1 | 1 | 1 | 1 | 1 |" in md
    assert (
        "| **total (3 targets)** | **13** | **1** | **1** | **1** | **3** | **1** | **1** |" in md
    )
    assert md.count("<details>") == 3 and md.count("</details>") == 3
    assert md.count("```diff\n") == 3
    assert "<summary><code>kaleyra/sms</code>: 1 to remove, 1 to expire" in md
    assert "+  add             +919876543210" in md
    assert "\n-  remove  +4915112345000" in md


def test_markdown_by_number_has_one_block_per_action_destructive_first():
    md = render_markdown(every_action_plan(), mask=False)
    summaries = [line for line in md.splitlines() if line.startswith("<details>")]
    assert [s.split("<b>")[1].split("</b>")[0] for s in summaries] == [
        "13 to remove",
        "1 to expire",
        "1 to update",
        "1 to re-add",
        "3 to add",
        "1 to adopt",
        "1 declared opt-out",
    ]
    assert md.count("</details>") == 7 and md.index("| target |") < md.index("<details>")


def test_markdown_unsafe_warning_is_outside_the_fold():
    md = render_markdown(every_action_plan(), mask=False, by="target")
    warning = md.index("**`lox24/7116` is unsafe:** would remove or expire 12 of 12")
    fold = md.index("<details><summary><code>lox24/7116</code>")
    assert warning < fold
    assert md.rfind("</details>", 0, warning) > md.rfind("<details>", 0, warning)
    assert "**The plan is unsafe**" in md
    by_number = render_markdown(every_action_plan(), mask=False)
    warning = by_number.index("**`lox24/7116` is unsafe:** would remove or expire 12 of 12")
    assert warning < by_number.index("<details>") and "**The plan is unsafe**" in by_number


def test_markdown_no_changes():
    md = render_markdown(quiet_plan(unmanaged=2), mask=False)
    assert "No changes. Live state matches the desired state." in md
    assert "<details>" not in md and "No changes in `kaleyra/sms`." in md


def test_markdown_of_100_000_changes_fits_a_pr_comment_and_shares_lines_fairly():
    targets = [
        bulk_target(f"p{i}/scope{i}", n) for i, n in enumerate([60_000, 30_000, 9_000, 990, 10])
    ]
    plan = Plan(NOW, targets)
    md = render_markdown(plan, mask=False, by="target")
    assert len(md) < MARKDOWN_LIMIT
    assert len(md) > MARKDOWN_LIMIT - 500  # the budget is used, not wasted
    assert md == render_markdown(plan, mask=False, by="target")
    blocks = md.split("<details>")[1:]
    shown = [sum(1 for line in b.splitlines() if line.startswith("+  add")) for b in blocks]
    assert shown[4] == 10 and "more" not in blocks[4]
    assert min(shown[:4]) > 100 and max(shown[:4]) - min(shown[:4]) <= 1  # equal shares
    more = f"…and {60_000 - shown[0]:,} more to add (see the plan artifact / `blocklist show`)"
    assert more in blocks[0]
    assert "| `p0/scope0` | 0 | 0 | 0 | 0 | 60,000 |" in md
    by_number = render_markdown(plan, mask=False)
    assert MARKDOWN_LIMIT - 2_000 < len(by_number) < MARKDOWN_LIMIT


def test_markdown_stays_under_the_limit_for_many_targets_and_long_reasons():
    targets = [bulk_target(f"p{i}/s{i}", 3, reason="x" * 5_000) for i in range(2_000)]
    md = render_markdown(Plan(NOW, targets), mask=False, by="target")
    assert len(md) < MARKDOWN_LIMIT
    assert "more targets with changes (see the plan artifact" in md
    assert md.count("+  add") > 50  # frames leave room for lines
    by_number = render_markdown(Plan(NOW, targets), mask=False)
    assert len(by_number) < MARKDOWN_LIMIT
    # the same three numbers on 2,000 targets: three lines, each naming ten targets
    assert by_number.count("+  add") == 3 and by_number.count("and 1,990 more targets") == 3
    for by in ("number", "target"):
        one = render_markdown(
            Plan(NOW, [bulk_target("a/b", 2_000, reason="y" * 20_000)]), mask=False, by=by
        )
        assert len(one) < MARKDOWN_LIMIT and "…and" in one
        assert "y" * 79 + "…" in one and "y" * 81 not in one  # long reasons are cut on screen


def test_markdown_is_deterministic():
    assert render_markdown(every_action_plan(), mask=True) == render_markdown(
        every_action_plan(), mask=True
    )


# -- JSON ----------------------------------------------------------------------------------------


def test_json_has_the_design_shape():
    doc = json.loads(render_json(every_action_plan(), mask=False))
    assert doc["format_version"] == 1
    assert doc["now"] == "2026-11-22T00:00:00Z"
    assert doc["safe"] is False
    assert doc["summary"] == {
        "add": 3,
        "readd": 1,
        "update": 1,
        "expire": 1,
        "remove": 13,
        "adopt": 1,
        "optout": 1,
        "unmanaged": 1,
    }
    kaleyra, ozonetel, lox = doc["targets"]
    for t in doc["targets"]:
        for key in ("name", "provider", "type", "scope", "live_readable", "safe", "unsafe_reasons"):
            assert key in t
        assert set(t["summary"]) == set(ACTIONS)
        assert sum(t["summary"].values()) == len(t["changes"])
    assert ozonetel["name"] == "ozonetel/fraud-callers" and ozonetel["provider"] == "ozonetel"
    assert ozonetel["scope"] == {"group": "fraud-callers"} and ozonetel["live_readable"] is False
    assert ozonetel["changes"][0] == {
        "action": "add",
        "number": "+14155550100",
        "reason": "fraud",
        "expires": None,
        "source": "blocklists/fraud.yaml:20",
    }
    assert lox["safe"] is False and lox["unsafe_reasons"][0].startswith("would remove")
    assert kaleyra["forget"] == ["+447700900123"]
    update = next(c for c in kaleyra["changes"] if c["action"] == "update")
    assert update["changes"] == [
        {"attribute": "reject_type", "from": "unsubscribe", "to": "invalid"}
    ]
    assert [c["action"] for c in kaleyra["changes"]] == list(ACTIONS)
    assert doc["lineage"] == "L1" and doc["serial"] == 7 and doc["tool_version"]


def test_json_is_the_plan_dict_and_deterministic():
    plan = every_action_plan()
    text = render_json(plan, mask=False)
    assert json.loads(text) == plan_to_dict(plan)
    assert text == render_json(every_action_plan(), mask=False)
    big = Plan(NOW, [bulk_target("wooxy/account", 20_000), bulk_target("lox24/1", 0)])
    assert json.loads(render_json(big, mask=False)) == plan_to_dict(big)


def test_json_keeps_sub_second_instants():
    plan = Plan(NOW.replace(microsecond=250_000), [])
    assert plan_to_dict(plan)["now"] == "2026-11-22T00:00:00.250000Z"


# -- masking -------------------------------------------------------------------------------------


def test_mask_number():
    assert mask_number("+919876543210") == "+91987*****10"
    assert mask_number("+14155550123") == "+14155****23"
    assert mask_number("+1234567") == "+12***67"


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_mask_number_keeps_shape_and_hides_at_least_three_digits(number):
    masked = mask_number(number)
    assert len(masked) == len(number) and masked.startswith(number[:3])
    assert masked.endswith(number[-2:]) and masked.count("*") >= 3


def test_masking_hides_every_number_in_all_formats():
    plan = every_action_plan()
    numbers = {c.number for t in plan.targets for c in t.changes} | {
        n for t in plan.targets for n in t.forget
    }
    outputs = [
        render_text(plan, color=False, mask=True, verbose=True),
        render_markdown(plan, mask=True),
        render_json(plan, mask=True),
    ]
    for out in outputs:
        assert "+91987*****10" in out
        assert not [n for n in numbers if n in out]
    assert "blocklists/fraud.yaml:12" in outputs[0]
    doc = json.loads(outputs[2])
    assert doc["masked"] is True and doc["targets"][0]["forget"] == ["+44770*****23"]
    unmasked = render_text(plan, color=False, mask=False, verbose=True)
    assert all(n in unmasked for n in numbers - {"+447700900123"})


def test_masking_covers_numbers_inside_reasons():
    tp = bulk_target("wooxy/account", 1, reason="same as +919876543299")
    assert "+91987*****99" in render_text(Plan(NOW, [tp]), color=False, mask=True)
    assert "+919876543299" not in render_json(Plan(NOW, [tp]), mask=True)


def test_json_fast_encoder_writes_what_the_public_encoder_writes(monkeypatch):
    plan = every_action_plan()
    plan.targets.append(bulk_target("wooxy/account", 2, reason="vérifié ✓"))
    fast = render_json(plan, mask=False)
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert render_json(plan, mask=False) == fast
    assert '"reason": "v\\u00e9rifi\\u00e9 \\u2713"' in fast and fast.isascii()


def test_an_empty_plan_renders_in_every_format():
    plan = Plan(NOW, [])
    assert render_text(plan, color=True, mask=False).endswith(
        "No changes. Live state matches the desired state.\x1b[0m"
    )
    assert "**total (0 targets)**" in render_markdown(plan, mask=False)
    assert json.loads(render_json(plan, mask=False))["targets"] == []
