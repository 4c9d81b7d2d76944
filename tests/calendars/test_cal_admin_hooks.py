"""Admin pages (Team → Calendar connections, Me → My calendar), the OAuth web flow and change notifications."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from cal_helpers import staff_id, tenant_do
from test_cal_google import connect, connection


def _login(client, user, slug):
    r = client.post("/login/", data={"username": user, "password": "password-1"})
    assert r.status_code == 302
    assert client.post(f"/switch/{slug}").status_code == 302


def test_admin_connects_caldav_and_google_by_oauth_and_sees_health(app, client, agency_business, radicale, google,
                                                                   cal_config):
    slug = agency_business
    _login(client, f"ca_{slug}", slug)
    page = client.get("/calendar-connections/")
    assert page.status_code == 200 and "No calendar connected yet" in page.get_data(as_text=True)
    sid = staff_id(app, slug)

    user, _url, _cal = radicale.account()
    r = client.post("/calendar-connections/caldav", data={
        "owner": "staff", "staff_id": sid, "url": radicale.url, "username": user, "password": "app-pass",
        "target": "Nope"})
    assert r.status_code == 302
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "no calendar &#39;Nope&#39;" in page and f'value="{user}"' in page  # input kept, nothing written
    r = client.post("/calendar-connections/caldav", data={
        "owner": "staff", "staff_id": sid, "url": radicale.url, "username": user, "password": "app-pass"})
    page = client.get("/calendar-connections/").get_data(as_text=True)
    assert "caldav" in page and "staff Ann" in page and "app-pass" not in page

    # Google: our redirect to the (configurable) authorize URL, the provider's redirect back, the callback.
    r = client.post("/calendar-connections/oauth/google", data={"owner": "staff", "staff_id": sid})
    assert r.status_code == 302 and r.headers["Location"].startswith(google.base_url + "/o/oauth2/v2/auth?")
    import requests

    consent = requests.get(r.headers["Location"], allow_redirects=False, timeout=5)
    assert consent.status_code == 302
    back = urlsplit(consent.headers["Location"])
    assert back.path == "/calendar-connections/oauth/callback"
    forged = client.get(back.path + "?code=x&state=forged")
    assert forged.status_code == 400
    r = client.post("/calendar-connections/oauth/google", data={"owner": "staff", "staff_id": sid})
    consent = requests.get(r.headers["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(consent.headers["Location"])
    r = client.get(f"{back.path}?{back.query}")
    assert r.status_code == 302
    page = client.get("/calendar-connections/").get_data(as_text=True)
    assert google.email in page and page.count("data-connection=") == 2
    assert [t["grant_type"] for t in google.token_requests] == ["authorization_code"]


def test_staff_sees_only_own_connections_and_other_tenants_ids_are_404(app, client, agency_business, make_tenant,
                                                                      make_user, google, cal_config):
    from app.models import tenant as m
    from app.services.calendar_sync import connect_caldav  # noqa: F401 - the module under test

    slug = agency_business
    ann = staff_id(app, slug)
    ann_conn = connect(app, slug, google)

    def add_bob(session, _ref):
        bob = m.Staff(key="bob", name="Bob", active=True)
        session.add(bob)
        session.flush()
        return bob.id

    bob = tenant_do(app, slug, add_bob)
    from app.services import calendar_sync as cal

    bob_conn = tenant_do(app, slug, lambda s, _r: cal.connect_oauth(
        s, provider="google", owner_kind="staff", staff_id=bob, tokens=google.grant(), account="bob@x",
        cfg=cal.SyncConfig.from_config(app.config)).id)
    user = make_user("Staff", tenant=slug, staff_id=ann)
    r = client.post("/login/", data={"username": user, "password": "password-1"})
    assert r.status_code == 302
    client.post(f"/switch/{slug}")
    page = client.get("/my-calendar/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f'data-connection="{ann_conn}"' in text and f'data-connection="{bob_conn}"' not in text
    assert client.post(f"/my-calendar/{bob_conn}/disconnect", data={"our_events": "keep"}).status_code == 404
    assert client.get("/calendar-connections/").status_code in (302, 403)
    assert connection(app, slug, bob_conn).status == "active"

    other = make_tenant()
    admin = make_user("Client Admin", tenant=other)
    client.get("/logout/")
    client.post("/login/", data={"username": admin, "password": "password-1"})
    client.post(f"/switch/{other}")
    assert client.post(f"/calendar-connections/{ann_conn}/sync").status_code == 404
    assert client.post(f"/calendar-connections/{ann_conn}/disconnect").status_code == 404
    assert connection(app, slug, ann_conn).status == "active"


def _queued_pulls(app):
    from rq import Queue

    from app.queueing import redis_connection

    with app.app_context():
        q = Queue("integrations", connection=redis_connection())
        return [j.args for j in q.get_jobs() if j.func_name == "app.jobs.calendar_sync.pull"]


def test_google_channel_and_graph_subscription_notifications(app, client, cal_tenant, google, graph, live_server,
                                                             cal_config, monkeypatch):
    from app.services import calendar_sync as cal

    monkeypatch.setitem(app.config, "PUBLIC_URL", live_server)
    slug = cal_tenant
    g_conn = connect(app, slug, google)
    m_conn = connect(app, slug, graph, provider="microsoft")
    cfg = cal.SyncConfig.from_config(app.config)
    now = dt.datetime.now(dt.timezone.utc)
    tenant_do(app, slug, lambda s, _r: cal.renew_channel(s, slug, s.get(cal.CalendarConnection, g_conn), cfg, now))
    # Graph validated our endpoint (validationToken echoed as text/plain) before creating the subscription.
    tenant_do(app, slug, lambda s, _r: cal.renew_channel(s, slug, s.get(cal.CalendarConnection, m_conn), cfg, now))
    assert len(graph.subscriptions) == 1 and len(google.channels) == 1
    assert connection(app, slug, g_conn).next_renewal_at > now + dt.timedelta(days=5)

    before = len(_queued_pulls(app))
    assert google.notify(google.email) == [200]
    assert graph.notify() == [202]
    pulls = _queued_pulls(app)[before:]
    assert sorted(p[1] for p in pulls) == sorted([g_conn, m_conn]) and {p[0] for p in pulls} == {slug}

    # Unknown channels, wrong tokens and wrong clientState are refused and queue nothing.
    channel = next(iter(google.channels.values()))
    r = client.post(f"/hooks/calendar/google/{slug}", headers={
        "X-Goog-Channel-ID": "nope", "X-Goog-Resource-State": "exists", "X-Goog-Channel-Token": channel["token"]})
    assert r.status_code == 404
    r = client.post(f"/hooks/calendar/google/{slug}", headers={
        "X-Goog-Channel-ID": channel["id"], "X-Goog-Resource-State": "exists", "X-Goog-Channel-Token": "bad"})
    assert r.status_code == 403
    sub = next(iter(graph.subscriptions.values()))
    r = client.post(f"/hooks/calendar/microsoft/{slug}", json={"value": [{"subscriptionId": sub["id"], "clientState": "x"}]})
    assert r.status_code == 403
    r = client.post(f"/hooks/calendar/microsoft/{slug}?validationToken=abc%20def")
    assert r.status_code == 200 and r.get_data(as_text=True) == "abc def" and r.mimetype == "text/plain"
    assert len(_queued_pulls(app)) == before + 2

    # Renewal before expiry: Graph's subscription is extended in place, Google's channel replaced.
    later = now + dt.timedelta(days=2)
    tenant_do(app, slug, lambda s, _r: cal.renew_channel(s, slug, s.get(cal.CalendarConnection, m_conn), cfg, later))
    tenant_do(app, slug, lambda s, _r: cal.renew_channel(s, slug, s.get(cal.CalendarConnection, g_conn), cfg, later))
    assert len(graph.subscriptions) == 1 and len(google.channels) == 1
    assert next(iter(google.channels)) != channel["id"]
