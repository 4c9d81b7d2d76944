"""Every admin write produces an audit entry: walks every FAB model view that can add, edit or delete,
and writes through the view's own datamodel (the path FAB's add/edit/delete pages take)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text

UTC = dt.timezone.utc


def _samples(ids, models):
    """model name -> (factory, edit) for the views' models; a new model view without one fails the test."""
    m, w, p = models
    u = uuid.uuid4().hex[:8]
    day = dt.datetime(2031, 3, 3, 9, tzinfo=UTC)
    return {
        "User": (lambda sm: sm.user_model(first_name="Audit", last_name="Walk", username=f"aw_{u}", email=f"aw_{u}@x.org",
                                          active=True, password="x"), ("first_name", "Changed")),
        "Role": (lambda sm: sm.role_model(name=f"role_{u}"), ("name", f"role2_{u}")),
        "Group": (lambda sm: sm.group_model(name=f"group_{u}", label="G"), ("label", "G2")),
        "Agency": (lambda sm: p.Agency(slug=f"ag-{u}", name="Walk agency"), ("name", "Walk agency 2")),
        "Tenant": (lambda sm: p.Tenant(slug=f"walk_{u}", schema_name=f"tenant_walk_{u}", name="Walk", agency_id=ids["agency_id"], status="suspended"),
                   ("name", "Walk 2")),
        "Membership": (lambda sm: p.Membership(user_id=ids["user_id"], role="Auditor", tenant_id=ids["tenant_id"]), None),
        "ApiKey": (lambda sm: p.ApiKey(tenant_id=ids["tenant_id"], name="walk", prefix=u, secret_hash="0" * 64), ("name", "walk 2")),
        "Location": (lambda sm: m.Location(key=f"l{u}", name="Annex", timezone="Europe/Berlin"), ("name", "Annex 2")),
        "LocationClosure": (lambda sm: m.LocationClosure(location_id=ids["location_id"], date=dt.date(2031, 1, 1)),
                            ("reason", "holiday")),
        "Category": (lambda sm: m.Category(key=f"c{u}", name="Cat"), ("name", "Cat 2")),
        "Service": (lambda sm: m.Service(key=f"s{u}", name="Svc", duration_min=30), ("duration_min", 45)),
        "Staff": (lambda sm: m.Staff(key=f"st{u}", name="Sam Staff"), ("bio", "hello")),
        "StaffHours": (lambda sm: m.StaffHours(staff_id=ids["staff_id"], location_id=ids["location_id"], weekday=6,
                                               start_min=60, end_min=120), ("end_min", 180)),
        "StaffBreak": (lambda sm: m.StaffBreak(staff_id=ids["staff_id"], location_id=ids["location_id"], weekday=6,
                                               start_min=60, end_min=70), ("end_min", 80)),
        "StaffOverride": (lambda sm: m.StaffOverride(staff_id=ids["staff_id"], location_id=ids["location_id"],
                                                     date=dt.date(2031, 2, 2), intervals=[]), ("intervals", [[60, 120]])),
        "TimeOff": (lambda sm: m.TimeOff(staff_id=ids["staff_id"], start_at=day, end_at=day + dt.timedelta(hours=2)),
                    ("reason", "dentist")),
        "Customer": (lambda sm: m.Customer(name="Walk Customer", email=f"walk{u}@example.com"), ("phone", "+4930123456")),
        "LocationHours": (lambda sm: m.LocationHours(location_id=ids["location_id"], weekday=6, start_min=60, end_min=120),
                          ("end_min", 200)),
        "FormField": (lambda sm: w.FormField(key=f"f{u}", label="Q"), ("label", "Q2")),
        "ConsentText": (lambda sm: w.ConsentText(kind="terms", version=900, body="Terms"), None),
        "ErasureRequest": (lambda sm: w.ErasureRequest(customer_id=ids["customer_id"], email="e@example.com"),
                           ("status", "refused")),
    }


def _count(conn, slug):
    tenant = conn.execute(text(f'SELECT count(*) FROM "tenant_{slug}".audit_log WHERE actor_kind = \'user\'')).scalar()
    platform = conn.execute(text("SELECT count(*) FROM platform_audit_log WHERE actor_kind = 'user'")).scalar()
    return tenant + platform


def test_every_model_view_write_is_audited(app, agency_business):
    from flask import g
    from flask_appbuilder import ModelView

    from app.extensions import db
    from app.models import public as p
    from app.models import tenant as m
    from app.models import widgets as w
    from app.tenancy import activate, find_tenant

    slug = agency_business
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.find_user(username=f"ow_{slug}")
        tenant = find_tenant(db.session, slug)
        ids = {"agency_id": tenant.agency_id, "tenant_id": tenant.id, "user_id": user.id}
        with db.engine.connect() as conn:
            for table, key in (("location", "location_id"), ("staff", "staff_id")):
                ids[key] = conn.execute(text(f'SELECT min(id) FROM "tenant_{slug}".{table}')).scalar()
        db.session.remove()
    with app.app_context(), app.test_request_context("/walk", environ_base={"REMOTE_ADDR": "10.9.8.7"}):
        g.user = user
        activate(db.session, tenant)
        customer = m.Customer(name="Walk Owner", email=f"owner{uuid.uuid4().hex[:6]}@example.com")
        db.session.add(customer)
        db.session.commit()
        ids["customer_id"] = customer.id
        samples = _samples(ids, (m, w, p))
        walked = []
        for view in app.appbuilder.baseviews:
            if not isinstance(view, ModelView):
                continue
            perms = set(view.base_permissions or ())
            if not perms & {"can_add", "can_edit", "can_delete"}:
                continue
            name = view.datamodel.obj.__name__
            assert name in samples, f"{type(view).__name__}: add a sample for {name} to this test"
            make, edit = samples[name]
            item = make(sm)
            with db.engine.connect() as conn:
                before = _count(conn, slug)
            # Add (through the view's datamodel when the view can add; else set up directly).
            if "can_add" in perms:
                view.datamodel.add(item)
            else:
                db.session.add(item)
                db.session.commit()
            expected = 1 if "can_add" in perms else 0
            if "can_edit" in perms and edit is not None:
                setattr(item, *edit)
                view.datamodel.edit(item)
                expected += 1
            if "can_delete" in perms:
                view.datamodel.delete(item)
                expected += 1
            with db.engine.connect() as conn:
                after = _count(conn, slug)
            assert after - before >= expected, f"{type(view).__name__}: {after - before} audit rows for {expected} writes"
            walked.append(type(view).__name__)
        db.session.commit()
    assert {"ServiceView", "CustomerView", "TenantView", "ApiKeyView"} <= set(walked)
    with app.app_context(), db.engine.connect() as conn:
        row = conn.execute(text(f'SELECT actor_id, ip, changes FROM "tenant_{slug}".audit_log'
                                " WHERE entity = 'service' AND action = 'update' ORDER BY id DESC LIMIT 1")).one()
        assert row.actor_id == str(user.id) and row.ip == "10.9.8.7" and row.changes["duration_min"] == [30, 45]
        secret = conn.execute(text("SELECT changes FROM platform_audit_log WHERE entity = 'ab_user' AND action = 'create'"
                                   " ORDER BY id DESC LIMIT 1")).scalar()
        assert secret["password"] == [None, "‹secret›"]
