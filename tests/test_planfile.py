"""The saved plan file (reconciler/planfile.py): exact round trip, atomic writes, clear refusals."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import __version__
from reconciler.domain import DesiredEntry, LiveEntry, ManagedEntry, Target
from reconciler.errors import BlocklistError
from reconciler.plan import ACTIONS, Change, Plan, TargetPlan, plan_target
from reconciler.planfile import load_plan, plan_to_dict, save_plan
from reconciler.views.plan import render_json

NOW = dt.datetime(2026, 11, 22, 9, 30, 15, 123_456, tzinfo=dt.UTC)  # a wall clock "now"


def sample_plan() -> Plan:
    """Every action, an update with its old value, a number to forget, an unreadable
    target, an unsafe target, lineage and serial."""
    wooxy = Target("wooxy/account", "wooxy", "wooxy", (), exclusive=True)
    desired = {
        "+919876543210": DesiredEntry("+919876543210", "fraud", None, (), "blocklists/f.yaml:3"),
        "+919876543211": DesiredEntry(
            "+919876543211",
            "chargeback ✓",
            dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
            (("reject_type", "invalid"),),
            "blocklists/f.yaml:4",
        ),
        "+919876543212": DesiredEntry(
            "+919876543212", None, dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC), (), "f.yaml:5"
        ),
        "+919876543213": DesiredEntry("+919876543213", "spam", None, (), "blocklists/f.yaml:6"),
        "+919876543214": DesiredEntry("+919876543214", "drift", None, (), "blocklists/f.yaml:7"),
        "+14155550124": DesiredEntry("+14155550124", "opted out", None, (), "blocklists/f.yaml:8"),
    }
    live = {
        "+919876543211": LiveEntry("+919876543211", attrs=(("reject_type", "import"),)),
        "+919876543212": LiveEntry("+919876543212"),
        "+919876543213": LiveEntry("+919876543213"),
        "+14155550123": LiveEntry("+14155550123", provider_ids=("id-1",)),
        "+14155550124": LiveEntry("+14155550124", opt_out=True),
        "+14155550125": LiveEntry("+14155550125", opt_out=True),
    }
    managed = {
        n: ManagedEntry(n, reason="old", source="blocklists/old.yaml:9")
        for n in ("+919876543211", "+919876543212", "+919876543214", "+447700900123")
    }
    first = plan_target(wooxy, desired, live, managed, NOW, attribute_fields=("reject_type",))
    ozonetel = Target("ozonetel/fraud", "ozonetel", "ozonetel", (("group", "fraud"),))
    blind_managed = {f"+9198765{i:05d}": ManagedEntry(f"+9198765{i:05d}") for i in range(10)}
    second = plan_target(ozonetel, {}, None, blind_managed, NOW)
    assert not second.safe and not second.live_readable
    return Plan(NOW, [first, second], desired_digest="d" * 64, lineage="lin-1", serial=41)


def test_round_trip_is_exact(tmp_path: Path):
    plan = sample_plan()
    actions = {c.action for t in plan.targets for c in t.changes}
    assert actions == set(ACTIONS) and plan.targets[0].forget
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    loaded = load_plan(path)
    assert loaded == plan
    assert loaded.targets[1].unsafe_reasons == plan.targets[1].unsafe_reasons
    assert loaded.targets[0].forget == ["+447700900123"]


def test_file_is_the_unmasked_json_plan_with_what_apply_checks(tmp_path: Path):
    plan = sample_plan()
    path = tmp_path / "plan.json"
    save_plan(plan, path, desired_digest="e" * 64)
    text = path.read_text(encoding="ascii")
    doc = json.loads(text)
    assert doc == {**plan_to_dict(plan), "desired_digest": "e" * 64}
    assert doc["format_version"] == 1 and doc["tool_version"] == __version__
    assert doc["masked"] is False and "+919876543210" in text
    assert doc["lineage"] == "lin-1" and doc["serial"] == 41
    assert doc["now"] == "2026-11-22T09:30:15.123456Z"
    assert [t["fingerprint"] for t in doc["targets"]] == [t.fingerprint for t in plan.targets]
    assert load_plan(path).desired_digest == "e" * 64
    assert "credential" not in text and "token" not in text


def test_saving_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "plan.json"
    save_plan(sample_plan(), path)
    before = path.read_bytes()
    empty = Plan(NOW, [])
    save_plan(empty, path)  # replaces
    assert load_plan(path) == empty
    path.write_bytes(before)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_plan(empty, path)
    assert path.read_bytes() == before  # the old plan is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]  # no temp file left


# -- refusals --------------------------------------------------------------------------------


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "plan.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def saved_doc(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "plan.json"
    save_plan(sample_plan(), path)
    return path, json.loads(path.read_text())


def refusal(path: Path) -> str:
    with pytest.raises(BlocklistError) as info:
        load_plan(path)
    assert type(info.value) is BlocklistError
    message = str(info.value)
    assert message.startswith(f"{path}: not a blocklist plan file (")
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path):
    assert "no such file" in refusal(tmp_path / "nope.json")


def test_a_folder(tmp_path: Path):
    assert "cannot read it" in refusal(tmp_path)


@pytest.mark.parametrize(
    "content, why",
    [
        ("", "invalid JSON at line 1"),
        ("{not json", "invalid JSON at line 1"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        ("[1, 2]", "no format_version"),
        ('{"version": 1, "providers": {}}', "no format_version"),
        ('{"format_version": "1"}', "is not a number"),
        ('{"format_version": 0, "kind": "blocklist-plan"}', "unknown format version 0"),
        ('{"format_version": 2, "kind": "blocklist-plan"}', "format version 2 is newer"),
        ('{"format_version": 1, "kind": "state-export"}', "kind is 'state-export'"),
    ],
)
def test_garbage_is_refused_clearly(tmp_path: Path, content, why):
    assert why in refusal(write(tmp_path, content))


def test_a_plan_from_a_newer_tool(tmp_path: Path):
    path, doc = saved_doc(tmp_path)
    doc["tool_version"] = "99.0.0"
    message = refusal(write(tmp_path, json.dumps(doc)))
    assert f"written by blocklist 99.0.0, newer than this tool ({__version__})" in message


def test_an_older_tool_version_is_fine(tmp_path: Path):
    path, doc = saved_doc(tmp_path)
    doc["tool_version"] = "0.0.1"
    assert load_plan(write(tmp_path, json.dumps(doc))).tool_version == "0.0.1"


def test_a_masked_plan_cannot_be_loaded(tmp_path: Path):
    text = render_json(sample_plan(), mask=True)
    assert "masked" in refusal(write(tmp_path, text))


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda d: d.pop("targets"), "missing 'targets'"),
        (lambda d: d["targets"][0]["changes"][0].update(action="nuke"), "unknown action 'nuke'"),
        (lambda d: d["targets"][0]["changes"][0].update(number=919876543210), "is not a string"),
        (lambda d: d["targets"][0]["changes"][1].update(expires="soon"), "malformed"),
        (lambda d: d["targets"][0].update(existing="5"), "is not a number"),
        (lambda d: d["targets"][0].pop("fingerprint"), "missing 'fingerprint'"),
        (lambda d: d.update(now="2026-11-22T00:00:00"), "has no time zone"),
    ],
)
def test_a_damaged_plan_is_refused_clearly(tmp_path: Path, damage, why):
    path, doc = saved_doc(tmp_path)
    damage(doc)
    assert why in refusal(write(tmp_path, json.dumps(doc)))


# -- property: any plan survives the file ----------------------------------------------------

numbers = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
texts = st.text(max_size=12)
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
attr_pairs = st.dictionaries(texts, texts, max_size=2).map(lambda d: tuple(d.items()))
changes = st.builds(
    Change,
    action=st.sampled_from(ACTIONS),
    number=numbers,
    reason=st.none() | texts,
    expires=st.none() | instants,
    source=texts,
    attrs=attr_pairs,
    provider_ids=st.lists(texts.filter(bool), max_size=2).map(tuple),
    before=st.none() | st.lists(st.tuples(texts, st.none() | texts), max_size=2).map(tuple),
)
targets = st.builds(
    Target,
    name=texts,
    provider=texts,
    type=texts,
    scope=attr_pairs,
    exclusive=st.booleans(),
)
target_plans = st.builds(
    TargetPlan,
    target=targets,
    live_readable=st.booleans(),
    changes=st.lists(changes, max_size=4),
    existing=st.integers(0, 10**6),
    fingerprint=st.text(alphabet="0123456789abcdef", max_size=64),
    forget=st.lists(numbers, max_size=2),
    unsafe_reasons=st.lists(texts, max_size=2),
)
plans = st.builds(
    Plan,
    now=instants,
    targets=st.lists(target_plans, max_size=3),
    desired_digest=st.text(alphabet="0123456789abcdef", max_size=64),
    lineage=st.none() | texts,
    serial=st.none() | st.integers(0, 10**9),
    tool_version=st.just(__version__),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans)
def test_any_plan_round_trips(tmp_path: Path, plan: Plan):
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    assert load_plan(path) == plan
