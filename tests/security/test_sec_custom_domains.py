"""Custom domains of businesses: validation, verification against a loopback web server
(mapped with CUSTOM_DOMAIN_RESOLVE, no DNS), links on the verified domain whatever the
Host header says, one verified holder per domain, host routing, CLI exit codes, admin."""

from __future__ import annotations

import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

PASSWORD = "password-1"


def _domain() -> str:
    return f"book-{uuid.uuid4().hex[:8]}.salon.test"


class _Site:
    """A loopback web server standing in for the business's own site: answers the well-known path."""

    def __init__(self):
        self.status, self.body, self.hosts = 404, "", []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                site.hosts.append((self.headers.get("Host"), self.path))
                payload = site.body.encode()
                self.send_response(site.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def site(app):
    """(site, map): the loopback site, and map(domain, port=None) pointing a domain at it (or at `port`)."""
    s = _Site()
    saved = {k: app.config.get(k) for k in ("CUSTOM_DOMAIN_VERIFY_SCHEME", "CUSTOM_DOMAIN_RESOLVE")}
    app.config["CUSTOM_DOMAIN_VERIFY_SCHEME"] = "http"
    app.config["CUSTOM_DOMAIN_RESOLVE"] = {}

    def point(domain: str, port: int | None = None) -> None:
        app.config["CUSTOM_DOMAIN_RESOLVE"] = {**app.config["CUSTOM_DOMAIN_RESOLVE"], domain: f"127.0.0.1:{port or s.port}"}

    yield s, point
    app.config.update(saved)
    s.close()


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["tenants", "domain", *args])


def _row(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text("SELECT custom_domain, custom_domain_token, custom_domain_verified_at FROM public.tenant"
                                 " WHERE slug = :s"), {"s": slug}).one()


def _verified(app, site, slug) -> str:
    """Give `slug` a verified custom domain through the CLI (set, publish, verify); the domain."""
    s, point = site
    domain = _domain()
    point(domain)
    assert _cli(app, "set", slug, domain).exit_code == 0
    s.status, s.body = 200, _row(app, slug).custom_domain_token + "\n"
    result = _cli(app, "verify", slug)
    assert result.exit_code == 0, result.output
    return domain


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("raw, says", [
    ("https://book.salon.test", "without http"),
    ("book.salon.test:8443", "without a port"),
    ("book.salon.test/booking", "without a path"),
    ("203.0.113.7", "IP address"),
    ("[2001:db8::1]", "IP address"),
    ("localhost", "not a valid domain"),
    ("bad_label.salon.test", "not a valid domain"),
    ("-x.salon.test", "not a valid domain"),
    ("", "give a domain"),
    ("localhost.test.", None),  # fine: the trailing dot goes
])
def test_domain_validation_says_what_is_wrong(raw, says):
    from app.errors import ValidationError
    from app.services.custom_domains import normalize_domain

    if says is None:
        assert normalize_domain(raw, "platform.example") == "localhost.test"
        return
    with pytest.raises(ValidationError) as refused:
        normalize_domain(raw, "platform.example")
    assert says in refused.value.message and refused.value.field == "custom_domain"


def test_the_platform_host_and_its_subdomains_cannot_be_claimed():
    from app.errors import ValidationError
    from app.services.custom_domains import normalize_domain

    assert normalize_domain("Book.Salon.TEST", "platform.example") == "book.salon.test"
    for raw in ("platform.example", "PLATFORM.example", "x.platform.example"):
        with pytest.raises(ValidationError, match="platform's own address"):
            normalize_domain(raw, "platform.example")


def test_resolve_setting_maps_to_loopback_only():
    from app.services.custom_domains import parse_resolve

    assert parse_resolve('{"A.test": "127.0.0.2:8081"}') == {"a.test": ("127.0.0.2", 8081)}
    for bad in ({"a.test": "10.0.0.5:80"}, {"a.test": "127.0.0.1"}):
        with pytest.raises(ValueError):
            parse_resolve(bad)


# --------------------------------------------------------------------------- verification (CLI)


def test_cli_set_verify_show_remove_against_a_loopback_site(app, make_tenant, site):
    s, point = site
    slug = make_tenant()
    domain = _domain()
    point(domain)

    result = _cli(app, "set", slug, domain.upper())
    assert result.exit_code == 0, result.output
    row = _row(app, slug)
    assert row.custom_domain == domain and row.custom_domain_token.startswith("upzento-") and row.custom_domain_verified_at is None
    assert row.custom_domain_token in result.output and f"http" in result.output

    # Nothing published yet: the site answers 404.
    result = _cli(app, "verify", slug)
    assert result.exit_code == 1
    assert f"http://{domain}/.well-known/upzento-domain.txt answered HTTP 404" in result.output
    # Someone else's token.
    s.status, s.body = 200, "upzento-not-yours"
    result = _cli(app, "verify", slug)
    assert result.exit_code == 1 and "does not hold this business's token" in result.output
    assert "upzento-not-yours" not in result.output  # what the site said is not echoed
    assert _row(app, slug).custom_domain_verified_at is None

    s.body = row.custom_domain_token + "\n"
    result = _cli(app, "verify", slug)
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and _row(app, slug).custom_domain_verified_at is not None
    # The fetch went to the mapped loopback site, asking for the domain by name.
    assert s.hosts[-1] == (domain, "/.well-known/upzento-domain.txt")
    assert "verified" in _cli(app, "show", slug).output

    result = _cli(app, "remove", slug)
    assert result.exit_code == 0 and _row(app, slug) == (None, None, None)
    assert "no custom domain" in _cli(app, "show", slug).output
    assert _cli(app, "remove", slug).exit_code == 1


def test_cli_verify_reports_a_refused_connection(app, make_tenant, site):
    _s, point = site
    slug = make_tenant()
    domain = _domain()
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    point(domain, free)
    assert _cli(app, "set", slug, domain).exit_code == 0
    result = _cli(app, "verify", slug)
    assert result.exit_code == 1
    assert f"could not fetch http://{domain}/.well-known/upzento-domain.txt: connection refused" in result.output


def test_cli_errors_exit_non_zero(app, make_tenant):
    slug = make_tenant()
    result = _cli(app, "set", slug, "https://book.salon.test/x")
    assert result.exit_code == 1 and "without http" in result.output
    assert _cli(app, "set", "no_such_business", "book.salon.test").exit_code == 1
    result = _cli(app, "verify", slug)
    assert result.exit_code == 1 and "has no custom domain" in result.output
    assert _cli(app, "show", "no_such_business").exit_code == 1


def test_a_verified_domain_cannot_be_claimed_by_another_business(app, make_tenant, site):
    s, point = site
    first, second, third = make_tenant(), make_tenant(), make_tenant()
    # The third claims the name first but never proves it: that blocks nobody.
    domain = _domain()
    point(domain)
    assert _cli(app, "set", third, domain).exit_code == 0
    assert _cli(app, "set", first, domain).exit_code == 0
    s.status, s.body = 200, _row(app, first).custom_domain_token
    assert _cli(app, "verify", first).exit_code == 0

    result = _cli(app, "set", second, domain)
    assert result.exit_code == 1 and "already in use by another business" in result.output
    assert first not in result.output
    # The earlier, unproven claim cannot verify now either (even with the right token published).
    s.body = _row(app, third).custom_domain_token
    result = _cli(app, "verify", third)
    assert result.exit_code == 1 and "already in use" in result.output
    assert _row(app, third).custom_domain_verified_at is None and _row(app, first).custom_domain_verified_at is not None


# --------------------------------------------------------------------------- links


def _mails(app, email):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text("SELECT body FROM public.platform_mail WHERE to_email = :e ORDER BY id"),
                            {"e": email}).scalars().all()


def test_links_use_the_verified_domain_never_the_host_header(app, widget_tenant, pinned_now, site):
    from app.extensions import db
    from app.jobs.notify import handle_event

    pinned_now("2027-01-04T08:00:00Z")
    slug, _widget = widget_tenant()
    client = app.test_client()
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    # Pending (not verified): PUBLIC_URL, not the claimed domain and not the Host header.
    pending = _domain()
    site[1](pending)
    assert _cli(app, "set", slug, pending).exit_code == 0
    email = f"eve_{slug}@example.com"
    booked = client.post(f"/api/v1/public/{slug}/bookings", headers=evil, json={
        "service": "visit", "start": "2027-01-11T09:00:00Z", "customer": {"name": "Eve", "email": email}})
    assert booked.status_code == 201, booked.get_json()
    client.post(f"/portal/{slug}/login", data={"email": email}, headers=evil)
    (before,) = _mails(app, email)
    assert "evil.example" not in before and pending not in before
    assert re.search(rf"http://[^/\s]+/portal/{slug}/auth/", before)

    domain = _verified(app, site, slug)
    client.post(f"/portal/{slug}/login", data={"email": email}, headers=evil)
    after = _mails(app, email)[-1]
    assert f"https://{domain}/portal/{slug}/auth/" in after and "evil.example" not in after

    # The booking confirmation (composed by the notification job) links to the portal on the domain.
    with app.app_context():
        schema = db.session.execute(text("SELECT schema_name FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()
        event_id = db.session.execute(text(f'SELECT max(id) FROM "{schema}".outbox_event')).scalar()
        db.session.rollback()
        handle_event(slug, event_id)
        bodies = db.session.execute(text(f'SELECT body_text FROM "{schema}".notification_delivery'
                                         " WHERE recipient = :e AND kind = 'booking_confirmed'"), {"e": email}).scalars().all()
        db.session.rollback()
    assert bodies and all(f"https://{domain}/portal/{slug}/appointments/" in b and "evil.example" not in b for b in bodies)


def test_widget_snippet_uses_the_verified_domain(app, widget_tenant, site):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import widgets as w
    from app.models.public import Tenant
    from app.tenancy import TenantRef, tenant_session
    from app.views.widgets import snippets

    slug, public_id = widget_tenant()
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        widget = session.scalar(select(w.Widget).where(w.Widget.public_id == public_id))
        plain = snippets(slug, widget, _ref)
    assert 'src="http://' in plain["js"]
    domain = _verified(app, site, slug)
    with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
        widget = session.scalar(select(w.Widget).where(w.Widget.public_id == public_id))
        own = snippets(slug, widget, ref)
    assert f'src="https://{domain}/widget/v1/loader.js"' in own["js"]
    assert f'src="https://{domain}/widget/v1/{slug}/{public_id}/frame"' in own["iframe"]


# --------------------------------------------------------------------------- host routing


def test_a_verified_domain_serves_its_business_public_routes_only(app, make_tenant, site):
    slug, other = make_tenant(), make_tenant()
    domain = _verified(app, site, slug)
    client = app.test_client()
    on = {"Host": domain}
    assert client.get(f"/api/v1/public/{slug}/services", headers=on).status_code == 200
    assert client.get(f"/api/v1/public/{other}/services", headers=on).status_code == 404
    assert client.get(f"/portal/{slug}/", headers=on).status_code == 200
    assert client.get(f"/portal/{other}/", headers=on).status_code == 404
    root = client.get("/", headers=on)
    assert root.status_code == 302 and root.headers["Location"].endswith(f"/portal/{slug}/")
    assert client.get("/login/", headers=on).status_code == 404  # no admin on a business's domain
    assert client.get(f"/api/v1/public/{slug}/services", headers={"Host": f"{domain}:443"}).status_code == 200
    # X-Forwarded-Host is not trusted to select a business.
    forwarded = client.get(f"/api/v1/public/{other}/services", headers={"X-Forwarded-Host": domain})
    assert forwarded.status_code == 200
    # An unverified (or unknown) host is the platform as usual.
    pending_slug = make_tenant()
    pending = _domain()
    assert _cli(app, "set", pending_slug, pending).exit_code == 0
    assert client.get("/login/", headers={"Host": pending}).status_code == 200
    assert client.get(f"/api/v1/public/{other}/services", headers={"Host": pending}).status_code == 200


# --------------------------------------------------------------------------- admin


def test_admin_section_for_owner_and_client_admin_scoped_to_their_business(app, agency_business, make_tenant, site):
    slug = agency_business
    s, point = site
    from app.extensions import db

    with app.app_context():
        pk = db.session.execute(text("SELECT id FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()
        other_pk = db.session.execute(text("SELECT id FROM public.tenant WHERE slug = :s"), {"s": make_tenant()}).scalar()
        db.session.rollback()
    owner, admin = app.test_client(), app.test_client()
    for client, name in ((owner, f"ow_{slug}"), (admin, f"ca_{slug}")):
        client.environ_base["REMOTE_ADDR"] = f"10.88.{pk % 250}.{1 if client is owner else 2}"
        assert client.post("/login/", data={"username": name, "password": PASSWORD}).status_code == 302

    edit = owner.get(f"/tenantview/edit/{pk}").get_data(as_text=True)
    assert 'id="custom-domain"' in edit and f"/customdomain/{pk}" in edit
    bad = admin.post(f"/customdomain/{pk}/set", data={"domain": "https://x.salon.test"})
    assert bad.status_code == 422 and "without http" in bad.get_data(as_text=True)
    domain = _domain()
    point(domain)
    assert admin.post(f"/customdomain/{pk}/set", data={"domain": domain}).status_code == 303
    page = admin.get(f"/customdomain/{pk}").get_data(as_text=True)
    token = _row(app, slug).custom_domain_token
    assert token in page and "not verified" in page
    wrong = admin.post(f"/customdomain/{pk}/verify")
    assert wrong.status_code == 422 and "answered HTTP 404" in wrong.get_data(as_text=True)
    s.status, s.body = 200, token
    assert admin.post(f"/customdomain/{pk}/verify").status_code == 303
    assert "verified" in owner.get(f"/tenantview/edit/{pk}").get_data(as_text=True)
    # Another agency's business: the same 404 as an unknown one, nothing changes.
    for client in (owner, admin):
        assert client.get(f"/customdomain/{other_pk}").status_code == 404
        assert client.post(f"/customdomain/{other_pk}/set", data={"domain": _domain()}).status_code == 404
    assert admin.post(f"/customdomain/{pk}/remove").status_code == 303
    assert _row(app, slug) == (None, None, None)
