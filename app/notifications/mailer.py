"""Email building and SMTP delivery.

``build_email`` lays out the MIME structure calendar clients expect for invites::

    multipart/mixed
      multipart/alternative
        text/plain
        text/html                           (when there is HTML)
        text/calendar; method=REQUEST       (Outlook and Gmail read the invite from here)
      application/ics; name=invite.ics      (attachment, for clients that ignore the part above)

``SmtpMailer.send`` raises ``MailTemporaryError`` (retry later) or
``MailPermanentError`` (give up) so the delivery job can decide without
knowing smtplib.
"""

from __future__ import annotations

import logging
import smtplib
import ssl as ssl_module
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Mapping, Sequence, Union

log = logging.getLogger(__name__)

ICS_FILENAME = "invite.ics"
ICS_METHODS = ("REQUEST", "CANCEL")

Recipient = Union[str, tuple[str, str]]  # "a@b.example" or (display name, address)


class MailError(Exception):
    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class MailTemporaryError(MailError):
    """Retry later: the server was unreachable, timed out or answered 4xx."""


class MailPermanentError(MailError):
    """Retrying will not help: 5xx (recipient refused, message rejected) or bad configuration."""


def _address(recipient: Recipient) -> Address:
    if isinstance(recipient, tuple):
        name, email = recipient
        return Address(display_name=name or "", addr_spec=email)
    return Address(addr_spec=recipient)


def _recipients(to: Recipient | Sequence[Recipient]) -> list[Address]:
    if isinstance(to, (str, tuple)):
        return [_address(to)]
    return [_address(r) for r in to]


def build_email(
    sender_name: str,
    sender_email: str,
    reply_to: Recipient | None,
    to: Recipient | Sequence[Recipient],
    subject: str,
    text: str,
    html: str | None = None,
    ics: bytes | None = None,
    ics_method: str | None = None,
    *,
    date: datetime | None = None,
    message_id: str | None = None,
    message_id_domain: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A ready-to-send message; ``ics`` (from ``ics.build_ics``) needs ``ics_method`` to match it.

    The Message-ID uses ``message_id_domain`` (default: the sender's domain), never the
    worker's host name, which differs between machines and may leak internal names.
    """
    msg = EmailMessage()
    msg["From"] = Address(display_name=sender_name or "", addr_spec=sender_email)
    msg["To"] = _recipients(to)
    if reply_to:
        msg["Reply-To"] = _address(reply_to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime((date or datetime.now(timezone.utc)).astimezone(timezone.utc))
    domain = message_id_domain or sender_email.rpartition("@")[2] or "upzento.invalid"
    msg["Message-ID"] = message_id or make_msgid(domain=domain)
    # RFC 3834: keeps vacation responders from answering a booking confirmation.
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        del msg[name]
        msg[name] = value

    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    if ics is not None:
        method = (ics_method or "").upper()
        if method not in ICS_METHODS:
            raise ValueError(f"ics_method must be one of {ICS_METHODS}, got {ics_method!r}")
        if f"METHOD:{method}".encode() not in ics:
            # Clients trust the Content-Type method; a mismatch shows a wrong action.
            raise ValueError(f"the calendar data does not say METHOD:{method}")
        msg.add_alternative(ics.decode("utf-8"), subtype="calendar", params={"method": method})
        msg.add_attachment(ics, maintype="application", subtype="ics", filename=ICS_FILENAME,
                           params={"name": ICS_FILENAME})
    return msg


def _envelope_recipients(msg: EmailMessage) -> list[str]:
    addrs: list[str] = []
    for field in ("To", "Cc", "Bcc"):
        header = msg.get(field)
        if header is not None:
            addrs.extend(a.addr_spec for a in header.addresses)
    return addrs


def _classify_code(code: int, text: str) -> MailError:
    cls = MailTemporaryError if 400 <= code < 500 else MailPermanentError
    return cls(f"SMTP {code}: {text}", code)


def _decode(message: bytes | str) -> str:
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


class SmtpMailer:
    """Delivers one message per connection; cheap enough for transactional volumes."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,  # noqa: A002 (name fixed by the public signature)
        timeout: float = 10,
        *,
        ssl_context: ssl_module.SSLContext | None = None,
        local_hostname: str | None = None,
    ):
        if starttls and ssl:
            raise ValueError("choose starttls or ssl, not both")
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.use_ssl = ssl
        self.timeout = timeout
        self.ssl_context = ssl_context
        # smtplib would otherwise ask DNS for this machine's FQDN on every connection.
        self.local_hostname = local_hostname or "localhost"

    def _connect(self) -> smtplib.SMTP:
        context = self.ssl_context or ssl_module.create_default_context()
        if self.use_ssl:
            return smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout, context=context)
        client = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        if self.starttls:
            try:
                client.starttls(context=context)
            except BaseException:
                client.close()
                raise
        return client

    def send(self, msg: EmailMessage, envelope_from: str | None = None) -> str:
        """Deliver ``msg`` and return its Message-ID; ``envelope_from`` sets the bounce address."""
        if msg["Message-ID"] is None:
            sender = msg["From"].addresses[0].domain if msg["From"] is not None else "upzento.invalid"
            msg["Message-ID"] = make_msgid(domain=sender)
        message_id = str(msg["Message-ID"])
        try:
            client = self._connect()
        except smtplib.SMTPResponseException as exc:  # e.g. 421 or 554 in the greeting
            raise _classify_code(exc.smtp_code, _decode(exc.smtp_error)) from exc
        except ssl_module.SSLCertVerificationError as exc:
            raise MailPermanentError(f"TLS certificate rejected for {self.host}: {exc}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise MailPermanentError(f"{self.host} does not support STARTTLS") from exc
        except (OSError, smtplib.SMTPException) as exc:  # refused, timeout, DNS, disconnect
            raise MailTemporaryError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        try:
            with client:
                if self.username:
                    client.login(self.username, self.password or "")
                refused = client.send_message(msg, from_addr=envelope_from)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_decode(text)}" for rcpt, (code, text) in exc.recipients.items())
            # Retry only when every refusal was temporary (greylisting, full mailbox).
            cls = MailTemporaryError if all(400 <= c < 500 for c in codes) else MailPermanentError
            raise cls(f"all recipients refused: {detail}", max(codes) if codes else None) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise MailPermanentError(f"SMTP login failed: {exc.smtp_code} {_decode(exc.smtp_error)}",
                                     exc.smtp_code) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            raise _classify_code(exc.smtp_code, _decode(exc.smtp_error)) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise MailPermanentError(f"SMTP server does not support a required feature: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:  # disconnects and timeouts mid-session
            raise MailTemporaryError(f"SMTP session with {self.host}:{self.port} failed: {exc}") from exc
        if refused:
            # The message went out to the others; raising would make a retry send it
            # to them twice, so report and carry on.
            log.warning("message %s refused for some recipients: %s", message_id, refused)
        return message_id

