"""Change notifications from calendar providers, under /hooks/calendar/ (no login, no CSRF).

Google (`events.watch` channels): the channel id must be one we opened and the
`X-Goog-Channel-Token` must match; "sync" (the channel's first message) is only
acknowledged, "exists" / "not_exists" queue an incremental pull.
Microsoft Graph (subscriptions): a `validationToken` is echoed as text/plain at
once; a notification counts only with a known subscription id and its clientState.
Unknown channels are refused (404 / 403). Every call is idempotent: it only queues
a pull, and pulls are incremental.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request

from app.extensions import db
from app.tenancy import NoTenant, tenant_session

log = logging.getLogger(__name__)
bp = Blueprint("calendar_hooks", __name__, url_prefix="/hooks/calendar")


def _error(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message, "field": None}})
    response.status_code = status
    return response


def _queue_pull(slug: str, connection_id: int) -> None:
    from app.jobs.calendar_sync import enqueue_pull

    try:
        enqueue_pull(slug, connection_id)
    except Exception as exc:  # noqa: BLE001 - Redis down: the periodic pull still comes
        log.warning("calendar pull for %s/%s not queued: %s", slug, connection_id, exc)


@bp.post("/google/<slug>")
def google(slug: str):
    """A Google push notification for one of our watch channels."""
    from app.services.calendar_sync import connection_for_channel

    channel_id = request.headers.get("X-Goog-Channel-ID", "")
    state = request.headers.get("X-Goog-Resource-State", "")
    token = request.headers.get("X-Goog-Channel-Token", "")
    if not channel_id or not state:
        return _error(400, "bad_request", "X-Goog-Channel-ID and X-Goog-Resource-State are required")
    try:
        with tenant_session(db.engine, slug) as (session, _ref):
            found = connection_for_channel(session, "google", channel_id)
            if found is None:
                return _error(404, "not_found", "unknown channel")
            conn, item = found
            if not hmac.compare_digest(item.get("token") or "", token):
                return _error(403, "bad_token", "the channel token does not match")
            connection_id = conn.id
    except NoTenant:
        return _error(404, "not_found", "unknown channel")
    if state != "sync":
        _queue_pull(slug, connection_id)
    return Response(status=200)


@bp.post("/microsoft/<slug>")
def microsoft(slug: str):
    """Graph: the subscription validation handshake, or change notifications."""
    from app.services.calendar_sync import connection_for_channel

    token = request.args.get("validationToken")
    if token is not None:
        return Response(token, status=200, mimetype="text/plain")
    body = request.get_json(silent=True) or {}
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return _error(400, "bad_request", "a Graph change notification is expected")
    accepted = set()
    try:
        with tenant_session(db.engine, slug) as (session, _ref):
            for item in items:
                found = connection_for_channel(session, "microsoft", str(item.get("subscriptionId") or ""))
                if found is None:
                    continue
                conn, sub = found
                if hmac.compare_digest(sub.get("client_state") or "", str(item.get("clientState") or "")):
                    accepted.add(conn.id)
    except NoTenant:
        return _error(404, "not_found", "unknown subscription")
    if not accepted:
        return _error(403, "unknown_subscription", "no known subscription with a matching clientState")
    for connection_id in sorted(accepted):
        _queue_pull(slug, connection_id)
    return Response(status=202)


@bp.get("/feed/<slug>/<token>.ics")
def feed(slug: str, token: str):
    """A private subscription feed (webcal): a staff member's or a customer's appointments."""
    import datetime as dt

    from app.services.calendar_sync import feed_ics

    try:
        with tenant_session(db.engine, slug) as (session, _ref):
            body = feed_ics(session, slug, token, dt.datetime.now(dt.timezone.utc))
    except NoTenant:
        body = None
    if body is None:
        return _error(404, "not_found", "unknown or revoked feed")
    response = Response(body, mimetype="text/calendar")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
