"""tagserver.json_codec: orjson's answers are stdlib json's, byte for byte and error for error.

Every difference the module docstring lists is checked here against stdlib ``json`` itself, and
through the server: hit and ``POST /api/events`` bodies with huge integers, non-finite numbers,
lone surrogates, invalid UTF-8, a BOM or deep nesting get the answers they got before.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import json
import math
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.clients.collect import MAX_DEPTH, decode_json_body
from tagserver.delivery.channels import _stdlib_compact_json, compact_json
from tagserver.http import JSONReply, _stdlib_compact
from tagserver.json_codec import MISS, SAFE_DEPTH, detached, dumps, loads, loads_fast
from tagserver.server_events.keys import create_key
from tests.security.harness import BROWSER, AppHarness
from tests.unit.test_collect_decode import same

STDLIB_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "compact_json": _stdlib_compact_json,  # allow_nan, no circular check
    "JSONReply": _stdlib_compact,  # allow_nan=False, as Starlette's JSONResponse
}


def outcome(call: Callable[[], Any]) -> tuple[str, str]:
    """``("ok", repr(value))`` or ``("error", exception class and message)``; ``repr`` tells
    ``1`` from ``1.0`` and ``0.0`` from ``-0.0`` and keeps key order."""
    try:
        return "ok", repr(call())
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


# encoding ------------------------------------------------------------------------------------

FLOATS = [1e16, 1e15, 0.1, -0.0, 0.0, 1.0, 19.99, 1e-4, 1e-5, 1.5e-5, -2.5e-5, 1e-6, 1e-7,
          -3.04051e-06, 4.0e-9, 1e-10, 1e-300, 5e-324, 1.7976931348623157e308, 1e22, 2.0**53 + 2,
          123456789.123, math.nan, math.inf, -math.inf]  # fmt: skip


@pytest.mark.parametrize("encoder", STDLIB_ENCODERS)
@pytest.mark.parametrize("number", FLOATS, ids=repr)
def test_floats_are_written_as_stdlib_writes_them(encoder: str, number: float) -> None:
    stdlib = STDLIB_ENCODERS[encoder]
    value = {"value": number, "list": [number, "x"]}
    assert outcome(lambda: dumps(value, stdlib)) == outcome(lambda: stdlib(value))


def test_small_floats_orjson_would_write_differently_still_read_back_the_same() -> None:
    for number in (1e-5, 1e-7, -3.04051e-06):
        ours = compact_json([number])
        assert ours == json.dumps([number]).encode()  # 1e-05, not orjson's 0.00001
        assert orjson.dumps([number]) != ours and json.loads(orjson.dumps([number])) == [number]


@settings(max_examples=3000, deadline=None, database=None)
@given(st.integers(0, 2**64 - 1))
def test_random_float_bits_are_written_as_stdlib(bits: int) -> None:
    (number,) = struct.unpack("<d", bits.to_bytes(8, "little"))
    for stdlib in STDLIB_ENCODERS.values():
        assert outcome(lambda e=stdlib: dumps([number], e)) == outcome(lambda e=stdlib: e([number]))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**62))
    | st.floats()
    | st.text()
    | st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u2028\x7f", "null", "e-7", "0.00001"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
        | st.dictionaries(st.integers() | st.booleans() | st.none(), children, max_size=3)
    ),
    max_leaves=25,
)


@settings(max_examples=1000, deadline=None, database=None)
@given(json_values)
def test_any_value_is_written_or_refused_as_stdlib(value: Any) -> None:
    for stdlib in STDLIB_ENCODERS.values():
        assert outcome(lambda e=stdlib: dumps(value, e)) == outcome(lambda e=stdlib: e(value))


class Text(str):
    pass


class Number(float):
    pass


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


@pytest.mark.parametrize("encoder", STDLIB_ENCODERS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"n": 2**64}, id="2**64"),  # orjson refuses [-2**63, 2**64)'s outside
        pytest.param({"n": -(2**63) - 1}, id="-2**63-1"),
        pytest.param({"n": 2**64 - 1, "m": -(2**63)}, id="64-bit edges"),  # orjson writes these
        pytest.param({"n": 10**4000}, id="10**4000"),
        pytest.param({"name": "lone \ud800 surrogate"}, id="lone surrogate"),
        pytest.param({"\udc00": 1}, id="lone surrogate key"),
        pytest.param({1: "i", None: "n", False: "b", 2.5: "f"}, id="non-str keys"),
        pytest.param(
            {"t": Text("s"), "f": Number(1.5), "e": Colour.RED, "i": Level.HIGH}, id="subclasses"
        ),
        pytest.param(collections.OrderedDict(a=1), id="OrderedDict"),
        pytest.param(collections.defaultdict(list, a=[1]), id="defaultdict"),
        pytest.param({"tuple": (1, "2")}, id="tuple"),
        pytest.param({"deep": deep(300)}, id="300 levels"),  # orjson stops at 254
        pytest.param({"deep": deep(100_000)}, id="100000 levels"),
        pytest.param(circular(), id="circular"),
        pytest.param({"when": datetime.date(2025, 1, 1)}, id="date"),
        pytest.param({"point": Point(1)}, id="dataclass"),
        pytest.param({"set": {1}}, id="set"),
        pytest.param({"bytes": b"x"}, id="bytes"),
        pytest.param({"value": math.nan}, id="nan"),
        pytest.param({"text": 'Jürgen € 😀 \u2028 \x7f \x00 \x1f "q" \\ /'}, id="text"),
    ],
)
def test_what_orjson_refuses_or_would_write_differently_is_stdlibs(
    encoder: str, value: Any
) -> None:
    stdlib = STDLIB_ENCODERS[encoder]
    assert outcome(lambda: dumps(value, stdlib)) == outcome(lambda: stdlib(value))


def test_orjson_writes_the_usual_payloads() -> None:
    calls: list[Any] = []

    def stdlib(value: Any) -> bytes:
        calls.append(value)
        return _stdlib_compact_json(value)

    event = {"event_name": "Purchase", "event_time": 1760000000, "event_id": "e-1",
             "user_data": {"em": ["ab" * 32], "client_ip_address": "203.0.113.7"},
             "custom_data": {"value": 19.9, "currency": "EUR", "content_ids": ["sku-1"]}}  # fmt: skip
    assert dumps(event, stdlib) == _stdlib_compact_json(event)
    assert calls == []


def test_the_documented_difference_uuid_and_plain_enums_are_written() -> None:
    """stdlib refuses them; orjson writes them (the module docstring's "Not handled")."""

    class Plain(enum.Enum):
        ONE = 1

    value = {"id": uuid.UUID(int=1), "enum": Plain.ONE}
    with pytest.raises(TypeError):
        _stdlib_compact_json(value)
    assert compact_json(value) == b'{"id":"00000000-0000-0000-0000-000000000001","enum":1}'


def test_json_reply_still_refuses_nan_and_lone_surrogates_as_json_response() -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        JSONReply({"value": math.inf}, {})
    with pytest.raises(UnicodeEncodeError):
        JSONReply({"value": "\ud800"}, {})
    assert JSONReply({"n": 2**70}, {}).body == b'{"n":1180591620717411303424}'


# decoding ------------------------------------------------------------------------------------

_number_pieces = ["0", "-0", "-0.0", "1", "1.0", "1e16", "1E+2", "0.1", "1e-7", "0.00001",
                  "9223372036854775807", "-9223372036854775808", "-9223372036854775809",
                  "18446744073709551615", "18446744073709551616", "123456789012345678901234567890",
                  "0.12345678901234567890123", "1e400", "-1e400", "1e-400", "NaN", "Infinity",
                  "-Infinity", "01", "1.", ".5", "+1", "2.5e-308"]  # fmt: skip
_string_pieces = ['"x"', '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', '"\\\\ud800"',
                  '"é"', '"\\u00e9"', '"\\u0000"', '"a\\/b"', '"\\u2028"', '"tab\\tx"',
                  '"1234567890123456789"']  # fmt: skip
_leaf = st.sampled_from(_number_pieces + _string_pieces + ["true", "false", "null", "[]", "{}"])


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.integers(0, 2)) > 0:
        return draw(_leaf)
    items = draw(st.lists(st.deferred(lambda: json_texts(depth + 1)), max_size=4))
    space = draw(st.sampled_from(["", " ", "\n\t", "\r", "\x0b", "\u00a0"]))
    if draw(st.booleans()):
        return "[" + ("," + space).join(items) + "]"
    keys = draw(st.lists(st.sampled_from(['"a"', '"b"', '"\\ud800"', '"a"']),
                         min_size=len(items), max_size=len(items)))  # fmt: skip
    return "{" + ",".join(f"{k}:{space}{v}" for k, v in zip(keys, items, strict=True)) + "}"


@st.composite
def json_bytes(draw: st.DrawFn) -> bytes:
    """A JSON text, UTF-8 encoded, sometimes with a BOM, padding, or one byte changed."""
    data = draw(json_texts()).encode("utf-8")
    data = draw(st.sampled_from([b"", b"", b" ", b"\xef\xbb\xbf"])) + data
    if draw(st.integers(0, 4)) == 0 and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


@settings(max_examples=1000, deadline=None, database=None)
@given(json_bytes())
def test_loads_is_json_loads(data: bytes) -> None:
    assert outcome(lambda: loads(data)) == outcome(lambda: json.loads(data))


@settings(max_examples=600, deadline=None, database=None)
@given(json_bytes())
def test_hit_bodies_decode_as_before(data: bytes) -> None:
    same(data)  # decode_json_body against the stdlib rule of tests/unit/test_collect_decode.py


@pytest.mark.parametrize(
    "text",
    [
        '{"event_id": 18446744073709551616}',  # orjson: 1.8446744073709552e19
        '{"event_id": -9223372036854775809}',
        '{"event_id": 18446744073709551615, "n": -9223372036854775808}',
        '{"value": 123456789012345678901234567890}',
        '{"value": ' + "9" * 5000 + "}",
        '{"value": 1e400}',
        '{"value": -0.0, "a": 1e16, "b": 0.1, "c": 1e-7}',
        '{"a": 1, "b": 2, "a": 3}',
        '{"a": {"b": 1}, "a": {"c": 2}}',
        '{"a": "\\ud800"}',
        '{"a": NaN}',
        '{"a": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"a": ' + "[" * 1030 + "]" * 1030 + "}",
        '{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}",
        '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}",
        '{"a": [' + ",".join(["{}"] * 40) + "]}",  # many brackets, little depth
    ],
)
def test_known_hit_bodies_decode_as_before(text: str) -> None:
    same(text.encode("utf-8"))
    same(b"\xef\xbb\xbf" + text.encode("utf-8"))


@pytest.mark.parametrize(
    "data",
    [
        '{"a": "é"}'.encode("utf-16"),
        '{"a": "é"}'.encode("utf-32-le"),
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": "\xed\xa0\x80"}',  # stdlib's bytes path decodes with surrogatepass
        b'{"a": "\\ud800"}',
        b'{"a": NaN, "b": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": 18446744073709551616}',
    ],
)
def test_loads_leaves_to_stdlib_what_orjson_reads_otherwise(data: bytes) -> None:
    assert loads_fast(data) is MISS
    assert outcome(lambda: loads(data)) == outcome(lambda: json.loads(data))


def test_big_integers_stay_integers() -> None:
    text = b'{"a": 18446744073709551616, "b": -9223372036854775809, "c": 1e2}'
    assert orjson.loads(text)["a"] == 1.8446744073709552e19  # why the guard exists
    assert loads_fast(text) is MISS
    assert loads(text) == {"a": 2**64, "b": -(2**63) - 1, "c": 100.0}
    assert decode_json_body(text) == {"a": 2**64, "b": -(2**63) - 1, "c": 100.0}


def test_usual_bodies_are_decoded_by_orjson() -> None:
    body = (b'{"event_name":"Purchase","event_id":"1-1760000000-000001","event_time":1760000000,'
            b'"custom_data":{"value":"19.90","currency":"EUR","content_ids":["sku-1","sku-3"]},'
            b'"user_data":{"em":" Buyer1@Example.com","ph":"+1 (650) 555-0001"}}')  # fmt: skip
    assert loads_fast(body, max_depth=MAX_DEPTH) == json.loads(body)


def test_nesting_past_max_depth_goes_to_stdlib() -> None:
    assert loads_fast(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, max_depth=MAX_DEPTH) is not MISS
    assert loads_fast(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), max_depth=MAX_DEPTH) is MISS
    wide = b"[" + b",".join([b"[]"] * 300) + b"]"
    assert loads_fast(wide) == json.loads(wide)
    assert loads_fast(b"[" * (SAFE_DEPTH + 1) + b"]" * (SAFE_DEPTH + 1)) is MISS
    with pytest.raises(RecursionError):  # as json.loads: orjson would decode 1,024 levels
        loads(b"[" * 1024 + b"]" * 1024)


# through the server --------------------------------------------------------------------------

HIT = ('{"event_name":"Purchase","event_time":%d,'
       '"event_source_url":"https://www.shop.example/p","custom_data":%s}')  # fmt: skip


@pytest.mark.parametrize(
    ("custom_data", "status", "message"),
    [
        ('{"value":123456789012345678901234567890,"currency":"EUR"}', 200, None),
        ('{"value":1,"currency":"EUR","n":18446744073709551616}', 200, None),
        ('{"value":1,"n":' + "9" * 5000 + "}", 400, "a number has too many digits"),
        ('{"value":1e400}', 400, "number out of range"),
        ('{"value":NaN}', 400, "NaN is not a JSON number"),
        ('{"value":-Infinity}', 400, "-Infinity is not a JSON number"),
        ('{"name":"\\ud800"}', 400, "contains a lone UTF-16 surrogate"),
        ('{"name":"\xff"}', 400, "invalid byte at offset"),
        ('{"x":' + "[" * 100 + "]" * 100 + "}", 400, "nested deeper than 16 levels"),
        ('{"x":' + "[" * 5000 + "]" * 5000 + "}", 400, "too deep"),
    ],
)
def test_hits_and_api_batches_get_the_same_answers(
    tmp_path: Path, custom_data: str, status: int, message: str | None
) -> None:
    body = (HIT % (time.time(), custom_data)).encode().replace("\xff".encode(), b"\xff")
    api_event = body.replace(
        b'"event_name":"Purchase"',
        b'"event_name":"Purchase","action_source":"website","user_data":{"em":"a@b.example",'
        b'"client_ip_address":"198.51.100.7","client_user_agent":"CRM/1.0"}',
    )
    keys = tmp_path / "keys.sqlite3"
    _, key = create_key(keys, "crm", tags=("meta",))
    with AppHarness(env={"TAGSERVER_KEYS": str(keys)}) as app:
        hit = app.request("POST", "/e", headers=BROWSER, content=body)
        batch = app.request(
            "POST", "/api/events", headers={"authorization": f"Bearer {key}"},
            content=b'{"data":[' + api_event + b"]}",
        )  # fmt: skip
    for response in (hit, batch):
        assert response.status_code == status, response.text
        answer = response.json()
        if status == 400:  # DESIGN.md's error shape
            assert answer["ok"] is False and answer["status"] == 400 and answer["error"]
            assert message is not None and message in answer["errors"][0]["message"]
    if status == 200:
        assert batch.json()["accepted"] == 1
        sent = json.loads(body)["custom_data"]
        pixel = hit.json()["commands"][0]["args"][3]  # the browser's custom data
        assert {k: pixel[k] for k in sent if k != "value"} == {
            k: v for k, v in sent.items() if k != "value"
        }  # big integers came back exact
        if "n" in sent:  # and went to Meta exact, from both routes
            assert [sent["n"]] * 2 == [  # one request or two: the sender may batch them
                event["custom_data"]["n"]
                for r in app.outbound
                for event in json.loads(r.content)["data"]
            ]


def test_detached_is_an_equal_bytes_object_of_its_own_size() -> None:
    import tracemalloc

    value = {"event_name": "PageView", "event_id": "e" * 36, "url": "u" * 600}
    written = [dumps(value, _stdlib_compact_json) for _ in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        copies = [detached(data) for data in written]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert all(type(c) is bytes and c == d for c, d in zip(copies, written, strict=True))
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown / len(copies) < len(written[0]) + 200


def test_digit_runs_are_found_across_brackets_and_brackets_still_count() -> None:
    """loads_fast deletes ``{`` and ``[`` before looking for 19 digits: a run split by brackets
    (only a string can hold one) goes to stdlib too, with the same value; one digit fewer does
    not, and the brackets still count for the depth check."""
    split = b'{"a": "1234567890[{123456789"}'
    assert loads_fast(split) is MISS
    assert loads(split) == json.loads(split)
    short = b'{"a": "1234567890[{12345678"}'
    assert loads_fast(short) == json.loads(short)
    brackets = b'{"a": "' + b"[" * MAX_DEPTH + b'"}'  # MAX_DEPTH + 1 brackets, depth 1
    assert loads_fast(brackets, max_depth=MAX_DEPTH) == json.loads(brackets)
