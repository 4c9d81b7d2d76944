"""Settings for the production topology: multi-host DATABASE_URL, transaction pooler, Redis Sentinel,
the replica for read-only work (with fallback), and the health endpoints a proxy uses."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://u@a:5432,b:5433/db",
     "postgresql+psycopg://u@/db?host=a:5432&host=b:5433&target_session_attrs=read-write"),
    ("postgresql://u:p@a,b/db?sslmode=require",
     "postgresql+psycopg://u:p@/db?sslmode=require&host=a&host=b&target_session_attrs=read-write"),
    ("postgresql://u@/db?host=a,b&port=1,2", "postgresql+psycopg://u@/db?host=a,b&port=1,2&target_session_attrs=read-write"),
    ("postgresql://u@a:1,b:2/db?target_session_attrs=primary",
     "postgresql+psycopg://u@/db?target_session_attrs=primary&host=a:1&host=b:2"),
    ("postgresql://u@db:5432/app", "postgresql+psycopg://u@db:5432/app"),
])
def test_multi_host_urls_become_libpq_host_lists(given, used):
    from config import database_url

    assert database_url(given) == used


def test_multi_host_url_skips_a_dead_host_and_finds_the_server(services):
    from config import database_url

    url = make_url(services[0])
    if url.host in (None, "") or url.query.get("host"):
        pytest.skip("the test database is reached over a unix socket")
    plain = f"postgresql://{url.username or 'postgres'}@127.0.0.1:1,{url.host}:{url.port or 5432}/{url.database}"
    engine = create_engine(database_url(plain))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
    finally:
        engine.dispose()


def test_transaction_pooler_turns_prepared_statements_off():
    from app import engine_options

    pooled = engine_options({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 3}, "DATABASE_POOLER": "transaction"})
    assert pooled == {"pool_size": 3, "connect_args": {"prepare_threshold": None}}
    assert "connect_args" not in engine_options({"SQLALCHEMY_ENGINE_OPTIONS": {}, "DATABASE_POOLER": ""})


def test_rq_settings_follow_the_sentinels(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379, 10.0.0.2:26380")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jobs")
    import app.rq_settings as settings

    settings = importlib.reload(settings)
    assert settings.REDIS_URL is None
    assert settings.SENTINEL["INSTANCES"] == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert settings.SENTINEL["MASTER_NAME"] == "jobs"
    monkeypatch.delenv("REDIS_SENTINELS")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    settings = importlib.reload(settings)
    assert settings.REDIS_URL == "redis://r:6379/0"


def test_bad_sentinel_list_is_refused():
    from app.queueing import parse_sentinels

    with pytest.raises(ValueError):
        parse_sentinels("redis-a,redis-b")


def test_health_live_and_ready(client):
    assert client.get("/health/live").get_json() == {"status": "ok"}
    response = client.get("/health/ready")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok", "migrations": "ok"}


def test_ready_is_503_when_redis_is_gone(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("error")
    assert client.get("/health/live").status_code == 200


def test_ready_is_503_while_a_tenant_schema_is_behind(app, client, make_tenant, monkeypatch):
    from app.extensions import db
    from app.health import _migrations

    slug = make_tenant()
    monkeypatch.setitem(app.config, "HEALTH_MIGRATIONS_CACHE_SECONDS", 0)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("UPDATE tenant SET schema_version = 't0001' WHERE slug = :s"), {"s": slug})
    try:
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert "1 tenant schema(s) behind" in response.get_json()["migrations"]
    finally:
        from tenants.migrate import head_revision

        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text("UPDATE tenant SET schema_version = :v WHERE slug = :s"),
                         {"v": head_revision("tenant"), "s": slug})
        _migrations.clear()
    assert client.get("/health/ready").status_code == 200


def _availability(client, slug):
    response = client.get(f"/api/v1/public/{slug}/availability",
                          query_string={"service": "visit", "from": "2027-01-11", "to": "2027-01-11",
                                        "timezone": "Europe/Berlin"})
    assert response.status_code == 200, response.get_json()
    return [s["start"] for s in response.get_json()["slots"]]


def test_availability_reads_from_the_replica_and_falls_back_when_it_is_down(app, client, make_tenant, pinned_now,
                                                                            services, monkeypatch):
    from app import replica

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    on_primary = _availability(client, slug)
    assert on_primary
    # A "replica" that is really the primary (not in recovery: lag 0) is used.
    monkeypatch.setitem(app.config, "DATABASE_REPLICA_URL", services[0])
    replica.reset()
    assert _availability(client, slug) == on_primary
    with app.app_context():
        assert replica.usable_replica() is not None
    # A replica that is down: the primary answers, nothing fails.
    monkeypatch.setitem(app.config, "DATABASE_REPLICA_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    replica.reset()
    assert _availability(client, slug) == on_primary
    with app.app_context():
        assert replica.usable_replica() is None
    replica.reset()


def test_relay_listens_on_the_direct_url(monkeypatch):
    from sqlalchemy import create_engine as make

    from app.jobs.relay import direct_engine

    work = make("postgresql+psycopg://u@pgbouncer:6432/app")
    monkeypatch.delenv("DATABASE_DIRECT_URL", raising=False)
    assert direct_engine(work) is work
    monkeypatch.setenv("DATABASE_DIRECT_URL", "postgresql://u@db-a:5432,db-b:5432/app")
    direct = direct_engine(work)
    assert direct is not work and direct.url.query["target_session_attrs"] == "read-write"
