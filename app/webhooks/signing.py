"""Standard Webhooks signatures (https://www.standardwebhooks.com).

`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by
the base64 part of a `whsec_...` secret. During a secret rotation both secrets sign
and the header carries both signatures, space-separated; receivers accept either.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from functools import lru_cache

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh `whsec_` secret (24 random bytes)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


@lru_cache(maxsize=1024)
def _key(secret: str) -> bytes:
    return base64.b64decode(secret[len(PREFIX):] if secret.startswith(PREFIX) else secret)


def new_msg_id() -> str:
    """A `webhook-id` for a new message (kept through retries and replays)."""
    return "msg_" + secrets.token_urlsafe(18)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64>` for one secret."""
    mac = hmac.digest(_key(secret), b"%s.%d.%s" % (msg_id.encode(), timestamp, body), "sha256")
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (current first)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
    }


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when one of the header's v1 signatures was made with `secret` (for our own tests and tools)."""
    expected = signature(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, part) for part in header.split())
