"""Widget, booking form, consent and customer-portal tables (inside each tenant schema).

Consent texts are immutable: a changed text is a new row with the next version,
so a consent record always points at the exact words the customer agreed to.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import TenantBase
from app.models.tenant import Appointment, Customer, Service

WIDGET_MODES = ("inline", "popup", "floating")
WIDGET_LANGUAGES = ("auto", "en", "de", "fr", "es")
FIELD_TYPES = ("text", "textarea", "email", "phone", "number", "select", "multiselect", "checkbox", "date")
CONSENT_KINDS = ("terms", "privacy", "marketing")
CONSENT_CHANNELS = ("widget", "api", "portal", "admin", "import")
REQUEST_KINDS = ("erasure", "export")
REQUEST_STATUSES = ("requested", "approved", "done", "refused")
REQUEST_DEADLINE = dt.timedelta(days=30)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_public_id() -> str:
    return "w" + secrets.token_hex(6)


class Widget(TenantBase):
    """One embeddable booking widget; a tenant may have several (per site, per campaign)."""

    __tablename__ = "widget"
    __table_args__ = (
        CheckConstraint("mode IN ('inline', 'popup', 'floating')", name="mode"),
        CheckConstraint("radius_px BETWEEN 0 AND 32", name="radius"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(20), unique=True, default=new_public_id)
    name: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(10), default="inline")
    primary_color: Mapped[str] = mapped_column(String(7), default="#1d4ed8")
    accent_color: Mapped[str] = mapped_column(String(7), default="#0f766e")
    logo_url: Mapped[str | None] = mapped_column(String(500))
    font_family: Mapped[str | None] = mapped_column(String(100))
    radius_px: Mapped[int] = mapped_column(Integer, default=8)
    language: Mapped[str] = mapped_column(String(5), default="auto")
    button_label: Mapped[str | None] = mapped_column(String(60))
    default_service: Mapped[str | None] = mapped_column(String(63))
    default_location: Mapped[str | None] = mapped_column(String(63))
    show_location_step: Mapped[bool] = mapped_column(Boolean, default=True)
    show_staff_step: Mapped[bool] = mapped_column(Boolean, default=True)
    show_phone: Mapped[bool] = mapped_column(Boolean, default=True)
    # Keys of custom form fields this widget does not ask for.
    hidden_fields: Mapped[list] = mapped_column(JSONB, default=list)
    # Origins (scheme://host[:port]) allowed to frame the widget and to talk to it.
    allowed_origins: Mapped[list] = mapped_column(JSONB, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)

    def __repr__(self) -> str:
        return self.name


class FormField(TenantBase):
    """A question of the booking form: for every service (service_id NULL) or one service."""

    __tablename__ = "form_field"
    __table_args__ = (
        CheckConstraint(
            "field_type IN ('text', 'textarea', 'email', 'phone', 'number', 'select', 'multiselect', 'checkbox', 'date')",
            name="field_type",
        ),
        CheckConstraint("key ~ '^[a-z][a-z0-9_]{0,40}$'", name="key_format"),
        Index("uq_form_field_scope_key", text("coalesce(service_id, 0)"), "key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(41))
    label: Mapped[str] = mapped_column(String(200))
    field_type: Mapped[str] = mapped_column(String(20), default="text")
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    help_text: Mapped[str | None] = mapped_column(String(500))
    # Choices of select / multiselect, one per line in the admin.
    options: Mapped[list] = mapped_column(JSONB, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    service: Mapped[Service | None] = relationship()

    def __repr__(self) -> str:
        return self.label


class ConsentText(TenantBase):
    """One version of the terms or the privacy notice; never edited, superseded by a new version."""

    __tablename__ = "consent_text"
    __table_args__ = (
        UniqueConstraint("kind", "version"),
        CheckConstraint("kind IN ('terms', 'privacy', 'marketing')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    created_by: Mapped[str | None] = mapped_column(String(120))

    def __repr__(self) -> str:
        return f"{self.kind} v{self.version}"


class ConsentRecord(TenantBase):
    """Who agreed to which text version, when, over which channel and from which IP; and its withdrawal."""

    __tablename__ = "consent_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_text_id: Mapped[int] = mapped_column(ForeignKey("consent_text.id", ondelete="RESTRICT"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appointment.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(254))
    ip: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    channel: Mapped[str] = mapped_column(String(20), default="widget")
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_channel: Mapped[str | None] = mapped_column(String(20))

    text: Mapped[ConsentText] = relationship()
    customer: Mapped[Customer] = relationship()
    appointment: Mapped[Appointment | None] = relationship()


class PortalToken(TenantBase):
    """A single-use magic sign-in link of the customer portal (only its hash is kept)."""

    __tablename__ = "portal_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PortalLoginAttempt(TenantBase):
    """Magic-link requests, counted per email and per IP for rate limiting."""

    __tablename__ = "portal_login_attempt"
    __table_args__ = (Index("ix_portal_login_attempt_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    ip: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class NotificationPreference(TenantBase):
    """A customer's choices about reminders (SMS opt-out lives on customer.sms_opt_out)."""

    __tablename__ = "notification_preference"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    email_reminders: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class ErasureRequest(TenantBase):
    """A data-subject request (erasure or export) with its timeline against the 30-day deadline.

    Portal erasure requests wait for a client admin's approval, then are carried out
    (app.gdpr.subjects.carry_out); exports and operator erasures are recorded done at once.
    """

    __tablename__ = "erasure_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), default="erasure")
    channel: Mapped[str] = mapped_column(String(20), default="portal")
    # Cleared when the request is carried out (the subject's address is then gone too).
    email: Mapped[str | None] = mapped_column(String(254))
    ip: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="requested")
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    handled_by: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer | None] = relationship()

    @property
    def deadline(self) -> dt.datetime:
        return self.due_at or (self.requested_at or _now()) + REQUEST_DEADLINE

    @property
    def on_time(self) -> bool | None:
        """True/False once handled (handled by the deadline?); None while open."""
        if self.handled_at is None:
            return None
        return self.handled_at <= self.deadline
