"""GET /health: is the app able to reach its database and Redis?"""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from app.extensions import db
from app.queueing import redis_connection
from app.uow import discard

bp = Blueprint("health", __name__)


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
