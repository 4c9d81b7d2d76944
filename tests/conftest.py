"""Shared fixtures: a real PostgreSQL and Redis (yours via DATABASE_URL/REDIS_URL, or embedded),
one migrated database per test session, the app, and factories.

Each test that needs business data makes its own tenant with a unique slug, so
tests never see each other's rows and need no cleanup.

Sections: servers and app; tenants; log-ins and API keys (admin, API, security, tenancy);
widgets, live servers and the browser (widget, portal, admin). Feature folders add
their own conftest.py (availability: engine factories; notifications: Redis, fakes, workers).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.serving import make_server

# The suite runs the development settings (derived credentials key, PUBLIC_URL from HOST:PORT);
# tests/security checks the production start-up refusals explicitly.
os.environ.setdefault("UPZENTO_ENV", "development")

from support import minimal_setup, unique_slug
from widget_support import widget_setup


@pytest.fixture(scope="session")
def services():
    """(database_url, redis_url) of a fresh database: env-provided servers, else embedded ones."""
    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_test") as urls:
        yield urls


@pytest.fixture(scope="session")
def app(services):
    database_url, redis_url = services
    os.environ["REDIS_URL"] = redis_url
    from app import create_app
    from app.security import sync_all_roles
    from tenants.provisioning import create_agency, migrate_all

    application = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "SERVER_NAME": None,
            # Tests of other features make many requests from 127.0.0.1; tests/api lowers these per test.
            "API_RATE_LIMIT_PER_KEY": "100000/minute",
            "API_RATE_LIMIT_PER_IP": "100000/minute",
            "PUBLIC_RATE_LIMIT_PER_TENANT": "100000/minute",
            "PUBLIC_RATE_LIMIT_PER_IP": "100000/minute",
            "PUBLIC_BOOKING_RATE_LIMIT_PER_IP": "100000/minute",
        }
    )
    with application.app_context():
        from app.extensions import db

        migrate_all(db.engine)
        sync_all_roles(application)
        create_agency(db.session, "test-agency", "Test Agency")
        db.session.commit()
    yield application
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def engine(app):
    from app.extensions import db

    with app.app_context():
        yield db.engine


@pytest.fixture()
def make_tenant(app):
    """make_tenant(setup=None, slug=None) -> slug: imports a setup file (the scenario format) as a new tenant."""
    from app.extensions import db
    from app.services.setup_io import import_setup

    def factory(setup: dict | None = None, slug: str | None = None, agency: str = "test-agency") -> str:
        doc = json.loads(json.dumps(setup or minimal_setup()))
        doc["tenant"]["slug"] = slug or unique_slug(doc["tenant"]["slug"][:20].replace("-", "_"))
        with app.app_context():
            import_setup(db.engine, doc, agency)
        return doc["tenant"]["slug"]

    return factory


@pytest.fixture()
def agency_business(app, make_tenant):
    """A new agency with one business (minimal setup) and two log-ins, password "password-1":
    its agency owner `ow_<slug>` and the business's client admin `ca_<slug>`. Returns the slug."""
    from app.extensions import db
    from app.services.people import create_user_with_role
    from tenants.provisioning import create_agency

    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Own agency")
        db.session.commit()
    slug = make_tenant(agency=agency)
    with app.app_context():
        create_user_with_role(db.session, username=f"ca_{slug}", email=f"ca_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        create_user_with_role(db.session, username=f"ow_{slug}", email=f"ow_{slug}@x.org", password="password-1",
                              role="Agency Owner", agency_slug=agency)
        db.session.commit()
    return slug


@pytest.fixture()
def pinned_now(app):
    """Pin the public API's clock: pinned_now("2027-01-01T00:00:00Z")."""
    previous = app.config.get("PUBLIC_API_NOW")

    def pin(value: str | None):
        app.config["PUBLIC_API_NOW"] = value

    yield pin
    app.config["PUBLIC_API_NOW"] = previous


@pytest.fixture()
def long_work_redis(app, monkeypatch):
    """A private redis-server for the app's queues (long work, app/fairqueue.py), one turn per business."""
    import shutil
    import tempfile
    from pathlib import Path

    from devserver.embedded import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="upz-fair-redis-", dir="/var/tmp"))
    server = EmbeddedRedis(tmp)
    server.start()
    monkeypatch.setitem(app.config, "REDIS_URL", server.url)
    monkeypatch.setitem(app.config, "LONG_JOBS_PER_TENANT", 1)
    yield server
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- log-ins and API keys

PASSWORD = "password-1"


@pytest.fixture()
def make_user(app):
    """make_user(role, tenant=None, agency=None, staff_id=None) -> username (password PASSWORD)."""
    from app.extensions import db
    from app.services.people import create_user_with_role

    def factory(role: str, tenant: str | None = None, agency: str | None = None, staff_id: int | None = None) -> str:
        name = f"u_{uuid.uuid4().hex[:10]}"
        with app.app_context():
            create_user_with_role(db.session, username=name, email=f"{name}@example.org", password=PASSWORD,
                                  role=role, tenant_slug=tenant, agency_slug=agency, staff_id=staff_id)
            db.session.commit()
        return name

    return factory


@pytest.fixture()
def login():
    def do(client, username: str, password: str = PASSWORD):
        response = client.post("/login/", data={"username": username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert "/login" not in response.headers.get("Location", "")

    return do


@pytest.fixture()
def make_api_key(app):
    """make_api_key(slug) -> the secret of a fresh key of that tenant."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key

    def factory(slug: str) -> str:
        with app.app_context():
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            _, secret = create_api_key(db.session, tenant, "test key")
            db.session.commit()
        return secret

    return factory


# --------------------------------------------------------------------------- widgets, live servers, browser

@pytest.fixture()
def widget_tenant(app, make_tenant):
    """make(origins=[...], fields=[...], consents={kind: text}) -> (slug, widget public id)."""
    from sqlalchemy import update

    from app.extensions import db
    from app.models import tenant as m
    from app.models import widgets as w
    from app.services import forms
    from app.tenancy import tenant_session

    def make(origins=(), fields=(), consents=None, setup=None, **widget_kw):
        slug = make_tenant(setup or widget_setup())
        with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
            # Not expressible in the setup file: 24 h policy windows, a recurring class.
            session.execute(update(m.Service).where(m.Service.key == "visit").values(cancel_window_min=1440, reschedule_window_min=1440))
            session.execute(update(m.Service).where(m.Service.key == "class").values(allow_recurring=True))
            widget = w.Widget(name="Main site", allowed_origins=list(origins), hidden_fields=[], **widget_kw)
            session.add(widget)
            for i, f in enumerate(fields):
                session.add(w.FormField(position=i, options=f.pop("options", []), **f))
            for kind, body in (consents or {}).items():
                forms.publish_consent(session, kind, body, "test")
            session.flush()
            public_id = widget.public_id
        return slug, public_id

    return make


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture()
def live_server(app):
    """The app on a loopback port; PUBLIC_URL points at it (links are built from configuration only)."""
    server, thread = _serve(app)
    url = f"http://127.0.0.1:{server.server_port}"
    previous = app.config.get("PUBLIC_URL")
    app.config["PUBLIC_URL"] = url
    yield url
    app.config["PUBLIC_URL"] = previous
    server.shutdown()
    thread.join(5)


class StaticPages:
    """A plain HTTP server on its own loopback port serving host pages from a dict."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.origin = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def host_pages():
    """Two static sites on other loopback ports: (allowed, foreign)."""
    allowed, foreign = StaticPages(), StaticPages()
    yield allowed, foreign
    allowed.close()
    foreign.close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    from pathlib import Path

    from widget_support import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB", viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(10000)
    yield pg
    context.close()
