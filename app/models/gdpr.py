"""GDPR and audit tables: the append-only audit logs, retention policy and auditor reports.

`audit_log` (in each tenant schema) and `platform_audit_log` (public schema) are
append-only in PostgreSQL itself: a trigger refuses UPDATE, DELETE and TRUNCATE for
every role (migrations t0010gdpr / p0006aud), so no code path, however wrong, can
rewrite history. Personal values never enter them (see app.gdpr.registry): a changed
name is recorded as changed, not as the name, so erasure leaves them untouched.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import PublicModel, TenantBase


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class AuditFields:
    """Columns shared by the tenant and the platform audit log."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # user | api_key | customer | public | job | cli | system
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(80))
    actor_label: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(128))
    # The table (create / update / delete / bulk_*) or a topic (gdpr, report, tenant).
    entity: Mapped[str] = mapped_column(String(63))
    entity_id: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    # {column: [before, after]} for row changes; free details for operations.
    changes: Mapped[dict] = mapped_column(JSONB, default=dict)


class AuditLog(AuditFields, TenantBase):
    """Who changed what in this business, when and from where (append-only)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_entity", "entity", "entity_id"),
        Index("ix_audit_log_customer", "customer_id"),
    )

    # The data subject the row is about (customer or staff id), for exports and reports.
    customer_id: Mapped[int | None] = mapped_column(Integer)
    staff_id: Mapped[int | None] = mapped_column(Integer)


class PlatformAuditLog(AuditFields, PublicModel):
    """Platform operations (tenants archived and dropped, agencies, memberships, API keys)."""

    __tablename__ = "platform_audit_log"
    __table_args__ = (Index("ix_platform_audit_log_at", "at"),)

    tenant_slug: Mapped[str | None] = mapped_column(String(41))


class RetentionPolicy(TenantBase):
    """One row per business: how long personal data is kept (None: kept)."""

    __tablename__ = "retention_policy"
    __table_args__ = (
        CheckConstraint("id = 1", name="single"),
        CheckConstraint("customer_inactive_months IS NULL OR customer_inactive_months >= 1", name="months"),
        CheckConstraint("message_body_days IS NULL OR message_body_days >= 1", name="body_days"),
        CheckConstraint("delivery_log_days IS NULL OR delivery_log_days >= 1", name="log_days"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    customer_inactive_months: Mapped[int | None] = mapped_column(Integer)
    message_body_days: Mapped[int | None] = mapped_column(Integer)
    delivery_log_days: Mapped[int | None] = mapped_column(Integer)
    # The scheduled job acts only when enabled, and enabling needs a dry run first.
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    dry_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    dry_run_report: Mapped[dict | None] = mapped_column(JSONB)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_report: Mapped[dict | None] = mapped_column(JSONB)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class AuditReport(TenantBase):
    """An auditor report asked for in the admin: built by an RQ job, downloaded when done."""

    __tablename__ = "audit_report"
    __table_args__ = (
        CheckConstraint("format IN ('pdf', 'csv')", name="format"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    period_to: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    format: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[str | None] = mapped_column(String(100))
    requested_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
