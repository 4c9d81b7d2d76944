"""Two-way calendar sync: connections, push (ours → theirs), pull (theirs → busy blocks), health.

Rules that keep the two sides from looping:
- each appointment has one deterministic identity per connection (Google event id
  from the appointment id, Graph `transactionId`, CalDAV UID + resource name);
- a push writes only when the rendered content differs from what we last wrote
  there (`calendar_event_link.content_hash`), so re-running a push is free;
- a pull recognises our own events (by link or by our mark) and ignores the echo of
  our last write (same etag / changeKey); applying an outside move or delete of our
  event updates the link to match, so the resulting outbox event pushes nothing back;
- foreign events become busy blocks, never appointments.

Services flush and never commit; provider calls happen inside the caller's unit of
work (a job or a CLI command), one connection at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, func, or_, select, text
from sqlalchemy.orm import Session

from app import crypto
from app.calendars.base import (
    AuthFailed,
    CalendarInfo,
    Gone,
    NotFound,
    OurEvent,
    ProviderError,
    PulledEvent,
    Written,
)
from app.errors import SlotUnavailable
from app.models import tenant as m
from app.models.calendar_sync import (
    STATUS_ACTIVE,
    STATUS_DISCONNECTED,
    STATUS_RECONNECT,
    CalendarConnection,
    CalendarEventLink,
    CalendarSettings,
)
from app.services import meetings

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
ACTOR = "calendar-sync"


class CalendarError(ValueError):
    """A refused calendar action (bad input, unknown calendar); `field` names the form field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class SyncConfig:
    """The numbers a sync pass uses (from the app config)."""

    window_past_days: int = 1
    window_days: int = 180
    poll_minutes: float = 5
    retry_base: float = 5
    retry_cap: float = 900
    max_attempts: int = 8
    google_api: str = "https://www.googleapis.com/calendar/v3"
    google_oauth: str = "https://oauth2.googleapis.com"
    google_auth: str = "https://accounts.google.com/o/oauth2/v2/auth"
    ms_login: str = "https://login.microsoftonline.com"
    ms_graph: str = "https://graph.microsoft.com/v1.0"
    ms_tenant: str = "common"
    google_client_id: str | None = None
    google_client_secret: str | None = None
    ms_client_id: str | None = None
    ms_client_secret: str | None = None
    public_url: str = ""
    http_timeout: float = 20

    @classmethod
    def from_config(cls, cfg) -> "SyncConfig":
        def num(name, default):
            value = cfg.get(name)
            return type(default)(value) if value not in (None, "") else default

        return cls(
            window_past_days=num("CALENDAR_WINDOW_PAST_DAYS", 1),
            window_days=num("CALENDAR_WINDOW_DAYS", 180),
            poll_minutes=num("CALENDAR_POLL_MINUTES", 5.0),
            retry_base=num("CALENDAR_RETRY_BASE", 5.0),
            retry_cap=num("CALENDAR_RETRY_CAP", 900.0),
            max_attempts=num("CALENDAR_MAX_ATTEMPTS", 8),
            google_api=(cfg.get("GOOGLE_API_BASE_URL") or cls.google_api).rstrip("/"),
            google_oauth=(cfg.get("GOOGLE_OAUTH_URL") or cls.google_oauth).rstrip("/"),
            google_auth=cfg.get("GOOGLE_AUTH_URL") or cls.google_auth,
            ms_login=(cfg.get("MS_LOGIN_BASE_URL") or cls.ms_login).rstrip("/"),
            ms_graph=(cfg.get("MS_GRAPH_BASE_URL") or cls.ms_graph).rstrip("/"),
            ms_tenant=cfg.get("MS_TENANT") or "common",
            google_client_id=cfg.get("GOOGLE_CLIENT_ID"),
            google_client_secret=cfg.get("GOOGLE_CLIENT_SECRET"),
            ms_client_id=cfg.get("MS_CLIENT_ID"),
            ms_client_secret=cfg.get("MS_CLIENT_SECRET"),
            public_url=(cfg.get("PUBLIC_URL") or "").rstrip("/"),
            http_timeout=num("CALENDAR_HTTP_TIMEOUT", 20.0),
        )

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        return now - dt.timedelta(days=self.window_past_days), now + dt.timedelta(days=self.window_days)


# --------------------------------------------------------------------------- settings, secrets

def settings(session: Session) -> CalendarSettings:
    """The business's calendar settings (the row is made on first use)."""
    row = session.get(CalendarSettings, 1)
    if row is None:
        session.execute(_settings_insert())
        row = session.get(CalendarSettings, 1)
    return row


def _settings_insert():
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(CalendarSettings).values(
        id=1, external_changes="reflect", privacy="details",
        title_template=CalendarSettings.title_template.default.arg,
        description_template=CalendarSettings.description_template.default.arg,
        failing_alert_minutes=30).on_conflict_do_nothing()


def secret_of(conn: CalendarConnection) -> dict:
    """The decrypted credentials of a connection ({} when none)."""
    return json.loads(crypto.decrypt(conn.secret_enc)) if conn.secret_enc else {}


def store_secret(conn: CalendarConnection, secret: dict) -> None:
    conn.secret_enc = crypto.encrypt(json.dumps(secret))


# --------------------------------------------------------------------------- OAuth apps (platform / agency)

APP_KINDS = {"google": "calendar_google", "microsoft": "calendar_microsoft"}  # integration_credential.provider


@dataclass(frozen=True)
class OAuthApp:
    """The Google / Microsoft app a connection signs in with: the platform's (config) or its agency's own."""

    provider: str
    source: str  # "platform" or "agency"
    client_id: str | None
    client_secret: str | None
    ms_tenant: str | None = None

    def config(self, cfg: SyncConfig) -> SyncConfig:
        """`cfg` with this app's client (what app.calendars.oauth reads)."""
        from dataclasses import replace

        if self.provider == "google":
            return replace(cfg, google_client_id=self.client_id, google_client_secret=self.client_secret)
        return replace(cfg, ms_client_id=self.client_id, ms_client_secret=self.client_secret,
                       ms_tenant=self.ms_tenant or cfg.ms_tenant)


def _check_app_provider(provider: str) -> None:
    if provider not in APP_KINDS:
        raise CalendarError("the provider must be google or microsoft", "provider")


def platform_app(provider: str, cfg: SyncConfig) -> OAuthApp:
    if provider == "google":
        return OAuthApp("google", "platform", cfg.google_client_id, cfg.google_client_secret)
    return OAuthApp("microsoft", "platform", cfg.ms_client_id, cfg.ms_client_secret, cfg.ms_tenant)


def agency_app(session: Session, provider: str, agency_id: int | None) -> OAuthApp | None:
    """The agency's own app for `provider` (secret decrypted), or None."""
    from app.models.webhooks import IntegrationCredential

    _check_app_provider(provider)
    if agency_id is None:
        return None
    row = session.scalar(select(IntegrationCredential).where(IntegrationCredential.agency_id == agency_id,
                                                             IntegrationCredential.provider == APP_KINDS[provider]))
    if row is None:
        return None
    data = json.loads(crypto.decrypt(row.data_enc))
    return OAuthApp(provider, "agency", data.get("client_id"), data.get("client_secret"), data.get("ms_tenant"))


def current_app_for(session: Session, provider: str, cfg: SyncConfig, agency_id: int | None) -> OAuthApp:
    """The app new connections of this agency's businesses use: the agency's own when set, else the platform's."""
    return agency_app(session, provider, agency_id) or platform_app(provider, cfg)


def agency_of(session: Session) -> int | None:
    """The agency of the business whose schema this tenant session is routed to."""
    from app.models.public import Tenant

    from app.tenancy import plain_session, session_schema

    schema = session_schema(session)
    info = plain_session(session).info
    cached = info.get("calendar_agency")
    if cached is not None and cached[0] == schema:
        return cached[1]
    agency_id = session.scalar(select(Tenant.agency_id).where(Tenant.schema_name == schema)) if schema else None
    info["calendar_agency"] = (schema, agency_id)
    return agency_id


def issuing_app(session: Session, conn: CalendarConnection, cfg: SyncConfig) -> OAuthApp:
    """The app that issued `conn`'s tokens, the only one they can be refreshed with.

    Platform-issued connections (and those made before apps were recorded) use the platform
    app from config. Agency-issued ones use the agency's stored app while its client id is
    the one recorded (a new secret for the same client is picked up); another client id, or
    no agency app any more, raises AuthFailed: the connection needs a reconnect.
    """
    if conn.oauth_app != "agency":
        app = platform_app(conn.provider, cfg)
        if conn.oauth_client_id and app.client_id and app.client_id != conn.oauth_client_id:
            raise AuthFailed(f"{conn.provider}: the platform's app changed (tokens came from client "
                             f"{conn.oauth_client_id}); reconnect the calendar", 401)
        return app
    app = agency_app(session, conn.provider, agency_of(session))
    if app is None or app.client_id != conn.oauth_client_id:
        now_using = f"client {app.client_id}" if app else "no app of its own"
        raise AuthFailed(f"{conn.provider}: the agency's app changed (tokens came from client {conn.oauth_client_id}, "
                         f"the agency now has {now_using}); reconnect the calendar", 401)
    return app


def check_oauth_apps(session: Session, cfg: SyncConfig, now: dt.datetime) -> int:
    """Set every active Google / Microsoft connection whose issuing app is gone to needs-reconnect (people told).

    Run for each business of an agency right after its app changed, so nobody waits for
    the next poll to learn it; returns how many connections it marked.
    """
    marked = 0
    for conn in session.scalars(select(CalendarConnection).where(
            CalendarConnection.status == STATUS_ACTIVE, CalendarConnection.provider.in_(tuple(APP_KINDS)))):
        try:
            issuing_app(session, conn, cfg)
        except AuthFailed as exc:
            mark_reconnect(session, conn, str(exc), now)
            marked += 1
    session.flush()
    return marked


def set_agency_app(session: Session, agency_id: int, provider: str, *, client_id: str, client_secret: str | None,
                   ms_tenant: str | None = None) -> dict:
    """Store (or replace) an agency's own Google / Microsoft app; the secret is encrypted (app.crypto).

    An empty secret keeps the stored one, but only for the same client id. Connections
    whose tokens came from another client id need a reconnect afterwards (issuing_app).
    """
    from app.models.webhooks import IntegrationCredential

    _check_app_provider(provider)
    client_id = (client_id or "").strip()
    if not client_id or len(client_id) > 300 or any(c.isspace() for c in client_id):
        raise CalendarError("a client id is required (no spaces, at most 300 characters)", "client_id")
    ms_tenant = (ms_tenant or "").strip() or None
    if ms_tenant is not None and (provider != "microsoft" or not all(c.isalnum() or c in "-." for c in ms_tenant)):
        raise CalendarError("a directory (tenant) applies to Microsoft apps only: a tenant id or domain", "ms_tenant")
    current = agency_app(session, provider, agency_id)
    secret = (client_secret or "").strip()
    if not secret:
        if current is None or current.client_id != client_id:
            raise CalendarError("a client secret is required for a new client id", "client_secret")
        secret = current.client_secret or ""
    row = session.scalar(select(IntegrationCredential).where(IntegrationCredential.agency_id == agency_id,
                                                             IntegrationCredential.provider == APP_KINDS[provider]))
    if row is None:
        row = IntegrationCredential(agency_id=agency_id, provider=APP_KINDS[provider], data_enc="")
        session.add(row)
    data = {"client_id": client_id, "client_secret": secret}
    if ms_tenant:
        data["ms_tenant"] = ms_tenant
    row.data_enc = crypto.encrypt(json.dumps(data, sort_keys=True))
    session.flush()
    return describe_agency_app(session, agency_id, provider)


def remove_agency_app(session: Session, agency_id: int, provider: str) -> bool:
    """Forget the agency's app (its businesses' new connections use the platform's); False when none was set."""
    from app.models.webhooks import IntegrationCredential

    _check_app_provider(provider)
    row = session.scalar(select(IntegrationCredential).where(IntegrationCredential.agency_id == agency_id,
                                                             IntegrationCredential.provider == APP_KINDS[provider]))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def describe_agency_app(session: Session, agency_id: int, provider: str) -> dict:
    """What the admin and the CLI show of an agency's app: never the secret."""
    app = agency_app(session, provider, agency_id)
    if app is None:
        return {"provider": provider, "source": "platform"}
    out = {"provider": provider, "source": "agency", "client_id": app.client_id, "client_secret": "stored, encrypted"}
    if app.ms_tenant:
        out["ms_tenant"] = app.ms_tenant
    return out


# --------------------------------------------------------------------------- clients

def client_for(session: Session, conn: CalendarConnection, cfg: SyncConfig, *, timezone: str | None = None):
    """A provider client for `conn` (OAuth tokens refreshed first when they are about to expire)."""
    secret = secret_of(conn)
    zone = timezone or owner_timezone(session, conn)
    if conn.provider == "caldav":
        from app.calendars.caldav_client import CalDavClient

        return CalDavClient(conn.url, conn.account or "", secret.get("password", ""), timezone=zone,
                            timeout=int(cfg.http_timeout))
    from app.calendars import oauth

    def save(tokens: dict) -> None:
        store_secret(conn, {**secret_of(conn), **tokens})
        conn.token_expires_at = oauth.expiry_of(tokens)

    if conn.provider in APP_KINDS:
        cfg = issuing_app(session, conn, cfg).config(cfg)
    if conn.provider == "google":
        from app.calendars.google import GoogleClient

        return GoogleClient(cfg.google_api, oauth.google_tokens(cfg, secret, save), timezone=zone,
                            timeout=cfg.http_timeout)
    if conn.provider == "microsoft":
        from app.calendars.graph import GraphClient

        return GraphClient(cfg.ms_graph, oauth.microsoft_tokens(cfg, secret, save), timezone=zone,
                           timeout=cfg.http_timeout)
    raise CalendarError(f"unknown provider {conn.provider!r}", "provider")


def owner_timezone(session: Session, conn: CalendarConnection) -> str:
    """The zone all-day and floating foreign events are read in: the owner's location."""
    if conn.owner_kind == "location" and conn.location_id:
        loc = session.get(m.Location, conn.location_id)
        if loc:
            return loc.timezone
    if conn.owner_kind == "staff" and conn.staff_id:
        tz = session.scalar(select(m.Location.timezone).join(m.StaffHours, m.StaffHours.location_id == m.Location.id)
                            .where(m.StaffHours.staff_id == conn.staff_id).limit(1))
        if tz:
            return tz
    return session.scalar(select(m.Location.timezone).order_by(m.Location.id).limit(1)) or "UTC"


# --------------------------------------------------------------------------- connecting

def _owner(session: Session, owner_kind: str, staff_id: int | None, location_id: int | None) -> dict:
    if owner_kind == "staff":
        if staff_id is None or session.get(m.Staff, staff_id) is None:
            raise CalendarError("unknown staff member", "staff")
        return {"owner_kind": "staff", "staff_id": staff_id, "location_id": None}
    if owner_kind == "location":
        if location_id is None or session.get(m.Location, location_id) is None:
            raise CalendarError("unknown location", "location")
        return {"owner_kind": "location", "staff_id": None, "location_id": location_id}
    if owner_kind == "business":
        return {"owner_kind": "business", "staff_id": None, "location_id": None}
    raise CalendarError("owner must be staff, location or business", "owner")


def choose_calendars(conn: CalendarConnection, available: list[CalendarInfo], busy: list[str] | None,
                     target: str | None) -> None:
    """Set the busy calendars and the target calendar by id or name (first calendar by default)."""
    if not available:
        raise CalendarError("the account has no calendar", "target_calendar")

    def find(wanted: str, field_name: str) -> CalendarInfo:
        for cal in available:
            if wanted in (cal.id, cal.name):
                return cal
        names = ", ".join(c.name for c in available)
        raise CalendarError(f"no calendar {wanted!r} in this account (has: {names})", field_name)

    primary = next((c for c in available if c.primary), available[0])
    tgt = find(target, "target_calendar") if target else primary
    conn.target_calendar, conn.target_calendar_name = tgt.id, tgt.name
    chosen = [find(b, "busy_calendars") for b in busy] if busy else [tgt]
    conn.busy_calendars = [{"id": c.id, "name": c.name} for c in chosen]


def connect_caldav(session: Session, *, owner_kind: str, staff_id: int | None = None, location_id: int | None = None,
                   url: str, username: str, password: str, busy: list[str] | None = None,
                   target: str | None = None, actor: str = ACTOR, cfg: SyncConfig | None = None,
                   now: dt.datetime | None = None) -> CalendarConnection:
    """Connect a CalDAV account (the server is asked for its calendars first: wrong URL or password fail here)."""
    cfg = cfg or SyncConfig()
    url = (url or "").strip()
    if not url.startswith(("http://", "https://")):
        raise CalendarError("the CalDAV URL must start with http:// or https://", "url")
    if not username:
        raise CalendarError("a user name is required", "username")
    if not password:
        raise CalendarError("a password is required", "password")
    owner = _owner(session, owner_kind, staff_id, location_id)
    available = _caldav_calendars(url, username, password, cfg)
    conn = CalendarConnection(provider="caldav", url=url, account=username, status=STATUS_ACTIVE,
                              busy_calendars=[], sync_state={}, channel={}, include_tentative=True,
                              created_by=actor, **owner)
    choose_calendars(conn, available, busy, target)
    store_secret(conn, {"password": password})
    conn.next_pull_at = now or dt.datetime.now(UTC)
    session.add(conn)
    session.flush()
    return conn


def _caldav_calendars(url: str, username: str, password: str, cfg: SyncConfig) -> list[CalendarInfo]:
    """The server's calendars with these credentials (a refusal or an unreadable server is a form error)."""
    from app.calendars.caldav_client import CalDavClient

    try:
        return CalDavClient(url, username, password, timeout=int(cfg.http_timeout)).calendars()
    except AuthFailed:
        raise CalendarError("the CalDAV server refused this user name and password", "password")
    except ProviderError as exc:
        raise CalendarError(f"the CalDAV server could not be read: {exc}", "url")


def reconnect_caldav(session: Session, conn: CalendarConnection, *, url: str | None = None,
                     username: str | None = None, password: str | None = None, cfg: SyncConfig | None = None,
                     now: dt.datetime | None = None) -> CalendarConnection:
    """Change the URL / user / app password of a CalDAV connection in place (empty values keep the stored ones).

    The server is asked for its calendars with the new values first; only when that works
    is anything stored, and the connection is active again (a `needs_reconnect` one too).
    The busy and target calendars are found again by id, else by name; our events follow
    a target calendar that moved (they are written again there on the next push).
    """
    if conn.provider != "caldav":
        raise CalendarError("only a CalDAV connection takes a URL and password; reconnect Google / Microsoft "
                            "through their sign-in", "provider")
    if conn.status == STATUS_DISCONNECTED:
        raise CalendarError("this connection was disconnected; connect the calendar again", None)
    cfg = cfg or SyncConfig()
    now = now or dt.datetime.now(UTC)
    new_url = (url or "").strip() or conn.url or ""
    if not new_url.startswith(("http://", "https://")):
        raise CalendarError("the CalDAV URL must start with http:// or https://", "url")
    new_user = (username or "").strip() or conn.account or ""
    new_password = password or secret_of(conn).get("password", "")
    if not new_password:
        raise CalendarError("a password is required", "password")
    available = _caldav_calendars(new_url, new_user, new_password, cfg)
    old_target = conn.target_calendar

    def again(cal_id: str | None, name: str | None) -> str | None:
        for c in available:
            if c.id == cal_id:
                return c.id
        for c in available:
            if name and c.name == name:
                return c.id
        return None

    target = again(conn.target_calendar, conn.target_calendar_name)
    busy = [b for b in (again(c.get("id"), c.get("name")) for c in conn.busy_calendars or []) if b]
    choose_calendars(conn, available, busy or None, target)
    conn.url, conn.account = new_url, new_user
    store_secret(conn, {**secret_of(conn), "password": new_password})
    if conn.target_calendar != old_target:
        # Our events live in a calendar we no longer reach: write them again into the new target.
        for link in session.scalars(select(CalendarEventLink).where(CalendarEventLink.connection_id == conn.id,
                                                                    CalendarEventLink.deleted.is_(False))):
            link.calendar_id, link.external_id, link.etag, link.content_hash = conn.target_calendar, None, None, None
            link.push_status, link.next_attempt_at, link.push_attempts = "pending", now, 0
    keep = {f"cal:{conn.id}:{_cal_tag(c['id'])}" for c in conn.busy_calendars}
    session.execute(delete(m.BusyBlock).where(m.BusyBlock.connection_id == conn.id, m.BusyBlock.source.not_in(keep)))
    conn.status = STATUS_ACTIVE
    conn.failing_since = conn.alerted_at = conn.last_error = None
    conn.sync_state = {}  # read the busy calendars in full on the next pull
    conn.next_pull_at = now
    session.flush()
    return conn


def connect_oauth(session: Session, *, provider: str, owner_kind: str, staff_id: int | None = None,
                  location_id: int | None = None, tokens: dict, account: str | None, actor: str = ACTOR,
                  cfg: SyncConfig, existing: CalendarConnection | None = None,
                  now: dt.datetime | None = None, app: OAuthApp | None = None) -> CalendarConnection:
    """Store a Google / Microsoft connection after the OAuth callback (or renew one: reconnect).

    `app` is the app that issued `tokens` (default: the platform's); the connection remembers it.
    """
    from app.calendars import oauth

    if existing is not None:
        conn = existing
    else:
        owner = _owner(session, owner_kind, staff_id, location_id)
        conn = CalendarConnection(provider=provider, busy_calendars=[], sync_state={}, channel={},
                                  include_tentative=True, created_by=actor, **owner)
        session.add(conn)
    app = app or platform_app(provider, cfg)
    conn.oauth_app, conn.oauth_client_id = app.source, app.client_id
    conn.account = account or conn.account
    conn.status = STATUS_ACTIVE
    conn.failing_since = None
    conn.last_error = None
    store_secret(conn, tokens)
    conn.token_expires_at = oauth.expiry_of(tokens)
    conn.next_pull_at = now or dt.datetime.now(UTC)
    session.flush()
    if not conn.target_calendar:
        choose_calendars(conn, client_for(session, conn, cfg).calendars(), None, None)
    session.flush()
    return conn


def connection_for(session: Session, connection_id: int, *, staff_id: int | None = None) -> CalendarConnection:
    """A connection of this tenant (of this staff member when `staff_id` is given), else CalendarError (404)."""
    conn = session.get(CalendarConnection, connection_id)
    if conn is None or (staff_id is not None and conn.staff_id != staff_id):
        raise CalendarError("no such calendar connection", None)
    return conn


def disconnect(session: Session, conn: CalendarConnection, *, remove_future_events: bool, cfg: SyncConfig,
               now: dt.datetime) -> int:
    """Disconnect: drop its busy blocks and links; with `remove_future_events`, delete our future events there first.

    Returns how many of our events were removed there. A provider that refuses does not
    stop the disconnect (the events stay there, said in the result).
    """
    removed = 0
    if remove_future_events and conn.status == STATUS_ACTIVE:
        links = session.execute(
            select(CalendarEventLink).join(m.Appointment, m.Appointment.id == CalendarEventLink.appointment_id)
            .where(CalendarEventLink.connection_id == conn.id, CalendarEventLink.deleted.is_(False),
                   CalendarEventLink.external_id.is_not(None), m.Appointment.end_at > now)).scalars().all()
        if links:
            try:
                client = client_for(session, conn, cfg)
                for link in links:
                    try:
                        client.delete(link.calendar_id, link.external_id)
                        removed += 1
                    except NotFound:
                        pass
            except ProviderError as exc:
                log.warning("disconnect of calendar connection %s: events left there (%s)", conn.id, exc)
    session.execute(delete(m.BusyBlock).where(m.BusyBlock.connection_id == conn.id))
    session.execute(delete(CalendarEventLink).where(CalendarEventLink.connection_id == conn.id))
    conn.status = STATUS_DISCONNECTED
    conn.secret_enc = None
    conn.channel = {}
    conn.sync_state = {}
    conn.next_pull_at = None
    session.flush()
    return removed


# --------------------------------------------------------------------------- rendering our event

class _Blank(dict):
    def __missing__(self, key):
        return ""


def event_uid(ref_slug: str, appointment_id) -> str:
    """The iCalendar UID of an appointment: the same one the e-mailed invitation carries."""
    return f"appt-{appointment_id}@{ref_slug}.upzento"


def render_event(session: Session, slug: str, appt: m.Appointment, prefs: CalendarSettings) -> OurEvent:
    """Our event for `appt`, from the business's templates (privacy "busy": no details)."""
    customer = appt.customer
    values = _Blank(
        service=appt.service.name if appt.service else "",
        staff=appt.staff.name if appt.staff else "",
        location=appt.location.name if appt.location else "",
        customer=customer.name if customer else "",
        customer_email=customer.email if customer else "",
        customer_phone=(customer.phone or "") if customer else "",
        notes=appt.notes or "",
        meeting_url=appt.meeting_join_url or "",
        appointment_id=str(appt.id),
        seats=str(appt.seats),
    )
    if prefs.privacy == "busy":
        title, description, where = "Busy", "", ""
    else:
        title = _fill(prefs.title_template, values).strip() or "Appointment"
        description = "\n".join(line for line in _fill(prefs.description_template, values).splitlines()
                                if line.strip())
        where = appt.meeting_join_url or (appt.location.address or appt.location.name if appt.location else "")
    return OurEvent(
        appointment_id=str(appt.id), uid=event_uid(slug, appt.id), title=title[:300], description=description,
        location=where or "", start=appt.start_at, end=appt.end_at,
        timezone=appt.timezone or (appt.location.timezone if appt.location else "UTC"), sequence=appt.sequence,
    )


def _fill(template: str, values: dict) -> str:
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError):
        return template


def content_hash(event: OurEvent) -> str:
    body = [event.title, event.description, event.location, event.start.astimezone(UTC).isoformat(),
            event.end.astimezone(UTC).isoformat(), event.timezone, json.dumps(event.extra, sort_keys=True)]
    return hashlib.sha256("\x1f".join(body).encode()).hexdigest()


# --------------------------------------------------------------------------- push

@dataclass
class PushOutcome:
    connection_id: int
    action: str  # created / updated / deleted / unchanged / retry / failed / reconnect
    error: str | None = None
    retry_in: float | None = None
    released: list[int] = field(default_factory=list)  # confirmations held for a link made here: send now


def _connections_for(session: Session, appt: m.Appointment) -> list[CalendarConnection]:
    cond = [and_(CalendarConnection.owner_kind == "staff", CalendarConnection.staff_id == appt.staff_id),
            CalendarConnection.owner_kind == "business"]
    if appt.location_id is not None:
        cond.append(and_(CalendarConnection.owner_kind == "location", CalendarConnection.location_id == appt.location_id))
    return list(session.scalars(select(CalendarConnection).where(
        CalendarConnection.status == STATUS_ACTIVE, CalendarConnection.target_calendar.is_not(None), or_(*cond))))


def lock_appointment(session: Session, appointment_id) -> None:
    """One pusher per appointment at a time (two jobs for one appointment never both create)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('calendar-push'), hashtext(:a))"),
                    {"a": str(appointment_id)})


def push_appointment(session: Session, slug: str, appointment_id, cfg: SyncConfig, now: dt.datetime,
                     clients: dict | None = None, only: int | None = None) -> list[PushOutcome]:
    """Bring our event for one appointment up to date in every connection that should (or did) have it."""
    lock_appointment(session, appointment_id)
    appt = session.get(m.Appointment, uuid.UUID(str(appointment_id)), populate_existing=True)
    if appt is None:
        return []
    prefs = settings(session)
    links = {l.connection_id: l for l in session.scalars(
        select(CalendarEventLink).where(CalendarEventLink.appointment_id == appt.id).with_for_update())}
    wanted = {c.id: c for c in _connections_for(session, appt)} if appt.status != m.STATUS_CANCELLED else {}
    conn_ids = set(wanted) | {cid for cid, l in links.items() if not l.deleted}
    # The one connection (if any) whose event carries the appointment's Meet / Teams link.
    on_calendar = meetings.calendar_connection_for_meeting(session, appt) if wanted else None
    meeting_conn_id = on_calendar.id if on_calendar is not None else None
    if only is not None:
        conn_ids &= {only}
    outcomes = []
    for cid in sorted(conn_ids):
        conn = wanted.get(cid) or session.get(CalendarConnection, cid)
        if conn is None or conn.status != STATUS_ACTIVE:
            continue
        link = links.get(cid)
        outcomes.append(_push_one(session, slug, conn, appt, link, cid in wanted, prefs, cfg, now, clients,
                                  meeting_conn_id))
    session.flush()
    return outcomes


def _push_one(session, slug, conn, appt, link, want: bool, prefs, cfg, now, clients,
              meeting_conn_id: int | None = None) -> PushOutcome:
    event = render_event(session, slug, appt, prefs) if want else None
    makes_meeting = event is not None and conn.id == meeting_conn_id
    if makes_meeting:
        event.extra = meetings.calendar_meeting_request(conn.provider, appt)
    digest = content_hash(event) if event else None
    if link is not None and ((want and not link.deleted and link.content_hash == digest) or (not want and link.deleted)):
        if link.push_status != "ok":
            link.push_status, link.push_error, link.next_attempt_at = "ok", None, None
        return PushOutcome(conn.id, "unchanged")
    if link is None:
        if not want:
            return PushOutcome(conn.id, "unchanged")
        link = CalendarEventLink(connection_id=conn.id, appointment_id=appt.id, calendar_id=conn.target_calendar,
                                 deleted=False, generation=0, push_status="pending", push_attempts=0,
                                 provider_requests=0)
        session.add(link)
        session.flush()
    try:
        client = _client(session, conn, cfg, clients)
        before = getattr(client, "requests", 0)
        action, written = _write(client, conn, link, event, want)
        link.provider_requests += getattr(client, "requests", 0) - before
    except AuthFailed as exc:
        mark_reconnect(session, conn, str(exc), now)
        link.push_status, link.push_error = "retry", str(exc)[:2000]
        link.next_attempt_at = None
        return PushOutcome(conn.id, "reconnect", str(exc))
    except ProviderError as exc:
        link.push_attempts += 1
        link.push_error = str(exc)[:2000]
        record_failure(conn, exc, now)
        if exc.temporary and link.push_attempts < cfg.max_attempts:
            delay = retry_delay(link.push_attempts, cfg, exc.retry_after)
            link.push_status, link.next_attempt_at = "retry", now + dt.timedelta(seconds=delay)
            return PushOutcome(conn.id, "retry", str(exc), delay)
        link.push_status, link.next_attempt_at = "failed", None
        return PushOutcome(conn.id, "failed", str(exc))
    if want:
        link.content_hash, link.deleted = digest, False
        link.pushed_start, link.pushed_end = appt.start_at, appt.end_at
    else:
        link.content_hash, link.deleted = None, True
    link.push_status, link.push_error, link.push_attempts, link.next_attempt_at = "ok", None, 0, None
    conn.last_push_at = now
    record_success(conn)
    released = []
    if makes_meeting and written is not None:
        url, details = meetings.calendar_meeting_link(conn.provider, written.raw or {})
        if meetings.store_calendar_meeting(session, appt, conn, written.external_id, url, details):
            # The provider shows the link on the event itself (Meet / Teams join button); our
            # template's {meeting_url} and location fill in with the appointment's next change.
            released = meetings.link_ready(session, slug, appt, now)
    return PushOutcome(conn.id, action, released=released)


def _write(client, conn, link: CalendarEventLink, event: OurEvent | None, want: bool) -> tuple[str, Written | None]:
    calendar = link.calendar_id or conn.target_calendar
    if not want:
        if link.external_id:
            try:
                client.delete(calendar, link.external_id)
            except NotFound:
                pass
        return "deleted", None
    if link.calendar_id and link.calendar_id != conn.target_calendar and link.external_id and not link.deleted:
        # The target calendar changed: move our event over.
        try:
            client.delete(link.calendar_id, link.external_id)
        except NotFound:
            pass
        link.external_id, link.etag = None, None
    link.calendar_id = conn.target_calendar
    existing = link.external_id
    try:
        written = client.upsert(conn.target_calendar, event, existing, link.generation)
    except NotFound:
        # Deleted there behind our back (404 on patch): create it again.
        link.generation += 1
        written = client.upsert(conn.target_calendar, event, None, link.generation)
    action = "updated" if existing and not link.deleted else "created"
    link.external_id, link.etag = written.external_id, written.etag
    return action, written


def _client(session, conn, cfg, clients):
    if clients is not None and conn.id in clients:
        return clients[conn.id]
    client = client_for(session, conn, cfg)
    if clients is not None:
        clients[conn.id] = client
    return client


def retry_delay(attempts: int, cfg: SyncConfig, retry_after: float | None) -> float:
    """Exponential backoff (base · 2^(n-1), capped); a provider's Retry-After is a floor."""
    delay = min(cfg.retry_cap, cfg.retry_base * (2 ** max(0, attempts - 1)))
    return max(delay, retry_after or 0.0)


def record_failure(conn: CalendarConnection, exc: Exception, now: dt.datetime) -> None:
    conn.last_error = str(exc)[:2000]
    conn.last_error_at = now
    if conn.failing_since is None:
        conn.failing_since = now


def record_success(conn: CalendarConnection) -> None:
    conn.failing_since = None
    conn.alerted_at = None


def mark_reconnect(session: Session, conn: CalendarConnection, reason: str, now: dt.datetime) -> None:
    """The provider refused our credentials: the connection waits for a reconnect; people are told once."""
    record_failure(conn, AuthFailed(reason), now)
    if conn.status == STATUS_RECONNECT:
        return
    conn.status = STATUS_RECONNECT
    session.flush()
    _tell(session, conn, f"Calendar connection needs to be reconnected ({conn.provider})",
          f"The {conn.provider} calendar connection of {conn.owner_label} ({conn.account or ''}) stopped working:\n"
          f"{reason}\n\nBookings keep working, but they no longer reach that calendar and its busy times no "
          f"longer block bookings. Reconnect it under Team → Calendar connections (or My profile → Calendar).")


def _tell(session: Session, conn: CalendarConnection, subject: str, body: str) -> None:
    """Mail the staff member (for their connection) and the business's admins."""
    from app.models.public import Membership, Tenant
    from app.services.mail import queue_mail

    recipients = set()
    if conn.staff_id:
        email = session.scalar(select(m.Staff.email).where(m.Staff.id == conn.staff_id))
        if email:
            recipients.add(email)
    schema = session.info.get("tenant_schema") or ""
    try:
        from flask_appbuilder.security.sqla.models import User

        rows = session.execute(
            select(User.email).join(Membership, Membership.user_id == User.id).join(Tenant, Tenant.id == Membership.tenant_id)
            .where(Membership.role == "Client Admin", func.concat("tenant_", Tenant.slug) == schema)).scalars()
        recipients.update(e for e in rows if e)
    except Exception as exc:  # noqa: BLE001 - telling people must not stop the sync
        log.warning("calendar alert recipients: %s", exc)
    for to in sorted(recipients):
        try:
            with session.begin_nested():
                queue_mail(session, to, subject, body)
        except Exception as exc:  # noqa: BLE001
            log.warning("calendar alert mail to %s not queued: %s", to, exc)


# --------------------------------------------------------------------------- pull

@dataclass
class PullResult:
    connection_id: int
    events: int = 0
    blocks: int = 0
    full: bool = False
    reflected: list[str] = field(default_factory=list)  # appointment ids changed here
    repush: list[str] = field(default_factory=list)  # appointment ids to write back
    error: str | None = None


def _cal_tag(calendar_id: str) -> str:
    return hashlib.sha1(calendar_id.encode()).hexdigest()[:8]


def event_key(calendar_id: str, external_id: str) -> str:
    return hashlib.sha1(f"{calendar_id}\n{external_id}".encode()).hexdigest()


def block_owners(session: Session, conn: CalendarConnection) -> list[dict]:
    """What a foreign event blocks: the staff member; the location itself (closed then, for everyone
    working there, at that location only); for a business calendar every active staff member."""
    if conn.owner_kind == "staff":
        return [{"staff_id": conn.staff_id, "location_id": None}]
    if conn.owner_kind == "location":
        return [{"staff_id": None, "location_id": conn.location_id}]
    return [{"staff_id": sid, "location_id": None}
            for sid in session.scalars(select(m.Staff.id).where(m.Staff.active.is_(True)))]


def pull_connection(session: Session, slug: str, conn: CalendarConnection, cfg: SyncConfig, now: dt.datetime,
                    client=None, force_full: bool = False) -> PullResult:
    """One incremental pull of every busy calendar of `conn` (full after 410 / an invalid token)."""
    result = PullResult(conn.id)
    if conn.status != STATUS_ACTIVE:
        result.error = f"connection is {conn.status}"
        return result
    window = cfg.window(now)
    owners = block_owners(session, conn)
    state = dict(conn.sync_state or {})
    try:
        client = client or client_for(session, conn, cfg)
        for cal in conn.busy_calendars or []:
            cal_id = cal["id"]
            token = None if force_full else (state.get(cal_id) or {}).get("token")
            try:
                changes = client.changes(cal_id, token, window)
            except Gone:
                changes = client.changes(cal_id, None, window)
            result.full = result.full or changes.full
            result.events += len(changes.events)
            result.blocks += _apply(session, slug, conn, cal_id, changes, owners, result, now)
            state[cal_id] = {"token": changes.token, "at": now.isoformat()}
    except AuthFailed as exc:
        mark_reconnect(session, conn, str(exc), now)
        result.error = str(exc)
        return result
    except ProviderError as exc:
        record_failure(conn, exc, now)
        conn.next_pull_at = now + dt.timedelta(seconds=retry_delay(1, cfg, exc.retry_after))
        result.error = str(exc)
        return result
    conn.sync_state = state
    conn.last_pull_at = now
    conn.next_pull_at = now + dt.timedelta(minutes=cfg.poll_minutes)
    record_success(conn)
    session.flush()
    return result


def _apply(session, slug, conn, cal_id, changes, owners: list[dict], result: PullResult, now) -> int:
    source = f"cal:{conn.id}:{_cal_tag(cal_id)}"
    by_external = {l.external_id: l for l in session.scalars(select(CalendarEventLink).where(
        CalendarEventLink.connection_id == conn.id, CalendarEventLink.calendar_id == cal_id))}
    seen: set[str] = set()
    rows = []
    touched: list[str] = []
    for ev in changes.events:
        key = event_key(cal_id, ev.external_id)
        seen.add(key)
        link = by_external.get(ev.external_id)
        if link is None and ev.ours:
            link = session.scalar(select(CalendarEventLink).where(
                CalendarEventLink.connection_id == conn.id,
                CalendarEventLink.appointment_id == _uuid_or_none(ev.ours)))
        if link is not None or ev.ours:
            if link is not None:
                _our_event_changed(session, slug, conn, link, ev, result, now)
            continue  # our event (or an unknown copy of one): never a busy block
        touched.append(key)
        if ev.deleted or ev.free or (ev.tentative and not conn.include_tentative):
            continue
        for occ in ev.occurrences:
            for owner in owners:
                rows.append({**owner, "start_at": occ.start, "end_at": occ.end, "source": source,
                             "external_id": f"{key}|{occ.start.isoformat()}"[:255], "connection_id": conn.id,
                             "event_key": key})
    if changes.full:
        session.execute(delete(m.BusyBlock).where(m.BusyBlock.connection_id == conn.id, m.BusyBlock.source == source))
    elif touched:
        for i in range(0, len(touched), 1000):
            session.execute(delete(m.BusyBlock).where(m.BusyBlock.connection_id == conn.id,
                                                      m.BusyBlock.event_key.in_(touched[i:i + 1000])))
    if rows:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        for i in range(0, len(rows), 2000):
            session.execute(pg_insert(m.BusyBlock).values(rows[i:i + 2000]).on_conflict_do_nothing())
    return len(rows)


def _uuid_or_none(value: str):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _our_event_changed(session, slug, conn, link: CalendarEventLink, ev: PulledEvent, result: PullResult, now) -> None:
    """Our event changed there: an echo of our own write, or a move / delete by someone else."""
    if ev.etag and link.etag and ev.etag == link.etag:
        return  # the echo of our own write
    if link.deleted:
        return  # we deleted it ourselves (or it is gone already)
    appt = session.get(m.Appointment, link.appointment_id)
    if appt is None:
        return
    prefs = settings(session)
    gone = ev.deleted or not ev.occurrences
    if not gone:
        occ = ev.occurrences[0]
        moved = (occ.start, occ.end) != (link.pushed_start, link.pushed_end)
        if not moved:
            link.etag = ev.etag  # an edit that does not change the time: keep it, remember the etag
            return
    if appt.status == m.STATUS_CANCELLED:
        return
    if prefs.external_changes == "ignore":
        link.content_hash = None  # write ours back as it is here
        if gone:
            link.deleted, link.external_id, link.etag = True, None, None
            link.content_hash = "gone"
        link.push_status, link.next_attempt_at = "pending", now
        result.repush.append(str(appt.id))
        return
    from app.services import booking

    ref = _tenant_ref(session, slug)
    if gone:
        booking.cancel(session, ref, f"{ACTOR}:{conn.id}", appt, now, reason="deleted in the connected calendar",
                       enforce_policy=False)
        link.deleted, link.content_hash, link.etag = True, None, None
        result.reflected.append(str(appt.id))
        return
    occ = ev.occurrences[0]
    try:
        with session.begin_nested():
            booking.reschedule(session, ref, f"{ACTOR}:{conn.id}", appt, occ.start, now, enforce_policy=False,
                               override_rules=True)
    except (SlotUnavailable, booking.Conflict, ValueError) as exc:
        log.info("outside move of %s refused (%s): writing ours back", appt.id, exc)
        session.refresh(appt)
        link.content_hash = None
        link.push_status, link.next_attempt_at = "pending", now
        result.repush.append(str(appt.id))
        return
    # The link now says what is there, so the reschedule's push writes nothing back to this connection.
    link.etag = ev.etag
    link.pushed_start, link.pushed_end = appt.start_at, appt.end_at
    link.content_hash = content_hash(render_event(session, slug, appt, prefs))
    result.reflected.append(str(appt.id))


def _tenant_ref(session: Session, slug: str):
    from app.models.public import Tenant
    from app.tenancy import TenantRef

    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    return TenantRef.of(tenant)


# --------------------------------------------------------------------------- whole passes and health

def due_appointments(session: Session, conn: CalendarConnection, now: dt.datetime, limit: int = 500) -> list:
    """Appointments of this connection's scope whose event there is missing, stale or waiting for a retry."""
    scope = [m.Appointment.end_at > now, m.Appointment.status != m.STATUS_CANCELLED]
    if conn.owner_kind == "staff":
        scope.append(m.Appointment.staff_id == conn.staff_id)
    elif conn.owner_kind == "location":
        scope.append(m.Appointment.location_id == conn.location_id)
    missing = select(m.Appointment.id).where(*scope, ~select(CalendarEventLink.id).where(
        CalendarEventLink.connection_id == conn.id, CalendarEventLink.appointment_id == m.Appointment.id).exists())
    retry = select(CalendarEventLink.appointment_id).where(
        CalendarEventLink.connection_id == conn.id, CalendarEventLink.push_status.in_(("pending", "retry")),
        or_(CalendarEventLink.next_attempt_at.is_(None), CalendarEventLink.next_attempt_at <= now))
    ids = list(session.scalars(missing.limit(limit))) + list(session.scalars(retry.limit(limit)))
    return list(dict.fromkeys(ids))


def sync_connection(session: Session, slug: str, conn: CalendarConnection, cfg: SyncConfig, now: dt.datetime,
                    force_full: bool = False) -> dict:
    """One pull and push pass of a connection (the CLI's and the admin's "sync now")."""
    clients: dict = {}
    client = None
    if conn.status == STATUS_ACTIVE:
        try:
            client = _client(session, conn, cfg, clients)
        except AuthFailed as exc:
            mark_reconnect(session, conn, str(exc), now)
    pulled = pull_connection(session, slug, conn, cfg, now, client=client, force_full=force_full)
    outcomes = []
    if conn.status == STATUS_ACTIVE:
        for appointment_id in due_appointments(session, conn, now):
            outcomes += push_appointment(session, slug, appointment_id, cfg, now, clients=clients, only=conn.id)
    failed = [o for o in outcomes if o.action in ("failed", "retry", "reconnect")]
    return {"connection": conn.id, "pulled_events": pulled.events, "busy_blocks": pulled.blocks,
            "full": pulled.full, "reflected": pulled.reflected, "pushed": len(outcomes) - len(failed),
            "push_failures": [o.error for o in failed], "error": pulled.error or (failed[0].error if failed else None),
            "status": conn.status}


def health(session: Session, now: dt.datetime, *, staff_id: int | None = None) -> list[dict]:
    """Per connection: status, last pull/push, pending and failed pushes with errors, renewal, alert."""
    prefs = settings(session)
    q = select(CalendarConnection).where(CalendarConnection.status != STATUS_DISCONNECTED).order_by(CalendarConnection.id)
    if staff_id is not None:
        q = q.where(CalendarConnection.staff_id == staff_id)
    conns = list(session.scalars(q))
    counts = {}
    if conns:
        for cid, status, n in session.execute(
                select(CalendarEventLink.connection_id, CalendarEventLink.push_status, func.count())
                .where(CalendarEventLink.connection_id.in_([c.id for c in conns]))
                .group_by(CalendarEventLink.connection_id, CalendarEventLink.push_status)):
            counts[(cid, status)] = n
    out = []
    for c in conns:
        errors = list(session.scalars(select(CalendarEventLink.push_error).where(
            CalendarEventLink.connection_id == c.id, CalendarEventLink.push_status.in_(("retry", "failed")),
            CalendarEventLink.push_error.is_not(None)).limit(5)))
        failing_min = (now - c.failing_since).total_seconds() / 60 if c.failing_since else 0
        out.append({
            "id": c.id, "uid": c.uid, "provider": c.provider, "owner": c.owner_label, "owner_kind": c.owner_kind,
            "staff_id": c.staff_id, "location_id": c.location_id, "account": c.account, "status": c.status,
            "url": c.url if c.provider == "caldav" else None,
            "target_calendar": c.target_calendar_name, "busy_calendars": [b.get("name") for b in c.busy_calendars or []],
            "last_pull": _iso(c.last_pull_at), "last_push": _iso(c.last_push_at),
            "pending": counts.get((c.id, "pending"), 0) + counts.get((c.id, "retry"), 0),
            "failed": counts.get((c.id, "failed"), 0), "errors": errors, "last_error": c.last_error,
            "failing_since": _iso(c.failing_since), "next_renewal": _iso(c.next_renewal_at),
            "next_pull": _iso(c.next_pull_at),
            "alert": c.status == STATUS_RECONNECT or failing_min >= prefs.failing_alert_minutes,
        })
    return out


def problem_counts(session: Session, now: dt.datetime) -> dict[str, int]:
    """How many connections need reconnecting, how many have failed longer than the alert setting
    (the same rule as `health`'s "alert"), and how many pushes gave up: the dashboard home's alerts.

    Reads only: a business without a settings row gets the default alert delay, no row is written.
    """
    c = CalendarConnection
    delay = func.coalesce(select(CalendarSettings.failing_alert_minutes).where(CalendarSettings.id == 1).scalar_subquery(), 30)
    pushes = select(func.count()).select_from(CalendarEventLink).where(CalendarEventLink.push_status == "failed").scalar_subquery()
    reconnect, failing, pushes = session.execute(select(
        func.count().filter(c.status == STATUS_RECONNECT),
        func.count().filter(c.status == STATUS_ACTIVE, c.failing_since <= now - func.make_interval(0, 0, 0, 0, 0, delay)),
        pushes,
    ).select_from(c)).one()
    return {"needs_reconnect": reconnect or 0, "failing": failing or 0, "failed_pushes": pushes or 0}


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


# --------------------------------------------------------------------------- change notifications

GOOGLE_CHANNEL_TTL = 7 * 86400
GRAPH_SUBSCRIPTION_MINUTES = 2 * 24 * 60  # Graph allows a little under 3 days for events


def hook_url(cfg: SyncConfig, provider: str, slug: str) -> str | None:
    """Where providers post change notifications (PUBLIC_URL must reach us), or None."""
    if not cfg.public_url:
        return None
    return f"{cfg.public_url}/hooks/calendar/{provider}/{slug}"


def renew_channel(session: Session, slug: str, conn: CalendarConnection, cfg: SyncConfig, now: dt.datetime,
                  client=None) -> dict:
    """Open (or renew before expiry) the connection's push channels: Google watch / Graph subscriptions.

    CalDAV has none (the periodic pull is its only path). A failure is recorded and
    retried at the next tick; polling goes on meanwhile.
    """
    import secrets as _secrets

    if conn.provider == "caldav" or conn.status != STATUS_ACTIVE:
        return {}
    address = hook_url(cfg, conn.provider, slug)
    if address is None:
        return {}
    old = dict(conn.channel or {})
    items = []
    try:
        client = client or client_for(session, conn, cfg)
        if conn.provider == "google":
            for cal in conn.busy_calendars or []:
                channel_id = f"upz-{conn.uid}-{_secrets.token_hex(4)}"
                token = _secrets.token_urlsafe(24)
                opened = client.watch(cal["id"], address, channel_id, token, GOOGLE_CHANNEL_TTL)
                expires = opened["expires"] or now + dt.timedelta(seconds=GOOGLE_CHANNEL_TTL)
                items.append({"id": channel_id, "token": token, "resource_id": opened["resource_id"],
                              "calendar": cal["id"], "expires": expires.isoformat()})
            for item in old.get("items", []):  # stop the channels the new ones replace
                try:
                    client.stop(item["id"], item.get("resource_id") or "")
                except ProviderError:
                    pass
        else:
            by_calendar = {i["calendar"]: i for i in old.get("items", [])}
            for cal in conn.busy_calendars or []:
                expires = now + dt.timedelta(minutes=GRAPH_SUBSCRIPTION_MINUTES)
                existing = by_calendar.get(cal["id"])
                if existing:
                    try:
                        renewed = client.renew(existing["id"], expires)
                        items.append({**existing, "expires": renewed["expires"].isoformat()})
                        continue
                    except NotFound:
                        pass
                state = _secrets.token_urlsafe(24)
                made = client.subscribe(cal["id"], address, state, expires)
                items.append({"id": made["id"], "client_state": state, "calendar": cal["id"],
                              "expires": made["expires"].isoformat()})
    except AuthFailed as exc:
        mark_reconnect(session, conn, str(exc), now)
        return {"error": str(exc)}
    except ProviderError as exc:
        record_failure(conn, exc, now)
        conn.next_renewal_at = now + dt.timedelta(minutes=15)
        return {"error": str(exc)}
    conn.channel = {"kind": conn.provider, "items": items}
    if items:
        earliest = min(dt.datetime.fromisoformat(i["expires"]) for i in items)
        margin = dt.timedelta(days=1) if conn.provider == "google" else dt.timedelta(hours=12)
        conn.next_renewal_at = earliest - margin
    session.flush()
    return conn.channel


def connection_for_channel(session: Session, provider: str, channel_id: str) -> tuple[CalendarConnection, dict] | None:
    """The active connection that opened this channel / subscription, with the channel's record."""
    rows = session.scalars(select(CalendarConnection).where(
        CalendarConnection.provider == provider, CalendarConnection.status == STATUS_ACTIVE,
        CalendarConnection.channel["items"].contains([{"id": channel_id}])))
    for conn in rows:
        for item in conn.channel.get("items", []):
            if item.get("id") == channel_id:
                return conn, item
    return None


def raise_alerts(session: Session, now: dt.datetime) -> int:
    """Mail once when a connection has failed for longer than the business's alert threshold."""
    prefs = settings(session)
    limit = now - dt.timedelta(minutes=prefs.failing_alert_minutes)
    told = 0
    for conn in session.scalars(select(CalendarConnection).where(
            CalendarConnection.status == STATUS_ACTIVE, CalendarConnection.failing_since <= limit,
            CalendarConnection.alerted_at.is_(None))):
        conn.alerted_at = now
        _tell(session, conn, f"Calendar sync failing ({conn.provider})",
              f"The {conn.provider} calendar connection of {conn.owner_label} has failed since "
              f"{_iso(conn.failing_since)}:\n{conn.last_error}\n\nBookings keep working; see Team → Calendar connections.")
        told += 1
    session.flush()
    return told


# --------------------------------------------------------------------------- subscription feeds

def _feed_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_feed(session: Session, *, staff_id: int | None = None, customer_id: int | None = None,
                now: dt.datetime | None = None) -> str:
    """A new private feed token for a staff member or a customer (their earlier feeds are revoked)."""
    import secrets as _secrets

    from app.models.calendar_sync import CalendarFeed

    if (staff_id is None) == (customer_id is None):
        raise CalendarError("a feed belongs to one staff member or one customer", None)
    now = now or dt.datetime.now(UTC)
    owner = CalendarFeed.staff_id == staff_id if staff_id is not None else CalendarFeed.customer_id == customer_id
    for old in session.scalars(select(CalendarFeed).where(owner, CalendarFeed.revoked_at.is_(None))):
        old.revoked_at = now
    token = _secrets.token_urlsafe(24)
    session.add(CalendarFeed(token_hash=_feed_hash(token), staff_id=staff_id, customer_id=customer_id, created_at=now))
    session.flush()
    return token


def revoke_feeds(session: Session, *, staff_id: int | None = None, customer_id: int | None = None,
                 now: dt.datetime | None = None) -> int:
    from app.models.calendar_sync import CalendarFeed

    owner = CalendarFeed.staff_id == staff_id if staff_id is not None else CalendarFeed.customer_id == customer_id
    rows = list(session.scalars(select(CalendarFeed).where(owner, CalendarFeed.revoked_at.is_(None))))
    for row in rows:
        row.revoked_at = now or dt.datetime.now(UTC)
    session.flush()
    return len(rows)


def feed_ics(session: Session, slug: str, token: str, now: dt.datetime) -> str | None:
    """The iCalendar text of a live feed (None for an unknown or revoked token): 30 days back, a year ahead."""
    import icalendar

    from app.models.calendar_sync import CalendarFeed

    feed = session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == _feed_hash(token),
                                                     CalendarFeed.revoked_at.is_(None)))
    if feed is None:
        return None
    q = select(m.Appointment).where(m.Appointment.start_at >= now - dt.timedelta(days=30),
                                    m.Appointment.start_at <= now + dt.timedelta(days=365),
                                    m.Appointment.status != m.STATUS_CANCELLED).order_by(m.Appointment.start_at)
    q = q.where(m.Appointment.staff_id == feed.staff_id) if feed.staff_id else q.where(
        m.Appointment.customer_id == feed.customer_id)
    prefs = settings(session)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Upzento//Appointments feed//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Appointments")
    for appt in session.scalars(q):
        ours = render_event(session, slug, appt, prefs)
        ev = icalendar.Event()
        ev.add("uid", ours.uid)
        ev.add("dtstamp", now)
        ev.add("dtstart", appt.start_at)
        ev.add("dtend", appt.end_at)
        ev.add("sequence", appt.sequence)
        if feed.customer_id:  # the customer sees the service and place, not the business's template
            ev.add("summary", appt.service.name if appt.service else "Appointment")
            if appt.location:
                ev.add("location", appt.meeting_join_url or appt.location.address or appt.location.name)
        else:
            ev.add("summary", ours.title)
            if ours.description:
                ev.add("description", ours.description)
            if ours.location:
                ev.add("location", ours.location)
        cal.add_component(ev)
    return cal.to_ical().decode()
