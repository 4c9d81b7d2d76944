"""Rate limits of the APIs (Flask-Limiter, counters in Redis).

| scope | applies to | counted per | config |
|---|---|---|---|
| `api-key` | `/api/v1/...` with an API key | key | the key's plan in `API_RATE_PLANS` (default `API_RATE_PLAN_DEFAULT`) |
| `api-ip` | `/api/v1/...` (key or session) | client IP | `API_RATE_LIMIT_PER_IP` |
| `public-tenant` | `/api/v1/public/<t>/...` | business (all callers) | `PUBLIC_RATE_LIMIT_PER_TENANT`, `PUBLIC_RATE_LIMIT_TENANT_OVERRIDES` |
| `public-ip` | `/api/v1/public/...` | client IP | `PUBLIC_RATE_LIMIT_PER_IP` |
| `public-book` | POSTs under `/api/v1/public/<t>/bookings` | client IP | `PUBLIC_BOOKING_RATE_LIMIT_PER_IP` |

The checks run after the API key is authenticated (registered after
`resolve_request_scope`), so a key's bucket is only ever charged by that key, never by
someone who merely knows its public prefix. Limits are read from the configuration on
each request. A refusal is 429 with `Retry-After` and the project's error body; every
limited answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
(seconds) of the tightest limit. If Redis is unreachable the request is let through.

Fairness between businesses: `public-tenant` counts every request to one business's public
API, whoever sends it, so a business flooded by its visitors (or a scraper spreading over
many addresses) spends its own budget on cheap 429s and leaves the workers' time to the
others. A business may have its own figure (its plan's) in `PUBLIC_RATE_LIMIT_TENANT_OVERRIDES`,
JSON `{"slug": "6000/minute"}`. The slug is read from the path, before any database look-up.

Plans per key: each API key names a plan (`rate_plan`, NULL for `API_RATE_PLAN_DEFAULT`) whose
limit is `API_RATE_PLANS[plan]`, e.g. `{"standard": "600/minute", "high": "3000/minute"}`; the plan
"standard" is `API_RATE_LIMIT_PER_KEY` unless `API_RATE_PLANS` names it. A key whose plan was
removed from the configuration falls back to the default plan. The limit string is part of
Flask-Limiter's counter name, so moving a key to another plan starts it on a fresh window.
"""

from __future__ import annotations

import json
import math
import time

from flask import Flask, current_app, g, jsonify, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.errors import RateLimitExceeded

API_PREFIX = "/api/v1/"
PUBLIC_PREFIX = "/api/v1/public/"
UNLIMITED_PREFIXES = ("/api/v1/security/",)  # log-in has its own throttle (app.throttle)


def _path() -> str:
    return request.path


def _is_api() -> bool:
    path = _path()
    return path.startswith(API_PREFIX) and not path.startswith((PUBLIC_PREFIX, *UNLIMITED_PREFIXES))


def _is_public() -> bool:
    return _path().startswith(PUBLIC_PREFIX)


def _is_public_booking() -> bool:
    if request.method != "POST" or not _is_public():
        return False
    parts = _path()[len(PUBLIC_PREFIX):].split("/")
    return len(parts) >= 2 and parts[1] == "bookings"


def _tenant_slug() -> str:
    return _path()[len(PUBLIC_PREFIX):].split("/", 1)[0][:63]


def _tenant_limit() -> str:
    """The business's own limit when it has one, else PUBLIC_RATE_LIMIT_PER_TENANT."""
    overrides = current_app.config.get("PUBLIC_RATE_LIMIT_TENANT_OVERRIDES") or {}
    if isinstance(overrides, str):
        overrides = json.loads(overrides) if overrides.strip() else {}
    return overrides.get(_tenant_slug()) or current_app.config.get("PUBLIC_RATE_LIMIT_PER_TENANT") or ""


def _ip() -> str:
    return request.remote_addr or "unknown"


def _key_id() -> str:
    return f"key:{g.get('api_key_id')}"


def rate_plans(config=None) -> dict[str, str]:
    """The plan table: "standard" = API_RATE_LIMIT_PER_KEY, then API_RATE_PLANS (JSON in the environment) over it."""
    config = current_app.config if config is None else config
    plans = config.get("API_RATE_PLANS") or {}
    if isinstance(plans, str):
        plans = json.loads(plans) if plans.strip() else {}
    base = {"standard": config["API_RATE_LIMIT_PER_KEY"]} if config.get("API_RATE_LIMIT_PER_KEY") else {}
    return {**base, **plans}


def plan_limit(plan: str | None) -> str:
    """The limit string of a plan (None, or a plan no longer configured: the default plan's)."""
    plans = rate_plans()
    default = current_app.config.get("API_RATE_PLAN_DEFAULT") or "standard"
    return plans.get(plan or default) or plans.get(default) or ""


def _key_limit() -> str:
    return plan_limit(g.get("api_key_plan"))


def _config(name: str):
    return lambda: current_app.config.get(name) or ""


def _storage_uri(redis_url: str | None, sentinels: str | None = None, master: str | None = None) -> str:
    if sentinels:
        # The limits library follows the Sentinel-elected master like app.queueing does.
        hosts = ",".join(item.strip() for item in sentinels.split(",") if item.strip())
        return f"redis+sentinel://{hosts}/{master or 'upzento'}"
    if not redis_url:
        return "memory://"
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def make_limiter() -> Limiter:
    """One limiter per app (each app has its own Redis)."""
    return Limiter(
        key_func=_ip,
        application_limits=[
            ApplicationLimit(_key_limit, key_function=_key_id, scope="api-key",
                             exempt_when=lambda: not (_is_api() and g.get("api_key_id"))),
            ApplicationLimit(_config("API_RATE_LIMIT_PER_IP"), key_function=lambda: f"ip:{_ip()}", scope="api-ip",
                             exempt_when=lambda: not _is_api()),
            ApplicationLimit(_tenant_limit, key_function=lambda: f"tenant:{_tenant_slug()}",
                             scope="public-tenant", exempt_when=lambda: not _is_public()),
            ApplicationLimit(_config("PUBLIC_RATE_LIMIT_PER_IP"), key_function=lambda: f"ip:{_ip()}",
                             scope="public-ip", exempt_when=lambda: not _is_public()),
            ApplicationLimit(_config("PUBLIC_BOOKING_RATE_LIMIT_PER_IP"), key_function=lambda: f"ip:{_ip()}",
                             scope="public-book", exempt_when=lambda: not _is_public_booking()),
        ],
        headers_enabled=True,
        swallow_errors=True,
        key_prefix="upz-rl",
        strategy="moving-window",
    )


def _standard_headers(response):
    """RateLimit-* beside Flask-Limiter's X-RateLimit-* (whose reset is an epoch time, not seconds)."""
    limit = response.headers.get("X-RateLimit-Limit")
    if limit is None:
        return response
    response.headers["RateLimit-Limit"] = limit
    response.headers["RateLimit-Remaining"] = response.headers.get("X-RateLimit-Remaining", "0")
    try:
        reset = max(0, math.ceil(float(response.headers.get("X-RateLimit-Reset", "0")) - time.time()))
    except ValueError:
        reset = 0
    response.headers["RateLimit-Reset"] = str(reset)
    return response


def check_plans(config) -> None:
    """Refuse to start with a plan table that is not JSON, names an unreadable limit or lacks the default."""
    from limits import parse_many

    try:
        plans = rate_plans(config)
    except (ValueError, TypeError) as exc:
        raise RuntimeError(f"API_RATE_PLANS is not a JSON object: {exc}") from None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in plans.items()):
        raise RuntimeError('API_RATE_PLANS is a JSON object of plan name -> limit, e.g. {"standard": "600/minute"}')
    for name, limit in plans.items():
        if not name or len(name) > 32:
            raise RuntimeError(f"API_RATE_PLANS: plan names have 1 to 32 characters ({name!r})")
        try:
            parse_many(limit)
        except ValueError:
            raise RuntimeError(f"API_RATE_PLANS: the limit of plan {name!r} is not a rate limit string ({limit!r})") from None
    default = config.get("API_RATE_PLAN_DEFAULT") or "standard"
    # An empty API_RATE_LIMIT_PER_KEY (no "standard") kept keys without a plan unlimited per key before plans; still allowed.
    if default not in plans and not (default == "standard" and not config.get("API_RATE_LIMIT_PER_KEY")):
        raise RuntimeError(f"API_RATE_PLAN_DEFAULT {default!r} is not a plan of API_RATE_PLANS ({', '.join(plans)})")


def configure_storage(app: Flask) -> None:
    """The limiters' storage (Redis, shared by every process and node). Call before
    Flask-AppBuilder's init_app: its own limiter (sign-in pages) reads the same settings
    and would otherwise count in memory, per process."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", _storage_uri(app.config.get("REDIS_URL"), app.config.get("REDIS_SENTINELS"),
                                                                app.config.get("REDIS_SENTINEL_MASTER")))
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 2})


def install(app: Flask) -> None:
    """Call after `resolve_request_scope` is registered: the key checks need the authenticated key."""
    check_plans(app.config)
    configure_storage(app)
    # after_request hooks run last-registered first: ours must run after the limiter's.
    app.after_request(_standard_headers)
    limiter = make_limiter()
    limiter.init_app(app)
    app.extensions["upzento_limiter"] = limiter

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        # Flask-Limiter's after_request adds Retry-After and the X-RateLimit-* headers to this answer.
        body = {"error": {"code": "rate_limited",
                          "message": f"too many requests ({exc.description}); try again later",
                          "field": None}}
        return jsonify(body), 429
