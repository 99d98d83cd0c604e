"""Hypothesis properties of the ga4 client on hostile input.

- whatever the bytes, parsing raises nothing but HitRejected (a 400, never a 500);
- good lines survive any bad neighbour, in order;
- what gtag encodes decodes back to the same values;
- the forwarded hit is the received one minus richsstsse/_uip and contact data, plus one _uip;
- event data, Meta mapping and consent never raise and stay JSON-serialisable.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote, unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.clients.ga4 import parse_ga4_request
from tagserver.exceptions import HitRejected
from tagserver.ga4.consent import consent_from_ga4
from tagserver.ga4.event_data import build_event_data
from tagserver.ga4.forward import build_forward_payload
from tagserver.meta.from_ga4 import meta_from_ga4

FAST = settings(
    max_examples=int(os.environ.get("TAGSERVER_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    database=None,
)
BASE = "v=2&tid=G-PROP1&cid=1.2"

#: raw text built from the characters that matter to the protocol
PROTOCOL_TEXT = st.text(alphabet=st.sampled_from(list("=&%+~.;|_-aZ09\r\n\t é\x00")), max_size=60)
NAMES = st.sampled_from(
    ["en", "dt", "dl", "ep.a", "epn.value", "up.b", "upn.c", "pr1", "pr2", "pr0", "_et", "cu",
     "sst.x", "uafvl", "gcs", "gcd", "ep.user_data.email", "ep.user_data.address.city",
     "ep.event_id", "ep.transaction_id", "weird", "_uip", "richsstsse", "epn.user_data.x"]
)
VALUES = st.text(max_size=40)


def encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs)


@FAST
@given(query=st.binary(max_size=300), body=st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_hit_rejected(query: bytes, body: bytes) -> None:
    try:
        batch = parse_ga4_request(path="/g/collect", query=query, body=body)
    except HitRejected as exc:
        assert exc.status == 400 and exc.error
        return
    for hit in batch.hits:
        json.dumps(hit.event_data)
        meta_from_ga4(hit.event_data)


@FAST
@given(query=PROTOCOL_TEXT, body=PROTOCOL_TEXT)
def test_protocol_shaped_garbage_only_ever_raises_hit_rejected(query: str, body: str) -> None:
    try:
        batch = parse_ga4_request(path="/g/collect", query=BASE + "&" + query,
                                  body=body.encode("utf-8"))
    except HitRejected:
        return
    for hit in batch.hits:
        json.dumps(hit.event_data)
        build_forward_payload(hit, client_ip="198.51.100.7")


@FAST
@given(garbage=st.lists(PROTOCOL_TEXT, min_size=1, max_size=6), good=st.integers(1, 5))
def test_good_lines_survive_bad_neighbours_in_order(garbage: list[str], good: int) -> None:
    lines = []
    for index in range(good):
        lines.append(f"en=good_{index}")
        lines.extend(g.replace("\n", "").replace("\r", "") + "&en=%zz" for g in garbage[:2])
    batch = parse_ga4_request(path="/g/collect", query=BASE, body="\n".join(lines).encode())
    assert [h.event_name for h in batch.hits] == [f"good_{i}" for i in range(good)]


@FAST
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=12), name=VALUES)
def test_encoded_values_decode_back(pairs: list[tuple[str, str]], name: str) -> None:
    event_name = name.strip() or "x"
    if not event_name.isprintable() or len(event_name) > 100:
        event_name = "x"
    query = encode([("v", "2"), ("tid", "G-P"), ("en", event_name), *pairs])
    try:
        (hit,) = parse_ga4_request(path="/g/collect", query=query).hits
    except HitRejected as exc:  # only for what gtag itself never sends
        assert exc.errors and "value too long" not in exc.error
        return
    decoded = [(p.name, p.value) for p in hit.params]
    assert decoded == [("v", "2"), ("tid", "G-P"), ("en", event_name), *pairs]
    assert hit.event_name == event_name
    json.dumps(hit.event_data)


@FAST
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=12), flag=st.booleans())
def test_forwarded_hit_is_the_received_one(pairs: list[tuple[str, str]], flag: bool) -> None:
    raw = encode([("v", "2"), ("tid", "G-P"), ("en", "x"), *pairs]) + ("&richsstsse" if flag else "")
    (hit,) = parse_ga4_request(path="/g/collect", query=raw).hits
    payload = build_forward_payload(hit, client_ip="2001:db8::1")
    kept = [p for p in raw.split("&") if p.split("=")[0] not in ("richsstsse", "_uip")
            and ".user_data" not in unquote(p.split("=")[0])]
    assert payload["query"] == "&".join([*kept, "_uip=2001:db8::1"])
    assert payload["query"].count("_uip=") == 1


@FAST
@given(pairs=st.lists(st.tuples(NAMES | VALUES, VALUES), max_size=20))
def test_event_data_never_raises(pairs: list[tuple[str, str]]) -> None:
    data, problems = build_event_data(pairs)
    json.dumps(data)
    assert all(isinstance(p, str) for p in problems)
    meta = meta_from_ga4(data)
    json.dumps(meta.custom_data)
    json.dumps(meta.user_data)


@FAST
@given(gcs=st.none() | st.text(max_size=8), gcd=st.none() | st.text(max_size=80))
def test_consent_never_raises_and_denial_is_sticky(gcs: str | None, gcd: str | None) -> None:
    consent = consent_from_ga4(gcs, gcd)
    if gcs in ("G100", "G101"):
        assert consent.ad_storage is False
    if gcs in ("G100", "G110"):
        assert consent.analytics_storage is False
