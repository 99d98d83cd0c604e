"""Normalisation and SHA-256 hashing of Meta's customer information parameters.

Source: Meta developer docs, Conversions API, "Customer Information Parameters" (REFERENCE §1).
Each ``normalize_*`` function returns the exact string that gets hashed, or ``None`` when the value
cannot be used (a bad value drops that key, never the event). :func:`hash_user_data` applies them
to a whole ``user_data`` mapping. Country, subdivision and currency tables come from
``pycountry``, phone metadata from ``phonenumbers``; word tables and the lazily built lookup
dicts live in :mod:`tagserver.meta._tables`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime

import phonenumbers
import pycountry  # type: ignore[import-untyped,unused-ignore]

from tagserver.meta._tables import (
    COMMA_DECIMAL_LANGUAGES,
    DOT_DECIMAL_LOCALES,
    country_table,
    gender_table,
    lookup_key,
    subdivision_table,
)

#: The user_data keys Meta wants SHA-256 hashed, in the order they are emitted.
HASHED_KEYS: tuple[str, ...] = (
    "em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id",
)  # fmt: skip

#: Longest single input value accepted by :func:`hash_user_data` (characters).
MAX_VALUE_LENGTH = 512

#: Characters removed by JavaScript's ``String.prototype.trim`` (WhiteSpace + LineTerminator).
JS_TRIM_CHARS = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_TRIM = JS_TRIM_CHARS + "\x1c\x1d\x1e\x1f\x85"  # JS trim plus the rest of Python's whitespace

_PREHASHED = re.compile(r"\s*[0-9a-fA-F]{64}(?:\.[A-Za-z0-9_-]{2,8})?\s*")
_ASCII_DROP = re.compile(r"[^a-z0-9]+")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
#: A dot-separated label (possibly empty) without an ASCII letter or digit; each try stays within
#: one label (the class excludes the dot), so a search is linear in the text.
_LABEL_WITHOUT_ALNUM = re.compile(r"(?:\A|\.)[^A-Za-z0-9.]*(?:\.|\Z)")
#: What :func:`normalize_zip` removes from ASCII: categories Z and C, and Pd (``-``).
_ASCII_ZIP_DROP = re.compile(r"[\x00-\x20\x2d\x7f]+")
#: Not a decimal digit (``\d`` of a str pattern is Unicode category Nd, as ``str.isdecimal``).
_NOT_DECIMAL = re.compile(r"\D+")
_ZIP_US = re.compile(r"[0-9]{5}(?:[0-9]{4})?")
_DIGITS = re.compile(r"[0-9]+")
_DATE_YMD = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})")
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
#: An ISO 8601 date-time (``1990-02-03T00:00:00Z``): the date part as written is the birthday.
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?",
    re.IGNORECASE,
)
_DATE_XXY = re.compile(r"([0-9]{1,2})([-/.])([0-9]{1,2})\2([0-9]{4})")
_NUM_MACHINE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_NUM_COMMA_PLAIN = re.compile(r"[+-]?[0-9]+(?:,[0-9]+)?")
_NUM_COMMA_GROUPED = re.compile(
    r"[+-]?[0-9]{1,3}([. \u00a0\u202f])[0-9]{3}(?:\1[0-9]{3})*(?:,[0-9]+)?"
)
_NUM_DOT_GROUPED = re.compile(r"[+-]?[0-9]{1,3}([,'\u2019])[0-9]{3}(?:\1[0-9]{3})*(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_NOT_CURRENCIES = frozenset({"XXX", "XTS"})  # ISO 4217 "no currency" and "testing" codes
_NUMBER = (int, float)  # made once: a union written in isinstance() is built per call


#: A SHA-256 object that hashed nothing, never updated: :func:`sha256_hex` copies it (a copy is
#: about 1,000 instructions cheaper than ``hashlib.sha256()``, which looks the algorithm up).
_SHA256_EMPTY = hashlib.sha256()


def sha256_hex(text: str) -> str:
    """Lowercase hex SHA-256 of ``text`` encoded as UTF-8 (Meta: "hash with SHA-256")."""
    digest = _SHA256_EMPTY.copy()
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()


def is_prehashed(value: str) -> bool:
    """Whether ``value`` already is a SHA-256 hex digest and must not be hashed again.

    64 hex digits in any case, surrounding whitespace allowed, optionally followed by the
    ``.<appendix>`` (2..8 of ``[A-Za-z0-9_-]``) that Meta's Parameter Builder appends.
    """
    return _PREHASHED.fullmatch(value) is not None


def _passthrough(value: str) -> str:
    """A pre-hashed value as sent: stripped, digest lowercased, appendix kept as it is."""
    digest, dot, appendix = value.strip().partition(".")
    return digest.lower() + dot + appendix


def _is_variation_selector(ch: str) -> bool:
    return "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef"


def _fold_text(value: str) -> str:
    """NFC, ``str.lower`` and removal of punctuation, symbols, separators and control/format
    characters (Unicode categories P*, S*, Z*, C*); letters and digits of every script stay.

    Marks stay only when they belong to a letter or digit: a combining mark right after one (or
    after a mark that stayed), as Devanagari vowel signs, Thai vowels and tone marks, Arabic
    harakat need (``"देवी"``, ``"กิตติ"`` keep theirs). Variation selectors (U+FE00..FE0F,
    U+E0100..E01EF), enclosing marks (Me, e.g. the keycap U+20E3) and a mark with no base — at
    the start, or after a removed character — go: ``"Anna❤️"`` → ``"anna"``, ``"1️⃣"`` → ``"1"``,
    ``"❤️"`` and ``"\u0301"`` → ``""``. So no output starts with a combining mark.
    """
    if value.isascii():
        return _ASCII_DROP.sub("", value.lower())
    text = unicodedata.normalize("NFC", value).lower()
    kept: list[str] = []
    attached = False  # whether a mark here would belong to a kept letter or digit
    for ch in text:
        group = unicodedata.category(ch)
        if group[0] == "M":
            if attached and group != "Me" and not _is_variation_selector(ch):
                kept.append(ch)
            else:
                attached = False
        elif group[0] in "PSZC":
            attached = False
        else:
            kept.append(ch)
            attached = True
    return unicodedata.normalize("NFC", "".join(kept))


def normalize_email(value: str) -> str | None:
    """``em``: trimmed, NFC, lowercase (Meta: "trim leading and trailing whitespace, lowercase").

    ``None`` when empty or not plausibly an address: exactly one ``@``, a local part with at least
    one letter or digit, a domain of two or more dot-separated labels each with a letter or
    digit (``"😀@😀.com"``, ``"a@localhost"`` and ``"a@b..c"`` are refused), and no whitespace or
    control characters inside.
    """
    text = value.strip(_TRIM)
    if text.isascii():  # NFC changes no ASCII text; Z and C are the space and the controls
        text = text.lower()
        local, at, domain = text.partition("@")
        if not at or not local or not domain or "@" in domain:
            return None
        # a space or a control character (categories Z and C in ASCII; isprintable()
        # is false exactly for the controls)
        if " " in text or not text.isprintable():
            return None
        # two or more labels, each (and the local part) with a letter or digit
        if "." not in domain or _ASCII_ALNUM.search(local) is None:
            return None
        if not (
            # the usual domain: letters and digits between single dots, so every label has some
            # (the search below finds no label without; it costs about four times as much)
            domain.replace(".", "").isalnum()
            and domain[0] != "."
            and domain[-1] != "."
            and ".." not in domain
        ) and _LABEL_WITHOUT_ALNUM.search(domain) is not None:
            return None
        return text
    return _normalize_email_text(text)


def _normalize_email_text(text: str) -> str | None:
    """:func:`normalize_email` of a trimmed value, for any text (the rule as Meta states it)."""
    text = unicodedata.normalize("NFC", text).lower()
    text = unicodedata.normalize("NFC", text)
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain:
        return None
    if any(unicodedata.category(ch)[0] in "ZC" for ch in text):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_has_alnum(label) for label in [local, *labels]):
        return None
    return text


def _has_alnum(text: str) -> bool:
    """Whether ``text`` holds a letter or a digit of any script."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def _parse_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


# ``phonenumbers`` compiles its metadata patterns through ``re.compile`` on every use; with its
# pattern cache on (a public switch of phonenumbers 9) each is a dict lookup. The patterns come from
# the library's fixed metadata: the cache is bounded. Older versions have no switch (same results).
_enable_pattern_cache = getattr(phonenumbers, "enable_pattern_cache", None)
if _enable_pattern_cache is not None:
    _enable_pattern_cache()

#: ``phonenumbers.parse`` refuses longer input (its ``_MAX_INPUT_STRING_LENGTH``).
_MAX_PHONE_INPUT = 250
#: An international number written with ASCII digits, spaces, parentheses, dots and hyphens only
#: (``+1 (650) 555-1212``). ``phonenumbers.parse`` reads such a text exactly as ``+`` and its
#: digits (``+16505551212``): none of these characters starts an extension, an RFC 3966 part or a
#: second number, it strips them all when it normalises the digits after the ``+``, and the text
#: is a viable number exactly when it has three digits or more, as the compact form. The compact
#: form is cheaper to parse.
_PLAIN_INTERNATIONAL = re.compile(r"\+[0-9 ().\-]*")


def _e164_digits(number: phonenumbers.PhoneNumber) -> str:
    """``format_number(number, E164)`` without its ``+``, for a parsed number (``parse`` without
    ``keep_raw_input`` keeps no raw input, so E.164 is the calling code and the national
    significant number)."""
    return f"{number.country_code}{phonenumbers.national_significant_number(number)}"


def _phone_region(country: str | None) -> str | None:
    """The ``phonenumbers`` region for ``country``: its own codes (incl. AC, TA, XK) or ISO."""
    if not country:
        return None
    if country.strip().upper() in phonenumbers.SUPPORTED_REGIONS:
        return country.strip().upper()
    alpha_2 = normalize_country(country)
    return alpha_2.upper() if alpha_2 else None


def normalize_phone(value: str, *, country: str | None) -> str | None:
    """``ph``: digits with the country calling code, no ``+``, no leading ``00`` (E.164 digits).

    Meta: "remove symbols, letters and leading zeros; always include the country code".
    Parsed by ``phonenumbers``: ``+44 7700 900123``, ``0044 7700 900123`` and, with
    ``country="GB"``, ``07700 900123`` all give ``447700900123``. ``country`` (ISO alpha-2, any
    case, or any form :func:`normalize_country` knows) completes a national number; without it
    a national number gives ``None``. A bare digit string ("447700900123") is first read as
    Meta's own normalised form (country code included), so an output normalises to itself;
    a bare 10-digit number with a North American country stays national. Readings that
    ``phonenumbers`` finds valid win; else a possible length (6+ national digits, not "local
    only") is enough, as the library's ranges lag behind new allocations. Else ``None``.
    """
    text = value.strip(_TRIM)
    digits = _NOT_DECIMAL.sub("", text)
    if not digits:
        return None
    readings: list[phonenumbers.PhoneNumber | None]
    if text.startswith("+"):  # international: the country is not needed
        if len(text) <= _MAX_PHONE_INPUT and _PLAIN_INTERNATIONAL.fullmatch(text):
            text = "+" + digits  # the same number (see _PLAIN_INTERNATIONAL), parsed faster
        readings = [_parse_phone(text, None)]
    else:
        region = _phone_region(country)
        national = _parse_phone(text, region) if region else None
        if digits.startswith("00"):
            readings = [national, _parse_phone("+" + digits[2:], None)]
        elif _DIGITS.fullmatch(text) and not digits.startswith("0"):
            # Bare digits: Meta's normalised form (country code included) comes first, except a
            # 10-digit number in a North American country, which is a national number there.
            implicit = _parse_phone("+" + digits, None)
            nanp = region is not None and phonenumbers.country_code_for_region(region) == 1
            readings = [national, implicit] if nanp and len(digits) == 10 else [implicit, national]
        else:
            readings = [national]
    if len(readings) == 1:
        # One reading (the usual case: "+..." or a national number): valid or possible, it gives
        # the same digits, so the cheap length test goes first and only a number that fails it
        # is validated (is_valid_number matches the national number against the metadata's
        # patterns, twice for a "+1" number: 232k -> 169k instructions for "+1 (650) 555-0123").
        number = readings[0]
        if number is not None and (_possible(number) or phonenumbers.is_valid_number(number)):
            return _e164_digits(number)
        return None
    for number in readings:  # the first valid reading
        if number is not None and phonenumbers.is_valid_number(number):
            return _e164_digits(number)
    for number in readings:  # else the first possible one
        if number is not None and _possible(number):
            return _e164_digits(number)
    return None


def _possible(number: phonenumbers.PhoneNumber) -> bool:
    """Whether ``number``, not valid, is still sent: a possible length (not "local only": no
    area code) with 6 or more national digits, and no leading zero (``"0000"``: only valid
    numbers keep one)."""
    return (
        not number.italian_leading_zero
        and len(str(number.national_number)) >= 6
        and phonenumbers.is_possible_number_with_reason(number) == _IS_POSSIBLE
    )


_IS_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def normalize_name(value: str) -> str | None:
    """``fn``/``ln``: NFC, lowercase, no punctuation, symbols or spaces; ``None`` when empty.

    Meta: "lowercase, no punctuation; UTF-8 characters are kept" (its example "Valéry" hashes
    right only in NFC). ``str.lower`` is used, not ``casefold``: "Straße" stays "straße".
    """
    return _fold_text(value) or None


def normalize_city(value: str) -> str | None:
    """``ct``: lowercase with spaces and punctuation removed (Meta: "newyork"); else ``None``."""
    return _fold_text(value) or None


def normalize_state(value: str, *, country: str | None) -> str | None:
    """``st``: US states and Canadian provinces as lowercase 2-letter codes, others folded.

    Meta: "2-character ANSI abbreviation in lowercase for US states; elsewhere lowercase with
    no punctuation, special characters or spaces". Names or codes ("California", "CA",
    "US-CA", "Québec") map via ``pycountry.subdivisions``. For country ``us``/``ca`` an unknown
    value gives ``None``; with ``country=None`` US then Canada are tried before folding.
    """
    key = lookup_key(value)
    if not key:
        return None
    alpha_2 = normalize_country(country) if country else None
    if alpha_2 in ("us", "ca"):
        return subdivision_table(alpha_2.upper()).get(key)
    if alpha_2 is None:
        found = subdivision_table("US").get(key) or subdivision_table("CA").get(key)
        if found:
            return found
    return _fold_text(value) or None


def normalize_zip(value: str, *, country: str | None) -> str | None:
    """``zp``: lowercase, no spaces or dashes; US ZIP and ZIP+4 give the first 5 digits.

    Meta: "lowercase, no spaces, no dash; first 5 digits for US zip codes" ("M1 1AE" ->
    "m11ae", "37221-3312" -> "37221"). The US rule applies for ``country`` us, or unknown when
    the value is 5 or 9 digits. ``None`` when empty, not ASCII letters/digits, or (US) not a ZIP.
    """
    if value.isascii():  # NFKC changes no ASCII text
        text = _ASCII_ZIP_DROP.sub("", value.lower())
    else:
        text = _zip_text(value)
    if not text or not (text.isascii() and text.isalnum()):
        return None
    alpha_2 = normalize_country(country) if country else None
    if alpha_2 in ("us", None) and _ZIP_US.fullmatch(text):
        return text[:5]
    return None if alpha_2 == "us" else text


def _zip_text(value: str) -> str:
    """NFKC, lowercase, without the characters of categories Z, C and Pd (any text)."""
    text = unicodedata.normalize("NFKC", value).lower()
    return "".join(
        ch
        for ch in text
        if unicodedata.category(ch)[0] not in "ZC" and unicodedata.category(ch) != "Pd"
    )


@functools.lru_cache(maxsize=1024)
def normalize_country(value: str) -> str | None:
    """``country``: ISO 3166-1 alpha-2 in lowercase (Meta: "us"), else ``None``.

    Accepts alpha-2/alpha-3 codes and the English short, official and common names from
    ``pycountry`` ("United States", "USA", "South Korea"), plus a short alias table of local and
    colloquial names ("Deutschland", "España", "UK"). Exact matches only (case, accents and
    punctuation ignored): no fuzzy search, no numeric codes.
    """
    return country_table().get(lookup_key(value))


def normalize_date_of_birth(value: str, *, dayfirst: bool | None = None) -> str | None:
    """``db``: ``YYYYMMDD`` (Meta: "19970216"), or ``None`` for impossible or ambiguous dates.

    Layouts: ``1997-02-16``, ``1997/02/16``, ``1997.02.16``, ``19970216``; day and month before
    the year as ``2/16/1997`` or ``16-02-1997`` (resolved only when one part exceeds 12 or both
    are equal, unless ``dayfirst`` says the layout) and ``16.02.1997`` (dots: day first unless
    ``dayfirst=False``); an ISO date-time (``1997-02-16T00:00:00Z``, ``1997-02-16 13:05``): its
    date as written, the zone ignored (a birthday stored as midnight). Years 1900 up to today
    (UTC); future dates are refused.
    """
    text = value.strip(_TRIM)
    if m := _DATE_TIME.fullmatch(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
    elif m := _DATE_YMD.fullmatch(text) or _DATE_COMPACT.fullmatch(text):
        groups = m.groups()
        year, month, day = int(groups[0]), int(groups[-2]), int(groups[-1])
    elif m := _DATE_XXY.fullmatch(text):
        first, sep, second, year = int(m[1]), m[2], int(m[3]), int(m[4])
        layout = dayfirst if dayfirst is not None else (True if sep == "." else None)
        if layout is None:
            if first == second or (first > 12 and second <= 12):
                layout = True
            elif second > 12 and first <= 12:
                layout = False
            else:
                return None
        day, month = (first, second) if layout else (second, first)
    else:
        return None
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    if born.year < 1900 or born > datetime.now(UTC).date():
        return None
    return born.strftime("%Y%m%d")


def normalize_gender(value: str) -> str | None:
    """``ge``: ``"f"`` or ``"m"`` (Meta: "f for female, m for male"), else ``None``.

    Case-insensitive words in several languages (female, woman, w, Frau, femme, mujer, Mr, ...);
    anything else (including non-binary answers, which Meta's key cannot express) is ``None``.
    """
    return gender_table().get(lookup_key(value))


def normalize_external_id(value: str) -> str | None:
    """``external_id``: the value trimmed, case KEPT; ``None`` when empty.

    Meta: hashing is recommended, and the value must be identical on the Pixel and server
    sides. Rule shared with the browser client: remove the characters JavaScript's
    ``String.prototype.trim()`` removes (:data:`JS_TRIM_CHARS`), nothing else (ids are
    case-sensitive), then SHA-256 the UTF-8 bytes. Numbers are their decimal string (``12345``).
    """
    return value.strip(JS_TRIM_CHARS) or None


@functools.lru_cache(maxsize=256)
def _known_currency(code: str) -> bool:
    return code not in _NOT_CURRENCIES and pycountry.currencies.get(alpha_3=code) is not None


def normalize_currency(value: object) -> str | None:
    """``custom_data.currency``: ISO 4217 alpha code upper-cased ("eur" -> "EUR"), else ``None``.

    Meta: "currency: ISO 4217 code". Codes ``pycountry`` does not know are refused, and so are
    XXX (no currency) and XTS (testing): Meta would reject the event.
    """
    if not isinstance(value, str):
        return None
    if len(value) <= 8:  # a code as pages send it ("eur", " EUR "): one cache lookup
        return _currency_code(value)
    return _currency_code.__wrapped__(value)


@functools.lru_cache(maxsize=256)
def _currency_code(value: str) -> str | None:
    """:func:`normalize_currency` of a string (cached for short ones only: values come from the
    outside)."""
    code = value.strip(_TRIM).upper()
    return code if _CURRENCY.fullmatch(code) and _known_currency(code) else None


def _decimal_comma(locale: str) -> bool:
    parts = re.split(r"[-_]", locale.strip(), maxsplit=1)
    language = parts[0].lower()
    region = parts[1].split(".")[0].upper() if len(parts) > 1 else ""
    return language in COMMA_DECIMAL_LANGUAGES and f"{language}_{region}" not in DOT_DECIMAL_LOCALES


def parse_value(value: object, *, locale: str | None = None) -> float | None:
    """``custom_data.value`` as a finite float (Meta: "value: a number"), else ``None``.

    Numbers (not bools) are taken as they are; strings in machine form (``"29.90"``, ``"-5"``)
    always parse. Locale formatting is refused when ``locale`` is None (``"1.234,56"`` and
    ``"1,234.56"`` are ambiguous); with a decimal-comma locale (``de``, ``de_DE``, ``fr``, ...)
    ``"1.234,56"``, ``"1 234,56"`` and ``"29,90"`` parse, and a dot followed by exactly three
    digit groups is a thousands separator (``"1.234"`` -> 1234.0); with a decimal-point locale
    (``en``, ``en_US``, ``de_CH``, ...) ``"1,234.56"`` parses. NaN and infinities give ``None``.
    """
    if type(value) is str and locale is None:  # the usual case: "29.90" from a page
        text = value.strip(_TRIM)
        if not _NUM_MACHINE.fullmatch(text):
            return None
        number = float(text)
        return number if math.isfinite(number) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBER):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    if not isinstance(value, str):
        return None
    text = value.strip(_TRIM)
    if locale is not None and _decimal_comma(locale):
        if m := _NUM_COMMA_GROUPED.fullmatch(text):
            text = text.replace(m[1], "").replace(",", ".")
        elif _NUM_COMMA_PLAIN.fullmatch(text):
            text = text.replace(",", ".")
        elif not _NUM_MACHINE.fullmatch(text):
            return None
    elif locale is not None and (m := _NUM_DOT_GROUPED.fullmatch(text)):
        text = text.replace(m[1], "")
    elif not _NUM_MACHINE.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _as_text(key: str, item: object) -> str | None:
    """A raw user_data item as text: strings as sent; for ph/zp/external_id/db also integers
    (and integral floats) as their decimal string; anything else ``None``."""
    if isinstance(item, str):
        return item
    if key in ("ph", "zp", "external_id", "db") and not isinstance(item, bool):
        if isinstance(item, int):
            return str(item)
        if isinstance(item, float) and item.is_integer() and abs(item) < 2**53:
            return str(int(item))
    return None


def _first_country(raw: object) -> str | None:
    """The normalised country of a raw ``country`` value: a string, or the first usable one of
    a list."""
    if type(raw) is str:  # the usual value: the loop below for one string, without the list
        if len(raw) <= MAX_VALUE_LENGTH and not (len(raw) >= 64 and is_prehashed(raw)):
            return normalize_country(raw) or None
        return None
    items = raw if isinstance(raw, _SEQUENCE) else [raw]
    for item in items:
        if (
            isinstance(item, str)
            and len(item) <= MAX_VALUE_LENGTH
            and not (len(item) >= 64 and is_prehashed(item))  # a digest has 64 characters
        ):
            found = normalize_country(item)
            if found:
                return found
    return None


_RULES: dict[str, Callable[[str, str | None], str | None]] = {
    "em": lambda text, _country: normalize_email(text),
    "ph": lambda text, country: normalize_phone(text, country=country),
    "fn": lambda text, _country: normalize_name(text),
    "ln": lambda text, _country: normalize_name(text),
    "ge": lambda text, _country: normalize_gender(text),
    "db": lambda text, _country: normalize_date_of_birth(text),
    "ct": lambda text, _country: normalize_city(text),
    "st": lambda text, country: normalize_state(text, country=country),
    "zp": lambda text, country: normalize_zip(text, country=country),
    "country": lambda text, _country: normalize_country(text),
    "external_id": lambda text, _country: normalize_external_id(text),
}


#: Keys whose rule reads the visitor's country.
_COUNTRY_KEYS = frozenset({"ph", "st", "zp"})
_SEQUENCE = (list, tuple)  # made once: a union written in isinstance() is built per call


def _hash_item(key: str, text: str, country: str | None) -> str | None:
    """What :func:`hash_user_data` sends for one value of ``key``: a pre-hashed value as sent,
    else the SHA-256 of its normalised form; ``None`` when it normalises to nothing."""
    if len(text) >= 64 and is_prehashed(text):  # a digest has 64 characters
        return _passthrough(text)
    normalized = _RULES[key](text, country)
    return sha256_hex(normalized) if normalized else None


#: :func:`_hash_item` for the keys whose rule depends on its inputs only (not ``db``: a birthday
#: in the future is refused, and the future moves). Customers' names, cities, zips and countries
#: repeat from hit to hit; 4,096 entries of at most 512 characters keep it to a few MB. The
#: cache holds customer data in memory as the process already does while it works; nothing
#: reads or logs it.
_cached_hash_item = functools.lru_cache(maxsize=4096)(_hash_item)

#: ``(key, its hash function, whether its rule reads the country)`` in :data:`HASHED_KEYS`
#: order: ``db`` uncached, the others through :data:`_cached_hash_item`.
_KEY_PLAN: tuple[tuple[str, Callable[[str, str, str | None], str | None], bool], ...] = tuple(
    (key, _hash_item if key == "db" else _cached_hash_item, key in _COUNTRY_KEYS)
    for key in HASHED_KEYS
)


def hash_user_data(
    user_data: Mapping[str, object], *, default_country: str | None = None
) -> dict[str, str | list[str]]:
    """Meta's hashed ``user_data`` keys (:data:`HASHED_KEYS`) from raw browser/backend values.

    Each value (a string, or a list of them) is passed through when already a SHA-256 digest
    (stripped, lowercased, Parameter Builder appendix kept), else normalised by its key's rule
    and SHA-256'd. Values that normalise to nothing, and values over 512 characters, are left
    out (never the hash of ""); a list gives a deduplicated list in input order, a string a
    string; a key with nothing left is absent. Other keys (fbp, fbc, ip, ua) are ignored. The
    visitor's country for ph/st/zp is the normalised ``country`` of ``user_data`` (the first
    usable one of a list), else ``default_country``.
    Source: Meta "Customer Information Parameters" (hashing and normalisation rules).
    """
    country = _first_country(user_data.get("country"))
    if country is None and default_country:
        country = normalize_country(default_country)
    result: dict[str, str | list[str]] = {}
    for key, hash_item, reads_country in _KEY_PLAN:
        raw = user_data.get(key)
        if raw is None:  # absent, or None (which gives nothing)
            continue
        if type(raw) is str:  # the usual value, as the general branch below takes it
            if len(raw) <= MAX_VALUE_LENGTH:
                out = hash_item(key, raw, country if reads_country else None)
                if out is not None:
                    result[key] = out
            continue
        key_country = country if reads_country else None
        if not isinstance(raw, _SEQUENCE):
            text = raw if type(raw) is str else _as_text(key, raw)  # strings as sent
            if text is not None and len(text) <= MAX_VALUE_LENGTH:
                out = hash_item(key, text, key_country)
                if out is not None:
                    result[key] = out
            continue
        hashed: list[str] = []
        for item in raw:
            text = _as_text(key, item)
            if text is None or len(text) > MAX_VALUE_LENGTH:
                continue
            out = hash_item(key, text, key_country)
            if out is not None and out not in hashed:
                hashed.append(out)
        if hashed:
            result[key] = hashed
    return result
