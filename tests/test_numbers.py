"""`numbers`' fast paths against phonenumbers, the slow, obvious path they stand in for.

``fast_e164`` decides ``+``-and-digits numbers from each region's patterns compiled
once, including phonenumbers' region selection for calling codes shared by several
regions (+1, +44, +7, +61, …); ``parse_live`` takes a number the loader validated as
is. Both must give exactly what phonenumbers (and the uncached, unregistered path)
gives, on random numbers close to valid ones (so that both answers occur often)."""

from __future__ import annotations

import phonenumbers
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from reconciler import numbers
from reconciler.numbers import InvalidNumber, fast_e164, normalise, parse_live

#: calling codes shared by several regions, and a few of one region each
SHARED = sorted(
    cc for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items() if len(regions) > 1
)
SINGLE = [91, 49, 33, 55, 86, 81, 234, 971, 353, 64]
TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)


def _examples(codes: list[int]) -> list[tuple[int, str]]:
    """(calling code, national significant number) of every example number phonenumbers
    has for the codes' regions: real, valid shapes to mutate."""
    out = []
    for cc in codes:
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]:
            for kind in TYPES:
                number = phonenumbers.example_number_for_type(region, kind)
                if number is not None:
                    out.append((cc, phonenumbers.national_significant_number(number)))
    return sorted(set(out))


EXAMPLES = _examples(SHARED + SINGLE)


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """``+CC`` and a national number: an example number with a few digits changed,
    dropped or added (valid, invalid, impossible and other regions' numbers)."""
    cc, nsn = draw(st.sampled_from(EXAMPLES))
    digits = list(nsn)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, max(0, len(digits) - 1)))
        kind = draw(st.sampled_from(("change", "change", "change", "drop", "add")))
        digit = draw(st.sampled_from("0123456789"))
        if kind == "change" and digits:
            digits[position] = digit
        elif kind == "drop" and len(digits) > 1:
            del digits[position]
        else:
            digits.insert(position, digit)
    return f"+{cc}{''.join(digits)}"


def phonenumbers_e164(text: str) -> str | None:
    """What phonenumbers makes of ``text``: its E.164 form when possible and valid."""
    try:
        parsed = phonenumbers.parse(text)
    except NumberParseException:
        return None
    if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    return None


def normalised(text: str, region: str | None = None) -> str | None:
    try:
        return normalise(text, region)
    except InvalidNumber:
        return None


@settings(max_examples=3000, deadline=None)
@given(near_valid())
@example("+14155550123")  # US
@example("+12684641234")  # AG, by its leading digits
@example("+16135550123")  # CA: no leading digits, valid after the US is not
@example("+447400123456")  # GB
@example("+447924123456")  # IM, leading digits 7924
@example("+441481256789")  # GG
@example("+79123456789")  # RU
@example("+77012345678")  # KZ
@example("+61412345678")  # AU
@example("+390669812345")  # VA
def test_fast_e164_is_phonenumbers(text: str) -> None:
    """The compiled region selection gives phonenumbers' verdict on every number."""
    want = phonenumbers_e164(text)
    fast = fast_e164(text)
    assert fast in (None, want), text
    if want == text and len(text) <= 16:  # E.164: at most 15 digits
        assert fast == want, text  # never declines a number written in its E.164 form
    assert normalised(text) == want, text


@settings(max_examples=300, deadline=None)
@given(near_valid(), st.sampled_from(["", " ", "-", "."]))
def test_normalise_is_idempotent(text: str, separator: str) -> None:
    """What normalise returns is its own normal form: the loader registers these for
    ``parse_live``, which then takes them as they are."""
    written = text[:3] + separator + text[3:] if separator else text
    first = normalised(written)
    if first is not None:
        assert normalise(first) == first


@settings(max_examples=500, deadline=None)
@given(
    near_valid(),
    st.sampled_from(["{}", " {} ", "00{}", "{:spaced}", "{:digits}"]),
    st.sampled_from([None, "IN", "US", "GB"]),
)
def test_parse_live_of_a_declared_number_is_unchanged(
    text: str, shape: str, region: str | None
) -> None:
    """A live number that is a declared one (registered by the loader) reads the same
    with and without the registry, however the provider writes it."""
    declared = normalised(text)
    if shape == "{:spaced}":
        raw = f"{text[:3]} {text[3:7]} {text[7:]}"
    elif shape == "{:digits}":
        raw = text[1:]
    else:
        raw = shape.format(text[1:] if shape.startswith("00") else text)
    numbers.remember_validated(None)
    numbers.normalise.cache_clear()
    want = parse_live(raw, region)

    class Declared:  # what the loader registers: the numbers it validated
        def __contains__(self, number: object) -> bool:
            return number == declared

    held = Declared()
    numbers.remember_validated(held)
    try:
        numbers.normalise.cache_clear()
        assert parse_live(raw, region) == want
    finally:
        numbers.remember_validated(None)
