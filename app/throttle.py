"""Brute-force protection for sign-in and reset requests (counters in Redis).

Per account (the submitted user name or address, whether or not it exists, so the
answers stay identical for unknown accounts) and per client IP: a few attempts are
free within the window; each further failure locks that key for a doubling time
(`THROTTLE_BASE_SECONDS` × 2^n, at most `THROTTLE_MAX_SECONDS`). A locked request is
answered 429 with `Retry-After` and says why, before the password is even checked.

Covered: `POST /login/` (failures count; a success clears the account's counter) and `POST /account/forgot` (every request counts).
If Redis is unreachable the check lets the request through (logged): an outage of the
counters must not lock every user out.
"""

from __future__ import annotations

import hashlib
import logging
import math

from flask import Flask, current_app, g, jsonify, make_response, request

log = logging.getLogger(__name__)

# path -> (kind, where the account is in the request, counts successes too)
GUARDED = {
    "/login/": ("login", "username", False),
    "/account/forgot": ("forgot", "email", True),
}


class Throttled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = max(1, int(math.ceil(retry_after)))


def _redis():
    from app.queueing import redis_connection

    return redis_connection()


def _settings(kind: str) -> tuple[int, int, int]:
    """(free attempts per account, free attempts per IP, window seconds)."""
    c = current_app.config
    if kind == "forgot":
        return c.get("THROTTLE_FORGOT_PER_ACCOUNT", 3), c.get("THROTTLE_FORGOT_PER_IP", 10), 3600
    return c.get("THROTTLE_LOGIN_PER_ACCOUNT", 5), c.get("THROTTLE_LOGIN_PER_IP", 30), c.get("THROTTLE_WINDOW_SECONDS", 900)


def _keys(kind: str, account: str, ip: str) -> list[tuple[str, int]]:
    free_account, free_ip, _ = _settings(kind)
    digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]
    return [(f"upz:throttle:{kind}:acct:{digest}", free_account), (f"upz:throttle:{kind}:ip:{ip}", free_ip)]


def check(kind: str, account: str, ip: str) -> None:
    """Raise Throttled while the account or the IP is locked."""
    r = _redis()
    waits = [r.pttl(f"{key}:lock") for key, _ in _keys(kind, account, ip)]
    wait = max(waits)
    if wait > 0:
        raise Throttled(wait / 1000)


def failure(kind: str, account: str, ip: str) -> None:
    """Count a failed (or, for resets, any) attempt; past the free ones, lock with backoff."""
    c = current_app.config
    base, cap = c.get("THROTTLE_BASE_SECONDS", 2), c.get("THROTTLE_MAX_SECONDS", 900)
    _, _, window = _settings(kind)
    r = _redis()
    for key, free in _keys(kind, account, ip):
        pipe = r.pipeline()
        pipe.incr(key)
        pipe.expire(key, window)
        count = pipe.execute()[0]
        if count >= free:
            lock = min(cap, base * 2 ** (count - free))
            r.set(f"{key}:lock", "1", px=int(lock * 1000))


def success(kind: str, account: str, ip: str) -> None:
    key, _ = _keys(kind, account, ip)[0]
    _redis().delete(key, f"{key}:lock")


def _account() -> str | None:
    spec = GUARDED.get(request.path)
    if spec is None or request.method != "POST":
        return None
    field = spec[1]
    if request.is_json:
        body = request.get_json(silent=True)
        value = body.get(field) if isinstance(body, dict) else None
    else:
        value = request.form.get(field)
    return value if isinstance(value, str) else ""


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _refusal(exc: Throttled):
    message = f"Too many attempts. Try again in {exc.retry_after} seconds."
    if request.path.startswith("/api/") or request.is_json:
        response = jsonify({"error": {"code": "too_many_attempts", "message": message, "field": None}})
    else:
        response = make_response(
            "<!doctype html><title>Too many attempts</title><h1>Too many attempts</h1>"
            f"<p>{message}</p><p><a href=\"{request.path}\">Back</a></p>"
        )
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _before():
    account = _account()
    if account is None:
        return None
    kind = GUARDED[request.path][0]
    g._throttle = (kind, account, _client_ip())
    try:
        check(*g._throttle)
    except Throttled as exc:
        g._throttle = None
        return _refusal(exc)
    except Exception:  # noqa: BLE001 - Redis down: let the request through, say so in the log
        log.warning("sign-in throttle unavailable (Redis); request not limited", exc_info=True)
        g._throttle = None
    return None


def _signed_in(response) -> bool:
    if request.path.startswith("/api/"):
        return response.status_code == 200
    from flask_login import current_user

    return bool(getattr(current_user, "is_authenticated", False)) and not getattr(g, "_api_key_user", False)


def _after(response):
    spec = g.pop("_throttle", None)
    if not spec:
        return response
    kind = spec[0]
    try:
        if GUARDED[request.path][2] or not _signed_in(response):
            failure(*spec)
        else:
            success(*spec)
    except Exception:  # noqa: BLE001
        log.warning("sign-in throttle unavailable (Redis); attempt not counted", exc_info=True)
    return response


def install(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
