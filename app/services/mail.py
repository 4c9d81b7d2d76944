"""Account and sign-in mail (invitations, password resets, magic links).

Each message is a `platform_mail` row written in the caller's transaction: the outbox
of account mail. When SMTP is configured the row waits for the outbox relay
(`relayed_at` NULL; a trigger NOTIFYs it on commit), which enqueues the send job, so a
rolled-back request sends nothing and this service never talks to Redis. Without SMTP
the row is only kept for the development outbox page.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from app.models.public import PlatformMail


def queue_mail(session: Session, to: str, subject: str, body: str, tenant_id: int | None = None) -> PlatformMail:
    """Store a plain-text mail; the relay has it sent once the transaction commits (if SMTP is configured).
    `tenant_id`: the business the mail is about (its admins see it in the development outbox)."""
    to_send = has_app_context() and bool(current_app.config.get("SMTP_HOST"))
    mail = PlatformMail(to_email=to, subject=subject, body=body, tenant_id=tenant_id,
                        relayed_at=None if to_send else dt.datetime.now(dt.timezone.utc))
    session.add(mail)
    session.flush()
    return mail
