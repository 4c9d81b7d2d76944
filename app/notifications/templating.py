"""Notification templates: validation, rendering, platform defaults and precedence.

Templates are Jinja2 sources written by tenant and agency admins, so they run in a
locked-down sandbox (see "Safety" below) with ``StrictUndefined``: a typo is an
error at save time (``validate_template``), not a blank in a customer's inbox.

Variables
---------
Every name below is always present in a render context. ``location`` and
``previous`` may be ``None`` (online appointment; not a reschedule), so templates
must guard them with ``{% if location %}``. Any other value may be ``None`` when
unknown; ``None`` prints as an empty string.

- ``customer``: ``name``, ``email``, ``phone``
- ``service``: ``name``, ``duration_min`` (int), ``price`` (formatted with currency)
- ``staff``: ``name``, ``email``
- ``location``: ``name``, ``address``, ``phone``, ``map_url``, ``directions_url``
- ``appointment``: ``start_local``, ``end_local`` (date and time in the recipient's
  time zone: the customer's for customer messages), ``date``, ``time``,
  ``timezone`` (localized zone name), ``status``, ``seats`` (int),
  ``manage_url``, ``meeting_url``, ``ics_url``, ``cancel_reason``,
  ``google_calendar_url``, ``outlook_calendar_url`` ("add to Google Calendar / Outlook"
  links of the appointment; customer messages of a live appointment only, else ``None``)
- ``business``: ``name``, ``phone``, ``email``
- ``previous``: ``start_local`` (the old time of a rescheduled appointment)

``format_when`` and ``format_price`` produce the formatted values.

Whitespace: ``trim_blocks`` and ``lstrip_blocks`` are on, so a ``{% if %}`` tag on its
own line leaves no blank line behind.

Safety
------
Beyond Jinja's sandbox (no ``_private`` attributes, immutable values):

- no globals (``range``, ``dict``, ...) and only the filters in ``ALLOWED_FILTERS``
  (``safe`` is not among them: customer values must stay escaped in HTML);
- only the statements ``{% if %}``/``{% elif %}``/``{% else %}`` (no set, for,
  macro, include), so output size grows at most linearly with the source;
- on strings only the methods in ``SAFE_STR_METHODS``; ``*``, ``**`` and ``%`` are
  checked; any string a filter, method or operator builds is capped at
  ``MAX_STRING`` characters, so a template cannot exhaust a worker's memory.

The same checks run in ``render``: a template stored before a rule existed
cannot bypass it.

Precedence (``resolve_template``)
---------------------------------
The customer's language beats customisation: for the requested language
(``de-AT`` tries ``de-AT`` then ``de``), then for ``en``, take the first of
tenant override, agency override, platform default. A tenant that customised only
its English confirmation therefore still sends the platform's German text to a
German customer rather than its own English one.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_timezone_name
from babel.numbers import format_currency
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.i18n import LANGUAGES, NC_, N_, translations

EVENTS = (
    "booking_confirmed",
    "booking_confirmed_staff",
    "rescheduled",
    "rescheduled_staff",
    "cancelled",
    "cancelled_staff",
    "reminder",
    "follow_up",
    "no_show",
    "meeting_ready",
)
CHANNELS = ("email", "sms")
FALLBACK_LANGUAGE = "en"

VARIABLES: dict[str, frozenset[str]] = {
    "customer": frozenset({"name", "email", "phone"}),
    "service": frozenset({"name", "duration_min", "price"}),
    "staff": frozenset({"name", "email"}),
    "location": frozenset({"name", "address", "phone", "map_url", "directions_url"}),
    "appointment": frozenset({
        "start_local", "end_local", "date", "time", "timezone", "status", "seats",
        "manage_url", "meeting_url", "ics_url", "cancel_reason", "google_calendar_url", "outlook_calendar_url",
    }),
    "business": frozenset({"name", "phone", "email"}),
    "previous": frozenset({"start_local"}),
}
OPTIONAL_OBJECTS = frozenset({"location", "previous"})

ALLOWED_FILTERS = frozenset({
    "capitalize", "d", "default", "e", "escape", "first", "float", "int", "join",
    "last", "length", "lower", "replace", "round", "string", "striptags", "title",
    "trim", "truncate", "upper", "urlencode", "wordcount",
})
SAFE_STR_METHODS = frozenset({
    "capitalize", "endswith", "lower", "lstrip", "replace", "rstrip", "split",
    "startswith", "strip", "title", "upper",
})
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.CondExpr, nodes.Filter, nodes.Test,
    nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
    nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod,
    nodes.Pow, nodes.Call, nodes.Keyword, nodes.Tuple, nodes.List,
)

MAX_STRING = 100_000
MAX_SOURCE = {"subject": 1_000, "body_text": 50_000, "body_html": 100_000}
SMS_MAX_CHARS = 1_600  # Twilio rejects longer bodies (error 21617)


# --------------------------------------------------------------------------- types

@dataclass(frozen=True)
class MessageTemplate:
    """One event × channel × language template; SMS templates leave subject and html empty."""

    channel: str
    body_text: str
    subject: str = ""
    body_html: str = ""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class TemplateError:
    """A validation finding, meant for the admin form: ``field`` names the input."""

    field: str
    message: str
    line: int | None = None


class TemplateRenderError(Exception):
    """A template failed at send time; retrying will not help."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ResolvedTemplate:
    template: MessageTemplate
    source: str  # "tenant" | "agency" | "platform"
    language: str


TemplateKey = tuple[str, str, str]  # (event, channel, language)


# --------------------------------------------------------------------- environment

class _UnsafeTemplate(Exception):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


# Per render: characters (and items) built so far may not pass RENDER_BUDGET, and the
# render may not run longer than RENDER_SECONDS. No loops exist, so together with the
# per-value caps this bounds memory and CPU at preview, save and send.
MAX_ITEMS = 10_000
RENDER_BUDGET = 1_000_000
RENDER_SECONDS = 1.0
_BUDGET: contextvars.ContextVar[list | None] = contextvars.ContextVar("template_budget", default=None)


def _spend(size: int) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget[0] -= size
    if budget[0] < 0:
        raise SecurityError(f"the template builds more than {RENDER_BUDGET} characters in all")
    if time.monotonic() > budget[1]:
        raise SecurityError(f"the template took longer than {RENDER_SECONDS} s to render")


def _check_size(size: int, items: bool = False) -> None:
    limit = MAX_ITEMS if items else MAX_STRING
    if size > limit:
        what = "a list longer than" if items else "a string longer than"
        raise SecurityError(f"expression builds {what} {limit} {'items' if items else 'characters'}")
    _spend(size)


def _cap(value: Any) -> Any:
    if isinstance(value, str):
        _check_size(len(value))
    elif isinstance(value, (list, tuple)):
        _check_size(len(value), items=True)
    else:
        _spend(0)
    return value


def _replace_size(text: Any, old: Any, new: Any, count: Any = None) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and 0 <= count < hits:
        hits = count
    return len(text) + hits * max(0, len(new) - len(old))


def _precheck(name: str, args: tuple, kwargs: dict) -> None:
    """Refuse a filter call whose result would be too big, before it is built."""
    if name == "replace" and len(args) >= 3:
        _check_size(_replace_size(*args[:4]))
    elif name == "join" and args:
        # join(context, value, d="", attribute=None) for the pass_eval_context filter.
        seq = args[1] if len(args) > 1 and not isinstance(args[0], (str, list, tuple)) else args[0]
        rest = args[2:] if seq is not args[0] else args[1:]
        sep = kwargs.get("d", rest[0] if rest else "")
        if isinstance(seq, (str, list, tuple)) and isinstance(sep, str):
            _check_size(len(seq) * len(sep) + sum(len(str(x)) for x in seq[:MAX_ITEMS]))


def _capped_filter(func, name: str = ""):
    # functools.wraps copies __dict__, which carries Jinja's pass_context markers.
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _precheck(name, args, kwargs)
        return _cap(func(*args, **kwargs))

    return wrapper


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # Context objects are plain dicts read by key; attribute access is only for
        # a few string methods. Everything else (dict.items, int.to_bytes...) is off.
        return isinstance(obj, str) and attr in SAFE_STR_METHODS

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's signature)
        if getattr(__obj, "__name__", None) == "replace" and isinstance(getattr(__obj, "__self__", None), str):
            _check_size(_replace_size(__obj.__self__, *args[:3]))
        return _cap(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed")
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            # A chain of powers grows the digits exponentially with a linear source.
            if abs(right) > 64 or left.bit_length() * abs(right) > 4096:
                raise SecurityError("number too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                    _check_size(len(seq) * max(count, 0), items=not isinstance(seq, str))
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 4096:
                raise SecurityError("number too large")
        return _cap(super().call_binop(context, operator, left, right))


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _make_env(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.globals.clear()
    env.filters = {name: _capped_filter(f, name) for name, f in env.filters.items() if name in ALLOWED_FILTERS}
    return env


_TEXT_ENV = _make_env(autoescape=False)
_HTML_ENV = _make_env(autoescape=True)


def _static_problems(source: str, env: _Sandbox) -> list[tuple[str, int | None]]:
    """Problems found without rendering; raises TemplateSyntaxError for bad syntax."""
    ast = env.parse(source)
    problems: list[tuple[str, int | None]] = []
    for node in ast.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            what = type(node).__name__.lower()
            problems.append((f"'{what}' is not allowed in notification templates; "
                             "use only {{ ... }} and {% if %}", node.lineno))
    for name in sorted(meta.find_undeclared_variables(ast) - VARIABLES.keys()):
        problems.append((f"unknown variable '{name}'; available: {', '.join(sorted(VARIABLES))}", None))

    # No statement can rebind a name (only {% if %} is allowed), so a root name
    # here is always the context object.
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) else None)
        if not isinstance(attr, str):
            continue
        if attr.startswith("_"):
            problems.append((f"access to '{attr}' is not allowed", node.lineno))
            continue
        target = node.node
        if isinstance(target, nodes.Name) and target.name in VARIABLES:
            allowed = VARIABLES[target.name]
            if attr not in allowed:
                problems.append((f"unknown variable '{target.name}.{attr}'; "
                                 f"{target.name} has: {', '.join(sorted(allowed))}", node.lineno))
    return problems


def _syntax_message(exc: TemplateSyntaxError) -> str:
    # The environments only hold ALLOWED_FILTERS, so Jinja reports a forbidden
    # filter as unknown; say which ones exist.
    if exc.message and exc.message.startswith("No filter named"):
        return f"{exc.message} Allowed filters: {', '.join(sorted(ALLOWED_FILTERS))}."
    return exc.message or "syntax error"


@functools.lru_cache(maxsize=512)
def _compile(source: str, autoescape: bool):
    env = _HTML_ENV if autoescape else _TEXT_ENV
    problems = _static_problems(source, env)
    if problems:
        message, line = problems[0]
        raise _UnsafeTemplate(message, line)
    return env.from_string(source)


def _render_field(field: str, source: str, context: Mapping[str, Any], autoescape: bool) -> str:
    budget = _BUDGET.set([RENDER_BUDGET, time.monotonic() + RENDER_SECONDS])
    try:
        return _compile(source, autoescape).render(context)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(field, f"line {exc.lineno}: {_syntax_message(exc)}") from exc
    except _UnsafeTemplate as exc:
        raise TemplateRenderError(field, str(exc)) from exc
    except JinjaTemplateError as exc:  # UndefinedError, SecurityError
        raise TemplateRenderError(field, str(exc)) from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateRenderError(field, f"{type(exc).__name__}: {exc}") from exc
    except MemoryError as exc:
        raise TemplateRenderError(field, "the template needs too much memory") from exc
    finally:
        _BUDGET.reset(budget)


_WHITESPACE = re.compile(r"\s+")

# CLDR formats put narrow and no-break spaces into times ("1:30\u202fPM") and French
# punctuation; outside GSM-7 a single such character makes the whole SMS UCS-2,
# which fits 70 characters per segment instead of 160.
_SMS_PLAIN = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2019": "'",
                            "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def render(template: MessageTemplate, context: Mapping[str, Any]) -> RenderedMessage:
    """Render all parts; HTML autoescapes values, text and SMS do not. Raises TemplateRenderError."""
    # A header may not hold a line break, and a customer name could bring one.
    subject = _WHITESPACE.sub(" ", _render_field("subject", template.subject, context, False)).strip()
    text = _render_field("body_text", template.body_text, context, False)
    html = _render_field("body_html", template.body_html, context, True) if template.body_html else None
    if template.channel == "sms":
        text = text.strip().translate(_SMS_PLAIN)
    return RenderedMessage(subject=subject, text=text, html=html)


# ---------------------------------------------------------------------- validation

def validate_template(subject: str, body_text: str, body_html: str, channel: str,
                      event: str | None = None) -> list[TemplateError]:
    """Every problem an admin must fix before saving; an empty list means the template is usable.

    With ``event="rescheduled"`` the template may use ``previous`` without a guard.
    """
    if channel not in CHANNELS:
        return [TemplateError("channel", f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")]
    subject, body_text, body_html = subject or "", body_text or "", body_html or ""
    errors: list[TemplateError] = []
    if channel == "email" and not subject.strip():
        errors.append(TemplateError("subject", "an email needs a subject"))
    if not body_text.strip():
        errors.append(TemplateError("body_text", "the text body is empty"))
    if channel == "sms":
        if subject.strip():
            errors.append(TemplateError("subject", "an SMS has no subject; leave it empty"))
        if body_html.strip():
            errors.append(TemplateError("body_html", "an SMS has no HTML part; leave it empty"))

    fields = {"subject": subject, "body_text": body_text, "body_html": body_html}
    usable: dict[str, str] = {}
    for field, source in fields.items():
        if not source:
            continue
        if len(source) > MAX_SOURCE[field]:
            errors.append(TemplateError(field, f"too long ({len(source)} characters; at most {MAX_SOURCE[field]})"))
            continue
        env = _HTML_ENV if field == "body_html" else _TEXT_ENV
        try:
            problems = _static_problems(source, env)
            if not problems:
                env.from_string(source)  # unknown tests only surface when compiling
        except TemplateSyntaxError as exc:
            errors.append(TemplateError(field, f"line {exc.lineno}: {_syntax_message(exc)}", exc.lineno))
            continue
        if problems:
            errors.extend(TemplateError(field, message, line) for message, line in problems)
        else:
            usable[field] = source

    # Static checks cannot see what only fails on real data (a method on None,
    # an unguarded optional object), so render against a full and a sparse sample.
    optional = sorted(OPTIONAL_OBJECTS - ({"previous"} if event == "rescheduled" else set()))
    full = sample_context("en")
    sparse = {**full, **{name: None for name in optional}}
    empty = " or ".join(optional)
    guards = " or ".join(f"{{% if {name} %}}...{{% endif %}}" for name in optional)
    for field, source in usable.items():
        autoescape = field == "body_html"
        for ctx, when in ((full, ""), (sparse, f" when {empty} is empty")):
            try:
                out = _render_field(field, source, ctx, autoescape)
            except TemplateRenderError as exc:
                hint = f" (wrap it in {guards})" if when else ""
                errors.append(TemplateError(field, f"fails to render{when}: {exc.message}{hint}"))
                break
            if channel == "sms" and field == "body_text" and len(out.strip()) > SMS_MAX_CHARS:
                errors.append(TemplateError(field, f"the SMS renders to {len(out.strip())} characters; "
                                                   f"at most {SMS_MAX_CHARS} can be sent"))
                break
    return errors


# ------------------------------------------------------------------- formatting

def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(language.replace("-", "_").split("_")[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse(FALLBACK_LANGUAGE)


def format_local(instant: datetime, tz_name: str, language: str) -> str:
    """``instant`` as date and short time in ``tz_name``, in the words of ``language``."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    locale = _locale(language)
    local = instant.astimezone(ZoneInfo(tz_name))
    date = format_date(local, "full", locale=locale)
    time = format_time(local, "short", locale=locale)
    # Babel's own datetime patterns quote literals ("{1} 'at' {0}"); it strips the quotes the same way.
    return locale.datetime_formats["full"].replace("'", "").format(time, date)


def format_when(start: datetime, end: datetime, tz_name: str, language: str) -> dict[str, str]:
    """The appointment time fields of a render context for one recipient's zone and language."""
    locale = _locale(language)
    zone = ZoneInfo(tz_name)
    local = start.astimezone(zone)
    return {
        "start_local": format_local(start, tz_name, language),
        "end_local": format_local(end, tz_name, language),
        "date": format_date(local, "full", locale=locale),
        "time": format_time(local, "short", locale=locale),
        "timezone": get_timezone_name(local, width="long", locale=locale),
    }


def format_price(amount: Decimal | int | float | None, currency: str, language: str) -> str | None:
    """A price with its currency in the customer's language ("45,00 €"); ``None`` stays ``None``."""
    if amount is None:
        return None
    return format_currency(amount, currency, locale=_locale(language))


# ----------------------------------------------------------------- sample context

# language: (customer, email, time zone, currency, phone, staff, location, address)
_SAMPLE_PEOPLE = {
    "en": ("Emma Wilson", "emma.wilson@example.com", "Europe/London", "GBP", "+44 20 7946 0958",
           "Oliver Bennett", "Riverside Studio", "12 Riverside Walk, London SE1 9PP"),
    "de": ("Lena Fischer", "lena.fischer@example.com", "Europe/Berlin", "EUR", "+49 30 901820",
           "Jonas Weber", "Studio Mitte", "Torstraße 140, 10119 Berlin"),
    "fr": ("Camille Martin", "camille.martin@example.com", "Europe/Paris", "EUR", "+33 1 42 68 53 00",
           "Julien Moreau", "Atelier République", "12 rue de la République, 69002 Lyon"),
    "es": ("Lucía García", "lucia.garcia@example.com", "Europe/Madrid", "EUR", "+34 912 345 678",
           "Pablo Ruiz", "Estudio Centro", "Calle de Alcalá 45, 28014 Madrid"),
}
_SAMPLE_SERVICE = N_("Haircut & styling")
_SAMPLE_START = datetime(2026, 3, 17, 13, 30, tzinfo=timezone.utc)


def sample_context(language: str) -> dict[str, Any]:
    """A realistic render context for previews and validation (fixed dates, no clock read)."""
    lang = language if language in _SAMPLE_PEOPLE else FALLBACK_LANGUAGE
    customer, email, tz_name, currency, phone, staff, loc_name, address = _SAMPLE_PEOPLE[lang]
    start = _SAMPLE_START
    end = start + timedelta(minutes=45)
    previous_start = start - timedelta(days=2, hours=1)
    base = "https://book.example.com/riverside"
    return {
        "customer": {"name": customer, "email": email, "phone": phone},
        "service": {"name": translations(lang).gettext(_SAMPLE_SERVICE), "duration_min": 45,
                    "price": format_price(Decimal("45.00"), currency, lang)},
        "staff": {"name": staff, "email": "team@example.com"},
        "location": {
            "name": loc_name,
            "address": address,
            "phone": phone,
            "map_url": "https://maps.example.com/?q=riverside",
            "directions_url": "https://maps.example.com/dir/?q=riverside",
        },
        "appointment": {
            **format_when(start, end, tz_name, lang),
            "status": "confirmed",
            "seats": 1,
            "manage_url": f"{base}/manage/8f3c2a",
            "meeting_url": None,
            "ics_url": f"{base}/manage/8f3c2a/invite.ics",
            "cancel_reason": None,
            "google_calendar_url": "https://calendar.google.com/calendar/render?action=TEMPLATE&text=Sample",
            "outlook_calendar_url": "https://outlook.live.com/calendar/0/deeplink/compose?rru=addevent&subject=Sample",
        },
        "business": {"name": loc_name, "phone": phone, "email": "hello@example.com"},
        "previous": {"start_local": format_local(previous_start, tz_name, lang)},
    }


# ------------------------------------------------------------------- precedence

def _language_candidates(language: str) -> list[str]:
    tag = (language or FALLBACK_LANGUAGE).replace("_", "-")
    out = [tag]
    primary = tag.split("-")[0].lower()
    if primary not in out:
        out.append(primary)
    if FALLBACK_LANGUAGE not in out:
        out.append(FALLBACK_LANGUAGE)
    return out


def resolve_template(
    event: str,
    channel: str,
    language: str,
    tenant_override: Mapping[TemplateKey, MessageTemplate] | None = None,
    agency_override: Mapping[TemplateKey, MessageTemplate] | None = None,
) -> ResolvedTemplate:
    """The template to send (see "Precedence" in the module docstring)."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    levels = (("tenant", tenant_override or {}), ("agency", agency_override or {}),
              ("platform", DEFAULT_TEMPLATES))
    for lang in _language_candidates(language):
        for source, table in levels:
            found = table.get((event, channel, lang))
            if found is not None:
                return ResolvedTemplate(found, source, lang)
    raise LookupError(f"no template for {event}/{channel}")  # unreachable while defaults are complete


# -------------------------------------------------------------- platform defaults
#
# Each default is a self-contained Jinja source (admins copy it into the editor),
# assembled here from phrases translated by the gettext catalogues (translations/),
# so the four languages stay in step. Phrases are plain text: the HTML builder escapes
# nothing, so they hold no "<" or "&". Their ``{{ ... }}`` and ``{% ... %}`` parts are
# template code: a translation keeps every one of them (tests/i18n checks it).

# Labels of the details block: msgctxt "email", the widget has its own wording for some.
_LABELS = dict(
    hello=NC_("email", "Hello {{ customer.name }},"),
    hello_staff=NC_("email", "Hello {{ staff.name }},"),
    when=NC_("email", "When"),
    service=NC_("email", "Service"),
    with_=NC_("email", "With"),
    where=NC_("email", "Where"),
    online=NC_("email", "Online meeting"),
    seats=NC_("email", "Seats"),
    price=NC_("email", "Price"),
    customer=NC_("email", "Customer"),
    email=NC_("email", "Email"),
    phone=NC_("email", "Phone"),
    directions=NC_("email", "Directions"),
    manage=NC_("email", "Manage your booking"),
    calendar=NC_("email", "Add to calendar"),
    google=N_("Add to Google Calendar"),
    outlook=N_("Add to Outlook"),
    previous=NC_("email", "Previously"),
    reason=NC_("email", "Reason"),
    signoff=NC_("email", "Kind regards,"),
    minutes=NC_("email", "min"),
)
# A label and its value; French puts a no-break space before the colon.
_LABEL_VALUE = N_("%(label)s: %(value)s")

# (subject, paragraphs before the details, paragraphs after, sms)
_PHRASES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "booking_confirmed": (
        N_("Booking confirmed: {{ service.name }} on {{ appointment.date }}"),
        (N_("Thank you for your booking. Your appointment is confirmed."),),
        (N_("Need to change something? You can reschedule or cancel online."),),
        N_("{{ business.name }}: your {{ service.name }} is confirmed for {{ appointment.date }}, "
           "{{ appointment.time }}. Manage: {{ appointment.manage_url }}"),
    ),
    "booking_confirmed_staff": (
        N_("New booking: {{ service.name }} with {{ customer.name }} on {{ appointment.date }}"),
        (N_("You have a new booking."),),
        (),
        N_("New booking: {{ customer.name }}, {{ service.name }}, {{ appointment.date }}, {{ appointment.time }}"),
    ),
    "rescheduled": (
        N_("Appointment moved: {{ service.name }} on {{ appointment.date }}"),
        (N_("Your appointment has been rescheduled. Here are the new details:"),),
        (),
        N_("{{ business.name }}: your {{ service.name }} has moved to {{ appointment.date }}, "
           "{{ appointment.time }}. Manage: {{ appointment.manage_url }}"),
    ),
    "cancelled": (
        N_("Appointment cancelled: {{ service.name }} on {{ appointment.date }}"),
        (N_("Your appointment for {{ service.name }} on {{ appointment.start_local }} has been cancelled."),),
        (N_("We would be happy to see you another time."),),
        N_("{{ business.name }}: your {{ service.name }} on {{ appointment.date }}, {{ appointment.time }} has been "
           "cancelled."),
    ),
    "rescheduled_staff": (
        N_("Booking moved: {{ service.name }} with {{ customer.name }} on {{ appointment.date }}"),
        (N_("A booking of yours has been rescheduled. Here are the new details:"),),
        (),
        N_("Booking moved: {{ customer.name }}, {{ service.name }}, now {{ appointment.date }}, "
           "{{ appointment.time }}"),
    ),
    "cancelled_staff": (
        N_("Booking cancelled: {{ service.name }} with {{ customer.name }} on {{ appointment.date }}"),
        (N_("The booking of {{ customer.name }} for {{ service.name }} on {{ appointment.start_local }} has been "
            "cancelled."),),
        (),
        N_("Booking cancelled: {{ customer.name }}, {{ service.name }}, {{ appointment.date }}, "
           "{{ appointment.time }}"),
    ),
    "reminder": (
        N_("Reminder: {{ service.name }} on {{ appointment.date }} at {{ appointment.time }}"),
        (N_("This is a friendly reminder of your upcoming appointment."),),
        (N_("Need to change something? You can reschedule or cancel online."),),
        N_("Reminder: {{ service.name }} at {{ business.name }} on {{ appointment.date }}, {{ appointment.time }}. "
           "Manage: {{ appointment.manage_url }}"),
    ),
    "follow_up": (
        N_("Thank you for your visit, {{ customer.name }}"),
        (N_("Thank you for visiting {{ business.name }} for your {{ service.name }}. We hope you enjoyed it and "
            "look forward to seeing you again."),),
        (N_("If you have any questions, simply reply to this email."),),
        N_("Thank you for visiting {{ business.name }}! We hope to see you again soon."),
    ),
    "no_show": (
        N_("We missed you: {{ service.name }} on {{ appointment.date }}"),
        (N_("We were expecting you for your {{ service.name }} on {{ appointment.start_local }}, but unfortunately "
            "you could not make it."),),
        (N_("If you would like a new appointment, please get in touch with us."),),
        N_("{{ business.name }}: we missed you at your {{ service.name }} on {{ appointment.date }}. Contact us to "
           "book again{% if business.phone %}: {{ business.phone }}{% endif %}."),
    ),
    "meeting_ready": (
        N_("Your meeting link: {{ service.name }} on {{ appointment.date }}"),
        (N_("The online meeting for your appointment is ready. Join it with the link below at the time of your "
            "appointment."),),
        (),
        N_("{{ business.name }}: your meeting link for {{ service.name }} on {{ appointment.date }}, "
           "{{ appointment.time }}: {{ appointment.meeting_url }}"),
    ),
}

# SMS wording avoids letters outside GSM-7 where it can (no "ô", "á"): one such
# letter bills the message as UCS-2 at 70 characters per segment.

# Which blocks each email carries.
_WITH_DETAILS = {"booking_confirmed", "booking_confirmed_staff", "rescheduled", "rescheduled_staff",
                 "cancelled_staff", "reminder", "meeting_ready"}
# Written to the staff member: greets them and lists the customer instead of the staff and price.
_STAFF_EVENTS = {"booking_confirmed_staff", "rescheduled_staff", "cancelled_staff"}
_WITH_MANAGE_LINKS = {"booking_confirmed", "rescheduled", "reminder", "meeting_ready"}
# Only the first message: a later "add" link would make a second copy (they carry no UID; the .ics updates).
_WITH_CALENDAR_LINKS = {"booking_confirmed"}

_TD_LABEL = 'style="padding:4px 16px 4px 0;color:#6e6e73;vertical-align:top"'
_TD_VALUE = 'style="padding:4px 0"'
_LINK = 'style="color:#0a66c2"'
_BUTTON = ('style="display:inline-block;padding:10px 18px;background:#0a66c2;color:#ffffff;'
           'text-decoration:none;border-radius:6px"')


def _detail_rows(event: str, L: dict[str, str]) -> list[tuple[str, str, str, str | None]]:
    """(label, text value, html value, guarding condition) of the details block."""
    rows: list[tuple[str, str, str, str | None]] = []
    if event in ("rescheduled", "rescheduled_staff"):
        rows.append((L["previous"], "{{ previous.start_local }}", "<s>{{ previous.start_local }}</s>", "previous"))
    rows.append((L["when"], "{{ appointment.start_local }} ({{ appointment.timezone }})",
                 "<strong>{{ appointment.start_local }}</strong> ({{ appointment.timezone }})", None))
    duration = "{{ service.name }} ({{ service.duration_min }} " + L["minutes"] + ")"
    rows.append((L["service"], duration, duration, None))
    if event in _STAFF_EVENTS:
        rows.append((L["customer"], "{{ customer.name }}", "{{ customer.name }}", None))
        rows.append((L["email"], "{{ customer.email }}",
                     f'<a href="mailto:{{{{ customer.email }}}}" {_LINK}>{{{{ customer.email }}}}</a>', "customer.email"))
        rows.append((L["phone"], "{{ customer.phone }}", "{{ customer.phone }}", "customer.phone"))
    else:
        rows.append((L["with_"], "{{ staff.name }}", "{{ staff.name }}", None))
    rows.append((L["seats"], "{{ appointment.seats }}", "{{ appointment.seats }}",
                 "appointment.seats and appointment.seats > 1"))
    if event not in _STAFF_EVENTS:
        rows.append((L["price"], "{{ service.price }}", "{{ service.price }}", "service.price"))
    rows.append((L["where"], "{{ location.name }}{% if location.address %}, {{ location.address }}{% endif %}",
                 "{{ location.name }}{% if location.address %}<br>{{ location.address }}{% endif %}"
                 "{% if location.directions_url %}<br>"
                 f'<a href="{{{{ location.directions_url }}}}" {_LINK}>{L["directions"]}</a>'
                 "{% endif %}", "location"))
    rows.append((L["online"], "{{ appointment.meeting_url }}",
                 f'<a href="{{{{ appointment.meeting_url }}}}" {_LINK}>{{{{ appointment.meeting_url }}}}</a>',
                 "appointment.meeting_url"))
    return rows


def _guarded(condition: str | None, body: str) -> str:
    if condition is None:
        return body
    return f"{{% if {condition} %}}\n{body}{{% endif %}}\n"


def _tr(lang: str, message: str | tuple[str, str]) -> str:
    """``message`` (a msgid, or a (msgctxt, msgid) pair) in ``lang``."""
    catalogue = translations(lang)
    if isinstance(message, tuple):
        return catalogue.pgettext(*message)
    return catalogue.gettext(message)


def _build_email(lang: str, event: str) -> MessageTemplate:
    L = {key: _tr(lang, msg) for key, msg in _LABELS.items()}
    subject, before, after = (_tr(lang, _PHRASES[event][0]), [_tr(lang, p) for p in _PHRASES[event][1]],
                              [_tr(lang, p) for p in _PHRASES[event][2]])
    label_value = _tr(lang, _LABEL_VALUE)

    def colon(label: str, value: str) -> str:
        return label_value % {"label": label, "value": value}

    staff = event in _STAFF_EVENTS
    hello = L["hello_staff"] if staff else L["hello"]

    text: list[str] = [hello, ""]
    html: list[str] = [
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width"></head>\n'
        '<body style="margin:0;padding:24px;background:#f5f5f7;font-family:Arial,Helvetica,sans-serif;'
        'color:#1d1d1f;line-height:1.5">\n'
        '<div style="max-width:560px;margin:0 auto;background:#ffffff;border-radius:8px;padding:24px">\n',
        f"<p>{hello}</p>\n",
    ]
    for para in before:
        text += [para, ""]
        html.append(f"<p>{para}</p>\n")

    if event in ("cancelled", "cancelled_staff"):
        text.append(_guarded("appointment.cancel_reason",
                             colon(L["reason"], "{{ appointment.cancel_reason }}") + "\n\n").rstrip("\n"))
        html.append(_guarded("appointment.cancel_reason",
                             "<p>" + colon(L["reason"], "{{ appointment.cancel_reason }}") + "</p>\n"))

    if event in _WITH_DETAILS:
        html.append('<table role="presentation" style="border-collapse:collapse;margin:16px 0">\n')
        for label, text_value, html_value, condition in _detail_rows(event, L):
            text.append(_guarded(condition, colon(label, text_value) + "\n").rstrip("\n"))
            html.append(_guarded(condition, f"<tr><td {_TD_LABEL}>{label}</td><td {_TD_VALUE}>{html_value}</td></tr>\n"))
        html.append("</table>\n")
        text.append("")

    if event in _WITH_MANAGE_LINKS:
        text += [colon(L["manage"], "{{ appointment.manage_url }}")]
        text.append(_guarded("appointment.ics_url", colon(L["calendar"], "{{ appointment.ics_url }}") + "\n").rstrip("\n"))
        text.append("")
        html.append(f'<p><a href="{{{{ appointment.manage_url }}}}" {_BUTTON}>{L["manage"]}</a></p>\n')
        html.append(_guarded("appointment.ics_url",
                             f'<p><a href="{{{{ appointment.ics_url }}}}" {_LINK}>{L["calendar"]}</a></p>\n'))
    if event in _WITH_CALENDAR_LINKS:
        if text[-1] == "":
            text.pop()
        text.append(_guarded("appointment.google_calendar_url",
                             colon(L["google"], "{{ appointment.google_calendar_url }}") + "\n").rstrip("\n"))
        text.append(_guarded("appointment.outlook_calendar_url",
                             colon(L["outlook"], "{{ appointment.outlook_calendar_url }}") + "\n").rstrip("\n"))
        text.append("")
        html.append(_guarded("appointment.google_calendar_url",
                             f'<p><a href="{{{{ appointment.google_calendar_url }}}}" {_LINK} id="upz-mail-google">'
                             f'{L["google"]}</a> · <a href="{{{{ appointment.outlook_calendar_url }}}}" {_LINK} '
                             f'id="upz-mail-outlook">{L["outlook"]}</a></p>\n'))

    for para in after:
        text += [para, ""]
        html.append(f"<p>{para}</p>\n")

    contact = ("{{ business.name }}{% if business.phone %} · {{ business.phone }}{% endif %}"
               "{% if business.email %} · {{ business.email }}{% endif %}")
    text += [L["signoff"], "{{ business.name }}", "", "--", contact, ""]
    html.append(f"<p>{L['signoff']}<br>{{{{ business.name }}}}</p>\n")
    html.append(f'<p style="margin-top:24px;font-size:12px;color:#6e6e73">{contact}</p>\n')
    html.append("</div>\n</body>\n</html>\n")

    # _guarded blocks end in a newline that trim_blocks eats; joining with "\n" puts it back.
    return MessageTemplate(channel="email", subject=subject, body_text="\n".join(text), body_html="".join(html))


def _build_defaults() -> dict[TemplateKey, MessageTemplate]:
    out: dict[TemplateKey, MessageTemplate] = {}
    for lang in LANGUAGES:
        for event in EVENTS:
            out[(event, "email", lang)] = _build_email(lang, event)
            out[(event, "sms", lang)] = MessageTemplate(channel="sms", body_text=_tr(lang, _PHRASES[event][3]))
    return out


DEFAULT_TEMPLATES: dict[TemplateKey, MessageTemplate] = _build_defaults()
