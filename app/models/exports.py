"""Exports built in the background: the appointment list as CSV / XLSX when it is too big to
stream within one request (app/services/exports.py). The file is kept in 1 MiB chunks, so a
web process streams it to the browser chunk by chunk and any node can serve it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import TenantBase


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ExportFile(TenantBase):
    """One export asked for by one user: its filters, its progress, then its file until it expires."""

    __tablename__ = "export_file"
    __table_args__ = (
        CheckConstraint("kind IN ('appointments')", name="kind"),
        CheckConstraint("format IN ('csv', 'xlsx')", name="format"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index("ix_export_file_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="appointments")
    format: Mapped[str] = mapped_column(String(4))
    filters: Mapped[dict] = mapped_column(JSONB, default=dict)
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ExportChunk(TenantBase):
    """A piece of an export's file, in order of `seq`."""

    __tablename__ = "export_chunk"

    export_id: Mapped[int] = mapped_column(ForeignKey("export_file.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
