"""`/metrics` scraped and parsed by prometheus-client's own parser; who may scrape it; the worker's
own endpoint. Counters are per process, so the tests compare before and after."""

from __future__ import annotations

import random
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from drip.metrics import ledger_registry, serve_worker_metrics
from tests.delivery.test_dispatcher import ScriptedBackend
from tests.factories import make_campaign, make_subscriber
from tests.web.seed import T0
from tests.web.test_webhooks import _keypair, event, post
from web.app import create_app

LOOPBACK = ("127.0.0.1", 50000)


def parse(body: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient, **headers) -> dict:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")  # the library's text format
    return parse(r.text)


def _seed(runtime):
    """Four patients in a three-step campaign, all due: p2's mail fails for now, p3's for good;
    a fifth patient enrolls tomorrow (scheduled, not due)."""
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=2, every=timedelta(days=2))
        for i in range(4):
            enroll(s, make_subscriber(s, f"p{i}@example.org"), c, T0 - timedelta(days=10), clinic_tz="UTC")
        enroll(s, make_subscriber(s, "later@example.org"), c, T0 + timedelta(days=1), clinic_tz="UTC")


def _rule(m):
    return {"p2@example.org": "transient", "p3@example.org": "permanent"}.get(m.to_email, "ok")


@pytest.fixture
def metrics_client(runtime, clock):
    keys = _keypair()
    rt = type(runtime)(settings=runtime.settings.with_(sendgrid_webhook_public_key=keys[1], frequency_cap=10),
                       engine=runtime.engine, sessions=runtime.sessions)
    with TestClient(create_app(rt, clock=clock), base_url="https://clinic.test", client=LOOPBACK) as client:
        client.keys = keys
        client.rt = rt
        yield client


def test_metrics_scraped_and_parsed(metrics_client):
    client, rt = metrics_client, metrics_client.rt
    _seed(rt)
    before = scrape(client)
    assert value(before, "drip_deliveries", status="scheduled") == 15
    assert value(before, "drip_deliveries_due") == 12
    assert value(before, "drip_database_up") == 1

    backend = ScriptedBackend(rt.settings, rule=_rule)
    Dispatcher(rt, backend, clock=lambda: T0 - timedelta(seconds=90), rng=random.Random(1)).tick()
    r = post(client, client.keys[0], [event("delivered", 1), event("bounce", 2, email="p3@example.org", type="bounce")])
    assert r.status_code == 200

    after = scrape(client)
    assert value(after, "drip_deliveries", status="sent") == 6
    assert value(after, "drip_deliveries", status="failed") == 3
    assert value(after, "drip_deliveries", status="scheduled") == 6  # p2's retries + tomorrow's patient
    assert value(after, "drip_deliveries", status="sending") == 0  # every status is listed, 0 or not
    assert value(after, "drip_deliveries_due") == 3  # the retries (30-60 s backoff) are due again at T0
    assert value(after, "drip_worker_heartbeat_age_seconds", source="last_send") == 90.0

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("drip_emails_total", backend="scripted", result="ok") == 6
    assert delta("drip_backend_errors_total", backend="scripted", kind="transient") == 3
    assert delta("drip_backend_errors_total", backend="scripted", kind="permanent") == 3
    assert delta("drip_send_latency_seconds_count", backend="scripted") == 1  # one send call of 12
    assert value(after, "drip_send_latency_seconds_bucket", backend="scripted", le="+Inf") >= 1
    assert delta("drip_webhook_events_total", provider="sendgrid", type="delivered") == 1
    assert delta("drip_webhook_events_total", provider="sendgrid", type="bounce") == 1
    assert ("drip_rate_limit_waits_total", frozenset()) in after
    # nothing about a patient is a label
    assert not any("@" in str(dict(labels)) for _, labels in after)


@pytest.fixture
def app_for(sqlite_runtime, clock):
    clients = []

    def build(client=LOOPBACK, **changes):
        rt = type(sqlite_runtime)(settings=sqlite_runtime.settings.with_(**changes), engine=sqlite_runtime.engine,
                                  sessions=sqlite_runtime.sessions)
        c = TestClient(create_app(rt, clock=clock), base_url="https://clinic.test", client=client)
        clients.append(c)
        return c

    yield build
    for c in clients:
        c.close()


def test_metrics_only_for_loopback_or_the_bearer_token(app_for):
    assert app_for().get("/metrics").status_code == 200
    assert app_for(("::1", 1)).get("/metrics").status_code == 200
    outside = app_for(("203.0.113.9", 4000))
    r = outside.get("/metrics")
    assert r.status_code == 403 and "DRIP_METRICS_TOKEN" in r.json()["error"]
    # behind a reverse proxy on the same host every visitor looks like loopback: not enough
    assert app_for().get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    with_token = app_for(("203.0.113.9", 4000), metrics_token="s3cret-metrics")
    assert with_token.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"}).status_code == 200
    assert with_token.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert with_token.get("/metrics").status_code == 403


def test_metrics_answer_when_the_database_does_not(app_for, sqlite_runtime):
    from sqlalchemy import text

    client = app_for()
    with sqlite_runtime.sessions.begin() as s:
        s.execute(text("ALTER TABLE deliveries RENAME TO deliveries_gone"))
    samples = scrape(client)
    assert value(samples, "drip_database_up") == 0


def test_worker_metrics_endpoint(sqlite_runtime, clock):
    server = serve_worker_metrics("127.0.0.1", 0, "tok-123", ledger_registry(sqlite_runtime.read_sessions, clock))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        r = httpx.get(url, timeout=5)
        assert r.status_code == 200 and "Python" not in r.headers.get("server", "")
        samples = parse(r.text)
        assert value(samples, "drip_database_up") == 1
        assert ("drip_rate_limit_waits_total", frozenset()) in samples
        assert httpx.get(url, headers={"X-Forwarded-For": "198.51.100.1"}, timeout=5).status_code == 403
        assert httpx.get(url, headers={"X-Forwarded-For": "198.51.100.1", "Authorization": "Bearer tok-123"},
                         timeout=5).status_code == 200
        assert httpx.get(url.replace("/metrics", "/other"), timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
