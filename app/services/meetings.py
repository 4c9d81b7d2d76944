"""Online meetings of appointments: which provider and credentials, what the appointment shows.

Credentials: the business's own (Settings → Meetings), else its agency's, else the
platform's (ZOOM_* / MS_* configuration). Stored encrypted (app.crypto) as one JSON text
per provider in `integration_credential`. Base URLs may be overridden the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import crypto
from app.errors import ValidationError
from app.models import tenant as m
from app.models.webhooks import IntegrationCredential

PROVIDERS = ("zoom", "teams", "google_meet")
# Fields per provider: (name, label, secret?)
FIELDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "zoom": (("account_id", "Account ID", False), ("client_id", "Client ID", False),
             ("client_secret", "Client secret", True), ("user_id", "Host user (default: the staff member's email)", False),
             ("oauth_url", "OAuth URL", False), ("api_base_url", "API base URL", False)),
    "teams": (("tenant_id", "Microsoft tenant ID", False), ("client_id", "Client ID", False),
              ("client_secret", "Client secret", True), ("organizer", "Organizer (default: the staff member's email)", False),
              ("login_base_url", "Login base URL", False), ("graph_base_url", "Graph base URL", False)),
    "google_meet": (("client_id", "OAuth client ID", False), ("client_secret", "OAuth client secret", True),
                    ("refresh_token", "Refresh token", True), ("calendar_id", "Calendar ID (default: primary)", False),
                    ("oauth_url", "OAuth token URL", False), ("api_base_url", "API base URL", False)),
}


def platform_credentials(provider: str, config: Mapping[str, Any]) -> dict:
    """The platform-level settings of a provider from configuration."""
    if provider == "zoom":
        return {"account_id": config.get("ZOOM_ACCOUNT_ID"), "client_id": config.get("ZOOM_CLIENT_ID"),
                "client_secret": config.get("ZOOM_CLIENT_SECRET"), "oauth_url": config.get("ZOOM_OAUTH_URL"),
                "api_base_url": config.get("ZOOM_API_BASE_URL")}
    if provider == "teams":
        return {"tenant_id": config.get("MS_TEAMS_TENANT_ID"), "client_id": config.get("MS_CLIENT_ID"),
                "client_secret": config.get("MS_CLIENT_SECRET"), "login_base_url": config.get("MS_LOGIN_BASE_URL"),
                "graph_base_url": config.get("MS_GRAPH_BASE_URL")}
    if provider == "google_meet":
        return {"client_id": config.get("GOOGLE_CLIENT_ID"), "client_secret": config.get("GOOGLE_CLIENT_SECRET"),
                "oauth_url": config.get("GOOGLE_OAUTH_URL"), "api_base_url": config.get("GOOGLE_API_BASE_URL")}
    raise ValueError(provider)


def stored(session: Session, provider: str, *, tenant_id: int | None = None,
           agency_id: int | None = None) -> dict | None:
    """Decrypted stored settings at one level, or None."""
    query = select(IntegrationCredential).where(IntegrationCredential.provider == provider)
    query = query.where(IntegrationCredential.tenant_id == tenant_id) if tenant_id is not None else \
        query.where(IntegrationCredential.agency_id == agency_id)
    row = session.scalar(query)
    return json.loads(crypto.decrypt(row.data_enc)) if row else None


def credentials(session: Session, provider: str, tenant_id: int, agency_id: int,
                config: Mapping[str, Any]) -> dict:
    """Settings in force for a business: platform, overridden by the agency's, overridden by the business's."""
    merged = {k: v for k, v in platform_credentials(provider, config).items() if v}
    for level in (stored(session, provider, agency_id=agency_id), stored(session, provider, tenant_id=tenant_id)):
        if level:
            merged.update({k: v for k, v in level.items() if v})
    return merged


def save_credentials(session: Session, provider: str, values: Mapping[str, str], *, tenant_id: int | None = None,
                     agency_id: int | None = None) -> None:
    """Store a level's settings (encrypted); an empty secret field keeps the stored secret."""
    if provider not in PROVIDERS:
        raise ValidationError(f"unknown provider {provider!r}", "provider")
    known = {name for name, _label, _secret in FIELDS[provider]}
    current = stored(session, provider, tenant_id=tenant_id, agency_id=agency_id) or {}
    data = {}
    for name, _label, secret in FIELDS[provider]:
        value = (values.get(name) or "").strip()
        if secret and not value:
            value = current.get(name, "")
        if value:
            data[name] = value
    for name in ("oauth_url", "api_base_url", "login_base_url", "graph_base_url"):
        if name in data and not data[name].startswith(("https://", "http://")):
            raise ValidationError("a base URL starts with https://", name)
    unknown = set(values) - known
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    query = select(IntegrationCredential).where(IntegrationCredential.provider == provider)
    query = query.where(IntegrationCredential.tenant_id == tenant_id) if tenant_id is not None else \
        query.where(IntegrationCredential.agency_id == agency_id)
    row = session.scalar(query)
    if not data:
        if row is not None:
            session.delete(row)
        session.flush()
        return
    if row is None:
        row = IntegrationCredential(provider=provider, tenant_id=tenant_id, agency_id=agency_id, data_enc="")
        session.add(row)
    row.data_enc = crypto.encrypt(json.dumps(data, sort_keys=True))
    session.flush()


def client_for(provider: str, creds: Mapping[str, Any]):
    """A meeting client for the provider (raises MeetingError when not configured)."""
    from app.meetings.google import GoogleMeetClient
    from app.meetings.teams import TeamsClient
    from app.meetings.zoom import ZoomClient

    c = dict(creds)
    if provider == "zoom":
        return ZoomClient(c.get("account_id", ""), c.get("client_id", ""), c.get("client_secret", ""),
                          **{k: c[k] for k in ("oauth_url", "api_base_url") if c.get(k)})
    if provider == "teams":
        return TeamsClient(c.get("tenant_id", ""), c.get("client_id", ""), c.get("client_secret", ""),
                           **{k: c[k] for k in ("login_base_url", "graph_base_url") if c.get(k)})
    if provider == "google_meet":
        return GoogleMeetClient(c.get("client_id", ""), c.get("client_secret", ""), c.get("refresh_token", ""),
                                c.get("calendar_id") or "primary",
                                **{k: c[k] for k in ("oauth_url", "api_base_url") if c.get(k)})
    raise ValueError(provider)


def host_for(provider: str, creds: Mapping[str, Any], staff: m.Staff | None) -> str:
    """Whose meeting it is: the configured host, else the staff member's email, else Zoom's "me"."""
    configured = creds.get("user_id") if provider == "zoom" else creds.get("organizer")
    if configured:
        return configured
    if staff is not None and staff.email:
        return staff.email.strip().lower()
    return "me"


def meeting_json(appt: m.Appointment) -> dict | None:
    """The `meeting` object of API answers: None for in-person services."""
    provider = appt.meeting_provider or (appt.service.meeting if appt.service and appt.service.meeting != "none"
                                         else None)
    if provider is None:
        return None
    details = dict(appt.meeting_details or {})
    return {"provider": provider, "status": appt.meeting_status or "pending",
            "join_url": appt.meeting_join_url if appt.meeting_status != "deleted" else None,
            "passcode": details.get("passcode"), "dial_in": details.get("dial_in")}


def wants_meeting(appt: m.Appointment) -> bool:
    return appt.service is not None and appt.service.meeting not in (None, "none") and appt.status != m.STATUS_CANCELLED


# ------------------------------------------------------------ links on the staff member's own calendar event

# A Meet or Teams link is made on the staff member's own calendar event when they have a
# Google or Microsoft calendar connection that receives our events: the calendar push
# asks for the conference on that event, and the link is the one their calendar shows.
# Without such a connection the meeting job makes it with the business's credentials.
CALENDAR_PROVIDER = {"google_meet": "google", "teams": "microsoft"}
VIA_CALENDAR = "calendar"
# Confirmations held for the link (app.services.notify.meeting_hold).
HELD_KINDS = ("booking_confirmed", "booking_confirmed_staff")
# The appointment's meeting fields, read again under a lock by whoever decides from them.
MEETING_COLUMNS = ("meeting_provider", "meeting_id", "meeting_join_url", "meeting_status", "meeting_details")


def made_on_calendar(appt: m.Appointment) -> bool:
    return (appt.meeting_details or {}).get("via") == VIA_CALENDAR


def calendar_connection_for_meeting(session: Session, appt: m.Appointment):
    """The staff member's calendar connection that makes this appointment's link, or None.

    Only for Meet (Google connection) and Teams (Microsoft connection), only while the
    appointment is not cancelled, and never once a link was made by the provider's API
    (an appointment keeps the meeting it has).
    """
    from app.models.calendar_sync import STATUS_ACTIVE, CalendarConnection

    if not wants_meeting(appt) or appt.staff_id is None:
        return None
    provider = CALENDAR_PROVIDER.get(appt.service.meeting)
    if provider is None or (appt.meeting_id and not made_on_calendar(appt)):
        return None
    return session.scalar(select(CalendarConnection).where(
        CalendarConnection.owner_kind == "staff", CalendarConnection.staff_id == appt.staff_id,
        CalendarConnection.provider == provider, CalendarConnection.status == STATUS_ACTIVE,
        CalendarConnection.target_calendar.is_not(None)).order_by(CalendarConnection.id).limit(1))


def calendar_meeting_owner(session: Session, appt: m.Appointment) -> int | None:
    """The staff id of the connection whose event carries the appointment's link (None: gone)."""
    from app.models.calendar_sync import CalendarConnection

    conn_id = (appt.meeting_details or {}).get("connection_id")
    conn = session.get(CalendarConnection, conn_id) if conn_id else None
    return conn.staff_id if conn is not None else None


def calendar_meeting_request(provider: str, appt: m.Appointment) -> dict:
    """The fields our calendar event carries to get (or keep) its online meeting."""
    if provider == "google":
        if appt.meeting_join_url and made_on_calendar(appt):
            return {}  # made: a PATCH without conferenceData keeps it
        return {"conferenceData": {"createRequest": {"requestId": appt.id.hex,
                                                     "conferenceSolutionKey": {"type": "hangoutsMeet"}}}}
    return {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}


def calendar_meeting_link(provider: str, answer: Mapping[str, Any]) -> tuple[str | None, dict]:
    """(join URL, details) from the provider's answer to our event write (None while not made yet)."""
    if provider == "google":
        conference = answer.get("conferenceData") or {}
        video = next((p.get("uri") for p in conference.get("entryPoints") or [] if p.get("entryPointType") == "video"), None)
        phone = [p.get("uri") for p in conference.get("entryPoints") or [] if p.get("entryPointType") == "phone"]
        details = {"dial_in": phone} if phone else {}
        return answer.get("hangoutLink") or video, details
    meeting = answer.get("onlineMeeting") or {}
    return meeting.get("joinUrl"), {}


def store_calendar_meeting(session: Session, appt: m.Appointment, conn, external_id: str, url: str | None,
                           details: dict) -> bool:
    """Record the link our calendar event got; True when it is new (held confirmations may go out)."""
    stored = dict(appt.meeting_details or {})
    if url is None:
        if not appt.meeting_join_url:
            appt.meeting_provider, appt.meeting_status = appt.service.meeting, "pending"
            appt.meeting_details = {**stored, "via": VIA_CALENDAR, "connection_id": conn.id}
        return False
    new = url != appt.meeting_join_url
    appt.meeting_provider, appt.meeting_id, appt.meeting_join_url = appt.service.meeting, f"calendar:{conn.id}:{external_id}", url
    appt.meeting_status, appt.meeting_error, appt.meeting_attempts = "ready", None, 0
    appt.meeting_details = {**details, "via": VIA_CALENDAR, "connection_id": conn.id}
    return new


def link_ready(session: Session, tenant_slug: str, appt: m.Appointment, now) -> list[int]:
    """A new join link was stored: confirmations held for it go out now (their ids are returned for
    dispatch after commit), and `appointment.meeting_ready` tells the rest (a customer whose
    confirmation already went without a link gets it by mail; webhooks hear of it)."""
    from app.services import events

    events.emit(session, events.MEETING_READY, str(appt.id), tenant_slug, provider=appt.meeting_provider)
    return release_held_confirmations(session, appt.id, now)


def release_held_confirmations(session: Session, appointment_id, now) -> list[int]:
    """Confirmations held for the link (app.services.notify.meeting_hold) go out now; their ids."""
    from sqlalchemy import update

    from app.models.notifications import NotificationDelivery

    return list(session.scalars(
        update(NotificationDelivery)
        .where(NotificationDelivery.appointment_id == appointment_id, NotificationDelivery.status == "queued",
               NotificationDelivery.kind.in_(HELD_KINDS), NotificationDelivery.not_before > now)
        .values(not_before=now, updated_at=now).returning(NotificationDelivery.id)))



# --------------------------------------------------------------------------- provider notifications

def index_meeting(session: Session, tenant_id: int, provider: str, meeting_id: str, appointment_id) -> None:
    """Remember whose meeting this is (public.provider_meeting), for the provider's notifications."""
    from sqlalchemy.dialects.postgresql import insert

    from app.models.webhooks import ProviderMeeting

    session.execute(insert(ProviderMeeting).values(
        provider=provider, meeting_id=str(meeting_id), tenant_id=tenant_id, appointment_id=str(appointment_id))
        .on_conflict_do_update(index_elements=["provider", "meeting_id"],
                               set_={"tenant_id": tenant_id, "appointment_id": str(appointment_id)}))


def unindex_meeting(session: Session, provider: str | None, meeting_id: str | None) -> None:
    from sqlalchemy import delete

    from app.models.webhooks import ProviderMeeting

    if provider and meeting_id:
        session.execute(delete(ProviderMeeting).where(ProviderMeeting.provider == provider,
                                                      ProviderMeeting.meeting_id == str(meeting_id)))


def meeting_owner(session: Session, provider: str, meeting_id: str) -> tuple[str, str] | None:
    """(business slug, appointment id) of a meeting we made, or None."""
    from app.models.public import Tenant
    from app.models.webhooks import ProviderMeeting

    row = session.execute(select(Tenant.slug, ProviderMeeting.appointment_id)
                          .join(Tenant, Tenant.id == ProviderMeeting.tenant_id)
                          .where(ProviderMeeting.provider == provider, ProviderMeeting.meeting_id == str(meeting_id),
                                 Tenant.status == Tenant.STATUS_ACTIVE)).first()
    return (row.slug, row.appointment_id) if row else None


ZOOM_EVENTS = ("meeting.updated", "meeting.deleted", "meeting.started", "meeting.ended")


def zoom_event(session: Session, appointment_id: str, name: str, obj: dict, now: dt.datetime) -> bool:
    """Apply one of Zoom's `meeting.*` notifications to the appointment whose meeting it is.

    The appointment decides the time: a meeting moved or shortened in Zoom (`meeting.updated`
    with another `start_time` or `duration`) is put back by the meeting job; True asks the
    caller to run it. A meeting deleted in Zoom is shown failed on the appointment (the
    Meetings page lists it). Started / ended are recorded in `meeting_details`.
    """
    appt = session.get(m.Appointment, uuid.UUID(appointment_id), with_for_update=True)
    if appt is None or appt.meeting_provider != "zoom" or str(appt.meeting_id) != str(obj.get("id")):
        return False  # an old meeting of this appointment, or not ours any more
    details = dict(appt.meeting_details or {})
    if name == "meeting.deleted":
        if appt.status != m.STATUS_CANCELLED:
            appt.meeting_status, appt.meeting_error = "failed", "the meeting was deleted in Zoom"
        return False
    if name in ("meeting.started", "meeting.ended"):
        details[name.split(".")[1] + "_at"] = now.isoformat()
        appt.meeting_details = details
        return False
    if name != "meeting.updated" or appt.status == m.STATUS_CANCELLED:
        return False
    moved = _zoom_time_differs(appt, obj)
    if moved:
        details.pop("synced", None)  # the job compares with this: it puts the meeting back
        details["changed_in_zoom"] = {"at": now.isoformat(), **{k: obj[k] for k in ("start_time", "duration") if k in obj}}
        # Pending until the job has put it back (the meeting sweep finds it if the job is lost).
        appt.meeting_details, appt.meeting_status = details, "pending"
    return moved


def _zoom_time_differs(appt: m.Appointment, obj: dict) -> bool:
    from dateutil import parser as dateparser

    if obj.get("start_time"):
        try:
            start = dateparser.isoparse(str(obj["start_time"]))
        except ValueError:
            return True
        if start.tzinfo is None or start != appt.start_at:
            return True
    if obj.get("duration") is not None:
        minutes = round((appt.end_at - appt.start_at).total_seconds() / 60)
        if int(obj["duration"]) != minutes:
            return True
    return False
