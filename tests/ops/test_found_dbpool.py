"""Pooled connections are pinged before use only after sitting idle (app.dbpool)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, text

from app.dbpool import ping_when_idle


@pytest.fixture()
def database_url(services):
    return services[0]


def _one_connection_engine(url: str, idle_seconds: float):
    engine = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    ping_when_idle(engine, idle_seconds)
    return engine


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def _terminate(url: str, pid: int) -> None:
    killer = create_engine(url, poolclass=None)
    with killer.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        # Wait until the server has really let it go.
        conn.execute(text("SELECT pg_sleep(0.2)"))
    killer.dispose()


def test_an_idle_connection_that_died_is_replaced_before_the_request_sees_it(database_url):
    engine = _one_connection_engine(database_url, idle_seconds=0)
    try:
        first = _backend_pid(engine)
        _terminate(database_url, first)
        second = _backend_pid(engine)  # no error: the ping failed and the pool reconnected
        assert second != first
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(database_url):
    engine = _one_connection_engine(database_url, idle_seconds=3600)
    try:
        first = _backend_pid(engine)
        _terminate(database_url, first)
        # Not pinged, so the dead connection reaches the statement; the pool is then renewed.
        with pytest.raises(exc.OperationalError):
            _backend_pid(engine)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_the_app_pings_idle_connections_instead_of_every_checkout(app):
    from app.extensions import db

    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is False
    with app.app_context():
        names = {listener.__name__ for listener in db.engine.pool.dispatch.checkout}
    assert "_ping_if_idle" in names
