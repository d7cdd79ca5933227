"""The bulk paths of loading against the slow, obvious ones.

- ``yamlentries.read_list`` (a list's entries as rows, checked and built without a
  Loc tree or a model) against the generic path (``yamlfast``/libyaml, the model,
  entry by entry): on random list files, the same desired state or the same problems.
- The merge of whole lists into their targets (targets sharing one mapping while they
  hold the same entries) against merging entry by entry, target by target.
- Expiries shared between entries against freshly parsed ones.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler import desired as desired_mod
from reconciler import yamlload
from reconciler.desired import Desired, load_desired
from reconciler.domain import DesiredEntry
from reconciler.errors import ConfigError
from reconciler.expiry import to_utc
from reconciler.yamlentries import EntryRows, read_list
from reconciler.yamlload import load_text
from reconciler.yamlnodes import LocList, YamlProblem

PROVIDERS = """\
version: 1
providers:
  oz: {type: ozonetel, base_url: sandbox}
  wx: {type: wooxy, base_url: sandbox}
  ph: {type: phonely, base_url: sandbox}
protected:
  - "+18005550100"
"""
POLICY = """\
policy:
  protected_ranges: ["+1900"]
"""
TARGETS = [
    "{provider: oz, group: g1}",
    "{provider: oz, group: g2}",
    "{provider: wx, reject_type: invalid}",
    "{provider: wx, reject_type: import}",  # conflicts with the one above
    "{provider: ph, agent_id: a1}",
]
#: (common values, odd ones): an odd one in one of ~20 values, so that most files are
#: read in bulk and a good share of them is loaded without problems. A number's
#: ``{}`` is filled with four digits: distinct numbers, duplicates now and then.
NUMBERS = (
    [
        '"+91987650{}"',
        "'+91987650{}'",
        "+91987650{}",
        "+91 98765 0{}",
        '"098765 0{}"',  # national: needs default_region IN
        "987650{}",  # plain digits: an int in YAML, read as written
        '"+141525{}0"',
        "+1613555{}",  # Canada, after the US
        '"+447400{}12"',
        '"+6141234{}"',
        '"+91 98765-0{}"',
    ],
    [
        '"+18005550100"',  # protected
        '"+1900555{}"',  # in the protected range (when the policy has it)
        '"+1234"',  # invalid
        '"not a number"',
        "'it''s'",
        "+0919876500{}",
        "+91 98765  0{}",
        '"\\+91987650{}"',
        "~",
        "+91 98765 0{} # c",
    ],
)
TEXTS = (
    ["fraud", "sim-box fraud", '"quoted reason"', "'single quoted'", "TS-1", "über", "a:b"],
    [
        '""',
        "yes",  # a boolean
        "123",  # an int
        "1.5",
        "~",
        "null",
        "http://example.com/x",
        "a #not a comment",
        "x# y",
        "2027-01-01",  # a date, not text
        "-x",
        "a, b",
        "[x]",
        "{a: b}",
        "'it''s'",
        "a: b",
        "a:",
        "&anchor x",
        "!!str x",
        "|",
    ],
)
WHENS = (
    ["2027-03-01", "2026-01-01", "2027-03-01T10:00:00+05:30", "2027-03-01T10:00:00Z"],
    [
        "2027-03-01 10:00:00 +05:30",
        "2027-03-01t10:00:00z",
        "2027-03-01T10:00:00",  # no zone
        "2027-13-45",  # not a date
        '"2027-03-01"',  # quoted: text
        "2027-3-1",
        "12:30",
        "2027-03-01 # c",
    ],
)
TTLS = (["90d", "12w", "6mo", "1y", "24h"], ["0d", "90", '"90d"', "abc", "1.5d"])
COMMENTS = (["", "", "", "  # a comment"], [" #c", "#x", "   "])


#: how often an odd value is drawn instead of a common one
ODD = 1 / 80


def pick(rnd: random.Random, values: tuple[list[str], list[str]]) -> str:
    common, odd = values
    return rnd.choice(odd if rnd.random() < ODD else common)


def entry(rnd: random.Random, indent: int) -> str:
    """One item of a list's entries, as people write them (now and then oddly)."""
    pad = " " * indent
    number = pick(rnd, NUMBERS).replace("{}", f"{rnd.randrange(10_000):04d}")
    if rnd.random() < 0.1:
        return f"{pad}- {number}{pick(rnd, COMMENTS)}\n"
    keys = [("number", number)]
    if rnd.random() < 0.5:
        keys.append(("reason", pick(rnd, TEXTS)))
    when = rnd.random()
    if when < 0.6 or when > 0.98:  # an expiry (rarely with a ttl too)
        keys.append(("expires", pick(rnd, WHENS)))
    if when > 0.85:  # added and ttl (rarely without added)
        if rnd.random() < 0.97:
            keys.append(("added", pick(rnd, WHENS)))
        keys.append(("ttl", pick(rnd, TTLS)))
    if rnd.random() < 0.5:
        keys.append(("ticket", pick(rnd, TEXTS)))
    if rnd.random() < 0.1:
        keys.append(("note", pick(rnd, TEXTS)))
    if rnd.random() < 0.1:
        keys.append(("owner", pick(rnd, TEXTS)))
    if rnd.random() < ODD:
        keys.append(("labels", "[a, b]"))
    if rnd.random() < ODD:
        keys.insert(rnd.randrange(len(keys) + 1), keys.pop(0))  # number elsewhere
    if len(keys) > 2 and rnd.random() < ODD:  # the other keys in another order
        keys.insert(rnd.randrange(1, len(keys)), keys.pop(rnd.randrange(1, len(keys))))
    if rnd.random() < ODD:
        keys.append(("reason", "again"))  # a duplicate key
    lines = []
    for k, (key, value) in enumerate(keys):
        lead = f"{pad}- " if k == 0 else f"{pad}  "
        lines.append(f"{lead}{key}: {value}{pick(rnd, COMMENTS)}\n")
    return "".join(lines)


@st.composite
def list_file(draw: st.DrawFn, name: str) -> str:
    """A list file: mostly valid, in the shape ``read_list`` reads, sometimes not."""
    rnd = random.Random(draw(st.integers(0, 2**64)))  # exact odds (hypothesis biases its own)
    indent = rnd.choice([2, 2, 2, 0, 4])
    targets = rnd.sample(TARGETS, rnd.randint(1, 4))
    if TARGETS[2] in targets and TARGETS[3] in targets and rnd.random() > ODD:
        targets.remove(TARGETS[3])  # one wooxy target (both: a problem)
    defaults = [
        "",
        "",
        "defaults: {reason: fraud}\n",
        "defaults: {expires: 2027-06-01}\n",
        "defaults:\n  reason: spam\n  expires: 2027-01-01T00:00:00+01:00\n",
    ]
    head = [
        "version: 1\n",
        f"name: {name}\n",
        rnd.choice(["default_region: IN\n", "default_region: IN\n", "", "default_region: US\n"]),
        "targets:\n",
        *(f"  - {t}\n" for t in targets),
        rnd.choice(defaults) if rnd.random() > ODD else "defaults: {reason: fraud, ttl: 90d}\n",
    ]
    body = []
    for _ in range(rnd.randint(1, 10)):
        if rnd.random() < 0.05:
            body.append(rnd.choice(["\n", "# between\n", "    # deeper\n", "  \n"]))
        body.append(entry(rnd, indent))
    tail = rnd.choice(["", "", "", "description: after the entries\n"])
    if rnd.random() < ODD:
        tail += "extra: 1\n"  # an unknown key
    text = "".join(head) + "entries:" + rnd.choice(["", "  # c"]) + "\n"
    text += "".join(body) + tail
    if rnd.random() < 0.05:
        text = text.rstrip("\n")  # no final line break
    return text


def write(root: Path, lists: list[str], policy: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    (root / "providers.yaml").write_text(PROVIDERS + (POLICY if policy else ""))
    for k, text in enumerate(lists):
        (root / f"list{k}.yaml").write_text(text)


def outcome(root: Path) -> Any:
    """Everything a load gives: the desired state in full (orders too), or the problems."""
    try:
        desired = load_desired(root, "blocklists")
    except ConfigError as exc:
        return ("problems", [str(p) for p in exc.problems])
    return ("desired", state_of(desired))


def state_of(desired: Desired) -> Any:
    return (
        [(name, list(entries.items())) for name, entries in desired.entries.items()],
        list(desired.targets.items()),
        desired.lists,
        desired.list_regions,
        [(ls.name, ls.display, ls.region, ls.targets) for ls in desired.list_files],
    )


def same_header(text: str) -> None:
    """What ``read_list`` reads is what the generic path reads: the same mapping (marks
    and raws too) but for ``entries``, a sequence of as many items as there are rows.
    (Rows are not typed: a value the generic path refuses, such as 2027-13-45, is
    found when the entries are built, which then decline.)"""
    read = read_list(text)
    if read is None:
        return
    try:
        generic = load_text(text, "t.yaml")
    except YamlProblem:
        return
    rows = read.pop("entries")
    items = generic.pop("entries")
    assert isinstance(rows, EntryRows) and isinstance(items, LocList)
    assert list(read.items()) == list(generic.items())
    assert read.mark == generic.mark and read.key_marks == generic.key_marks
    assert read.raws == generic.raws
    marks = []  # each item's place, from the rows: an item spans a line per key
    line = rows.line
    for row in rows.rows:
        if row[10]:
            return  # a line not read in bulk: the generic path loads the entries
        if row[9]:
            line += row[9].count("\n")
            continue
        marks.append((line, rows.col))
        line += 1 if row[0] else 8 - row[2:9].count(None)
    assert marks == items.marks


def generic_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlload, "read_list", lambda text: None)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=3).flatmap(
        lambda seeds: st.tuples(*(list_file(f"l{k}") for k in range(len(seeds))))
    ),
    st.booleans(),
)
@example(
    (
        "version: 1\nname: a\ndefault_region: IN\ntargets:\n  - {provider: oz, group: g1}\n"
        'entries:\n  - number: "+919876543210"\n    reason: fraud\n    expires: 2027-03-01\n'
        '  - "+14155550123"\n',
    ),
    False,
)
def test_bulk_read_lists_load_as_the_generic_path_does(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, lists, policy
) -> None:
    for text in lists:
        same_header(text)
    root = tmp_path_factory.mktemp("lists") / "blocklists"
    write(root, list(lists), policy)
    fast = outcome(root)
    with monkeypatch.context() as m:
        generic_only(m)
        slow = outcome(root)
    assert fast == slow


def test_the_benchmark_shape_is_read_in_bulk(tmp_path: Path, monkeypatch) -> None:
    """The shape the bulk path is for (plan_bench's entries) is read by it, not declined."""
    lines = []
    for k in range(200):
        number = f"+9198{k:08d}"
        lines.append(
            [
                f'  - "{number}"\n',
                f'  - number: "{number}"\n    reason: fraud\n    expires: 2027-{1 + k % 12:02d}-01\n'
                f"    ticket: TS-{k}\n",
                f'  - number: "{number}"\n    added: 2026-10-01\n    ttl: 90d\n    ticket: TS-{k}\n',
                f'  - number: "+91 98{k:08d}"\n    reason: spam\n    ticket: TS-{k}\n',
                f'  - number: "{number}"\n    reason: x\n    expires: 2027-01-01T18:00:00+05:30\n',
            ][k % 5]
        )
    text = (
        "version: 1\nname: big\ndefault_region: IN\ntargets:\n  - {provider: oz, group: g1}\n"
        "  - {provider: wx, reject_type: invalid}\ndefaults: {reason: fraud}\nentries:\n"
        + "".join(lines)
    )
    read = read_list(text)
    assert read is not None and isinstance(read["entries"], EntryRows)
    header = load_text(text, "t.yaml")
    del header["entries"]
    del read["entries"]
    assert read == header and read.key_marks == header.key_marks and read.raws == header.raws

    root = tmp_path / "blocklists"
    write(root, [text], False)
    taken = []
    original = desired_mod._Loader.bulk_entries

    def spy(self: Any, *args: Any) -> Any:
        entries = original(self, *args)
        taken.append(entries is not None)
        return entries

    monkeypatch.setattr(desired_mod._Loader, "bulk_entries", spy)
    fast = outcome(root)
    assert taken == [True]
    got = load_desired(root, "blocklists")
    assert got.digest() == obvious_digest(got)
    generic_only(monkeypatch)
    assert outcome(root) == fast
    assert load_desired(root, "blocklists").digest() == got.digest()


# --- merging whole lists, targets sharing mappings ----------------------------------


def merged_entry_by_entry(root: Path, names: list[str]) -> tuple[dict, list[str]]:
    """The obvious merge: each list loaded alone, then merged entry by entry, target by
    target, in file order (no expiry beats any expiry, else the later expiry wins;
    conflicting attributes are a problem)."""
    out: dict[str, dict[str, DesiredEntry]] = {}
    problems: list[str] = []
    for name in names:
        alone = root.parent / f"alone-{name}"
        alone.mkdir()
        (alone / "providers.yaml").write_text((root / "providers.yaml").read_text())
        (alone / name).write_text((root / name).read_text())
        one = load_desired(alone, "blocklists")
        for target, entries in one.entries.items():
            into = out.setdefault(target, {})
            for number, entry in entries.items():
                existing = into.get(number)
                if existing is None:
                    into[number] = entry
                elif existing.attrs != entry.attrs:
                    problems.append(f"{number} for {target}")
                elif existing.expires is not None and (
                    entry.expires is None or entry.expires > existing.expires
                ):
                    into[number] = entry
    return out, problems


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(TARGETS), min_size=1, max_size=5, unique=True).filter(
                lambda ts: not (TARGETS[2] in ts and TARGETS[3] in ts)  # one wooxy target
            ),
            st.lists(
                st.tuples(st.integers(0, 12), st.sampled_from(["", "2027-01-01", "2028-01-01"])),
                max_size=8,
                unique_by=lambda e: e[0],
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_merging_whole_lists_is_merging_entry_by_entry(
    tmp_path_factory: pytest.TempPathFactory, lists: list
) -> None:
    base = tmp_path_factory.mktemp("merge")
    root = base / "blocklists"
    texts = []
    for k, (targets, entries) in enumerate(lists):
        body = "".join(
            f'  - number: "+9198765432{n:02d}"\n'
            + (f"    expires: {when}\n" if when else "")
            + f"    reason: r{k}\n"
            for n, when in entries
        )
        texts.append(
            f"version: 1\nname: l{k}\ntargets:\n"
            + "".join(f"  - {t}\n" for t in targets)
            + (f"entries:\n{body}" if body else "entries: []\n")
        )
    write(root, texts, False)
    names = [f"list{k}.yaml" for k in range(len(texts))]
    expected, conflicts = merged_entry_by_entry(root, names)
    try:
        got = load_desired(root, "blocklists")
    except ConfigError as exc:
        messages = [p.message for p in exc.problems]
        assert conflicts and all(any(c in m for m in messages) for c in conflicts)
        assert len(messages) == len(conflicts)
        return
    assert not conflicts
    assert {t: list(e.items()) for t, e in got.entries.items() if e} == {
        t: list(e.items()) for t, e in expected.items() if e
    }
    assert got.digest() == obvious_digest(got)


def obvious_digest(desired: Desired) -> str:
    """``Desired.digest`` as first written: every target's entries made into text anew."""
    import hashlib

    from reconciler.expiry import iso

    h = hashlib.sha256()
    for name in sorted(desired.entries):
        h.update(f"T{name}|{desired.targets[name].exclusive}\n".encode())
        entries = desired.entries[name]
        h.update(
            "".join(
                f"{n}|{iso(e.expires)}|{e.reason}|{e.attrs}\n"
                for n, e in ((n, entries[n]) for n in sorted(entries))
            ).encode()
        )
    return h.hexdigest()


def test_targets_share_a_mapping_until_a_list_changes_only_some(tmp_path: Path) -> None:
    root = tmp_path / "blocklists"
    one = (
        "version: 1\nname: one\ntargets:\n  - {provider: oz, group: g1}\n"
        '  - {provider: oz, group: g2}\n  - {provider: ph, agent_id: a1}\nentries:\n  - "+919876543210"\n'
    )
    two = (
        "version: 1\nname: two\ntargets:\n  - {provider: oz, group: g2}\n"
        '  - {provider: ph, agent_id: a1}\nentries:\n  - "+919876543211"\n'
    )
    write(root, [one], False)
    desired = load_desired(root)
    g1, g2, a1 = (desired.entries[n] for n in ("oz/g1", "oz/g2", "ph/a1"))
    assert g1 is g2 is a1
    write(root, [one, two], False)
    desired = load_desired(root)
    g1, g2, a1 = (desired.entries[n] for n in ("oz/g1", "oz/g2", "ph/a1"))
    assert list(g1) == ["+919876543210"]
    assert list(g2) == list(a1) == ["+919876543210", "+919876543211"]
    assert g2 is a1 and g1 is not g2
    assert g1["+919876543210"] is g2["+919876543210"]  # one entry object


# --- shared expiries ----------------------------------------------------------------


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "generic"])
def test_shared_expiries_are_the_freshly_parsed_ones(tmp_path: Path, monkeypatch, bulk) -> None:
    """Entries with the same expiry share one datetime, equal to the one parsed anew."""
    whens = ["2027-03-01", "2027-03-01T10:00:00+05:30", "2027-03-01T04:30:00Z", "2028-01-01"]
    lines = []
    for k, when in zip(range(40), itertools.cycle(whens), strict=False):
        lines.append(f'  - number: "+9198765432{k:02d}"\n    expires: {when}\n')
    lines.append('  - number: "+919876543299"\n    added: 2027-01-01\n    ttl: 59d\n')
    text = (
        "version: 1\nname: x\ntargets:\n  - {provider: oz, group: g1}\n"
        "  - {provider: wx, reject_type: invalid}\nentries:\n" + "".join(lines)
    )
    root = tmp_path / "blocklists"
    write(root, [text], False)
    if not bulk:
        generic_only(monkeypatch)
    desired = load_desired(root)
    fresh = {
        "2027-03-01": to_utc(dt.date(2027, 3, 1)),
        "2027-03-01T10:00:00+05:30": to_utc(
            dt.datetime(2027, 3, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
        ),
        "2027-03-01T04:30:00Z": dt.datetime(2027, 3, 1, 4, 30, tzinfo=dt.UTC),
        "2028-01-01": to_utc(dt.date(2028, 1, 1)),
    }
    by_instant: dict[dt.datetime, dt.datetime] = {}
    for entries in desired.entries.values():
        for k, when in zip(range(40), itertools.cycle(whens), strict=False):
            got = entries[f"+9198765432{k:02d}"].expires
            assert got == fresh[when] and got.tzinfo is dt.UTC
            assert by_instant.setdefault(got, got) is got  # one object per instant
        ttl = entries["+919876543299"].expires
        assert ttl == to_utc(dt.date(2027, 3, 1)) and ttl is by_instant[ttl]
