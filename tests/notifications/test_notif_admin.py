"""Admin pages: delivery log filter/search/resend, failed jobs retry/discard, development outbox."""

from __future__ import annotations

from sqlalchemy import text

from notif_db_helpers import booking_body, deliveries, relay, wait_until


def _login(app, client, slug, role="Client Admin"):
    from app.extensions import db
    from app.services.people import create_user_with_role

    name = f"{role[:2].lower()}_{slug}"
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password="password-1",
                              role=role, tenant_slug=slug)
        db.session.commit()
    assert client.post("/login/", data={"username": name, "password": "password-1"}).status_code in (200, 302)


def _book(client, slug, email="eve@example.com", start="2027-01-11T08:00:00Z"):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(start=start, customer={
        "name": "Eve Example", "email": email}))
    assert response.status_code == 201, response.get_json()


def test_log_filters_searches_and_resends_a_failed_message(app, client, notif_tenant, smtp, notif, workers):
    from app.jobs.notify import handle_event

    smtp.refuse_next(1, 550)  # the customer's confirmation fails for good
    _book(client, notif_tenant)
    with app.app_context():
        handle_event(notif_tenant, _booked_event_id(app, notif_tenant))
    rows = {r["recipient"]: r for r in deliveries(app, notif_tenant)}
    assert rows["eve@example.com"]["status"] == "failed" and rows["ann@salon.test"]["status"] == "sent"

    _login(app, client, notif_tenant)
    failed_page = client.get("/notifications/log/?status=failed").get_data(as_text=True)
    assert "eve@example.com" in failed_page and "ann@salon.test" not in failed_page
    search = client.get("/notifications/log/?q=ANN@salon").get_data(as_text=True)
    assert "ann@salon.test" in search and "eve@example.com" not in search
    assert "550" in client.get(f"/notifications/log/{rows['eve@example.com']['id']}").get_data(as_text=True)
    failed_jobs = client.get("/notifications/failed/").get_data(as_text=True)
    assert "eve@example.com" in failed_jobs
    assert f"/notifications/failed/delivery/{rows['eve@example.com']['id']}/retry" in failed_jobs

    workers.start(1)
    answer = client.post(f"/notifications/log/{rows['eve@example.com']['id']}/resend")
    assert answer.status_code == 302
    wait_until(lambda: deliveries(app, notif_tenant, "recipient = 'eve@example.com' AND status = 'sent'"))
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["ann@salon.test", "eve@example.com"]


def test_failed_jobs_page_lists_only_this_tenants_jobs_with_retry_and_discard(app, client, notif_tenant, make_tenant, notif):
    from rq.registry import FailedJobRegistry

    from app.queueing import queue

    other = make_tenant()
    with app.app_context():
        q = queue("notifications")
        # Events that do not exist make the job fail inside the worker-less test: run them synchronously.
        mine = q.enqueue("app.jobs.notify.send_delivery", notif_tenant, "not-an-id")
        theirs = q.enqueue("app.jobs.notify.send_delivery", other, "not-an-id")
        from rq.worker import SimpleWorker

        SimpleWorker([q], connection=q.connection).work(burst=True)
        assert set(FailedJobRegistry(queue=q).get_job_ids()) == {mine.id, theirs.id}

    _login(app, client, notif_tenant)
    page = client.get("/notifications/failed/").get_data(as_text=True)
    assert mine.id in page and theirs.id not in page
    assert f"/notifications/failed/job/{mine.id}/retry" in page and f"/notifications/failed/job/{mine.id}/discard" in page
    assert client.post(f"/notifications/failed/job/{theirs.id}/discard").status_code == 404
    assert client.post(f"/notifications/failed/job/{mine.id}/explode").status_code == 404
    assert client.post(f"/notifications/failed/job/{mine.id}/retry").status_code == 302
    with app.app_context():
        assert mine.id in queue("notifications").job_ids
    assert client.post(f"/notifications/failed/job/{mine.id}/discard").status_code == 302
    with app.app_context():
        assert mine.id not in queue("notifications").job_ids


def test_auditor_reads_the_log_but_cannot_resend(app, client, notif_tenant, notif):
    _login(app, client, notif_tenant, role="Auditor")
    assert client.get("/notifications/log/").status_code == 200
    assert client.post("/notifications/log/1/resend").status_code in (302, 403)
    assert client.get("/notifications/templates/booking_confirmed/email/en").status_code in (302, 403)


def test_dev_outbox_lists_mail_kept_without_smtp(app, client, notif_tenant, notif, monkeypatch):
    from app.jobs.notify import handle_event

    monkeypatch.setitem(app.config, "SMTP_HOST", None)
    _book(client, notif_tenant)
    with app.app_context():
        handle_event(notif_tenant, _booked_event_id(app, notif_tenant))
    _login(app, client, notif_tenant)
    page = client.get("/notifications/outbox/").get_data(as_text=True)
    assert "SMTP_HOST is not set" in page
    assert "eve@example.com" in page and "Booking confirmed" in page


def test_dev_outbox_shows_the_business_its_own_account_mail_and_the_invitation_ics(app, client, notif_tenant, make_tenant,
                                                                                 notif, monkeypatch):
    import re

    from app.extensions import db
    from app.jobs.notify import handle_event
    from app.models.public import Tenant
    from app.services.mail import queue_mail

    monkeypatch.setitem(app.config, "SMTP_HOST", None)
    _book(client, notif_tenant)
    with app.app_context():
        from app.extensions import db as _db
        from app.tenancy import tenant_session

        with tenant_session(_db.engine, notif_tenant) as (session, _ref):
            booked = session.execute(text("SELECT id FROM outbox_event WHERE event_type = 'appointment.booked'")).scalar_one()
        handle_event(notif_tenant, booked)
    # A portal sign-in link of this business, and one of another business.
    assert client.post(f"/portal/{notif_tenant}/login", data={"email": "eve@example.com"}).status_code in (200, 302, 303)
    other = make_tenant()
    with app.app_context():
        other_id = db.session.query(Tenant).filter_by(slug=other).one().id
        queue_mail(db.session, "someone@else.example", "Your sign-in link for Elsewhere", "link", tenant_id=other_id)
        db.session.commit()
    _login(app, client, notif_tenant)  # a client admin, not a platform admin
    page = client.get("/notifications/outbox/").get_data(as_text=True)
    account = page.split("Account mail")[1]
    assert "Your sign-in link for" in account and "eve@example.com" in account and "/portal/" in account
    assert "Elsewhere" not in account
    link = re.search(r'href="(/notifications/outbox/(\d+)/invite\.ics)"', page)
    assert link, "no .ics attachment link"
    ics = client.get(link.group(1))
    assert ics.status_code == 200 and ics.mimetype == "text/calendar" and "method=REQUEST" in ics.headers["Content-Type"]
    assert b"BEGIN:VCALENDAR" in ics.data and b"METHOD:REQUEST" in ics.data and "attachment" in ics.headers["Content-Disposition"]
    assert client.get("/notifications/outbox/999999/invite.ics").status_code == 404


def test_reminder_settings_per_service_are_validated_and_used(app, client, notif_tenant, smtp, notif):
    import datetime as dt

    from app.extensions import db
    from app.jobs.periodic import scan_tenant_reminders

    _login(app, client, notif_tenant)
    with app.app_context(), db.engine.connect() as conn:
        service_id = conn.execute(text(f'SELECT id FROM "tenant_{notif_tenant}".service')).scalar()
    assert "1440, 120" in client.get("/notifications/reminders/").get_data(as_text=True)  # the defaults

    bad = client.post(f"/notifications/reminders/{service_id}", data={"offsets": "60, soon, 2", "channel_email": "1"})
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert "&#39;soon&#39; is not a whole number" in page and "2 is out of range" in page
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text(f'SELECT count(*) FROM "tenant_{notif_tenant}".service_notification_settings')).scalar() == 0

    ok = client.post(f"/notifications/reminders/{service_id}", data={"offsets": "60", "channel_email": "1",
                                                                     "follow_up": ""})
    assert ok.status_code == 302
    _book(client, notif_tenant)
    start = dt.datetime(2027, 1, 11, 8, 0, tzinfo=dt.timezone.utc)
    with app.app_context():
        assert scan_tenant_reminders(notif_tenant, start - dt.timedelta(hours=2)) == []  # no 2 h reminder any more
        assert len(scan_tenant_reminders(notif_tenant, start - dt.timedelta(minutes=59))) == 1
    assert [(r["kind"], r["offset_min"]) for r in deliveries(app, notif_tenant, "kind = 'reminder'")] == [("reminder", 60)]


def _booked_event_id(app, slug):
    """The outbox id of the booking's event (a new customer's customer.created comes before it)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(f'SELECT min(id) FROM "tenant_{slug}".outbox_event'
                                 " WHERE event_type = 'appointment.booked'")).scalar()
