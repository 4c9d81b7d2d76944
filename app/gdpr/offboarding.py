"""Tenant offboarding: a whole business (setup and data) streamed into a zip archive, then its schema dropped.

The archive holds `manifest.json` (the business's row, schema revision, tables and row
counts), `setup.json` (the setup file, re-importable) and `data/<table>.jsonl` (every row
of every table of the schema, one JSON object a line). Rows stream from PostgreSQL's
COPY straight into the zip entry, so memory stays flat whatever the size. Archive and
drop are written to the platform audit log (the drop in the same transaction as the DROP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zipfile
from typing import BinaryIO

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.gdpr import audit
from app.models.public import Tenant
from app.tenancy import route_session

UTC = dt.timezone.utc
CHUNK = 1 << 20


class _Counting:
    """A write-only file wrapper that counts bytes and hashes them (for the manifest and the log)."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.size, self.sha = raw, 0, hashlib.sha256()

    def write(self, data) -> int:
        self.size += len(data)
        self.sha.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def archive_tenant(engine: Engine, slug: str, out: BinaryIO) -> dict:
    """Write the archive of `slug` to `out` (a binary file); returns the manifest."""
    from app.services.setup_io import export_setup

    with Session(engine) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise LookupError(f"unknown tenant {slug!r}")
        schema = tenant.schema_name
        row = {c.name: audit.jsonable(getattr(tenant, c.key)) for c in Tenant.__table__.columns}
        route_session(session, schema)
        setup = export_setup(session, tenant, with_appointments=False)  # they are in data/appointment.jsonl
    counting = _Counting(out)
    manifest = {"format": "upzento-tenant-archive/1", "tenant": row, "schema": schema,
                "created_at": dt.datetime.now(UTC).isoformat(), "tables": {}}
    with engine.connect() as conn, zipfile.ZipFile(counting, "w", compression=zipfile.ZIP_DEFLATED,
                                                   compresslevel=1, allowZip64=True) as zf:
        with conn.begin():
            # One snapshot for every table: the archive is consistent even while bookings go on.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            manifest["revision"] = conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version')).scalars().all()
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
                                  {"s": schema}).scalars().all()
            zf.writestr("setup.json", json.dumps(setup, ensure_ascii=False, indent=2, default=str))
            raw = conn.connection.driver_connection
            for table in tables:
                lines = 0
                with zf.open(f"data/{table}.jsonl", "w", force_zip64=True) as entry, raw.cursor() as cur:
                    # CSV with a quote and delimiter that JSON never contains: each line is the JSON as is.
                    sql = (f'COPY (SELECT to_jsonb(t)::text FROM "{schema}"."{table}" t) TO STDOUT'
                           " WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')")
                    with cur.copy(sql) as copy:
                        for chunk in copy:
                            data = bytes(chunk)
                            lines += data.count(b"\n")
                            entry.write(data)
                manifest["tables"][table] = lines
            zf.writestr("manifest.json", json.dumps(manifest, indent=2, default=str))
    manifest["bytes"], manifest["sha256"] = counting.size, counting.sha.hexdigest()
    with Session(engine) as session, session.begin():
        audit.note(session, "tenant", "archive", row["id"], {"bytes": counting.size, "sha256": manifest["sha256"],
                   "rows": sum(manifest["tables"].values())}, platform=True, tenant_slug=slug)
    return manifest


def offboard(engine: Engine, slug: str, out: BinaryIO) -> dict:
    """Archive, then drop the business (schema and public rows); both steps in the platform audit log."""
    from tenants.provisioning import delete_tenant

    manifest = archive_tenant(engine, slug, out)
    out.flush()
    delete_tenant(engine, slug)
    return manifest
