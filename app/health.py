"""Health endpoints for load balancers and orchestrators.

- GET /health/live: the process answers (no dependency checked); a failing live check means "restart me".
- GET /health/ready: this node can serve: the database primary answers (a writable
  connection: a node whose DATABASE_URL still reaches only a standby is not ready), Redis
  answers, and the schemas are at the code's migration heads (checked at most every
  HEALTH_MIGRATIONS_CACHE_SECONDS, one query). 503 with the failing part named otherwise;
  HAProxy takes a node out of rotation on it.
- GET /health: database and Redis (kept for existing monitors).
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db
from app.queueing import redis_connection
from app.uow import discard

bp = Blueprint("health", __name__)

_migrations: dict[str, tuple[float, str]] = {}  # database url -> (checked at, "ok" or the problem)
_migrations_lock = threading.Lock()


@bp.get("/health")
def health():
    body = {"status": "ok", "database": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy"; say which part
        body["database"] = f"error: {exc.__class__.__name__}"
    discard()
    try:
        redis_connection().ping()
    except Exception as exc:
        body["redis"] = f"error: {exc.__class__.__name__}"
    healthy = body["database"] == "ok" and body["redis"] == "ok"
    if not healthy:
        body["status"] = "unavailable"
    return jsonify(body), 200 if healthy else 503


@bp.get("/health/live")
def live():
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
def ready():
    body = {"status": "ok", "database": "ok", "redis": "ok", "migrations": "ok"}
    try:
        in_recovery = db.session.execute(text("SELECT pg_is_in_recovery()")).scalar()
        if in_recovery:
            body["database"] = "error: connected to a standby"
        else:
            body["migrations"] = _migrations_state()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; say which part
        body["database"] = f"error: {exc.__class__.__name__}"
        body["migrations"] = "unknown"
    discard()
    try:
        redis_connection().ping()
    except Exception as exc:  # noqa: BLE001
        body["redis"] = f"error: {exc.__class__.__name__}"
    if any(body[part] != "ok" for part in ("database", "redis", "migrations")):
        body["status"] = "unavailable"
        return jsonify(body), 503
    return jsonify(body)


def _migrations_state() -> str:
    """"ok", or which schemas are behind the code; remembered for HEALTH_MIGRATIONS_CACHE_SECONDS."""
    key = str(db.engine.url)
    ttl = float(current_app.config.get("HEALTH_MIGRATIONS_CACHE_SECONDS", 30))
    now = time.monotonic()
    hit = _migrations.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    from tenants.migrate import head_revision

    public_heads, tenant_head = head_revision("public"), head_revision("tenant")
    row = db.session.execute(text(
        "SELECT (SELECT string_agg(version_num, '+' ORDER BY version_num) FROM public.alembic_version),"
        " (SELECT count(*) FROM public.tenant WHERE status = 'active' AND schema_version IS DISTINCT FROM :head)"
    ), {"head": tenant_head}).one()
    problems = []
    if row[0] != public_heads:
        problems.append(f"public schema at {row[0]}, code at {public_heads}")
    if row[1]:
        problems.append(f"{row[1]} tenant schema(s) behind {tenant_head}")
    state = "; ".join(problems) or "ok"
    with _migrations_lock:
        _migrations[key] = (now, state)
    return state
