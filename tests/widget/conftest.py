"""Widget test helpers: a tenant with a widget, form fields and consent texts, and live servers."""

from __future__ import annotations

import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.serving import make_server
from widget_support import widget_setup


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
    server, thread = _serve(app)
    yield f"http://127.0.0.1:{server.server_port}"
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
