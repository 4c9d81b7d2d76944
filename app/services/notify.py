"""Which messages a domain event produces, for whom, and what they say.

Planning (`plan_event`, `plan_reminders`) turns an event or a due reminder into
delivery rows; `insert_deliveries` stores them with `ON CONFLICT DO NOTHING`, so
the same event relayed twice or a reminder found by two scans yields one row.
Composing (`compose`) renders one row from the appointment as it is now, in the
recipient's language and time zone (the customer's for customer messages).
Nothing here sends or commits; app/jobs/notify.py does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote_plus

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, joinedload

from app.models import tenant as m
from app.models.notifications import (
    DEFAULT_FOLLOW_UP_DELAY_MIN,
    DEFAULT_REMINDER_OFFSETS,
    AgencyTemplate,
    NotificationDelivery,
    ServiceNotificationSettings,
    TenantTemplate,
)
from app.models.public import Agency, Tenant
from app.notifications import ics, templating
from app.services import events
from app.services.meetings import MEETING_COLUMNS
from app.tenancy import TenantRef

UTC = dt.timezone.utc
LIVE_FOR_REMINDERS = (m.STATUS_PENDING, m.STATUS_CONFIRMED)
# Kinds whose message says "your appointment is on": pointless once it is cancelled.
NEEDS_LIVE = ("booking_confirmed", "booking_confirmed_staff", "rescheduled", "rescheduled_staff", "reminder",
              "meeting_ready")
ICS_KINDS = {"booking_confirmed": "REQUEST", "booking_confirmed_staff": "REQUEST",
             "rescheduled": "REQUEST", "rescheduled_staff": "REQUEST", "meeting_ready": "REQUEST",
             "cancelled": "CANCEL", "cancelled_staff": "CANCEL"}


@dataclass(frozen=True)
class Settings:
    """What planning needs of the app config (jobs read it once per process)."""

    sms_enabled: bool
    public_url: str
    meeting_hold_seconds: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Settings":
        return cls(
            meeting_hold_seconds=float(config.get("MEETING_HOLD_SECONDS") or 60),
            sms_enabled=bool(config.get("SMS_API_BASE_URL") and config.get("SMS_ACCOUNT_SID")),
            public_url=(config.get("PUBLIC_URL") or f"http://{config.get('HOST', '127.0.0.1')}:{config.get('PORT', 5000)}").rstrip("/"),
        )


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str | None
    ics: bytes | None
    ics_method: str | None


# ------------------------------------------------------------------ manage links

def manage_url(settings: Settings, tenant_slug: str, appointment_id, business: Tenant | None = None) -> str:
    """The appointment's page in the customer portal (a visitor not signed in gets a sign-in link mailed).

    On the business's verified custom domain when it has one, else on PUBLIC_URL.
    """
    domain = business.verified_domain if business is not None else None
    base = f"https://{domain}" if domain else settings.public_url
    return f"{base}/portal/{tenant_slug}/appointments/{appointment_id}"


# ---------------------------------------------------------------------- planning

def _customer_targets(customer: m.Customer | None, settings: Settings, channels=("email", "sms")) -> list[tuple[str, str]]:
    if customer is None:
        return []
    out = []
    if "email" in channels and customer.email:
        out.append(("email", customer.email.strip().lower()))
    if "sms" in channels and settings.sms_enabled and customer.phone and not customer.sms_opt_out:
        # Stored phones are E.164 already (booking validates them).
        out.append(("sms", customer.phone))
    return out


def _row(appt: m.Appointment, kind: str, channel: str, recipient: str, role: str, *, offset: int = 0,
         revision: int = 0, event_id: int | None = None, not_before: dt.datetime, due_at=None,
         language: str | None = None) -> dict:
    return dict(appointment_id=appt.id, kind=kind, offset_min=offset, revision=revision, channel=channel,
                recipient=recipient, recipient_role=role, language=language, status="queued", attempts=0,
                event_id=event_id, not_before=not_before, due_at=due_at, updated_at=not_before)


def settings_for(session: Session, service_id: int) -> ServiceNotificationSettings:
    """The service's notification settings, or an unsaved row holding the defaults."""
    found = session.get(ServiceNotificationSettings, service_id)
    return found or ServiceNotificationSettings(
        service_id=service_id, reminder_offsets=list(DEFAULT_REMINDER_OFFSETS),
        reminder_channels=["email", "sms"], follow_up_delay_min=DEFAULT_FOLLOW_UP_DELAY_MIN)


def load_appointment(session: Session, appointment_id) -> m.Appointment | None:
    """The appointment with what every message needs, in one query, kept for the session's life."""
    if isinstance(appointment_id, str):
        appointment_id = uuid.UUID(appointment_id)
    # The identity map holds objects weakly; keep them so a batch does not load them again.
    kept = session.info.setdefault("notify_appointments", {})
    if appointment_id not in kept:
        kept[appointment_id] = session.get(m.Appointment, appointment_id, options=[
            joinedload(m.Appointment.customer), joinedload(m.Appointment.service),
            joinedload(m.Appointment.staff), joinedload(m.Appointment.location)])
    return kept[appointment_id]


def _kept(session: Session, cls, key):
    kept = session.info.setdefault("notify_rows", {})
    if (cls, key) not in kept:
        kept[(cls, key)] = session.get(cls, key)
    return kept[(cls, key)]


def preload_appointments(session: Session, appointment_ids) -> None:
    """Load many appointments (with customer, service, staff, location) into the session in one query."""
    keys = set()
    for value in appointment_ids:
        try:
            keys.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    if keys:
        found = session.scalars(select(m.Appointment).where(m.Appointment.id.in_(keys)).options(
            joinedload(m.Appointment.customer), joinedload(m.Appointment.service),
            joinedload(m.Appointment.staff), joinedload(m.Appointment.location))).unique().all()
        session.info.setdefault("notify_appointments", {}).update({a.id: a for a in found})


def plan_event(session: Session, tenant: TenantRef, event: m.OutboxEvent, settings: Settings,
               now: dt.datetime) -> list[dict]:
    """Delivery rows for one domain event (none for imports or unknown appointments)."""
    payload = event.payload or {}
    # Imports and recorded past appointments are history, not news for anyone.
    if payload.get("source") in ("import", "admin_record") or not event.event_type.startswith("appointment."):
        return []
    appt = load_appointment(session, event.aggregate_id)
    if appt is None:
        return []
    customer = appt.customer
    lang = _language(customer, tenant)
    rows: list[dict] = []
    if event.event_type == events.BOOKED:
        when = meeting_hold(session, appt, settings, now)
        for channel, to in _customer_targets(customer, settings):
            rows.append(_row(appt, "booking_confirmed", channel, to, "customer", event_id=event.id,
                             not_before=when, language=lang))
        rows += _staff_row(appt, appt.staff, "booking_confirmed_staff", tenant, event, when)
    elif event.event_type == events.RESCHEDULED:
        revision = int(payload.get("sequence") or appt.sequence)
        for channel, to in _customer_targets(customer, settings):
            rows.append(_row(appt, "rescheduled", channel, to, "customer", revision=revision,
                             event_id=event.id, not_before=now, language=lang))
        rows += _staff_reschedule_rows(session, appt, tenant, event, revision, now)
    elif event.event_type == events.CANCELLED:
        for channel, to in _customer_targets(customer, settings):
            rows.append(_row(appt, "cancelled", channel, to, "customer", revision=appt.sequence,
                             event_id=event.id, not_before=now, language=lang))
        rows += _staff_row(appt, appt.staff, "cancelled_staff", tenant, event, now, revision=appt.sequence)
    elif event.event_type == events.STATUS_CHANGED and payload.get("to_status") == m.STATUS_COMPLETED:
        delay = settings_for(session, appt.service_id).follow_up_delay_min
        # A follow-up asks the customer back: marketing, so only with their marketing consent.
        if delay is not None and customer is not None and customer.marketing_opt_in:
            for channel, to in _customer_targets(customer, settings, ("email",)):
                rows.append(_row(appt, "follow_up", channel, to, "customer", event_id=event.id,
                                 not_before=now + dt.timedelta(minutes=delay), language=lang))
    elif event.event_type == events.MEETING_READY:
        rows += _meeting_ready_rows(session, appt, event, now, lang)
    elif event.event_type == events.NO_SHOW:
        for channel, to in _customer_targets(customer, settings, ("email",)):
            rows.append(_row(appt, "no_show", channel, to, "customer", event_id=event.id,
                             not_before=now, language=lang))
    return rows


def _meeting_ready_rows(session: Session, appt: m.Appointment, event: m.OutboxEvent, now: dt.datetime,
                        lang: str) -> list[dict]:
    """The link arrived after the customer's confirmation went out without it: send them the link
    (its .ics updates their calendar entry too). A confirmation still waiting (held for the link)
    or mailed with this link needs nothing.
    """
    url = appt.meeting_join_url
    if not url or appt.status not in LIVE_FOR_REMINDERS or appt.end_at <= now:
        return []
    sent = session.execute(select(NotificationDelivery.channel, NotificationDelivery.recipient,
                                  NotificationDelivery.body_text).where(
        NotificationDelivery.appointment_id == appt.id, NotificationDelivery.recipient_role == "customer",
        NotificationDelivery.kind.in_(("booking_confirmed", "rescheduled")),
        NotificationDelivery.status.in_(("sending", "sent", "delivered")))).all()
    emails = [(to, body) for channel, to, body in sent if channel == "email" and body is not None]
    if emails:
        if all(url in body for _to, body in emails):
            return []
        # The mail went without it; a text message (which never carries the link) gets it too.
        targets = {("email", to) for to, body in emails if url not in body}
        targets |= {(channel, to) for channel, to, _body in sent if channel == "sms"}
    else:
        targets = {(channel, to) for channel, to, _body in sent if channel == "sms"}  # no e-mail address
    return [_row(appt, "meeting_ready", channel, to, "customer", revision=event.id, event_id=event.id,
                 not_before=now, language=lang) for channel, to in sorted(targets)]


def meeting_hold(session: Session, appt: m.Appointment, settings: Settings, now: dt.datetime) -> dt.datetime:
    """When a confirmation may go out: now, or (online service whose link is not made yet) after a hold.

    The meeting job (app/jobs/meetings.py) releases held confirmations as soon as the
    link is stored; if the provider is down they go out without it when the hold ends.
    The row lock orders this read with the meeting job's write of the link: either
    the link is seen here, or the job's update waits for these rows to commit and
    then finds and releases them. The read refreshes the appointment object itself:
    it was loaded before the lock, and the message rendered from it must carry a
    link committed in between.
    """
    if appt.service is None or appt.service.meeting in (None, "none"):
        return now
    session.refresh(appt, MEETING_COLUMNS, with_for_update={"read": True})
    if appt.meeting_join_url or appt.meeting_status == "failed":
        return now
    return now + dt.timedelta(seconds=settings.meeting_hold_seconds)


def _staff_row(appt: m.Appointment, staff: m.Staff | None, kind: str, tenant: TenantRef, event: m.OutboxEvent,
               now: dt.datetime, revision: int = 0) -> list[dict]:
    """The staff member's email row of one event, none when they have no address."""
    if staff is None or not staff.email:
        return []
    # Staff have no language of their own: they read the business's.
    return [_row(appt, kind, "email", staff.email.strip().lower(), "staff", revision=revision,
                 event_id=event.id, not_before=now, language=tenant.locale)]


def _previous_staff(session: Session, appt: m.Appointment, payload: Mapping[str, Any]) -> m.Staff | None:
    """The staff member a reschedule moved the appointment away from, if it did."""
    key = payload.get("previous_staff")
    if not key or appt.staff is None or key == appt.staff.key:
        return None
    return session.scalar(select(m.Staff).where(m.Staff.key == key))


def _staff_reschedule_rows(session: Session, appt: m.Appointment, tenant: TenantRef, event: m.OutboxEvent,
                           revision: int, now: dt.datetime) -> list[dict]:
    """Same staff: one "moved" notice. Another staff: the old one loses it, the new one gains it."""
    previous = _previous_staff(session, appt, event.payload or {})
    if previous is None:
        return _staff_row(appt, appt.staff, "rescheduled_staff", tenant, event, now, revision=revision)
    return (_staff_row(appt, previous, "cancelled_staff", tenant, event, now, revision=revision)
            + _staff_row(appt, appt.staff, "booking_confirmed_staff", tenant, event, now, revision=revision))


def plan_reminders(session: Session, tenant: TenantRef, settings: Settings, now: dt.datetime,
                   horizon: dt.timedelta = dt.timedelta(days=8)) -> list[dict]:
    """Reminder rows due at `now`: start - offset has passed, the start has not.

    The due instant follows the appointment's current start, so a reschedule moves
    it; a reminder whose due instant passed before the booking existed is not sent
    (a 24 h reminder right after a same-day booking would only repeat the confirmation),
    and of several due offsets only the nearest to the start is sent.
    """
    appts = session.scalars(
        select(m.Appointment).where(
            m.Appointment.status.in_(LIVE_FOR_REMINDERS),
            m.Appointment.start_at > now,
            m.Appointment.start_at <= now + horizon,
            m.Appointment.source != "import",
        )
    ).all()
    cache: dict[int, ServiceNotificationSettings] = {}
    rows: list[dict] = []
    no_email = _email_reminders_off(session, {a.customer_id for a in appts if a.customer_id})
    for appt in appts:
        conf = cache.get(appt.service_id) or cache.setdefault(appt.service_id, settings_for(session, appt.service_id))
        due_offsets = [int(o) for o in conf.reminder_offsets or []
                       if appt.start_at - dt.timedelta(minutes=int(o)) <= now]
        if not due_offsets:
            continue
        # After downtime several offsets can be due at once; only the nearest one still makes sense.
        offset = min(due_offsets)
        due = appt.start_at - dt.timedelta(minutes=offset)
        if appt.created_at > due:
            continue
        channels = tuple(c for c in conf.reminder_channels or () if not (c == "email" and appt.customer_id in no_email))
        for channel, to in _customer_targets(appt.customer, settings, channels):
            rows.append(_row(appt, "reminder", channel, to, "customer", offset=offset, not_before=now,
                             due_at=due, language=_language(appt.customer, tenant)))
    return rows


def _email_reminders_off(session: Session, customer_ids: set[int]) -> set[int]:
    """Customers who turned email reminders off in the customer portal."""
    from app.models.widgets import NotificationPreference

    if not customer_ids:
        return set()
    return set(session.scalars(select(NotificationPreference.customer_id).where(
        NotificationPreference.customer_id.in_(customer_ids), NotificationPreference.email_reminders.is_(False))))


def insert_deliveries(session: Session, rows: list[dict]) -> list[int]:
    """Store rows not stored before; returns the ids of the new ones."""
    if not rows:
        return []
    stmt = insert(NotificationDelivery).values(rows).on_conflict_do_nothing(
        constraint="uq_notification_delivery_once").returning(NotificationDelivery.id)
    return list(session.scalars(stmt))


# --------------------------------------------------------------------- templates

TemplateMap = dict[templating.TemplateKey, templating.MessageTemplate]


def _as_message(row) -> templating.MessageTemplate:
    return templating.MessageTemplate(channel=row.channel, subject=row.subject or "", body_text=row.body_text,
                                      body_html=row.body_html or "")


def overrides(session: Session, agency_id: int, event: str | None = None) -> tuple[TemplateMap, TemplateMap]:
    """(tenant overrides, agency overrides) of the session's tenant, optionally for one event."""
    tq = select(TenantTemplate)
    aq = select(AgencyTemplate).where(AgencyTemplate.agency_id == agency_id)
    if event:
        tq = tq.where(TenantTemplate.event == event)
        aq = aq.where(AgencyTemplate.event == event)
    tenant_map = {(r.event, r.channel, r.language): _as_message(r) for r in session.scalars(tq)}
    agency_map = {(r.event, r.channel, r.language): _as_message(r) for r in session.scalars(aq)}
    return tenant_map, agency_map


# ----------------------------------------------------------------------- context

def _language(customer: m.Customer | None, tenant: TenantRef) -> str:
    return (customer.locale if customer and customer.locale else None) or tenant.locale or "en"


def customer_zone(appt: m.Appointment, tenant: TenantRef) -> str:
    """The zone customer messages use: the one the customer booked in."""
    return appt.timezone or (appt.customer.timezone if appt.customer else None) or tenant.timezone


def _map_urls(location: m.Location) -> tuple[str | None, str | None]:
    if location.latitude is not None and location.longitude is not None:
        where = f"{location.latitude},{location.longitude}"
    elif location.address:
        where = location.address
    else:
        return None, None
    q = quote_plus(where)
    return (f"https://www.google.com/maps/search/?api=1&query={q}",
            f"https://www.google.com/maps/dir/?api=1&destination={q}")


def meeting_url(appt: m.Appointment) -> str | None:
    """The join link of an online appointment (made by the meeting job), or one written into the answers."""
    if appt.meeting_join_url and appt.meeting_status != "deleted":
        return appt.meeting_join_url
    return (appt.answers or {}).get("meeting_url")


def build_context(appt: m.Appointment, tenant: TenantRef, business: Tenant, role: str, language: str,
                  settings: Settings, previous_start: dt.datetime | None = None) -> dict[str, Any]:
    """The render context of one message (see templating's "Variables")."""
    zone = customer_zone(appt, tenant) if role == "customer" else _staff_zone(appt, tenant)
    customer = appt.customer
    location = appt.location if appt.location and not appt.location.virtual else None
    link = manage_url(settings, tenant.slug, appt.id, business)
    ctx: dict[str, Any] = {
        "customer": {"name": customer.name if customer else None, "email": customer.email if customer else None,
                     "phone": customer.phone if customer else None},
        "service": {"name": appt.service.name, "duration_min": appt.service.duration_min,
                    "price": templating.format_price(appt.price, appt.currency or tenant.currency, language)},
        "staff": {"name": appt.staff.name, "email": appt.staff.email},
        "location": None,
        "appointment": {
            **templating.format_when(appt.start_at, appt.end_at, zone, language),
            "status": appt.status, "seats": appt.seats, "manage_url": link,
            "meeting_url": meeting_url(appt), "ics_url": f"{link}.ics",
            "cancel_reason": appt.cancel_reason,
            "google_calendar_url": None, "outlook_calendar_url": None,
        },
        "business": {"name": business.sender_name or business.name, "phone": business.contact_phone,
                     "email": business.contact_email or business.reply_to},
        "previous": None,
    }
    if role == "customer" and appt.status != m.STATUS_CANCELLED:
        # The portal's builder, so the mail's links and the portal's describe the event the same way.
        from app.services.portal import calendar_links

        links = calendar_links(tenant, business.contact_email or "", appt, link)
        ctx["appointment"]["google_calendar_url"] = links["google"]
        ctx["appointment"]["outlook_calendar_url"] = links["outlook"]
    if location is not None:
        map_url, directions = _map_urls(location)
        ctx["location"] = {"name": location.name, "address": location.address, "phone": location.phone,
                           "map_url": map_url, "directions_url": directions}
    if previous_start is not None:
        ctx["previous"] = {"start_local": templating.format_local(previous_start, zone, language)}
    return ctx


def _instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _staff_zone(appt: m.Appointment, tenant: TenantRef) -> str:
    return appt.location.timezone if appt.location else tenant.timezone


def _as_previous_staff(session: Session, ctx: dict[str, Any], payload: Mapping[str, Any], zone: str,
                       language: str) -> None:
    """A reschedule took the appointment from this staff member: address them, at the time they lose."""
    key = payload.get("previous_staff")
    staff = session.scalar(select(m.Staff).where(m.Staff.key == key)) if key else None
    if staff is not None:
        ctx["staff"] = {"name": staff.name, "email": staff.email}
    if payload.get("previous_start") and payload.get("previous_end"):
        ctx["appointment"].update(templating.format_when(
            _instant(payload["previous_start"]), _instant(payload["previous_end"]), zone, language))


def invite(appt: m.Appointment, tenant: TenantRef, business: Tenant, organizer_email: str, method: str,
           settings: Settings, now: dt.datetime) -> bytes:
    """The .ics of the appointment as it is now: stable UID, SEQUENCE = appointment.sequence."""
    # An online appointment's place is its join link (calendars make LOCATION clickable).
    where = meeting_url(appt) or ""
    if not where and appt.location is not None and not appt.location.virtual:
        where = ", ".join(p for p in (appt.location.name, appt.location.address) if p)
    attendees = [(appt.customer.name, appt.customer.email)] if appt.customer and appt.customer.email else []
    event = ics.IcsEvent(
        uid=ics.appointment_uid(appt.id, tenant.slug), sequence=appt.sequence, start=appt.start_at,
        end=appt.end_at, summary=f"{appt.service.name} – {business.sender_name or business.name}",
        organizer_name=business.sender_name or business.name, organizer_email=organizer_email,
        dtstamp=now, attendees=attendees, location=where, url=manage_url(settings, tenant.slug, appt.id, business),
        description=f"Join: {meeting_url(appt)}" if meeting_url(appt) else "",
        status="CANCELLED" if method == "CANCEL" else "CONFIRMED",
    )
    return ics.build_ics(event, method)


def compose(session: Session, tenant: TenantRef, delivery: NotificationDelivery, settings: Settings,
            organizer_email: str, now: dt.datetime) -> Composed:
    """Render one delivery; raises templating.TemplateRenderError for a broken override."""
    appt = load_appointment(session, delivery.appointment_id)
    business = _kept(session, Tenant, tenant.id)
    language = delivery.language or tenant.locale or "en"
    previous = None
    # Only these kinds read the event; the others would pay a query per message for nothing.
    reads_event = delivery.kind in ("rescheduled", "rescheduled_staff", "cancelled_staff")
    event = session.get(m.OutboxEvent, delivery.event_id) if delivery.event_id and reads_event else None
    moved = event is not None and event.event_type == events.RESCHEDULED
    if delivery.kind in ("rescheduled", "rescheduled_staff") and moved and event.payload.get("previous_start"):
        previous = _instant(event.payload["previous_start"])
    ctx = build_context(appt, tenant, business, delivery.recipient_role, language, settings, previous)
    if delivery.kind == "cancelled_staff" and moved:
        _as_previous_staff(session, ctx, event.payload, _staff_zone(appt, tenant), language)
    # One batch renders many messages of the same kinds: read each kind's overrides once.
    cache = session.info.setdefault("notify_overrides", {})
    if delivery.kind not in cache:
        cache[delivery.kind] = overrides(session, tenant.agency_id, delivery.kind)
    tenant_map, agency_map = cache[delivery.kind]
    resolved = templating.resolve_template(delivery.kind, delivery.channel, language, tenant_map, agency_map)
    out = templating.render(resolved.template, ctx)
    method = ICS_KINDS.get(delivery.kind) if delivery.channel == "email" else None
    data = invite(appt, tenant, business, organizer_email, method, settings, now) if method else None
    return Composed(out.subject, out.text, out.html, data, method)


def attachment(session: Session, tenant: TenantRef, delivery: NotificationDelivery, settings: Settings,
               organizer_email: str, now: dt.datetime) -> tuple[bytes, str] | None:
    """The .ics a delivery carries (built as the mail builds it) and its METHOD; None when it carries none."""
    method = ICS_KINDS.get(delivery.kind) if delivery.channel == "email" else None
    appt = load_appointment(session, delivery.appointment_id) if method else None
    if appt is None:
        return None
    business = _kept(session, Tenant, tenant.id)
    return invite(appt, tenant, business, organizer_email, method, settings, now), method


def sender(session: Session, tenant: TenantRef) -> tuple[str, str | None]:
    """(display name, reply-to) of a tenant's mail: its own, else its agency's, else its name."""
    business = _kept(session, Tenant, tenant.id)
    agency = _kept(session, Agency, tenant.agency_id)
    from app.headers import header_address, header_text

    name = business.sender_name or (agency.sender_name if agency else None) or business.name
    # Checked on save too; again here, for rows written before that check or by other paths.
    return header_text(name), header_address(business.reply_to) or header_address(business.contact_email)
