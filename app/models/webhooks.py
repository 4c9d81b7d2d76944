"""Outgoing webhooks and integration credentials.

Endpoints belong to one business (`webhook_endpoint`, in its schema) or to an
agency (`agency_webhook_endpoint`, public schema, hearing every business of the
agency). Deliveries always live in the schema of the business whose event they
carry, so a business's data (and its deletion) stays in its own schema; an agency
endpoint's log is the union over its businesses.

One `webhook_delivery` row is one event to one endpoint. Its `msg_id` is the
Standard Webhooks `webhook-id`: every retry and every replay sends the same id,
so receivers can drop duplicates.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import PublicModel, TenantBase

DELIVERY_STATUSES = ("pending", "sending", "retry", "delivered", "failed")
SCOPE_TENANT = "tenant"
SCOPE_AGENCY = "agency"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class EndpointFields:
    """Columns shared by business and agency endpoints."""

    uid: Mapped[str] = mapped_column(String(40), unique=True)
    url: Mapped[str] = mapped_column(Text)
    # Event names this endpoint hears; an empty list hears every event.
    events: Mapped[list] = mapped_column(JSONB, default=list)
    description: Mapped[str | None] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # `whsec_...`, encrypted with app.crypto; the previous one stays valid until old_secret_until.
    secret_enc: Mapped[str] = mapped_column(Text)
    old_secret_enc: Mapped[str | None] = mapped_column(Text)
    old_secret_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    def hears(self, event_type: str) -> bool:
        return self.enabled and (not self.events or event_type in self.events)

    def __repr__(self) -> str:
        return self.url


class WebhookEndpoint(EndpointFields, TenantBase):
    """An endpoint of one business."""

    __tablename__ = "webhook_endpoint"
    scope = SCOPE_TENANT

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class AgencyWebhookEndpoint(EndpointFields, PublicModel):
    """An endpoint of an agency: hears the events of every business of the agency."""

    __tablename__ = "agency_webhook_endpoint"
    scope = SCOPE_AGENCY

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"), index=True)


class WebhookDelivery(TenantBase):
    """One event to one endpoint: the delivery log."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        CheckConstraint("endpoint_scope IN ('tenant', 'agency')", name="scope"),
        CheckConstraint("status IN ('pending', 'sending', 'retry', 'delivered', 'failed')", name="status"),
        Index("uq_webhook_delivery_once", "endpoint_scope", "endpoint_id", "event_id", unique=True,
              postgresql_where=text("event_id IS NOT NULL")),
        Index("ix_webhook_delivery_due", "endpoint_scope", "endpoint_id", "event_at", "id",
              postgresql_where=text("status IN ('pending', 'retry', 'sending')")),
        Index("ix_webhook_delivery_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(40))
    endpoint_scope: Mapped[str] = mapped_column(String(8))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(60))
    # The outbox event; NULL for test events.
    event_id: Mapped[int | None] = mapped_column(Integer)
    event_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The exact JSON bytes signed and sent (a retry or replay sends the same).
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    request_headers: Mapped[dict | None] = mapped_column(JSONB)
    response_body: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class IntegrationCredential(PublicModel):
    """Provider credentials (zoom, teams, google) of an agency or one business, encrypted as one JSON text."""

    __tablename__ = "integration_credential"
    __table_args__ = (
        CheckConstraint("(agency_id IS NULL) <> (tenant_id IS NULL)", name="scope"),
        Index("uq_integration_credential_agency", "agency_id", "provider", unique=True,
              postgresql_where=text("agency_id IS NOT NULL")),
        Index("uq_integration_credential_tenant", "tenant_id", "provider", unique=True,
              postgresql_where=text("tenant_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    data_enc: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class InboundWebhookEvent(PublicModel):
    """Ids of inbound provider notifications already handled (a repeat is answered and ignored)."""

    __tablename__ = "inbound_webhook_event"

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class ProviderMeeting(PublicModel):
    """Which business and appointment a meeting made through a provider's API belongs to, so a
    provider's notification about the meeting (Zoom's `meeting.*` webhooks carry only the
    meeting id) reaches that one schema instead of a search through every business."""

    __tablename__ = "provider_meeting"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
