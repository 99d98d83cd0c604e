"""``resolve_identity`` reads a returning visitor's id from the signer's remembered values
first: the same answers as the full ``_visitor_id`` walk in every case."""

from __future__ import annotations

from tagserver.identity import VISITOR_ID_SALT, CookieScope, VisitorSigner, resolve_identity

SCOPE = CookieScope(domain="shop.example", subdomain_index=1)
ID_A = "0123456789abcdef0123456789abcdef"
ID_B = "fedcba9876543210fedcba9876543210"


def resolve(signer: VisitorSigner, value: str | list[str]) -> tuple[str | None, str]:
    identity = resolve_identity(
        {"__Secure-tsid": value}, page_url=None, referrer_url=None, scope=SCOPE,
        ad_storage=False, analytics_storage=True, signer=signer, now_ms=1, max_age=60,
    )  # fmt: skip
    (cookie,) = identity.cookies
    return identity.visitor_id, cookie.value


def test_remembered_value_is_taken_as_sent() -> None:
    signer = VisitorSigner(["k" * 32], salt=VISITOR_ID_SALT)
    signed = signer.sign_text(ID_A)  # remembered
    assert resolve(signer, [signed]) == (ID_A, signed)
    assert resolve(signer, signed) == (ID_A, signed)
    assert resolve(signer, [signed, signer.sign_text(ID_B)]) == (ID_A, signed)


def test_remembered_value_that_is_no_visitor_id_falls_through() -> None:
    signer = VisitorSigner(["k" * 32], salt=VISITOR_ID_SALT)
    not_an_id = signer.sign_text("not-a-visitor-id")  # remembered, but not 32 hex digits
    signed_b = signer.sign_text(ID_B)
    assert resolve(signer, [not_an_id, signed_b]) == (ID_B, signed_b)
    visitor_id, value = resolve(signer, [not_an_id])
    assert visitor_id is not None and visitor_id != "not-a-visitor-id"
    assert value == signer.sign_text(visitor_id)


def test_unremembered_and_forged_values() -> None:
    signer = VisitorSigner(["k" * 32], salt=VISITOR_ID_SALT)
    other = VisitorSigner(["k" * 32], salt=VISITOR_ID_SALT)
    signed = other.sign_text(ID_A)  # valid, not remembered by ``signer``
    assert resolve(signer, [signed]) == (ID_A, signed)
    forged = ID_B + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA"
    visitor_id, value = resolve(signer, [forged])
    assert visitor_id != ID_B and value != forged
