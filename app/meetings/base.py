"""Shared parts of the meeting clients: the result, the error, and an OAuth client-credentials token cache."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

from app.boundedcache import BoundedCache

TIMEOUT = 10
UTC = dt.timezone.utc


@dataclass
class Meeting:
    provider: str
    id: str
    join_url: str
    details: dict[str, Any] = field(default_factory=dict)  # passcode, dial_in [...], ...


class MeetingError(Exception):
    """The provider refused or could not be reached; `temporary` errors are worth retrying soon."""

    def __init__(self, message: str, temporary: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.temporary = temporary
        self.retry_after = retry_after


def iso_z(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenCache:
    """Access tokens per credential set, kept until shortly before they expire.

    In process memory, and (when `shared` is set to a Redis client, as the worker jobs
    do) in Redis too, encrypted with app.crypto, so all workers share one token.
    """

    def __init__(self) -> None:
        # One token per credential set (platform app, or a business's or agency's own);
        # bounded (CACHE_OAUTH_TOKENS_ENTRIES) so 1,000 businesses with their own apps stay flat.
        self._tokens = BoundedCache("oauth_tokens", 1024)
        self.shared = None  # a redis.Redis, or None

    @staticmethod
    def _redis_key(key: tuple) -> str:
        import hashlib

        return "upz:oauth:" + hashlib.sha256(repr(key).encode()).hexdigest()[:32]

    def _from_shared(self, key: tuple) -> tuple[str, float] | None:
        if self.shared is None:
            return None
        try:
            from app import crypto

            raw = self.shared.get(self._redis_key(key))
            ttl = self.shared.pttl(self._redis_key(key)) if raw else -1
            if raw and ttl > 0:
                return crypto.decrypt(raw.decode()), time.monotonic() + ttl / 1000
        except Exception:  # noqa: BLE001 - a cache: fall back to fetching
            return None
        return None

    def _to_shared(self, key: tuple, token: str, seconds: float) -> None:
        if self.shared is None:
            return
        try:
            from app import crypto

            self.shared.set(self._redis_key(key), crypto.encrypt(token), px=max(1, int(seconds * 1000)))
        except Exception:  # noqa: BLE001
            pass

    def get(self, key: tuple, fetch: Callable[[], tuple[str, float]], force: bool = False) -> str:
        if not force:
            hit = self._tokens.get(key)
            if hit and hit[1] > time.monotonic():
                return hit[0]
            hit = self._from_shared(key)
            if hit:
                self._tokens.put(key, hit)
                return hit[0]
        token, expires_in = fetch()
        # Used until a minute before expiry (or half its life for very short tokens).
        keep = max(1.0, min(expires_in - 60, expires_in / 2))
        self._tokens.put(key, (token, time.monotonic() + keep))
        self._to_shared(key, token, keep)
        return token

    def drop(self, key: tuple) -> None:
        self._tokens.pop(key)
        if self.shared is not None:
            try:
                self.shared.delete(self._redis_key(key))
            except Exception:  # noqa: BLE001
                pass

    def clear(self) -> None:
        self._tokens.clear()


TOKENS = TokenCache()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def raise_for(response: requests.Response, what: str) -> None:
    """MeetingError for a non-2xx answer: 408/429/5xx temporary, other 4xx not."""
    if response.status_code < 300:
        return
    body = response.text[:300]
    temporary = response.status_code in (408, 425, 429) or response.status_code >= 500
    raise MeetingError(f"{what}: HTTP {response.status_code} {body}", temporary=temporary,
                       retry_after=_retry_after(response))


class OAuthApi:
    """An API called with a bearer token from a client-credentials style grant; a 401 refreshes it once."""

    provider = ""

    def __init__(self, session: requests.Session | None = None, timeout: float = TIMEOUT):
        self.http = session or requests.Session()
        self.timeout = timeout

    def cache_key(self) -> tuple:
        raise NotImplementedError

    def fetch_token(self) -> tuple[str, float]:
        raise NotImplementedError

    def token(self, force: bool = False) -> str:
        return TOKENS.get(self.cache_key(), self.fetch_token, force=force)

    def call(self, method: str, url: str, what: str, **kwargs) -> requests.Response:
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self.token(force=attempt == 1)}", **kwargs.pop("headers", {})}
            try:
                response = self.http.request(method, url, headers=headers, timeout=self.timeout,
                                             allow_redirects=False, **kwargs)
            except requests.RequestException as exc:
                raise MeetingError(f"{what}: {type(exc).__name__}: {exc}") from None
            if response.status_code == 401 and attempt == 0:
                TOKENS.drop(self.cache_key())
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            return response
        return response

    def post_token(self, url: str, what: str, **kwargs) -> dict:
        try:
            response = self.http.post(url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise MeetingError(f"{what}: {type(exc).__name__}: {exc}") from None
        raise_for(response, what)
        data = response.json()
        if not data.get("access_token"):
            raise MeetingError(f"{what}: no access_token in the answer", temporary=False)
        return data
