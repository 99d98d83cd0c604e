"""Small word tables for :mod:`tagserver.meta.normalize` that no library ships.

Country codes, subdivisions and currencies come from ``pycountry``; phone metadata from
``phonenumbers``. Only what those packages do not know lives here: gender words, a few local or
colloquial country names, and which locales write a decimal comma.

Keys are written plainly; the normaliser folds them (NFC, lowercase, accents and punctuation
removed for countries) when it builds its lookup dicts, so "España" also matches "espana".
"""

from __future__ import annotations

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
    "usa": "us",
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
