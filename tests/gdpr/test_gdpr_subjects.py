"""Subject requests: the registry covers every personal-looking column of the tenant schema, the export
holds every registered column, erasure leaves no trace in a pg_dump while statistics stay, the PDF renders."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from gdpr_support import book
from sqlalchemy import text

NAME, EMAIL, PHONE = "Quentin Zebulonsky", "quentin.zebulonsky@example.org", "+49 30 9876543"


def _schema_columns(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s"
            " ORDER BY table_name, ordinal_position"), {"s": f"tenant_{slug}"})]


def test_every_personal_looking_column_of_the_tenant_schema_is_registered(app, gdpr_tenant):
    from app.gdpr import registry

    columns = _schema_columns(app, gdpr_tenant)
    assert ("customer", "email") in columns and len(columns) > 100
    missing = registry.unregistered(columns)
    assert missing == [], f"register these in app/gdpr/registry.py (PERSONAL or NOT_PERSONAL): {missing}"
    # Every registered column exists (a renamed column would silently drop out of exports).
    existing = {f"{t}.{c}" for t, c in columns}
    assert sorted(set(registry.PERSONAL) - existing) == []
    # The check bites: a new personal-looking column is reported.
    assert registry.unregistered([("customer", "birth_date"), ("customer", "mobile")]) == ["customer.mobile"] or \
        registry.unregistered([("customer", "mobile")]) == ["customer.mobile"]


@pytest.fixture()
def subject(app, client, gdpr_tenant, sql):
    """A customer with a row in every table the registry links to customers."""
    from app.extensions import db
    from app.services import forms
    from app.tenancy import tenant_session

    slug = gdpr_tenant
    with app.app_context(), tenant_session(db.engine, slug) as (s, _):
        forms.publish_consent(s, "terms", "Our terms", "test")
        forms.publish_consent(s, "marketing", "News by mail", "test")
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"service": "visit", "start": "2027-01-11T08:00:00Z", "timezone": "Europe/Berlin", "notes": f"call {NAME}",
            "customer": {"name": NAME, "email": EMAIL, "phone": PHONE}, "consents": {"terms": 1, "marketing": 1}}
    first = client.post(f"/api/v1/public/{slug}/bookings", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    second = book(client, slug, start="2027-01-12T09:00:00Z", name=NAME, email=EMAIL, consents={"terms": 1})
    cancel = client.post(f"/api/v1/public/{slug}/bookings/{second['manage_token']}/cancel",
                         json={"reason": f"{NAME} is ill"})
    assert cancel.status_code == 200, cancel.get_json()
    other = book(client, slug, start="2027-01-13T09:00:00Z", name="Steve Other", email="steve@example.com",
                 consents={"terms": 1})
    cid = sql(slug, "SELECT id FROM customer WHERE email = :e", e=EMAIL)[0][0]
    appt = first.get_json()["appointment"]["id"]
    sql(slug, "INSERT INTO portal_token (token_hash, customer_id, created_at, expires_at) VALUES (:h, :c, now(), now())",
        h=uuid.uuid4().hex, c=cid)
    sql(slug, "INSERT INTO portal_login_attempt (email, ip, at) VALUES (:e, '10.0.0.9', now())", e=EMAIL)
    sql(slug, "INSERT INTO notification_preference (customer_id, email_reminders, updated_at) VALUES (:c, true, now())", c=cid)
    sql(slug, "INSERT INTO notification_delivery (appointment_id, kind, offset_min, revision, channel, recipient,"
              " recipient_role, status, attempts, not_before, subject, body_text, body_html, last_error, provider_id,"
              " updated_at) VALUES (:a, 'booking_confirmed', 0, 0, 'email', :e, 'customer', 'sent', 1, now(),"
              " :subj, :body, :body, 'none', 'p-1', now())",
        a=appt, e=EMAIL, subj=f"Hello {NAME}", body=f"Dear {NAME}, call {PHONE}")
    sql(slug, "INSERT INTO erasure_request (customer_id, email, ip, status, requested_at, kind, channel, note)"
              " VALUES (:c, :e, '10.0.0.8', 'refused', now(), 'erasure', 'portal', 'duplicate')", c=cid, e=EMAIL)
    sql(slug, "INSERT INTO webhook_delivery (msg_id, endpoint_scope, endpoint_id, event_type, event_at, body, status,"
              " attempts, next_attempt_at, last_error, response_body, created_at, updated_at) VALUES ('m1', 'tenant', 1,"
              " 'appointment.booked', now(), :body, 'delivered', 1, now(), NULL, 'ok', now(), now())",
        body=json.dumps({"customer": {"name": NAME, "email": EMAIL}}))
    return {"slug": slug, "cid": cid, "appointments": [appt, second["appointment"]["id"]], "other": other}


def test_export_holds_every_registered_personal_column(app, subject):
    from app.extensions import db
    from app.gdpr import registry, subjects
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, subject["slug"]) as (s, ref):
        data = subjects.export_customer(s, ref, s.get(m.Customer, subject["cid"]))
    json.dumps(data)  # serialisable as it is
    for table, condition in registry.CUSTOMER_LINKS.items():
        columns = registry.personal_columns(table)
        if not columns:
            continue
        rows = data["records"].get(table)
        assert rows, f"the export has no {table} rows for the subject"
        for column in columns:
            assert all(column in row for row in rows), f"{table}.{column} missing from the export"
    assert data["customer"]["email"] == EMAIL and len(data["appointments"]) == 2
    assert sorted(c["kind"] for c in data["consents"]) == ["marketing", "terms", "terms"]
    assert data["messages"][0]["subject"] == f"Hello {NAME}"
    assert any(a["entity"] == "appointment" for a in data["audit"])
    assert all("Steve" not in json.dumps(rows) for rows in data["records"].values())


def _stats(sql, slug):
    return sql(slug, "SELECT id, service_id, staff_id, start_at, end_at, price, currency, status, seats FROM appointment"
                     " ORDER BY id")


def _dump(app, slug) -> str:
    """Every row of the business's schema as text, as a data-only dump has it (COPY of each table:
    the same bytes pg_dump writes, without depending on a pg_dump of the server's version)."""
    from sqlalchemy import select, text

    from app.extensions import db
    from app.models.public import Tenant

    with app.app_context():
        schema = db.session.scalar(select(Tenant.schema_name).where(Tenant.slug == slug))
        tables = db.session.scalars(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = 'BASE TABLE'"
            " ORDER BY 1"), {"s": schema}).all()
        assert tables, schema
        out = []
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                for table in tables:
                    with cur.copy(f'COPY "{schema}"."{table}" TO STDOUT') as copy:
                        out.append(b"".join(bytes(chunk) for chunk in copy).decode())
        finally:
            raw.close()
    return "\n".join(out)


def test_erasure_leaves_no_trace_in_a_dump_and_keeps_statistics(app, subject, sql):
    from app.extensions import db
    from app.gdpr import subjects
    from app.models import tenant as m
    from app.tenancy import tenant_session

    slug = subject["slug"]
    dump = _dump(app, slug)
    digits = "309876543"
    assert NAME in dump and EMAIL in dump and digits in dump  # the probe finds them before
    stats = _stats(sql, slug)
    with app.app_context(), tenant_session(db.engine, slug) as (s, ref):
        subjects.erase_customer(s, ref, s.get(m.Customer, subject["cid"]), "user:test")
    dump = _dump(app, slug)
    for needle in (NAME, NAME.split()[1], EMAIL, EMAIL.split("@")[0], digits):
        assert needle.lower() not in dump.lower(), f"{needle!r} is still in the tenant schema"
    assert _stats(sql, slug) == stats
    assert "Steve Other" in dump and "steve@example.com" in dump  # nobody else touched
    event = sql(slug, "SELECT payload FROM outbox_event WHERE event_type = 'customer.erased'")[0][0]
    assert event["customer_id"] == subject["cid"] and sorted(event["appointment_ids"]) == sorted(subject["appointments"])
    request = sql(slug, "SELECT status, handled_by, handled_at <= due_at FROM erasure_request"
                        " WHERE kind = 'erasure' AND status = 'done'")
    assert request and request[0][1] == "user:test" and request[0][2] is True
    assert sql(slug, "SELECT count(*) FROM audit_log WHERE entity = 'subject' AND action = 'erase'")[0][0] == 1


def test_export_pdf_has_every_section(app, subject, tmp_path):
    from app.extensions import db
    from app.gdpr import subjects
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, subject["slug"]) as (s, ref):
        pdf = subjects.export_pdf(subjects.export_customer(s, ref, s.get(m.Customer, subject["cid"])))
    path = tmp_path / "export.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout
    for section in ("Profile", "Appointments (2)", "Consents (3)", "Messages sent (1)", "Requests",
                    "Audit entries about this person", "Stored records", NAME, EMAIL):
        assert section in out, section
