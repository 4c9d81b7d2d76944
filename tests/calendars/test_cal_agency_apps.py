"""An agency's own Google / Microsoft app: its businesses' connections sign in, exchange codes and refresh tokens
with it (the fakes check which client reaches their token endpoint); a connection keeps the app that issued
its tokens, and asks for a reconnect when the agency's app is replaced or removed."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from cal_helpers import staff_id, tenant_do
from test_cal_admin_hooks import _login
from test_cal_google import connection, pull


def _agency_slug(app, slug) -> str:
    from app.extensions import db
    from app.models.public import Agency, Tenant

    with app.app_context():
        return db.session.scalar(select(Agency.slug).join(Tenant, Tenant.agency_id == Agency.id)
                                 .where(Tenant.slug == slug))


def _oauth_connect(client, provider, sid) -> tuple[str, object]:
    """Start the web flow as the signed-in admin, consent at the fake, come back: the authorize URL and the answer."""
    r = client.post(f"/calendar-connections/oauth/{provider}", data={"owner": "staff", "staff_id": sid})
    assert r.status_code == 302, r.get_data(as_text=True)
    authorize = r.headers["Location"]
    consent = requests.get(authorize, allow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["Location"])
    return authorize, client.get(f"{back.path}?{back.query}")


def test_agency_google_app_signs_in_and_refreshes_and_a_changed_app_asks_for_reconnect(
        app, client, agency_business, google, cal_config):
    from app.models.calendar_sync import CalendarConnection
    from app.models.webhooks import IntegrationCredential
    from app.services import calendar_sync as cal

    slug = agency_business
    agency = _agency_slug(app, slug)
    sid = staff_id(app, slug)
    google.clients.update({"agency-gid": "agency-gsecret", "agency-gid-2": "agency-gsecret-2"})
    # A connection made with the platform's app before the agency brought its own.
    cfg = cal.SyncConfig.from_config(app.config)
    old_id = tenant_do(app, slug, lambda s, _r: cal.connect_oauth(
        s, provider="google", owner_kind="business", tokens=google.grant("gid"), account="desk@x", cfg=cfg).id)

    runner = app.test_cli_runner()
    r = runner.invoke(args=["calendars", "app", "set", agency, "--provider", "google", "--client-id", "agency-gid"])
    assert r.exit_code != 0 and "client secret is required" in r.output
    r = runner.invoke(args=["calendars", "app", "set", "no-such-agency", "--provider", "google", "--client-id", "x",
                            "--client-secret", "y"])
    assert r.exit_code != 0 and "unknown agency" in r.output
    r = runner.invoke(args=["calendars", "app", "set", agency, "--provider", "google", "--client-id", "agency-gid",
                            "--client-secret", "agency-gsecret"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["client_id"] == "agency-gid" and "agency-gsecret" not in r.output
    shown = runner.invoke(args=["calendars", "app", "show", agency]).output
    assert [x["source"] for x in json.loads(shown)] == ["agency", "platform"] and "agency-gsecret" not in shown
    with app.app_context():
        from app.extensions import db

        stored = db.session.scalar(select(IntegrationCredential.data_enc).where(
            IntegrationCredential.provider == "calendar_google"))
        assert stored and "agency-gsecret" not in stored and "agency-gid" not in stored  # encrypted at rest

    # The business's admin connects Google: the agency's client is sent to the consent page and the token endpoint.
    _login(client, f"ca_{slug}", slug)
    authorize, back = _oauth_connect(client, "google", sid)
    assert parse_qs(urlsplit(authorize).query)["client_id"] == ["agency-gid"]
    assert back.status_code == 302
    assert google.token_requests[-1]["grant_type"] == "authorization_code"
    assert google.token_clients[-1] == "agency-gid"
    new_id = tenant_do(app, slug, lambda s, _r: s.scalar(select(CalendarConnection.id).where(
        CalendarConnection.staff_id == sid)))
    conn = connection(app, slug, new_id)
    assert (conn.oauth_app, conn.oauth_client_id, conn.status) == ("agency", "agency-gid", "active")

    # Expired access tokens (401, then one refresh): each connection refreshes with the app that issued its tokens.
    google.expire_access_tokens()
    seen = len(google.token_clients)
    assert pull(app, slug, new_id)["error"] is None
    assert pull(app, slug, old_id)["error"] is None
    refreshes = [(r["grant_type"], c) for r, c in zip(google.token_requests[seen:], google.token_clients[seen:])]
    assert refreshes == [("refresh_token", "agency-gid"), ("refresh_token", "gid")]

    # Only the agency (owner) may change its app; a client admin is refused.
    assert client.post("/calendar-connections/apps/google", data={"client_id": "x", "client_secret": "y"}
                       ).status_code == 403
    client.get("/logout/")
    _login(client, f"ow_{slug}", slug)
    page = client.get("/calendar-connections/").get_data(as_text=True)
    assert 'id="agency-app-google"' in page and "agency-gid" in page and "agency-gsecret" not in page
    r = client.post("/calendar-connections/apps/google", data={"client_id": "agency-gid-2", "client_secret": ""})
    assert "client secret is required" in client.get(r.headers["Location"]).get_data(as_text=True)
    google.expire_access_tokens()
    seen = len(google.token_clients)
    r = client.post("/calendar-connections/apps/google", data={"client_id": "agency-gid-2",
                                                               "client_secret": "agency-gsecret-2"})
    assert r.status_code == 302
    assert "1 connection(s) of the agency&#39;s businesses now need a reconnect" in client.get(
        r.headers["Location"]).get_data(as_text=True)

    # The agency-issued connection is not refreshed with the new app: it waits for a reconnect at once, says why,
    # and its people are told.
    conn = connection(app, slug, new_id)
    assert conn.status == "needs_reconnect" and "agency's app changed" in conn.last_error
    assert "needs_reconnect" in pull(app, slug, new_id)["error"]
    assert google.token_clients[seen:] == []  # no refresh tried with an app that did not issue the tokens
    from app.models.public import PlatformMail

    told = tenant_do(app, slug, lambda s, _r: list(s.scalars(select(PlatformMail.to_email).where(
        PlatformMail.subject.like("Calendar connection needs%")))))
    assert f"ca_{slug}@x.org" in told
    assert pull(app, slug, old_id)["error"] is None  # the platform-issued one goes on
    # Reconnecting signs in with the agency's new app.
    _authorize, back = _oauth_connect_reconnect(client, sid, new_id)
    conn = connection(app, slug, new_id)
    assert (conn.status, conn.oauth_client_id) == ("active", "agency-gid-2")
    assert google.token_clients[-1] == "agency-gid-2"

    r = runner.invoke(args=["calendars", "app", "remove", agency, "--provider", "google"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"provider": "google", "source": "platform", "needs_reconnect": 1}
    assert json.loads(runner.invoke(args=["calendars", "app", "show", agency]).output)[0]["source"] == "platform"
    r = runner.invoke(args=["calendars", "app", "remove", agency, "--provider", "google"])
    assert r.exit_code != 0
    assert connection(app, slug, new_id).status == "needs_reconnect"
    assert connection(app, slug, old_id).status == "active"  # platform-issued: untouched throughout


def _oauth_connect_reconnect(client, sid, connection_id):
    r = client.post("/calendar-connections/oauth/google", data={"owner": "staff", "staff_id": sid,
                                                                "reconnect": connection_id})
    consent = requests.get(r.headers["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(consent.headers["Location"])
    return r.headers["Location"], client.get(f"{back.path}?{back.query}")


def test_agency_microsoft_app_with_its_own_directory_reaches_the_token_endpoint(app, client, agency_business, graph,
                                                                                cal_config):
    from app.models.calendar_sync import CalendarConnection

    slug = agency_business
    agency = _agency_slug(app, slug)
    sid = staff_id(app, slug)
    graph.clients["agency-mid"] = "agency-msecret"
    runner = app.test_cli_runner()
    r = runner.invoke(args=["calendars", "app", "set", agency, "--provider", "microsoft", "--client-id", "agency-mid",
                            "--client-secret", "agency-msecret", "--ms-tenant", "contoso.onmicrosoft.com"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["calendars", "app", "set", agency, "--provider", "google", "--client-id", "g",
                            "--client-secret", "s", "--ms-tenant", "contoso.onmicrosoft.com"])
    assert r.exit_code != 0 and "Microsoft apps only" in r.output

    _login(client, f"ca_{slug}", slug)
    authorize, back = _oauth_connect(client, "microsoft", sid)
    assert urlsplit(authorize).path == "/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    assert parse_qs(urlsplit(authorize).query)["client_id"] == ["agency-mid"]
    assert back.status_code == 302
    assert graph.token_clients == ["agency-mid"]
    assert graph.token_paths == ["/contoso.onmicrosoft.com/oauth2/v2.0/token"]
    conn = tenant_do(app, slug, lambda s, _r: s.scalar(select(CalendarConnection).where(
        CalendarConnection.staff_id == sid)))
    assert (conn.provider, conn.oauth_app, conn.oauth_client_id) == ("microsoft", "agency", "agency-mid")

    # An app changed behind the admin's back (no check ran): the next use refuses to refresh with it.
    from app.extensions import db
    from app.models.public import Agency
    from app.services import calendar_sync as cal

    graph.clients["other-mid"] = "other-secret"
    with app.app_context():
        agency_id = db.session.scalar(select(Agency.id).where(Agency.slug == agency))
        cal.set_agency_app(db.session, agency_id, "microsoft", client_id="other-mid", client_secret="other-secret")
        db.session.commit()
    graph.expire_access_tokens()
    result = pull(app, slug, conn.id)
    assert "agency's app changed" in result["error"] and graph.token_clients == ["agency-mid"]
    assert connection(app, slug, conn.id).status == "needs_reconnect"
