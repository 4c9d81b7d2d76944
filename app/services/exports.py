"""Appointment exports: streamed within the request when small, built by a background job when big.

An export of at most `EXPORT_INLINE_ROWS` rows (default 20,000) streams straight to the
browser. A bigger one would hold a web worker for as long as it takes, so it becomes an
`export_file` row and long work of its business (app/fairqueue.py: businesses take turns,
so one business's many huge exports do not delay another's). The job (app/jobs/exports.py)
writes the file to a temporary file, then stores it in 1 MiB `export_chunk` rows in one
transaction: any node serves the download, chunk by chunk, with bounded memory. A finished
file is kept `EXPORT_KEEP_HOURS` (default 24) and only for the user who asked for it;
the daily retention job deletes it after that.

States: queued -> running -> done | failed. A job whose worker died is found by the long
work sweep, which calls `lost` (the row fails with a message saying to ask again).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationError
from app.gdpr import audit
from app.models.exports import ExportChunk, ExportFile
from app.services import appointment_list as al

FORMATS = ("csv", "xlsx")
CHUNK_BYTES = 1 << 20
BUILD_JOB = "app.jobs.exports.build_export"
LOST_JOB = "app.jobs.exports.lost_export"
LOST_MESSAGE = "the worker building this export stopped before it finished; ask for it again"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MIMETYPES = {"csv": "text/csv", "xlsx": XLSX_MIMETYPE}


@dataclasses.dataclass(frozen=True)
class Limits:
    inline_rows: int = 20_000
    keep_hours: float = 24.0

    @classmethod
    def from_config(cls, config) -> "Limits":
        return cls(inline_rows=int(config.get("EXPORT_INLINE_ROWS", 20_000)),
                   keep_hours=float(config.get("EXPORT_KEEP_HOURS", 24)))


def check_format(fmt: str | None) -> str:
    if fmt not in FORMATS:
        raise ValidationError("format is csv or xlsx", "format")
    return fmt


def filters_to_json(f: al.ListFilter) -> dict[str, Any]:
    out = {}
    for name, value in dataclasses.asdict(f).items():
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, dt.date) else value
    return out


def filters_from_json(data: dict[str, Any]) -> al.ListFilter:
    values = dict(data or {})
    for name in ("date_from", "date_to"):
        if values.get(name):
            values[name] = dt.date.fromisoformat(values[name])
    return al.ListFilter(**values)


def file_name(row: ExportFile) -> str:
    return f"appointments-{row.created_at:%Y-%m-%d}-{row.id}.{row.format}"


# --------------------------------------------------------------------------- writing a file


def csv_pieces(rows: Iterable[tuple], every: int = 1000) -> Iterator[str]:
    """The CSV text of the header and `rows`, in pieces of `every` rows (for streaming)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(al.EXPORT_COLUMNS)
    for n, row in enumerate(rows, start=1):
        writer.writerow(row)
        if n % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_file(fmt: str, rows: Iterable[tuple], path: str) -> int:
    """Write the export to `path`; returns how many rows it holds. Memory stays bounded whatever
    the number of rows."""
    written = 0

    def counted():
        nonlocal written
        for row in rows:
            written += 1
            yield row

    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as out:
            for piece in csv_pieces(counted()):
                out.write(piece)
        return written
    import tempfile

    import xlsxwriter

    # Constant-memory mode: each row goes to a temporary file as it is written.
    book = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": tempfile.gettempdir()})
    sheet = book.add_worksheet("appointments")
    sheet.write_row(0, 0, al.EXPORT_COLUMNS)
    for i, row in enumerate(counted(), start=1):
        sheet.write_row(i, 0, row)
    book.close()
    return written


# --------------------------------------------------------------------------- the export's life


def request(session: Session, fmt: str, f: al.ListFilter, tz: str, user_id: int | None, requested_by: str | None,
            now: dt.datetime) -> ExportFile:
    """A queued export of the appointments matching `f` (the caller submits its job after commit)."""
    row = ExportFile(kind="appointments", format=check_format(fmt), filters=filters_to_json(f), timezone=tz,
                     status="queued", progress=0, user_id=user_id, requested_by=requested_by, created_at=now)
    session.add(row)
    session.flush()
    audit.note(session, "export", "request", row.id, {"format": fmt, "filters": row.filters, "timezone": tz})
    return row


def start(session: Session, export_id: int, now: dt.datetime) -> ExportFile | None:
    """Mark a queued export running; None when it is not queued (done, failed, or another job has it)."""
    row = session.scalar(select(ExportFile).where(ExportFile.id == export_id).with_for_update())
    if row is None or row.status != "queued":
        return None
    row.status, row.started_at, row.progress = "running", now, 1
    return row


def set_progress(session: Session, export_id: int, percent: int) -> None:
    session.execute(update(ExportFile).where(ExportFile.id == export_id, ExportFile.status == "running")
                    .values(progress=max(1, min(99, percent))))


def store_file(session: Session, export_id: int, stream: IO[bytes], rows: int, now: dt.datetime,
               limits: Limits) -> int:
    """Keep the built file as chunks and mark the export done; returns its size in bytes."""
    row = session.scalar(select(ExportFile).where(ExportFile.id == export_id).with_for_update())
    if row is None or row.status != "running":
        return 0  # failed meanwhile (the sweep called it lost) or deleted: keep nothing
    session.execute(delete(ExportChunk).where(ExportChunk.export_id == export_id))
    size, seq = 0, 0
    while piece := stream.read(CHUNK_BYTES):
        session.add(ExportChunk(export_id=export_id, seq=seq, data=piece))
        session.flush()
        session.expunge_all()  # the chunk's bytes are in the database now, not kept in this process
        size, seq = size + len(piece), seq + 1
    session.execute(update(ExportFile).where(ExportFile.id == export_id).values(
        status="done", progress=100, rows=rows, size=size, finished_at=now, error=None,
        expires_at=now + dt.timedelta(hours=limits.keep_hours)))
    return size


def fail(session: Session, export_id: int, error: str, now: dt.datetime) -> bool:
    """A queued or running export failed: say why, keep no file; False if it had already ended."""
    done = session.execute(update(ExportFile).where(
        ExportFile.id == export_id, ExportFile.status.in_(("queued", "running"))).values(
        status="failed", error=error[:2000], finished_at=now).returning(ExportFile.id)).scalar()
    if done is None:
        return False
    session.execute(delete(ExportChunk).where(ExportChunk.export_id == export_id))
    return True


def lost(session: Session, export_id: int, now: dt.datetime) -> bool:
    """The long work sweep found the export's job gone (its worker died): the export fails."""
    return fail(session, export_id, LOST_MESSAGE, now)


def for_user(session: Session, user_id: int | None, limit: int = 20) -> list[ExportFile]:
    """The user's latest exports, newest first."""
    return list(session.scalars(select(ExportFile).where(ExportFile.user_id == user_id)
                                .order_by(ExportFile.created_at.desc(), ExportFile.id.desc()).limit(limit)))


def listed(session: Session, limit: int = 50) -> list[ExportFile]:
    """The business's latest exports, newest first (for operators)."""
    return list(session.scalars(select(ExportFile).order_by(ExportFile.created_at.desc(), ExportFile.id.desc())
                                .limit(limit)))


def ready(session: Session, export_id: int, user_id: int | None, now: dt.datetime, any_user: bool = False) -> ExportFile:
    """A finished, unexpired export of this user (any user's with `any_user`), or NotFound."""
    row = session.get(ExportFile, export_id)
    if row is None or (not any_user and row.user_id != user_id):
        raise NotFound("no such export", "export")
    if row.status != "done" or (row.expires_at is not None and row.expires_at <= now):
        raise NotFound("the export is not ready, or it has expired", "export")
    audit.note(session, "export", "download", row.id, {"format": row.format, "rows": row.rows})
    return row


def chunks(session: Session, export_id: int) -> Iterator[bytes]:
    """The file's bytes, one chunk at a time (a server-side cursor: one chunk in memory)."""
    query = (select(ExportChunk.data).where(ExportChunk.export_id == export_id).order_by(ExportChunk.seq)
             .execution_options(stream_results=True, yield_per=1))
    for data in session.scalars(query):
        yield bytes(data)


def purge(session: Session, now: dt.datetime, limits: Limits) -> int:
    """Delete expired files, and failed or stuck rows older than the keeping time; returns how many."""
    old = now - dt.timedelta(hours=limits.keep_hours)
    return len(session.execute(delete(ExportFile).where(
        (ExportFile.expires_at < now) | ((ExportFile.status != "done") & (ExportFile.created_at < old)))
        .returning(ExportFile.id)).all())
