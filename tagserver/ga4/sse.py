"""The ``text/event-stream`` answer to a GA4 hit that carries ``richsstsse`` (REFERENCE §2).

gtag.js reads the response as server-sent events; each record is ``event: message`` with a JSON
``data`` line. A record with ``send_pixel: [urls]`` makes the browser load those images (sGTM's
``sendPixelFromBrowser``), ``send_beacon`` sends beacons; the last record carries
``response: {status_code, body}``. This is how a gtag-only page fires the Meta image pixel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

EVENT_STREAM = "text/event-stream"


def event_record(data: dict[str, Any]) -> str:
    """One record: ``event: message\\ndata: <compact JSON>\\n\\n`` (JSON never spans lines)."""
    return f"event: message\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def build_event_stream(
    pixel_urls: Sequence[str] = (),
    *,
    beacon_urls: Sequence[str] = (),
    status_code: int = 200,
) -> bytes:
    """The whole stream: one ``send_pixel`` record per image URL (in order), one
    ``send_beacon`` record per beacon URL, then the ``response`` record (empty body)."""
    records = [event_record({"send_pixel": [url], "options": {}}) for url in pixel_urls]
    records += [event_record({"send_beacon": [url], "options": {}}) for url in beacon_urls]
    records.append(event_record({"response": {"status_code": status_code, "body": ""}}))
    return "".join(records).encode("utf-8")


def parse_event_stream(body: str) -> list[dict[str, Any]]:
    """The JSON ``data`` of each record of an event stream (tests and diagnostics); a record
    without a JSON data line is skipped."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                try:
                    value = json.loads(line[5:].strip())
                except ValueError:
                    continue
                if isinstance(value, dict):
                    out.append(value)
    return out
