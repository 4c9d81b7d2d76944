"""What every tenant REST endpoint shares: Idempotency-Key on POST, ETag / If-Match, request bodies.

**Idempotency-Key** (every POST under `/api/v1/`, the public booking API has its own): the
first answer (status < 500) to a key is stored in the business's `idempotency_key` table
for `IDEMPOTENCY_TTL_HOURS`, scoped by the caller (API key or user), method and path. The
same key with the same body gets that answer again (`Idempotent-Replayed: true`), with
another body 422 `idempotency_mismatch`; while the first request runs, a second one is 409
`idempotency_in_progress` (a short Redis lock). Booking endpoints store their answer in
their own transaction (`remember`), so a booking and its stored answer commit together;
the others (FAB's catalogue writes, which commit inside FAB) store it right after.

**ETag / If-Match**: single resources answer with a strong `ETag` (a hash of their JSON);
updates take `If-Match` and answer 412 `precondition_failed` when the resource changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.errors import ApiError, ValidationError
from app.extensions import db
from app.models import tenant as m

API_PREFIX = "/api/v1/"
EXCLUDED = ("/api/v1/public/", "/api/v1/security/")
LOCK_SECONDS = 60


# --------------------------------------------------------------------------- bodies

def json_body(required: bool = True) -> dict:
    """The request's JSON object (422 `invalid_json` for anything else)."""
    data = request.get_json(silent=True)
    if data is None and not required and not request.get_data():
        return {}
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", None, code="invalid_json")
    return data


# --------------------------------------------------------------------------- ETag

def etag_of(document) -> str:
    raw = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def check_if_match(current: str) -> None:
    """412 when the caller's If-Match names another version (no header: no check)."""
    wanted = request.headers.get("If-Match")
    if not wanted:
        return
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    if "*" in tags or current in tags:
        return
    raise ApiError("precondition_failed", "the resource changed since it was read (If-Match does not match its ETag)",
                   "If-Match", status=412)


# --------------------------------------------------------------------------- Idempotency-Key

def _applies() -> bool:
    return (request.method == "POST" and request.path.startswith(API_PREFIX)
            and not request.path.startswith(EXCLUDED) and g.get("tenant") is not None
            and bool(request.headers.get("Idempotency-Key")))


def _principal() -> str:
    if g.get("api_key_id"):
        return f"key{g.api_key_id}"
    user = g.get("user")
    return f"user{getattr(user, 'id', None)}"


def _scoped_key() -> str:
    raw = f"{_principal()}:{request.method}:{request.path}:{request.headers['Idempotency-Key']}"
    return "rest:" + hashlib.sha256(raw.encode()).hexdigest()


def _redis():
    from app.queueing import redis_connection

    return redis_connection()


def _lock_name(scoped: str) -> str:
    return f"upz:idem:{g.tenant.schema}:{scoped}"


def _before():
    if not _applies():
        return None
    key = request.headers["Idempotency-Key"]
    if len(key) > 200:
        raise ValidationError("Idempotency-Key is too long (200 characters at most)", "Idempotency-Key")
    scoped = _scoped_key()
    digest = hashlib.sha256(request.get_data()).hexdigest()
    ttl = dt.timedelta(hours=current_app.config.get("IDEMPOTENCY_TTL_HOURS", 24))
    stored = db.session.scalar(select(m.IdempotencyKey).where(
        m.IdempotencyKey.key == scoped, m.IdempotencyKey.created_at > dt.datetime.now(dt.timezone.utc) - ttl))
    if stored is not None:
        from app.uow import discard

        discard()
        if stored.request_hash != digest:
            raise ValidationError("this Idempotency-Key was used with a different request body", "Idempotency-Key",
                                  code="idempotency_mismatch")
        response = jsonify(stored.response)
        response.status_code = stored.status_code
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        locked = _redis().set(_lock_name(scoped), "1", nx=True, ex=LOCK_SECONDS)
    except Exception:  # noqa: BLE001 - without Redis the stored answers still protect sequential retries
        locked = True
    if not locked:
        raise ApiError("idempotency_in_progress", "a request with this Idempotency-Key is still running",
                       "Idempotency-Key", status=409)
    g._idempotency = (scoped, digest)
    return None


def remember(body: dict, status: int) -> None:
    """Store the answer in the caller's transaction (bookings: the answer commits with the booking)."""
    pending = g.get("_idempotency")
    if pending is None:
        return
    scoped, digest = pending
    db.session.execute(insert(m.IdempotencyKey).values(
        key=scoped, request_hash=digest, status_code=status, response=body,
        created_at=dt.datetime.now(dt.timezone.utc)).on_conflict_do_update(
        index_elements=["key"], set_={"request_hash": digest, "status_code": status, "response": body,
                                      "created_at": dt.datetime.now(dt.timezone.utc)}))
    g._idempotency_stored = True


def _after(response):
    pending = g.pop("_idempotency", None)
    if pending is None:
        return response
    scoped, digest = pending
    try:
        if not g.get("_idempotency_stored") and response.status_code < 500 and response.is_json:
            from app.tenancy import tenant_session

            body = response.get_json(silent=True)
            if body is not None:
                with tenant_session(db.engine, g.tenant.slug) as (session, _ref):
                    session.execute(insert(m.IdempotencyKey).values(
                        key=scoped, request_hash=digest, status_code=response.status_code, response=body,
                        created_at=dt.datetime.now(dt.timezone.utc)).on_conflict_do_nothing(index_elements=["key"]))
    finally:
        try:
            _redis().delete(_lock_name(scoped))
        except Exception:  # noqa: BLE001 - the lock expires by itself
            pass
    return response


def install(app: Flask) -> None:
    """Register after the tenant is resolved (`resolve_request_scope`)."""
    app.before_request(_before)
    app.after_request(_after)
