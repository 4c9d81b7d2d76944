"""A fake of Twilio's Messages API (form POST, Basic auth, Twilio-style errors)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import urlsplit

import requests

from fakes.http_fake import HttpFake, Request, Response

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def twilio_error(status: int, code: int, message: str) -> Response:
    return Response.json(status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    })


def sign(auth_token: str, url: str, form: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature, written here independently of the app's verifier."""
    data = url + "".join(key + form[key] for key in sorted(form))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


class FakeTwilio(HttpFake):
    """``messages`` maps sid → the stored message resource (a dict, as Twilio returns it)."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-token"):
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: dict[str, dict] = {}
        self.callbacks: dict[str, str] = {}  # sid -> StatusCallback URL
        self.opted_out: set[str] = set()  # numbers that replied STOP
        self._lock = threading.Lock()
        self.route("POST", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json", self._create_message)

    # -- scripting helpers ----------------------------------------------------

    def fail_next_with_429(self, retry_after: float | str = 1, times: int = 1) -> None:
        self.fail_next(429, {"code": 20429, "message": "Too Many Requests", "status": 429},
                       headers={"Retry-After": str(retry_after)}, times=times)

    def fail_next_with_error(self, status: int, code: int, message: str, times: int = 1) -> None:
        self.fail_next(status, {"code": code, "message": message, "status": status,
                                "more_info": f"https://www.twilio.com/docs/errors/{code}"}, times=times)

    # -- API ------------------------------------------------------------------

    def _authorized(self, req: Request, path_sid: str) -> bool:
        header = req.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (secrets.compare_digest(user, self.account_sid)
                and secrets.compare_digest(password, self.auth_token)
                and path_sid == self.account_sid)

    def _create_message(self, req: Request, match: re.Match[str]) -> Response:
        if not self._authorized(req, match["sid"]):
            return twilio_error(401, 20003, "Authenticate")
        form = req.form
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if not _E164.fullmatch(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in self.opted_out:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")

        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(timezone.utc), usegmt=True)
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(1 if len(body) <= 160 else -(-len(body) // 153)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self.messages[sid] = resource
            if form.get("StatusCallback"):
                self.callbacks[sid] = form["StatusCallback"]
        return Response.json(201, resource)

    # -- status callbacks -----------------------------------------------------

    def deliver_status(self, sid: str, status: str, error_code: int | None = None,
                       timeout: float = 5) -> requests.Response:
        """POST a status callback for ``sid`` to its StatusCallback URL, signed like Twilio."""
        with self._lock:
            message = self.messages[sid]
            url = self.callbacks.get(sid)
            message["status"] = status
            message["error_code"] = error_code
        if url is None:
            raise LookupError(f"message {sid} was sent without a StatusCallback")
        host = urlsplit(url).hostname
        if host not in _LOOPBACK_HOSTS:
            # Tests must never reach beyond this machine.
            raise ValueError(f"refusing to call back a non-loopback host: {host}")
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message["from"],
            "To": message["to"],
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        signature = sign(self.auth_token, url, form)
        return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=timeout)
