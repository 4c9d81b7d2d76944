"""The embeddable widget: the loader script and the booking flow that runs in its iframe.

GET /widget/v1/loader.js                          the loader (vanilla IIFE, one global: `Upzento`)
GET /widget/v1/<tenant>/<widget id>/frame         the booking flow page (framed by allowed origins only)
GET /widget/v1/<tenant>/<widget id>/demo          a test page embedding the widget (same origin)
GET /widget/v1/static/<file>                      its script and styles

The frame page carries everything the first steps need inline (locations,
services, staff, form, texts), so the only request before the first slots is
the availability call; `Content-Security-Policy: frame-ancestors` lists the
widget's allowed origins, so browsers refuse to show it framed anywhere else.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup, escape

from app.errors import ApiError
from app.extensions import db
from app.models.public import Tenant
from app.models.widgets import Widget
from app.services import booking, forms
from app.services.availability import AvailabilityQuery, query_slots
from app.services.public_catalogue import public_catalogue
from app.tenancy import public_tenant
from app.uow import discard
from app.widget import i18n, prerender
from app.widget.api import utcnow, widget_json

bp = Blueprint("widget", __name__, url_prefix="/widget/v1", template_folder="templates")
STATIC = Path(__file__).parent / "static"
FIRST_DAYS = 7
TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@lru_cache(maxsize=32)
def _static_bytes(name: str, mtime: float) -> tuple[bytes, bytes]:
    raw = (STATIC / name).read_bytes()
    return raw, gzip.compress(raw, 9, mtime=0)


def _wants_gzip() -> bool:
    return "gzip" in (request.headers.get("Accept-Encoding") or "")


def _static_response(name: str, max_age: int) -> Response:
    path = STATIC / name
    if not path.is_file() or path.suffix not in TYPES:
        abort(404)
    raw, packed = _static_bytes(name, path.stat().st_mtime)
    gz = _wants_gzip()
    response = Response(packed if gz else raw, mimetype=TYPES[path.suffix].split(";")[0])
    response.headers["Content-Type"] = TYPES[path.suffix]
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    # Lets embedding pages (and the benchmark) see the transfer size in Resource Timing.
    response.headers["Timing-Allow-Origin"] = "*"
    return response


@bp.get("/loader.js")
def loader():
    # Short cache: embedders keep one URL, fixes reach them within minutes.
    return _static_response("loader.js", 300)


@bp.get("/static/<name>")
def static_file(name: str):
    if "/" in name or name.startswith("."):
        abort(404)
    return _static_response(name, 3600)


@bp.get("/<tenant_slug>/logo/<name>")
def logo(tenant_slug: str, name: str):
    """A business's uploaded logo; its name carries the content's digest, so it is cached for good."""
    from app.services.branding import served_logo

    tenant = public_tenant(db.session, tenant_slug)
    row = served_logo(db.session, tenant.id, name)
    if row is None:
        discard()
        abort(404)
    data, ctype = row.data, row.content_type
    discard()
    response = Response(data, mimetype=ctype)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.errorhandler(ApiError)
def _closed(exc: ApiError):
    """An unknown (404) or suspended (403) business, as a page: the frame shows it inside the iframe."""
    discard()
    body = f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Booking</title><p>{escape(exc.message)}</p></html>'
    return Response(body, exc.status, mimetype="text/html", headers={"Cache-Control": "no-store"})


def _widget_or_404(tenant_slug: str, public_id: str) -> tuple[Tenant, Widget]:
    """The open tenant (app.tenancy.public_tenant's rule) and its widget `public_id`; 404 when the widget is missing."""
    tenant = public_tenant(db.session, tenant_slug)
    widget = forms.find_widget(db.session, public_id)
    if widget is None:
        abort(404)
    return tenant, widget


def _override_color(value: str | None, fallback: str, name: str, notes: list[str]) -> str:
    """A colour from the embed code or the builder preview: used if valid, darkened (and said so) if it fails AA."""
    if not value:
        return fallback
    value = value if value.startswith("#") else f"#{value}"
    if not forms.HEX_RE.match(value):
        notes.append(f"{name} colour {value!r} is not a #rrggbb colour; ignored")
        return fallback
    fixed = forms.adjust_for_contrast(value.lower())
    if fixed != value.lower():
        notes.append(f"{name} colour {value} fails WCAG AA with white ({forms.contrast(value, '#ffffff'):.2f}:1); using {fixed}")
    return fixed


def _look(widget, args) -> dict:
    """Colours, radius and font: the widget's, or valid overrides from the loader / builder preview."""
    notes: list[str] = []
    radius = widget.radius_px
    if (args.get("radius") or "").isdigit() and 0 <= int(args["radius"]) <= 32:
        radius = int(args["radius"])
    font = widget.font_family or "system-ui, sans-serif"
    if args.get("font") and forms.FONT_RE.match(args["font"]):
        font = args["font"]
    return {
        "primary": _override_color(args.get("primary"), widget.primary_color, "primary", notes),
        "accent": _override_color(args.get("accent"), widget.accent_color, "accent", notes),
        "radius": radius, "font": font, "notes": notes,
    }


def _first_slots(data: dict, services: list[dict], widget) -> dict | None:
    """The first week of slots, rendered into the page when the flow starts at the times step.

    Saves the availability round trip before the first slots; the page uses them
    when the visitor's detected zone is the one they were computed in, else it fetches.
    """
    pre = data["pre"]
    service = next((s for s in services if s["key"] == pre["service"]), None)
    if service is None:
        return None
    staff = pre["staff"] if pre["staff"] in service["staff"] else None
    if staff is None and widget.show_staff_step and len(service["staff"]) > 1:
        return None
    locations = [l for l in service["locations"] if not pre["location"] or l == pre["location"]]
    if len(locations) != 1:
        return None
    tz = next((l["timezone"] for l in data["locations"] if l["key"] == locations[0]), data["tz"])
    now = utcnow()
    today = now.astimezone(ZoneInfo(tz)).date()
    query = AvailabilityQuery(service=service["key"], date_from=today, date_to=today + dt.timedelta(days=FIRST_DAYS - 1),
                              timezone=tz, location=locations[0], staff=staff)
    try:
        slots, group = query_slots(db.session, query, now)
    except ApiError:
        return None
    return {
        "service": service["key"], "location": locations[0], "staff": staff, "tz": tz, "from": today.isoformat(),
        "days": FIRST_DAYS,
        "slots": [{"start": booking.iso(s.start), **({"seats_left": dict(s.seats_left or {})} if group else {})} for s in slots],
    }


@lru_cache(maxsize=4)
def _inline_asset(name: str) -> Markup:
    """A static file's text, read once, for inlining into the frame (it has no "<" that could end the element)."""
    text = (Path(__file__).resolve().parent / "static" / name).read_text()
    if "</" in text:
        raise ValueError(f"{name} cannot be inlined safely")
    return Markup(text)


def frame_csp(widget, nonce: str) -> str:
    ancestors = " ".join(["'self'", *widget.allowed_origins])
    return (
        f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; img-src 'self' https: data:; "
        f"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )


def frame_data(tenant: Tenant, widget, args, lang: str, look: dict) -> dict:
    """Everything the booking flow needs before its first request: catalogue, form, texts, first slots."""
    own_origin = request.host_url.rstrip("/")
    parent = (args.get("origin") or "").rstrip("/")
    # Messages go only to an origin the business allowed (or to our own admin preview).
    parent_origin = parent if parent in widget.allowed_origins or parent == own_origin else None
    cat = public_catalogue(db.session)
    services = cat.frame_services
    hidden = set(widget.hidden_fields or [])
    # The embed code may hide optional questions only: the API still requires the required ones.
    embed_hidden = {h for h in (args.get("hide") or "").split(",") if h}
    fields = {key: [f for f in rows if f["key"] not in hidden and not (f["key"] in embed_hidden and not f["required"])]
              for key, rows in cat.fields.items()}
    data = {
        "tenant": tenant.slug, "business": tenant.name, "currency": tenant.currency, "tz": tenant.timezone,
        "now": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), "lang": lang, "t": i18n.strings(lang),
        "api": f"/api/v1/public/{tenant.slug}", "portal": f"/portal/{tenant.slug}/manage/",
        "widget": widget_json(widget), "parent_origin": parent_origin,
        # Only the loader's popup and floating modes have something to close.
        "closable": args.get("closable") == "1",
        "pre": {
            "service": args.get("service") or widget.default_service,
            "location": args.get("location") or widget.default_location,
            "staff": args.get("staff") or None,
        },
        "hide_phone": not widget.show_phone or "phone" in embed_hidden,
        "locations": cat.locations, "services": services, "staff": cat.frame_staff, "fields": fields, "consents": cat.consents,
        "notes": look["notes"],
    }
    data["inline"] = _first_slots(data, services, widget)
    return data


def embedding_origin(args) -> str | None:
    """The origin of the page framing this request: the loader's `origin` parameter, else (a plain
    iframe) the Referer's origin when the browser says the request is for a frame; None when unknown."""
    from urllib.parse import urlsplit

    claimed = (args.get("origin") or "").rstrip("/")
    if claimed:
        return claimed
    if request.headers.get("Sec-Fetch-Dest") == "iframe" and request.referrer:
        parts = urlsplit(request.referrer)
        if parts.scheme in ("http", "https") and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def _not_allowed_here(tenant: Tenant, widget, lang: str, origin: str) -> Response:
    """A page embedding the widget from an origin the business did not allow gets a small page with a
    link to the booking page (frameable anywhere: it holds no booking form and no data), not the
    browser's broken-frame icon. The booking frame itself stays limited by frame-ancestors."""
    from app.links import public_base

    booking_url = f"{public_base(tenant)}/widget/v1/{tenant.slug}/{widget.public_id}/frame?lang={lang}"
    html = render_template("widget/not_allowed.html", lang=lang, business=tenant.name, url=booking_url,
                           t=i18n.strings(lang), origin=origin)
    discard()
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                                   "form-action 'none'; frame-ancestors *")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response


@bp.get("/<tenant_slug>/<public_id>/frame")
def frame(tenant_slug: str, public_id: str):
    tenant, widget = _widget_or_404(tenant_slug, public_id)
    args = request.args
    lang = i18n.pick(args.get("lang") or (widget.language if widget.language != "auto" else None),
                     request.accept_languages, tenant.locale)
    embedder = embedding_origin(args)
    if embedder and embedder != request.host_url.rstrip("/") and embedder not in widget.allowed_origins:
        return _not_allowed_here(tenant, widget, lang, embedder)
    look = _look(widget, args)
    data = frame_data(tenant, widget, args, lang, look)
    nonce = secrets.token_urlsafe(12)
    # Read before discard(), which expires the rows (reading them after would query again).
    logo, business, csp = widget.logo_url or tenant.logo_url, tenant.name, frame_csp(widget, nonce)
    discard()  # a read: hand the connection back before rendering
    inline = data["inline"]
    # Drawn here only when flow.js would start at exactly these times (same staff choice, no step before).
    first = prerender.time_screen(
        inline, [data["tz"], inline["tz"]], prerender.visitor_locale(lang, request.accept_languages), data["t"]["seats_left"],
    ) if inline and inline["staff"] == data["pre"]["staff"] else None
    # No "<" at all inside the script element ("</script", "<!--" would change how it parses).
    payload = Markup(json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"))
    html = render_template(
        "widget/frame.html", data=payload, lang=lang, nonce=nonce, primary=look["primary"], accent=look["accent"],
        radius=look["radius"], font=look["font"], logo=logo, business=business, t=data["t"], first=first, closable=data["closable"],
        # Inlined: two round trips fewer before the first slots show (about 9 KB, gzipped with the page).
        css=_inline_asset("widget.css"), js=_inline_asset("flow.js"),
    )
    body = html.encode()
    response = Response(body, mimetype="text/html")
    if _wants_gzip():
        response.set_data(gzip.compress(body, 6, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Content-Security-Policy"] = csp
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/<tenant_slug>/<public_id>/demo")
def demo(tenant_slug: str, public_id: str):
    """A test page on our own origin embedding the widget in its mode (frame-ancestors always allows 'self')."""
    tenant, widget = _widget_or_404(tenant_slug, public_id)
    discard()
    return render_template("widget/demo.html", tenant=tenant, widget=widget)
