"""Phone number normalisation to E.164 with phonenumbers.

Pure functions, cached: lists repeat numbers across files and providers
return the same numbers on every refresh. Used for declared numbers (with the
list's ``default_region``) and for live numbers read back from providers (so a
format difference never looks like a change).

Numbers written in E.164 (nearly all of them) are decided by ``fast_e164`` from
phonenumbers' own metadata compiled once per calling code, region selection of
shared codes (+1, +44, +7, …) included; everything else goes through
phonenumbers. ``tests/test_numbers.py`` holds both to phonenumbers' answers.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Callable, Container
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_SEPARATORS = re.compile(r"[\s\-.()/]+")
_E164_FAST = re.compile(r"^\+[1-9]\d{6,14}$")


class InvalidNumber(ValueError):
    """A number that cannot be normalised; the message says why (no raw text in it)."""


def is_known_region(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def fast_e164(text: str) -> str | None:
    """``text`` when it is a valid number written exactly in E.164 (``+`` and digits),
    decided without phonenumbers' general-purpose parser (the slowest step) from each
    region's patterns compiled once; None when this path cannot say yes (``normalise``
    then asks phonenumbers, which also says why not)."""
    # "+", then 7 to 15 ASCII digits, the first not 0 (isdigit alone takes other scripts')
    if not (8 <= len(text) <= 16 and text[0] == "+" and text.isascii() and text[1:].isdigit()):
        return None
    code = _CODE_OF.get(text[1:4])
    if code is None:
        return None
    possible = code.possible
    if possible is None:
        possible = code.compile()
    nsn = text[code.size :]
    if not possible or nsn[0] == "0":  # phonenumbers decides
        return _phonenumbers_e164(code.cc, nsn)
    if len(nsn) not in possible:
        return None
    single = code.single
    if single is not None:
        return text if single(nsn) is not None else None
    for region in code.regions:
        lead = region.lead
        if lead is None:
            if region.valid(nsn):
                return text
        elif lead.match(nsn) is not None:
            return text if region.valid(nsn) else None
    return None


def _phonenumbers_e164(cc: int, nsn: str) -> str | None:
    """phonenumbers' own verdict on +cc nsn (non-geographic codes, leading zeros)."""
    zeros = len(nsn) - len(nsn.lstrip("0"))
    number = phonenumbers.PhoneNumber(
        country_code=cc,
        national_number=int(nsn),
        italian_leading_zero=zeros > 0 or None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


_TYPE_DESCS = (  # mobile and fixed line first: most numbers stop there
    "mobile", "fixed_line", "toll_free", "premium_rate", "shared_cost", "voip",
    "personal_number", "pager", "uan", "voicemail",
)  # fmt: skip


class _Region:
    """One region of a calling code: its leading-digits pattern (None: it claims the
    numbers valid for it) and its validity pattern, compiled on first use (+1 has 25
    regions, and most numbers are the first one's)."""

    __slots__ = ("lead", "source", "pattern")

    def __init__(self, lead: str | None, source: str | None) -> None:
        self.lead = re.compile(lead) if lead is not None else None
        self.source = source  # None: no number is valid there
        self.pattern: re.Pattern[str] | None = None

    def valid(self, nsn: str) -> bool:
        pattern = self.pattern
        if pattern is None:
            if self.source is None:
                return False
            pattern = self.pattern = re.compile(self.source)
        return pattern.fullmatch(nsn) is not None


def _lengths(desc: phonenumbers.PhoneNumberDesc) -> str | None:
    """A lookahead for the desc's possible lengths ("" for any; None: no length can)."""
    lengths = [n for n in desc.possible_length or () if n > 0]
    if not desc.possible_length:
        return ""
    if not lengths:
        return None
    return "(?=(?:" + "|".join(f"[0-9]{{{n}}}" for n in sorted(lengths)) + r")\Z)"


def _validity(meta: phonenumbers.PhoneMetadata | None, cc: int) -> str | None:
    """One pattern that fully matches exactly the national significant numbers
    phonenumbers calls valid for ``meta``'s region: its general description (lengths
    and pattern) and at least one number type's (lengths and pattern); None when no
    number can be valid there."""
    if meta is None or meta.country_code != cc:
        return None  # is_valid_number_for_region: the region's code must be the number's

    def part(desc: phonenumbers.PhoneNumberDesc | None) -> str | None:
        if desc is None or not desc.national_number_pattern:
            return None
        lengths = _lengths(desc)
        if lengths is None:
            return None
        return f"{lengths}(?:{desc.national_number_pattern})"

    general = part(meta.general_desc)
    types = [t for t in (part(getattr(meta, name)) for name in _TYPE_DESCS) if t is not None]
    if general is None or not types:
        return None
    return rf"(?=(?:{general})\Z)(?:" + "|".join(f"(?:{t})" for t in types) + ")"


class _Code:
    """A calling code and phonenumbers' checks of its numbers, compiled on first use: the
    lengths ``is_possible_number`` allows (its first region's, local-only ones too), and
    region selection: in its order, the first region whose leading digits match (or,
    without leading digits, for which the number is valid) is the number's region, and
    the number is valid when it is valid there."""

    __slots__ = ("cc", "size", "possible", "regions", "single")

    def __init__(self, cc: int) -> None:
        self.cc = cc
        self.size = len(str(cc)) + 1  # "+" and the code
        #: None until compiled; empty where phonenumbers decides (non-geographic codes)
        self.possible: frozenset[int] | None = None
        self.regions: tuple[_Region, ...] = ()
        #: the validity check of a code of one region (its pattern's fullmatch)
        self.single: Callable[[str], object] | None = None

    def compile(self) -> frozenset[int]:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(self.cc, ())
        main = phonenumbers.PhoneMetadata.metadata_for_region(regions[0].upper(), None)
        if (
            phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY in regions
            or main is None
            or main.general_desc is None
        ):
            self.possible = frozenset()
            return self.possible
        out: list[_Region] = []
        for region in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
            if meta is None:
                continue  # as _region_code_for_number_from_list skips it
            # a code of one region is that region's whatever its digits; the same as
            # claiming the number only where it is valid, since no other region may
            lead = meta.leading_digits if len(regions) > 1 else None
            out.append(_Region(lead, _validity(meta, self.cc)))
        self.regions = tuple(out)
        if len(regions) == 1:
            source = out[0].source if out else None
            self.single = re.compile(source).fullmatch if source is not None else _never
        general = main.general_desc
        local = general.possible_length_local_only or ()
        self.possible = frozenset((*general.possible_length, *local))
        return self.possible


def _never(nsn: str) -> None:
    """The validity check of a region where no number is valid."""
    return None


def _codes_by_prefix() -> dict[str, _Code]:
    """The first three digits of an international number -> its calling code (calling
    codes are prefix-free: at most one of the three prefixes is one)."""
    codes = {cc: _Code(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    out = {}
    for first in map(str, range(100, 1000)):
        for size in (1, 2, 3):
            code = codes.get(int(first[:size]))
            if code is not None:
                out[first] = code
                break
    return out


_CODE_OF = _codes_by_prefix()


@lru_cache(maxsize=1 << 16)  # repeats are local (a few files, live echoes); 1 M keys cost ~200 MB
def normalise(raw: str, default_region: str | None = None) -> str:
    """E.164 form of ``raw``; raises InvalidNumber with the cause.

    Accepts national formats (with ``default_region``), spaces, dashes, dots,
    brackets and ``00`` international prefixes.
    """
    fast = fast_e164(raw)
    if fast is not None:
        return fast
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty phone number")
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact != raw:
        fast = fast_e164(compact)
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

#: numbers ``normalise`` returned (held weakly: the desired state holds them)
_validated: weakref.ref[Container[str]] | None = None


def remember_validated(numbers: Container[str] | None) -> None:
    """Make ``parse_live`` take a number in ``numbers`` exactly as it is, without
    validating it again: the loader registers the E.164 numbers it declared (each one
    a ``normalise`` result, which normalises to itself), and a provider returns most of
    them written the same way. Held by a weak reference: registering never keeps a
    desired state alive; None forgets it. Only the last one registered is used."""
    global _validated
    _validated = None if numbers is None else weakref.ref(numbers)


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
    known = _validated() if _validated is not None else None
    if known is not None and raw in known:
        return raw  # a declared number written as declared (the rest would find it too)
    text = raw.strip()
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.startswith("+"):
        if known is not None and compact in known:
            return compact  # normalise(compact) is compact: it is a normalise result
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
