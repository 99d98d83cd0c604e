"""tagserver.delivery.retry: Meta error classification, Retry-After and backoff."""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime

import httpx
import pytest

from tagserver.delivery.retry import (
    MAX_RETRY_AFTER_S,
    RetryPolicy,
    classify_meta_response,
    parse_retry_after,
)
from tagserver.exceptions import DestinationRejected, DestinationUnavailable

NO_HEADERS = httpx.Headers()
HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def meta_error(
    code: int | None,
    subcode: int | None = None,
    *,
    is_transient: bool | None = None,
    trace: str = "AbCdEfG123",
    message: str = "Une erreur est survenue",  # localised: never decided on
) -> bytes:
    error: dict[str, object] = {"message": message, "type": "OAuthException", "fbtrace_id": trace}
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    return json.dumps({"error": error}).encode()


# ---------------------------------------------------------------------------------------------
# classify_meta_response


@pytest.mark.parametrize(
    "body",
    [
        b'{"events_received": 3, "messages": [], "fbtrace_id": "A1b2"}',
        b'{"events_received": 0, "messages": []}',
        b"{}",
    ],
)
def test_success_is_none(body: bytes) -> None:
    assert classify_meta_response(200, body, NO_HEADERS) is None


@pytest.mark.parametrize("code", [1, 2, 4, 17, 32, 341, 613, *range(80003, 80010)])
def test_transient_meta_codes(code: int) -> None:
    error = classify_meta_response(400, meta_error(code, trace="Trace-1"), NO_HEADERS)
    assert isinstance(error, DestinationUnavailable)
    assert error.code == code
    assert error.status == 400
    assert error.fbtrace_id == "Trace-1"


def test_is_transient_true_is_transient_whatever_the_code() -> None:
    error = classify_meta_response(400, meta_error(100, 2804050, is_transient=True), NO_HEADERS)
    assert isinstance(error, DestinationUnavailable)
    assert error.code == 100
    assert error.subcode == 2804050


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(meta_error(2), id="json-code-2"),
        pytest.param(meta_error(100, 2804003), id="json-permanent-code"),
        pytest.param(meta_error(None), id="json-no-code"),
        pytest.param(HTML, id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"events_received": 1}', id="json-no-error"),
    ],
)
def test_5xx_is_transient(status: int, body: bytes) -> None:
    error = classify_meta_response(status, body, NO_HEADERS)
    assert isinstance(error, DestinationUnavailable)
    assert error.status == status


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(meta_error(4), id="json-code-4"),
        pytest.param(meta_error(80004), id="json-code-80004"),
        pytest.param(meta_error(100), id="json-code-100"),
        pytest.param(b"Too Many Requests", id="text"),
    ],
)
def test_429_is_transient(body: bytes) -> None:
    error = classify_meta_response(429, body, httpx.Headers({"Retry-After": "17"}))
    assert isinstance(error, DestinationUnavailable)
    assert error.status == 429
    assert error.retry_after == 17.0


@pytest.mark.parametrize("status", [200, 400, 403])
def test_html_body_is_transient(status: int) -> None:
    error = classify_meta_response(status, HTML, NO_HEADERS)
    assert isinstance(error, DestinationUnavailable)
    assert error.code is None


@pytest.mark.parametrize(
    ("status", "code", "subcode"),
    [
        pytest.param(400, 100, 2804003, id="event-too-old"),
        pytest.param(400, 100, 2804001, id="malformed-fbc"),
        pytest.param(400, 100, 2804009, id="purchase-without-value"),
        pytest.param(400, 100, 33, id="pixel-missing"),
        pytest.param(400, 100, None, id="invalid-parameter"),
        pytest.param(401, 190, None, id="token-invalid"),
        pytest.param(400, 190, 463, id="token-expired"),
        pytest.param(400, 102, None, id="session"),
        pytest.param(403, 10, None, id="permission"),
        pytest.param(403, 200, None, id="permissions-200"),
        pytest.param(403, 299, None, id="permissions-299"),
    ],
)
def test_permanent_errors(status: int, code: int, subcode: int | None) -> None:
    body = meta_error(code, subcode, trace="Trace-Perm")
    error = classify_meta_response(status, body, NO_HEADERS)
    assert isinstance(error, DestinationRejected)
    assert not isinstance(error, DestinationUnavailable)
    assert error.status == status
    assert error.code == code
    assert error.subcode == subcode
    assert error.fbtrace_id == "Trace-Perm"
    assert str(code) in str(error)


def test_200_with_an_error_object_is_not_a_success() -> None:
    error = classify_meta_response(200, meta_error(190), NO_HEADERS)
    assert isinstance(error, DestinationRejected)
    assert error.code == 190


def test_decision_ignores_the_message() -> None:
    transient = classify_meta_response(
        400, meta_error(2, message="Invalid parameter, permanent"), NO_HEADERS
    )
    permanent = classify_meta_response(
        400, meta_error(100, 2804003, message="temporarily unavailable, retry"), NO_HEADERS
    )
    assert isinstance(transient, DestinationUnavailable)
    assert isinstance(permanent, DestinationRejected)


def test_non_integer_code_fields_are_ignored() -> None:
    body = json.dumps(
        {"error": {"code": "190", "error_subcode": "x", "fbtrace_id": 5, "message": "m"}}
    ).encode()
    error = classify_meta_response(400, body, NO_HEADERS)
    assert error is not None
    assert error.code is None
    assert error.subcode is None
    assert error.fbtrace_id is None


def test_retry_after_header_is_carried() -> None:
    error = classify_meta_response(503, HTML, httpx.Headers({"Retry-After": "42"}))
    assert error is not None
    assert error.retry_after == 42.0
    error = classify_meta_response(503, HTML, NO_HEADERS)
    assert error is not None
    assert error.retry_after is None


# ---------------------------------------------------------------------------------------------
# parse_retry_after

NOW = 1_760_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("300", 300.0),
        ("301", MAX_RETRY_AFTER_S),
        ("86400", MAX_RETRY_AFTER_S),
        (http_date(NOW + 30), 30.0),
        (http_date(NOW + 299), 299.0),
        (http_date(NOW + 3600), MAX_RETRY_AFTER_S),
        (http_date(NOW - 3600), 0.0),  # a date in the past: retry now, never negative
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "Thursday", "1e3"])
def test_parse_retry_after_unparsable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_max_retry_after_is_five_minutes() -> None:
    assert MAX_RETRY_AFTER_S == 300.0


# ---------------------------------------------------------------------------------------------
# RetryPolicy.delay


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_delay_is_between_half_and_full_backoff(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=60.0, max_attempts=8)
    full = 0.5 * 2 ** (attempt - 1)
    delays = [policy.delay(attempt) for _ in range(300)]
    assert all(full / 2 <= d <= full for d in delays), (min(delays), max(delays), full)
    assert len(set(delays)) > 1, "jitter: delays must vary"


def test_delay_grows_with_the_attempt() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=1000.0, max_attempts=10)
    assert max(policy.delay(1) for _ in range(100)) <= 1.0
    assert min(policy.delay(4) for _ in range(100)) >= 4.0


def test_delay_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=5.0, max_attempts=50)
    for attempt in (5, 10, 30, 50):
        delays = [policy.delay(attempt) for _ in range(100)]
        assert all(2.5 <= d <= 5.0 for d in delays), (attempt, min(delays), max(delays))


def test_retry_after_is_honoured_when_longer() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=60.0, max_attempts=8)
    assert policy.delay(1, retry_after=30.0) == 30.0
    assert policy.delay(3, retry_after=120.0) == 120.0  # even above max_delay


def test_retry_after_shorter_than_backoff_is_ignored() -> None:
    policy = RetryPolicy(base_delay=10.0, max_delay=60.0, max_attempts=8)
    delays = [policy.delay(2, retry_after=1.0) for _ in range(100)]
    assert all(10.0 <= d <= 20.0 for d in delays)


def test_retry_after_zero_or_none_keeps_backoff() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=60.0, max_attempts=8)
    for retry_after in (None, 0.0):
        delays = [policy.delay(1, retry_after=retry_after) for _ in range(100)]
        assert all(1.0 <= d <= 2.0 for d in delays)
