"""Small word tables for :mod:`tagserver.meta.normalize` that no library ships.

Country codes, subdivisions and currencies come from ``pycountry``; phone metadata from
``phonenumbers``. Only what those packages do not know lives here: gender words, a few local or
colloquial country names, and which locales write a decimal comma.

Keys are written plainly; :func:`lookup_key` folds them (accents, case and punctuation removed)
when the lookup dicts are built, once and lazily, so "España" also matches "espana".
"""

from __future__ import annotations

import functools
import unicodedata

import pycountry  # type: ignore[import-untyped,unused-ignore]

#: Words for Meta's ``ge`` key ("f" or "m"), several languages, incl. common salutations.
GENDER_WORDS: dict[str, str] = {
    # female
    "f": "f",
    "female": "f",
    "woman": "f",
    "w": "f",
    "frau": "f",
    "weiblich": "f",
    "femme": "f",
    "féminin": "f",
    "feminin": "f",
    "mujer": "f",
    "femenino": "f",
    "femenina": "f",
    "feminino": "f",
    "feminina": "f",
    "mulher": "f",
    "donna": "f",
    "femmina": "f",
    "femminile": "f",
    "vrouw": "f",
    "vrouwelijk": "f",
    "kvinna": "f",
    "kvinde": "f",
    "kvinne": "f",
    "kobieta": "f",
    "mrs": "f",
    "ms": "f",
    "miss": "f",
    "madame": "f",
    "mme": "f",
    # male
    "m": "m",
    "male": "m",
    "man": "m",
    "mann": "m",
    "männlich": "m",
    "maennlich": "m",
    "herr": "m",
    "homme": "m",
    "masculin": "m",
    "hombre": "m",
    "masculino": "m",
    "homem": "m",
    "uomo": "m",
    "maschio": "m",
    "maschile": "m",
    "mannelijk": "m",
    "mand": "m",
    "mężczyzna": "m",
    "mr": "m",
    "monsieur": "m",
}

#: Local (endonym) and colloquial country names that pycountry's English names miss.
#: ISO 3166-1 alpha-2, lowercase. Deliberately short: no guesses, no continents ("America").
COUNTRY_ALIASES: dict[str, str] = {
    "uk": "gb",
    "great britain": "gb",
    "britain": "gb",
    "england": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northern ireland": "gb",
    "deutschland": "de",
    "bundesrepublik deutschland": "de",
    "österreich": "at",
    "oesterreich": "at",
    "schweiz": "ch",
    "suisse": "ch",
    "svizzera": "ch",
    "españa": "es",
    "italia": "it",
    "nederland": "nl",
    "holland": "nl",
    "the netherlands": "nl",
    "belgique": "be",
    "belgië": "be",
    "belgien": "be",
    "luxemburg": "lu",
    "polska": "pl",
    "česko": "cz",
    "česká republika": "cz",
    "sverige": "se",
    "norge": "no",
    "danmark": "dk",
    "suomi": "fi",
    "éire": "ie",
    "hrvatska": "hr",
    "magyarország": "hu",
    "brasil": "br",
    "turkey": "tr",
    "russia": "ru",
    "uae": "ae",
    "ivory coast": "ci",
    "vatican": "va",
    "vatican city": "va",
}

#: Languages whose usual number format has a decimal comma ("1.234,56" / "1 234,56").
COMMA_DECIMAL_LANGUAGES: frozenset[str] = frozenset(
    {
        "bg", "ca", "cs", "da", "de", "el", "es", "et", "eu", "fi", "fr", "gl", "hr", "hu",
        "id", "is", "it", "lt", "lv", "nb", "nl", "nn", "no", "pl", "pt", "ro", "ru", "sk",
        "sl", "sr", "sv", "tr", "uk", "vi",
    }
)  # fmt: skip

#: Locales (language_REGION, upper-case region) that use a decimal point although their
#: language normally writes a comma (Switzerland, Liechtenstein, Latin America's dot countries).
DOT_DECIMAL_LOCALES: frozenset[str] = frozenset(
    {"de_CH", "de_LI", "it_CH", "es_MX", "es_US", "es_PR", "es_DO", "es_GT", "es_HN",
     "es_NI", "es_PA", "es_SV", "es_PE"}
)  # fmt: skip


def lookup_key(value: str) -> str:
    """A lookup key: NFKD with accents removed, casefolded, letters and digits only."""
    text = unicodedata.normalize("NFKD", value.strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return "".join(ch for ch in text if ch.isalnum())


@functools.cache
def gender_table() -> dict[str, str]:
    """Lookup key of a gender word -> ``"f"`` or ``"m"``."""
    return {lookup_key(word): code for word, code in GENDER_WORDS.items()}


@functools.cache
def subdivision_table(alpha_2: str) -> dict[str, str]:
    """Lookup key of a subdivision's short code, full code ("US-CA") and name -> short code
    in lowercase, for one country (``pycountry.subdivisions``)."""
    table: dict[str, str] = {}
    subdivisions = pycountry.subdivisions.get(country_code=alpha_2)  # type: ignore[no-untyped-call,unused-ignore]
    for sub in subdivisions or ():
        short = str(sub.code).split("-", 1)[1].lower()
        for text in (short, str(sub.code), str(sub.name)):
            table.setdefault(lookup_key(text), short)
    return table


@functools.cache
def country_table() -> dict[str, str]:
    """Lookup key of every ISO 3166-1 alpha-2/alpha-3 code and English short, official and
    common name (``pycountry.countries``), plus :data:`COUNTRY_ALIASES` -> alpha-2 lowercase."""
    table: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            text = getattr(country, attr, None)
            if text:
                table.setdefault(lookup_key(str(text)), str(country.alpha_2).lower())
    for alias, alpha_2 in COUNTRY_ALIASES.items():
        table.setdefault(lookup_key(alias), alpha_2)
    return table
