"""Customer portal: /portal/<tenant>/ — sign in by magic link or manage link, then manage own bookings.

HTML pages, no JavaScript needed. A signed-in customer is remembered in the
Flask session per tenant (`portal` → {slug: customer id}); every appointment is
fetched by (customer, id). Forms carry a per-session CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, session, url_for

from flask_babel import force_locale, gettext

from app.errors import ApiError
from app.extensions import db
from app.i18n import N_
from app.models import tenant as m
from app.notifications.templating import format_local
from app.services import booking, forms, portal
from app.tenancy import public_tenant
from app.uow import discard, run_unit
from app.widget import i18n
from app.widget.api import utcnow

bp = Blueprint("portal", __name__, url_prefix="/portal/<tenant_slug>", template_folder="templates")

STATUS_LABELS = {m.STATUS_PENDING: N_("Pending"), m.STATUS_CONFIRMED: N_("Confirmed"),
                 m.STATUS_CANCELLED: N_("Cancelled"), m.STATUS_COMPLETED: N_("Completed"),
                 m.STATUS_NO_SHOW: N_("Not attended")}


@bp.url_value_preprocessor
def _resolve_tenant(endpoint, values):
    try:
        g.tenant_row = public_tenant(db.session, values.pop("tenant_slug", None) or "")
    except ApiError as exc:
        # Before the language and branding are known: a plain error page (404 unknown, 403 suspended).
        abort(exc.status, exc.message)


@bp.url_defaults
def _add_tenant(endpoint, values):
    if "tenant_slug" not in values and g.get("tenant") is not None:
        values["tenant_slug"] = g.tenant.slug


@bp.before_request
def _csrf_and_language():
    if request.method == "POST" and current_app.config.get("WTF_CSRF_ENABLED", True):
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("portal_csrf", "")):
            abort(400, "the form expired; please go back and try again")
    customer = _customer(optional=True)
    wanted = request.args.get("lang") or (customer.locale if customer else None)
    g.lang = i18n.pick(wanted, request.accept_languages, g.tenant.locale)
    g.portal_customer = customer


@bp.after_request
def _headers(response):
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'nonce-" + g.get("nonce", "x") + "'; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    discard()
    return page("portal/error.html", exc.status, message=exc.message, code=exc.code)


def csrf_token() -> str:
    if "portal_csrf" not in session:
        session["portal_csrf"] = secrets.token_urlsafe(24)
    return session["portal_csrf"]


def _branding() -> dict:
    row = g.tenant_row
    primary = forms.adjust_for_contrast(row.primary_color) if forms.HEX_RE.match(row.primary_color or "") else "#1d4ed8"
    accent = forms.adjust_for_contrast(row.accent_color) if forms.HEX_RE.match(row.accent_color or "") else "#0f766e"
    font = row.font_family if row.font_family and all(c.isalnum() or c in " ,-" for c in row.font_family) else "system-ui, sans-serif"
    return {"name": row.name, "logo": row.logo_url, "primary": primary, "accent": accent, "font": font}


def page(template: str, status: int = 200, **context):
    g.nonce = secrets.token_urlsafe(12)
    # The portal's own choice (link, customer, browser, business), not the admin's session language.
    with force_locale(g.lang):
        html = render_template(template, lang=g.lang, brand=_branding(), nonce=g.nonce, csrf=csrf_token(),
                               customer=g.get("portal_customer"), when=_when, status_label=_status_label, **context)
    return html, status


def _status_label(status: str) -> str:
    return gettext(STATUS_LABELS[status]) if status in STATUS_LABELS else status


def _tz(appt: m.Appointment | None = None) -> str:
    customer = g.get("portal_customer")
    return (customer.timezone if customer and customer.timezone else None) or (appt.timezone if appt else None) or g.tenant.timezone


def _when(instant: dt.datetime, tz: str | None = None) -> str:
    zone = tz or _tz()
    try:
        return format_local(instant, zone, g.lang) + f" ({zone})"
    except Exception:
        return booking.iso(instant)


def _customer(optional: bool = False) -> m.Customer | None:
    customer_id = (session.get("portal") or {}).get(g.tenant.slug)
    customer = db.session.get(m.Customer, customer_id) if customer_id else None
    if customer is None and not optional:
        abort(redirect(url_for("portal.home")))
    return customer


def _sign_in(customer: m.Customer) -> None:
    signed = dict(session.get("portal") or {})
    signed[g.tenant.slug] = customer.id
    session["portal"] = signed
    # A fresh CSRF token per sign-in.
    session["portal_csrf"] = secrets.token_urlsafe(24)


# --------------------------------------------------------------------------- sign in


@bp.get("/")
def home():
    customer = g.portal_customer
    if customer is None:
        return page("portal/login.html")
    upcoming, past = portal.own_appointments(db.session, customer.id, utcnow())
    return page("portal/home.html", upcoming=upcoming, past=past)


@bp.post("/login")
def login():
    email = request.form.get("email", "")
    # PUBLIC_URL, not the request's Host header: a forged Host must not put a foreign link into the mail.
    from app.links import public_base

    base = public_base(g.tenant)  # the business's verified custom domain, else PUBLIC_URL
    link_base = base + url_for("portal.auth", token="")
    try:
        run_unit(lambda: portal.request_magic_link(db.session, g.tenant, email, request.remote_addr, utcnow(), link_base,
                                                   g.tenant.name))
    except portal.RateLimited as exc:
        return page("portal/login.html", 429, error=exc.message)
    except ApiError as exc:
        return page("portal/login.html", 422, error=exc.message, email=email)
    return page("portal/login.html", sent=True)


@bp.get("/auth/<token>")
def auth(token: str):
    # Mail scanners follow links: a GET only shows a button, the POST spends the token.
    return page("portal/auth.html", token=token)


@bp.post("/auth/<token>")
def auth_confirm(token: str):
    customer = run_unit(lambda: portal.consume_magic_link(db.session, token, utcnow()))
    _sign_in(customer)
    return redirect(url_for("portal.home"), 303)


@bp.get("/manage/<token>")
def manage(token: str):
    appt = booking.find_by_token(db.session, token)
    if appt.customer is None:  # imported bookings may have no customer to sign in as
        abort(404)
    _sign_in(appt.customer)
    return redirect(url_for("portal.appointment", appointment_id=appt.id), 303)


@bp.post("/logout")
def logout():
    signed = dict(session.get("portal") or {})
    signed.pop(g.tenant.slug, None)
    session["portal"] = signed
    return redirect(url_for("portal.home"), 303)


# --------------------------------------------------------------------------- appointments


def _deadlines(appt: m.Appointment) -> dict:
    return {
        "cancel": appt.start_at - dt.timedelta(minutes=appt.service.cancel_window_min),
        "reschedule": appt.start_at - dt.timedelta(minutes=appt.service.reschedule_window_min),
    }


def _appointment_page(appt: m.Appointment, status: int = 200, **extra):
    from app.links import public_base

    now = utcnow()
    organizer = g.tenant_row.contact_email or current_app.config["MAIL_FROM"]
    url = public_base() + url_for("portal.appointment", appointment_id=appt.id)
    links = portal.calendar_links(g.tenant, organizer, appt, url) if appt.status != m.STATUS_CANCELLED else None
    return page("portal/appointment.html", status, appt=appt, now=now, deadlines=_deadlines(appt),
                answers=forms.answer_rows(db.session, appt), tz=_tz(appt), calendar_links=links, **extra)


@bp.get("/appointments/<appointment_id>")
def appointment(appointment_id: str):
    customer = _customer()
    appt = portal.own_appointment(db.session, customer.id, appointment_id)
    return _appointment_page(appt, notice=request.args.get("done"))


@bp.post("/appointments/<appointment_id>/cancel")
def cancel(appointment_id: str):
    customer = _customer()
    appt = portal.own_appointment(db.session, customer.id, appointment_id)
    reason = (request.form.get("reason") or "").strip() or None
    # Cancelling asks once more (a server-side step, works without script); a cancel the policy
    # window refuses is not asked about, the refusal comes at once.
    if request.form.get("confirm") != "yes" and utcnow() <= _deadlines(appt)["cancel"] and appt.status != "cancelled":
        return _appointment_page(appt, confirm_cancel=True, reason=reason or "")
    try:
        booking.with_deadlock_retry(
            lambda: booking.cancel(db.session, g.tenant, f"customer:{customer.id}", appt, utcnow(), reason=reason), db.session
        )
    except ApiError as exc:
        return _appointment_page(appt, exc.status, error=exc.message)
    return redirect(url_for("portal.appointment", appointment_id=appt.id, done="cancelled"), 303)


@bp.route("/appointments/<appointment_id>/reschedule", methods=["GET", "POST"])
def reschedule(appointment_id: str):
    customer = _customer()
    appt = portal.own_appointment(db.session, customer.id, appointment_id)
    tz = _tz(appt)
    now = utcnow()
    error, status = None, 200
    if request.method == "POST":
        raw = request.form.get("start", "")
        try:
            start = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if start.tzinfo is None:
                raise ValueError
        except ValueError:
            error, status = f"{raw!r} is not a time", 422
        else:
            try:
                booking.with_deadlock_retry(
                    lambda: booking.reschedule(db.session, g.tenant, f"customer:{customer.id}", appt, start, now), db.session
                )
            except ApiError as exc:
                error, status = exc.message, exc.status
            else:
                return redirect(url_for("portal.appointment", appointment_id=appt.id, done="rescheduled"), 303)
    try:
        day = dt.date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        day = max(now, appt.start_at - dt.timedelta(days=3)).astimezone(ZoneInfo(tz)).date()
    slots = portal.free_slots(db.session, appt, day, 7, tz, now) if appt.status != m.STATUS_CANCELLED else []
    days: dict[dt.date, list] = {}
    for slot in slots:
        days.setdefault(slot["local"].date(), []).append(slot)
    discard()  # a read: hand the connection back before rendering
    return page("portal/reschedule.html", status, appt=appt, days=days, day=day, tz=tz, error=error,
                later=(day + dt.timedelta(days=7)).isoformat(), earlier=(day - dt.timedelta(days=7)).isoformat(),
                deadline=_deadlines(appt)["reschedule"], now=now)


@bp.get("/appointments/<appointment_id>.ics")
def appointment_ics(appointment_id: str):
    customer = _customer()
    appt = portal.own_appointment(db.session, customer.id, appointment_id)
    organizer = g.tenant_row.contact_email or current_app.config["MAIL_FROM"]
    from app.links import public_base

    url = public_base(g.tenant) + url_for("portal.appointment", appointment_id=appt.id)
    body = portal.appointment_ics(g.tenant, organizer, appt, url)
    return Response(body, mimetype="text/calendar", headers={"Content-Disposition": 'attachment; filename="appointment.ics"'})


# --------------------------------------------------------------------------- profile and data


@bp.route("/profile", methods=["GET", "POST"])
def profile():
    customer = _customer()
    error, status, saved = None, 200, False
    if request.method == "POST":
        form = request.form

        def save():
            if form.get("section") == "prefs":
                portal.set_preferences(db.session, customer, bool(form.get("email_reminders")), bool(form.get("sms")),
                                       bool(form.get("marketing")), g.tenant.slug)
            else:
                portal.update_contact(db.session, customer, form.get("name", ""), form.get("phone"), form.get("locale"),
                                      booking.zone_country(g.tenant.timezone), g.tenant.slug)

        try:
            run_unit(save)
            saved = True
            g.lang = i18n.pick(request.args.get("lang") or customer.locale, request.accept_languages, g.tenant.locale)
        except ApiError as exc:
            error, status = exc.message, exc.status
    return _profile_page(customer, status, error=error, saved=saved)


def _profile_page(customer: m.Customer, status: int = 200, **extra):
    # Creates the customer's preference row on first sight.
    prefs = run_unit(lambda: portal.preferences(db.session, customer))
    extra.setdefault("error", None)
    extra.setdefault("saved", False)
    return page("portal/profile.html", status, prefs=prefs, feed_active=portal.feed_active(db.session, customer),
                **extra)


@bp.post("/calendar-feed")
def calendar_feed():
    """Subscribe to my bookings: a new private iCalendar URL, shown once (the old one stops working); or revoke it."""
    from app.links import public_base

    customer = _customer()
    if request.form.get("action") == "revoke":
        run_unit(lambda: portal.revoke_feed(db.session, customer))
        return _profile_page(customer, feed_revoked=True)
    token = run_unit(lambda: portal.subscribe_feed(db.session, customer))
    url = public_base() + url_for("calendar_hooks.feed", slug=g.tenant.slug, token=token)
    webcal = "webcal://" + url.split("://", 1)[1]
    return _profile_page(customer, feed_url=url, feed_webcal=webcal)


@bp.get("/export.json")
def export():
    customer = _customer()
    data = run_unit(lambda: portal.export_data(db.session, g.tenant, customer))
    return Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{g.tenant.slug}-my-data.json"'})


@bp.post("/erase")
def erase():
    customer = _customer()
    run_unit(lambda: portal.request_erasure(db.session, customer, request.remote_addr))
    return _profile_page(customer, erased=True)
