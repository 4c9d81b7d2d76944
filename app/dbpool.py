"""Check a pooled database connection before use only when it sat idle.

SQLAlchemy's `pool_pre_ping` sends a round trip on every checkout, which on
the booking path is one statement in eight, paid on every request. A
connection that was in use a moment ago is alive; the ones that die are idle
ones (a PostgreSQL restart, a proxy's or firewall's idle time-out). So a
connection is pinged at checkout only if it has been back in the pool for at
least DB_IDLE_PING_SECONDS; a failed ping makes the pool drop it and hand out
a fresh one (SQLAlchemy's DisconnectionError protocol), so the request never
sees it. A connection that dies while busy fails that statement, and
SQLAlchemy then renews the whole pool, as it does with pre-ping too.
"""

from __future__ import annotations

import time

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

_RETURNED_AT = "upzento_returned_at"


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Install the checkin/checkout listeners on `engine`'s pool."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection, record) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        # A connection opened for this checkout has no mark: it was just made.
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"idle connection failed its ping: {error}") from error
        if not alive:
            raise exc.DisconnectionError("idle connection failed its ping")
