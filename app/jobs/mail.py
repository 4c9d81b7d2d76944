"""Job: send one stored account mail over SMTP (enqueued by the outbox relay; skips a mail already sent)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from app.jobs.context import job_app
from app.models.public import PlatformMail
from app.uow import unit_of_work


def send_platform_mail(mail_id: int) -> None:
    from app.extensions import db
    from app.notifications.mailer import SmtpMailer, build_email

    app = job_app()
    with app.app_context(), Session(db.engine) as session, unit_of_work(session):
        mail = session.get(PlatformMail, mail_id, with_for_update=True)
        if mail is None or mail.sent:
            return
        cfg = app.config
        msg = build_email(
            sender_name=cfg["APP_NAME"], sender_email=cfg["MAIL_FROM"], reply_to=None, to=mail.to_email,
            subject=mail.subject, text=mail.body, date=dt.datetime.now(dt.timezone.utc),
        )
        SmtpMailer(cfg["SMTP_HOST"], cfg["SMTP_PORT"], cfg.get("SMTP_USER"), cfg.get("SMTP_PASSWORD"),
                   starttls=cfg.get("SMTP_TLS", False)).send(msg)
        mail.sent = True
