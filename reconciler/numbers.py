"""Phone number normalisation to E.164 with phonenumbers.

Pure functions, cached: lists repeat numbers across files and providers
return the same numbers on every refresh. Used for declared numbers (with the
list's ``default_region``) and for live numbers read back from providers (so a
format difference never looks like a change).
"""

from __future__ import annotations

import contextlib
import re
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_SEPARATORS = re.compile(r"[\s\-.()/]+")
_E164_FAST = re.compile(r"^\+[1-9]\d{6,14}$")


class InvalidNumber(ValueError):
    """A number that cannot be normalised; the message says why (no raw text in it)."""


def is_known_region(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _fast_e164(text: str) -> str | None:
    """The common case, ``+`` and digits, without phonenumbers' general-purpose
    parser (the slowest step): build the number directly and validate it. None
    when the fast path cannot say yes (the full parser then explains why not)."""
    if not _E164_FAST.match(text):
        return None
    digits = text[1:]
    for size in (1, 2, 3):
        cc = int(digits[:size])
        if cc in _COUNTRY_CODES:
            nsn = digits[size:]
            break
    else:
        return None
    zeros = len(nsn) - len(nsn.lstrip("0"))
    checks = _region_checks(cc)
    if checks is not None and zeros == 0:
        return text if _valid_nsn(nsn, checks) else None
    number = phonenumbers.PhoneNumber(
        country_code=cc,
        national_number=int(nsn),
        italian_leading_zero=zeros > 0 or None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


_Desc = tuple[frozenset[int], re.Pattern[str]]
_TYPE_DESCS = (  # mobile and fixed line first: most numbers stop there
    "mobile", "fixed_line", "toll_free", "premium_rate", "shared_cost", "voip",
    "personal_number", "pager", "uan", "voicemail",
)  # fmt: skip


@cache
def _region_checks(cc: int) -> tuple[_Desc, tuple[_Desc, ...]] | None:
    """For a calling code used by exactly one region: its general description and its
    number-type descriptions, compiled once. None where phonenumbers must decide
    (codes shared by several regions, such as +1 or +44, and non-geographic ones)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if len(regions) != 1 or regions[0] == "001":
        return None
    meta = phonenumbers.PhoneMetadata.metadata_for_region(regions[0])
    if meta is None or meta.general_desc is None:
        return None

    def compile_desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
        if desc is None or desc.national_number_pattern is None:
            return None
        pattern = re.compile(f"(?:{desc.national_number_pattern})")
        return frozenset(desc.possible_length or ()), pattern

    general = compile_desc(meta.general_desc)
    if general is None:
        return None
    types = tuple(d for d in (compile_desc(getattr(meta, n)) for n in _TYPE_DESCS) if d)
    return general, types


def _valid_nsn(nsn: str, checks: tuple[_Desc, tuple[_Desc, ...]]) -> bool:
    """phonenumbers' validity rule (a number is valid when it matches its region's
    general description and at least one number type), without its per-call overhead."""
    general, types = checks
    if not _matches(nsn, general):
        return False
    return any(_matches(nsn, desc) for desc in types)


def _matches(nsn: str, desc: _Desc) -> bool:
    lengths, pattern = desc
    if lengths and len(nsn) not in lengths:
        return False
    return pattern.fullmatch(nsn) is not None


@lru_cache(maxsize=1 << 16)  # repeats are local (a few files, live echoes); 1 M keys cost ~200 MB
def normalise(raw: str, default_region: str | None = None) -> str:
    """E.164 form of ``raw``; raises InvalidNumber with the cause.

    Accepts national formats (with ``default_region``), spaces, dashes, dots,
    brackets and ``00`` international prefixes.
    """
    fast = _fast_e164(raw)
    if fast is not None:
        return fast
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty phone number")
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact != raw:
        fast = _fast_e164(compact)
        if fast is not None:
            return fast
    if not re.fullmatch(r"\+?\d+", compact):
        raise InvalidNumber("phone number contains characters other than digits")
    region = default_region.upper() if default_region else None
    if not compact.startswith("+") and region is None:
        raise InvalidNumber("national number without default_region (write it as +CC…)")
    try:
        parsed = phonenumbers.parse(compact, region)
    except NumberParseException as exc:
        raise InvalidNumber(_parse_reason(exc)) from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(_possible_reason(parsed))
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber("not a valid phone number for its country")
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


_DIGITS_ONLY = re.compile(r"\d{7,15}")


def parse_live(raw: str, default_region: str | None = None) -> str | None:
    """The E.164 form of a number a provider returned, normalised as a declared one
    is (with the provider instance's ``default_region`` for national numbers), or
    None when it cannot be told which number it is.

    An international number phonenumbers thinks invalid (``+15555555``, one provider's
    docs' own example) is kept as ``+`` and its digits: it is unambiguous. Digits
    without ``+`` may be national (read with the region) or international without
    its ``+`` (``491701234567``): when exactly one reading is a valid number, that is
    the number; when both are, or neither, the answer is None. Never guess: a wrong
    guess adds a copy or removes the wrong number.
    """
    text = raw.strip()
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.startswith("+"):
        try:
            return normalise(compact)
        except InvalidNumber:
            return compact if _E164_FAST.match(compact) else None
    readings = set()
    with contextlib.suppress(InvalidNumber):
        readings.add(normalise(text, default_region))
    if _DIGITS_ONLY.fullmatch(compact) and not compact.startswith("0"):
        with contextlib.suppress(InvalidNumber):
            readings.add(normalise("+" + compact))
    return readings.pop() if len(readings) == 1 else None


def normalise_live(raw: str, default_region: str | None = None) -> str:
    """Normalise a number a provider returned. Lenient: a number the provider holds
    that phonenumbers thinks invalid is kept in a canonical ``+digits`` form rather
    than dropped, so it can still be shown and compared."""
    text = raw.strip()
    if _E164_FAST.match(text):
        try:
            return normalise(text, default_region)
        except InvalidNumber:
            return text
    try:
        return normalise(text, default_region)
    except InvalidNumber:
        digits = re.sub(r"\D", "", text)
        if text.startswith("00"):
            digits = digits[2:]
        return "+" + digits if digits else text


def _parse_reason(exc: NumberParseException) -> str:
    return {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country calling code",
        NumberParseException.NOT_A_NUMBER: "not a phone number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "not a phone number")


def _possible_reason(parsed: phonenumbers.PhoneNumber) -> str:
    result = phonenumbers.is_possible_number_with_reason(parsed)
    V = phonenumbers.ValidationResult
    return {
        V.TOO_SHORT: "too short to be a phone number",
        V.TOO_LONG: "too long to be a phone number",
        V.INVALID_COUNTRY_CODE: "unknown country calling code",
        V.INVALID_LENGTH: "impossible length for its country",
        V.IS_POSSIBLE_LOCAL_ONLY: "a local-only number (add the area code)",
    }.get(result, "not a possible phone number")
