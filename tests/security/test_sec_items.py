"""One test per review item of the security issue (items 1, 3, 5-12, 15-17; item 2 is in
test_sec_api_keys, 4 in test_sec_settings, 13/14 in test_sec_hostile_input)."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from sqlalchemy import select, text

from support import minimal_setup

PASSWORD = "password-1"


def _q(app, sql, **params):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.fixture(scope="module")
def two_agencies(app):
    """Agency A with business a1 (client admin ca, owner ow) and agency B with business b1 (an API key)."""
    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key, create_user_with_role
    from app.services.setup_io import import_setup
    from tenants.provisioning import create_agency

    tag = uuid.uuid4().hex[:8]
    out = {"tag": tag}
    with app.app_context():
        for key in ("A", "B"):
            create_agency(db.session, f"sa{key.lower()}{tag}", f"Sec agency {key}")
        db.session.commit()
        for key, agency in (("a1", "A"), ("b1", "B")):
            setup = minimal_setup()
            setup["tenant"]["slug"] = out[key] = f"sec{key}_{tag}"
            import_setup(db.engine, setup, f"sa{agency.lower()}{tag}")
        b1 = db.session.scalar(select(Tenant).where(Tenant.slug == out["b1"]))
        out["b1_id"] = b1.id
        key, _ = create_api_key(db.session, b1, "b1 key")
        out["b1_key_id"] = key.id
        create_user_with_role(db.session, username=f"ca{tag}", email=f"ca{tag}@x.org", password=PASSWORD,
                              role="Client Admin", tenant_slug=out["a1"])
        create_user_with_role(db.session, username=f"ow{tag}", email=f"ow{tag}@x.org", password=PASSWORD,
                              role="Agency Owner", agency_slug=f"saa{tag}")
        create_user_with_role(db.session, username=f"bu{tag}", email=f"bu{tag}@x.org", password=PASSWORD,
                              role="Client Admin", tenant_slug=out["b1"])
        db.session.commit()
    return out


# ---------------------------------------------------------------- item 1

def test_item1_actions_load_rows_through_the_scope(app, two_agencies, ip_client, sign_in):
    w = two_agencies
    client = sign_in(ip_client(), f"ca{w['tag']}")
    for action in ("/apikeyview/action_post",):
        response = client.post(action, data={"action": "revoke", "rowid": str(w["b1_key_id"])})
        assert response.status_code == 404
    assert client.post(f"/apikeyview/action/revoke/{w['b1_key_id']}").status_code == 404
    assert _q(app, "SELECT revoked_at FROM tenant_api_key WHERE id = :i", i=w["b1_key_id"])[0][0] is None
    owner = sign_in(ip_client(), f"ow{w['tag']}")
    for data in ({"action": "suspend", "rowid": str(w["b1_id"])}, {"action": "suspend", "rowid": ["1", str(w["b1_id"])]}):
        assert owner.post("/tenantview/action_post", data=data).status_code == 404
    assert owner.post(f"/tenantview/action/suspend/{w['b1_id']}").status_code == 404
    assert _q(app, "SELECT status FROM tenant WHERE id = :i", i=w["b1_id"])[0][0] == "active"
    # Unknown action and GET are refused too.
    assert owner.post("/tenantview/action_post", data={"action": "nope", "rowid": "1"}).status_code == 404
    assert owner.get(f"/tenantview/action/suspend/{w['b1_id']}").status_code == 405


# ---------------------------------------------------------------- item 3

def test_item3_reset_and_invite_links_ignore_the_host_header(app, two_agencies, ip_client):
    w = two_agencies
    email = f"ca{w['tag']}@x.org"
    client = ip_client()
    client.post("/account/forgot", data={"email": email}, headers={"Host": "evil.example",
                                                                   "X-Forwarded-Host": "evil.example"})
    body = _q(app, "SELECT body FROM platform_mail WHERE to_email = :e ORDER BY id DESC LIMIT 1", e=email)[0][0]
    assert "evil.example" not in body
    assert f"{app.config['PUBLIC_URL']}/account/reset/" in body


# ---------------------------------------------------------------- item 5

@pytest.mark.parametrize("source", [
    "{{ ([0] * 10**8)|length }}",
    "{{ ('x' * 99999).replace('', 'yy') }}",
    "{{ ('x' * 99999)|join('y' * 99999) }}",
    "{{ " + " ~ ".join(["('x' * 99999)"] * 15) + " }}",
])
def test_item5_template_sandbox_limits(source):
    from app.notifications import templating

    started = time.perf_counter()
    with pytest.raises(templating.TemplateRenderError):
        templating._render_field("body_text", source, {}, False)
    assert time.perf_counter() - started < 0.5


def test_item5_preview_refuses_fast(app, two_agencies, ip_client, sign_in):
    client = sign_in(ip_client(), f"ca{two_agencies['tag']}")
    started = time.perf_counter()
    response = client.post("/notifications/templates/booking_confirmed/email/en/preview",
                           data={"subject": "s", "body_text": "{{ ([0] * 10**8)|length }}", "body_html": ""})
    assert time.perf_counter() - started < 2.0  # was 2.6 s and 730 MB
    assert response.status_code == 200 and response.get_json()["ok"] is False


# ---------------------------------------------------------------- item 6

def test_item6_impossible_rrule_is_422_at_once(app, two_agencies, ip_client, pinned_now):
    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session
    from sqlalchemy import update

    with app.app_context(), tenant_session(db.engine, two_agencies["a1"]) as (session, _):
        session.execute(update(m.Service).where(m.Service.key == "visit").values(allow_recurring=True))
    pinned_now("2027-01-04T08:00:00Z")
    client = ip_client()
    started = time.perf_counter()
    response = client.post(f"/api/v1/public/{two_agencies['a1']}/bookings", json={
        "service": "visit", "start": "2027-01-11T10:00:00+01:00",
        "customer": {"name": "R", "email": "r@example.com"},
        "recurrence": {"rrule": "FREQ=WEEKLY;COUNT=5;BYMONTH=2;BYMONTHDAY=30", "mode": "all_or_nothing"},
    })
    assert time.perf_counter() - started < 0.5
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "recurrence.rrule"


# ---------------------------------------------------------------- item 7

@pytest.fixture()
def slow_backoff(app):
    previous = app.config.get("THROTTLE_BASE_SECONDS")
    app.config["THROTTLE_BASE_SECONDS"] = 60  # locks outlast the test however slow the machine
    yield
    app.config["THROTTLE_BASE_SECONDS"] = previous


def _own_user(app, slug, prefix):
    from app.extensions import db
    from app.services.people import create_user_with_role

    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password=PASSWORD,
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    return name


def test_item7_login_throttled_per_account_and_right_password_waits(app, two_agencies, ip_client, slow_backoff):
    user = _own_user(app, two_agencies["a1"], "s7")
    client = ip_client()
    codes = [client.post("/login/", data={"username": user, "password": "wrong"}).status_code for _ in range(8)]
    assert 429 in codes
    locked = client.post("/login/", data={"username": user, "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert "Too many attempts" in locked.get_data(as_text=True)
    # The same answer for an account that does not exist.
    ghost_name = f"ghost{uuid.uuid4().hex[:6]}"
    ghost = [client.post("/login/", data={"username": ghost_name, "password": "x"}).status_code for _ in range(8)]
    assert ghost == codes
    # Another IP is locked out of this account too (per account).
    other = ip_client()
    assert other.post("/login/", data={"username": user, "password": PASSWORD}).status_code == 429


def test_item7_forgot_is_throttled(app, two_agencies, ip_client, slow_backoff):
    client = ip_client()
    email = f"{_own_user(app, two_agencies['a1'], 's7f')}@x.org"
    before = _q(app, "SELECT count(*) FROM platform_mail WHERE to_email = :e", e=email)[0][0]
    codes = [client.post("/account/forgot", data={"email": email}).status_code for _ in range(10)]
    sent = _q(app, "SELECT count(*) FROM platform_mail WHERE to_email = :e", e=email)[0][0] - before
    assert sent <= 3 and codes.count(429) >= 6


# ---------------------------------------------------------------- item 8

def _user_client(app, ip_client, username):
    client = ip_client()
    assert client.post("/login/", data={"username": username, "password": PASSWORD}).status_code == 302
    assert client.get("/locationview/list/").status_code == 200
    return client


def _copy(app, client):
    """A second client holding a copy of the first one's session cookie."""
    copy = app.test_client()
    copy.environ_base["REMOTE_ADDR"] = client.environ_base["REMOTE_ADDR"]
    cookie = client.get_cookie("session")
    copy.set_cookie("session", cookie.value)
    return copy


def _signed_out(client) -> bool:
    response = client.get("/locationview/list/")
    return response.status_code == 302 and "/login" in response.headers["Location"]


def test_item8_logout_password_reset_deactivation_and_role_removal_end_sessions(app, two_agencies, ip_client):
    from app.extensions import db
    from app.models.public import Membership
    from app.services.people import create_user_with_role

    slug = two_agencies["a1"]
    names = {}
    with app.app_context():
        for k in ("logout", "password", "inactive", "role"):
            names[k] = f"s8{k}{uuid.uuid4().hex[:6]}"
            create_user_with_role(db.session, username=names[k], email=f"{names[k]}@x.org", password=PASSWORD,
                                  role="Client Admin", tenant_slug=slug)
        db.session.commit()

    client = _user_client(app, ip_client, names["logout"])
    stolen = _copy(app, client)
    assert not _signed_out(stolen)
    client.get("/logout/")
    assert _signed_out(stolen)

    client = _user_client(app, ip_client, names["password"])
    stolen = _copy(app, client)
    sm = app.appbuilder.sm
    with app.app_context():
        sm.reset_password(sm.find_user(username=names["password"]).id, "another-password-9")
    assert _signed_out(stolen)

    client = _user_client(app, ip_client, names["inactive"])
    with app.app_context():
        user = sm.find_user(username=names["inactive"])
        user.active = False
        db.session.commit()
        user.active = True
        db.session.commit()  # active again: the old session still ended
    assert _signed_out(client)

    client = _user_client(app, ip_client, names["role"])
    with app.app_context():
        user = sm.find_user(username=names["role"])
        for membership in db.session.scalars(select(Membership).where(Membership.user_id == user.id)):
            db.session.delete(membership)
        db.session.commit()
    assert _signed_out(client)


def test_item8_no_jwt_is_a_credential(app, two_agencies, ip_client):
    """A JWT signed with the app's own key (as FAB's REST login would issue) opens nothing: it would
    outlive logout and reset and carry no business; API keys and the browser session are the ways in."""
    from flask_jwt_extended import create_access_token

    name = _own_user(app, two_agencies["a1"], "s8jwt")
    with app.test_request_context():
        token = create_access_token(identity=str(app.appbuilder.sm.find_user(username=name).id), fresh=True)
    client = ip_client()
    assert client.get("/api/v1/locations/", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.post("/api/v1/security/login", json={"username": name, "password": PASSWORD,
                                                      "provider": "db"}).status_code == 404
    session = _user_client(app, ip_client, name)
    assert session.get("/api/v1/locations/").status_code == 200


# ---------------------------------------------------------------- item 9

def test_item9_security_headers(app, two_agencies, ip_client, sign_in):
    client = sign_in(ip_client(), f"ca{two_agencies['tag']}")
    page = client.get("/locationview/list/")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'nonce-" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page.get_data(as_text=True))
    assert scripts and all(f'nonce="{nonce}"' in attrs for attrs in scripts)  # every inline script may run
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"]
    assert "Strict-Transport-Security" not in page.headers  # plain HTTP here
    secure = client.get("/locationview/list/", base_url="https://localhost")
    assert "max-age=" in secure.headers["Strict-Transport-Security"]


def test_item9_https_settings_make_cookies_secure(app):
    from flask import Flask

    from app.websecurity import install

    probe = Flask("probe")
    probe.config.update(PUBLIC_URL="https://book.example.com", SECRET_KEY="x" * 32)
    install(probe)
    assert probe.config["SESSION_COOKIE_SECURE"] is True


def test_item9_widget_frame_keeps_its_own_csp(app, widget_tenant, client):
    slug, widget_id = widget_tenant()
    response = client.get(f"/widget/v1/{slug}/{widget_id}/frame")
    assert response.status_code == 200
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers


# ---------------------------------------------------------------- item 10

def test_item10_switch_is_post_only_with_same_site_next(app, two_agencies, ip_client, sign_in):
    client = sign_in(ip_client(), f"ow{two_agencies['tag']}")
    slug = two_agencies["a1"]
    assert client.get(f"/switch/{slug}").status_code == 405
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)", "/\\evil.example", "http:evil"):
        response = client.post(f"/switch/{slug}?next={target}")
        assert response.status_code == 302 and "evil" not in response.headers["Location"], target
        assert "javascript" not in response.headers["Location"]
    assert client.post(f"/switch/{slug}?next=/locationview/list/").headers["Location"].endswith("/locationview/list/")


def test_item10_switch_needs_the_csrf_token(app, two_agencies, ip_client, sign_in):
    client = sign_in(ip_client(), f"ow{two_agencies['tag']}")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post(f"/switch/{two_agencies['a1']}").status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


# ---------------------------------------------------------------- item 11

def test_item11_unsigned_sms_hooks_are_refused_without_a_token(app, two_agencies, ip_client):
    client = ip_client()
    previous = app.config.get("SMS_AUTH_TOKEN")
    app.config["SMS_AUTH_TOKEN"] = None
    try:
        for path in ("inbound", "status"):
            response = client.post(f"/hooks/sms/{path}/{two_agencies['a1']}",
                                   data={"From": "+4915112345678", "Body": "STOP", "MessageSid": "SM1", "MessageStatus": "sent"})
            assert response.status_code == 403 and response.get_json()["error"]["code"] == "not_configured"
        app.config["SMS_HOOKS_ALLOW_UNSIGNED"] = True
        ok = client.post(f"/hooks/sms/inbound/{two_agencies['a1']}", data={"From": "+4915112345678", "Body": "HELLO"})
        assert ok.status_code == 200
    finally:
        app.config["SMS_AUTH_TOKEN"] = previous
        app.config["SMS_HOOKS_ALLOW_UNSIGNED"] = False


# ---------------------------------------------------------------- item 12

def test_item12_staff_link_only_within_the_business_one_answer(app, two_agencies, ip_client, sign_in):
    w = two_agencies
    client = sign_in(ip_client(), f"ca{w['tag']}")
    answers = []
    for name in (f"bu{w['tag']}", f"nobody{uuid.uuid4().hex[:6]}", f"bu{w['tag']}@x.org"):
        response = client.post("/staffaccounts/1/link", data={"username": name}, follow_redirects=True)
        body = response.get_data(as_text=True)
        answers.append(re.search(r"no user of this business[^<]*", body).group(0))
    assert len(set(answers)) == 1
    rows = _q(app, "SELECT count(*) FROM membership m JOIN ab_user u ON u.id = m.user_id "
                   "WHERE u.username = :u AND m.role = 'Staff'", u=f"bu{w['tag']}")
    assert rows[0][0] == 0


# ---------------------------------------------------------------- item 15

def test_item15_access_log_redacts_tokens():
    from app.accesslog import redact

    for line in ("GET /account/reset/AbC-123_x HTTP/1.1", "POST /account/accept/tok HTTP/1.1",
                 "GET /portal/bella/auth/tok?x=1 HTTP/1.1", "GET /api/v1/public/bella/bookings/tok/ics HTTP/1.1",
                 "GET /portal/bella/manage/tok HTTP/1.1", "GET /x?token=secret&y=2 HTTP/1.1"):
        out = redact(line)
        assert "tok" not in out.replace("token=", "") and "AbC" not in out and "secret" not in out, out
    assert redact("POST /api/v1/public/bella/bookings HTTP/1.1") == "POST /api/v1/public/bella/bookings HTTP/1.1"


def test_item15_gunicorn_logger_and_sql_parameters(app):
    from gunicorn.config import Config

    from app.accesslog import RedactingLogger

    logger = RedactingLogger(Config())

    class Resp:
        status = "200 OK"
        sent = 10
        headers = ()
        response_length = 10

    class Req:
        headers = ()

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/account/reset/s3cr3t", "PATH_INFO": "/account/reset/s3cr3t",
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "1.2.3.4"}
    import datetime as dt

    atoms = logger.atoms(Resp(), Req(), environ, dt.timedelta(seconds=0.01))
    assert "s3cr3t" not in atoms["r"] and "s3cr3t" not in atoms["U"]
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["hide_parameters"] is True


# ---------------------------------------------------------------- item 16

def test_item16_sender_name_and_reply_to_without_line_breaks(app, two_agencies, ip_client, sign_in):
    from app.jobs.mailout import fast_email

    w = two_agencies
    owner = sign_in(ip_client(), f"ow{w['tag']}")
    tenant_id = _q(app, "SELECT id FROM tenant WHERE slug = :s", s=w["a1"])[0][0]
    page = owner.post(f"/tenantview/edit/{tenant_id}", data={
        "name": "Sec A1", "timezone": "Europe/Berlin", "currency": "EUR", "locale": "en",
        "sender_name": "Shop\r\nBcc: victim@example.com", "reply_to": "a@example.com\r\nBcc: v@example.com"})
    assert page.status_code == 200 and "line breaks" in page.get_data(as_text=True)
    assert _q(app, "SELECT sender_name, reply_to FROM tenant WHERE id = :i", i=tenant_id)[0] == (None, None)
    data, _ = fast_email("Shop\r\nBcc: victim@example.com", "bookings@x.org", "a@x.org\r\nBcc: v@x.org",
                         "c@x.org", "Hi", "text", None, None, None)
    headers = data.split(b"\r\n\r\n")[0]
    assert b"\nBcc:" not in headers and b"victim" not in headers.split(b"From:")[0]
    assert not re.search(rb"^Bcc:", headers, re.M)


# ---------------------------------------------------------------- item 17

def test_item17_seed_only_fresh_development(app, tmp_path, monkeypatch):
    import run

    calls = []
    monkeypatch.setattr(run, "SEED_MARKER", tmp_path / "demo-seeded")
    monkeypatch.setattr("devserver.seed.seed_demo", lambda a: calls.append(a) or ["seeded"])
    monkeypatch.setattr("tenants.provisioning.migrate_all", lambda engine: None)
    monkeypatch.setattr("app.security.sync_all_roles", lambda a: None)
    # This database has users: not fresh, nothing seeded, even in development.
    assert run.prepare(app) == [] and calls == []
    monkeypatch.setitem(app.config, "ENV", "production")
    assert "no demo data" in run.prepare(app)[0] and calls == []
