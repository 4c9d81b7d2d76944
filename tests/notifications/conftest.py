"""Fixtures for notification tests: a private Redis, loopback SMTP and Twilio fakes, real `rq worker`s.

Every test gets its own redis-server (so queues never mix with other tests and a
test may stop it), and the app's config points at the fakes for the test's length.
Workers are real `rq worker` processes built from the same environment.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from fakes.http_fake import HttpFake, Response
from fakes.smtp_sink import SmtpSink
from fakes.twilio import FakeTwilio
from support import minimal_setup

ROOT = Path(__file__).resolve().parents[2]
FAST_ENV = {
    "NOTIFY_RETRY_BASE": "0.3",
    "NOTIFY_RETRY_CAP": "2",
    "NOTIFY_LEASE_SECONDS": "20",  # long: a batch whose lease runs out waits for a sweep (none runs in tests)
    "NOTIFY_SWEEP_GRACE_SECONDS": "0",
}


@pytest.fixture()
def private_redis():
    from devserver.embedded import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="upz-notif-redis-", dir="/var/tmp"))
    server = EmbeddedRedis(tmp)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture()
def smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture()
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture()
def notif(app, private_redis, smtp, twilio, services, monkeypatch):
    """App config and worker environment pointing at this test's Redis, SMTP sink and fake Twilio."""
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    overrides = {
        "REDIS_URL": private_redis.url,
        "SMTP_HOST": smtp.host, "SMTP_PORT": smtp.port, "SMTP_USER": None, "SMTP_PASSWORD": None,
        "SMTP_TLS": False, "MAIL_FROM": "bookings@upzento.test",
        "SMS_API_BASE_URL": twilio.base_url, "SMS_ACCOUNT_SID": twilio.account_sid,
        "SMS_AUTH_TOKEN": twilio.auth_token, "SMS_FROM": "+15005550006",
        "PUBLIC_URL": "http://127.0.0.1:9",
    }
    for key, value in overrides.items():
        monkeypatch.setitem(app.config, key, value)
    env = {**os.environ, **FAST_ENV, "PYTHONPATH": str(ROOT), "DATABASE_URL": services[0],
           "SECRET_KEY": app.config["SECRET_KEY"]}
    for key, value in overrides.items():
        env.pop(key, None)
        if value is not None:
            env[key] = str(value)
    return env


class Workers:
    """Starts real `rq worker` processes; stops (or kills) them at the end of the test."""

    def __init__(self, env):
        self.env = env
        self.procs = []

    def start(self, n: int = 1, burst: bool = False, worker_class: str = "app.jobs.worker.AppWorker"):
        from devserver.embedded import ManagedProcess

        started = []
        for i in range(n):
            argv = [sys.executable, "-m", "rq.cli", "worker", "--with-scheduler", "-w", worker_class,
                    "--url", self.env["REDIS_URL"], "notifications", "default", "integrations"]
            if burst:
                argv.insert(4, "--burst")
            proc = ManagedProcess(f"rq worker {len(self.procs)}", argv, env=self.env, cwd=str(ROOT),
                                  stop_signals=(signal.SIGTERM, signal.SIGKILL), stop_timeout=1)
            proc.start()
            self.procs.append(proc)
            started.append(proc)
        return started

    def stop_all(self):
        for proc in self.procs:
            proc.stop()
        self.procs.clear()


@pytest.fixture()
def workers(notif):
    pool = Workers(notif)
    yield pool
    pool.stop_all()


@pytest.fixture()
def notif_tenant(make_tenant, pinned_now):
    """A tenant whose staff member has an email, with the public API clock pinned."""
    pinned_now("2027-01-01T00:00:00Z")
    setup = minimal_setup()
    setup["staff"][0]["email"] = "ann@salon.test"
    return make_tenant(setup)


@pytest.fixture()
def live_server(app, notif, monkeypatch):
    """The app on a real loopback HTTP port (for provider callbacks); PUBLIC_URL points at it."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setitem(app.config, "PUBLIC_URL", url)
    notif["PUBLIC_URL"] = url
    yield url
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture()
def smtp_sink():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture()
def callback_receiver():
    """Stands in for our own status-callback endpoint."""
    receiver = HttpFake()
    receiver.route("POST", r"/hooks/sms/status", lambda req, match: Response(204))
    with receiver:
        yield receiver
