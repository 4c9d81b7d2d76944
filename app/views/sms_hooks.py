"""Provider callbacks under /hooks/: SMS delivery status and inbound STOP/START.

Both check the provider's signature (X-Twilio-Signature, HMAC-SHA1 with the auth
token over the URL we gave it and the form); without SMS_AUTH_TOKEN they refuse every
request (403) unless SMS_HOOKS_ALLOW_UNSIGNED is set (development only), and both
name the tenant in the path, so one callback can only touch its tenant's rows.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request

from app.extensions import db
from app.models.notifications import NotificationDelivery
from app.notifications.sms import (
    ERROR_UNSUBSCRIBED,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    InvalidPhone,
    is_valid_signature,
    normalize_phone,
    parse_status_callback,
)
from app.services import messaging
from app.services.notify import Settings
from app.tenancy import NoTenant, tenant_session

bp = Blueprint("notification_hooks", __name__, url_prefix="/hooks")

# Provider status -> delivery log status; others (queued, sending, accepted) change nothing.
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "delivered", "undelivered": "bounced",
              "failed": "failed", "canceled": "failed"}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _error(status: int, code: str, message: str, field: str | None = None):
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    return response


def _check_signature() -> None:
    token = current_app.config.get("SMS_AUTH_TOKEN")
    if not token:
        # Unsigned callbacks could set any customer's opt-out or any message's status:
        # refused unless explicitly allowed for development.
        if current_app.config.get("SMS_HOOKS_ALLOW_UNSIGNED"):
            return
        abort(_error(403, "not_configured", "SMS callbacks are refused: SMS_AUTH_TOKEN is not set"))
    # The provider signs the URL we handed it, which is built from PUBLIC_URL
    # (a proxy in front of us may change scheme and host of request.url).
    url = Settings.from_config(current_app.config).public_url + request.full_path.rstrip("?")
    form = request.form.to_dict()
    if not is_valid_signature(token, url, form, request.headers.get("X-Twilio-Signature")):
        abort(_error(403, "bad_signature", "the request signature does not match"))


@bp.post("/sms/status/<slug>")
def sms_status(slug: str):
    """Record a delivery status callback."""
    _check_signature()
    try:
        update_ = parse_status_callback(request.form)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    status = STATUS_MAP.get(update_.status)
    try:
        with tenant_session(db.engine, slug) as (session, ref):
            row = session.query(NotificationDelivery).filter_by(provider_id=update_.sid, channel="sms") \
                .with_for_update().one_or_none()
            if row is None:
                return _error(404, "not_found", f"no message {update_.sid}")
            # A late "sent" must not overwrite "delivered".
            if status and not (status == "sent" and row.status in ("delivered", "bounced", "failed")):
                row.status = status
            if update_.error_code:
                row.last_error = f"provider error {update_.error_code}"
                if update_.error_code == ERROR_UNSUBSCRIBED:
                    messaging.set_sms_opt_out(session, ref.slug, row.recipient)
    except NoTenant:
        return _error(404, "not_found", f"unknown tenant {slug!r}")
    return Response(status=204)


@bp.post("/sms/inbound/<slug>")
def sms_inbound(slug: str):
    """Honour STOP (and START) replies: the customer's SMS opt-out for this tenant."""
    _check_signature()
    sender, body = request.form.get("From", ""), (request.form.get("Body") or "").strip().upper()
    if not sender:
        return _error(400, "bad_request", "From is required", "From")
    try:
        phone = normalize_phone(sender, None)
    except InvalidPhone as exc:
        return _error(400, "bad_request", str(exc), "From")
    if body in OPT_OUT_KEYWORDS or body in OPT_IN_KEYWORDS:
        try:
            with tenant_session(db.engine, slug) as (session, ref):
                messaging.set_sms_opt_out(session, ref.slug, phone, body in OPT_OUT_KEYWORDS)
        except NoTenant:
            return _error(404, "not_found", f"unknown tenant {slug!r}")
    return Response(EMPTY_TWIML, mimetype="application/xml")
