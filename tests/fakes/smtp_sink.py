"""An SMTP server on 127.0.0.1 that keeps what it receives, for tests.

    with SmtpSink() as sink:
        SmtpMailer("127.0.0.1", sink.port).send(msg)
        [received] = sink.wait_for(1)

``refuse_next(n, code)`` makes the next ``n`` messages fail with that reply code
(451 temporary, 550 permanent), at RCPT or DATA, to exercise retry handling.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOOPBACK = "127.0.0.1"

_DEFAULT_TEXT = {
    421: "Service not available, closing channel",
    450: "Mailbox unavailable, try again later",
    451: "Requested action aborted: local error in processing",
    452: "Insufficient system storage",
    550: "Mailbox unavailable",
    552: "Message size exceeds fixed maximum",
    554: "Transaction failed",
}


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage


@dataclass(frozen=True)
class _Refusal:
    code: int
    text: str
    stage: str  # "rcpt" | "data"

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


class _LoopbackController(Controller):
    def _trigger_server(self):
        # Bound to port 0: learn the real port before aiosmtpd connects to itself.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.sink._take_refusal("rcpt")
        if refusal is not None:
            return refusal.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self.sink._take_refusal("data")
        if refusal is not None:
            return refusal.reply
        self.sink._store(envelope.mail_from, envelope.rcpt_tos, envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    """Start with ``with`` (or ``start()``/``stop()``); ``port`` is free and chosen by the OS."""

    def __init__(self, credentials: tuple[str, str] | None = None):
        self._messages: list[Received] = []
        self._refusals: deque[_Refusal] = deque()
        self._cond = threading.Condition()
        self._credentials = credentials
        kwargs = {}
        if credentials:
            # AUTH without TLS is fine on loopback and lets tests cover login. Login is
            # checked when offered but not demanded (aiosmtpd warns on every connection
            # when AUTH is required without TLS).
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _LoopbackController(_Handler(self), hostname=LOOPBACK, port=0, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self._credentials == (
            auth_data.login.decode(), auth_data.password.decode())
        # handled=False lets aiosmtpd send the 535 reply itself.
        return AuthResult(success=ok, handled=False)

    # -- life cycle -----------------------------------------------------------

    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._controller.port

    # -- scripting ------------------------------------------------------------

    def refuse_next(self, n: int = 1, code: int = 451, text: str | None = None, stage: str | None = None) -> None:
        """Refuse the next ``n`` messages with ``code``.

        ``stage`` defaults to "rcpt" (the client sees its recipient refused); "data"
        refuses after the content was sent.
        """
        stage = stage or "rcpt"
        if stage not in ("rcpt", "data"):
            raise ValueError("stage must be 'rcpt' or 'data'")
        refusal = _Refusal(code, text or _DEFAULT_TEXT.get(code, "Refused"), stage)
        with self._cond:
            self._refusals.extend(refusal for _ in range(n))

    def _take_refusal(self, stage: str) -> _Refusal | None:
        with self._cond:
            if self._refusals and self._refusals[0].stage == stage:
                return self._refusals.popleft()
        return None

    # -- received messages ----------------------------------------------------

    def _store(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> None:
        message = message_from_bytes(raw, policy=policy.default)
        with self._cond:
            self._messages.append(Received(mail_from, tuple(rcpt_tos), raw, message))
            self._cond.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` messages, waiting up to ``timeout`` seconds for them to arrive."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= n, timeout):
                raise TimeoutError(f"expected {n} messages, got {len(self._messages)}")
            return list(self._messages[:n])

    def wait_until(self, wanted, n: int, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` messages for which ``wanted(message)`` is true (others, e.g. from other tenants, are skipped)."""
        with self._cond:
            if not self._cond.wait_for(lambda: sum(1 for r in self._messages if wanted(r)) >= n, timeout):
                raise TimeoutError(f"expected {n} matching messages among {len(self._messages)}")
            return [r for r in self._messages if wanted(r)][:n]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._refusals.clear()
