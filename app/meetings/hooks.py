"""Zoom's webhook endpoint (`POST /hooks/zoom`): verified, answered fast, idempotent.

- `x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{x-zm-request-timestamp}:{body}")>`,
  timestamp within 5 minutes, else 401;
- `endpoint.url_validation` is answered with `plainToken` and
  `encryptedToken = hex HMAC-SHA256(secret token, plainToken)`;
- every other event is recorded once in `inbound_webhook_event` (a repeat is answered 200
  and ignored); `meeting.*` events about a meeting we made reach its appointment through
  `public.provider_meeting` (one look-up, not a search of every business):
  `meeting.updated` with another start or duration: the appointment decides the time, so
  the meeting job moves the meeting back; `meeting.deleted`: the appointment's meeting is
  shown failed ("deleted in Zoom") on the Meetings page; `meeting.started` / `meeting.ended`:
  recorded in its `meeting_details`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.models.webhooks import InboundWebhookEvent
from app.services import meetings
from app.tenancy import tenant_session
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

    resync: list[tuple[str, str]] = []

    def record() -> bool:
        fresh = db.session.execute(insert(InboundWebhookEvent).values(source="zoom", event_key=key)
                                   .on_conflict_do_nothing().returning(InboundWebhookEvent.event_key)).scalar()
        if fresh is not None and name in meetings.ZOOM_EVENTS and obj.get("id"):
            resync.extend(_apply(name, obj))
        return fresh is not None

    # A replay inserts nothing, so its unit writes nothing.
    if not run_unit(record):
        return jsonify({"status": "duplicate"})
    for slug, appointment_id in resync:
        _enqueue_sync(slug, appointment_id)
    return jsonify({"status": "ok"})


def _apply(name: str, obj: dict) -> list[tuple[str, str]]:
    """The event, applied in the schema of the business whose meeting it is (committed before
    the event's record, so a failure here leaves it unrecorded and Zoom's retry applies it)."""
    import datetime as dt

    owner = meetings.meeting_owner(db.session, "zoom", str(obj["id"]))
    if owner is None:
        return []  # not a meeting we made (another app on the account), or its business is gone
    slug, appointment_id = owner
    with tenant_session(db.engine, slug) as (session, _ref):
        moved = meetings.zoom_event(session, appointment_id, name, obj, dt.datetime.now(dt.timezone.utc))
        if name == "meeting.deleted":
            meetings.unindex_meeting(db.session, "zoom", str(obj["id"]))
    if moved:
        log.info("zoom meeting %s of %s/%s was changed in Zoom: moving it back", obj["id"], slug, appointment_id)
    return [(slug, appointment_id)] if moved else []


def _enqueue_sync(slug: str, appointment_id: str) -> None:
    from redis.exceptions import RedisError

    from app.jobs.meetings import QUEUE, SYNC_JOB
    from app.queueing import queue

    try:
        queue(QUEUE).enqueue(SYNC_JOB, slug, appointment_id, result_ttl=600, failure_ttl=7 * 86400)
    except (RedisError, OSError) as exc:  # the meeting sweep finds it (details lost "synced")
        log.warning("zoom meeting of %s/%s: cannot queue the sync (%s)", slug, appointment_id, exc)
