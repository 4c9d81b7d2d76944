"""Business data of one client: lives in that client's `tenant_<slug>` schema.

Wall-clock rules (hours, breaks, overrides) are minutes after local midnight in
the location's zone (0..1440, so "24:00" is representable); instants are UTC
`timestamptz`. Keys are the stable identifiers used by the setup file, the
public API and the widget; ids never leave the admin.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import TenantBase

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MEETING_TYPES = ("none", "zoom", "teams", "google_meet")

STATUS_PENDING = "pending"
STATUS_CONFIRMED = "confirmed"
STATUS_CANCELLED = "cancelled"
STATUS_COMPLETED = "completed"
STATUS_NO_SHOW = "no_show"
STATUSES = (STATUS_PENDING, STATUS_CONFIRMED, STATUS_CANCELLED, STATUS_COMPLETED, STATUS_NO_SHOW)
LIVE_STATUSES = (STATUS_PENDING, STATUS_CONFIRMED, STATUS_COMPLETED, STATUS_NO_SHOW)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def minutes_to_hhmm(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


class WeeklySpan:
    """Display helpers shared by weekly wall-clock rows (hours, breaks)."""

    weekday: int
    start_min: int
    end_min: int

    @property
    def weekday_name(self) -> str:
        return WEEKDAYS[self.weekday].capitalize() if self.weekday is not None else ""

    @property
    def start(self) -> str:
        return minutes_to_hhmm(self.start_min)

    @property
    def end(self) -> str:
        return minutes_to_hhmm(self.end_min)


def intervals_to_text(intervals) -> str:
    return ", ".join(f"{minutes_to_hhmm(a)}-{minutes_to_hhmm(b)}" for a, b in intervals or [])


def _span_check(table: str) -> CheckConstraint:
    return CheckConstraint("start_min >= 0 AND end_min <= 1440 AND start_min < end_min", name="span")


def _weekday_check() -> CheckConstraint:
    return CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday")


service_location = Table(
    "service_location",
    TenantBase.metadata,
    Column("service_id", ForeignKey("service.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", ForeignKey("location.id", ondelete="CASCADE"), primary_key=True),
)
staff_service = Table(
    "staff_service",
    TenantBase.metadata,
    Column("staff_id", ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("service.id", ondelete="CASCADE"), primary_key=True),
)
staff_location = Table(
    "staff_location",
    TenantBase.metadata,
    Column("staff_id", ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", ForeignKey("location.id", ondelete="CASCADE"), primary_key=True),
)


class Location(TenantBase):
    __tablename__ = "location"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    address: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(40))
    latitude: Mapped[float | None] = mapped_column(Numeric(9, 6, asdecimal=False))
    longitude: Mapped[float | None] = mapped_column(Numeric(9, 6, asdecimal=False))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    hours: Mapped[list["LocationHours"]] = relationship(
        back_populates="location", cascade="all, delete-orphan", order_by="(LocationHours.weekday, LocationHours.start_min)"
    )
    closures: Mapped[list["LocationClosure"]] = relationship(
        back_populates="location", cascade="all, delete-orphan", order_by="LocationClosure.date"
    )

    def __repr__(self) -> str:
        return self.name


class LocationHours(WeeklySpan, TenantBase):
    """Opening hours; a location with no rows at all restricts nothing."""

    __tablename__ = "location_hours"
    __table_args__ = (_span_check("location_hours"), _weekday_check())

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start_min: Mapped[int] = mapped_column(Integer)
    end_min: Mapped[int] = mapped_column(Integer)

    location: Mapped[Location] = relationship(back_populates="hours")


class LocationClosure(TenantBase):
    __tablename__ = "location_closure"
    __table_args__ = (UniqueConstraint("location_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(200))

    location: Mapped[Location] = relationship(back_populates="closures")


class Category(TenantBase):
    __tablename__ = "category"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return self.name


class Service(TenantBase):
    __tablename__ = "service"
    __table_args__ = (
        CheckConstraint("duration_min BETWEEN 5 AND 1440", name="duration"),
        CheckConstraint("buffer_before_min >= 0 AND buffer_after_min >= 0", name="buffers"),
        CheckConstraint("slot_interval_min IS NULL OR slot_interval_min >= 5", name="interval"),
        CheckConstraint("capacity >= 1", name="capacity"),
        CheckConstraint("min_notice_min >= 0 AND max_advance_days >= 1", name="window"),
        CheckConstraint("meeting IN ('none', 'zoom', 'teams', 'google_meet')", name="meeting"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id", ondelete="SET NULL"))
    duration_min: Mapped[int] = mapped_column(Integer)
    price: Mapped[decimal.Decimal | None] = mapped_column(Numeric(10, 2))
    buffer_before_min: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_min: Mapped[int] = mapped_column(Integer, default=0)
    slot_interval_min: Mapped[int | None] = mapped_column(Integer)
    min_notice_min: Mapped[int] = mapped_column(Integer, default=0)
    max_advance_days: Mapped[int] = mapped_column(Integer, default=365)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    meeting: Mapped[str] = mapped_column(String(20), default="none")
    # True: offered at every location, including ones added later (file: no "locations").
    all_locations: Mapped[bool] = mapped_column(Boolean, default=True)
    # Policy windows: customers may not cancel / reschedule later than this before the start.
    cancel_window_min: Mapped[int] = mapped_column(Integer, default=0)
    reschedule_window_min: Mapped[int] = mapped_column(Integer, default=0)
    allow_recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    category: Mapped[Category | None] = relationship()
    locations: Mapped[list[Location]] = relationship(secondary=service_location, order_by="Location.key")

    def __repr__(self) -> str:
        return self.name

    @property
    def is_group(self) -> bool:
        return self.capacity > 1


class Staff(TenantBase):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    bio: Mapped[str | None] = mapped_column(Text)
    photo_url: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The FAB user (public.ab_user.id) who logs in as this staff member.
    user_id: Mapped[int | None] = mapped_column(Integer, unique=True)

    services: Mapped[list[Service]] = relationship(secondary=staff_service, order_by="Service.key")
    locations: Mapped[list[Location]] = relationship(secondary=staff_location, order_by="Location.key")
    hours: Mapped[list["StaffHours"]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", order_by="(StaffHours.weekday, StaffHours.start_min)"
    )
    breaks: Mapped[list["StaffBreak"]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", order_by="(StaffBreak.weekday, StaffBreak.start_min)"
    )
    overrides: Mapped[list["StaffOverride"]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", order_by="StaffOverride.date"
    )
    time_off: Mapped[list["TimeOff"]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", order_by="TimeOff.start_at"
    )

    def __repr__(self) -> str:
        return self.name


class StaffHours(WeeklySpan, TenantBase):
    __tablename__ = "staff_hours"
    __table_args__ = (_span_check("staff_hours"), _weekday_check())

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(Integer)
    start_min: Mapped[int] = mapped_column(Integer)
    end_min: Mapped[int] = mapped_column(Integer)

    staff: Mapped[Staff] = relationship(back_populates="hours")
    location: Mapped[Location] = relationship()


class StaffBreak(WeeklySpan, TenantBase):
    __tablename__ = "staff_break"
    __table_args__ = (_span_check("staff_break"), _weekday_check())

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(Integer)
    start_min: Mapped[int] = mapped_column(Integer)
    end_min: Mapped[int] = mapped_column(Integer)

    staff: Mapped[Staff] = relationship(back_populates="breaks")
    location: Mapped[Location | None] = relationship()


class StaffOverride(TenantBase):
    """Hours of one date at one location replacing the weekly ones; no intervals = day off."""

    __tablename__ = "staff_override"
    __table_args__ = (UniqueConstraint("staff_id", "location_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date)
    # [[start_min, end_min], ...]
    intervals: Mapped[list] = mapped_column(JSONB, default=list)

    staff: Mapped[Staff] = relationship(back_populates="overrides")
    location: Mapped[Location] = relationship()

    @property
    def intervals_text(self) -> str:
        return intervals_to_text(self.intervals) or "day off"


class TimeOff(TenantBase):
    __tablename__ = "time_off"
    __table_args__ = (CheckConstraint("start_at < end_at", name="span"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    start_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(200))

    staff: Mapped[Staff] = relationship(back_populates="time_off")


class BusyBlock(TenantBase):
    """A busy interval reported by an external calendar; never an appointment.

    A staff member's block keeps that person from every booking (AVAILABILITY.md §5.3); a
    location's block (from its front-desk calendar) closes that location for the time,
    for everyone working there. Exactly one of staff_id / location_id is set.
    """

    __tablename__ = "busy_block"
    __table_args__ = (
        CheckConstraint("start_at < end_at", name="span"),
        CheckConstraint("(staff_id IS NOT NULL) <> (location_id IS NOT NULL)", name="owner"),
        UniqueConstraint("staff_id", "source", "external_id"),
        Index("ix_busy_block_staff_range", "staff_id", "start_at", "end_at"),
        Index("ix_busy_block_location_range", "location_id", "start_at", "end_at"),
        Index("uq_busy_block_location_source_external", "location_id", "source", "external_id", unique=True,
              postgresql_where=text("location_id IS NOT NULL")),
        Index("ix_busy_block_connection_event", "connection_id", "event_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    start_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(40), default="import")
    external_id: Mapped[str] = mapped_column(String(255), default=lambda: uuid.uuid4().hex)
    # Calendar sync (app/services/calendars.py): the connection it came from and a key of
    # the foreign event (every occurrence of one event shares it); NULL for imported blocks.
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("calendar_connection.id", ondelete="CASCADE"))
    event_key: Mapped[str | None] = mapped_column(String(64))

    staff: Mapped[Staff | None] = relationship()


class Customer(TenantBase):
    __tablename__ = "customer"
    __table_args__ = (Index("uq_customer_email_lower", text("lower(email)"), unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    locale: Mapped[str | None] = mapped_column(String(10))
    timezone: Mapped[str | None] = mapped_column(String(64))
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    def __repr__(self) -> str:
        return f"{self.name} <{self.email}>"


class Series(TenantBase):
    """A recurring booking: the rule it was made from; occurrences are appointments."""

    __tablename__ = "series"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    rrule: Mapped[str] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Appointment(TenantBase):
    """One customer's booking of one (service, staff, start); group seats share a session_key.

    The exclusion constraint (created in the migration) refuses two live rows of
    one staff member whose padded ranges overlap unless they share a session_key,
    which only seats of the same group session do.
    """

    __tablename__ = "appointment"
    __table_args__ = (
        CheckConstraint("start_at < end_at", name="span"),
        CheckConstraint("padded_start <= start_at AND padded_end >= end_at", name="padding"),
        CheckConstraint("seats >= 1", name="seats"),
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')", name="status"
        ),
        Index("ix_appointment_staff_start", "staff_id", "start_at"),
        Index("ix_appointment_start", "start_at"),
        Index("ix_appointment_customer", "customer_id"),
        Index("ix_appointment_series", "series_id"),
        Index("ix_appointment_meeting_status", "meeting_status",
              postgresql_where=text("meeting_status IN ('pending', 'retry', 'failed')")),
        # Dashboards (t0009dash): index-only scans for analytics, and the calendar/list filters.
        Index("ix_appointment_start_cover", "start_at", postgresql_include=[
            "status", "staff_id", "service_id", "location_id", "source", "seats", "price", "currency", "end_at", "created_at"]),
        Index("ix_appointment_location_start", "location_id", "start_at"),
        Index("ix_appointment_service_start", "service_id", "start_at"),
        Index("ix_appointment_status_start", "status", "start_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="RESTRICT"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="RESTRICT"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id", ondelete="RESTRICT"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    series_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("series.id", ondelete="SET NULL"))
    start_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    padded_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    padded_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    session_key: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=STATUS_CONFIRMED)
    seats: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(20), default="admin")
    timezone: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    answers: Mapped[dict] = mapped_column(JSONB, default=dict)
    price: Mapped[decimal.Decimal | None] = mapped_column(Numeric(10, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # Online meeting (app/jobs/meetings.py fills these after the booking commits):
    # provider zoom / teams / google_meet; details: {"passcode", "dial_in": [...], ...}.
    meeting_provider: Mapped[str | None] = mapped_column(String(20))
    meeting_id: Mapped[str | None] = mapped_column(String(200))
    meeting_join_url: Mapped[str | None] = mapped_column(Text)
    meeting_details: Mapped[dict | None] = mapped_column(JSONB)
    # NULL (no meeting wanted), pending, ready, retry, failed, deleted.
    meeting_status: Mapped[str | None] = mapped_column(String(12))
    meeting_error: Mapped[str | None] = mapped_column(Text)
    meeting_attempts: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)

    service: Mapped[Service] = relationship()
    staff: Mapped[Staff] = relationship()
    location: Mapped[Location | None] = relationship()
    customer: Mapped[Customer] = relationship()
    series: Mapped[Series | None] = relationship()
    history: Mapped[list["StatusChange"]] = relationship(
        back_populates="appointment", cascade="all, delete-orphan", order_by="StatusChange.at"
    )

    @property
    def live(self) -> bool:
        return self.status != STATUS_CANCELLED

    def __repr__(self) -> str:
        return f"{self.service.name if self.service else ''} {self.start_at:%Y-%m-%d %H:%M}Z"


class StatusChange(TenantBase):
    __tablename__ = "status_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)

    appointment: Mapped[Appointment] = relationship(back_populates="history")


class OutboxEvent(TenantBase):
    """A domain event written in the transaction that caused it; relayed to RQ after commit."""

    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_pending", "id", postgresql_where=text("relayed_at IS NULL")),
                      Index("ix_outbox_unhandled", "relayed_at",
                            postgresql_where=text("handled_at IS NULL AND relayed_at IS NOT NULL")))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(60))
    aggregate_id: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    relayed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by the notification job that planned the event's deliveries (t0011out).
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class IdempotencyKey(TenantBase):
    """The stored answer to a POST made with an Idempotency-Key header."""

    __tablename__ = "idempotency_key"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class SavedFilter(TenantBase):
    """A named appointments-list filter of one admin user (the list's query string)."""

    __tablename__ = "saved_filter"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
