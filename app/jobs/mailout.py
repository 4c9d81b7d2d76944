"""One SMTP connection for all messages of a job batch.

`SmtpMailer.send` opens a connection per message: right for a single mail, but a
batch of confirmations would pay the TCP set-up, greeting, EHLO (and TLS, login)
each time. `BatchSender` keeps one session open for the job and reports errors
with the mailer's classes, so the retry rules stay the same.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from app.notifications.mailer import MailPermanentError, MailTemporaryError, SmtpMailer


def _classify(code: int, text) -> Exception:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    cls = MailTemporaryError if 400 <= code < 500 else MailPermanentError
    return cls(f"SMTP {code}: {text}", code)


class BatchSender:
    """`send(msg)` over a shared session; `close()` at the end of the batch."""

    def __init__(self, mailer: SmtpMailer):
        self.mailer = mailer
        self.client: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        try:
            client = self.mailer._connect()
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailTemporaryError(f"cannot connect to {self.mailer.host}:{self.mailer.port}: {exc}") from exc
        if self.mailer.username:
            try:
                client.login(self.mailer.username, self.mailer.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                client.close()
                raise MailPermanentError(f"SMTP login failed: {exc.smtp_code}", exc.smtp_code) from exc
        return client

    def send(self, msg: EmailMessage) -> str:
        """Deliver one message; raises MailTemporaryError / MailPermanentError like SmtpMailer."""
        message_id = str(msg["Message-ID"])
        for fresh in (self.client is None, True):
            if self.client is None:
                self.client = self._open()
            try:
                self.client.send_message(msg)
                return message_id
            except smtplib.SMTPServerDisconnected as exc:
                self.client = None
                if fresh:
                    raise MailTemporaryError(f"SMTP session with {self.mailer.host} failed: {exc}") from exc
                # A reused session may have timed out on the server: reconnect once.
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset()
                codes = [code for code, _ in exc.recipients.values()]
                detail = "; ".join(f"{r}: {c} {t!r}" for r, (c, t) in exc.recipients.items())
                cls = MailTemporaryError if codes and all(400 <= c < 500 for c in codes) else MailPermanentError
                raise cls(f"all recipients refused: {detail}", max(codes) if codes else None) from exc
            except smtplib.SMTPResponseException as exc:
                self._reset()
                raise _classify(exc.smtp_code, exc.smtp_error) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise MailTemporaryError(f"SMTP session with {self.mailer.host} failed: {exc}") from exc
        raise MailTemporaryError("SMTP session could not be re-opened")

    def _reset(self) -> None:
        # After a refusal the session is still usable once RSET succeeds.
        try:
            self.client.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None

    def close(self) -> None:
        """QUIT the session (errors ignored: every message was already accepted or reported)."""
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
