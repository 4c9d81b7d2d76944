"""Fixtures for calendar sync tests: a real Radicale CalDAV server, a tenant with a staff calendar."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from support import minimal_setup


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Radicale:
    """`python -m radicale` on a free loopback port with its own storage folder (any user/password logs in)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="upz-radicale-", dir="/var/tmp")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{self.port}",
             "--storage-filesystem-folder", self.dir, "--auth-type", "none", "--logging-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("radicale did not start")

    def account(self, user: str | None = None):
        """A fresh user with one calendar "Work": (user, calendar URL, caldav client calendar)."""
        import caldav

        user = user or f"u{uuid.uuid4().hex[:8]}"
        client = caldav.DAVClient(url=self.url, username=user, password="app-pass", enable_rfc6764=False,
                                  require_tls=False)
        calendar = client.principal().make_calendar(name="Work")
        return user, str(calendar.url), calendar

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def radicale():
    server = Radicale()
    yield server
    server.stop()


@pytest.fixture()
def cal_config(app, monkeypatch):
    """Fast retries for the test's length."""
    for key, value in {"CALENDAR_RETRY_BASE": 0.2, "CALENDAR_RETRY_CAP": 1, "PUBLIC_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setitem(app.config, key, value)
    return app.config


@pytest.fixture()
def cal_tenant(make_tenant, pinned_now):
    """A business (one staff member "ann", Mon-Fri 09-17 Berlin) with the API clock at today."""
    setup = minimal_setup()
    setup["staff"][0]["email"] = "ann@salon.test"
    pinned_now(None)
    return make_tenant(setup)


@pytest.fixture()
def google(app, monkeypatch):
    """The Google fake, with the app's Google URLs and client pointing at it."""
    from fakes.google_calendar import GoogleCalendarFake

    with GoogleCalendarFake() as fake:
        for key, value in {"GOOGLE_API_BASE_URL": fake.api_base, "GOOGLE_OAUTH_URL": fake.base_url,
                           "GOOGLE_AUTH_URL": fake.base_url + "/o/oauth2/v2/auth", "GOOGLE_CLIENT_ID": "gid",
                           "GOOGLE_CLIENT_SECRET": "gsecret"}.items():
            monkeypatch.setitem(app.config, key, value)
        yield fake
        assert fake.violations == [], fake.violations


@pytest.fixture()
def graph(app, monkeypatch):
    """The Microsoft Graph + identity platform fake, with the app pointing at it."""
    from fakes.graph import GraphFake

    with GraphFake() as fake:
        for key, value in {"MS_GRAPH_BASE_URL": fake.graph_base, "MS_LOGIN_BASE_URL": fake.base_url,
                           "MS_CLIENT_ID": "mid", "MS_CLIENT_SECRET": "msecret"}.items():
            monkeypatch.setitem(app.config, key, value)
        yield fake
        assert fake.violations == [], fake.violations
