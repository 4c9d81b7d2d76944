"""API keys (expiry, last use and request count, another business's ids) and the rate limits (per key by its plan,
per address, public bookings)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

_ips = itertools.count(1)


def _client(app):
    client = app.test_client()
    n = next(_ips)
    client.environ_base["REMOTE_ADDR"] = f"10.99.{n // 250}.{n % 250 + 1}"
    return client


def _key(app, slug, **kw):
    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key

    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        row, secret = create_api_key(db.session, tenant, "k", **kw)
        db.session.commit()
        return row.id, {"Authorization": f"Bearer {secret}"}


def _row(app, key_id):
    from app.extensions import db
    from app.models.public import ApiKey

    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        db.session.expunge(row)
        return row


def test_last_use_and_request_count_are_recorded(app, make_tenant):
    key_id, auth = _key(app, make_tenant())
    client = _client(app)
    assert _row(app, key_id).request_count == 0 and _row(app, key_id).last_used_at is None
    for _ in range(3):
        assert client.get("/api/v1/services/", headers=auth).status_code == 200
    assert client.get("/api/v1/appointments/not-an-id", headers=auth).status_code == 404  # failed requests count too
    row = _row(app, key_id)
    assert row.request_count == 4
    assert dt.datetime.now(dt.timezone.utc) - row.last_used_at < dt.timedelta(minutes=1)


def test_expired_key_is_refused(app, make_tenant):
    from app.extensions import db
    from app.models.public import ApiKey
    from app.services.people import PeopleError, create_api_key

    slug = make_tenant()
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    key_id, auth = _key(app, slug, expires_at=soon)
    client = _client(app)
    assert client.get("/api/v1/services/", headers=auth).status_code == 200
    with app.app_context():
        db.session.get(ApiKey, key_id).expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        db.session.commit()
        with pytest.raises(PeopleError):
            create_api_key(db.session, db.session.get(ApiKey, key_id).tenant, "past",
                           expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
        db.session.rollback()
    refused = client.get("/api/v1/services/", headers=auth)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "key_expired"
    assert "Set-Cookie" not in refused.headers


def test_another_business_ids_are_404(app, make_tenant, pinned_now):
    pinned_now("2027-01-01T00:00:00Z")
    a, b = make_tenant(), make_tenant()
    _, key_a = _key(app, a)
    _, key_b = _key(app, b)
    client = _client(app)
    booked = client.post("/api/v1/appointments/", headers=key_b, json={
        "service": "visit", "start": "2027-01-11T08:00:00Z", "customer": {"name": "Eve", "email": "e@example.com"}})
    assert booked.status_code == 201
    ident = booked.get_json()["result"]["id"]
    for method, path in (("GET", f"/api/v1/appointments/{ident}"), ("POST", f"/api/v1/appointments/{ident}/cancel"),
                         ("POST", f"/api/v1/appointments/{ident}/no-show")):
        answer = client.open(path, method=method, headers=key_a, json={})
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found", path
    assert client.get(f"/api/v1/appointments/{ident}", headers=key_b).get_json()["result"]["status"] == "confirmed"


def test_rate_limit_per_key_answers_429_with_retry_after(app, make_tenant, monkeypatch):
    slug = make_tenant()
    _, auth = _key(app, slug)
    _, other = _key(app, slug)
    monkeypatch.setitem(app.config, "API_RATE_PLANS", {"standard": "3/minute"})
    client = _client(app)
    for remaining in ("2", "1", "0"):
        ok = client.get("/api/v1/services/", headers=auth)
        assert ok.status_code == 200 and ok.headers["RateLimit-Remaining"] == remaining
        assert ok.headers["RateLimit-Limit"] == "3"
    refused = client.get("/api/v1/services/", headers=auth)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited" and refused.get_json()["error"]["field"] is None
    assert 0 < int(refused.headers["Retry-After"]) <= 60 and refused.headers["RateLimit-Remaining"] == "0"
    # Another key of the same business, from the same address, has its own budget.
    assert client.get("/api/v1/services/", headers=other).status_code == 200
    # The counters live in Redis (shared by every worker process), not in this process.
    from app.queueing import redis_connection

    with app.app_context():
        assert any(b"upz-rl" in k for k in redis_connection().scan_iter(match="*upz-rl*", count=1000))


def test_rate_limit_per_ip_and_public_bookings(app, make_tenant, monkeypatch):
    slug = make_tenant()
    _, auth = _key(app, slug)
    monkeypatch.setitem(app.config, "API_RATE_LIMIT_PER_IP", "2/minute")
    client = _client(app)
    assert [client.get("/api/v1/services/", headers=auth).status_code for _ in range(3)] == [200, 200, 429]
    assert _client(app).get("/api/v1/services/", headers=auth).status_code == 200  # another address
    monkeypatch.setitem(app.config, "PUBLIC_BOOKING_RATE_LIMIT_PER_IP", "1/minute")
    visitor = _client(app)
    body = {"service": "visit", "start": "2030-01-07T08:00:00Z", "customer": {"name": "V", "email": "v@example.com"}}
    first = visitor.post(f"/api/v1/public/{slug}/bookings", json=body)
    assert first.status_code != 429
    second = visitor.post(f"/api/v1/public/{slug}/bookings", json=body)
    assert second.status_code == 429 and second.headers["Retry-After"]
    assert second.get_json()["error"]["code"] == "rate_limited"
    # Reading the catalogue is limited separately (PUBLIC_RATE_LIMIT_PER_IP), so it still answers.
    assert visitor.get(f"/api/v1/public/{slug}/services").status_code == 200


def test_keys_on_different_plans_get_different_limits(app, make_tenant, monkeypatch):
    from app.extensions import db
    from app.models.public import ApiKey
    from app.services.people import PeopleError, set_api_key_plan

    monkeypatch.setitem(app.config, "API_RATE_PLANS", {"standard": "2/minute", "high": "4/minute", "tiny": "1/minute"})
    monkeypatch.setitem(app.config, "API_RATE_PLAN_DEFAULT", "standard")
    slug = make_tenant()
    plain_id, plain = _key(app, slug)                  # no plan: the default plan
    high_id, high = _key(app, slug, rate_plan="high")
    assert _row(app, plain_id).rate_plan is None and _row(app, high_id).rate_plan == "high"
    client = _client(app)

    def run(auth, n):
        answers = [client.get("/api/v1/services/", headers=auth) for _ in range(n)]
        return [a.status_code for a in answers], answers

    codes, answers = run(plain, 3)
    assert codes == [200, 200, 429] and answers[0].headers["RateLimit-Limit"] == "2"
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    codes, answers = run(high, 5)
    assert codes == [200, 200, 200, 200, 429] and answers[0].headers["RateLimit-Limit"] == "4"
    assert answers[-1].get_json()["error"]["code"] == "rate_limited"

    # Moving a key to another plan applies from its next request; an unknown plan is refused, nothing written.
    with app.app_context():
        set_api_key_plan(db.session, db.session.get(ApiKey, high_id), "tiny")
        db.session.commit()
        with pytest.raises(PeopleError):
            set_api_key_plan(db.session, db.session.get(ApiKey, high_id), "platinum")
        db.session.rollback()
    assert _row(app, high_id).rate_plan == "tiny"
    codes, answers = run(high, 2)
    assert codes == [200, 429] and answers[0].headers["RateLimit-Limit"] == "1"
    # The default plan moves every key without a plan of its own.
    monkeypatch.setitem(app.config, "API_RATE_PLAN_DEFAULT", "high")
    assert client.get("/api/v1/services/", headers=plain).headers["RateLimit-Limit"] == "4"


def test_unknown_plan_at_creation_and_bad_plan_tables_are_refused(app, make_tenant):
    from app.extensions import db
    from app.models.public import ApiKey
    from app.ratelimit import check_plans
    from app.services.people import PeopleError

    slug = make_tenant()
    with pytest.raises(PeopleError) as refused:
        _key(app, slug, rate_plan="platinum")
    assert refused.value.field == "rate_plan"
    with app.app_context():
        db.session.rollback()
        assert db.session.scalar(select(ApiKey).where(ApiKey.name == "k", ApiKey.rate_plan == "platinum")) is None
    base = {"API_RATE_LIMIT_PER_KEY": "600/minute"}
    check_plans({**base, "API_RATE_PLANS": '{"high": "3000/minute"}'})  # standard comes from API_RATE_LIMIT_PER_KEY
    for bad in ('{"high": "lots"}', "[1, 2]", "{not json", '{"high": 5}'):
        with pytest.raises(RuntimeError):
            check_plans({**base, "API_RATE_PLANS": bad})
    with pytest.raises(RuntimeError):
        check_plans({**base, "API_RATE_PLANS": "{}", "API_RATE_PLAN_DEFAULT": "gold"})
    # An empty per-key figure (keys without a plan unlimited per key, as before plans) still starts.
    check_plans({"API_RATE_LIMIT_PER_KEY": "", "API_RATE_PLANS": '{"high": "3000/minute"}'})
