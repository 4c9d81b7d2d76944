"""Audit log: written at flush in the same transaction for every path, personal values and secrets
masked, append-only in PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from gdpr_support import book
from sqlalchemy import text


def test_public_booking_is_audited_with_actor_and_origin(client, app, gdpr_tenant, sql):
    body = book(client, gdpr_tenant, name="Zoe Quill", email="zoe.quill@example.com")
    rows = sql(gdpr_tenant, "SELECT entity, action, actor_kind, ip, user_agent, request_id, changes::text, customer_id"
                            " FROM audit_log ORDER BY id")
    by_entity = {r.entity: r for r in rows}
    appt = by_entity["appointment"]
    assert appt.action == "create" and appt.actor_kind == "public"
    assert appt.ip == "127.0.0.1" and appt.user_agent == "pytest-agent/1" and appt.request_id
    assert body["appointment"]["id"] in sql(gdpr_tenant, "SELECT entity_id FROM audit_log WHERE entity='appointment'")[0][0]
    assert by_entity["customer"].action == "upsert" and by_entity["customer"].customer_id == appt.customer_id
    # Personal values are recorded as changed, never in clear; the manage token is a secret.
    everything = " ".join(r[6] for r in rows)
    assert "Zoe Quill" not in everything and "zoe.quill" not in everything
    assert "‹secret›" in appt[6] and '"status": [null, "confirmed"]' in appt[6]


def test_a_refused_booking_leaves_no_audit_row(client, app, gdpr_tenant, sql):
    book(client, gdpr_tenant)
    before = sql(gdpr_tenant, "SELECT count(*) FROM audit_log")[0][0]
    response = client.post(f"/api/v1/public/{gdpr_tenant}/bookings", json={
        "service": "visit", "start": "2027-01-11T08:00:00Z", "customer": {"name": "Late", "email": "late@example.com"}})
    assert response.status_code == 409
    assert sql(gdpr_tenant, "SELECT count(*) FROM audit_log")[0][0] == before


def test_orm_update_records_before_and_after_and_the_acting_job(app, gdpr_tenant, sql):
    from app.audit_context import acting_as
    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), acting_as("job", label="nightly-test"), tenant_session(db.engine, gdpr_tenant) as (s, _):
        service = s.query(m.Service).filter_by(key="visit").one()
        service.duration_min = 45
        service.name = "Long visit"
        staff = s.query(m.Staff).one()
        staff.phone = "+491701234567"
    row = sql(gdpr_tenant, "SELECT actor_kind, actor_label, changes FROM audit_log WHERE entity='service' AND action='update'")[0]
    assert row.actor_kind == "job" and row.actor_label == "nightly-test"
    assert row.changes["duration_min"] == [30, 45] and row.changes["name"] == ["Visit", "Long visit"]
    staff_row = sql(gdpr_tenant, "SELECT changes, staff_id FROM audit_log WHERE entity='staff' AND action='update'")[0]
    assert staff_row.changes["phone"] == [None, "‹personal›"] and staff_row.staff_id


def test_savepoint_rollback_drops_its_pending_notes(app, gdpr_tenant, sql):
    from app.extensions import db
    from app.gdpr import audit
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, gdpr_tenant) as (s, _):
        audit.note(s, "thing", "kept")
        nested = s.begin_nested()
        audit.note(s, "thing", "dropped")
        nested.rollback()
    assert [r[0] for r in sql(gdpr_tenant, "SELECT action FROM audit_log WHERE entity='thing'")] == ["kept"]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET action = 'x'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
])
def test_audit_rows_cannot_be_changed_by_the_application_role(app, client, gdpr_tenant, sql, statement):
    book(client, gdpr_tenant)
    with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
        sql(gdpr_tenant, statement)
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "append-only" in str(caught.value.orig)
    assert sql(gdpr_tenant, "SELECT count(*) FROM audit_log WHERE action = 'x'")[0][0] == 0
    assert sql(gdpr_tenant, "SELECT count(*) FROM audit_log")[0][0] >= 2


def test_platform_audit_log_is_append_only_too(app):
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO platform_audit_log (actor_kind, entity, action) VALUES ('system', 't', 'probe')"))
    for statement in ("UPDATE platform_audit_log SET action = 'x'", "DELETE FROM platform_audit_log"):
        with pytest.raises(sqlalchemy.exc.DBAPIError), app.app_context(), db.engine.begin() as conn:
            conn.execute(text(statement))
