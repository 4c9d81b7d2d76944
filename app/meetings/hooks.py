"""Zoom's webhook endpoint (`POST /hooks/zoom`): verified, answered fast, idempotent.

- `x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{x-zm-request-timestamp}:{body}")>`,
  timestamp within 5 minutes, else 401;
- `endpoint.url_validation` is answered with `plainToken` and
  `encryptedToken = hex HMAC-SHA256(secret token, plainToken)`;
- every other event is recorded once in `inbound_webhook_event` (a repeat is answered 200
  and ignored); `meeting.deleted` of a meeting we made marks that appointment's meeting
  failed ("deleted in Zoom") so the admin's Meetings page shows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.models.webhooks import InboundWebhookEvent
from app.uow import run_unit

log = logging.getLogger(__name__)
bp = Blueprint("zoom_hooks", __name__, url_prefix="/hooks")
MAX_SKEW_SECONDS = 300


def _error(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message, "field": None}}), status


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, body: bytes, signature: str | None, now: float | None = None) -> bool:
    """True when Zoom's v0 signature over the raw body matches and the timestamp is recent."""
    if not (secret and timestamp and signature):
        return False
    try:
        skew = abs((now or time.time()) - int(timestamp))
    except ValueError:
        return False
    if skew > MAX_SKEW_SECONDS:
        return False
    expected = "v0=" + _mac(secret, f"v0:{timestamp}:{body.decode('utf-8', 'replace')}")
    return hmac.compare_digest(expected, signature)


@bp.post("/zoom")
def zoom_webhook():
    secret = current_app.config.get("ZOOM_WEBHOOK_SECRET_TOKEN")
    if not secret:
        return _error(404, "not_found", "Zoom webhooks are not configured")
    body = request.get_data()
    if not verify(secret, request.headers.get("x-zm-request-timestamp"), body, request.headers.get("x-zm-signature")):
        return _error(401, "bad_signature", "the request signature does not match")
    try:
        event = json.loads(body)
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    name = event.get("event")
    payload = event.get("payload") or {}
    if name == "endpoint.url_validation":
        plain = str(payload.get("plainToken") or "")
        return jsonify({"plainToken": plain, "encryptedToken": _mac(secret, plain)})
    obj = payload.get("object") or {}
    key = f"{name}:{obj.get('id') or obj.get('uuid') or ''}:{event.get('event_ts') or ''}"[:200]

    def record() -> bool:
        fresh = db.session.execute(insert(InboundWebhookEvent).values(source="zoom", event_key=key)
                                   .on_conflict_do_nothing().returning(InboundWebhookEvent.event_key)).scalar()
        if fresh is not None and name == "meeting.deleted" and obj.get("id"):
            _mark_deleted(str(obj["id"]))
        return fresh is not None

    # A replay inserts nothing, so its unit writes nothing.
    if not run_unit(record):
        return jsonify({"status": "duplicate"})
    return jsonify({"status": "ok"})


def _mark_deleted(meeting_id: str) -> None:
    """The host deleted one of our meetings in Zoom: show it as failed on the appointment."""
    from app.models.public import Tenant

    schemas = db.session.scalars(select(Tenant.schema_name).where(Tenant.status == Tenant.STATUS_ACTIVE)).all()
    for schema in schemas:
        exists = db.session.execute(text("SELECT to_regclass(:t)"), {"t": f'"{schema}".appointment'}).scalar()
        if not exists:
            continue
        db.session.execute(text(
            f'UPDATE "{schema}".appointment SET meeting_status = \'failed\', '
            "meeting_error = 'the meeting was deleted in Zoom' "
            "WHERE meeting_provider = 'zoom' AND meeting_id = :mid AND status <> 'cancelled'"), {"mid": meeting_id})
