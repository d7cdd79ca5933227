"""``reconciler.listedit``: list files edited in place and formatted, every comment
kept. Property tests over generated list files (fmt is idempotent, keeps every
comment and every value; removing entries keeps every other line), then the edge
cases by name."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.listedit import EditError, EntryFields, ListText, format_text
from reconciler.numbers import normalise
from reconciler.yamlload import load_text

REPO = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2027, 1, 15, tzinfo=dt.UTC)

# -- generated list files ------------------------------------------------------------------

_WORDS = st.sampled_from(["fraud", "spam", "sim box", "chargeback", "robocall", "phishing"])
_DATES = st.sampled_from(["2026-12-31", "2027-01-10", "2027-03-01", "2027-06-30T18:00:00+05:30"])
_TTLS = st.sampled_from(["30d", "6mo", "1y", "12w"])


@st.composite
def number_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(YAML scalar as written, its E.164 form) for an Indian mobile number."""
    digits = draw(st.text("0123456789", min_size=8, max_size=8))
    e164 = f"+9198{digits}"
    national = f"098 {digits[:3]} {digits[3:]}"
    written = draw(
        st.sampled_from(
            [
                f'"{e164}"',
                f"'{e164}'",
                e164,  # plain: an integer to YAML, text to the loader
                f'"{national}"',
                f"'+91 98{digits[:3]} {digits[3:]}'",
                f'"0091-98{digits[:3]}-{digits[3:]}"',
                f"(098) {digits}",
            ]
        )
    )
    return written, e164


class Comments:
    """Hands out unique comment texts and remembers them, with the entry whose lines
    hold each (None: a line of its own between entries, or the header's)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.owner: dict[str, int | None] = {}
        self.entry: int | None = None

    def new(self) -> str:
        text = f"c{len(self.texts)} note"
        self.texts.append(text)
        self.owner[text] = self.entry
        return text


@st.composite
def list_files(draw: st.DrawFn) -> tuple[str, list[str], list[str], dict[str, int | None]]:
    """(text, every comment in it, the E.164 numbers in entry order, the entry holding
    each comment)."""
    comments = Comments()
    dash, inner = draw(st.sampled_from([("  - ", "    "), ("- ", "  ")]))

    def eol() -> str:
        return f"   # {comments.new()}" if draw(st.booleans()) else ""

    def between(indent: str) -> list[str]:
        out = []
        for _ in range(draw(st.integers(0, 2))):
            out.append("" if draw(st.booleans()) else f"{indent}# {comments.new()}")
        return out

    lines = [
        "# yaml-language-server: $schema=../schemas/blocklist.schema.json",
        "version: 1" + eol(),
        "name: generated",
        "default_region: IN" + eol(),
        "targets:",
        f"{dash}{{provider: kaleyra, channel: sms}}",
    ]
    if draw(st.booleans()):
        lines.append("defaults: {reason: fraud, ttl: 6mo}" + eol())
    lines.append("entries:" + eol())
    numbers = []
    for n in range(draw(st.integers(0, 6))):
        comments.entry = None
        lines += between(dash[: len(dash) - 2])
        comments.entry = n
        written, e164 = draw(number_texts())
        numbers.append(e164)
        if draw(st.booleans()):
            lines.append(f"{dash}{written}{eol()}")
            continue
        keys = draw(
            st.lists(st.sampled_from(["reason", "expires", "ttl", "ticket", "note"]), unique=True)
        )
        if "expires" in keys and "ttl" in keys:
            keys.remove("ttl")
        if "ttl" in keys:
            keys.insert(draw(st.integers(0, len(keys))), "added")
        keys.insert(draw(st.integers(0, len(keys))), "number")
        for i, key in enumerate(keys):
            value = {
                "number": written,
                "reason": draw(_WORDS),
                "expires": draw(_DATES),
                "added": "2026-07-01",
                "ttl": draw(_TTLS),
                "ticket": f"TS-{draw(st.integers(1, 9999))}",
                "note": draw(_WORDS),
            }[key]
            lead = dash if i == 0 else inner
            lines.append(f"{lead}{key}: {value}{eol()}")
            if i < len(keys) - 1 and draw(st.integers(0, 4)) == 0:
                lines.append(f"{inner}# {comments.new()}")
    comments.entry = None
    lines += between("")
    return "\n".join(lines) + "\n", comments.texts, numbers, comments.owner


def entry_values(text: str) -> list[dict]:
    """What the loader reads of each entry: the number in E.164 and the other keys."""
    data = load_text(text, "list.yaml")
    out = []
    for i, item in enumerate(data.get("entries") or []):
        if isinstance(item, dict):
            raw = item.raws.get("number", str(item["number"]))
            values = {k: v for k, v in item.items() if k != "number"}
        else:
            raw = data["entries"].raws[i] or str(item)
            values = {}
        out.append({"number": normalise(raw, "IN"), **values})
    return out


def comments_in(text: str) -> list[str]:
    return re.findall(r"# (c\d+ note)", text)


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(list_files())
def test_fmt_is_idempotent_and_keeps_every_comment_and_value(generated) -> None:
    text, comments, numbers, _ = generated
    once, first = format_text(text, "list.yaml")
    twice, report = format_text(once, "list.yaml")
    assert twice == once
    assert report.numbers == 0 and report.reordered == 0
    # every comment; in the same order unless keys moved (a comment moves with its key)
    assert sorted(comments_in(once)) == sorted(comments)
    if not first.reordered:
        assert comments_in(once) == comments
    assert entry_values(once) == entry_values(text)
    for item in load_text(once, "list.yaml").get("entries") or []:
        if isinstance(item, dict):
            keys = list(item)
            assert keys[0] == "number"
            canonical = [k for k in ("number", "reason", "expires", "added", "ttl") if k in keys]
            assert keys[: len(canonical)] == canonical
    assert all(f'"{n}"' in once for n in numbers)


@settings(SETTINGS, max_examples=40)
@given(list_files(), st.data())
def test_removing_entries_keeps_every_other_line_and_comment(generated, data) -> None:
    text, comments, numbers, owner = generated
    doc = ListText(text, "list.yaml")
    count = len(doc.entries())
    gone = data.draw(st.sets(st.sampled_from(range(count))) if count else st.just(set()))
    doc.remove(gone)
    after = doc.dump()
    # the comments on a removed entry's own lines go with it; every other one stays
    assert comments_in(after) == [c for c in comments if owner[c] not in gone]
    assert [e["number"] for e in entry_values(after)] == [
        n for i, n in enumerate(numbers) if i not in gone
    ]


@settings(SETTINGS, max_examples=25)
@given(list_files())
def test_fmt_prunes_exactly_the_expired_entries(generated) -> None:
    text, _, _, _ = generated
    doc = ListText(text, "list.yaml")
    expired = {r.index for r in doc.entries() if r.expires is not None and r.expires <= NOW}
    out, report = format_text(text, "list.yaml", now=NOW)
    assert len(report.pruned) == len(expired)
    left = ListText(out, "list.yaml").entries()
    assert all(r.expires is None or r.expires > NOW for r in left)
    assert len(left) == len(doc.entries()) - len(expired)
    again, _ = format_text(out, "list.yaml", now=NOW)
    assert again == out


# -- the files that ship, the test corpus, and import's output -----------------------------


def shipped_and_corpus_lists() -> list[Path]:
    paths = sorted((REPO / "blocklists").glob("*.yaml")) + sorted(
        (REPO / "tests" / "corpus").rglob("*.yaml")
    )
    return [p for p in paths if p.name != "providers.yaml"]


def test_every_shipped_and_corpus_list_round_trips_without_losing_a_comment() -> None:
    checked = 0
    for path in shipped_and_corpus_lists():
        try:
            text = path.read_text(encoding="utf-8")
            done = format_text(text, str(path))
        except Exception:  # noqa: BLE001 - corpus files that are not YAML are not fmt's
            continue
        if done is None:
            continue
        out, _ = done
        # every comment survives, word for word (numbers are rewritten, not comments)
        assert _comment_texts(out) == _comment_texts(text), path
        assert format_text(out, str(path))[0] == out, path  # idempotent
        # and an edit that changes nothing writes the file back byte for byte
        assert ListText(text, str(path)).dump() == text, path
        checked += 1
    assert checked >= 10


def _comment_texts(text: str) -> list[str]:
    """The comments of a file: full-line ones and what follows `  #` on a line."""
    out = []
    for line in text.splitlines():
        m = re.search(r"(?:^|\s)#\s?(.*)$", line)
        if m and not re.match(r"""^\s*-?\s*["'][^"']*#""", line):
            out.append(m.group(1).strip())
    return out


def test_a_file_written_by_import_round_trips() -> None:
    from reconciler.domain import LiveEntry, Target
    from reconciler.operations.imports import ImportGroup, Selection, render_list_yaml

    target = Target("kaleyra/sms", "kaleyra", "kaleyra", (("channel", "sms"),))
    entries = [LiveEntry(n) for n in ("+14155550123", "+919876543210")]
    group = ImportGroup((), entries, name="imported-kaleyra-sms")
    selection = Selection(live=3, groups=[group], opt_outs=1)
    text = render_list_yaml(
        target, group, selection, now=NOW, schema_ref="../schemas/blocklist.schema.json"
    )
    assert text.startswith("# yaml-language-server")
    out, report = format_text(text, "imported.yaml")
    assert out == text and report.numbers == 0  # already canonical, comments and all
    assert ListText(text, "imported.yaml").dump() == text


# -- edits, case by case -------------------------------------------------------------------


SHORT = """\
version: 1
name: l
targets:
  - {provider: kaleyra, channel: sms}
entries:   # the entries
  # about a
  - "+919876543210"   # a

  # about b
  - "+919876543211"   # b
# trailer
"""


def test_removing_the_first_entry_keeps_the_comments_before_the_next() -> None:
    doc = ListText(SHORT, "l.yaml")
    doc.remove([0])
    out = doc.dump()
    assert '"+919876543210"' not in out and "# a\n" not in out
    assert "# the entries" in out and "# about a" in out and "# about b" in out
    assert out.index("# about b") < out.index('"+919876543211"') < out.index("# trailer")


def test_removing_the_last_entry_keeps_the_trailer() -> None:
    doc = ListText(SHORT, "l.yaml")
    doc.remove([1])
    out = doc.dump()
    assert '"+919876543211"' not in out and "# b" not in out
    assert out.endswith("# trailer\n") and "# about b" in out


def test_adding_puts_the_entry_before_the_trailer_in_the_list_style() -> None:
    doc = ListText(SHORT, "l.yaml")
    doc.add("+919876543212", EntryFields())
    doc.add("+919876543213", EntryFields(reason="yes", metadata=(("ticket", "TS-1"),)))
    out = doc.dump()
    assert out.endswith(
        '  - "+919876543212"\n  - number: "+919876543213"\n    reason: "yes"\n'
        "    ticket: TS-1\n# trailer\n"
    )
    assert load_text(out, "l.yaml")["entries"][3]["reason"] == "yes"  # not a boolean


def test_block_into_an_empty_flow_list_writes_a_block_list() -> None:
    text = "version: 1\nname: l\ntargets: [{provider: kaleyra, channel: sms}]\nentries: []\n"
    doc = ListText(text, "l.yaml")
    doc.add("+919876543210", EntryFields())
    assert doc.dump().endswith('entries:\n  - "+919876543210"\n')
    doc = ListText("version: 1\nname: l\ntargets: [{provider: kaleyra, channel: sms}]\n", "l")
    doc.add("+919876543210", EntryFields())
    assert doc.dump().endswith('entries:\n  - "+919876543210"\n')


def test_an_edit_keeps_the_files_own_indentation_and_plain_numbers() -> None:
    text = "version: 1\nname: l\ntargets:\n- {provider: kaleyra, channel: sms}\nentries:\n- +919876543210  # plain\n- number: 0091 98765 43211\n  ticket: 0123\n"
    doc = ListText(text, "l.yaml")
    doc.add("+919876543212", EntryFields())
    out = doc.dump()
    assert out == text + "- +919876543212\n"
    assert entry_values(out)[0]["number"] == "+919876543210"


def test_updating_a_short_entry_makes_it_long_and_keeps_its_comment() -> None:
    doc = ListText(SHORT, "l.yaml")
    changes = doc.update(
        0, EntryFields(ttl="30d", added=dt.date(2026, 12, 1), metadata=(("ticket", "TS-9"),))
    )
    assert changes == [
        "added: (none) -> 2026-12-01",
        "ttl: (none) -> 30d",
        "ticket: (none) -> TS-9",
    ]
    out = doc.dump()
    assert (
        '  - number: "+919876543210" # a\n    added: 2026-12-01\n    ttl: 30d\n'
        "    ticket: TS-9\n\n  # about b\n"
    ) in out
    again = ListText(out, "l.yaml")
    assert again.update(0, EntryFields(expires=dt.date(2027, 2, 1))) == [
        "ttl: 30d -> (removed)",
        "added: 2026-12-01 -> (removed)",
        "expires: (none) -> 2027-02-01",
    ]
    assert "expires: 2027-02-01\n    ticket: TS-9" in again.dump()


def test_raw_comments_keep_the_written_form() -> None:
    text = SHORT.replace('"+919876543211"', '"098765 43211"').replace(
        "entries:", "default_region: IN\nentries:"
    )
    out, report = format_text(text, "l.yaml", raw_comments=True)
    assert report.numbers == 1
    assert re.search(r'\n  - "\+919876543211" +# was 098765 43211; b\n', out), out
    assert format_text(out, "l.yaml", raw_comments=True)[0] == out


def test_a_number_fmt_cannot_read_is_left_as_written() -> None:
    text = SHORT.replace('"+919876543211"', '"12ab"')
    out, report = format_text(text, "l.yaml")
    assert '"12ab"' in out and report.unreadable == [(10, "12ab")]


def test_fmt_reorders_keys_and_keeps_the_comment_below_the_entry() -> None:
    text = (
        "version: 1\nname: l\ntargets: [{provider: kaleyra, channel: sms}]\nentries:\n"
        '  - ticket: TS-1   # t\n    expires: 2027-03-01\n    number: "+919876543210"   # n\n'
        "  # about the next one\n"
        '  - "+919876543211"\n'
    )
    out, report = format_text(text, "l.yaml")
    assert report.reordered == 1
    assert out.endswith(
        '  - number: "+919876543210"   # n\n    expires: 2027-03-01\n    ticket: TS-1   # t\n'
        '  # about the next one\n  - "+919876543211"\n'
    )


def test_fmt_leaves_providers_yaml_alone() -> None:
    text = (REPO / "blocklists" / "providers.yaml").read_text()
    assert format_text(text, "providers.yaml") is None


def test_line_ends_byte_order_marks_and_document_markers_are_kept() -> None:
    for text in (
        'version: 1\r\nentries:\r\n  - "+919876543210"  # c\r\n',
        '\ufeffversion: 1\nentries:\n  - "+919876543210"\n',
        "%YAML 1.1\n---\nversion: 1\nentries: []\n...\n",
    ):
        assert ListText(text, "l.yaml").dump() == text


def test_an_edit_that_would_lose_a_comment_is_refused() -> None:
    """ruamel drops a comment above an explicit document start: rather than write a
    file without it, the edit fails and says which comment and where."""
    text = (
        '# owned by trust and safety\n--- # the list\nversion: 1\nentries:\n  - "+919876543210"\n'
    )
    doc = ListText(text, "l.yaml")
    doc.add("+919876543211", EntryFields())
    with pytest.raises(EditError) as exc:
        doc.dump()
    assert str(exc.value) == (
        "l.yaml:1: cannot be rewritten without losing the comment "
        "'owned by trust and safety': edit it by hand"
    )
