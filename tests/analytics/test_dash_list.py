"""Appointments list: filters and search, saved filters, bulk actions through the tenant's own rows,
streamed CSV and XLSX export, staff limits."""

from __future__ import annotations

import csv
import datetime as dt
import io

from support import minimal_setup

UTC = dt.timezone.utc


def two_staff() -> dict:
    setup = minimal_setup()
    setup["staff"].append(dict(setup["staff"][0], key="bob", name="Bob"))
    return setup


def _rows(n, staff="ann", day=dt.datetime(2027, 5, 3, 8, 0, tzinfo=UTC), **kw):
    return [dict(start=day + dt.timedelta(hours=i), staff=staff, **kw) for i in range(n)]


def outbox_types(app, slug):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        return list(session.scalars(select(m.OutboxEvent.event_type)))


def test_filters_export_saved_and_bulk(app, client, make_tenant, make_user, login, put_appointments):
    slug = make_tenant(two_staff())
    other = make_tenant(two_staff())
    ann = put_appointments(slug, _rows(3))
    bob = put_appointments(slug, _rows(2, staff="bob", source="widget"))
    [foreign] = put_appointments(other, _rows(1))
    login(client, make_user("Client Admin", tenant=slug))
    page = client.get("/appointments/?staff=bob").get_data(as_text=True)
    assert all(i in page for i in bob) and not any(i in page for i in ann)
    assert all(i in client.get("/appointments/?source=widget").get_data(as_text=True) for i in bob)
    assert client.get("/appointments/?from=2027-05-04").get_data(as_text=True).count('name="ids"') == 0

    exported = client.get("/appointments/export.csv?staff=ann")
    table = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert "Content-Length" not in exported.headers and table[0][:3] == ["id", "start", "end"] and len(table) == 4
    assert table[1][1] == "2027-05-03 10:00"  # 08:00Z in Berlin summer time
    xlsx = client.get("/appointments/export.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    import zipfile

    sheet = zipfile.ZipFile(io.BytesIO(xlsx.data)).read("xl/worksheets/sheet1.xml").decode()
    assert sheet.count("<row ") == 6 and "Ann" in sheet  # header + five appointments (inline strings)

    assert client.post("/appointments/saved", data={"name": "Bob's", "qs": "staff=bob"}).status_code == 302
    assert "?staff=bob" in client.get("/appointments/").get_data(as_text=True)

    # A foreign id in the batch: 404 and nothing changes (not even the valid ones).
    refused = client.post("/appointments/bulk", data={"action": "cancel", "ids": [ann[0], foreign]})
    assert refused.status_code == 404
    assert "cancelled" not in client.get("/appointments/?status=cancelled").get_data(as_text=True).split("<tbody>")[1].split("</tbody>")[0]
    assert client.post("/appointments/bulk", data={"action": "cancel", "ids": ann[:2], "reason": "closed"}).status_code == 302
    assert client.get("/appointments/?status=cancelled").get_data(as_text=True).count('name="ids"') == 2
    assert outbox_types(app, slug).count("appointment.cancelled") == 2
    client.post("/appointments/bulk", data={"action": "no_show", "ids": bob})
    assert client.get("/appointments/?status=no_show").get_data(as_text=True).count('name="ids"') == 2


def test_staff_list_only_their_own_and_auditor_cannot_bulk(app, client, make_tenant, make_user, login, put_appointments, staff_ids):
    slug = make_tenant(two_staff())
    ann = put_appointments(slug, _rows(2))
    bob = put_appointments(slug, _rows(1, staff="bob"))
    login(client, make_user("Staff", tenant=slug, staff_id=staff_ids(slug)["ann"]))
    page = client.get("/appointments/?staff=bob").get_data(as_text=True)
    assert bob[0] not in page
    assert len(list(csv.reader(io.StringIO(client.get("/appointments/export.csv").get_data(as_text=True))))) == 3
    assert client.post("/appointments/bulk", data={"action": "completed", "ids": bob}).status_code == 404
    client.get("/logout/")
    login(client, make_user("Auditor", tenant=slug))
    assert 'name="ids"' not in client.get("/appointments/").get_data(as_text=True)
    client.post("/appointments/bulk", data={"action": "cancel", "ids": ann})
    assert "appointment.cancelled" not in outbox_types(app, slug)
