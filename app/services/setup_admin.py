"""Setup import from the admin: who may import which file, then the same all-or-nothing import as the CLI."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models.public import Agency, Tenant
from app.security import Scope
from app.services.invitations import manages_agency, manages_tenant
from app.services.setup_io import ImportReport, SetupError, SetupInvalid, import_setup, parse_and_validate

MAX_BYTES = 2 * 1024 * 1024


def import_upload(
    engine: Engine, session: Session, scope: Scope, raw: bytes, *, current_tenant_id: int | None, agency_id: int | None
) -> ImportReport:
    """Validate an uploaded setup file, check the uploader's scope, import it; SetupInvalid lists every problem.

    An existing business is updated only by whoever manages it (a client admin: the business they
    work in); a new business is created only by an owner of the chosen agency.
    """
    if len(raw) > MAX_BYTES:
        raise SetupInvalid([SetupError("$", f"the file is larger than {MAX_BYTES // 1024 // 1024} MB")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SetupInvalid([SetupError("$", "the file is not UTF-8 text")])
    doc = parse_and_validate(text)
    slug = doc["tenant"]["slug"]
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is not None:
        if not manages_tenant(scope, tenant) or (not manages_agency(scope, tenant.agency_id) and tenant.id != current_tenant_id):
            raise SetupInvalid([SetupError("$.tenant.slug", f"you may not import into business {slug!r}")])
        return import_setup(engine, doc, None)
    agency = session.get(Agency, agency_id) if agency_id else None
    if agency is None or not manages_agency(scope, agency.id):
        raise SetupInvalid([SetupError(
            "$.tenant.slug", f"business {slug!r} does not exist; only an agency owner can create it (choose the agency)"
        )])
    return import_setup(engine, doc, agency.slug)
