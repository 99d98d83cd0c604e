"""The last-line redaction of log output."""

from __future__ import annotations

import pytest

from tagserver.logs import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("event_id=jane.doe@example.com", "jane.doe@example.com"),
        ("token EAABsbCS1iHgBAKZCx1ZA", "EAABsbCS1iHgBAKZCx1ZA"),
        ("phone +44 7700 900123 given", "7700 900123"),
        ("national 07700 900123", "07700 900123"),
        ("us (650) 555 1212", "555 1212"),
        ("us +1-650-555-1212", "650-555-1212"),
    ],
)
def test_personal_data_is_masked(text: str, secret: str) -> None:
    assert secret not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"ts": 1795940051.327, "ms": 0.29, "events": 40, "status": 200}',
        "fb.1.1700000000000.123456789",
        "event_id=order-1001 attempt 2",
        "event_id=purchase-2024-100234",
        "event_id=1b4e28ba-2fa1-4d3b-883f-0016d3cca427",
    ],
)
def test_ordinary_log_content_is_kept(text: str) -> None:
    assert redact(text) == text
