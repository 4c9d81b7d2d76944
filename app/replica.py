"""Read-only sessions on the streaming replica (DATABASE_REPLICA_URL), with the primary as fallback.

Work that may be a little stale (availability reads, dashboard figures) opens
`read_session(schema)`. It is a session on the replica while the replica is up
and less than REPLICA_MAX_LAG_SECONDS behind, else on the primary; the check
costs one small query per process and second. A replica that has applied
everything it received counts as current even when the primary is idle (no
new transactions, so `pg_last_xact_replay_timestamp()` grows old).

Writes never go here: a session from read_session is rolled back when the block ends.
Behind a replica, a customer's own booking may be missing from an availability
answer for up to the lag; the booking itself is checked on the primary.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Iterator

from flask import current_app
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.tenancy import TENANT_INFO_KEY
from app.uow import discard

log = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 1.0
# Seconds behind the primary; the replica answers "not in recovery" once promoted (then 0).
LAG_SQL = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver)"
    "  AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9) END"
)

_engines: dict[str, Engine] = {}
_state: dict[str, tuple[float, bool]] = {}  # url -> (checked at, usable)
_lock = threading.Lock()


def replica_engine(url: str) -> Engine:
    """One engine per replica URL and process (same pool options as the primary's)."""
    from app import engine_options
    from app.dbpool import ping_when_idle

    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(url, **engine_options(current_app.config))
            ping_when_idle(engine, current_app.config.get("DB_IDLE_PING_SECONDS", 10))
            _engines[url] = engine
    return engine


def replica_lag(engine: Engine) -> float:
    """Seconds the replica is behind (0 when it has applied all it received); raises when it is down."""
    with engine.connect() as conn:
        return float(conn.execute(LAG_SQL).scalar_one())


def usable_replica() -> Engine | None:
    """The replica's engine when it is configured, up and recent enough; None means "use the primary"."""
    url = current_app.config.get("DATABASE_REPLICA_URL")
    if not url:
        return None
    engine = replica_engine(url)
    now = time.monotonic()
    checked = _state.get(url)
    if checked is not None and now - checked[0] < CHECK_EVERY_SECONDS:
        return engine if checked[1] else None
    limit = float(current_app.config.get("REPLICA_MAX_LAG_SECONDS", 5))
    try:
        lag = replica_lag(engine)
        usable = lag <= limit
        if not usable:
            log.warning("replica %.1f s behind (limit %.1f s): reads go to the primary", lag, limit)
    except Exception as exc:  # noqa: BLE001 - a replica that is down means "read from the primary"
        log.warning("replica unreachable (%s): reads go to the primary", exc.__class__.__name__)
        engine.dispose()
        usable = False
    _state[url] = (now, usable)
    return engine if usable else None


@contextlib.contextmanager
def read_session(schema: str | None = None) -> Iterator[Session]:
    """A read-only session routed to `schema` (or public): on the replica when usable, else on the primary."""
    from app.extensions import db

    engine = usable_replica() or db.engine
    session = Session(engine, expire_on_commit=False, info={TENANT_INFO_KEY: schema} if schema else {})
    try:
        yield session
    finally:
        discard(session)
        session.close()


def reset() -> None:
    """Forget engines and lag checks (tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _state.clear()
