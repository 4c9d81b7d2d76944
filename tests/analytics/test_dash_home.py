"""Dashboard home per role, the analytics page and the agency overview."""

from __future__ import annotations

import datetime as dt

from support import minimal_setup, unique_slug

UTC = dt.timezone.utc


def two_staff() -> dict:
    setup = minimal_setup()
    setup["services"][0]["price"] = "30.00"
    setup["staff"].append(dict(setup["staff"][0], key="bob", name="Bob"))
    return setup


def _soon() -> dt.datetime:
    """An instant later today in Berlin (or earlier today just before midnight)."""
    from zoneinfo import ZoneInfo

    now = dt.datetime.now(UTC)
    later = now + dt.timedelta(minutes=2)
    same_day = later.astimezone(ZoneInfo("Europe/Berlin")).date() == now.astimezone(ZoneInfo("Europe/Berlin")).date()
    return later if same_day else now - dt.timedelta(hours=1)


def test_client_admin_home_shows_today_figures_and_alerts(app, client, make_tenant, make_user, login, put_appointments):
    from sqlalchemy import text

    from app.extensions import db
    from app.tenancy import tenant_session

    slug = make_tenant(two_staff())
    first, _ = put_appointments(slug, [dict(start=_soon(), staff="ann", price="30.00"), dict(start=_soon(), staff="bob", price="30.00")])
    login(client, make_user("Client Admin", tenant=slug))
    assert "No alerts." in client.get("/dashboard/").get_data(as_text=True)
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        session.execute(text(
            "INSERT INTO notification_delivery (appointment_id, kind, offset_min, revision, channel, recipient, recipient_role,"
            " status, attempts, not_before, updated_at) VALUES (:a, 'confirmation', 0, 0, 'email', 'x@example.org', 'customer',"
            " 'failed', 5, now(), now())"), {"a": first})
    assert "1 notification(s) failed in the last 7 days" in client.get("/dashboard/").get_data(as_text=True)
    for url in ("/", "/dashboard/"):
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.get_data(as_text=True)
        assert html.count("/dashboard/attended/") == 2 and "<td>Ann</td>" in html and "<td>Bob</td>" in html
        assert 'id="kpi-bookings">2<' in html
        assert "60.00 EUR" in html
    import re

    analytics_page = client.get("/analytics/?from=2027-01-01&to=2027-01-31&interval=week")
    html = analytics_page.get_data(as_text=True)
    [chart_js] = re.findall(r'src="(/static/vendor/chartjs-4\.6\.1/chart\.umd\.min[^"]*)"', html)
    assert analytics_page.status_code == 200 and client.get(chart_js).status_code == 200  # served by the app, no CDN
    [calendar_js] = re.findall(r'src="(/static/vendor/fullcalendar-6\.1\.22/fullcalendar\.min[^"]*)"', client.get("/calendar/").get_data(as_text=True))
    assert client.get(calendar_js).status_code == 200


def test_staff_home_lists_only_their_own_and_marks_attended(app, client, make_tenant, make_user, login, put_appointments, staff_ids):
    slug = make_tenant(two_staff())
    mine, theirs = put_appointments(slug, [dict(start=_soon(), staff="ann"), dict(start=_soon(), staff="bob")])
    login(client, make_user("Staff", tenant=slug, staff_id=staff_ids(slug)["ann"]))
    html = client.get("/dashboard/").get_data(as_text=True)
    assert html.count("/dashboard/attended/") == 1 and "Last 30 days" not in html
    assert f"/dashboard/attended/{mine}" in html and theirs not in html
    assert client.post(f"/dashboard/attended/{theirs}").status_code == 404
    assert client.post(f"/dashboard/attended/{mine}").status_code == 302
    assert "completed" in client.get("/dashboard/").get_data(as_text=True)
    assert client.get("/analytics/").status_code in (302, 403)


def test_auditor_reads_but_cannot_mark_attended(client, make_tenant, make_user, login, put_appointments):
    slug = make_tenant(two_staff())
    [appt] = put_appointments(slug, [dict(start=_soon())])
    login(client, make_user("Auditor", tenant=slug))
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "Last 30 days" in html and f"/dashboard/attended/{appt}" not in html
    client.post(f"/dashboard/attended/{appt}")
    assert "confirmed" in client.get("/dashboard/").get_data(as_text=True)
    assert client.get("/analytics/").status_code == 200


def test_agency_owner_sees_its_businesses_and_those_needing_attention(app, client, make_tenant, make_user, login, put_appointments):
    from app.extensions import db
    from tenants.provisioning import create_agency

    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Owner's")
        db.session.commit()
    busy = make_tenant(two_staff(), agency=agency)
    quiet = make_tenant(agency=agency)
    outsider = make_tenant()
    put_appointments(busy, [dict(start=dt.datetime.now(UTC) - dt.timedelta(days=2), price="30.00")])
    login(client, make_user("Agency Owner", agency=agency))
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "Needing attention" in html and "no bookings in the period" in html
    overview = client.get("/analytics/agency").get_data(as_text=True)
    # Two header rows, one currency, two businesses: the outsider (another agency) is not listed.
    assert overview.count("<tr>") == 5
    assert "30.00 EUR" in overview


def test_client_admin_home_alerts_calendar_connections_to_reconnect_or_failing(app, client, make_tenant, make_user, login, staff_ids):
    import re

    from app.extensions import db
    from app.models.calendar_sync import CalendarConnection
    from app.services.calendar_sync import health
    from app.tenancy import tenant_session

    slug = make_tenant(two_staff())
    ann, bob = staff_ids(slug)["ann"], staff_ids(slug)["bob"]
    admin = make_user("Client Admin", tenant=slug)
    login(client, admin)

    def alerts_of(html: str) -> list[tuple[str, str | None]]:
        """(text, link or None) of each alert on the home."""
        [listing] = re.findall(r'<ul id="dash-alerts-list">(.*?)</ul>', html, re.S)
        out = []
        for item in re.findall(r"<li[^>]*>(.*?)</li>", listing, re.S):
            link = re.fullmatch(r'<a href="([^"]+)">(.*)</a>', item.strip(), re.S)
            out.append((link.group(2), link.group(1)) if link else (item.strip(), None))
        return out

    assert "No alerts." in client.get("/dashboard/").get_data(as_text=True)
    now = dt.datetime.now(UTC)
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        session.add_all([
            CalendarConnection(provider="google", staff_id=ann, status="needs_reconnect", account="ann@example.org"),
            # Failing for two hours (past the default 30 minutes): an alert.
            CalendarConnection(provider="caldav", staff_id=bob, status="active", failing_since=now - dt.timedelta(hours=2),
                               last_error="401 Unauthorized"),
            # Failing for five minutes: not yet; a disconnected one never.
            CalendarConnection(provider="microsoft", staff_id=bob, status="active", failing_since=now - dt.timedelta(minutes=5)),
            CalendarConnection(provider="google", staff_id=ann, status="disconnected", failing_since=now - dt.timedelta(days=3)),
        ])
        session.flush()
        # The home counts what the health page marks as alerts.
        assert sum(row["alert"] for row in health(session, now)) == 2

    alerts = alerts_of(client.get("/dashboard/").get_data(as_text=True))
    assert ("1 calendar connection(s) need to be reconnected", "/calendar-connections/") in alerts
    assert ("1 calendar connection(s) failing to sync", "/calendar-connections/") in alerts
    assert client.get("/calendar-connections/").status_code == 200

    # An auditor reads the same counts but gets no link to a page they may not open.
    auditor = make_user("Auditor", tenant=slug)
    other = app.test_client()
    login(other, auditor)
    seen = alerts_of(other.get("/dashboard/").get_data(as_text=True))
    assert ("1 calendar connection(s) failing to sync", None) in seen
    assert other.get("/calendar-connections/").status_code != 200
