"""Data-subject requests: find a person, export everything about them, erase them by anonymisation.

- `find` looks a customer or staff member up by email or phone in one business
  (`find_in_agency` across an agency's businesses).
- `export_customer` / `export_staff` return everything stored about the person: readable
  sections (profile, appointments with form answers, consents, messages, requests, audit
  entries about them) and `records`, every row linked to them with every column the
  registry marks personal (app.gdpr.registry), so nothing registered can be left out.
- `erase_customer` anonymises: appointments keep service, staff, time, price and status
  (statistics stay true); names, contact details, answers, notes, message bodies and
  tokens go, in the registry's tables and, for the email, phone and full name, in any text
  column of the schema (other features' tables included). `customer.erased` goes to the
  outbox so calendar sync, meeting links and webhooks remove their external copies.
- Every request is an `erasure_request` row (kind erasure/export) with its timeline
  against the 30-day deadline; portal erasure requests wait for a client admin's approval.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, selectinload

from app.errors import NotFound, ValidationError
from app.gdpr import audit, registry
from app.models import tenant as m
from app.models import widgets as w
from app.models.gdpr import AuditLog
from app.models.notifications import NotificationDelivery
from app.services import events
from app.tenancy import TenantRef

UTC = dt.timezone.utc
ERASED_DOMAIN = "erased.invalid"


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def iso(value) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if isinstance(value, dt.datetime) else (
        value.isoformat() if isinstance(value, dt.date) else value)


@dataclass(frozen=True)
class Match:
    kind: str  # customer | staff
    id: int
    name: str
    email: str | None
    phone: str | None
    tenant: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "name": self.name, "email": self.email, "phone": self.phone,
                "tenant": self.tenant}


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def find(session: Session, tenant: TenantRef, email_or_phone: str) -> list[Match]:
    """Customers and staff of this business with that email (any case) or phone (same digits)."""
    q = (email_or_phone or "").strip()
    if not q:
        raise ValidationError("give an email address or a phone number", "query")
    out: list[Match] = []
    for kind, model in (("customer", m.Customer), ("staff", m.Staff)):
        if "@" in q:
            cond = func.lower(model.email) == q.lower()
        else:
            digits = _digits(q)
            if len(digits) < 5:
                raise ValidationError("a phone number needs at least 5 digits", "query")
            # National and international forms of one number share their last 9 digits.
            cond = func.right(func.regexp_replace(model.phone, r"\D", "", "g"), 9) == digits[-9:]
        for row in session.scalars(select(model).where(cond).order_by(model.id)):
            out.append(Match(kind, row.id, row.name, row.email, row.phone, tenant.slug))
    audit.note(session, "subject", "find", None, {"query": audit.PERSONAL_MARK, "matches": len(out)})
    return out


def find_in_agency(engine, agency_slug: str, email_or_phone: str) -> list[Match]:
    """`find` in every business of an agency (one short transaction per business)."""
    from app.models.public import Agency, Tenant
    from app.tenancy import tenant_session

    with Session(engine) as lookup:
        agency = lookup.scalar(select(Agency).where(Agency.slug == agency_slug))
        if agency is None:
            raise NotFound(f"unknown agency {agency_slug!r}", "agency")
        slugs = [t.slug for t in lookup.scalars(select(Tenant).where(
            Tenant.agency_id == agency.id, Tenant.status != Tenant.STATUS_PROVISIONING).order_by(Tenant.slug))]
    found: list[Match] = []
    for slug in slugs:
        with tenant_session(engine, slug) as (session, ref):
            found += find(session, ref, email_or_phone)
    return found


def customer_by_email(session: Session, email: str) -> m.Customer:
    customer = session.scalar(select(m.Customer).where(func.lower(m.Customer.email) == (email or "").strip().lower()))
    if customer is None:
        raise NotFound(f"no customer with email {email!r} in this business", "email")
    return customer


# --------------------------------------------------------------------------- export


def _records(session: Session, links: dict[str, str], params: dict) -> dict[str, list[dict]]:
    """Every linked row of every registered table: its id and every personal column (registry-driven)."""
    present = _existing_tables(session)
    out: dict[str, list[dict]] = {}
    for table, condition in links.items():
        columns = registry.personal_columns(table)
        if not columns or table not in present:
            continue
        key = _primary_key(table)
        names = ", ".join(f'"{c}"' for c in [*key, *columns])
        rows = session.execute(text(f'SELECT {names} FROM "{table}" WHERE {condition} ORDER BY 1'), params).mappings()
        out[table] = [{k: audit.jsonable(v) for k, v in row.items()} for row in rows]
    return out


_PK = {"notification_preference": ["customer_id"], "idempotency_key": ["key"]}


def _primary_key(table: str) -> list[str]:
    return _PK.get(table, ["id"])


def _existing_tables(session: Session) -> set[str]:
    return set(session.scalars(text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")))


def export_customer(session: Session, tenant: TenantRef, customer: m.Customer) -> dict:
    """Everything this business stores about one customer (GDPR art. 15 and 20)."""
    appts = session.scalars(
        select(m.Appointment).where(m.Appointment.customer_id == customer.id).order_by(m.Appointment.start_at)
        .options(selectinload(m.Appointment.service), selectinload(m.Appointment.staff),
                 selectinload(m.Appointment.location))
    ).all()
    consents = session.scalars(select(w.ConsentRecord).where(w.ConsentRecord.customer_id == customer.id)
                               .options(selectinload(w.ConsentRecord.text)).order_by(w.ConsentRecord.at)).all()
    pref = session.get(w.NotificationPreference, customer.id)
    messages = session.scalars(select(NotificationDelivery).where(
        NotificationDelivery.appointment_id.in_(select(m.Appointment.id).where(m.Appointment.customer_id == customer.id)),
        NotificationDelivery.recipient_role == "customer").order_by(NotificationDelivery.id)).all()
    requests = session.scalars(select(w.ErasureRequest).where(w.ErasureRequest.customer_id == customer.id)
                               .order_by(w.ErasureRequest.requested_at)).all()
    audit_rows = session.scalars(select(AuditLog).where(AuditLog.customer_id == customer.id).order_by(AuditLog.id)).all()
    data = {
        "business": {"name": tenant.name, "slug": tenant.slug},
        "exported_at": iso(_now()),
        "subject": {"kind": "customer", "id": customer.id},
        "customer": {"name": customer.name, "email": customer.email, "phone": customer.phone, "locale": customer.locale,
                     "timezone": customer.timezone, "created_at": iso(customer.created_at)},
        "preferences": {"email_reminders": pref.email_reminders if pref else True, "sms": not customer.sms_opt_out,
                        "marketing": customer.marketing_opt_in},
        "appointments": [
            {"id": str(a.id), "service": a.service.name, "staff": a.staff.name,
             "location": a.location.name if a.location else None, "start": iso(a.start_at), "end": iso(a.end_at),
             "status": a.status, "price": audit.jsonable(a.price), "currency": a.currency, "answers": a.answers,
             "notes": a.notes, "cancel_reason": a.cancel_reason, "source": a.source, "booked_at": iso(a.created_at)}
            for a in appts
        ],
        "consents": [
            {"kind": c.text.kind, "version": c.text.version, "text": c.text.body, "at": iso(c.at), "ip": c.ip,
             "channel": c.channel, "withdrawn_at": iso(c.withdrawn_at), "withdrawn_channel": c.withdrawn_channel}
            for c in consents
        ],
        "messages": [
            {"kind": d.kind, "channel": d.channel, "recipient": d.recipient, "status": d.status, "subject": d.subject,
             "body": d.body_text, "created_at": iso(d.created_at), "sent_at": iso(d.sent_at)}
            for d in messages
        ],
        "erasure_requests": [_request_dict(r) for r in requests],
        "audit": [audit.as_dict(r) for r in audit_rows],
        "records": _records(session, registry.CUSTOMER_LINKS, {"cid": customer.id, "email": customer.email}),
    }
    return data


def export_staff(session: Session, tenant: TenantRef, staff: m.Staff) -> dict:
    """Everything this business stores about one staff member."""
    audit_rows = session.scalars(select(AuditLog).where(AuditLog.staff_id == staff.id).order_by(AuditLog.id)).all()
    return {
        "business": {"name": tenant.name, "slug": tenant.slug},
        "exported_at": iso(_now()),
        "subject": {"kind": "staff", "id": staff.id},
        "staff": {"name": staff.name, "email": staff.email, "phone": staff.phone, "bio": staff.bio,
                  "photo_url": staff.photo_url, "active": staff.active},
        "time_off": [{"start": iso(t.start_at), "end": iso(t.end_at), "reason": t.reason} for t in staff.time_off],
        "appointments_handled": session.scalar(select(func.count()).select_from(m.Appointment)
                                               .where(m.Appointment.staff_id == staff.id)),
        "audit": [audit.as_dict(r) for r in audit_rows],
        "records": _records(session, registry.STAFF_LINKS, {"sid": staff.id}),
    }


def _request_dict(r: w.ErasureRequest) -> dict:
    return {"id": r.id, "kind": r.kind, "channel": r.channel, "status": r.status, "requested_at": iso(r.requested_at),
            "due_at": iso(r.deadline), "approved_at": iso(r.approved_at), "approved_by": r.approved_by,
            "handled_at": iso(r.handled_at), "handled_by": r.handled_by, "on_time": r.on_time}


def export_pdf(data: dict) -> bytes:
    """The export as a PDF (WeasyPrint): one section per part of the JSON export."""
    from app.gdpr.pdf import render_pdf

    return render_pdf("subject_export.html", data=data, title=f"Personal data – {data['business']['name']}")


# --------------------------------------------------------------------------- requests and timeline


def open_request(session: Session, kind: str, channel: str, *, customer: m.Customer | None = None,
                 staff: m.Staff | None = None, email: str | None = None, ip: str | None = None,
                 now: dt.datetime | None = None) -> w.ErasureRequest:
    now = now or _now()
    req = w.ErasureRequest(customer_id=customer.id if customer else None, staff_id=staff.id if staff else None,
                           kind=kind, channel=channel, email=email or (customer.email if customer else None),
                           ip=ip, status="requested", requested_at=now, due_at=now + w.REQUEST_DEADLINE)
    session.add(req)
    session.flush()
    return req


def _close(req: w.ErasureRequest, by: str, status: str = "done", note: str | None = None,
           now: dt.datetime | None = None) -> None:
    now = now or _now()
    req.status, req.handled_at, req.handled_by = status, now, by
    if note:
        req.note = note


def record_export(session: Session, channel: str, by: str, *, customer=None, staff=None) -> w.ErasureRequest:
    """An export handed out now: a request opened and closed at once, on the timeline."""
    req = open_request(session, "export", channel, customer=customer, staff=staff,
                       email=None if customer is None else None)
    _close(req, by)
    audit.note(session, "subject", "export", req.id, {"channel": channel},
               customer_id=customer.id if customer else None, staff_id=staff.id if staff else None)
    session.flush()
    return req


def approve(session: Session, tenant: TenantRef, request_id: int, by: str, now: dt.datetime | None = None) -> w.ErasureRequest:
    """A client admin approves a (portal) erasure request: it is carried out in the same transaction."""
    req = session.get(w.ErasureRequest, request_id, with_for_update=True)
    if req is None or req.kind != "erasure":
        raise NotFound("no such erasure request", "request")
    if req.status not in ("requested", "approved"):
        raise ValidationError(f"this request is already {req.status}", "status")
    now = now or _now()
    req.status, req.approved_at, req.approved_by = "approved", now, by
    session.flush()
    if req.customer_id is not None:
        erase_customer(session, tenant, session.get(m.Customer, req.customer_id), by, now=now, request=req)
    elif req.staff_id is not None:
        erase_staff(session, session.get(m.Staff, req.staff_id), by, now=now, request=req)
    return req


def refuse(session: Session, request_id: int, by: str, reason: str) -> w.ErasureRequest:
    req = session.get(w.ErasureRequest, request_id, with_for_update=True)
    if req is None:
        raise NotFound("no such request", "request")
    if req.status in ("done", "refused"):
        raise ValidationError(f"this request is already {req.status}", "status")
    if not (reason or "").strip():
        raise ValidationError("give the reason for refusing (it is recorded)", "reason")
    _close(req, by, "refused", reason.strip()[:2000])
    session.flush()
    return req


def timeline(session: Session, now: dt.datetime | None = None) -> list[dict]:
    """Every request, newest first, with its deadline, days left and whether it was (or is) late."""
    now = now or _now()
    out = []
    for r in session.scalars(select(w.ErasureRequest).order_by(w.ErasureRequest.requested_at.desc())):
        item = _request_dict(r)
        item["customer_id"], item["staff_id"], item["email"] = r.customer_id, r.staff_id, r.email
        item["days_left"] = None if r.handled_at else (r.deadline - now).days
        item["overdue"] = (r.handled_at or now) > r.deadline
        out.append(item)
    return out


# --------------------------------------------------------------------------- erasure


def erase_customer(session: Session, tenant: TenantRef, customer: m.Customer, by: str, *,
                   now: dt.datetime | None = None, request: w.ErasureRequest | None = None,
                   channel: str = "admin") -> dict:
    """Anonymise one customer in this business; returns counts of what changed."""
    if customer is None:
        raise NotFound("no such customer", "customer")
    now = now or _now()
    cid = customer.id
    values = [v for v in {customer.email, customer.phone, customer.name} if v and len(v) >= 3]
    if request is None:
        request = open_request(session, "erasure", channel, customer=customer, now=now)
        request.approved_at, request.approved_by = now, by
    appointment_ids = [str(a) for a in session.scalars(select(m.Appointment.id).where(m.Appointment.customer_id == cid))]
    counts: dict[str, int] = {}

    def run(table: str, sql: str, **params) -> None:
        result = session.execute(text(sql), {"cid": cid, "email": customer.email, **params})
        counts[table] = counts.get(table, 0) + (result.rowcount or 0)

    anon = f"erased-{cid}"
    anon_email = f"erased-{cid}@{ERASED_DOMAIN}"
    meetings = _meetings(session, cid)
    run("appointment", "UPDATE appointment SET notes = NULL, answers = '{}'::jsonb, cancel_reason = NULL,"
                       " manage_token_hash = NULL WHERE customer_id = :cid")
    if meetings is not None:
        run("appointment", "UPDATE appointment SET meeting_join_url = NULL, meeting_details = NULL, meeting_error = NULL"
                           " WHERE customer_id = :cid")
    run("status_change", "UPDATE status_change SET reason = NULL WHERE appointment_id IN"
                         " (SELECT id FROM appointment WHERE customer_id = :cid) AND reason IS NOT NULL")
    run("consent_record", "UPDATE consent_record SET email = :anon, ip = NULL WHERE customer_id = :cid", anon=anon_email)
    run("portal_token", "DELETE FROM portal_token WHERE customer_id = :cid")
    run("portal_login_attempt", "DELETE FROM portal_login_attempt WHERE lower(email) = lower(:email)")
    run("notification_delivery",
        "UPDATE notification_delivery SET recipient = :anon, subject = NULL, body_text = NULL, body_html = NULL,"
        " last_error = NULL WHERE (appointment_id IN (SELECT id FROM appointment WHERE customer_id = :cid)"
        " AND recipient_role = 'customer') OR lower(recipient) = lower(:email)", anon=anon)
    run("idempotency_key", "DELETE FROM idempotency_key WHERE response::text ILIKE '%' || :email || '%'")
    if "webhook_delivery" in _existing_tables(session):
        # Outgoing webhook log rows carry the customer in their body: they go (registry: "delete").
        run("webhook_delivery", "DELETE FROM webhook_delivery WHERE body ILIKE '%' || :email || '%'")
    run("erasure_request", "UPDATE erasure_request SET email = NULL, ip = NULL WHERE customer_id = :cid")
    counts.update(_drop_exports(session))
    run("outbox_event", "UPDATE outbox_event SET payload = payload - 'reason' - 'notes' - 'answers'"
                        " WHERE aggregate_id IN (SELECT id::text FROM appointment WHERE customer_id = :cid)"
                        " AND (payload ? 'reason' OR payload ? 'notes' OR payload ? 'answers')")
    run("customer", "UPDATE customer SET name = :anon, email = :anon_email, phone = NULL, locale = NULL,"
                    " timezone = NULL, sms_opt_out = true, marketing_opt_in = false WHERE id = :cid",
        anon=anon, anon_email=anon_email)
    counts.update(_sweep(session, values))
    session.expire_all()
    request = session.get(w.ErasureRequest, request.id)
    _close(request, by, now=now)
    request.email = None
    events.emit_customer_erased(session, tenant.slug, cid, appointment_ids, meetings or [])
    audit.note(session, "subject", "erase", request.id,
               {"tables": {k: v for k, v in counts.items() if v}, "appointments_kept": len(appointment_ids)},
               customer_id=cid)
    session.flush()
    return counts


def erase_staff(session: Session, staff: m.Staff, by: str, *, now: dt.datetime | None = None,
                request: w.ErasureRequest | None = None, channel: str = "admin") -> dict:
    """Anonymise a staff member (appointments they handled keep pointing at the anonymous row)."""
    if staff is None:
        raise NotFound("no such staff member", "staff")
    now = now or _now()
    values = [v for v in {staff.email, staff.phone, staff.name} if v and len(v) >= 3]
    if request is None:
        request = open_request(session, "erasure", channel, staff=staff, now=now)
    sid = staff.id
    session.execute(text("UPDATE staff SET name = :anon, email = NULL, phone = NULL, bio = NULL, photo_url = NULL,"
                         " active = false WHERE id = :sid"), {"anon": f"erased-staff-{sid}", "sid": sid})
    session.execute(text("UPDATE time_off SET reason = NULL WHERE staff_id = :sid"), {"sid": sid})
    counts = {**_sweep(session, values), **_drop_exports(session)}
    session.expire_all()
    request = session.get(w.ErasureRequest, request.id)
    _close(request, by, now=now)
    audit.note(session, "subject", "erase", request.id, {"tables": counts}, staff_id=sid)
    session.flush()
    return counts


def _drop_exports(session: Session) -> dict[str, int]:
    """Background export files may hold the person among thousands of rows: they all go
    (their owners ask again; the new files are built from the erased data)."""
    if "export_file" not in _existing_tables(session):
        return {}
    return {"export_file": session.execute(text("DELETE FROM export_file")).rowcount or 0}


def _meetings(session: Session, cid: int) -> list[dict] | None:
    """The customer's meetings (provider and id) for the integrations to delete; None without meeting columns."""
    has = session.scalar(text("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                              " AND table_name = 'appointment' AND column_name = 'meeting_id'"))
    if not has:
        return None
    return [{"appointment_id": str(a), "provider": p, "meeting_id": i} for a, p, i in session.execute(text(
        "SELECT id, meeting_provider, meeting_id FROM appointment WHERE customer_id = :cid AND meeting_id IS NOT NULL"),
        {"cid": cid})]


# Tables whose rows are never rewritten by the sweep (the append-only log holds no personal values).
_SWEEP_SKIP = {"audit_log", "alembic_version"}


def _sweep(session: Session, values: list[str]) -> dict[str, int]:
    """Replace the person's email, phone and full name in every text and JSON column of the schema.

    Catches copies the registry's own rules do not name (message texts, event payloads, other
    features' tables). Whole words only, case-insensitive, so "Eve Example" never touches "Steve".
    """
    if not values:
        return {}
    pattern = "|".join(r"\m" + re.escape(v).replace("\\ ", " ") + r"\M" if re.match(r"\w", v) and re.search(r"\w$", v)
                       else re.escape(v) for v in values)
    columns = session.execute(text(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'jsonb', 'json')"
        " ORDER BY table_name, ordinal_position")).all()
    counts: dict[str, int] = {}
    for table, column, data_type in columns:
        if table in _SWEEP_SKIP:
            continue
        if data_type in ("jsonb", "json"):
            sql = (f'UPDATE "{table}" SET "{column}" = regexp_replace("{column}"::text, :p, \'erased\', \'gi\')::{data_type}'
                   f' WHERE "{column}"::text ~* :p')
        else:
            sql = f'UPDATE "{table}" SET "{column}" = regexp_replace("{column}", :p, \'erased\', \'gi\') WHERE "{column}" ~* :p'
        result = session.execute(text(sql), {"p": pattern})
        if result.rowcount:
            counts[f"{table}.{column}"] = result.rowcount
    return counts
