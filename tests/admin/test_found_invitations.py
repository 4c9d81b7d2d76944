"""Invitations and password resets by email: scope rules, single-use expiring links, staff log-ins."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import select, update


def _mail_link(app, email: str, kind: str) -> str:
    from app.extensions import db
    from app.models.public import PlatformMail

    with app.app_context():
        mail = db.session.scalars(
            select(PlatformMail).where(PlatformMail.to_email == email).order_by(PlatformMail.id.desc())
        ).first()
        assert mail is not None, f"no mail to {email}"
        match = re.search(rf"https?://[^\s]+(/account/{kind}/[^\s]+)", mail.body)
        assert match, mail.body
        return match.group(1)


def _table(response) -> str:
    """The rows of a listing page (flash messages above it may repeat names)."""
    return response.get_data(as_text=True).split("<tbody>", 1)[-1]


def _email() -> str:
    return f"p_{uuid.uuid4().hex[:10]}@example.org"


def _tenant_id(app, slug):
    from app.extensions import db
    from app.models.public import Tenant

    with app.app_context():
        return db.session.scalar(select(Tenant.id).where(Tenant.slug == slug))


def test_client_admin_invites_staff_who_accepts_and_sees_own_day(app, client, make_tenant, make_user, login):
    slug = make_tenant()
    login(client, make_user("Client Admin", tenant=slug))
    page = client.get("/invitations/")
    assert page.status_code == 200
    email = _email()
    sent = client.post("/invitations/new", data={"email": email, "role": "Staff", "scope": f"tenant:{_tenant_id(app, slug)}", "staff_id": "1"})
    assert sent.status_code == 302, sent.get_data(as_text=True)[:500]
    assert email in _table(client.get("/invitations/"))
    link = _mail_link(app, email, "accept")
    client.get("/logout/")
    form = client.get(link)
    assert form.status_code == 200 and "Staff" in form.get_data(as_text=True)
    short = client.post(link, data={"username": "short_pw_user", "password": "abc", "confirm": "abc"})
    assert short.status_code == 400
    name = f"staff_{uuid.uuid4().hex[:8]}"
    done = client.post(link, data={"username": name, "password": "password-9", "confirm": "password-9"})
    assert done.status_code == 302
    # Single use: the same link is dead now.
    assert client.get(link).status_code == 404
    assert client.post(link, data={"username": name + "x", "password": "password-9", "confirm": "password-9"}).status_code == 404
    login(client, name, "password-9")
    assert client.get("/myday/list/").status_code == 200
    profile = client.get("/myprofile/list/").get_data(as_text=True)
    assert "Ann" in profile
    assert client.get("/staffview/list/").status_code in (302, 403)
    assert client.get("/invitations/").status_code in (302, 403)
    from app.extensions import db
    from app.models import tenant as tm
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        assert session.get(tm.Staff, 1).user_id is not None


def test_scope_rules(app, client, make_tenant, make_user, login):
    from app.extensions import db
    from app.models.public import Agency
    from tenants.provisioning import create_agency

    a, b = make_tenant(), make_tenant()
    other_agency = f"ag{uuid.uuid4().hex[:8]}"
    with app.app_context():
        create_agency(db.session, other_agency, "Other Agency")
        db.session.commit()
        other_id = db.session.scalar(select(Agency.id).where(Agency.slug == other_agency))
        own_id = db.session.scalar(select(Agency.id).where(Agency.slug == "test-agency"))
    login(client, make_user("Client Admin", tenant=a))
    # A client admin: only into their own business, never a platform admin or an agency role.
    for data in (
        {"role": "Client Admin", "scope": f"tenant:{_tenant_id(app, b)}"},
        {"role": "Platform Admin", "scope": ""},
        {"role": "Agency Owner", "scope": f"agency:{own_id}"},
        {"role": "Staff", "scope": f"tenant:{_tenant_id(app, a)}", "staff_id": "999"},
        {"role": "Client Admin", "scope": f"tenant:{_tenant_id(app, a)}", "email_override": "not-an-email"},
    ):
        email = data.pop("email_override", None) or _email()
        response = client.post("/invitations/new", data={"email": email, **data})
        assert response.status_code == 400, data
    client.get("/logout/")
    login(client, make_user("Agency Owner", agency="test-agency"))
    assert client.post("/invitations/new", data={"email": _email(), "role": "Client Admin", "scope": f"tenant:{_tenant_id(app, b)}"}).status_code == 302
    assert client.post("/invitations/new", data={"email": _email(), "role": "Agency Owner", "scope": f"agency:{own_id}"}).status_code == 302
    assert client.post("/invitations/new", data={"email": _email(), "role": "Agency Owner", "scope": f"agency:{other_id}"}).status_code == 400
    assert client.post("/invitations/new", data={"email": _email(), "role": "Platform Admin", "scope": ""}).status_code == 400


def test_revoke_and_expiry(app, client, make_tenant, make_user, login):
    from app.extensions import db
    from app.models.public import AccessToken

    slug = make_tenant()
    tid = _tenant_id(app, slug)
    login(client, make_user("Client Admin", tenant=slug))
    first, second = _email(), _email()
    for email in (first, second):
        assert client.post("/invitations/new", data={"email": email, "role": "Auditor", "scope": f"tenant:{tid}"}).status_code == 302
    with app.app_context():
        token_id = db.session.scalar(select(AccessToken.id).where(AccessToken.email == first))
        db.session.execute(update(AccessToken).where(AccessToken.email == second).values(
            expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)))
        db.session.commit()
    assert client.post(f"/invitations/{token_id}/revoke").status_code == 302
    assert first not in _table(client.get("/invitations/"))
    client.get("/logout/")
    assert client.get(_mail_link(app, first, "accept")).status_code == 404
    expired = client.get(_mail_link(app, second, "accept"))
    assert expired.status_code == 404 and "expired" in expired.get_data(as_text=True)


def test_other_business_cannot_revoke(app, client, make_tenant, make_user, login):
    from app.extensions import db
    from app.models.public import AccessToken

    a, b = make_tenant(), make_tenant()
    login(client, make_user("Client Admin", tenant=a))
    email = _email()
    client.post("/invitations/new", data={"email": email, "role": "Auditor", "scope": f"tenant:{_tenant_id(app, a)}"})
    client.get("/logout/")
    login(client, make_user("Client Admin", tenant=b))
    with app.app_context():
        token_id = db.session.scalar(select(AccessToken.id).where(AccessToken.email == email))
    assert email not in _table(client.get("/invitations/"))
    assert client.post(f"/invitations/{token_id}/revoke").status_code == 404


def test_password_reset(app, client, make_tenant, make_user, login):
    from app.extensions import db
    from app.models.public import PlatformMail

    user = make_user("Client Admin", tenant=make_tenant())
    email = f"{user}@example.org"
    assert "/account/forgot" in client.get("/login/").get_data(as_text=True)
    unknown = _email()
    assert client.post("/account/forgot", data={"email": unknown}).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(PlatformMail.id).where(PlatformMail.to_email == unknown)) is None
    assert client.post("/account/forgot", data={"email": email.upper()}).status_code == 200  # any letter case
    link = _mail_link(app, email, "reset")
    assert client.post(link, data={"password": "short", "confirm": "short"}).status_code == 400
    assert client.post(link, data={"password": "brand-new-pw", "confirm": "other-pw-xx"}).status_code == 400
    assert client.post(link, data={"password": "brand-new-pw", "confirm": "brand-new-pw"}).status_code == 302
    assert client.post(link, data={"password": "third-password", "confirm": "third-password"}).status_code == 404
    bad = client.post("/login/", data={"username": user, "password": "password-1"})
    assert "/login" in bad.headers.get("Location", "/login")
    login(client, user, "brand-new-pw")


def test_link_existing_user_to_staff(app, client, make_tenant, make_user, login):
    slug = make_tenant()
    admin = make_user("Client Admin", tenant=slug)
    staff_user = make_user("Auditor", tenant=slug)  # a person of this business, not yet staff (others: tests/security)
    login(client, admin)
    assert "Ann" in _table(client.get("/staffaccounts/"))
    assert client.post("/staffaccounts/1/link", data={"username": "nobody_at_all"}).status_code == 302
    assert staff_user not in _table(client.get("/staffaccounts/"))
    assert client.post("/staffaccounts/1/link", data={"username": staff_user}).status_code == 302
    assert staff_user in _table(client.get("/staffaccounts/"))
    assert client.post("/staffaccounts/999/link", data={"username": staff_user}).status_code == 404
    client.get("/logout/")
    login(client, staff_user)
    client.post(f"/switch/{slug}")
    assert "Ann" in client.get("/myprofile/list/").get_data(as_text=True)
    client.get("/logout/")
    login(client, admin)
    assert client.post("/staffaccounts/1/unlink").status_code == 302
    assert staff_user not in _table(client.get("/staffaccounts/"))


def test_existing_user_accepts_without_new_password(app, client, make_tenant, make_user, login):
    a, b = make_tenant(), make_tenant()
    person = make_user("Auditor", tenant=a)
    login(client, make_user("Client Admin", tenant=b))
    sent = client.post("/invitations/new", data={"email": f"{person}@example.org", "role": "Client Admin",
                                                  "scope": f"tenant:{_tenant_id(app, b)}"})
    assert sent.status_code == 302
    link = _mail_link(app, f"{person}@example.org", "accept")
    client.get("/logout/")
    assert "already have an account" in client.get(link).get_data(as_text=True)
    assert client.post(link, data={}).status_code == 302
    login(client, person)
    assert client.post(f"/switch/{b}").status_code == 302
    # Client Admin in b now: may write there.
    assert client.get("/locationview/add").status_code == 200


def test_public_pages_carry_csrf_tokens(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        page = client.get("/account/forgot").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post("/account/forgot", data={"email": _email()}).status_code == 400
        assert client.post("/account/forgot", data={"email": _email(), "csrf_token": token}).status_code == 200
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
