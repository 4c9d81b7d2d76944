"""Customer portal rules: magic links, own appointments, contact details, GDPR export and erasure requests.

A customer only ever reaches rows through their own customer id, so an id from
someone else (or another tenant) is a plain 404.
"""

from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import ApiError, NotFound, ValidationError
from app.models import tenant as m
from app.models import widgets as w
from app.notifications import ics
from app.security import hash_secret
from app.services import booking, events
from app.services import catalogue_rules as rules
from app.services.availability import AvailabilityQuery, query_slots
from app.services.mail import queue_mail
from app.tenancy import TenantRef

UTC = dt.timezone.utc
LINK_TTL = dt.timedelta(minutes=15)
RATE_WINDOW = dt.timedelta(minutes=15)
MAX_PER_EMAIL = 3
MAX_PER_IP = 10


class RateLimited(ApiError):
    status = 429

    def __init__(self):
        super().__init__("rate_limited", "too many sign-in links were asked for; please wait 15 minutes", "email")


class LinkRefused(ApiError):
    status = 410


def request_magic_link(session: Session, tenant: TenantRef, email: str, ip: str | None, now: dt.datetime,
                       link_base: str, business_name: str) -> bool:
    """Mail a 15-minute single-use sign-in link if `email` is a customer; True when one was sent.

    The caller shows the same answer either way, so the form does not reveal who is a customer.
    """
    email = (email or "").strip()
    if not booking.EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationError(f"{email!r} is not an email address", "email")
    since = now - RATE_WINDOW
    by_email = session.scalar(select(func.count()).select_from(w.PortalLoginAttempt).where(
        func.lower(w.PortalLoginAttempt.email) == email.lower(), w.PortalLoginAttempt.at > since))
    by_ip = session.scalar(select(func.count()).select_from(w.PortalLoginAttempt).where(
        w.PortalLoginAttempt.ip == ip, w.PortalLoginAttempt.at > since)) if ip else 0
    if by_email >= MAX_PER_EMAIL or by_ip >= MAX_PER_IP:
        raise RateLimited()
    # Attempts only matter for the rate window; spent and expired links for nothing.
    session.execute(delete(w.PortalLoginAttempt).where(w.PortalLoginAttempt.at < now - dt.timedelta(days=1)))
    session.execute(delete(w.PortalToken).where(w.PortalToken.expires_at < now - dt.timedelta(days=1)))
    session.add(w.PortalLoginAttempt(email=email, ip=ip, at=now))
    customer = session.scalar(select(m.Customer).where(func.lower(m.Customer.email) == email.lower()))
    if customer is None:
        session.flush()
        return False
    token = secrets.token_urlsafe(32)
    session.add(w.PortalToken(token_hash=hash_secret(token), customer_id=customer.id, created_at=now,
                              expires_at=now + LINK_TTL))
    link = f"{link_base}{token}"
    queue_mail(
        session, customer.email, f"Your sign-in link for {business_name}",
        f"Hello {customer.name},\n\nsign in to manage your appointments with {business_name}:\n{link}\n\n"
        "The link works once and expires in 15 minutes. If you did not ask for it, ignore this mail.\n",
        tenant_id=tenant.id,
    )
    return True


def consume_magic_link(session: Session, token: str, now: dt.datetime) -> m.Customer:
    """The customer a link signs in; the link is spent. Unknown → 404, used or expired → 410."""
    row = session.scalar(
        select(w.PortalToken).where(w.PortalToken.token_hash == hash_secret(token or "")).with_for_update()
    )
    if row is None:
        raise NotFound("this sign-in link is not valid", "token")
    if row.used_at is not None:
        raise LinkRefused("link_used", "this sign-in link was already used; ask for a new one", "token")
    if now > row.expires_at:
        raise LinkRefused("link_expired", "this sign-in link has expired; ask for a new one", "token")
    row.used_at = now
    session.flush()
    return session.get(m.Customer, row.customer_id)


def own_appointments(session: Session, customer_id: int, now: dt.datetime) -> tuple[list, list]:
    """(upcoming, past) appointments of one customer; cancelled ones count as history."""
    rows = list(session.scalars(
        select(m.Appointment).where(m.Appointment.customer_id == customer_id).order_by(m.Appointment.start_at)
    ))
    upcoming = [a for a in rows if a.start_at >= now and a.status != m.STATUS_CANCELLED]
    past = [a for a in rows if a not in upcoming]
    past.reverse()
    return upcoming, past


def own_appointment(session: Session, customer_id: int, appointment_id: str) -> m.Appointment:
    """One appointment of this customer, or 404."""
    import uuid

    try:
        key = uuid.UUID(str(appointment_id))
    except ValueError:
        raise NotFound("no such appointment", "appointment")
    appt = session.scalar(select(m.Appointment).where(m.Appointment.id == key, m.Appointment.customer_id == customer_id))
    if appt is None:
        raise NotFound("no such appointment", "appointment")
    return appt


def free_slots(session: Session, appt: m.Appointment, day: dt.date, days: int, tz: str, now: dt.datetime) -> list[dict]:
    """Real free starts with the same staff member for moving `appt` (its own time does not block)."""
    query = AvailabilityQuery(
        service=appt.service.key, date_from=day, date_to=day + dt.timedelta(days=days - 1), timezone=tz,
        staff=appt.staff.key, exclude_refs=frozenset({str(appt.id)}),
    )
    slots, _ = query_slots(session, query, now)
    zone = ZoneInfo(tz)
    return [{"start": booking.iso(s.start), "local": s.start.astimezone(zone)} for s in slots if s.start != appt.start_at]


def update_contact(session: Session, customer: m.Customer, name: str, phone: str | None, locale: str | None,
                   region: str | None, tenant_slug: str) -> None:
    """Change name, phone and language; email stays (it identifies the customer). A change is a customer.updated."""
    try:
        name = rules.check_name(name)
    except rules.RuleError as exc:
        raise ValidationError(exc.message, "name")
    if locale not in (None, "", "en", "de", "fr", "es"):
        raise ValidationError("language must be en, de, fr or es", "locale")
    customer.name = name
    customer.phone = booking.normalize_phone(phone, region, "phone")
    customer.locale = locale or None
    events.record_customer_changes(session, tenant_slug, customer)
    session.flush()


def preferences(session: Session, customer: m.Customer) -> w.NotificationPreference:
    pref = session.get(w.NotificationPreference, customer.id)
    if pref is None:
        pref = w.NotificationPreference(customer_id=customer.id, email_reminders=True)
        session.add(pref)
        session.flush()
    return pref


def set_preferences(session: Session, customer: m.Customer, email_reminders: bool, sms: bool, marketing: bool,
                    tenant_slug: str) -> None:
    """Reminder, SMS and marketing choices; a change of the last two (customer fields) is a customer.updated."""
    from app.gdpr import consents

    preferences(session, customer).email_reminders = email_reminders
    was = (customer.sms_opt_out, customer.marketing_opt_in)
    customer.sms_opt_out = not sms
    consents.set_marketing(session, customer, marketing, "portal")
    changed = [name for name, before in zip(("sms_opt_out", "marketing_opt_in"), was) if getattr(customer, name) != before]
    events.emit_customer(session, events.CUSTOMER_UPDATED, tenant_slug, customer.id, changed)
    session.flush()


def export_data(session: Session, tenant: TenantRef, customer: m.Customer) -> dict:
    """Everything this business stores about the customer, as JSON (GDPR art. 15/20): app.gdpr.subjects."""
    from app.gdpr import subjects

    preferences(session, customer)
    data = subjects.export_customer(session, tenant, customer)
    subjects.record_export(session, "portal", f"customer:{customer.id}", customer=customer)
    return data


def request_erasure(session: Session, customer: m.Customer, ip: str | None) -> w.ErasureRequest:
    """Record an erasure request (one open request per customer)."""
    open_request = session.scalar(select(w.ErasureRequest).where(
        w.ErasureRequest.customer_id == customer.id, w.ErasureRequest.status == "requested"))
    if open_request is not None:
        return open_request
    from app.gdpr import subjects

    return subjects.open_request(session, "erasure", "portal", customer=customer, ip=ip)


def appointment_event(tenant: TenantRef, organizer_email: str, appt: m.Appointment, url: str | None) -> ics.IcsEvent:
    from app.services.notify import meeting_url

    join = meeting_url(appt)
    where = join or ""
    if not where and appt.location is not None and not appt.location.virtual:
        where = ", ".join(x for x in (appt.location.name, appt.location.address) if x)
    return ics.IcsEvent(
        uid=ics.appointment_uid(appt.id, tenant.slug),
        sequence=appt.sequence,
        start=appt.start_at,
        end=appt.end_at,
        summary=f"{appt.service.name} – {tenant.name}",
        organizer_name=tenant.name,
        organizer_email=organizer_email,
        dtstamp=dt.datetime.now(UTC),
        attendees=((appt.customer.name, appt.customer.email),) if appt.customer else (),
        description=f"{appt.service.name} with {appt.staff.name}" + (f"\nJoin: {join}" if join else ""),
        location=where,
        url=url,
        status="CANCELLED" if appt.status == m.STATUS_CANCELLED else "CONFIRMED",
    )


def appointment_ics(tenant: TenantRef, organizer_email: str, appt: m.Appointment, url: str | None) -> bytes:
    """A single-event calendar file for the customer (a cancelled one as METHOD:CANCEL)."""
    event = appointment_event(tenant, organizer_email, appt, url)
    return ics.build_ics(event, "CANCEL" if event.status == "CANCELLED" else "REQUEST")


def calendar_links(tenant: TenantRef, organizer_email: str, appt: m.Appointment, url: str | None) -> dict[str, str]:
    """"Add to Google Calendar / Outlook" links of one appointment, built from it (no request is made)."""
    event = appointment_event(tenant, organizer_email, appt, url)
    return {"google": ics.google_calendar_link(event), "outlook": ics.outlook_calendar_link(event)}


def feed_active(session: Session, customer: m.Customer) -> bool:
    """Whether the customer has a live subscription feed (its address was shown once, when made)."""
    from app.models.calendar_sync import CalendarFeed

    return session.scalar(select(CalendarFeed.id).where(CalendarFeed.customer_id == customer.id,
                                                        CalendarFeed.revoked_at.is_(None)).limit(1)) is not None


def subscribe_feed(session: Session, customer: m.Customer) -> str:
    """A new private feed of the customer's bookings; returns its token (any earlier feed stops working)."""
    from app.services import calendar_sync

    return calendar_sync.create_feed(session, customer_id=customer.id)


def revoke_feed(session: Session, customer: m.Customer) -> int:
    from app.services import calendar_sync

    return calendar_sync.revoke_feeds(session, customer_id=customer.id)
