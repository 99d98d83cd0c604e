"""normalize_email's ASCII checks without regexes (``isprintable`` for the space and the
controls, a plain-domain shortcut before the label search) decide as the regex checks did."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.meta.normalize import _TRIM, normalize_email, sha256_hex

_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_ALNUM = re.compile(r"[A-Za-z0-9]")
_LABEL_WITHOUT_ALNUM = re.compile(r"(?:\A|\.)[^A-Za-z0-9.]*(?:\.|\Z)")


def reference(value: str) -> str | None:
    """normalize_email of ASCII text as written with the three regex searches."""
    text = value.strip(_TRIM).lower()
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain:
        return None
    if _SPACE_OR_CONTROL.search(text) is not None:
        return None
    if (
        "." not in domain
        or _ALNUM.search(local) is None
        or _LABEL_WITHOUT_ALNUM.search(domain) is not None
    ):
        return None
    return text


ascii_text = st.text(alphabet=st.sampled_from("aZ09.@-_+ \t\x00\x1f\x7f~!"), max_size=12)
addresses = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    st.text(alphabet=st.sampled_from("aB1.-_+ "), max_size=5),
    st.lists(st.text(alphabet=st.sampled_from("aB1-_. \x7f"), max_size=4), max_size=4),
)


@settings(max_examples=2000, deadline=None, database=None)
@given(ascii_text | addresses)
def test_ascii_email_checks_decide_as_the_regexes(value: str) -> None:
    assert normalize_email(value) == reference(value)


def test_ascii_email_examples() -> None:
    for value in ("a@b.co", " Buyer1@Example.com ", "a@b..co", "a@.b.co", "a@b.co.", "a@-.co",
                  "a@b-c.co", "a b@c.co", "a@b.c\x7fo", "a@b\tc.co", "-@b.co", "a@b", "a@@b.co",
                  "a@b.-", "a@1.2"):  # fmt: skip
        assert normalize_email(value) == reference(value), value


def test_sha256_hex_from_a_copied_object_is_a_fresh_hash_each_time() -> None:
    for text in ("", "a", "jane@example.com", "é" * 100, "a"):
        assert sha256_hex(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
