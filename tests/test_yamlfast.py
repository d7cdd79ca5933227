"""`yamlfast.load_fast` against the libyaml path it stands in for: for any text it
returns exactly what libyaml's composer and ``yamlload._Builder`` give (values,
types, and every mark and raw), or None; never a different result, never an
exception."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler import yamlload
from reconciler.yamlfast import load_fast
from reconciler.yamlload import load_text
from reconciler.yamlnodes import LocDict, LocList, YamlProblem

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "blocklists").glob("*.yaml"))
INVALID = sorted((REPO / "tests" / "corpus" / "invalid").glob("**/blocklists/**/*"))
INVALID = [p for p in INVALID if p.is_file()]

FAILED = object()  # the libyaml path refused the text


def libyaml(text: str) -> Any:
    """What the libyaml path gives for text, or FAILED."""
    try:
        node = yaml.compose(text, Loader=yamlload._Loader)
        if node is None:
            return FAILED
        distinct = 1 << 62
        if "*" in text:  # as load_text does: bound alias expansion (the corpus has a bomb)
            seen: set[int] = set()
            yamlload._count(node, seen)
            distinct = len(seen)
        return yamlload._Builder("t.yaml", distinct).build(node)
    except Exception:  # YAMLError, YamlProblem, UnicodeEncodeError for lone surrogates...
        return FAILED


def scalar_key(value: Any) -> tuple[type, str]:
    # repr tells 1, 1.0 and True apart, shows a datetime's zone and makes nan == nan
    return (type(value), repr(value))


def assert_same(fast: Any, ref: Any, path: str = "$") -> None:
    assert type(fast) is type(ref), f"{path}: {type(fast)} != {type(ref)}"
    if isinstance(ref, LocDict):
        assert fast.mark == ref.mark, f"{path}: mark"
        assert [scalar_key(k) for k in fast] == [scalar_key(k) for k in ref], f"{path}: keys"
        fast_marks = [(scalar_key(k), v) for k, v in fast.key_marks.items()]
        ref_marks = [(scalar_key(k), v) for k, v in ref.key_marks.items()]
        assert fast_marks == ref_marks, f"{path}: key_marks"
        fast_raws = [(scalar_key(k), v) for k, v in fast.raws.items()]
        ref_raws = [(scalar_key(k), v) for k, v in ref.raws.items()]
        assert fast_raws == ref_raws, f"{path}: raws"
        for (key, a), b in zip(fast.items(), ref.values(), strict=True):
            assert_same(a, b, f"{path}.{key!r}")
    elif isinstance(ref, LocList):
        assert fast.mark == ref.mark, f"{path}: mark"
        assert fast.marks == ref.marks, f"{path}: marks"
        assert fast.raws == ref.raws, f"{path}: raws"
        assert len(fast) == len(ref), f"{path}: length"
        for k, (a, b) in enumerate(zip(fast, ref, strict=True)):
            assert_same(a, b, f"{path}[{k}]")
    else:
        assert isinstance(ref, str | int | float | bool | type(None)) or hasattr(ref, "year")
        if isinstance(ref, float) and math.isnan(ref):
            assert math.isnan(fast), path
        else:
            assert repr(fast) == repr(ref), f"{path}: {fast!r} != {ref!r}"


def check(text: str, *, in_subset: bool = False) -> Any:
    """load_fast(text) is None or the libyaml path's result; with in_subset, it must
    not be None where libyaml loads the text."""
    fast = load_fast(text, "t.yaml")  # must not raise
    ref = libyaml(text)
    if fast is None:
        assert not (in_subset and ref is not FAILED), f"fast path declined:\n{text}"
    else:
        assert ref is not FAILED, f"fast path loaded what libyaml refuses:\n{text}"
        assert_same(fast, ref)
    return fast


# --- the shipped files and the corpus of bad input --------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_lists_load_fast_and_identically(path: Path) -> None:
    assert check(path.read_text(encoding="utf-8"), in_subset=True) is not None


@pytest.mark.parametrize("path", INVALID, ids=[str(p.relative_to(REPO / "tests")) for p in INVALID])
def test_invalid_corpus_is_declined_or_identical(path: Path) -> None:
    check(path.read_bytes().decode("utf-8", errors="replace"))


def test_load_text_takes_the_fast_path_and_falls_back(monkeypatch) -> None:
    text = (REPO / "blocklists" / "fraud.yaml").read_text(encoding="utf-8")
    expected = libyaml(text)

    def no_libyaml(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("libyaml was called")

    monkeypatch.setattr(yaml, "compose", no_libyaml)
    assert_same(load_text(text, "fraud.yaml"), expected)
    monkeypatch.undo()
    with pytest.raises(YamlProblem) as caught:  # declined, so libyaml words the error
        load_text("a: 1\n\tb: 2\n", "t.yaml")
    assert "tab character" in str(caught.value)
    with pytest.raises(YamlProblem, match="duplicate key 'a'"):
        load_text("a: 1\na: 2\n", "t.yaml")
    with pytest.raises(YamlProblem, match="invalid value '2027-13-45'"):
        load_text("a: 2027-13-45\n", "t.yaml")


# --- hand-picked corners ------------------------------------------------------------

IN_SUBSET = [
    "a: 1\n",
    "a:\n",
    "a:\nb: ~\n",
    "a: b # c\nd:    e   \n",
    "k: [ a , -b ,'x', \"y\" ]  # c\n",
    "k: {a: 1, b: \"q\", c: 'it''s'}\n",
    "k: []\nl: {}\nm: [ ]\nn: { }\n",
    "a:\n- x\n-\n- y\nb: 2\n",
    "-\n  a: 1\n- \n-   b: 2\n    c:\n    - y\n",
    "- a:\n  - x\n  b: 1\n",
    "- a:\n    b: 1\n  c: 2\n",
    "a:\n  b:\n    c: d\n  e: f\ng: h\n",
    "a: 'x # y'\nb: \"p: q\"\nc: ''\nd: \"\"\n",
    "a: x#y\nb: http://example.com/a?b=c\nc: 12:30\nd: -5\ne: -x\n",
    "yes: 1\nno: 2\n~: 3\n2027-03-01: 4\n1.5: 5\n",
    "  a: 1\n  b: 2\n",
    "# c\n\na: 1   # x\n  # indented comment\n\nb: 2\n#\n",
    "a: 2027-03-01T10:00:00+05:30\nb: 2027-03-01 10:00:00\nc: 2027-03-01t10:00:00.5Z\n",
    'a: café\nb: "日本"\nc: x\u00a0y\nd: 😀\nclé: 1\n',
    "a: [+919876543210, 0151 12345678, 098765 43211, 1e3, 0o17, 0x1F, 1_000, .inf]\n",
    "a: {x: yes, y: no, z: on, w: null, v: ~, u: .NaN, t: -.inf, s: 0b101}\n",
    "a b : c d\n",
    "a: b, c\nd: e]\nf: g}\nh: i'j\"k\n",
    "- x\n- 'y'\n- \"z\"\n- [1]\n- {a: b}\n",
]

DECLINED = [
    "",
    "# only a comment\n",
    "a: 1\na: 2\n",
    "1: a\n1.0: b\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |\n  x\n",
    "a: >\n  x\n",
    "a: b\n  c\n",
    "a: 'b\n  c'\n",
    "a: [b,\n  c]\n",
    "a: [[b]]\n",
    "a: {b: [c]}\n",
    '"a": b\n',
    "'a': b\n",
    "? a\n: b\n",
    "<<: {a: 1}\n",
    "a: 2027-13-45\n",
    "---\na: 1\n",
    "a: 1\n...\n",
    "%YAML 1.1\n---\na: 1\n",
    "a: 1\n\tb: 2\n",
    'a: "x\\ty"\n',
    "a: 1\r\nb: 2\r\n",
    "\ufeffa: 1\n",
    "a: b: c\n",
    "a: b:\n",
    "- - x\n",
    "a:\n  - x\n  b: 1\n",
    "- a\n b\n",
    "a: 1\n b: 2\n",
    "a: [a, ]\n",
    "a: {b}\n",
    "a: {b:c}\n",
    'a: "x"#c\n',
    "a: [x]y\n",
    "a: x\x00\n",
    "x\n",
    "[a, b]\n",
    "a: " + "x" * 1200 + "\n",
]


@pytest.mark.parametrize("text", IN_SUBSET)
def test_subset_corners_load_fast_and_identically(text: str) -> None:
    assert check(text, in_subset=True) is not None


@pytest.mark.parametrize("text", DECLINED)
def test_outside_the_subset_is_declined(text: str) -> None:
    assert load_fast(text, "t.yaml") is None
    check(text)


# --- generated documents from the subset ---------------------------------------------

TRICKY = [
    "+919876543210",
    "0151 12345678",
    "098765 43211",
    "2027-03-01",
    "2027-03-01T10:00:00+05:30",
    "2027-03-01 10:00:00",
    "2027-02-30",
    "yes",
    "no",
    "on",
    "off",
    "True",
    "FALSE",
    "null",
    "Null",
    "~",
    "1e3",
    "1.5e+3",
    "0o17",
    "0x1F",
    "0b101",
    "017",
    "09",
    "1_000",
    "1:30",
    "-1:30",
    ".inf",
    "-.inf",
    ".NaN",
    ".5",
    "-5",
    "+5",
    "TS-1234",
    "90d",
    "6mo",
    "a: b",
    "a:b",
    "a #b",
    "a#b",
    "#",
    "",
    " ",
    " padded ",
    "it's",
    'say "hi"',
    "back\\slash",
    "x, y",
    "[x]",
    "{x}",
    "-",
    "- x",
    "-x",
    "?",
    "?x",
    ":x",
    "x:",
    "&a",
    "*a",
    "!a",
    "|",
    ">",
    "%x",
    "@x",
    "`x",
    "<<",
    "=",
    "café",
    "日本語",
    "😀",
    "x\u00a0y",
    "\u00a0",
    "---",
    "...",
    "sim-box fraud",
    "trust-and-safety",
    "http://example.com/a#b",
]
KEYS = ["number", "reason", "expires", "ticket", "a", "b c", "x-y", "k.v", "clé", "1", "yes"]
KEYS += ["null", "~", "2027-03-01", "1.0", "TRUE", "_", "a'b", 'a"b', "a[b]", "a,b"]

# characters libyaml accepts (but tab, which the fast path leaves to libyaml) ...
printable = st.characters(
    codec="utf-8",
    exclude_categories=["Cs", "Cc", "Cn", "Zl", "Zp"],
    exclude_characters="\ufeff",
) | st.sampled_from(list(" :#-'\"[]{},&*!|>?%@`\\~.+0123456789\u00a0\u2003"))
# ... and any character at all
anything = st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(
    list(" :#-'\"[]{},&*!|>?%@`\\~.+0123456789\t\r\n\x85\u2028\ufeff")
)


def plain_ok(text: str, flow: bool = False) -> bool:
    """Whether the fast path takes text as a plain scalar (or key)."""
    if not text or text != text.strip(" ") or text[0].isspace():
        return False
    if text[0] in "-?:,[]{}#&*!|>'\"%@`" or "\t" in text or "\n" in text:
        return False
    if flow and any(c in text for c in ":,[]{}#"):
        return False
    return ": " not in text and " #" not in text and not text.endswith(":")


def key_ok(text: str, flow: bool = False) -> bool:
    return plain_ok(text, flow) and ":" not in text and "#" not in text


scalar_text = st.sampled_from(TRICKY) | st.text(printable, max_size=12)
wild_text = st.sampled_from(TRICKY) | st.text(anything, max_size=12)
key_text = st.sampled_from(KEYS) | st.text(printable, min_size=1, max_size=8).filter(key_ok)
flow_key_text = key_text.filter(lambda k: key_ok(k, flow=True))
wild_key_text = st.sampled_from(KEYS) | st.text(anything, min_size=1, max_size=8)


@st.composite
def scalars(draw: Any, flow: bool = False, subset: bool = True) -> str:
    text = draw(scalar_text if subset else wild_text)
    style = draw(st.sampled_from(["plain", "single", "double"]))
    if subset:
        text = text.replace("\t", " ").replace("\n", " ")
        if style == "double" and ('"' in text or "\\" in text):
            style = "single"
        if style == "plain" and not plain_ok(text, flow):
            style = "single"
    if style == "plain":
        return text
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    return '"' + text + '"'


@st.composite
def flows(draw: Any, subset: bool = True) -> str:
    sp = draw(st.sampled_from(["", " ", "  "]))
    if draw(st.booleans()):
        items = draw(st.lists(scalars(flow=True, subset=subset), max_size=4))
        return "[" + sp + ("," + sp).join(items) + sp + "]"
    keys = draw(st.lists(flow_key_text if subset else wild_key_text, max_size=4, unique=True))
    pairs = [
        k + ":" + draw(st.sampled_from([" ", "  "])) + draw(scalars(True, subset)) for k in keys
    ]
    return "{" + sp + ("," + sp).join(pairs) + sp + "}"


leaves = st.one_of(
    st.tuples(st.just("scalar"), scalars()),
    st.tuples(st.just("flow"), flows()),
    st.just(("empty", "")),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.tuples(st.just("map"), st.lists(st.tuples(key_text, children), min_size=1, max_size=5)),
        st.tuples(st.just("seq"), st.lists(children, min_size=1, max_size=5)),
    ),
    max_leaves=25,
)


@st.composite
def documents(draw: Any) -> str:
    """A document of the subset, in random but valid layout."""
    width = draw(st.integers(1, 4))
    comment = st.sampled_from(["", "", "", "  # note", " #", " # a: b - [x]"])
    lines: list[str] = []

    def extra(indent: int) -> None:
        if draw(st.integers(0, 9)) == 0:
            lines.append(
                " " * draw(st.integers(0, indent + 2)) + draw(st.sampled_from(["#", "# x: y", ""]))
            )

    def inline(node: tuple) -> str:
        kind, text = node
        return "" if kind == "empty" else text

    def block(node: tuple, indent: int) -> None:
        kind, items = node
        if kind == "map":
            for key, value in items:
                extra(indent)
                sep = draw(st.sampled_from([" ", " ", "  "]))
                key_part = key + draw(st.sampled_from(["", "", " "])) + ":"
                if value[0] in ("map", "seq"):
                    lines.append(" " * indent + key_part + draw(comment))
                    indentless = value[0] == "seq" and draw(st.booleans())
                    block(value, indent if indentless else indent + width)
                elif value[0] == "empty":
                    lines.append(" " * indent + key_part + draw(comment))
                else:
                    lines.append(" " * indent + key_part + sep + inline(value) + draw(comment))
        else:
            for value in items:
                extra(indent)
                gap = draw(st.integers(1, 3))
                if value[0] == "map" and draw(st.booleans()):  # '- key: value' ...
                    first = len(lines)
                    block(value, indent + 1 + gap)
                    while not lines[first].strip(" ") or lines[first].lstrip(" ")[0] == "#":
                        first += 1  # the '-' goes on the first key's line
                    lines[first] = " " * indent + "-" + " " * gap + lines[first][indent + 1 + gap :]
                elif value[0] in ("map", "seq"):
                    lines.append(" " * indent + "-" + draw(comment))
                    block(value, indent + draw(st.integers(1, 3)))
                elif value[0] == "empty":
                    lines.append(" " * indent + "-" + draw(comment))
                else:
                    lines.append(" " * indent + "-" + " " * gap + inline(value) + draw(comment))

    root = draw(trees.filter(lambda t: t[0] in ("map", "seq")))
    block(root, draw(st.sampled_from([0, 0, 0, 1, 2])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_documents_load_fast_and_identically(text: str) -> None:
    check(text, in_subset=True)


@st.composite
def wild_documents(draw: Any) -> str:
    """Like documents() but scalars in any style, whether or not that is valid YAML."""
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        indent = " " * draw(st.sampled_from([0, 0, 2, 4]))
        lead = draw(st.sampled_from(["", "", "- ", "-  ", "- - "]))
        body = draw(
            st.one_of(
                st.tuples(wild_key_text, scalars(subset=False)).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                st.tuples(wild_key_text, flows(subset=False)).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                wild_key_text.map(lambda k: k + ":"),
                scalars(subset=False),
                flows(subset=False),
            )
        )
        lines.append(indent + lead + body + draw(st.sampled_from(["", " # c", "#c"])))
    return "\n".join(lines) + "\n"


@settings(max_examples=400, deadline=None)
@given(wild_documents())
def test_wild_documents_are_declined_or_identical(text: str) -> None:
    check(text)


# --- mutations of valid documents ---------------------------------------------------

MUTATION_CHARS = list(" \n\t\r-:#'\"[]{},&*!|>?%@`\\~.+0aZ\u00a0\ufeff\x85\u2028\x00é😀")


@st.composite
def mutated(draw: Any) -> str:
    source = draw(
        st.one_of(
            st.sampled_from([p.read_text(encoding="utf-8") for p in SHIPPED]),
            st.sampled_from(IN_SUBSET),
            documents(),
        )
    )
    text = source
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "insert", "delete", "replace", "dup-line"]))
        at = draw(st.integers(0, len(text)))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(MUTATION_CHARS)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 3)) :]
        elif kind == "replace":
            text = text[:at] + draw(st.sampled_from(MUTATION_CHARS)) + text[at + 1 :]
        else:
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(k, lines[k])
            text = "\n".join(lines)
    return text


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
@example('version: 1\nentries:\n  - number: "+1"\n   reason: x\n')
def test_mutated_documents_are_declined_or_identical(text: str) -> None:
    check(text)


def test_a_long_list_loads_fast_and_identically() -> None:
    """The shape the fast path is for: many long-form entries (as benchmarks/yaml_load.py)."""
    entries = []
    for k in range(3000):
        quote = "\"'"[k % 2]
        entries.append(
            f"  - number: {quote}+91{9_800_000_000 + k * 7919}{quote}\n"
            f"    reason: {['fraud', 'sim-box fraud', 'chargeback'][k % 3]}\n"
            f"    expires: 2027-{1 + k % 12:02d}-{1 + k % 28:02d}{'T10:00:00+05:30' * (k % 5 == 0)}\n"
            f"    ticket: TS-{k}{'   # escalated' * (k % 7 == 0)}\n"
            + ("  - '0151 12345678'    # short form\n" if k % 11 == 0 else "")
        )
    text = "version: 1\nname: big\ndefault_region: IN\nentries:\n" + "".join(entries)
    assert check(text, in_subset=True) is not None


def test_a_loaded_text_leaves_no_garbage_behind() -> None:
    """Nothing of a parse outlives it once its result is dropped: the loader runs with
    the cyclic collector paused, so a reference cycle (the parser's nested functions
    referring to each other, with the text's lines) would hold every file read so far."""
    import gc

    text = "version: 1\nname: x\nentries:\n" + "".join(
        f'  - number: "+9198{k:08d}"\n    reason: r\n' for k in range(200)
    )
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        loaded = load_fast(text, "t.yaml")
        assert loaded is not None
        del loaded
        assert load_fast("a: [1, {b: c}]\n\tx", "t.yaml") is None  # declined midway
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789+-._:eEoxXbTtFfYyNnOo~<=abc", min_size=1, max_size=12),
        st.sampled_from(["yes", "No", "TRUE", "off", "~", "null", "<<", "=", "1_000", "0x1F"]),
        st.sampled_from(["2027-13-45", "2027-03-01", "12:30", "1:30:00", ".inf", "-.NaN"]),
    )
)
def test_text_or_int_is_the_type_plain_gives(raw: str) -> None:
    """``text_or_int`` (a ticket's check in the bulk path) is ``plain``'s value being text
    or a whole number, and refuses what ``plain`` refuses."""
    from reconciler import yamlfast

    try:
        value = yamlfast.plain(raw)
    except yamlfast.Bail:
        with pytest.raises(yamlfast.Bail):
            yamlfast.text_or_int(raw)
        return
    expected = isinstance(value, str | int) and not isinstance(value, bool)
    assert yamlfast.text_or_int(raw) == expected
