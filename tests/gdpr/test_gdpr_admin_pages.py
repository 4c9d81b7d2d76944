"""Admin pages: a portal erasure request approved by the client admin is carried out; retention needs a dry
run before it is enabled and then anonymises inactive customers from the scheduled job; auditor reports are
built by the job with progress and downloaded; auditors cannot approve or change retention."""

from __future__ import annotations

import datetime as dt

from gdpr_support import book


def _login(client, username):
    client.get("/logout/")
    assert client.post("/login/", data={"username": username, "password": "password-1"}).status_code == 302


def test_portal_erasure_request_approved_by_client_admin_is_carried_out(app, client, agency_business, sql, pinned_now):
    pinned_now("2027-01-01T00:00:00Z")
    slug = agency_business
    book(client, slug, name="Ada Portalia", email="ada.portalia@example.com")
    cid = sql(slug, "SELECT id FROM customer WHERE email = 'ada.portalia@example.com'")[0][0]
    with client.session_transaction() as web:
        web["portal"] = {slug: cid}
    assert client.post(f"/portal/{slug}/erase").status_code == 200
    [req] = sql(slug, "SELECT id, status, channel, due_at - requested_at AS window FROM erasure_request WHERE kind = 'erasure'")
    assert req.status == "requested" and req.channel == "portal" and req.window == dt.timedelta(days=30)
    _login(client, f"ca_{slug}")
    page = client.get("/privacy/requests/").get_data(as_text=True)
    assert "Approve and erase" in page and "days left" in page
    assert client.post(f"/privacy/requests/{req.id}/approve").status_code == 302
    row = sql(slug, "SELECT status, approved_by, handled_by, handled_at <= due_at AS on_time, email FROM erasure_request"
                    " WHERE id = :i", i=req.id)[0]
    assert row.status == "done" and row.handled_by == f"user:ca_{slug}" and row.on_time and row.email is None
    assert sql(slug, "SELECT name, email FROM customer WHERE id = :c", c=cid)[0] == (f"erased-{cid}", f"erased-{cid}@erased.invalid")
    found = client.get("/privacy/requests/?q=ada.portalia@example.com").get_data(as_text=True)
    assert "Nobody found." in found


def test_retention_dry_run_first_then_the_job_anonymises(app, client, agency_business, sql):
    from app.extensions import db
    from app.gdpr import retention

    slug = agency_business
    sql(slug, "INSERT INTO customer (name, email, sms_opt_out, marketing_opt_in, created_at)"
              " VALUES ('Old Timer', 'old.timer@example.com', false, false, now() - interval '3 years')")
    _login(client, f"ca_{slug}")
    client.post("/privacy/retention/", data={"customer_inactive_months": "24", "enabled": "on", "action": "save"})
    assert sql(slug, "SELECT count(*) FROM retention_policy WHERE enabled")[0][0] == 0  # refused: no dry run yet
    client.post("/privacy/retention/", data={"customer_inactive_months": "24", "action": "dry_run"})
    report = sql(slug, "SELECT dry_run_report FROM retention_policy")[0][0]
    assert report["customer_count"] == 1 and report["dry_run"] is True
    assert sql(slug, "SELECT count(*) FROM customer WHERE email = 'old.timer@example.com'")[0][0] == 1  # dry: nothing changed
    client.post("/privacy/retention/", data={"customer_inactive_months": "24", "enabled": "on", "action": "save"})
    assert sql(slug, "SELECT enabled FROM retention_policy")[0][0] is True
    with app.app_context():
        done = retention.apply_enabled(db.engine, [slug])
    assert done[slug]["customer_count"] == 1
    assert sql(slug, "SELECT count(*) FROM customer WHERE email = 'old.timer@example.com'")[0][0] == 0
    assert sql(slug, "SELECT actor_kind, actor_label FROM audit_log WHERE entity = 'retention' AND action = 'run'")[0] == ("job", "retention")


def test_auditor_builds_and_downloads_a_report_but_cannot_approve(app, client, agency_business, sql, monkeypatch):
    from app.extensions import db
    from app.jobs import reports as report_jobs
    from app.services.people import create_user_with_role

    slug = agency_business
    with app.app_context():
        create_user_with_role(db.session, username=f"au_{slug}", email=f"au_{slug}@x.org", password="password-1",
                              role="Auditor", tenant_slug=slug)
        db.session.commit()
    queued = []

    monkeypatch.setattr("app.fairqueue.submit", lambda tenant, func, *args, **kw: queued.append((tenant, *args)))
    _login(client, f"au_{slug}")
    assert client.post("/privacy/reports/", data={"from": "2020-01-01", "to": "2030-12-31", "format": "pdf"}).status_code == 302
    [(job_slug, report_id)] = queued
    assert client.get("/privacy/reports/?format=json").get_json()["reports"][0]["status"] == "queued"
    with app.app_context():
        report_jobs.build_report(job_slug, report_id)
    status = client.get("/privacy/reports/?format=json").get_json()["reports"][0]
    assert status["status"] == "done" and status["progress"] == 100
    pdf = client.get(f"/privacy/reports/{report_id}/download")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    # The job queue unreachable: the report asked for fails at once, saying why.
    monkeypatch.undo()  # the real submit again (the stub above would swallow the failure)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    client.post("/privacy/reports/", data={"from": "2020-01-01", "to": "2030-12-31", "format": "csv"})
    newest = client.get("/privacy/reports/?format=json").get_json()["reports"][0]
    assert newest["id"] != report_id and newest["status"] == "failed"
    assert "unreachable" in sql(slug, "SELECT error FROM audit_report WHERE id = :i", i=newest["id"])[0][0]
    # Read-only: the approve and retention forms are refused.
    sql(slug, "INSERT INTO erasure_request (status, requested_at, kind, channel) VALUES ('requested', now(), 'erasure', 'portal')")
    rid = sql(slug, "SELECT max(id) FROM erasure_request")[0][0]
    assert client.post(f"/privacy/requests/{rid}/approve").status_code in (302, 403)
    assert sql(slug, "SELECT status FROM erasure_request WHERE id = :i", i=rid)[0][0] == "requested"
    client.post("/privacy/retention/", data={"customer_inactive_months": "1", "action": "dry_run"})
    assert sql(slug, "SELECT count(*) FROM retention_policy WHERE customer_inactive_months = 1")[0][0] == 0
