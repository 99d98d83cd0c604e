"""Table-driven tests of tagserver.meta.normalize: one table per Meta customer-information key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tagserver.meta.normalize import (
    HASHED_KEYS,
    hash_user_data,
    is_prehashed,
    normalize_city,
    normalize_country,
    normalize_currency,
    normalize_date_of_birth,
    normalize_email,
    normalize_external_id,
    normalize_gender,
    normalize_name,
    normalize_phone,
    normalize_state,
    normalize_zip,
    parse_value,
    sha256_hex,
)

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
NEXT_YEAR = datetime.now(UTC).year + 1


# Meta's published examples ("Customer Information Parameters") and the vectors of
# /work/shared/cases/normalize.json: (key, normalised value, SHA-256 as published).
META_EXAMPLES = [
    ("em", "john_smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
    ("ph", "16505551212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"),
    ("ph", "442079460958", "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823"),
    ("ph", "16169547888", "bb2fa2e6d2cea4746530c99686d0c7886ab2019875dca2d7e9e171c0e6ada00d"),
    ("fn", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
    ("fn", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
    ("fn", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
    ("ln", "smith", "6627835f988e2c5e50533d491163072d3f4f41f5c8b04630150debb3722ca2dd"),
    ("ln", "oconnor", "7a0fbfdf40cbeb97429bdb88f512cecd27f0d44b7e57986ab578423bb61936ac"),
    ("ge", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
    ("ge", "m", "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"),
    ("db", "19970216", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"),
    ("ct", "newyork", "350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5"),
    ("st", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
    ("zp", "m11ae", "1dc694c2070e697769fb959b50671d76cafd430d8ca191fbdd0affcaea344ac5"),
    ("zp", "37221", "4c8aef49c98ac36122e884c4bb76b30384118053921db0ffd3ec31c4f1d93a40"),
    ("country", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "normalized", "digest"), META_EXAMPLES)
def test_meta_published_hashes(key: str, normalized: str, digest: str) -> None:
    assert sha256_hex(normalized) == digest
    assert sha256_hex(normalized) == hashlib.sha256(normalized.encode("utf-8")).hexdigest()
    # A normalised value normalises to itself and hashes to the published digest.
    country = {"ph": None, "st": "us", "zp": "gb" if normalized == "m11ae" else "us"}
    user_data: dict[str, object] = {key: normalized}
    if key in country and country[key]:
        user_data.setdefault("country", country[key])
    assert hash_user_data(user_data)[key] == digest


def test_sha256_hex_is_lowercase_hex_of_utf8() -> None:
    assert sha256_hex("") == EMPTY_SHA256
    assert sha256_hex("é") == hashlib.sha256("é".encode()).hexdigest()
    assert sha256_hex("A") != sha256_hex("a")


HEX = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (HEX, True),
        (HEX.upper(), True),
        (f"  {HEX}\n", True),
        (f"{HEX}.AbC1", True),
        (f"{HEX}.a_-12345", True),
        (f"{HEX}.x", False),  # appendix too short
        (f"{HEX}.abcdefghi", False),  # appendix too long
        (f"{HEX}.ab.cd", False),
        (HEX[:-1], False),
        (HEX + "0", False),
        (HEX[:-1] + "g", False),
        ("", False),
        ("john@example.com", False),
    ],
)
def test_is_prehashed(value: str, expected: bool) -> None:
    assert is_prehashed(value) is expected


Case = tuple[str, str | None]

EMAIL: list[Case] = [
    ("John_Smith@gmail.com", "john_smith@gmail.com"),
    ("     John_Smith@gmail.com    ", "john_smith@gmail.com"),
    ("\tPerson@Example.COM\n", "person@example.com"),
    ("\ufeffa@b.de\u00a0", "a@b.de"),
    ("ÄÖ@Example.de", "äö@example.de"),
    ("jose\u0301@example.com", "josé@example.com"),  # NFC
    ("", None),
    ("   ", None),
    ("no-at-sign", None),
    ("a@@b.c", None),
    ("a@b@c", None),
    ("@b.c", None),
    ("a@", None),
    ("a b@c.d", None),
    ("a@c.d\u200b", None),
    ("😀@😀.com", None),  # no letter or digit in the local part or a domain label
    ("a@😀.com", None),
    ("😀@b.com", None),
    ("a@localhost", None),  # no dot in the domain
    ("a@b..c", None),
    ("a@.c", None),
    ("a@b.", None),
    ("😀a@b.com", "😀a@b.com"),
    ("ü@bücher.de", "ü@bücher.de"),
    ("1@2.3", "1@2.3"),
]


@pytest.mark.parametrize(("value", "expected"), EMAIL)
def test_normalize_email(value: str, expected: str | None) -> None:
    assert normalize_email(value) == expected


PHONE: list[tuple[str, str | None, str | None]] = [
    ("(650)555-1212", "us", "16505551212"),
    ("(650)555-1212", "US", "16505551212"),
    ("(650)555-1212", "United States", "16505551212"),
    ("16505551212", "us", "16505551212"),
    ("+1 (616) 954-78 88", None, "16169547888"),
    ("+44 20 7946 0958", None, "442079460958"),
    ("+44 7700 900123", None, "447700900123"),
    ("0044 7700 900123", None, "447700900123"),
    ("0044 7700 900123", "GB", "447700900123"),
    ("0044 7700 900123", "US", "447700900123"),
    ("07700 900123", "GB", "447700900123"),
    ("07700 900123", "gb", "447700900123"),
    ("011 44 20 7946 0958", "US", "442079460958"),
    ("447700900123", None, "447700900123"),  # Meta's normalised form
    ("447700900123", "us", "447700900123"),
    ("+49 30 12345678", "de", "493012345678"),
    ("030 12345678", "Deutschland", "493012345678"),
    ("+39 06 1234 5678", None, "390612345678"),  # Italy keeps its leading zero
    ("+1 650 555 1212 ext. 12", None, "16505551212"),
    ("07700 900123", None, None),  # national number, no country known
    ("(650) 555-1212", None, None),
    ("12345", "us", None),
    ("", "us", None),
    ("abc", "us", None),
    ("+", None, None),
    ("00", None, None),
]


@pytest.mark.parametrize(("value", "country", "expected"), PHONE)
def test_normalize_phone(value: str, country: str | None, expected: str | None) -> None:
    assert normalize_phone(value, country=country) == expected


NAME: list[Case] = [
    ("Mary", "mary"),
    ("정", "정"),
    ("Valéry", "valéry"),
    ("Vale\u0301ry", "valéry"),  # decomposed input: NFC first
    ("Straße", "straße"),  # str.lower, not casefold
    ("O'Connor", "oconnor"),
    ("Jean-Luc", "jeanluc"),
    ("José María", "josémaría"),
    ("Müller", "müller"),
    ("张伟", "张伟"),
    ("Zoë\u200b", "zoë"),
    ("ΑΛΈΞΗΣ", "αλέξης"),  # str.lower knows the final sigma
    ("  Mary  ", "mary"),
    ("   ", None),
    ("!!!", None),
    ("", None),
    ("Anna❤️", "anna"),  # the emoji and its variation selector U+FE0F go
    ("❤️", None),
    ("❤\ufe0f", None),
    ("1️⃣", "1"),  # keycap: U+FE0F and the enclosing U+20E3 go
    ("\u0301\u0301", None),  # marks with no base letter
    ("\u0301Anna", "anna"),
    ("A😀\u0301nna", "anna"),  # a mark after a removed character has no base
    ("Anna \u0301", "anna"),
    ("An\U000e0100na", "anna"),  # an ideographic variation selector
    ("Zoë\ufe0e", "zoë"),
    ("देवी", "देवी"),  # Devanagari vowel signs stay with their letters
    ("कृष्ण", "कृष्ण"),  # virama inside a conjunct
    ("กิตติ", "กิตติ"),  # Thai vowel marks
    ("สมศักดิ์", "สมศักดิ์"),  # Thai tone mark after a vowel mark
    ("مُحَمَّد", "مُحَمَّد"),  # Arabic harakat
    ("\u1100\u1161\u11a8", "각"),  # Korean conjoining jamo compose under NFC
]


@pytest.mark.parametrize(("value", "expected"), NAME)
def test_normalize_name(value: str, expected: str | None) -> None:
    assert normalize_name(value) == expected


CITY: list[Case] = [
    ("New York", "newyork"),
    ("São Paulo", "sãopaulo"),
    ("St. Louis", "stlouis"),
    ("Frankfurt am Main", "frankfurtammain"),
    ("Winston-Salem", "winstonsalem"),
    ("", None),
    (" - ", None),
    ("Leeds❤️", "leeds"),
    ("🏙️", None),
    ("मुंबई", "मुंबई"),
    ("กรุงเทพ มหานคร", "กรุงเทพมหานคร"),
]


@pytest.mark.parametrize(("value", "expected"), CITY)
def test_normalize_city(value: str, expected: str | None) -> None:
    assert normalize_city(value) == expected


STATE: list[tuple[str, str | None, str | None]] = [
    ("California", "us", "ca"),
    ("CA", "us", "ca"),
    ("ca", None, "ca"),
    ("US-CA", "us", "ca"),
    ("New York", "USA", "ny"),
    ("new-york", "us", "ny"),
    ("District of Columbia", "us", "dc"),
    ("Texas", None, "tx"),
    ("Puerto Rico", "us", "pr"),
    ("Québec", None, "qc"),
    ("Quebec", "CA", "qc"),
    ("ON", "ca", "on"),
    ("Ontario", None, "on"),
    ("Newfoundland and Labrador", "Canada", "nl"),
    ("Bayern", "de", "bayern"),
    ("Île-de-France", "fr", "îledefrance"),
    ("Bavaria", None, "bavaria"),
    ("Calif.", "us", None),  # not a US state name or code
    ("Ontario", "us", None),
    ("", "us", None),
    ("", None, None),
]


@pytest.mark.parametrize(("value", "country", "expected"), STATE)
def test_normalize_state(value: str, country: str | None, expected: str | None) -> None:
    assert normalize_state(value, country=country) == expected


ZIP: list[tuple[str, str | None, str | None]] = [
    ("M1 1AE", "gb", "m11ae"),
    ("SW1A 1AA", None, "sw1a1aa"),
    ("37221-3312", "us", "37221"),
    ("37221", "us", "37221"),
    ("37221", None, "37221"),
    ("372213312", None, "37221"),
    ("10115", "de", "10115"),
    ("123-4567", "jp", "1234567"),
    ("K1A 0B1", "ca", "k1a0b1"),
    ("1234", "us", None),  # not a ZIP
    ("ABCDE", "us", None),
    ("12.345", "de", None),
    ("", None, None),
    (" - ", "gb", None),
]


@pytest.mark.parametrize(("value", "country", "expected"), ZIP)
def test_normalize_zip(value: str, country: str | None, expected: str | None) -> None:
    assert normalize_zip(value, country=country) == expected


COUNTRY: list[Case] = [
    ("United States", "us"),
    ("United States of America", "us"),
    ("USA", "us"),
    ("us", "us"),
    ("U.S.", "us"),
    ("Deutschland", "de"),
    ("Germany", "de"),
    ("DEU", "de"),
    ("UK", "gb"),
    ("United Kingdom", "gb"),
    ("GB", "gb"),
    ("España", "es"),
    ("Espana", "es"),
    ("South Korea", "kr"),
    ("Côte d'Ivoire", "ci"),
    ("  france ", "fr"),
    ("Narnia", None),
    ("840", None),  # numeric codes are not accepted
    ("Amer", None),  # no fuzzy guesses
    ("", None),
]


@pytest.mark.parametrize(("value", "expected"), COUNTRY)
def test_normalize_country(value: str, expected: str | None) -> None:
    assert normalize_country(value) == expected


DATE: list[tuple[str, bool | None, str | None]] = [
    ("1997-02-16", None, "19970216"),
    ("1997/02/16", None, "19970216"),
    ("1997.02.16", None, "19970216"),
    ("1997-2-6", None, "19970206"),
    ("19970216", None, "19970216"),
    ("2/16/1997", None, "19970216"),
    ("16/02/1997", None, "19970216"),
    ("16.02.1997", None, "19970216"),
    ("16-02-1997", None, "19970216"),
    ("05/05/1997", None, "19970505"),  # same either way
    ("05/06/1997", None, None),  # ambiguous
    ("05/06/1997", True, "19970605"),
    ("05/06/1997", False, "19970506"),
    ("05.06.1997", None, "19970605"),  # dots: day first
    ("2/16/1997", True, None),  # month 16
    ("1997-02-30", None, None),
    ("1997-13-01", None, None),
    ("1899-12-31", None, None),
    ("1900-01-01", None, "19000101"),
    (f"{NEXT_YEAR}-01-01", None, None),
    ("97-02-16", None, None),
    ("2/16/97", None, None),
    ("1997-02-16T00:00:00Z", None, "19970216"),  # an ISO date-time: its date as written
    ("1990-02-03T00:00:00Z", None, "19900203"),
    ("1990-02-03T23:30:00.000+02:00", None, "19900203"),
    ("1990-02-03 08:15", None, "19900203"),
    ("1990-02-30T00:00:00Z", None, None),
    ("1990-02-03T", None, None),
    ("1990-02-03Tnoon", None, None),
    ("", None, None),
    ("yesterday", None, None),
]


@pytest.mark.parametrize(("value", "dayfirst", "expected"), DATE)
def test_normalize_date_of_birth(value: str, dayfirst: bool | None, expected: str | None) -> None:
    assert normalize_date_of_birth(value, dayfirst=dayfirst) == expected


GENDER: list[Case] = [
    ("f", "f"),
    ("F", "f"),
    ("female", "f"),
    (" Female ", "f"),
    ("woman", "f"),
    ("w", "f"),
    ("Frau", "f"),
    ("femme", "f"),
    ("mujer", "f"),
    ("m", "m"),
    ("MALE", "m"),
    ("man", "m"),
    ("Mann", "m"),
    ("männlich", "m"),
    ("homme", "m"),
    ("hombre", "m"),
    ("Mr.", "m"),
    ("x", None),
    ("divers", None),
    ("", None),
]


@pytest.mark.parametrize(("value", "expected"), GENDER)
def test_normalize_gender(value: str, expected: str | None) -> None:
    assert normalize_gender(value) == expected


EXTERNAL_ID: list[Case] = [
    ("  AbC-123 ", "AbC-123"),  # case kept
    ("user_42", "user_42"),
    ("\ufeffid\u3000", "id"),  # what JavaScript's trim() removes
    ("a b", "a b"),  # inner spaces kept
    ("", None),
    ("   ", None),
]


@pytest.mark.parametrize(("value", "expected"), EXTERNAL_ID)
def test_normalize_external_id(value: str, expected: str | None) -> None:
    assert normalize_external_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("eur", "EUR"), (" usd ", "USD"), ("GBP", "GBP"), ("XXX", None), ("XTS", None),
     ("ZZZ", None), ("EURO", None), ("€", None), ("", None), (978, None), (None, None)],
)  # fmt: skip
def test_normalize_currency(value: object, expected: str | None) -> None:
    assert normalize_currency(value) == expected


@pytest.mark.parametrize(
    ("value", "locale", "expected"),
    [
        (29.9, None, 29.9),
        (29, None, 29.0),
        (-5, None, -5.0),
        ("29.90", None, 29.9),
        ("29", None, 29.0),
        (" -3.5 ", None, -3.5),
        (".5", None, 0.5),
        ("1.234,56", None, None),  # locale formatting without a locale: ambiguous
        ("1,234.56", None, None),
        ("29,90", None, None),
        ("1.234,56", "de", 1234.56),
        ("1.234,56", "de_DE", 1234.56),
        ("1.234,56", "de-AT", 1234.56),
        ("1 234,56", "fr", 1234.56),
        ("1\u202f234,56", "fr_FR", 1234.56),
        ("29,90", "de", 29.9),
        ("1.234", "de", 1234.0),
        ("29.90", "de", 29.9),  # machine form still parses
        ("1,234.56", "de", None),
        ("1,234.56", "en", 1234.56),
        ("1,234.56", "en_US", 1234.56),
        ("1'234.56", "de_CH", 1234.56),
        ("1,234,567", "en", 1234567.0),
        ("1.234,56", "en", None),
        ("29,90", "en", None),
        (True, None, None),
        (False, None, None),
        (float("nan"), None, None),
        (float("inf"), None, None),
        (10**400, None, None),
        ("nan", None, None),
        ("inf", None, None),
        ("1e3", None, None),
        ("9" * 400, None, None),
        ("€29.90", None, None),
        ("", None, None),
        (None, None, None),
        ([29.9], None, None),
    ],
)
def test_parse_value(value: object, locale: str | None, expected: float | None) -> None:
    assert parse_value(value, locale=locale) == expected


# hash_user_data ---------------------------------------------------------------------------


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_hash_user_data_full_payload_uses_the_visitor_country() -> None:
    out = hash_user_data(
        {
            "em": " John_Smith@gmail.com ",
            "ph": "07700 900123",
            "fn": "Valéry",
            "ln": "O'Connor",
            "ge": "Female",
            "db": "16.02.1997",
            "ct": "New York",
            "st": "London",
            "zp": "M1 1AE",
            "country": "United Kingdom",
            "external_id": " Cust-42 ",
            "fbp": "fb.1.1697698245670.123",
            "client_ip_address": "203.0.113.9",
        }
    )
    assert out == {
        "em": h("john_smith@gmail.com"),
        "ph": h("447700900123"),
        "fn": h("valéry"),
        "ln": h("oconnor"),
        "ge": h("f"),
        "db": h("19970216"),
        "ct": h("newyork"),
        "st": h("london"),
        "zp": h("m11ae"),
        "country": h("gb"),
        "external_id": h("Cust-42"),
    }
    assert set(out) <= set(HASHED_KEYS)


def test_default_country_completes_national_numbers() -> None:
    assert hash_user_data({"ph": "(650)555-1212"}) == {}
    assert hash_user_data({"ph": "(650)555-1212"}, default_country="US") == {"ph": h("16505551212")}
    assert hash_user_data({"st": "Calif.", "zp": "1234"}, default_country="us") == {}
    # The user_data country wins over the default; the first usable list entry counts.
    out = hash_user_data({"ph": "07700 900123", "country": ["", "gb", "us"]}, default_country="us")
    assert out["ph"] == h("447700900123")
    assert out["country"] == [h("gb"), h("us")]


def test_prehashed_values_pass_through() -> None:
    assert hash_user_data({"em": f"  {HEX.upper()} "}) == {"em": HEX}
    assert hash_user_data({"ph": f"{HEX.upper()}.AbC1"}) == {"ph": f"{HEX}.AbC1"}
    assert hash_user_data({"external_id": [HEX, HEX.upper()]}) == {"external_id": [HEX]}


def test_lists_are_deduplicated_in_order_and_empties_dropped() -> None:
    out = hash_user_data({"em": ["B@x.io", "a@x.io", "b@x.io", "", "nope"], "fn": ["", " "]})
    assert out == {"em": [h("b@x.io"), h("a@x.io")]}
    assert hash_user_data({"em": []}) == {}
    assert hash_user_data({"em": ("a@x.io",)}) == {"em": [h("a@x.io")]}


@pytest.mark.parametrize("key", HASHED_KEYS)
def test_empty_values_are_left_out(key: str) -> None:
    for value in ("", "   ", [], [""], None):
        out = hash_user_data({key: value}, default_country="us")
        assert key not in out
        assert EMPTY_SHA256 not in str(out)


def test_numbers_are_text_only_for_ph_zp_external_id_db() -> None:
    out = hash_user_data(
        {"ph": 16505551212, "zp": 37221, "external_id": 12345, "db": 19970216, "fn": 5, "ge": 1},
        default_country="us",
    )
    assert out == {
        "ph": h("16505551212"),
        "zp": h("37221"),
        "external_id": h("12345"),
        "db": h("19970216"),
    }
    assert hash_user_data({"external_id": 12345.0}) == {"external_id": h("12345")}
    assert hash_user_data({"zp": True, "external_id": False, "ph": 1.5}) == {}
    assert hash_user_data({"em": {"a": 1}, "fn": ["Mary", 7, None]}) == {"fn": [h("mary")]}


def test_external_id_keeps_case() -> None:
    upper = hash_user_data({"external_id": "AbC"})["external_id"]
    lower = hash_user_data({"external_id": "abc"})["external_id"]
    assert upper == h("AbC") != lower


def test_values_over_512_characters_are_refused() -> None:
    local = "a" * (512 - len("@x.io"))
    assert hash_user_data({"em": local + "@x.io"}) == {"em": h(local + "@x.io")}
    assert hash_user_data({"em": "a" + local + "@x.io"}) == {}
    assert hash_user_data({"fn": ["b" * 513, "Mary"]}) == {"fn": [h("mary")]}


NORMALIZERS: dict[str, Callable[[str], str | None]] = {
    "em": normalize_email,
    "ph": lambda v: normalize_phone(v, country="us"),
    "fn": normalize_name,
    "ln": normalize_name,
    "ge": normalize_gender,
    "db": normalize_date_of_birth,
    "ct": normalize_city,
    "st": lambda v: normalize_state(v, country="us"),
    "zp": lambda v: normalize_zip(v, country="us"),
    "country": normalize_country,
    "external_id": normalize_external_id,
}


@pytest.mark.parametrize(
    ("key", "value"),
    [("em", "Mary@Example.com"), ("ph", "650 555 1212"), ("fn", "Mary"), ("ln", "Smith"),
     ("ge", "F"), ("db", "1997-02-16"), ("ct", "Menlo Park"), ("st", "CA"), ("zp", "94025"),
     ("country", "US"), ("external_id", "Id-1")],
)  # fmt: skip
def test_hash_user_data_hashes_what_the_normaliser_returns(key: str, value: str) -> None:
    normalized = NORMALIZERS[key](value)
    assert normalized
    assert hash_user_data({key: value}, default_country="us") == {key: h(normalized)}
