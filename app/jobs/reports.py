"""RQ job: build one auditor report (progress stored on its row as it goes), keep the file for download."""

from __future__ import annotations

import datetime as dt

from app.jobs.runtime import config, engine
from app.models.gdpr import AuditReport
from app.tenancy import tenant_session

UTC = dt.timezone.utc


def _set(slug: str, report_id: int, **values) -> None:
    with tenant_session(engine(), slug) as (session, _ref):
        session.info["audit_off"] = True  # progress ticks are bookkeeping, not changes worth a row each
        row = session.get(AuditReport, report_id)
        for key, value in values.items():
            setattr(row, key, value)


def build_report(slug: str, report_id: int) -> int:
    """Build report `report_id` of `slug`; returns the file size."""
    from app.gdpr import reports

    _set(slug, report_id, status="running", progress=1, step="starting")
    try:
        with tenant_session(engine(), slug) as (session, ref):
            row = session.get(AuditReport, report_id)
            since, until, fmt = row.period_from, row.period_to, row.format
            data = reports.build(session, ref, since, until, dict(config()),
                                 progress=lambda pct, step: _set(slug, report_id, progress=pct, step=step))
        content = reports.render(data, fmt)
    except Exception as exc:
        _set(slug, report_id, status="failed", error=str(exc)[:2000], finished_at=dt.datetime.now(UTC))
        raise
    _set(slug, report_id, status="done", progress=100, step="done", content=content, finished_at=dt.datetime.now(UTC))
    return len(content)


LOST = "the worker building this report stopped before it finished; ask for it again"


def lost_report(slug: str, report_id: int) -> bool:
    """Called by the long work sweep when the report's job is gone (its worker died): a queued
    or running report fails, saying so."""
    from app.gdpr import reports

    with tenant_session(engine(), slug) as (session, _ref):
        return reports.fail(session, report_id, LOST, dt.datetime.now(UTC))
