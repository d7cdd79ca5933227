"""`blocklist validate` and the desired-state loader: the bad-input corpus, merging,
normalisation, expiry, schemas and the shipped examples."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.desired import load_desired
from reconciler.errors import ConfigError
from reconciler.expiry import add_ttl, to_utc
from reconciler.numbers import InvalidNumber, normalise
from reconciler.schemas import schema_texts

REPO = Path(__file__).resolve().parent.parent
CORPUS = sorted((REPO / "tests" / "corpus" / "invalid").iterdir())


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_invalid_corpus_reports_exact_message_and_line(case: Path, monkeypatch) -> None:
    monkeypatch.chdir(case)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1, result.output
    expected = (case / "expected.txt").read_text().strip()
    assert result.stderr.splitlines()[0] == expected
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_inline_credential_is_never_echoed(monkeypatch) -> None:
    monkeypatch.chdir(REPO / "tests/corpus/invalid/inline_credential")
    result = CliRunner().invoke(main, ["validate"])
    assert "sk_live_0123456789" not in result.output + result.stderr


def test_shipped_blocklists_validate_with_summary(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.stderr
    assert result.output.strip() == "Valid: 3 files, 2 lists, 10 numbers, 5 targets."
    data = json.loads(CliRunner().invoke(main, ["validate", "--format", "json"]).stdout)
    assert data == {
        "valid": True,
        "problems": [],
        "files": 3,
        "lists": 2,
        "numbers": 10,
        "targets": 5,
    }


def write(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "blocklists"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


PROVIDERS = """version: 1
providers:
  kaleyra: {type: kaleyra, base_url: sandbox}
  wooxy: {type: wooxy, base_url: sandbox}
"""


def test_all_errors_of_a_run_are_reported_together(tmp_path, monkeypatch) -> None:
    write(
        tmp_path,
        {
            "providers.yaml": PROVIDERS,
            "a.yaml": "version: 1\nname: a\ntargets: [{provider: kaleyra, channel: sms}]\n"
            "entries:\n  - '12ab'\n  - number: '+919876543210'\n    colour: red\n",
            "b.yaml": "version: 1\nname: b\ntargets: [{provider: nope}]\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        "blocklists/a.yaml:5:5: invalid phone number '12ab': phone number contains characters "
        "other than digits",
        "blocklists/a.yaml:7:5: unknown key 'colour' in entry",
        "blocklists/b.yaml:3:11: unknown provider instance 'nope' (providers.yaml defines: "
        "kaleyra, wooxy)",
    ]
    assert lines[-1] == "Error: 3 problems in the desired state"
    assert (
        "::error file=blocklists/a.yaml,line=5,col=5::invalid phone number '12ab'" in result.output
    )


def test_lists_targeting_the_same_scope_merge_expiry(tmp_path) -> None:
    root = write(
        tmp_path,
        {
            "providers.yaml": PROVIDERS,
            "a.yaml": "version: 1\nname: a\ntargets: [{provider: kaleyra, channel: sms}]\nentries:\n"
            "  - {number: '+919876543210', expires: 2027-01-01}\n"
            "  - {number: '+919876543211', expires: 2027-01-01}\n"
            "  - {number: '+919876543212'}\n",
            "b.yaml": "version: 1\nname: b\ntargets: [{provider: kaleyra, channel: sms}]\nentries:\n"
            "  - {number: '+919876543210', expires: 2027-06-01}\n"
            "  - {number: '+919876543211'}\n"
            "  - {number: '+919876543212', expires: 2026-01-01}\n",
        },
    )
    desired = load_desired(root)
    entries = desired.entries["kaleyra/sms"]
    assert entries["+919876543210"].expires == dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    assert entries["+919876543210"].source.endswith("b.yaml:5")
    assert entries["+919876543211"].expires is None  # no expiry beats any expiry
    assert entries["+919876543212"].expires is None


def test_ttl_and_defaults(tmp_path) -> None:
    root = write(
        tmp_path,
        {
            "providers.yaml": PROVIDERS,
            "a.yaml": "version: 1\nname: a\ntargets: [{provider: wooxy, reject_type: invalid}]\n"
            "defaults: {reason: spam, ttl: 6mo}\nentries:\n"
            "  - {number: '+919876543210', added: 2026-08-31}\n"
            "  - {number: '+919876543211', added: 2026-11-01, ttl: 90d, reason: x}\n"
            "  - {number: '+919876543212', expires: '2027-03-01T10:00:00+05:30'}\n",
        },
    )
    entries = load_desired(root).entries["wooxy/account"]
    assert entries["+919876543210"].expires == dt.datetime(2027, 2, 28, tzinfo=dt.UTC)
    assert entries["+919876543210"].reason == "spam"
    assert entries["+919876543210"].attrs == (("reject_type", "invalid"),)
    assert entries["+919876543211"].expires == dt.datetime(2027, 1, 30, tzinfo=dt.UTC)
    assert entries["+919876543211"].reason == "x"
    assert entries["+919876543212"].expires == dt.datetime(2027, 3, 1, 4, 30, tzinfo=dt.UTC)


def test_missing_providers_yaml(tmp_path) -> None:
    root = write(tmp_path, {"a.yaml": "version: 1\n"})
    with pytest.raises(ConfigError) as info:
        load_desired(root, "blocklists")
    assert str(info.value.problems[0]) == (
        "blocklists/providers.yaml:1:1: missing: providers.yaml is required"
    )


def test_plain_http_base_url_refused_unless_loopback(tmp_path) -> None:
    text = (
        "version: 1\nproviders:\n  k:\n    type: kaleyra\n    base_url: http://api.example.com\n"
        "    credentials: {api_key: {env: K}, sid: {env: S}}\n"
    )
    root = write(tmp_path, {"providers.yaml": text})
    with pytest.raises(ConfigError) as info:
        load_desired(root, "blocklists")
    assert "is not https (only loopback addresses may use plain http)" in str(info.value)
    (root / "providers.yaml").write_text(text.replace("api.example.com", "127.0.0.1:8703"))
    load_desired(root)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+919876543210", None, "+919876543210"),
        ("098765 43210", "IN", "+919876543210"),
        ("0091-98765-43210", None, "+919876543210"),
        ("(415) 555.0123", "US", "+14155550123"),
        ("+1 415 555 0123", "IN", "+14155550123"),
        ("0151 12345678", "DE", "+4915112345678"),
    ],
)
def test_normalise_formats(raw: str, region: str | None, e164: str) -> None:
    assert normalise(raw, region) == e164


@pytest.mark.parametrize("raw", ["", "+1", "12ab", "+91 02345 67890", "9876543210", "+999 1234567"])
def test_normalise_rejects(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        normalise(raw)


def test_ttl_units() -> None:
    start = to_utc(dt.date(2026, 1, 31))
    assert add_ttl(start, "90d") == dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert add_ttl(start, "12w") == dt.datetime(2026, 4, 25, tzinfo=dt.UTC)
    assert add_ttl(start, "1mo") == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)
    assert add_ttl(start, "1y") == dt.datetime(2027, 1, 31, tzinfo=dt.UTC)


def test_committed_schemas_are_current() -> None:
    for name, text in schema_texts().items():
        committed = (REPO / "schemas" / name).read_text()
        assert committed == text, f"schemas/{name} is stale: run `blocklist schema`"


def test_example_files_point_at_their_schema() -> None:
    for path in sorted((REPO / "blocklists").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        schema = "providers" if path.name == "providers.yaml" else "blocklist"
        assert first == f"# yaml-language-server: $schema=../schemas/{schema}.schema.json"


def test_fast_e164_path_agrees_with_phonenumbers() -> None:
    """The fast path (no general parser, compiled region patterns) must give exactly what
    phonenumbers gives: the same E.164 text for valid numbers, a rejection otherwise."""
    import random

    import phonenumbers

    rng = random.Random(20261123)
    codes = list(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    checked = 0
    for _ in range(30_000):
        cc = rng.choice(codes)
        nsn = str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=rng.randint(3, 12)))
        text = f"+{cc}{nsn}"
        if len(text) > 16:
            continue
        try:
            parsed = phonenumbers.parse(text)
            want = (
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed)
                else None
            )
        except phonenumbers.NumberParseException:
            want = None
        try:
            got = normalise(text)
        except InvalidNumber:
            got = None
        assert got == want, text
        checked += 1
    assert checked > 20_000
