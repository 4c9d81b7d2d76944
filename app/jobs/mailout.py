"""One SMTP connection for all messages of a job batch.

`SmtpMailer.send` opens a connection per message: right for a single mail, but a
batch of confirmations would pay the TCP set-up, greeting, EHLO (and TLS, login)
each time. `BatchSender` keeps one session open for the job and reports errors
with the mailer's classes, so the retry rules stay the same.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timezone
from email.charset import QP, Charset
from email.header import Header
from email.policy import compat32
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid

from app.notifications.mailer import MailPermanentError, MailTemporaryError, SmtpMailer

ICS_FILENAME = "invite.ics"
# SMTP wants CRLF line ends; smtplib leaves bytes as they are.
WIRE = compat32.clone(linesep="\r\n")
_QP_UTF8 = Charset("utf-8")
_QP_UTF8.body_encoding = QP


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def fast_email(sender_name: str, sender_email: str, reply_to: str | None, to: str, subject: str, text: str,
               html: str | None, ics: bytes | None, ics_method: str | None,
               headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(wire bytes, Message-ID) of the MIME layout `mailer.build_email` documents, built with the
    compat32 classes: about a third of the cost, which matters at hundreds of messages a second."""
    if ics is not None and f"METHOD:{ics_method}".encode() not in ics:
        raise ValueError(f"the calendar data does not say METHOD:{ics_method}")
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(text, "plain", "utf-8"))
    if html:
        alternative.attach(MIMEText(html, "html", "utf-8"))
    if ics is not None:
        # Calendar parts stay readable (7bit) when they can; some clients only scan those.
        body = ics.decode("utf-8")
        calendar = MIMEText(body, "calendar", "us-ascii" if body.isascii() else _QP_UTF8)
        calendar.set_param("method", ics_method)
        alternative.attach(calendar)
    if ics is not None:
        msg = MIMEMultipart("mixed")
        msg.attach(alternative)
        attachment = MIMEApplication(ics, "ics", name=ICS_FILENAME)
        attachment.add_header("Content-Disposition", "attachment", filename=ICS_FILENAME)
        msg.attach(attachment)
    else:
        msg = alternative
    message_id = make_msgid(domain=sender_email.rpartition("@")[2] or "upzento.invalid")
    from app.headers import has_break, header_address, header_text

    if has_break(to) or has_break(sender_email):
        raise ValueError("a mail address carries a line break")
    msg["From"] = formataddr((header_text(sender_name), sender_email), charset="utf-8")
    msg["To"] = to
    reply_to = header_address(reply_to)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = _header(subject)
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = value
    return msg.as_bytes(policy=WIRE), message_id


def _classify(code: int, text) -> Exception:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    cls = MailTemporaryError if 400 <= code < 500 else MailPermanentError
    return cls(f"SMTP {code}: {text}", code)


class BatchSender:
    """`send_bytes(...)` over a shared session; `close()` at the end of the batch."""

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

    def send_bytes(self, sender: str, to: str, data: bytes, message_id: str) -> str:
        """Deliver wire bytes built by `fast_email`; raises MailTemporaryError / MailPermanentError like SmtpMailer."""
        for fresh in (self.client is None, True):
            if self.client is None:
                self.client = self._open()
            try:
                self.client.sendmail(sender, [to], data)
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
