"""Calendar sync: connections to staff / location / business calendars, our events there, feeds.

A connection's credentials (OAuth tokens or a CalDAV password) are one encrypted
JSON text (`secret_enc`, app.crypto). `event_link` remembers, per connection and
appointment, the provider's id of our event and what we last wrote there (content
hash, etag / changeKey), so a push that would write the same content is skipped
and the echo of our own write is recognised on the next pull. Foreign events become
`busy_block` rows carrying the connection id and the event key.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import TenantBase
from app.models.tenant import Location, Staff

PROVIDERS = ("google", "microsoft", "caldav")
OWNER_KINDS = ("staff", "location", "business")
STATUS_ACTIVE = "active"
STATUS_RECONNECT = "needs_reconnect"
STATUS_DISCONNECTED = "disconnected"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _uid() -> str:
    return secrets.token_hex(12)


class CalendarSettings(TenantBase):
    """The business's calendar-sync choices (one row, id 1): event text and what outside moves do."""

    __tablename__ = "calendar_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single"),
        CheckConstraint("external_changes IN ('reflect', 'ignore')", name="external_changes"),
        CheckConstraint("privacy IN ('details', 'busy')", name="privacy"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    # reflect: a move/delete of our event in the provider reschedules/cancels here;
    # ignore: our event is written back as it is here.
    external_changes: Mapped[str] = mapped_column(String(10), default="reflect")
    # busy: the event says only "Busy" (no customer details).
    privacy: Mapped[str] = mapped_column(String(10), default="details")
    title_template: Mapped[str] = mapped_column(Text, default="{service} – {customer}")
    description_template: Mapped[str] = mapped_column(
        Text, default="{service} with {staff}\nCustomer: {customer} <{customer_email}> {customer_phone}\n"
                      "{notes}\n{meeting_url}\nBooking {appointment_id}")
    failing_alert_minutes: Mapped[int] = mapped_column(Integer, default=30)


class CalendarConnection(TenantBase):
    """One account at one provider, connected for a staff member, a location or the whole business."""

    __tablename__ = "calendar_connection"
    __table_args__ = (
        CheckConstraint("provider IN ('google', 'microsoft', 'caldav')", name="provider"),
        CheckConstraint("owner_kind IN ('staff', 'location', 'business')", name="owner_kind"),
        CheckConstraint(
            "(owner_kind = 'staff' AND staff_id IS NOT NULL) OR (owner_kind = 'location' AND location_id IS NOT NULL)"
            " OR (owner_kind = 'business')", name="owner"),
        CheckConstraint("status IN ('active', 'needs_reconnect', 'disconnected')", name="status"),
        Index("ix_calendar_connection_staff", "staff_id"),
        Index("ix_calendar_connection_location", "location_id"),
        Index("ix_calendar_connection_next_pull", "next_pull_at", postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Public id: used in OAuth state, watch channel tokens, subscription clientState.
    uid: Mapped[str] = mapped_column(String(40), unique=True, default=_uid)
    provider: Mapped[str] = mapped_column(String(12))
    owner_kind: Mapped[str] = mapped_column(String(10), default="staff")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    account: Mapped[str | None] = mapped_column(String(254))  # e-mail / user name shown in the admin
    url: Mapped[str | None] = mapped_column(Text)  # CalDAV server URL
    secret_enc: Mapped[str | None] = mapped_column(Text)  # encrypted JSON: tokens or password
    # Google / Microsoft: the OAuth app that issued the tokens ("platform" or "agency") and its
    # client id; tokens are only refreshed with that same app (else: needs reconnect).
    oauth_app: Mapped[str | None] = mapped_column(String(10))
    oauth_client_id: Mapped[str | None] = mapped_column(String(300))
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_ACTIVE)
    # [{"id": provider calendar id, "name": ...}] counted as busy; the target receives our events.
    busy_calendars: Mapped[list] = mapped_column(JSONB, default=list)
    target_calendar: Mapped[str | None] = mapped_column(Text)
    target_calendar_name: Mapped[str | None] = mapped_column(String(300))
    include_tentative: Mapped[bool] = mapped_column(Boolean, default=True)
    # Per busy calendar: {"<calendar id>": {"token": syncToken / deltaLink / sync-token}}.
    sync_state: Mapped[dict] = mapped_column(JSONB, default=dict)
    # Change notifications: Google channel {id, token, resource_id, expires}, Graph {id, client_state, expires}.
    channel: Mapped[dict] = mapped_column(JSONB, default=dict)
    next_renewal_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    next_pull_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_pull_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_push_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    alerted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    staff: Mapped[Staff | None] = relationship()
    location: Mapped[Location | None] = relationship()

    @property
    def owner_label(self) -> str:
        if self.owner_kind == "staff":
            return f"staff {self.staff.name if self.staff else self.staff_id}"
        if self.owner_kind == "location":
            return f"location {self.location.name if self.location else self.location_id}"
        return "business"


class CalendarEventLink(TenantBase):
    """Our event for one appointment in one connection's target calendar, and what we last wrote."""

    __tablename__ = "calendar_event_link"
    __table_args__ = (
        UniqueConstraint("connection_id", "appointment_id"),
        CheckConstraint("push_status IN ('ok', 'pending', 'retry', 'failed')", name="push_status"),
        Index("ix_calendar_event_link_external", "connection_id", "external_id"),
        Index("ix_calendar_event_link_due", "next_attempt_at", postgresql_where=text("push_status IN ('pending', 'retry')")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("calendar_connection.id", ondelete="CASCADE"))
    appointment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("appointment.id", ondelete="CASCADE"))
    calendar_id: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)  # Google event id, Graph id, CalDAV href
    etag: Mapped[str | None] = mapped_column(Text)  # etag / changeKey of our last write
    content_hash: Mapped[str | None] = mapped_column(String(64))  # None: deleted there by us
    pushed_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    pushed_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumps when re-created after a 404
    push_status: Mapped[str] = mapped_column(String(8), default="ok")
    push_attempts: Mapped[int] = mapped_column(Integer, default=0)
    push_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    provider_requests: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)

    connection: Mapped[CalendarConnection] = relationship()


class CalendarFeed(TenantBase):
    """A private iCalendar subscription URL (secret token) for a staff member or a customer."""

    __tablename__ = "calendar_feed"
    __table_args__ = (
        CheckConstraint("(staff_id IS NOT NULL) <> (customer_id IS NOT NULL)", name="owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
