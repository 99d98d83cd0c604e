"""JSONReply: the hot path's answer is byte-for-byte Starlette's JSONResponse."""

from __future__ import annotations

import math

import pytest
from starlette.responses import JSONResponse

from tagserver.http import JSONReply

HEADERS = {"cache-control": "no-store", "access-control-allow-origin": "https://www.shop.example"}


@pytest.mark.parametrize(
    "content",
    [
        {"event_id": "e-1", "commands": []},
        {"event_id": "ünï-ʤ-😀", "commands": [["track", "Purchase", {"value": 1.5}]]},
        {"nested": {"a": [1, 2.25, None, True, 'x"y\\z\n']}},
    ],
)
def test_same_bytes_and_headers_as_json_response(content: object) -> None:
    reply = JSONReply(content, dict(HEADERS))
    expected = JSONResponse(content, headers=dict(HEADERS))
    assert reply.body == expected.body
    assert sorted(reply.raw_headers) == sorted(expected.raw_headers)
    assert reply.status_code == expected.status_code == 200


def test_nan_is_refused_like_json_response() -> None:
    with pytest.raises(ValueError):
        JSONReply({"value": math.nan}, {})
    with pytest.raises(ValueError):
        JSONResponse({"value": math.nan})


def test_encoded_answer_headers_are_the_no_store_and_cors_headers() -> None:
    from tagserver.http import answer_headers, cors_headers

    origin = "https://www.shop.example"
    expected = JSONReply({}, {"cache-control": "no-store", **cors_headers(origin)})
    assert JSONReply({}, answer_headers(origin)).raw_headers == expected.raw_headers
    assert JSONReply({}, answer_headers(None)).raw_headers == JSONReply(
        {}, {"cache-control": "no-store"}
    ).raw_headers
    reply = JSONReply({}, answer_headers(origin))
    reply.raw_headers.append((b"set-cookie", b"a=b"))  # the cached headers stay as they were
    assert (b"set-cookie", b"a=b") not in answer_headers(origin)


@pytest.mark.parametrize("size", [0, 1, 9, 10, 2047, 2048, 5000])
def test_content_length_of_every_size_kept_or_not(size: int) -> None:
    """The remembered Content-Length headers (sizes below 2,048) and the formatted ones agree
    with the body, also the second time a size is answered."""
    content = "x" * max(0, size - 2)  # a JSON string: two quotes around size - 2 characters
    for _ in range(2):
        reply = JSONReply(content, {"cache-control": "no-store"})
        if size >= 2:
            assert len(reply.body) == size
        assert dict(reply.raw_headers)[b"content-length"] == str(len(reply.body)).encode()
