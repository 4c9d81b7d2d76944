"""SMS through a Twilio-compatible REST API (Twilio itself, or a fake in tests).

Errors are split by what the caller should do: ``SmsTemporaryError`` means retry
later (honouring ``retry_after``), ``SmsPermanentError`` means give up and record
why (bad number, recipient unsubscribed, bad credentials).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping, NamedTuple

import phonenumbers
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

API_VERSION = "2010-04-01"

# Twilio error codes the caller may want to act on.
ERROR_INVALID_TO = 21211
ERROR_UNSUBSCRIBED = 21610  # the recipient replied STOP; do not retry, stop sending
ERROR_BODY_TOO_LONG = 21617

# Twilio's built-in keyword handling (case-insensitive, the whole message).
# "CANCEL" opts a number out at Twilio's side even if the customer meant their
# appointment, so reminder texts should not invite a reply of "CANCEL".
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})

# Final states after which no further callback is expected.
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})


# GSM 03.38: messages made only of these fit 160 characters per segment
# (extension characters count twice); anything else switches to UCS-2 (70).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


class SmsError(Exception):
    pass


class SmsTemporaryError(SmsError):
    """Retry later. ``maybe_sent`` is True when the request may have reached the provider
    (a read timeout), so a retry can send the message twice."""

    def __init__(self, message: str, retry_after: float | None = None,
                 status: int | None = None, maybe_sent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.maybe_sent = maybe_sent


class SmsPermanentError(SmsError):
    """Retrying will not help; ``code`` is the provider's error code when it gave one."""

    def __init__(self, code: int | None, message: str, status: int | None = None):
        super().__init__(f"{code}: {message}" if code is not None else message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def opted_out(self) -> bool:
        return self.code == ERROR_UNSUBSCRIBED


class InvalidPhone(ValueError):
    pass


@dataclass(frozen=True)
class SmsResult:
    sid: str
    status: str


class StatusUpdate(NamedTuple):
    sid: str
    status: str
    error_code: int | None


def normalize_phone(raw: str, default_region: str | None) -> str:
    """``raw`` as E.164 ("+49301234567"); national numbers are read in ``default_region`` (ISO 3166 alpha-2)."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("phone number is empty")
    region = default_region.upper() if default_region else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhone(
                f"'{raw}' has no country code; write it as +<country code> <number>"
                + ("" if region else " (no default country is set)")
            ) from exc
        raise InvalidPhone(f"'{raw}' is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region or "its country"
        raise InvalidPhone(f"'{raw}' is not a valid phone number for {where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def sms_segments(body: str) -> int:
    """How many SMS segments ``body`` is billed as (for previews and cost warnings)."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in body):
        units = len(body) + sum(ch in _GSM7_EXTENSION for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


def _retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    # RFC 9110 allows delay-seconds or an HTTP-date.
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _error_fields(response: requests.Response) -> tuple[int | None, str]:
    try:
        data = response.json()
    except ValueError:
        return None, (response.text or response.reason or "").strip()[:500]
    if not isinstance(data, dict):
        return None, str(data)[:500]
    code = data.get("code")
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    return code, str(data.get("message") or response.reason or "")


def _maybe_sent(exc: requests.ConnectionError) -> bool:
    # A refused or unresolvable connection never carried the request; a connection
    # dropped mid-exchange may have, and then the provider may hold the message.
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return not isinstance(reason, (NewConnectionError, ConnectTimeoutError))


class SmsClient:
    """Sends one SMS per call; holds a connection pool, so keep one per account."""

    def __init__(self, base_url: str, account_sid: str, auth_token: str, from_number: str,
                 timeout: float = 10, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.from_number = from_number
        self.timeout = timeout
        self._auth = (account_sid, auth_token)
        self._session = session or requests.Session()

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def send(self, to: str, body: str, status_callback: str | None = None) -> SmsResult:
        """Queue one message; ``to`` must already be E.164 (see ``normalize_phone``)."""
        form = {"To": to, "From": self.from_number, "Body": body}
        if status_callback:
            form["StatusCallback"] = status_callback
        try:
            response = self._session.post(self.messages_url, data=form, auth=self._auth, timeout=self.timeout)
        except requests.ConnectTimeout as exc:
            raise SmsTemporaryError(f"connect timeout: {exc}") from exc
        except requests.ConnectionError as exc:
            raise SmsTemporaryError(f"connection error: {exc}", maybe_sent=_maybe_sent(exc)) from exc
        except requests.Timeout as exc:
            raise SmsTemporaryError(f"read timeout: {exc}", maybe_sent=True) from exc
        except requests.RequestException as exc:
            raise SmsPermanentError(None, f"request failed: {exc}") from exc
        return self._result(response)

    def _result(self, response: requests.Response) -> SmsResult:
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
                return SmsResult(sid=str(data["sid"]), status=str(data.get("status") or "queued"))
            except (ValueError, KeyError, TypeError) as exc:
                # Accepted but unreadable: a retry could send twice, so let a person look.
                raise SmsPermanentError(None, f"unreadable success response: {response.text[:200]!r}",
                                        status) from exc
        code, message = _error_fields(response)
        if status == 429 or status == 408 or status >= 500:
            raise SmsTemporaryError(f"HTTP {status}: {message}",
                                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                                    status=status)
        raise SmsPermanentError(code, message or f"HTTP {status}", status)

    def close(self) -> None:
        self._session.close()


def parse_status_callback(form: Mapping[str, str]) -> StatusUpdate:
    """(sid, status, error_code) of a delivery status callback; raises ValueError if it is not one."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        raise ValueError("not a message status callback: MessageSid and MessageStatus are required")
    raw_code = form.get("ErrorCode")
    try:
        error_code = int(raw_code) if raw_code not in (None, "") else None
    except ValueError:
        error_code = None
    return StatusUpdate(sid=sid, status=status.lower(), error_code=error_code)


def request_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` of a form POST to ``url``: base64 HMAC-SHA1 of the URL
    followed by each parameter name and value, sorted by name."""
    payload = url + "".join(f"{key}{form[key]}" for key in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_valid_signature(auth_token: str, url: str, form: Mapping[str, str], signature: str | None) -> bool:
    """Whether a callback really comes from the provider; check it before trusting ``form``."""
    if not signature:
        return False
    return hmac.compare_digest(request_signature(auth_token, url, form), signature)


_KEYWORD = re.compile(r"^\s*([A-Za-z]+)[\s.!]*$")


def _keyword(body: str | None) -> str | None:
    match = _KEYWORD.match(body or "")
    return match.group(1).upper() if match else None


def is_opt_out_keyword(body: str | None) -> bool:
    """True for an inbound message that unsubscribes the sender ("STOP", "stop.", " Unsubscribe ")."""
    return _keyword(body) in OPT_OUT_KEYWORDS


def is_opt_in_keyword(body: str | None) -> bool:
    """True for an inbound message that re-subscribes the sender ("START", "UNSTOP")."""
    return _keyword(body) in OPT_IN_KEYWORDS
