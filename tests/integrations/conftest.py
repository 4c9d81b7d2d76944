"""Fixtures for meetings and webhooks: a private Redis, real `rq worker`s, an SMTP sink, loopback fakes.

Webhook deliveries go to loopback receivers, so `WEBHOOK_ALLOW_PRIVATE=1` is set
here (the SSRF tests turn it off for themselves). Retry delays are shortened.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

from fakes.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
FAST_ENV = {
    "WEBHOOK_RETRY_SCHEDULE": "0,0.3,0.3,0.3",
    "WEBHOOK_ALLOW_PRIVATE": "1",
    "NOTIFY_RETRY_BASE": "0.3",
    "NOTIFY_RETRY_CAP": "2",
    "NOTIFY_LEASE_SECONDS": "20",  # long: a batch whose lease runs out waits for a sweep (none runs in tests)
    "NOTIFY_SWEEP_GRACE_SECONDS": "0",
    "MEETING_RETRY_SCHEDULE": "0.3,0.3,0.3",
}


@pytest.fixture()
def integ_redis():
    from devserver.embedded import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="upz-integ-redis-", dir="/var/tmp"))
    server = EmbeddedRedis(tmp)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture()
def integ_smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture()
def integ(app, integ_redis, integ_smtp, services, monkeypatch):
    """App config and a worker environment pointing at this test's Redis and SMTP sink.

    Returns the environment dict; tests add provider URLs with `integ_config(**values)`.
    """
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    overrides = {"REDIS_URL": integ_redis.url, "SMTP_HOST": integ_smtp.host, "SMTP_PORT": integ_smtp.port,
                  "SMTP_USER": None, "SMTP_PASSWORD": None, "SMTP_TLS": False,
                  "MAIL_FROM": "bookings@upzento.test", "PUBLIC_URL": "http://127.0.0.1:9"}
    for key, value in overrides.items():
        monkeypatch.setitem(app.config, key, value)
    env = {**os.environ, **FAST_ENV, "PYTHONPATH": str(ROOT), "DATABASE_URL": services[0],
           "SECRET_KEY": app.config["SECRET_KEY"]}
    for key, value in overrides.items():
        env.pop(key, None)
        if value is not None:
            env[key] = str(value)
    return env


@pytest.fixture()
def integ_config(app, integ, monkeypatch):
    """integ_config(KEY=value, ...): set app config for this test and for the workers started after it."""

    def apply(**values):
        for key, value in values.items():
            monkeypatch.setitem(app.config, key, value)
            integ.pop(key, None)
            if value is not None:
                integ[key] = str(value)

    return apply


class Workers:
    """Real `rq worker` processes on this test's Redis; stopped at the end of the test."""

    def __init__(self, env):
        self.env = env
        self.procs = []

    def start(self, n: int = 1, worker_class: str = "app.jobs.worker.AppSimpleWorker"):
        from devserver.embedded import ManagedProcess

        for _ in range(n):
            argv = [sys.executable, "-m", "rq.cli", "worker", "--with-scheduler", "-w", worker_class,
                    "--url", self.env["REDIS_URL"], "integrations", "notifications", "default"]
            proc = ManagedProcess(f"rq worker {len(self.procs)}", argv, env=self.env, cwd=str(ROOT),
                                  stop_signals=(signal.SIGTERM, signal.SIGKILL), stop_timeout=1)
            proc.start()
            self.procs.append(proc)

    def stop_all(self):
        for proc in self.procs:
            proc.stop()
        self.procs.clear()


@pytest.fixture()
def integ_workers(integ):
    pool = Workers(integ)
    yield pool
    pool.stop_all()
