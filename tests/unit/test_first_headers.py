"""first_headers: one pass over the raw pairs gives what Starlette's ``request.headers.get`` gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from tagserver.http import first_headers

NAMES = st.sampled_from([b"host", b"origin", b"cookie", b"user-agent", b"content-type", b"x-a"])
VALUES = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def test_a_repeated_header_gives_its_first_value() -> None:
    raw = [(b"host", b"a.example"), (b"cookie", b"a=1"), (b"host", b"b.example"),
           (b"cookie", b"b=2")]  # fmt: skip
    assert first_headers(raw) == {b"host": b"a.example", b"cookie": b"a=1"}


@given(st.lists(st.tuples(NAMES, VALUES), max_size=10))
def test_the_same_values_as_starlette(raw: list[tuple[bytes, bytes]]) -> None:
    found = first_headers(raw)
    starlette = Headers(raw=raw)
    for name in (b"host", b"origin", b"cookie", b"user-agent", b"content-type", b"x-a", b"no"):
        value = found.get(name)
        assert (None if value is None else value.decode("latin-1")) == starlette.get(
            name.decode()
        )
