"""Request ids, JSON request logs and the Prometheus series at /metrics."""

from __future__ import annotations

import io
import json
import logging

import pytest

from support import next_weekday


@pytest.fixture()
def request_log(app):
    """The JSON lines the request logger writes, through the app's own formatter."""
    root = logging.getLogger()
    ours = next(h for h in root.handlers if getattr(h, "_upzento", False))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ours.formatter)
    for f in ours.filters:
        handler.addFilter(f)
    logger = logging.getLogger("upzento.request")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_well_formed_request_id_is_kept_and_others_replaced(client):
    kept = client.get("/health", headers={"X-Request-ID": "abc-123.def_456"})
    assert kept.headers["X-Request-ID"] == "abc-123.def_456"
    for bad in ("short", "has space in it", "x" * 200, "<script>alert(1)</script>"):
        answer = client.get("/health", headers={"X-Request-ID": bad})
        assert answer.headers["X-Request-ID"] != bad
        assert len(answer.headers["X-Request-ID"]) == 32
    fresh = client.get("/health")
    assert len(fresh.headers["X-Request-ID"]) == 32


def test_request_log_is_json_with_id_tenant_route_status_duration(client, make_tenant, request_log):
    slug = make_tenant()
    day = next_weekday(0).isoformat()
    answer = client.get(f"/api/v1/public/{slug}/availability?service=visit&from={day}&to={day}",
                        headers={"X-Request-ID": "trace-availability-1"})
    assert answer.status_code == 200
    lines = [r for r in request_log() if r.get("request_id") == "trace-availability-1"]
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == "upzento.request"
    assert line["tenant"] == slug
    assert line["route"] == "/api/v1/public/<tenant_slug>/availability"
    assert line["status"] == 200 and line["method"] == "GET"
    assert line["duration_ms"] > 0


def _sample(body: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_count_requests_bookings_and_cache(client, make_tenant, pinned_now):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    before = client.get("/metrics").get_data(as_text=True)
    route = "/api/v1/public/<tenant_slug>/availability"
    query = f"/api/v1/public/{slug}/availability?service=visit&from=2027-01-11&to=2027-01-11"
    assert client.get(query).status_code == 200
    assert client.get(query).status_code == 200  # same question: answered from the cache
    body = {"service": "visit", "start": "2027-01-11T08:00:00Z",
            "customer": {"name": "Ed", "email": "ed@example.com"}}
    assert client.post(f"/api/v1/public/{slug}/bookings", json=body).status_code == 201
    assert client.post(f"/api/v1/public/{slug}/bookings", json=body).status_code == 409
    after = client.get("/metrics")
    assert after.status_code == 200
    assert after.mimetype == "text/plain"
    text = after.get_data(as_text=True)

    def grew(name, **labels):
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    assert grew("upzento_http_request_duration_seconds_count", route=route, method="GET", status="200") == 2
    assert grew("upzento_booking_outcomes_total", operation="book", outcome="ok") == 1
    assert grew("upzento_booking_outcomes_total", operation="book", outcome="conflict") == 1
    assert grew("upzento_availability_cache_total", cache="answer", result="hit") >= 1
    assert grew("upzento_availability_cache_total", cache="answer", result="miss") >= 1
    for series in ("upzento_rq_queue_depth", "upzento_rq_failed_jobs", "upzento_outbox_pending_events",
                   "upzento_outbox_oldest_pending_seconds", "upzento_db_pool_checked_out"):
        assert f"\n{series}" in text, series
    assert _sample(text, "upzento_rq_queue_depth", queue="notifications") >= 0
    # Routes, never tenants, label the latency series.
    assert slug not in text


def test_metrics_token_when_configured(app, client):
    app.config["METRICS_TOKEN"] = "s3cret-token"
    try:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    finally:
        app.config["METRICS_TOKEN"] = None


def test_metrics_add_up_the_gunicorn_workers(services, tmp_path):
    """Multiprocess mode: requests served by two gunicorn workers all show in one scrape."""
    import requests

    from bench.support import gunicorn

    database_url, redis_url = services
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "SECRET_KEY": "multiprocess-test-secret-0123456789",
           "LOG_FORMAT": "text"}
    with gunicorn(database_url, redis_url, workers=2, env=env) as base:
        with requests.Session() as http:
            for _ in range(40):
                assert http.get(f"{base}/health", headers={"Connection": "close"}).status_code == 200
            body = http.get(f"{base}/metrics").text
    pids = {p.name.split("_")[-1] for p in tmp_path.glob("*.db")}
    assert len(pids) >= 2, "both workers should have written samples"
    served = _sample(body, "upzento_http_request_duration_seconds_count", route="/health", method="GET", status="200")
    assert served >= 40  # plus the readiness probes gunicorn() made while waiting
