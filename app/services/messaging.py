"""Changes to a business's messages from the admin and from the SMS provider.

Resending and discarding logged messages, template overrides, reminder settings
per service, and the customer's SMS opt-out (a STOP reply, the provider's
"unsubscribed" error). Like every service: flush, never commit; the view, hook
or job around the call commits once (app.uow), and dispatching to RQ happens
after that commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.models.notifications import AgencyTemplate, NotificationDelivery, ServiceNotificationSettings, TenantTemplate
from app.notifications import templating
from app.services import events

FAILED = ("failed", "bounced")
MAX_OFFSETS = 5
MAX_OFFSET_MIN = 60 * 24 * 30


class MessageBusy(Exception):
    """The message is being sent right now; it cannot be queued again."""


# ------------------------------------------------------------------ logged messages


def _queue_again(row: NotificationDelivery, now: dt.datetime) -> None:
    row.status, row.attempts, row.not_before, row.lease_until = "queued", 0, now, None


def resend(session: Session, delivery_id: int, now: dt.datetime) -> NotificationDelivery | None:
    """Queue a logged message again from its first attempt (None: no such message); MessageBusy while it is sending."""
    row = session.get(NotificationDelivery, delivery_id, with_for_update=True)
    if row is None:
        return None
    if row.status == "sending":
        raise MessageBusy()
    _queue_again(row, now)
    row.last_error = None
    session.flush()
    return row


def failed_message(session: Session, delivery_id: int) -> NotificationDelivery | None:
    """A message that gave up (failed or bounced), locked for a retry or discard; None otherwise."""
    row = session.get(NotificationDelivery, delivery_id, with_for_update=True)
    return row if row is not None and row.status in FAILED else None


def retry_failed(session: Session, row: NotificationDelivery, now: dt.datetime) -> None:
    """Queue a failed message again (its last error stays visible until the next attempt)."""
    _queue_again(row, now)
    session.flush()


def discard_failed(session: Session, row: NotificationDelivery) -> None:
    row.status, row.last_error = "skipped", f"discarded: {row.last_error or ''}"[:2000]
    session.flush()


# ------------------------------------------------------------------ templates


def own_template(session: Session, agency_id: int, scope: str, event: str, channel: str, language: str):
    """This scope's ("client" or "agency") own override of one template, or None."""
    if scope == "agency":
        return session.scalar(select(AgencyTemplate).filter_by(
            agency_id=agency_id, event=event, channel=channel, language=language))
    return session.scalar(select(TenantTemplate).filter_by(event=event, channel=channel, language=language))


def revert_template(session: Session, agency_id: int, scope: str, event: str, channel: str, language: str) -> None:
    """Remove this scope's override; the inherited text is used again."""
    own = own_template(session, agency_id, scope, event, channel, language)
    if own is not None:
        session.delete(own)
        session.flush()


def save_template(session: Session, agency_id: int, scope: str, event: str, channel: str, language: str,
                  form: Mapping[str, str], now: dt.datetime) -> list[templating.TemplateError]:
    """Check and store this scope's override; returns the problems (nothing stored) if any."""
    errors = templating.validate_template(form["subject"], form["body_text"], form["body_html"], channel, event)
    if errors:
        return errors
    own = own_template(session, agency_id, scope, event, channel, language)
    if own is None:
        cls = AgencyTemplate if scope == "agency" else TenantTemplate
        own = cls(event=event, channel=channel, language=language)
        if scope == "agency":
            own.agency_id = agency_id
        session.add(own)
    own.subject = form["subject"] if channel == "email" else ""
    own.body_text = form["body_text"]
    own.body_html = form["body_html"] if channel == "email" else ""
    own.updated_at = now
    session.flush()
    return []


# ------------------------------------------------------------------ reminder settings


@dataclass(frozen=True)
class ReminderSettings:
    reminder_offsets: list[int]
    reminder_channels: list[str]
    follow_up_delay_min: int | None


def parse_reminder_settings(form: Mapping[str, str]) -> tuple[ReminderSettings, list[tuple[str, str]]]:
    """(settings, [(field, message)]) of the reminder settings form of one service."""
    errors: list[tuple[str, str]] = []
    offsets: list[int] = []
    for part in (form.get("offsets") or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            errors.append(("offsets", f"{part!r} is not a whole number of minutes"))
            continue
        if not 5 <= value <= MAX_OFFSET_MIN:
            errors.append(("offsets", f"{value} is out of range (5 minutes to {MAX_OFFSET_MIN // 1440} days)"))
        offsets.append(value)
    if len(set(offsets)) > MAX_OFFSETS:
        errors.append(("offsets", f"at most {MAX_OFFSETS} reminders per service"))
    channels = [c for c in templating.CHANNELS if form.get(f"channel_{c}")]
    if offsets and not channels:
        errors.append(("channels", "choose email and/or SMS for the reminders"))
    follow_raw = (form.get("follow_up") or "").strip()
    follow_up = None
    if follow_raw:
        try:
            follow_up = int(follow_raw)
            if not 0 <= follow_up <= MAX_OFFSET_MIN:
                errors.append(("follow_up", f"{follow_up} is out of range (0 to {MAX_OFFSET_MIN} minutes)"))
        except ValueError:
            errors.append(("follow_up", f"{follow_raw!r} is not a whole number of minutes"))
    return ReminderSettings(sorted(set(offsets), reverse=True), channels, follow_up), errors


def save_reminder_settings(session: Session, service_id: int, form: Mapping[str, str]) -> list[tuple[str, str]]:
    """Check and store one service's reminder settings; returns [(field, message)] (nothing stored) if any."""
    values, errors = parse_reminder_settings(form)
    if errors:
        return errors
    row = session.get(ServiceNotificationSettings, service_id)
    if row is None:
        row = ServiceNotificationSettings(service_id=service_id)
        session.add(row)
    row.reminder_offsets = values.reminder_offsets
    row.reminder_channels = values.reminder_channels
    row.follow_up_delay_min = values.follow_up_delay_min
    session.flush()
    return []


# ------------------------------------------------------------------ SMS opt-out


def set_sms_opt_out(session: Session, tenant_slug: str, phone: str, opted_out: bool = True) -> list[int]:
    """Every customer of this business with this (normalized) number stops, or starts again, getting SMS.

    Each customer whose choice actually changed gets a `customer.updated` naming `sms_opt_out`
    (a repeated STOP is no change and no event). Returns those customers' ids.
    """
    changed = list(session.scalars(
        update(m.Customer)
        .where(m.Customer.phone == phone, m.Customer.sms_opt_out.is_distinct_from(opted_out))
        .values(sms_opt_out=opted_out)
        .returning(m.Customer.id)))
    for customer_id in sorted(changed):
        events.emit_customer(session, events.CUSTOMER_UPDATED, tenant_slug, customer_id, ["sms_opt_out"])
    return changed
