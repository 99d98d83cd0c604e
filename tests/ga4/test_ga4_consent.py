"""tagserver.ga4.consent: ``gcs``/``gcd`` → Consent."""

from __future__ import annotations

import pytest

from tagserver.consent import GRANTED, Consent
from tagserver.ga4.consent import consent_from_ga4, read_gcd, read_gcs


@pytest.mark.parametrize(
    ("gcs", "expected"),
    [
        ("G100", {"ad_storage": False, "analytics_storage": False}),
        ("G101", {"ad_storage": False, "analytics_storage": True}),
        ("G110", {"ad_storage": True, "analytics_storage": False}),
        ("G111", {"ad_storage": True, "analytics_storage": True}),
        ("G1--", {}),
        ("G1-0", {"analytics_storage": False}),
        ("G2111", {}),
        ("g111", {}),
        ("", {}),
        (None, {}),
    ],
)
def test_read_gcs(gcs: str | None, expected: dict[str, bool]) -> None:
    assert read_gcs(gcs) == expected


def test_read_gcd_letters_at_offsets_2_4_6_8() -> None:
    # 13r3r3r2r5l1 (case G03): all four granted after an update
    assert read_gcd("13r3r3r2r5l1") == {
        "ad_storage": True, "analytics_storage": True,
        "ad_user_data": True, "ad_personalization": True,
    }
    # 13l3l3l2l1l1 (case G01): nothing set
    assert read_gcd("13l3l3l2l1l1") == {}
    assert read_gcd("13q3t3p3v5") == {
        "ad_storage": False, "analytics_storage": True,
        "ad_user_data": False, "ad_personalization": True,
    }


@pytest.mark.parametrize("letter", list("pqmu"))
def test_gcd_denied_letters(letter: str) -> None:
    assert read_gcd(f"13{letter}3t3t3t5") ["ad_storage"] is False


@pytest.mark.parametrize("letter", list("trnve"))
def test_gcd_granted_letters(letter: str) -> None:
    assert read_gcd(f"13{letter}3p3p3p5")["ad_storage"] is True


@pytest.mark.parametrize("gcd", ["", "1", "13", "13x3y3z", "1" * 100])
def test_malformed_gcd_sets_nothing(gcd: str) -> None:
    assert read_gcd(gcd) == {}


def test_no_signal_is_granted() -> None:
    assert consent_from_ga4(None, None) == GRANTED
    assert consent_from_ga4("G1--", "13l3l3l3l1") == GRANTED


def test_ad_storage_denied_by_gcs_keeps_contact_data_away_without_gcd() -> None:
    assert consent_from_ga4("G101", None) == Consent(
        ad_storage=False, analytics_storage=True, ad_user_data=False, ad_personalization=False
    )


def test_analytics_denied_only() -> None:
    assert consent_from_ga4("G110", None) == Consent(analytics_storage=False)


def test_ad_user_data_denied_alone_by_gcd() -> None:
    assert consent_from_ga4("G111", "13t3t3p3t5") == Consent(ad_user_data=False)


def test_a_denial_in_either_signal_wins() -> None:
    assert consent_from_ga4("G111", "13p3t3t3t5").ad_storage is False
    assert consent_from_ga4("G100", "13t3t3t3t5").ad_storage is False
    assert consent_from_ga4("G100", "13t3t3t3t5").analytics_storage is False
    # ad_user_data granted explicitly by gcd stays granted even with ad_storage denied
    assert consent_from_ga4("G100", "13p3p3t3t5").ad_user_data is True
