"""``GET /metrics`` in the Prometheus text format: behind a bearer token on the main port, and on
a separate port summed over ``--workers 2``."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartServer
from tests.e2e.load import HEADERS, hit
from tests.e2e.server import PIXEL_ID, free_port
from tests.fakes.graph import FakeGraphAPI

TOKEN = "metrics-token-0123456789abcdef"
DEST = f"meta:{PIXEL_ID}"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from the exposition text (parsed by
    prometheus-client's own parser, so the format is checked too)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_behind_a_bearer_token(start_server: StartServer, fake_graph: FakeGraphAPI) -> None:
    server = start_server(env={"TAGSERVER_METRICS_TOKEN": TOKEN})
    fake_graph.fail_next(1, status=503)
    fake_graph.reject_event_ids(["m-bad"], subcode=2804001)
    for event_id in ("m-1", "m-2", "m-bad"):
        assert server.post("/e", json=hit(event_id), headers=HEADERS).status_code == 200
    assert server.post("/e", content="{not json", headers=HEADERS).status_code == 400
    fake_graph.wait_for_events(2)
    time.sleep(0.3)

    denied = server.get("/metrics")
    assert denied.status_code == 401
    assert denied.json()["status"] == 401 and denied.json()["ok"] is False
    assert server.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = server.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    found = samples(response.text)
    assert value(found, "tagserver_hits_total", outcome="accepted") == 3
    assert value(found, "tagserver_hits_total", outcome="rejected") == 1
    assert value(found, "tagserver_events_total") == 3
    assert value(found, "tagserver_tags_fired_total", tag="meta") == 3
    assert value(found, "tagserver_outbound_sent_events_total", destination=DEST) == 2
    assert value(found, "tagserver_outbound_failed_requests_total", destination=DEST,
                 reason="http_503") == 1
    assert value(found, "tagserver_outbound_retried_events_total", destination=DEST,
                 reason="http_503") >= 1
    assert value(found, "tagserver_outbound_dead_events_total", destination=DEST,
                 reason="rejected") == 1
    assert value(found, "tagserver_dropped_events_total", destination=DEST, reason="rejected") == 1
    assert value(found, "tagserver_outbox_depth") == 0
    assert value(found, "tagserver_outbox_dead_letters") == 1
    assert value(found, "tagserver_request_duration_seconds_count", route="collect") == 4
    assert "EAAB" not in response.text


def test_metrics_port_sums_over_workers(start_server: StartServer, fake_graph: FakeGraphAPI) -> None:
    port = free_port()
    server = start_server(env={"TAGSERVER_METRICS_PORT": str(port)}, args=("--workers", "2"))
    assert server.get("/metrics").status_code == 404, "no token: not on the main port"
    ids = [f"w-{i}" for i in range(12)]
    with httpx.Client(timeout=10) as client:  # new connections spread over the workers
        for event_id in ids:
            response = client.post(f"{server.url}/e", json=hit(event_id), headers=HEADERS)
            assert response.status_code == 200
    fake_graph.wait_for_events(len(ids))
    deadline = time.monotonic() + 10
    while True:  # each worker folds its per-hit counts into the shared files within ~1 s
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        found = samples(text)
        sent = value(found, "tagserver_outbound_sent_events_total", destination=DEST)
        accepted = value(found, "tagserver_hits_total", outcome="accepted")
        if (sent, accepted) == (len(ids), len(ids)) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert accepted == len(ids)
    assert sent == len(ids)
    assert sorted(str(e["event_id"]) for e in fake_graph.accepted_events()) == sorted(ids)


def test_the_metrics_port_of_one_worker_shows_its_hits_at_once(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    """The per-hit counts are deferred (folded about once a second); the metrics port of a
    one-worker server has that worker's event loop fold them before it renders."""
    port = free_port()
    server = start_server(env={"TAGSERVER_METRICS_PORT": str(port)})
    for event_id in ("p-1", "p-2", "p-3"):
        assert server.post("/e", json=hit(event_id), headers=HEADERS).status_code == 200
    found = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    assert value(found, "tagserver_hits_total", outcome="accepted") == 3
    assert value(found, "tagserver_events_total") == 3
    assert value(found, "tagserver_tags_fired_total", tag="meta") == 3
