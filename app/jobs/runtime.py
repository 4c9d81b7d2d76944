"""Per-process handles for jobs: the app's engine, config, mail and SMS clients.

RQ forks a work-horse per job; a pooled PostgreSQL connection must never be
shared across a fork, so the engine's pool is reset whenever the pid changes
(`dispose(close=False)` leaves the parent's sockets alone).
"""

from __future__ import annotations

import os
from functools import lru_cache

from sqlalchemy.engine import Engine

from app.jobs.context import job_app

_engine_pid: list[int] = []


def engine() -> Engine:
    """The app's engine, safe to use in this process."""
    from app.extensions import db

    app = job_app()
    with app.app_context():
        eng = db.engine
    if _engine_pid and _engine_pid[0] != os.getpid():
        eng.dispose(close=False)
    _engine_pid[:] = [os.getpid()]
    return eng


def config():
    """The app config of this process."""
    return job_app().config


@lru_cache(maxsize=4)
def _sms_client(base_url: str, sid: str, token: str, sender: str):
    from app.notifications.sms import SmsClient

    return SmsClient(base_url, sid, token, sender, timeout=10)


def sms_client():
    """The SMS client of this process, or None when SMS is not configured."""
    cfg = config()
    if not (cfg.get("SMS_API_BASE_URL") and cfg.get("SMS_ACCOUNT_SID")):
        return None
    return _sms_client(cfg["SMS_API_BASE_URL"], cfg["SMS_ACCOUNT_SID"], cfg.get("SMS_AUTH_TOKEN") or "",
                       cfg.get("SMS_FROM") or "")


def mailer():
    """An SMTP mailer, or None in development (no SMTP_HOST): mail then stays in the outbox page."""
    from app.notifications.mailer import SmtpMailer

    cfg = config()
    if not cfg.get("SMTP_HOST"):
        return None
    return SmtpMailer(cfg["SMTP_HOST"], int(cfg.get("SMTP_PORT") or 25), cfg.get("SMTP_USER"),
                      cfg.get("SMTP_PASSWORD"), starttls=bool(cfg.get("SMTP_TLS")), timeout=10)


def setting(name: str, default: float) -> float:
    """A numeric tuning value from the environment (tests shorten retry delays and leases)."""
    value = os.environ.get(name) or config().get(name)
    return float(value) if value not in (None, "") else default
