"""Account and sign-in mail (invitations, password resets, magic links).

Each message is stored in `platform_mail` (the development outbox page shows it)
in the caller's transaction and sent by an RQ job after commit when SMTP is
configured, so a rolled-back request sends nothing.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.models.public import PlatformMail


def queue_mail(session: Session, to: str, subject: str, body: str) -> PlatformMail:
    """Store a plain-text mail; enqueue its sending once the transaction commits."""
    mail = PlatformMail(to_email=to, subject=subject, body=body)
    session.add(mail)
    session.flush()
    mail_id = mail.id
    target = session() if callable(getattr(session, "registry", None)) else session

    @event.listens_for(target, "after_commit", once=True)
    def _enqueue(_session):
        if current_app.config.get("SMTP_HOST"):
            from app.jobs.queues import queue

            queue("notifications").enqueue("app.jobs.mail.send_platform_mail", mail_id)

    return mail
