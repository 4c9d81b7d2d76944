"""RQ jobs (long work of a business, app/fairqueue.py): build one appointment export, or mark
one lost when its worker died. The export's progress is stored on its row as it goes."""

from __future__ import annotations

import datetime as dt
import os
import tempfile

from app.jobs.runtime import config, engine
from app.services import appointment_list as al
from app.services import exports as svc
from app.tenancy import tenant_session

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _progress(slug: str, export_id: int, percent: int) -> None:
    with tenant_session(engine(), slug) as (session, _ref):
        session.info["audit_off"] = True  # progress ticks are bookkeeping, not changes worth a row each
        svc.set_progress(session, export_id, percent)


def _ticking(rows, total: int, tick):
    """Pass `rows` through, calling tick(percent) about every 5 % of `total`."""
    step = max(1, total // 20)
    for n, row in enumerate(rows, start=1):
        yield row
        if n % step == 0 and total:  # rows added since the count: no division by zero
            tick(int(100 * n / total))


def build_export(slug: str, export_id: int) -> int:
    """Build export `export_id` of business `slug`; returns the file size (0: nothing to do)."""
    with tenant_session(engine(), slug) as (session, _ref):
        row = svc.start(session, export_id, _now())
        if row is None:
            return 0
        fmt, tz, f = row.format, row.timezone, svc.filters_from_json(row.filters)
    handle, path = tempfile.mkstemp(prefix="upz-export-", suffix=f".{fmt}")
    os.close(handle)
    try:
        with tenant_session(engine(), slug) as (session, _ref):
            total = al.count(session, f, tz)
            rows = _ticking(al.export_rows(session, f, tz), total, lambda pct: _progress(slug, export_id, pct))
            written = svc.write_file(fmt, rows, path)
        with open(path, "rb") as stream, tenant_session(engine(), slug) as (session, _ref):
            return svc.store_file(session, export_id, stream, written, _now(), svc.Limits.from_config(config()))
    except Exception as exc:
        with tenant_session(engine(), slug) as (session, _ref):
            svc.fail(session, export_id, f"cannot build the export: {exc}", _now())
        raise
    finally:
        os.unlink(path)


def lost_export(slug: str, export_id: int) -> bool:
    """Called by the long work sweep when the export's job is gone: the export fails, saying so."""
    with tenant_session(engine(), slug) as (session, _ref):
        return svc.lost(session, export_id, _now())
