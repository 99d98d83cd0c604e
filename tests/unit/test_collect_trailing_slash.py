"""``POST /e/`` is the collect endpoint too (no 307: sendBeacon would lose the hit), as
``/g/collect/`` is the GA4 one."""

from __future__ import annotations

import json
import time

from tests.security.harness import BROWSER, AppHarness


def test_the_collect_path_with_a_trailing_slash_is_the_same_endpoint() -> None:
    body = json.dumps({"event_name": "PageView", "event_id": "slash-1",
                       "event_time": int(time.time()),
                       "event_source_url": "https://www.shop.example/p"})  # fmt: skip
    with AppHarness() as app:
        plain = app.request("POST", "/e", headers=BROWSER, content=body)
        slash = app.request("POST", "/e/", headers=BROWSER, content=body.replace("-1", "-2"))
        preflight = app.request(
            "OPTIONS", "/e/", headers={**BROWSER, "access-control-request-method": "POST"}
        )
        wrong = app.request("POST", "/e/", headers={**BROWSER, "content-type": "image/png"},
                            content=body)  # fmt: skip
    assert plain.status_code == slash.status_code == 200
    assert slash.json()["event_id"] == "slash-2"
    assert slash.headers["access-control-allow-origin"] == "https://www.shop.example"
    assert preflight.status_code == 204
    assert wrong.status_code == 415 and wrong.json()["ok"] is False
    assert len(app.outbound) >= 1  # both events went out (batched or not)
    sent = [e["event_id"] for r in app.outbound for e in json.loads(r.content)["data"]]
    assert sorted(sent) == ["slash-1", "slash-2"]
