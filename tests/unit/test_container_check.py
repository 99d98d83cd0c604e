"""``tagserver check`` (the dry-run checker) and the example containers of examples/containers/.

The CLI runs as a subprocess, the way a shop's CI would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagserver.container.loader import load_container
from tagserver.tags.http import HttpTag
from tagserver.tags.meta import MetaTag

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "containers"
EXAMPLE_ENV = {
    "META_PIXEL_ID": "1111111111",
    "META_ACCESS_TOKEN": "EAAexample-main-token-123",
    "META_PARTNER_PIXEL_ID": "2222222222",
    "META_PARTNER_ACCESS_TOKEN": "EAAexample-partner-token-456",
    "CRM_API_TOKEN": "crm-example-token-789",
    "ALERT_WEBHOOK_URL": "https://hooks.chat.example/services/T000/B000/verysecretpath",
}
SECRETS = [v for k, v in EXAMPLE_ENV.items() if "PIXEL" not in k]
WEBHOOK = EXAMPLES / "meta-plus-webhook"


def tagserver(*args: str, env: dict[str, str] = EXAMPLE_ENV) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TAGSERVER_", "META_", "CRM_", "ALERT_"))}
    return subprocess.run(
        [sys.executable, "-m", "tagserver", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_the_examples_exist() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == [
        "ga4-plus-meta", "meta-only", "meta-plus-webhook", "meta-two-pixels"]


@pytest.mark.parametrize("name", ["meta-only", "meta-two-pixels", "meta-plus-webhook",
                                  "ga4-plus-meta"])
def test_example_validates_and_its_samples_pass(name: str) -> None:
    folder = EXAMPLES / name
    container = load_container(folder, environ=EXAMPLE_ENV)
    assert container.tags
    validate = tagserver("validate", str(folder))
    assert validate.returncode == 0, validate.stderr
    check = tagserver("check", str(folder), "--events", str(folder / "samples.jsonl"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "expect: FAILED" not in check.stdout
    lines = [line for line in (folder / "samples.jsonl").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert f"{len(lines)} of {len(lines)} expectation block(s) passed" in check.stdout
    for secret in SECRETS:
        assert secret not in check.stdout + check.stderr


def test_example_shapes() -> None:
    two = load_container(EXAMPLES / "meta-two-pixels", environ=EXAMPLE_ENV)
    assert [type(t.tag) for t in two.tags] == [MetaTag, MetaTag]
    hook = load_container(WEBHOOK, environ=EXAMPLE_ENV)
    assert [(t.name, type(t.tag)) for t in hook.tags] == [
        ("meta", MetaTag), ("crm-orders", HttpTag), ("big-order-alert", HttpTag)]
    only = load_container(EXAMPLES / "meta-only", environ=EXAMPLE_ENV)
    shipped = load_container(ROOT / "tags", environ=EXAMPLE_ENV)
    assert only.tags[0].tag == shipped.tag("meta").tag


def write_samples(tmp_path: Path, *samples: object) -> Path:
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in samples) + "\n", "utf-8")
    return path


BIG_ORDER = {
    "name": "big order",
    "hit": {"event_name": "Purchase", "event_id": "p-9", "event_source_url":
            "https://www.shop.example/de/thanks?utm_source=google",
            "custom_data": {"value": 800, "currency": "EUR", "order_id": "9"},
            "user_data": {"em": "jane@example.com"}},
}


def test_a_failing_expectation_exits_1_and_says_what_differs(tmp_path: Path) -> None:
    samples = write_samples(
        tmp_path,
        {**BIG_ORDER, "expect": {"fired": ["meta", "crm-orders", "big-order-alert"]}},
        {**BIG_ORDER, "name": "wrong", "expect": {
            "fired": ["meta"],
            "requests": [{"tag": "meta"}, {"tag": "crm-orders", "json": {"channel": "paid_social"}},
                         {"tag": "big-order-alert"}]}},
    )
    proc = tagserver("check", str(WEBHOOK), "--events", str(samples))
    assert proc.returncode == 1, proc.stdout
    assert "[line 1] big order" in proc.stdout
    assert "[line 2] wrong" in proc.stdout
    assert "expect: ok" in proc.stdout
    assert "expect: FAILED" in proc.stdout
    assert ('fired: expected ["meta"], got ["big-order-alert", "crm-orders", "meta"]'
            in proc.stdout)
    assert ('requests[1].json.channel: expected "paid_social", got "paid_search"'
            in proc.stdout)
    assert "1 of 2 expectation block(s) passed" in proc.stdout


def test_output_shows_requests_with_secrets_masked(tmp_path: Path) -> None:
    proc = tagserver("check", str(WEBHOOK), "--events", str(write_samples(tmp_path, BIG_ORDER)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "request meta: POST https://graph.facebook.com/v25.0/1111111111/events" in out
    assert '"access_token":"***"' in out
    assert "Authorization: Bearer ***" in out
    assert "request big-order-alert: POST ***" in out
    assert "browser: " in out
    for secret in SECRETS:
        assert secret not in out + proc.stderr


def test_json_format_gives_one_object_per_sample(tmp_path: Path) -> None:
    samples = write_samples(tmp_path, BIG_ORDER, {"event": {"event_name": "Lead"},
                                                  "expect": {"fired": ["meta"]}})
    proc = tagserver("check", str(WEBHOOK), "--events", str(samples), "--format", "json")
    assert proc.returncode == 0
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert first["fired"] == ["meta", "crm-orders", "big-order-alert"]
    assert first["expect"] is None
    assert [r["tag"] for r in first["requests"]] == ["meta", "crm-orders", "big-order-alert"]
    assert first["requests"][2]["url"] == "***"
    assert second["fired"] == ["meta"]
    assert second["expect"] == {"ok": True, "problems": []} or second["expect"]["ok"] is True
    assert second["drops"][0]["reason"] == "invalid_event"  # no page URL: CAPI held back


def test_raw_hit_refused_without_expectation_fails(tmp_path: Path) -> None:
    samples = write_samples(tmp_path, {"hit": {"event_name": ""}},
                            {"hit": {"event_name": ""}, "expect": {"rejected": True}})
    proc = tagserver("check", str(WEBHOOK), "--events", str(samples))
    assert proc.returncode == 1
    assert "refused by the client" in proc.stdout
    assert "1 of 2 expectation block(s) passed" in proc.stdout


def test_unreadable_samples_and_invalid_container_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hit": {"event_name": "PageView"}}\nnot json\n[1]\n{"nothing": 1}\n')
    proc = tagserver("check", str(WEBHOOK), "--events", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:2:" in proc.stderr
    assert f"{bad}:3: a sample is a JSON object" in proc.stderr
    assert f'{bad}:4: a sample needs "hit"' in proc.stderr
    ga4 = tmp_path / "ga4.jsonl"
    ga4.write_text('{"ga4": {"en": "page_view"}}\n')
    proc = tagserver("check", str(WEBHOOK), "--events", str(ga4))
    assert proc.returncode == 1
    assert f'{ga4}:1: "ga4" must be a string' in proc.stderr
    proc = tagserver("check", str(WEBHOOK), "--events", str(bad), env={})
    assert proc.returncode == 1
    assert "environment variable CRM_API_TOKEN is not set" in proc.stderr


def test_check_reads_cookies_headers_and_consent_of_a_sample(tmp_path: Path) -> None:
    samples = write_samples(
        tmp_path,
        {**BIG_ORDER, "request": {"headers": {"X-Shop-Staff": "jane"}},
         "expect": {"fired": []}},
        {"event": {"event_name": "Purchase", "page_location": "https://www.shop.example/at/x",
                   "user_agent": "UA", "custom_data": {"value": 5, "currency": "EUR",
                                                       "order_id": "5"}},
         "consent": {"ad_storage": "denied"},
         "expect": {"fired": ["crm-orders"],
                    "requests": [{"json": {"market": "at", "order_id": "5"}}]}},
    )
    proc = tagserver("check", str(WEBHOOK), "--events", str(samples))
    assert proc.returncode == 0, proc.stdout


def test_even_a_short_secret_is_masked(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    (folder / "c.json").write_text(json.dumps({
        "variables": {"key": {"type": "secret", "env": "SHORT_KEY"}},
        "tags": [{"name": "hook", "type": "http", "url": "https://h.example/?k={{key}}",
                  "headers": {"X-Key": "{{key}}"}}]}))
    samples = write_samples(tmp_path, {"hit": {"event_name": "Lead"},
                                       "expect": {"requests": [{"url": "https://h.example/?k=***",
                                                                "headers": {"X-Key": "***"}}]}})
    proc = tagserver("check", str(folder), "--events", str(samples), env={"SHORT_KEY": "q7z"})
    assert proc.returncode == 0, proc.stdout
    assert "q7z" not in proc.stdout


def test_ga4_samples_run_through_the_ga4_client(tmp_path: Path) -> None:
    folder = EXAMPLES / "ga4-plus-meta"
    samples = write_samples(
        tmp_path,
        {"ga4": "/g/collect?v=2&tid=G-1&en=x", "expect": {"fired": ["ga4"]}},
        {"ga4": "v=2&en=page_view", "expect": {"rejected": True}},  # no tid: refused
        {"ga4": "v=2&tid=G-1&cid=1.2&en=page_view&dl=https%3A%2F%2Fs.example%2F"},
    )
    proc = tagserver("check", str(folder), "--events", str(samples), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, refused, third = (json.loads(line) for line in proc.stdout.splitlines())
    assert first["name"] == "line 1 (ga4)" and first["expect"]["ok"] is True
    assert refused["rejected"]["errors"][0]["field"] == "query: tid"
    (request,) = [r for r in third["requests"] if r["tag"] == "ga4"]
    assert request["url"] == ("https://region1.google-analytics.com/g/collect?v=2&tid=G-1"
                              "&cid=1.2&en=page_view&dl=https%3A%2F%2Fs.example%2F&_uip=::")
    assert request["json"] is None and request["body"] == ""
    assert request["headers"]["content-type"] == "text/plain;charset=UTF-8"
