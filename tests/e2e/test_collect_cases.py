"""Every case of ``shared/cases/collect.json`` against the real server and the fake Graph API.

The case format (shared/cases/README.md) is interpreted generically: hits are sent in order,
then ``expect.responses``, ``expect.cookies``, ``expect.capi`` and ``expect.wrong`` are checked.
What a case says in words (``note``, ``commands``, ``setup``) is implemented per case below, in
``SETUPS`` and ``CHECKS``; a case with words but without code fails, so a new case cannot pass
by being half-read.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.cases import find_case_file
from tests.e2e.cookies import SetCookie, describe, parse_set_cookies
from tests.e2e.server import ACCESS_TOKEN, PIXEL_ID, TagServerProcess
from tests.fakes.graph import FakeGraphAPI, event_ids

StartServer = Callable[..., TagServerProcess]

#: Seconds to keep watching the fake after the expected events arrived, to catch duplicates
#: and late unwanted events (the server flushes every 0.05 s in these tests).
SETTLE_S = 0.4
#: Longer watch where a case is about something that must NOT be sent (or resent).
QUIET_S = 1.5
DELIVERY_TIMEOUT_S = 10.0


# --- loading the cases --------------------------------------------------------------------


CASES_FILE = find_case_file("collect.json")
CASES: list[dict[str, Any]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
CASES_BY_ID = {case["id"]: case for case in CASES}


# --- placeholders and comparisons ---------------------------------------------------------

_NOW_PLACEHOLDER = re.compile(
    r"^<now(?: (?P<sign>[+-]) (?P<delta>\d+) s)?(?: in (?P<unit>ms|s|seconds))?>$"
)


def substitute(value: Any, *, now: float) -> Any:
    """Replace ``<now in ms>``, ``<now + 3600 s>`` (and the like) in a hit body, recursively.

    Any other ``<...>`` placeholder is an error: sending it literally would test nothing.
    """
    if isinstance(value, dict):
        return {k: substitute(v, now=now) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, now=now) for v in value]
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        match = _NOW_PLACEHOLDER.match(value)
        if match is None:
            raise AssertionError(f"unknown placeholder in a hit: {value!r}")
        seconds = now
        if match["delta"]:
            seconds += int(match["delta"]) * (1 if match["sign"] == "+" else -1)
        return int(seconds * 1000) if match["unit"] == "ms" else int(seconds)
    return value


def same_json(expected: Any, actual: Any) -> bool:
    """JSON equality that keeps types apart: "1" != 1, True != 1, 1 == 1.0."""
    if expected is None or isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, int | float):
        return (
            isinstance(actual, int | float)
            and not isinstance(actual, bool)
            and (actual == expected)
        )
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same_json(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(actual) == set(expected)
            and all(same_json(v, actual[k]) for k, v in expected.items())
        )
    raise TypeError(f"not a JSON value: {expected!r}")


_ABSENT = object()


def lookup(event: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in ``event``; ``_ABSENT`` when a step is missing."""
    current: Any = event
    for step in dotted.split("."):
        if not isinstance(current, dict) or step not in current:
            return _ABSENT
        current = current[step]
    return current


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def header_tokens(response: httpx.Response, name: str) -> list[str]:
    """Comma-separated tokens of every ``name`` header line, lowercased."""
    return [
        token.strip().lower()
        for line in response.headers.get_list(name)
        for token in line.split(",")
        if token.strip()
    ]


# --- running a case -----------------------------------------------------------------------


@dataclass
class CaseRun:
    """A case's hits as sent, and what came back."""

    case: dict[str, Any]
    server: TagServerProcess
    fake: FakeGraphAPI
    responses: list[httpx.Response] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def id(self) -> str:
        return str(self.case["id"])

    @property
    def expect(self) -> dict[str, Any]:
        expect: dict[str, Any] = self.case.get("expect", {})
        return expect

    def set_cookies(self) -> list[SetCookie]:
        """Every Set-Cookie of every response, in order."""
        return [
            cookie
            for response in self.responses
            for cookie in parse_set_cookies(response.headers.get_list("set-cookie"))
        ]

    def last_cookie(self, name: str) -> SetCookie:
        found = [c for c in self.set_cookies() if c["name"] == name]
        assert found, f"{self.id}: no Set-Cookie for {name}; got:\n{describe(self.set_cookies())}"
        return found[-1]

    def response_json(self, index: int) -> dict[str, Any]:
        response = self.responses[index]
        try:
            payload = response.json()
        except ValueError:
            raise AssertionError(
                f"{self.id} response {index}: not JSON: {response.status_code} {response.text!r}"
            ) from None
        assert isinstance(payload, dict), f"{self.id} response {index}: not an object: {payload!r}"
        return payload


_HIT_KEYS = {"method", "path", "headers", "body", "body_text"}


def send_hits(run: CaseRun) -> None:
    run.started_at = time.time()
    for index, hit in enumerate(run.case["hits"]):
        unknown = set(hit) - _HIT_KEYS
        assert not unknown, f"{run.id} hit {index}: unknown keys {unknown} (extend the harness)"
        content: bytes | None = None
        if "body" in hit:
            content = json.dumps(substitute(hit["body"], now=time.time())).encode()
        elif "body_text" in hit:
            content = hit["body_text"].encode()
        try:
            response = run.server.request(
                hit.get("method", "POST"), hit["path"], content=content, headers=hit.get("headers")
            )
        except httpx.HTTPError as exc:
            raise AssertionError(f"{run.id} hit {index}: no HTTP answer: {exc!r}") from exc
        run.responses.append(response)
    run.finished_at = time.time()


# --- generic checks -----------------------------------------------------------------------

_RESPONSE_KEYS = {"status", "json", "headers", "note"}
_COOKIE_KEYS = {"value_regex", "domain", "path", "secure", "samesite", "httponly", "max_age"}
_EXPECT_KEYS = {"responses", "cookies", "capi", "wrong", "note", "commands"}


def check_responses(run: CaseRun) -> None:
    expected_responses = run.expect.get("responses", [])
    assert len(expected_responses) <= len(run.responses), f"{run.id}: more expectations than hits"
    for index, expected in enumerate(expected_responses):
        unknown = set(expected) - _RESPONSE_KEYS
        assert not unknown, f"{run.id} response {index}: unknown keys {unknown}"
        response = run.responses[index]
        where = f"{run.id} response {index}"
        if "status" in expected:
            allowed = expected["status"]
            allowed = allowed if isinstance(allowed, list) else [allowed]
            assert response.status_code in allowed, (
                f"{where}: status {response.status_code}, expected one of {allowed}; "
                f"body: {response.text[:500]!r}"
            )
        for key, value in expected.get("json", {}).items():
            payload = run.response_json(index)
            assert key in payload and same_json(value, payload[key]), (
                f"{where}: json[{key!r}] expected {value!r}, got "
                f"{payload.get(key, '<absent>')!r}; body: {payload!r}"
            )
        for name, value in expected.get("headers", {}).items():
            if value.startswith("<contains ") and value.endswith(">"):
                wanted = value[len("<contains ") : -1].strip().lower()
                assert wanted in header_tokens(response, name), (
                    f"{where}: header {name} should contain {wanted!r}, got "
                    f"{response.headers.get_list(name)!r}"
                )
            else:
                assert response.headers.get(name) == value, (
                    f"{where}: header {name} expected {value!r}, got "
                    f"{response.headers.get(name)!r}; all headers: {dict(response.headers)!r}"
                )


def check_cookies(run: CaseRun) -> None:
    for name, expected in run.expect.get("cookies", {}).items():
        unknown = set(expected) - _COOKIE_KEYS
        assert not unknown, f"{run.id} cookie {name}: unknown keys {unknown}"
        cookie = run.last_cookie(name)
        where = f"{run.id} Set-Cookie {cookie['raw']!r}"
        if "value_regex" in expected:
            assert re.search(expected["value_regex"], cookie["value"]), (
                f"{where}: value does not match {expected['value_regex']!r}"
            )
        if "domain" in expected:
            assert cookie["domain"] == expected["domain"].lower(), (
                f"{where}: Domain expected {expected['domain']!r}"
            )
        if "path" in expected:
            assert cookie["path"] == expected["path"], (
                f"{where}: Path expected {expected['path']!r}"
            )
        for flag in ("secure", "httponly"):
            if flag in expected:
                assert cookie[flag] is expected[flag], f"{where}: {flag} expected {expected[flag]}"
        if "samesite" in expected:
            assert cookie["samesite"] == expected["samesite"].lower(), (
                f"{where}: SameSite expected {expected['samesite']!r}"
            )
        if "max_age" in expected:
            assert cookie["max_age"] == expected["max_age"], (
                f"{where}: Max-Age expected {expected['max_age']}"
            )


def expected_event_ids(run: CaseRun) -> list[str]:
    """The event id each ``expect.capi`` entry is about (its own, or its hit's response's)."""
    capi = run.expect.get("capi", [])
    ids: list[str] = []
    for index, expected in enumerate(capi):
        if "event_id" in expected:
            ids.append(expected["event_id"])
        elif len(capi) == len(run.responses):
            payload = run.response_json(index)
            event_id = payload.get("event_id")
            assert isinstance(event_id, str) and event_id, (
                f"{run.id} response {index}: no event_id to find its CAPI event: {payload!r}"
            )
            ids.append(event_id)
        else:
            raise AssertionError(f"{run.id} capi[{index}]: cannot tell which event it is about")
    return ids


def wait_for_accepted(fake: FakeGraphAPI, ids: Sequence[str], *, what: str) -> None:
    fake.wait_for(
        lambda f: set(ids) <= set(event_ids(f.accepted_events())),
        timeout=DELIVERY_TIMEOUT_S,
        what=f"{what}: accepted CAPI events {list(ids)}",
    )


def check_capi_value(run: CaseRun, event: Mapping[str, Any], path: str, expected: Any) -> None:
    actual = lookup(event, path)
    where = f"{run.id} CAPI event {event.get('event_id')!r} {path}"
    shown = "<absent>" if actual is _ABSENT else repr(actual)
    if expected is None:
        assert actual is _ABSENT, f"{where}: must be absent, got {shown}"
        return
    assert actual is not _ABSENT, f"{where}: absent, expected {expected!r}; event: {event!r}"
    if isinstance(expected, dict) and set(expected) == {"sha256_of"}:
        digest = sha256_hex(expected["sha256_of"])
        ok = actual == digest or (isinstance(actual, list) and digest in actual)
        assert ok, f"{where}: expected sha256({expected['sha256_of']!r}) = {digest}, got {shown}"
        return
    if isinstance(expected, str) and expected.startswith("<") and expected.endswith(">"):
        cookie = re.fullmatch(r"<same value as the (\S+) cookie>", expected)
        if cookie:
            value = run.last_cookie(cookie[1])["value"]
            assert actual == value, (
                f"{where}: expected the {cookie[1]} cookie {value!r}, got {shown}"
            )
            return
        if expected == "<now in seconds, +-5>":
            assert isinstance(actual, int) and not isinstance(actual, bool), (
                f"{where}: expected an integer unix time in seconds, got {shown}"
            )
            low, high = run.started_at - 5, run.finished_at + 5
            assert low <= actual <= high, f"{where}: {actual} not within [{low:.0f}, {high:.0f}]"
            return
        raise AssertionError(f"{where}: unknown placeholder {expected!r} (extend the harness)")
    assert same_json(expected, actual), f"{where}: expected {expected!r}, got {shown}"


def check_capi(run: CaseRun) -> None:
    capi = run.expect.get("capi", [])
    if not capi:
        return
    ids = expected_event_ids(run)
    wait_for_accepted(run.fake, ids, what=run.id)
    time.sleep(SETTLE_S)
    accepted = run.fake.accepted_events()
    for expected, event_id in zip(capi, ids, strict=True):
        matches = [e for e in accepted if e.get("event_id") == event_id]
        assert len(matches) == 1, (
            f"{run.id}: event {event_id!r} accepted {len(matches)} times; an accepted event "
            "must be sent once"
        )
        for path, value in expected.items():
            check_capi_value(run, matches[0], path, value)


def check_wrong(run: CaseRun) -> None:
    wrong = run.expect.get("wrong", [])
    wrong = wrong if isinstance(wrong, list) else [wrong]
    if not wrong:
        return
    assert run.fake.requests, f"{run.id}: nothing reached the fake Graph API to check"
    haystacks = [json.dumps(run.fake.events_seen())] + [
        r.raw_body.decode("utf-8", "replace") for r in run.fake.requests
    ]
    for value in wrong:
        assert not any(value in h for h in haystacks), (
            f"{run.id}: the wrong value {value!r} was sent to the Graph API"
        )


# --- helpers for the per-case checks -------------------------------------------------------


def fbq_track_single(run: CaseRun, index: int) -> list[list[Any]]:
    """The ``args`` of every fbq trackSingle command of response ``index``."""
    payload = run.response_json(index)
    commands = payload.get("commands")
    assert isinstance(commands, list), f"{run.id} response {index}: no commands list: {payload!r}"
    return [
        command["args"]
        for command in commands
        if isinstance(command, dict)
        and command.get("type") == "fbq"
        and isinstance(command.get("args"), list)
        and command["args"][:1] == ["trackSingle"]
    ]


def assert_one_fbq(run: CaseRun, index: int, *, event_id: str, event_name: str) -> list[Any]:
    """Response ``index`` has exactly one trackSingle for our pixel with this id and name."""
    found = fbq_track_single(run, index)
    where = f"{run.id} response {index}"
    assert len(found) == 1, f"{where}: expected one fbq trackSingle command, got {found!r}"
    args = found[0]
    assert len(args) == 5, f"{where}: trackSingle needs 5 args, got {args!r}"
    assert args[1] == PIXEL_ID, f"{where}: pixel id {args[1]!r}, expected {PIXEL_ID!r}"
    assert args[2] == event_name, f"{where}: event name {args[2]!r}, expected {event_name!r}"
    assert isinstance(args[3], dict), f"{where}: custom data must be an object: {args!r}"
    assert isinstance(args[4], dict) and args[4].get("eventID") == event_id, (
        f"{where}: eventID expected {event_id!r}, got {args[4]!r}"
    )
    return args


def seen_ids(fake: FakeGraphAPI) -> list[Any]:
    return event_ids(fake.events_seen())


# --- per-case setups and checks -------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A case's ``setup`` sentence: server environment, and the fake's behaviour."""

    env: Mapping[str, str] = field(default_factory=dict)
    configure: Callable[[FakeGraphAPI], None] | None = None


def _transient_first_failure(fake: FakeGraphAPI) -> None:
    fake.fail_next(
        1,
        status=500,
        error_code=2,
        is_transient=True,
        message="An unexpected error has occurred. Please retry your request later.",
    )


def _wrong_token(fake: FakeGraphAPI) -> None:
    fake.valid_tokens = {"EAAB-A-DIFFERENT-VALID-TOKEN"}


SETUPS: dict[str, Setup] = {
    "C08": Setup(env={"TAGSERVER_TRUSTED_PROXIES": "127.0.0.1"}),
    "C09": Setup(env={"TAGSERVER_TRUSTED_PROXIES": "127.0.0.1"}),
    "C13": Setup(configure=_transient_first_failure),
    "C14": Setup(configure=_wrong_token),
}


def check_c01(run: CaseRun) -> None:
    for index, hit in enumerate(run.case["hits"]):
        assert_one_fbq(run, index, event_id=hit["body"]["event_id"], event_name="AddToCart")


def check_c02(run: CaseRun) -> None:
    ids = []
    for index, response in enumerate(run.responses):
        assert response.status_code == 200, f"C02 response {index}: {response.status_code}"
        event_id = run.response_json(index).get("event_id")
        assert isinstance(event_id, str) and event_id.strip(), (
            f"C02 response {index}: event_id must be a non-empty string, got {event_id!r}"
        )
        ids.append(event_id)
        assert "no-store" in header_tokens(response, "cache-control"), (
            f"C02 response {index}: Cache-Control must say no-store, got "
            f"{response.headers.get_list('cache-control')!r}"
        )
        assert_one_fbq(run, index, event_id=event_id, event_name="ViewContent")
    assert ids[0] != ids[1], f"C02: both hits got the same event_id {ids[0]!r}"
    wait_for_accepted(run.fake, ids, what="C02")
    time.sleep(SETTLE_S)
    accepted = run.fake.accepted_events()
    assert sorted(event_ids(accepted)) == sorted(ids), (
        f"C02: CAPI events must carry exactly the ids of the responses {ids}, "
        f"got {event_ids(accepted)}"
    )
    assert all(e.get("event_name") == "ViewContent" for e in accepted), accepted


def check_c04(run: CaseRun) -> None:
    incoming = {
        "_fbp": "fb.1.1657051589577.1088522659.AQEAAQMB",
        "_fbc": "fb.1.1657051589577.IwZXh0bgNhZW0CMTAAAR-uK_5w",
    }
    for cookie in run.set_cookies():
        if cookie["name"] in incoming:
            assert cookie["value"] == incoming[cookie["name"]], (
                f"C04: Set-Cookie replaced a valid {cookie['name']}: {cookie['raw']!r}"
            )


def check_c05(run: CaseRun) -> None:
    bad = "fb.1.1697698245670."
    for cookie in run.set_cookies():
        assert cookie["value"].strip('"') != bad, f"C05: malformed _fbc echoed: {cookie['raw']!r}"


def check_c11(run: CaseRun) -> None:
    args = assert_one_fbq(run, 0, event_id="order-11", event_name="Purchase")
    assert same_json(["4638", "04639"], args[3].get("content_ids")), (
        f"C11: fbq custom data content_ids expected ['4638', '04639'], got {args[3]!r}"
    )


def check_c12(run: CaseRun) -> None:
    evil = run.responses[2]
    assert "access-control-allow-origin" not in evil.headers, (
        f"C12 response 2 (Origin https://evil.example): ACAO must be absent, got "
        f"{evil.headers.get('access-control-allow-origin')!r}"
    )
    assert evil.headers.get_list("set-cookie") == [], (
        f"C12 response 2: no Set-Cookie for a foreign origin, got "
        f"{evil.headers.get_list('set-cookie')!r}"
    )
    wait_for_accepted(run.fake, ["pv-12"], what="C12")
    time.sleep(QUIET_S)
    assert "pv-12-evil" not in seen_ids(run.fake), (
        f"C12: the evil origin's event reached the Graph API: {seen_ids(run.fake)}"
    )


def check_c13(run: CaseRun) -> None:
    time.sleep(QUIET_S)
    seen = [e for e in run.fake.events_seen() if e.get("event_id") == "order-13"]
    accepted = [e for e in run.fake.accepted_events() if e.get("event_id") == "order-13"]
    assert len(seen) == 2, f"C13: order-13 should be seen twice (fail + retry), got {len(seen)}"
    assert len(accepted) == 1, f"C13: order-13 should be accepted once, got {len(accepted)}"
    first = run.fake.requests[0]
    assert first.status == 500 and "order-13" in event_ids(first.events), (
        f"C13: the first request should be the failed one with order-13: {run.fake.describe()}"
    )
    assert seen[0] == seen[1], f"C13: the retry changed the event:\n{seen[0]!r}\n{seen[1]!r}"


def check_c14(run: CaseRun) -> None:
    requests = run.fake.wait_for_requests(1, timeout=DELIVERY_TIMEOUT_S)
    time.sleep(QUIET_S)  # let the server log the 190 answer
    run.server.stop()
    for request in run.fake.requests:
        assert ACCESS_TOKEN not in request.url and not request.token_in_url, (
            f"C14: access token in a Graph API URL: {request.url}"
        )
    assert requests[0].access_token == ACCESS_TOKEN, (
        f"C14: the Graph API request did not carry META_ACCESS_TOKEN at all "
        f"(got {requests[0].access_token!r}); the test would prove nothing"
    )
    assert "tok-14" in event_ids(requests[0].events), run.fake.describe()
    for index, response in enumerate(run.responses):
        assert ACCESS_TOKEN not in response.text, f"C14 response {index} body has the token"
        assert ACCESS_TOKEN not in str(response.headers.multi_items()), (
            f"C14 response {index} headers have the token"
        )
    assert run.responses[0].status_code == 200, (
        f"C14: an outbound failure must not reach the browser: {run.responses[0].status_code}"
    )
    output = run.server.output()
    assert ACCESS_TOKEN not in output, (
        "C14: the access token is in the server output:\n"
        + "\n".join(line for line in output.splitlines() if ACCESS_TOKEN in line)[:3000]
    )


def check_c15(run: CaseRun) -> None:
    time.sleep(QUIET_S)
    assert run.fake.requests == [], (
        f"C15: rejected hits must not send CAPI events: {run.fake.describe()}"
    )


CHECKS: dict[str, Callable[[CaseRun], None]] = {
    "C01": check_c01,
    "C02": check_c02,
    "C04": check_c04,
    "C05": check_c05,
    "C11": check_c11,
    "C12": check_c12,
    "C13": check_c13,
    "C14": check_c14,
    "C15": check_c15,
}


def needs_words(case: Mapping[str, Any]) -> bool:
    expect = case.get("expect", {})
    return (
        "note" in expect
        or "commands" in expect
        or any("note" in r for r in expect.get("responses", []))
    )


# --- the tests ------------------------------------------------------------------------------


def test_cases_file_is_complete_and_every_sentence_has_code() -> None:
    ids = [case["id"] for case in CASES]
    assert ids, f"no cases in {CASES_FILE}"
    assert len(ids) == len(set(ids)), f"duplicate case ids: {ids}"
    for case in CASES:
        unknown = set(case.get("expect", {})) - _EXPECT_KEYS
        assert not unknown, f"{case['id']}: unknown expect keys {unknown} (extend the harness)"
        if "setup" in case:
            assert case["id"] in SETUPS, f"{case['id']} has a setup sentence but no Setup"
        if needs_words(case):
            assert case["id"] in CHECKS, f"{case['id']} has a note/commands but no check"
    assert set(SETUPS) | set(CHECKS) <= set(ids), "checks for cases that do not exist"


def test_harness_helpers() -> None:
    now = 1_700_000_000.25
    assert substitute({"t": ["<now in ms>", "<now + 3600 s>"]}, now=now) == {
        "t": [1_700_000_000_250, 1_700_003_600]
    }
    with pytest.raises(AssertionError):
        substitute("<tomorrow>", now=now)
    assert same_json(["04639", 1, 29.9], ["04639", 1.0, 29.9])
    assert not same_json(["04639"], [4639])
    assert not same_json(1, True)
    assert not same_json({"a": 1}, {"a": 1, "b": 2})
    assert lookup({"user_data": {"fbc": None}}, "user_data.fbc") is None
    assert lookup({"user_data": {}}, "user_data.fbc") is _ABSENT


def run_case(case: dict[str, Any], start_server: StartServer, fake: FakeGraphAPI) -> CaseRun:
    setup = SETUPS.get(case["id"], Setup())
    server = start_server(env=setup.env)
    if setup.configure is not None:
        setup.configure(fake)
    run = CaseRun(case=case, server=server, fake=fake)
    send_hits(run)
    return run


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_collect_case(
    case: dict[str, Any], start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    run = run_case(case, start_server, fake_graph)
    check_responses(run)
    check_cookies(run)
    check_capi(run)
    check_wrong(run)
    extra = CHECKS.get(run.id)
    if extra is not None:
        extra(run)
    elif needs_words(case):
        pytest.fail(f"{run.id}: the case's note/commands have no check")


def test_c13_permanent_rejection_is_never_retried(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    """C13, second half: a 400 with code 100 / subcode 2804001 is not retried."""
    case = CASES_BY_ID["C13"]
    server = start_server()
    fake_graph.reject_event_ids({"order-13"}, subcode=2804001)
    run = CaseRun(case=case, server=server, fake=fake_graph)
    send_hits(run)
    assert run.responses[0].status_code == 200, run.responses[0].text
    fake_graph.wait_for(
        lambda f: "order-13" in seen_ids(f), timeout=DELIVERY_TIMEOUT_S, what="order-13 sent"
    )
    time.sleep(QUIET_S + 1.0)  # retries would come within ~1.5 s (base 0.05 s, max 0.5 s)
    seen = [r for r in fake_graph.requests if "order-13" in event_ids(r.events)]
    assert [r.status for r in seen] == [400], (
        f"C13: a permanently rejected event must be sent exactly once, got "
        f"{[r.status for r in seen]}: {fake_graph.describe()}"
    )
    assert seen[0].response_json["error"]["error_subcode"] == 2804001
    assert fake_graph.accepted_events() == []


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "error_code": 2, "is_transient": True},
        {"status": 502, "html": True},
        {"status": 429, "error_code": 17, "is_transient": True, "retry_after": 1},
    ],
    ids=["503-code-2", "502-html-proxy", "429-retry-after"],
)
def test_c13_other_transient_failures_are_retried_with_the_same_event(
    start_server: StartServer, fake_graph: FakeGraphAPI, failure: dict[str, Any]
) -> None:
    """C13's kind with the other transient answers REFERENCE §1 lists (5xx, HTML, 429)."""
    case = CASES_BY_ID["C13"]
    server = start_server()
    fake_graph.fail_next(1, **failure)
    run = CaseRun(case=case, server=server, fake=fake_graph)
    send_hits(run)
    assert run.responses[0].status_code == 200, run.responses[0].text
    wait_for_accepted(fake_graph, ["order-13"], what="C13 retry")
    time.sleep(QUIET_S)
    seen = [e for e in fake_graph.events_seen() if e.get("event_id") == "order-13"]
    assert [r.status for r in fake_graph.requests] == [failure["status"], 200], (
        fake_graph.describe()
    )
    assert len(seen) == 2 and seen[0] == seen[1], f"C13: the retry changed the event: {seen!r}"
