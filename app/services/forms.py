"""Booking forms, consent texts and widget settings: the rules, shared by the API, the widget and the admin.

Colour rules follow WCAG 2.1: white button text on the primary colour and the
accent colour on white must both reach 4.5:1 (AA, normal text).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.models import tenant as m
from app.models import widgets as w
from app.services.booking import EMAIL_RE, normalize_phone
from app.services import catalogue_rules as rules
from app.services.catalogue import catalogue

HEX_RE = rules.HEX_RE
FONT_RE = re.compile(r"^[A-Za-z0-9 ,\-]{1,100}$")
AA_RATIO = 4.5
# Answer keys the platform itself writes (notifications read a meeting link from answers).
RESERVED_KEYS = frozenset({"meeting_url"})
MAX_ANSWER = 2000


# --------------------------------------------------------------------------- colours


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1..21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def color_problems(primary: str, accent: str) -> list[tuple[str, str]]:
    """(field, message) for each colour that fails AA against white."""
    problems = []
    for name, value in (("primary_color", primary), ("accent_color", accent)):
        try:
            rules.check_color(value, name)
        except rules.RuleError as exc:
            problems.append((name, exc.message))
            continue
        ratio = contrast(value, "#ffffff")
        if ratio < AA_RATIO:
            problems.append(
                (name, f"{name.replace('_', ' ')} {value} has contrast {ratio:.2f}:1 with white; WCAG AA needs {AA_RATIO}:1 — choose a darker colour")
            )
    return problems


def adjust_for_contrast(color: str) -> str:
    """Darken `color` step by step until white text on it reaches AA; unchanged when it already does."""
    if not HEX_RE.match(color or ""):
        raise ValueError(f"not a colour: {color!r}")
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    current = color.lower()
    while contrast(current, "#ffffff") < AA_RATIO:
        rgb = [int(v * 0.92) for v in rgb]
        current = "#" + "".join(f"{v:02x}" for v in rgb)
    return current


# --------------------------------------------------------------------------- fields


def _form_of(fields, service_id: int | None) -> list[w.FormField]:
    """Tenant-wide fields plus the service's own (which win on the same key), in form order.

    `fields` are active fields in id order, or at least with each scope's in id order.
    """
    by_key = {f.key: f for f in fields if f.service_id is None}
    if service_id is not None:
        by_key.update({f.key: f for f in fields if f.service_id == service_id})
    return sorted(by_key.values(), key=lambda f: (f.position, f.id))


def fields_for(session: Session, service_key: str | None) -> list[w.FormField]:
    """Active fields for a service: tenant-wide ones plus the service's own (which win on the same key)."""
    query = select(w.FormField).where(w.FormField.active.is_(True))
    service_id = None
    if service_key:
        service_id = session.scalar(select(m.Service.id).where(m.Service.key == service_key))
    if service_id is not None:
        query = query.where(or_(w.FormField.service_id.is_(None), w.FormField.service_id == service_id))
    else:
        query = query.where(w.FormField.service_id.is_(None))
    return _form_of(list(session.scalars(query.order_by(w.FormField.id))), service_id)


def booking_fields(session: Session, service_key: str | None) -> list[w.FormField]:
    """fields_for() answered from the catalogue snapshot: read-only objects, no query while nothing changed."""
    snapshot = catalogue(session)
    service = snapshot.services.get(service_key) if service_key else None
    return _form_of(snapshot.form_fields, service.id if service is not None else None)


def fields_by_service(session: Session, service_ids: dict[str, int]) -> dict[str, list[w.FormField]]:
    """fields_for() of many services at once (one query), keyed by service key."""
    rows = list(session.scalars(select(w.FormField).where(w.FormField.active.is_(True)).order_by(w.FormField.id)))
    return {key: _form_of(rows, service_id) for key, service_id in service_ids.items()}


def field_json(field: w.FormField) -> dict:
    return {
        "key": field.key,
        "label": field.label,
        "type": field.field_type,
        "required": field.required,
        "help": field.help_text,
        "options": list(field.options or []),
    }


def _clean_one(field: w.FormField, raw, region: str | None):
    """The stored value of one answer, or raise ValueError with a message for the visitor."""
    kind = field.field_type
    if kind == "checkbox":
        if raw in (True, "true", "on", "1", 1):
            return True
        if raw in (False, None, "", "false", "0", 0):
            if field.required:
                raise ValueError("please tick this box")
            return False
        raise ValueError("must be true or false")
    if kind == "multiselect":
        values = raw if isinstance(raw, list) else ([] if raw in (None, "") else [raw])
        if not all(isinstance(v, str) for v in values):
            raise ValueError("choose from the list")
        bad = [v for v in values if v not in (field.options or [])]
        if bad:
            raise ValueError(f"{bad[0]!r} is not one of the choices")
        if field.required and not values:
            raise ValueError("choose at least one")
        return values
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if field.required:
            raise ValueError("this field is required")
        return None
    if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
        raise ValueError("must be text")
    value = str(raw).strip()
    if len(value) > MAX_ANSWER:
        raise ValueError(f"too long ({MAX_ANSWER} characters at most)")
    if kind == "email" and not EMAIL_RE.match(value):
        raise ValueError("not an email address")
    if kind == "phone":
        try:
            return normalize_phone(value, region, field.key)
        except ValidationError as exc:
            raise ValueError(exc.message)
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a number")
        return int(number) if number.is_integer() else number
    if kind == "date":
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("must be a date (YYYY-MM-DD)")
    if kind == "select" and value not in (field.options or []):
        raise ValueError(f"{value!r} is not one of the choices")
    if kind == "text" and len(value) > 500:
        raise ValueError("too long (500 characters at most)")
    return value


def clean_answers(session: Session, service_key: str, answers: dict, hidden: set[str] | frozenset = frozenset(),
                  region: str | None = None) -> dict:
    """Answers checked against the service's form; every problem is listed in `errors`, nothing is stored on failure."""
    fields = [f for f in booking_fields(session, service_key) if f.key not in hidden]
    known = {f.key for f in fields}
    errors = [{"field": f"answers.{k}", "message": "this question is not on the booking form"}
              for k in sorted(set(answers) - known)]
    cleaned = {}
    for field in fields:
        try:
            value = _clean_one(field, answers.get(field.key), region)
        except ValueError as exc:
            errors.append({"field": f"answers.{field.key}", "message": f"{field.label}: {exc}"})
            continue
        if value is not None:
            cleaned[field.key] = value
    if errors:
        raise ValidationError(errors[0]["message"], errors[0]["field"], code="invalid_answers", errors=errors)
    return cleaned


def answer_rows(session: Session, appointment: m.Appointment) -> list[tuple[str, str]]:
    """(label, text) pairs of an appointment's answers, for staff pages and exports."""
    labels = {f.key: f.label for f in fields_for(session, appointment.service.key)}
    rows = []
    for key, value in (appointment.answers or {}).items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else ("yes" if value is True else "no" if value is False else str(value))
        rows.append((labels.get(key, key), text))
    return rows


def save_field(session: Session, field: w.FormField) -> w.FormField:
    """Check a field the admin edited; raises ValidationError naming the bad input."""
    if field.field_type not in w.FIELD_TYPES:
        raise ValidationError(f"type must be one of {', '.join(w.FIELD_TYPES)}", "field_type")
    if not re.match(r"^[a-z][a-z0-9_]{0,40}$", field.key or ""):
        raise ValidationError("key: lower-case letters, digits and _ (starting with a letter)", "key")
    if field.key in RESERVED_KEYS:
        raise ValidationError(f"{field.key!r} is reserved (the system writes it into answers)", "key")
    if not (field.label or "").strip():
        raise ValidationError("a field needs a label", "label")
    options = [o.strip() for o in (field.options or []) if isinstance(o, str) and o.strip()]
    if field.field_type in ("select", "multiselect") and not options:
        raise ValidationError("a choice field needs at least one option", "options")
    field.options = options
    clash = session.scalar(
        select(w.FormField.id).where(
            w.FormField.key == field.key,
            func.coalesce(w.FormField.service_id, 0) == (field.service_id or (field.service.id if field.service else 0)),
            w.FormField.id != (field.id or 0),
        )
    )
    if clash:
        raise ValidationError(f"a field with key {field.key!r} already exists for this scope", "key")
    session.flush()
    return field


# --------------------------------------------------------------------------- consent


def current_consents(session: Session) -> dict[str, w.ConsentText]:
    """The latest version of each consent text that exists."""
    out = {}
    for text in session.scalars(select(w.ConsentText).order_by(w.ConsentText.kind, w.ConsentText.version)):
        out[text.kind] = text
    return out


def publish_consent(session: Session, kind: str, body: str, actor: str | None) -> w.ConsentText:
    """Store a consent text; an unchanged text keeps its version, a changed one gets the next."""
    if kind not in w.CONSENT_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(w.CONSENT_KINDS)}", "kind")
    body = (body or "").strip()
    if not body:
        raise ValidationError("the text is empty", "body")
    latest = current_consents(session).get(kind)
    if latest is not None and latest.body == body:
        return latest
    text = w.ConsentText(kind=kind, version=(latest.version + 1) if latest else 1, body=body, created_by=actor)
    session.add(text)
    session.flush()
    return text


def prepare_consent(session: Session, text: w.ConsentText) -> w.ConsentText:
    """Give a new consent text (from the admin) its version; an unchanged text is refused."""
    if text.kind not in w.CONSENT_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(w.CONSENT_KINDS)}", "kind")
    text.body = (text.body or "").strip()
    if not text.body:
        raise ValidationError("the text is empty", "body")
    latest = current_consents(session).get(text.kind)
    if latest is not None and latest.body == text.body:
        raise ValidationError(f"this is the current {text.kind} text (version {latest.version}); change it to make a new version", "body")
    text.version = latest.version + 1 if latest else 1
    return text


def check_consents(session: Session, given) -> list[w.ConsentText]:
    """The texts agreed to; every current text must be accepted in its current version."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ValidationError("consents must be an object {terms: version, privacy: version}", "consents")
    texts = catalogue(session).consents
    unknown = sorted(set(given) - set(texts))
    if unknown:
        raise ValidationError(f"there is no {unknown[0]!r} text to agree to", f"consents.{unknown[0]}", code="unknown_field")
    errors = []
    agreed = []
    for kind, text in texts.items():
        version = given.get(kind)
        if kind == "marketing" and (version is None or version is False):
            continue  # marketing is asked, never required
        agreed.append(text)
        if version is None or version is False:
            errors.append({"field": f"consents.{kind}", "message": f"please accept the {'terms' if kind == 'terms' else 'privacy notice'}"})
        elif version != text.version:
            errors.append({"field": f"consents.{kind}", "message": f"the {kind} text changed (now version {text.version}); please read it again"})
    if errors:
        raise ValidationError(errors[0]["message"], errors[0]["field"], code="consent_required", errors=errors)
    return agreed


def record_consents(session: Session, texts: list[w.ConsentText], appointment: m.Appointment, ip: str | None,
                    channel: str = "widget") -> None:
    """One consent record per text: who (customer, email), when, which version, over which channel, from which IP.

    A marketing consent also switches the customer's marketing flag on (the portal can withdraw it).
    """
    if not texts:
        return  # nothing to write, so no flush (a flush with nothing new still walks the session)
    for text in texts:
        session.add(
            w.ConsentRecord(
                consent_text_id=text.id,
                customer_id=appointment.customer_id,
                appointment_id=appointment.id,
                email=appointment.customer.email,
                ip=(ip or "")[:64] or None,
                channel=channel,
            )
        )
        if text.kind == "marketing" and appointment.customer is not None:
            appointment.customer.marketing_opt_in = True
    session.flush()


# --------------------------------------------------------------------------- widgets


@dataclass
class WidgetProblem(Exception):
    field: str
    message: str


def normalize_origin(raw: str) -> str:
    """`https://shop.example:8443/path` → `https://shop.example:8443`; raises ValueError when not an origin."""
    value = (raw or "").strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.username:
        raise ValueError(f"{raw!r} is not an origin like https://www.example.com")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def apply_widget_settings(session: Session, widget: w.Widget, form) -> list[WidgetProblem]:
    """Copy validated settings from a form mapping onto `widget`; returns problems (nothing applied) if any."""
    problems: list[WidgetProblem] = []
    get = lambda k: (form.get(k) or "").strip()  # noqa: E731
    name = get("name")
    if not name or len(name) > 100:
        problems.append(WidgetProblem("name", "a name of 1 to 100 characters is required"))
    mode = get("mode") or "inline"
    if mode not in w.WIDGET_MODES:
        problems.append(WidgetProblem("mode", f"mode must be one of {', '.join(w.WIDGET_MODES)}"))
    language = get("language") or "auto"
    if language not in w.WIDGET_LANGUAGES:
        problems.append(WidgetProblem("language", f"language must be one of {', '.join(w.WIDGET_LANGUAGES)}"))
    primary, accent = get("primary_color").lower(), get("accent_color").lower()
    problems += [WidgetProblem(f, msg) for f, msg in color_problems(primary, accent)]
    try:
        radius = int(get("radius_px") or 8)
        if not 0 <= radius <= 32:
            raise ValueError
    except ValueError:
        problems.append(WidgetProblem("radius_px", "corner radius must be a whole number from 0 to 32"))
        radius = 8
    origins = []
    for line in re.split(r"[\s,]+", form.get("allowed_origins") or ""):
        if line:
            try:
                origins.append(normalize_origin(line))
            except ValueError as exc:
                problems.append(WidgetProblem("allowed_origins", str(exc)))
    service, location = get("default_service") or None, get("default_location") or None
    if service and not session.scalar(select(m.Service.id).where(m.Service.key == service)):
        problems.append(WidgetProblem("default_service", f"unknown service {service!r}"))
    if location and not session.scalar(select(m.Location.id).where(m.Location.key == location)):
        problems.append(WidgetProblem("default_location", f"unknown location {location!r}"))
    logo = get("logo_url") or None
    if logo and not re.match(r"^(https?://|/)[^\s\"'<>]+$", logo):
        problems.append(WidgetProblem("logo_url", "logo must be an http(s) URL or a path on this site"))
    font = get("font_family") or None
    if font and not FONT_RE.match(font):
        problems.append(WidgetProblem("font_family", "font: letters, digits, spaces, commas and hyphens only"))
    if problems:
        return problems
    widget.name, widget.mode, widget.language = name, mode, language
    widget.primary_color, widget.accent_color, widget.radius_px = primary, accent, radius
    widget.allowed_origins = sorted(set(origins))
    widget.default_service, widget.default_location = service, location
    widget.logo_url, widget.font_family = logo, font
    widget.button_label = get("button_label")[:60] or None
    widget.show_location_step = bool(form.get("show_location_step"))
    widget.show_staff_step = bool(form.get("show_staff_step"))
    widget.show_phone = bool(form.get("show_phone"))
    hidden = form.getlist("hidden_fields") if hasattr(form, "getlist") else form.get("hidden_fields") or []
    widget.hidden_fields = sorted({h for h in hidden if isinstance(h, str) and h})
    widget.active = bool(form.get("active"))
    session.add(widget)
    session.flush()
    return []


def find_widget(session: Session, public_id: str) -> w.Widget | None:
    return session.scalar(select(w.Widget).where(w.Widget.public_id == public_id, w.Widget.active.is_(True)))
