"""Notification tables: the delivery log, per-service reminder settings and template overrides.

One `notification_delivery` row is one message to one recipient over one channel.
Its unique key (appointment, kind, offset, revision, channel, recipient) is what
makes every message go out at most once: a second event, a second worker or a
restarted scan inserts nothing (`ON CONFLICT DO NOTHING`), and only the worker
that flips the row to "sending" may talk to the provider.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import PublicModel, TenantBase

# queued: waiting to be sent; sending: claimed by a worker (until lease_until);
# retry: a temporary failure, next try at not_before; sent/delivered: done;
# failed/bounced: permanent; skipped: no longer relevant (cancelled, opted out).
DELIVERY_STATUSES = ("queued", "sending", "retry", "sent", "delivered", "failed", "bounced", "skipped")
FINAL_STATUSES = ("sent", "delivered", "failed", "bounced", "skipped")
DEFAULT_REMINDER_OFFSETS = (24 * 60, 2 * 60)
DEFAULT_FOLLOW_UP_DELAY_MIN = 120


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class NotificationDelivery(TenantBase):
    """One message to one recipient; the admin's delivery log."""

    __tablename__ = "notification_delivery"
    __table_args__ = (
        UniqueConstraint("appointment_id", "kind", "offset_min", "revision", "channel", "recipient",
                         name="uq_notification_delivery_once"),
        CheckConstraint(
            "status IN ('queued', 'sending', 'retry', 'sent', 'delivered', 'failed', 'bounced', 'skipped')",
            name="status",
        ),
        CheckConstraint("channel IN ('email', 'sms')", name="channel"),
        Index("ix_notification_delivery_due", "not_before",
              postgresql_where=text("status IN ('queued', 'retry', 'sending')")),
        Index("ix_notification_delivery_created", "created_at"),
        Index("ix_notification_delivery_provider", "provider_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("appointment.id", ondelete="CASCADE"))
    # The template event: booking_confirmed, booking_confirmed_staff, rescheduled, ...
    kind: Mapped[str] = mapped_column(String(40))
    # Reminders: minutes before the start; 0 for everything else.
    offset_min: Mapped[int] = mapped_column(Integer, default=0)
    # Change notices: the appointment's sequence, so each change is told once.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(254))
    recipient_role: Mapped[str] = mapped_column(String(10), default="customer")
    language: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    event_id: Mapped[int | None] = mapped_column(Integer)
    # The reminder's due instant, to notice a reschedule between scan and send.
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    subject: Mapped[str | None] = mapped_column(Text)
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)

    def __repr__(self) -> str:
        return f"{self.kind}/{self.channel} to {self.recipient} ({self.status})"


class ServiceNotificationSettings(TenantBase):
    """Reminder offsets and follow-up delay of one service; no row means the defaults."""

    __tablename__ = "service_notification_settings"

    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    # Minutes before the start, e.g. [1440, 120].
    reminder_offsets: Mapped[list] = mapped_column(JSONB, default=lambda: list(DEFAULT_REMINDER_OFFSETS))
    reminder_channels: Mapped[list] = mapped_column(JSONB, default=lambda: ["email", "sms"])
    # Minutes after completion; None: no follow-up.
    follow_up_delay_min: Mapped[int | None] = mapped_column(Integer, default=DEFAULT_FOLLOW_UP_DELAY_MIN)


class TemplateFields:
    """Columns shared by tenant and agency template overrides."""

    event: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class TenantTemplate(TemplateFields, TenantBase):
    """A client business's own wording of one event × channel × language."""

    __tablename__ = "notification_template"
    __table_args__ = (UniqueConstraint("event", "channel", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class AgencyTemplate(TemplateFields, PublicModel):
    """An agency's wording, used by its clients that have none of their own."""

    __tablename__ = "agency_notification_template"
    __table_args__ = (UniqueConstraint("agency_id", "event", "channel", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"))
