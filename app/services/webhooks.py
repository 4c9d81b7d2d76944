"""Webhook endpoints and the delivery log: create, rotate, plan deliveries of events, replay, test.

Services flush and never commit (app.uow). Sending happens in app/jobs/webhooks.py.

Payloads are versioned JSON (`"version": 1`), the same envelope for every event:

    {"id": <webhook-id>, "type": "appointment.booked", "version": 1,
     "timestamp": "<event time, UTC ISO>", "tenant": "<slug>", "data": {...}}

README "Webhooks" documents `data` per event. A new field is added within a
version; a removed or changed field makes version 2 (sent only to endpoints that
ask for it).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets as _secrets
import uuid
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, joinedload

from app import crypto
from app.errors import NotFound, ValidationError
from app.models import tenant as m
from app.models.public import Tenant
from app.models.webhooks import (SCOPE_AGENCY, SCOPE_TENANT, AgencyWebhookEndpoint, WebhookDelivery,
                                 WebhookEndpoint)
from app.services import events
from app.webhooks import sender, signing

UTC = dt.timezone.utc
PAYLOAD_VERSION = 1
TEST_EVENT = "webhook.test"
# Events an endpoint may subscribe to.
EVENT_TYPES = (*events.ALL, *events.CUSTOMER_EVENTS)
ROTATION_OVERLAP = dt.timedelta(hours=24)
RESPONSE_LOG_BYTES = 2048
Endpoint = WebhookEndpoint | AgencyWebhookEndpoint


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def parse_events(value: str | Iterable[str] | None) -> list[str]:
    """A clean event filter (empty = every event); raises ValidationError on an unknown name."""
    if value is None:
        return []
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v and v.strip()]
    unknown = [v for v in items if v not in EVENT_TYPES and v != "*"]
    if unknown:
        raise ValidationError(f"unknown event(s): {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})", "events")
    return [] if "*" in items else sorted(set(items))


def check_url(url: str, allow_private: bool) -> str:
    """The URL if it may be called (scheme, address); the check repeats at every delivery."""
    url = (url or "").strip()
    if not url:
        raise ValidationError("a URL is required", "url", code="required")
    if len(url) > 2000:
        raise ValidationError("the URL is too long (2000 characters at most)", "url")
    try:
        sender.resolve(url, allow_private)
    except sender.Refused as exc:
        raise ValidationError(f"this URL is refused: {exc}", "url") from None
    return url


@dataclass
class Created:
    endpoint: Endpoint
    secret: str  # shown once


def create_endpoint(session: Session, url: str, events_: str | Iterable[str] | None = None, *,
                    description: str | None = None, agency_id: int | None = None,
                    allow_private: bool = False) -> Created:
    """A new enabled endpoint of the session's business (or of `agency_id`); its secret is returned once."""
    url = check_url(url, allow_private)
    secret = signing.new_secret()
    fields = dict(uid="ep_" + _secrets.token_hex(10), url=url, events=parse_events(events_),
                  description=(description or "").strip()[:300] or None, enabled=True,
                  secret_enc=crypto.encrypt(secret), created_at=_now())
    endpoint: Endpoint = AgencyWebhookEndpoint(agency_id=agency_id, **fields) if agency_id else WebhookEndpoint(**fields)
    session.add(endpoint)
    session.flush()
    return Created(endpoint, secret)


def endpoints(session: Session, tenant: Tenant | None = None, *, agency_id: int | None = None,
              include_agency: bool = True) -> list[Endpoint]:
    """The business's endpoints and (with include_agency) its agency's."""
    found: list[Endpoint] = list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    agency = agency_id if agency_id is not None else (tenant.agency_id if tenant is not None else None)
    if include_agency and agency is not None:
        found += list(session.scalars(select(AgencyWebhookEndpoint).where(AgencyWebhookEndpoint.agency_id == agency)
                                      .order_by(AgencyWebhookEndpoint.id)))
    return found


def find_endpoint(session: Session, uid: str, agency_id: int | None) -> Endpoint:
    """The business's endpoint `uid`, or its agency's; NotFound otherwise (another agency's is not found)."""
    found = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.uid == uid))
    if found is None and agency_id is not None:
        found = session.scalar(select(AgencyWebhookEndpoint).where(
            AgencyWebhookEndpoint.uid == uid, AgencyWebhookEndpoint.agency_id == agency_id))
    if found is None:
        raise NotFound(f"unknown webhook endpoint {uid!r}", "endpoint")
    return found


def endpoint_by_ref(session: Session, scope: str, endpoint_id: int) -> Endpoint | None:
    cls = AgencyWebhookEndpoint if scope == SCOPE_AGENCY else WebhookEndpoint
    return session.get(cls, endpoint_id)


def update_endpoint(session: Session, endpoint: Endpoint, *, url: str | None = None, events_=None,
                    description: str | None = None, enabled: bool | None = None, allow_private: bool = False) -> None:
    """Change an endpoint; enabling clears the failing state so its pending deliveries go out again."""
    if url is not None:
        endpoint.url = check_url(url, allow_private)
    if events_ is not None:
        endpoint.events = parse_events(events_)
    if description is not None:
        endpoint.description = description.strip()[:300] or None
    if enabled is not None:
        endpoint.enabled = bool(enabled)
        if enabled:
            endpoint.failing_since = None
            endpoint.disabled_reason = None
    session.flush()


def rotate_secret(session: Session, endpoint: Endpoint, now: dt.datetime | None = None) -> str:
    """A new secret (returned once); the old one keeps signing beside it for 24 h."""
    now = now or _now()
    new = signing.new_secret()
    endpoint.old_secret_enc = endpoint.secret_enc
    endpoint.old_secret_until = now + ROTATION_OVERLAP
    endpoint.secret_enc = crypto.encrypt(new)
    session.flush()
    return new


def signing_secrets(endpoint: Endpoint, now: dt.datetime) -> list[str]:
    """Current secret first, then the previous one while its 24 h last."""
    found = [crypto.decrypt(endpoint.secret_enc)]
    if endpoint.old_secret_enc and endpoint.old_secret_until and endpoint.old_secret_until > now:
        found.append(crypto.decrypt(endpoint.old_secret_enc))
    return found


# -- payloads ------------------------------------------------------------------------------------


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def appointment_data(appt: m.Appointment) -> dict:
    """The `appointment` object of every appointment.* payload (schema in README "Webhooks")."""
    customer = appt.customer
    return {
        "id": str(appt.id),
        "status": appt.status,
        "start": iso(appt.start_at),
        "end": iso(appt.end_at),
        "timezone": appt.timezone,
        "service": {"key": appt.service.key, "name": appt.service.name} if appt.service else None,
        "staff": {"key": appt.staff.key, "name": appt.staff.name} if appt.staff else None,
        "location": {"key": appt.location.key, "name": appt.location.name} if appt.location else None,
        "customer": {"id": customer.id, "name": customer.name, "email": customer.email, "phone": customer.phone}
        if customer else None,
        "seats": appt.seats,
        "price": f"{appt.price:.2f}" if appt.price is not None else None,
        "currency": appt.currency,
        "source": appt.source,
        "series_id": str(appt.series_id) if appt.series_id else None,
        "sequence": appt.sequence,
        "meeting": {"provider": appt.meeting_provider, "join_url": appt.meeting_join_url,
                    "status": appt.meeting_status} if appt.meeting_status else None,
    }


# Fields of the outbox payload passed through as `data.change` (per event, documented).
CHANGE_FIELDS = {
    events.RESCHEDULED: ("previous_start", "previous_end", "previous_staff"),
    events.CANCELLED: ("reason", "by"),
    events.STATUS_CHANGED: ("from_status", "to_status"),
    events.NO_SHOW: (),
    events.BOOKED: (),
    events.MEETING_READY: (),
}


def customer_data(customer: m.Customer) -> dict:
    """The `customer` object of customer.created / .updated: contact details and language only
    (no consents, preferences, notes or appointments)."""
    return {"id": customer.id, "name": customer.name, "email": customer.email, "phone": customer.phone,
            "locale": customer.locale, "timezone": customer.timezone, "created_at": iso(customer.created_at)}


def event_data(session: Session, event: m.OutboxEvent, appointments: dict) -> dict | None:
    """`data` of one outbox event, None when its appointment (or customer) is gone."""
    payload = dict(event.payload or {})
    payload.pop("request_id", None)
    if event.event_type.startswith("appointment."):
        appt = appointments.get(str(event.aggregate_id))
        if appt is None:
            return None
        change = {k: payload.get(k) for k in CHANGE_FIELDS.get(event.event_type, ()) if k in payload}
        return {"appointment": appointment_data(appt), "change": change}
    if event.event_type in (events.CUSTOMER_CREATED, events.CUSTOMER_UPDATED):
        customer = session.get(m.Customer, int(event.aggregate_id))
        if customer is None:
            return None
        return {"customer": customer_data(customer), "change": {"fields": list(payload.get("fields") or [])}}
    if event.event_type == events.CUSTOMER_DELETED:
        return {"customer": {"id": payload.get("customer_id")}}
    if event.event_type == events.CUSTOMER_ERASED:
        # Ids only: the person is gone; receivers delete what they keep under these ids.
        return {"customer": {"id": payload.get("customer_id")},
                "appointment_ids": list(payload.get("appointment_ids") or [])}
    payload.pop("tenant", None)
    return payload


def envelope(msg_id: str, event_type: str, at: dt.datetime, tenant_slug: str, data: dict) -> str:
    """The exact JSON text sent (compact, keys in a fixed order)."""
    return json.dumps({"id": msg_id, "type": event_type, "version": PAYLOAD_VERSION, "timestamp": iso(at),
                       "tenant": tenant_slug, "data": data}, separators=(",", ":"), ensure_ascii=False)


def _load_appointments(session: Session, ids: Iterable[str]) -> dict:
    keys = set()
    for value in ids:
        try:
            keys.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    if not keys:
        return {}
    rows = session.scalars(select(m.Appointment).where(m.Appointment.id.in_(keys)).options(
        joinedload(m.Appointment.customer), joinedload(m.Appointment.service),
        joinedload(m.Appointment.staff), joinedload(m.Appointment.location))).unique().all()
    return {str(a.id): a for a in rows}


def plan_events(session: Session, tenant_slug: str, agency_id: int, outbox: list[m.OutboxEvent],
                now: dt.datetime | None = None) -> dict[tuple[str, int], int]:
    """Insert one delivery per (event, endpoint that hears it); returns new rows per (scope, endpoint id).

    The unique (endpoint, event) index makes a second run insert nothing.
    """
    now = now or _now()
    targets = [e for e in endpoints(session, agency_id=agency_id) if e.enabled]
    if not targets or not outbox:
        return {}
    hearing = {event.id: [e for e in targets if e.hears(event.event_type)] for event in outbox}
    wanted = [e for e in outbox if hearing[e.id]]
    if not wanted:
        return {}
    appointments = _load_appointments(session, [e.aggregate_id for e in wanted
                                                if e.event_type.startswith("appointment.")])
    rows = []
    for event in wanted:
        data = event_data(session, event, appointments)
        if data is None:
            continue
        at = event.created_at or now
        for endpoint in hearing[event.id]:
            msg_id = signing.new_msg_id()
            rows.append(dict(msg_id=msg_id, endpoint_scope=endpoint.scope, endpoint_id=endpoint.id,
                             event_type=event.event_type, event_id=event.id, event_at=at,
                             body=envelope(msg_id, event.event_type, at, tenant_slug, data), status="pending",
                             attempts=0, next_attempt_at=now, created_at=now, updated_at=now))
    if not rows:
        return {}
    inserted = session.execute(
        insert(WebhookDelivery).values(rows).on_conflict_do_nothing(
            index_elements=["endpoint_scope", "endpoint_id", "event_id"],
            index_where=text("event_id IS NOT NULL"))
        .returning(WebhookDelivery.endpoint_scope, WebhookDelivery.endpoint_id)).all()
    counts: dict[tuple[str, int], int] = {}
    for scope, endpoint_id in inserted:
        counts[(scope, endpoint_id)] = counts.get((scope, endpoint_id), 0) + 1
    return counts


def failing(session: Session, pairs) -> set[tuple[str, int]]:
    """Which of these (scope, endpoint id) are failing now (their drains may wait on timeouts)."""
    return {(e.scope, e.id) for e in (endpoint_by_ref(session, s, i) for s, i in pairs)
            if e is not None and e.failing_since is not None}


def test_delivery(session: Session, endpoint: Endpoint, tenant_slug: str, now: dt.datetime | None = None) -> WebhookDelivery:
    """A `webhook.test` delivery to one endpoint (sent by the webhook job like any other)."""
    now = now or _now()
    msg_id = signing.new_msg_id()
    row = WebhookDelivery(msg_id=msg_id, endpoint_scope=endpoint.scope, endpoint_id=endpoint.id,
                          event_type=TEST_EVENT, event_id=None, event_at=now,
                          body=envelope(msg_id, TEST_EVENT, now, tenant_slug,
                                        {"message": "This is a test event.", "endpoint": endpoint.uid}),
                          status="pending", attempts=0, next_attempt_at=now, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


# -- the log --------------------------------------------------------------------------------------


def deliveries(session: Session, *, endpoint: Endpoint | None = None, failed_only: bool = False,
               since: dt.datetime | None = None, limit: int = 100, before_id: int | None = None) -> list[WebhookDelivery]:
    """Newest first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if endpoint is not None:
        query = query.where(WebhookDelivery.endpoint_scope == endpoint.scope, WebhookDelivery.endpoint_id == endpoint.id)
    if failed_only:
        query = query.where(WebhookDelivery.status == "failed")
    if since is not None:
        query = query.where(WebhookDelivery.created_at >= since)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    return list(session.scalars(query))


def find_delivery(session: Session, delivery_id) -> WebhookDelivery:
    try:
        key = int(delivery_id)
    except (TypeError, ValueError):
        raise NotFound(f"unknown delivery {delivery_id!r}", "delivery") from None
    row = session.get(WebhookDelivery, key)
    if row is None:
        raise NotFound(f"unknown delivery {delivery_id!r}", "delivery")
    return row


def replay(session: Session, row: WebhookDelivery, now: dt.datetime | None = None) -> WebhookDelivery:
    """Send a delivery again, same webhook-id and body, with a fresh retry schedule."""
    now = now or _now()
    row.status, row.attempts, row.next_attempt_at, row.lease_until = "pending", 0, now, None
    row.updated_at = now
    session.flush()
    return row


def replay_failed(session: Session, since: dt.datetime | None = None, endpoint: Endpoint | None = None,
                  now: dt.datetime | None = None) -> list[tuple[str, int]]:
    """Replay every failed delivery (created since `since`); returns the (scope, endpoint id) pairs touched."""
    now = now or _now()
    query = update(WebhookDelivery).where(WebhookDelivery.status == "failed")
    if since is not None:
        query = query.where(WebhookDelivery.created_at >= since)
    if endpoint is not None:
        query = query.where(WebhookDelivery.endpoint_scope == endpoint.scope,
                            WebhookDelivery.endpoint_id == endpoint.id)
    rows = session.execute(query.values(status="pending", attempts=0, next_attempt_at=now, lease_until=None,
                                        updated_at=now)
                           .returning(WebhookDelivery.endpoint_scope, WebhookDelivery.endpoint_id)).all()
    return sorted({(s, i) for s, i in rows})


def delivery_json(row: WebhookDelivery, endpoint_uid: str | None = None) -> dict:
    return {
        "id": row.id, "webhook_id": row.msg_id, "endpoint": endpoint_uid, "scope": row.endpoint_scope,
        "event_type": row.event_type, "event_at": iso(row.event_at), "status": row.status, "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status in ("pending", "retry") else None,
        "last_status": row.last_status, "last_error": row.last_error, "latency_ms": row.latency_ms,
        "request": {"headers": row.request_headers, "body": row.body},
        "response": row.response_body, "created_at": iso(row.created_at), "delivered_at": iso(row.delivered_at),
    }


def endpoint_json(endpoint: Endpoint) -> dict:
    return {
        "id": endpoint.uid, "scope": endpoint.scope, "url": endpoint.url, "events": endpoint.events or [],
        "description": endpoint.description, "enabled": endpoint.enabled,
        "failing_since": iso(endpoint.failing_since), "disabled_reason": endpoint.disabled_reason,
        "last_success_at": iso(endpoint.last_success_at), "created_at": iso(endpoint.created_at),
        "secret_rotating_until": iso(endpoint.old_secret_until)
        if endpoint.old_secret_until and endpoint.old_secret_until > _now() else None,
    }


def endpoint_uids(session: Session, rows: list[WebhookDelivery]) -> dict[tuple[str, int], str]:
    """(scope, id) -> uid for the endpoints of `rows` (two queries at most)."""
    found: dict[tuple[str, int], str] = {}
    for scope, cls in ((SCOPE_TENANT, WebhookEndpoint), (SCOPE_AGENCY, AgencyWebhookEndpoint)):
        ids = {r.endpoint_id for r in rows if r.endpoint_scope == scope}
        if ids:
            for endpoint_id, uid in session.execute(select(cls.id, cls.uid).where(cls.id.in_(ids))):
                found[(scope, endpoint_id)] = uid
    return found


def owner_emails(session: Session, endpoint: Endpoint, tenant: Tenant | None) -> list[str]:
    """Who is told when an endpoint is disabled: the business's contact and client admins, or the agency owners."""
    from app.models.public import ROLE_AGENCY_OWNER, ROLE_CLIENT_ADMIN

    emails: set[str] = set()
    if endpoint.scope == SCOPE_AGENCY:
        rows = session.execute(text(
            "SELECT u.email FROM public.ab_user u JOIN public.membership ms ON ms.user_id = u.id "
            "WHERE ms.role = :role AND ms.agency_id = :agency"), {"role": ROLE_AGENCY_OWNER,
                                                                  "agency": endpoint.agency_id})
    else:
        if tenant is not None and (tenant.contact_email or tenant.reply_to):
            emails.add(tenant.contact_email or tenant.reply_to)
        rows = session.execute(text(
            "SELECT u.email FROM public.ab_user u JOIN public.membership ms ON ms.user_id = u.id "
            "WHERE ms.role = :role AND ms.tenant_id = :tenant"), {"role": ROLE_CLIENT_ADMIN,
                                                                  "tenant": tenant.id if tenant else -1})
    emails.update(r[0] for r in rows if r[0])
    return sorted(emails)
