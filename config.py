"""Configuration: defaults here, every value overridable by an environment variable.

The README's configuration table lists the same names; keep the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def database_url(value: str | None) -> str | None:
    """A PostgreSQL URL with the driver the app uses (psycopg 3).

    Hosting platforms hand out `postgres://...` or `postgresql://...`; SQLAlchemy would
    read both as psycopg2 (or not at all). A URL that names its driver is kept as it is.
    """
    if not value:
        return value
    for plain in ("postgresql://", "postgres://"):
        if value.startswith(plain):
            value = "postgresql+psycopg://" + value[len(plain):]
            break
    return _multi_host(value)


def _multi_host(url: str) -> str:
    """libpq's multi-host form (`//u@a:5432,b:5433/db`) in the shape SQLAlchemy parses (`?host=a:5432&host=b:5433`).

    Several hosts get `target_session_attrs=read-write` (unless the URL sets it), so that
    every new connection finds the current primary after a failover.
    """
    from urllib.parse import parse_qsl, urlencode

    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, hostlist = authority.rpartition("@")
    path, _, query = tail.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    hosts = [h for h in hostlist.split(",") if h] if "," in hostlist else []
    named = [v for k, v in params if k == "host"]
    if not hosts and not (len(named) > 1 or any("," in v for v in named)):
        return url
    if hosts:
        params = [(k, v) for k, v in params if k != "host"] + [("host", h) for h in hosts]
    if not any(k == "target_session_attrs" for k, _ in params):
        params.append(("target_session_attrs", "read-write"))
    head = f"{userinfo}{at}" if at else ""
    return f"{scheme}://{head}/{path}?" + urlencode(params, safe=":/,")


def _int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


DEV_SECRET_KEY = "dev-only-change-me"


class Config:
    """Values read once at import; tests pass overrides to create_app()."""

    # --- core -----------------------------------------------------------
    # "development" relaxes the start-up checks (app.settings_check); anything else is production.
    ENV = (_env("UPZENTO_ENV", "production") or "production").strip().lower()
    # Outside development a missing or default SECRET_KEY refuses to start.
    SECRET_KEY = _env("SECRET_KEY", DEV_SECRET_KEY)
    # Fernet keys (comma-separated; the first encrypts, all decrypt) for stored credentials
    # (app.crypto). Required outside development.
    CREDENTIALS_KEYS = _env("CREDENTIALS_KEYS")
    DATA_DIR = Path(_env("DATA_DIR", str(BASE_DIR / "instance")))
    # None means "start the embedded server" (run.py) or fail (create_app).
    # `postgresql://` and `postgres://` are accepted: database_url() picks the psycopg driver.
    SQLALCHEMY_DATABASE_URI = database_url(_env("DATABASE_URL"))
    # Read-only work that may be a little stale (availability reads, dashboards) goes to this
    # streaming replica while it lags less than REPLICA_MAX_LAG_SECONDS; else to the primary.
    DATABASE_REPLICA_URL = database_url(_env("DATABASE_REPLICA_URL"))
    REPLICA_MAX_LAG_SECONDS = float(_env("REPLICA_MAX_LAG_SECONDS", "5"))
    # The agency rollup (owner's home, /api/v1/analytics/agency) may be this many seconds old
    # (one copy per process, per set of businesses and date range); 0 reads it fresh every time.
    AGENCY_ROLLUP_CACHE_SECONDS = float(_env("AGENCY_ROLLUP_CACHE_SECONDS", "30"))
    # A direct (not pooled) connection for the outbox relay's LISTEN: LISTEN/NOTIFY does not
    # survive a transaction pooler. Defaults to DATABASE_URL.
    DATABASE_DIRECT_URL = database_url(_env("DATABASE_DIRECT_URL"))
    # "transaction" when DATABASE_URL points at PgBouncer in transaction mode: no prepared statements.
    DATABASE_POOLER = (_env("DATABASE_POOLER", "") or "").strip().lower()
    REDIS_URL = _env("REDIS_URL")
    # Redis Sentinel: "host:port,host:port" and the master's name; used instead of REDIS_URL when set.
    REDIS_SENTINELS = _env("REDIS_SENTINELS")
    REDIS_SENTINEL_MASTER = _env("REDIS_SENTINEL_MASTER", "upzento")
    # /health/ready checks the schema versions at most this often (seconds).
    HEALTH_MIGRATIONS_CACHE_SECONDS = float(_env("HEALTH_MIGRATIONS_CACHE_SECONDS", "30"))
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS = {
        # Not on every checkout: app.dbpool pings connections idle >= DB_IDLE_PING_SECONDS.
        "pool_pre_ping": False,
        # Statement parameters (customer names, e-mails, phones) stay out of error messages and logs.
        "hide_parameters": True,
        "pool_size": _int("DB_POOL_SIZE", 10),
        "max_overflow": _int("DB_MAX_OVERFLOW", 20),
    }
    DB_IDLE_PING_SECONDS = float(_env("DB_IDLE_PING_SECONDS", "10"))
    HOST = _env("HOST", "127.0.0.1")
    PORT = _int("PORT", 5000)
    # Public base URL used in emails, manage links and the embed snippet. Links are built
    # from it only, never from the request's Host header. Required outside development
    # (there it defaults to http://HOST:PORT).
    PUBLIC_URL = _env("PUBLIC_URL")
    # Custom domains of businesses (app.services.custom_domains): the verification fetch's
    # scheme (http only for tests), its timeout, and a test-only map of domains to loopback
    # addresses, {"book.salon.test": "127.0.0.1:8081"} as JSON (curl --resolve style).
    CUSTOM_DOMAIN_VERIFY_SCHEME = _env("CUSTOM_DOMAIN_VERIFY_SCHEME", "https")
    CUSTOM_DOMAIN_VERIFY_TIMEOUT = float(_env("CUSTOM_DOMAIN_VERIFY_TIMEOUT", "5"))
    CUSTOM_DOMAIN_RESOLVE = _env("CUSTOM_DOMAIN_RESOLVE")
    WEB_WORKERS = _int("WEB_WORKERS", 2)
    WEB_THREADS = _int("WEB_THREADS", 4)

    # --- Flask-AppBuilder -------------------------------------------------
    APP_NAME = "Upzento Appointments"
    FAB_SECURITY_MANAGER_CLASS = "app.security.UpzentoSecurityManager"
    # Signed-in users land on their dashboard (app/views/dashboards.py).
    FAB_INDEX_VIEW = "app.views.dashboards.HomeIndexView"
    # Tables and permissions are created by `flask tenants migrate`, never as a
    # side effect of importing the app (a fresh database would fail otherwise).
    FAB_CREATE_DB = False
    FAB_UPDATE_PERMS = False
    FAB_ADD_SECURITY_VIEWS = True
    FAB_API_SWAGGER_UI = True
    # Per-tenant API keys (app.security): FAB hands `Bearer upz_...` to our validate_api_key.
    FAB_API_KEY_ENABLED = True
    FAB_API_KEY_PREFIXES = ["upz_"]
    FAB_OPENAPI_SERVERS = None
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Platform Admin"
    AUTH_ROLE_PUBLIC = "Public"
    AUTH_USER_REGISTRATION = False
    WTF_CSRF_ENABLED = _bool("WTF_CSRF_ENABLED", True)
    WTF_CSRF_TIME_LIMIT = None
    BABEL_DEFAULT_LOCALE = "en"
    LANGUAGES = {
        "en": {"flag": "gb", "name": "English"},
        "de": {"flag": "de", "name": "Deutsch"},
        "fr": {"flag": "fr", "name": "Français"},
        "es": {"flag": "es", "name": "Español"},
    }
    # Request bodies: 16 MB in all (setup import uploads), 64 KB for public JSON (booking API, widget, portal).
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 16 * 1024 * 1024)
    PUBLIC_MAX_CONTENT_LENGTH = _int("PUBLIC_MAX_CONTENT_LENGTH", 64 * 1024)
    # Number of reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted.
    TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
    PREFERRED_URL_SCHEME = _env("PREFERRED_URL_SCHEME", "http")
    # Sign-in / reset throttling (app.throttle): free attempts, then a doubling lock.
    THROTTLE_LOGIN_PER_ACCOUNT = _int("THROTTLE_LOGIN_PER_ACCOUNT", 5)
    THROTTLE_LOGIN_PER_IP = _int("THROTTLE_LOGIN_PER_IP", 30)
    THROTTLE_FORGOT_PER_ACCOUNT = _int("THROTTLE_FORGOT_PER_ACCOUNT", 3)
    THROTTLE_FORGOT_PER_IP = _int("THROTTLE_FORGOT_PER_IP", 10)
    THROTTLE_WINDOW_SECONDS = _int("THROTTLE_WINDOW_SECONDS", 900)
    THROTTLE_BASE_SECONDS = _int("THROTTLE_BASE_SECONDS", 2)
    THROTTLE_MAX_SECONDS = _int("THROTTLE_MAX_SECONDS", 900)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = 60 * 60 * 12

    # --- booking ----------------------------------------------------------
    AVAILABILITY_MAX_RANGE_DAYS = 62

    # --- API rate limits (app/ratelimit.py; Flask-Limiter, counted in Redis) --
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    API_RATE_LIMIT_PER_KEY = _env("API_RATE_LIMIT_PER_KEY", "600/minute;20/second")
    # Rate-limit plans of API keys (JSON name -> Flask-Limiter string); a key without a plan has the default's.
    # "standard" is API_RATE_LIMIT_PER_KEY (the one figure of earlier versions) unless this names it too.
    API_RATE_PLANS = _env("API_RATE_PLANS", '{"high": "3000/minute;100/second"}')
    API_RATE_PLAN_DEFAULT = _env("API_RATE_PLAN_DEFAULT", "standard")
    API_RATE_LIMIT_PER_IP = _env("API_RATE_LIMIT_PER_IP", "1200/minute")
    # Per business over all its public API callers (fairness between businesses); JSON
    # {"slug": "6000/minute"} gives a business its own (its plan's) figure.
    PUBLIC_RATE_LIMIT_PER_TENANT = _env("PUBLIC_RATE_LIMIT_PER_TENANT", "3000/minute")
    PUBLIC_RATE_LIMIT_TENANT_OVERRIDES = _env("PUBLIC_RATE_LIMIT_TENANT_OVERRIDES", "{}")
    PUBLIC_RATE_LIMIT_PER_IP = _env("PUBLIC_RATE_LIMIT_PER_IP", "600/minute")
    PUBLIC_BOOKING_RATE_LIMIT_PER_IP = _env("PUBLIC_BOOKING_RATE_LIMIT_PER_IP", "30/minute")
    IDEMPOTENCY_TTL_HOURS = 24
    # Long RQ jobs (auditor reports) one business may have queued or running at once (app/fairqueue.py).
    LONG_JOBS_PER_TENANT = _int("LONG_JOBS_PER_TENANT", 1)

    # --- mail / SMS (external calls always go through a configurable URL) --
    SMTP_HOST = _env("SMTP_HOST")
    SMTP_PORT = _int("SMTP_PORT", 25)
    SMTP_USER = _env("SMTP_USER")
    SMTP_PASSWORD = _env("SMTP_PASSWORD")
    SMTP_TLS = _bool("SMTP_TLS", False)
    MAIL_FROM = _env("MAIL_FROM", "bookings@upzento.local")
    SMS_API_BASE_URL = _env("SMS_API_BASE_URL")
    SMS_ACCOUNT_SID = _env("SMS_ACCOUNT_SID")
    SMS_AUTH_TOKEN = _env("SMS_AUTH_TOKEN")
    SMS_FROM = _env("SMS_FROM")
    # Development only: accept SMS callbacks without a signature when SMS_AUTH_TOKEN is unset.
    SMS_HOOKS_ALLOW_UNSIGNED = _bool("SMS_HOOKS_ALLOW_UNSIGNED", False)

    # --- calendar sync (every provider URL configurable: tests and sovereign clouds) --
    GOOGLE_AUTH_URL = _env("GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/v2/auth")
    GOOGLE_OAUTH_URL = _env("GOOGLE_OAUTH_URL", "https://oauth2.googleapis.com")  # + /token, /revoke
    GOOGLE_API_BASE_URL = _env("GOOGLE_API_BASE_URL", "https://www.googleapis.com/calendar/v3")
    GOOGLE_CLIENT_ID = _env("GOOGLE_CLIENT_ID")
    GOOGLE_CLIENT_SECRET = _env("GOOGLE_CLIENT_SECRET")
    MS_LOGIN_BASE_URL = _env("MS_LOGIN_BASE_URL", "https://login.microsoftonline.com")
    MS_GRAPH_BASE_URL = _env("MS_GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0")
    MS_TENANT = _env("MS_TENANT", "common")
    MS_CLIENT_ID = _env("MS_CLIENT_ID")
    MS_CLIENT_SECRET = _env("MS_CLIENT_SECRET")
    CALENDAR_WINDOW_DAYS = _int("CALENDAR_WINDOW_DAYS", 180)
    CALENDAR_WINDOW_PAST_DAYS = _int("CALENDAR_WINDOW_PAST_DAYS", 1)
    CALENDAR_POLL_MINUTES = float(_env("CALENDAR_POLL_MINUTES", "5"))
    CALENDAR_RETRY_BASE = float(_env("CALENDAR_RETRY_BASE", "5"))
    CALENDAR_RETRY_CAP = float(_env("CALENDAR_RETRY_CAP", "900"))
    CALENDAR_MAX_ATTEMPTS = _int("CALENDAR_MAX_ATTEMPTS", 8)
    CALENDAR_HTTP_TIMEOUT = float(_env("CALENDAR_HTTP_TIMEOUT", "20"))

    # --- online meetings (platform credentials; an agency or business may override them) --
    ZOOM_ACCOUNT_ID = _env("ZOOM_ACCOUNT_ID")
    ZOOM_CLIENT_ID = _env("ZOOM_CLIENT_ID")
    ZOOM_CLIENT_SECRET = _env("ZOOM_CLIENT_SECRET")
    ZOOM_OAUTH_URL = _env("ZOOM_OAUTH_URL", "https://zoom.us/oauth/token")
    ZOOM_API_BASE_URL = _env("ZOOM_API_BASE_URL", "https://api.zoom.us/v2")
    ZOOM_WEBHOOK_SECRET_TOKEN = _env("ZOOM_WEBHOOK_SECRET_TOKEN")
    # Teams meetings use the MS_CLIENT_ID/SECRET app with application permissions in this directory.
    MS_TEAMS_TENANT_ID = _env("MS_TEAMS_TENANT_ID")
    # How long a confirmation for an online service waits for its meeting link at most.
    MEETING_HOLD_SECONDS = _int("MEETING_HOLD_SECONDS", 60)

    # --- outgoing webhooks ----------------------------------------------------
    WEBHOOK_ALLOW_PRIVATE = _bool("WEBHOOK_ALLOW_PRIVATE", False)  # tests and closed networks only

    # --- observability ------------------------------------------------------
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")
    LOG_FORMAT = _env("LOG_FORMAT", "json")  # json | text
    METRICS_ENABLED = _bool("METRICS_ENABLED", True)
    METRICS_TOKEN = _env("METRICS_TOKEN")  # when set, /metrics wants "Authorization: Bearer <token>"
    SENTRY_DSN = _env("SENTRY_DSN")
    SENTRY_TRACES_SAMPLE_RATE = _env("SENTRY_TRACES_SAMPLE_RATE", "0")
    OTEL_EXPORTER_OTLP_ENDPOINT = _env("OTEL_EXPORTER_OTLP_ENDPOINT")

    # --- jobs ---------------------------------------------------------------
    RQ_QUEUES = ("default", "notifications", "integrations")
    OUTBOX_BATCH = _int("OUTBOX_BATCH", 200)
    # Account mail relayed this long ago and still unsent (its job lost with Redis) is enqueued again.
    MAIL_REQUEUE_SECONDS = _int("MAIL_REQUEUE_SECONDS", 600)
    # A booking event relayed this long ago and not yet handled (its job lost with Redis) is relayed again.
    OUTBOX_REQUEUE_SECONDS = _int("OUTBOX_REQUEUE_SECONDS", 300)
