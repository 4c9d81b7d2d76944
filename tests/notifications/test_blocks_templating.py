from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app.notifications.templating import (
    CHANNELS,
    DEFAULT_TEMPLATES,
    EVENTS,
    LANGUAGES,
    MessageTemplate,
    TemplateRenderError,
    format_local,
    format_price,
    format_when,
    render,
    resolve_template,
    sample_context,
    validate_template,
)

ALL_KEYS = [(e, c, l) for e in EVENTS for c in CHANNELS for l in LANGUAGES]


def sms(body: str) -> MessageTemplate:
    return MessageTemplate(channel="sms", body_text=body)


def email(subject="Hi", text="Hello {{ customer.name }}", html="<p>Hello {{ customer.name }}</p>"):
    return MessageTemplate(channel="email", subject=subject, body_text=text, body_html=html)


# -- defaults ----------------------------------------------------------------

def test_defaults_cover_every_event_channel_and_language():
    assert set(DEFAULT_TEMPLATES) == set(ALL_KEYS)


@pytest.mark.parametrize("key", ALL_KEYS, ids="-".join)
def test_every_default_validates_and_renders(key):
    event, channel, language = key
    template = DEFAULT_TEMPLATES[key]

    assert validate_template(template.subject, template.body_text, template.body_html, channel, event) == []
    out = render(template, sample_context(language))

    for part in (out.subject, out.text, out.html or ""):
        assert "{{" not in part and "{%" not in part and "None" not in part
    if channel == "email":
        assert out.subject and out.text.strip() and out.html
        assert f'lang="{language}"' in out.html
    else:
        assert out.html is None and out.subject == ""
        assert len(out.text) <= 160, out.text


@pytest.mark.parametrize("key", ALL_KEYS, ids="-".join)
def test_every_default_renders_for_an_online_appointment_without_previous(key):
    ctx = sample_context(key[2])
    ctx["location"] = None
    ctx["previous"] = None
    ctx["appointment"]["meeting_url"] = "https://meet.example.com/xyz"
    out = render(DEFAULT_TEMPLATES[key], ctx)
    if key[0] in ("booking_confirmed", "reminder") and key[1] == "email":
        assert "https://meet.example.com/xyz" in out.text


def test_defaults_are_in_their_language():
    confirmed = {lang: render(DEFAULT_TEMPLATES[("booking_confirmed", "email", lang)], sample_context(lang))
                 for lang in LANGUAGES}
    assert confirmed["en"].subject.startswith("Booking confirmed")
    assert confirmed["de"].subject.startswith("Buchung bestätigt")
    assert confirmed["fr"].subject.startswith("Réservation confirmée")
    assert confirmed["es"].subject.startswith("Reserva confirmada")
    assert "Dienstag, 17. März 2026" in confirmed["de"].text


def test_cancel_reason_appears_only_when_given():
    template = DEFAULT_TEMPLATES[("cancelled", "email", "en")]
    ctx = sample_context("en")
    assert "Reason" not in render(template, ctx).text
    ctx["appointment"]["cancel_reason"] = "Staff illness"
    assert "Reason: Staff illness" in render(template, ctx).text


def test_reschedule_shows_the_previous_time():
    out = render(DEFAULT_TEMPLATES[("rescheduled", "email", "en")], sample_context("en"))
    # CLDR puts a narrow no-break space before AM/PM.
    assert "Previously: Sunday, March 15, 2026, 12:30\u202fPM" in out.text


# -- escaping ----------------------------------------------------------------

def test_customer_values_are_escaped_in_html_but_raw_in_text_and_sms():
    ctx = sample_context("en")
    ctx["customer"]["name"] = "<script>alert(1)</script> & Co"

    mail = render(DEFAULT_TEMPLATES[("booking_confirmed_staff", "email", "en")], ctx)
    text = render(DEFAULT_TEMPLATES[("booking_confirmed_staff", "sms", "en")], ctx)

    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in mail.html
    assert "<script>alert(1)</script> & Co" in mail.text
    assert "<script>alert(1)</script> & Co" in text.text


def test_line_breaks_in_values_cannot_break_the_subject_header():
    ctx = sample_context("en")
    ctx["customer"]["name"] = "Eve\r\nBcc: victim@example.com"
    out = render(email(subject="For {{ customer.name }}"), ctx)
    assert out.subject == "For Eve Bcc: victim@example.com"


def test_sms_text_uses_plain_spaces_so_it_stays_gsm7():
    from app.notifications.sms import sms_segments

    ctx = sample_context("en")
    for event in EVENTS:
        text = render(DEFAULT_TEMPLATES[(event, "sms", "en")], ctx).text
        assert "\u202f" not in text and "\xa0" not in text
        assert sms_segments(text) == 1, text
    fr = render(DEFAULT_TEMPLATES[("reminder", "sms", "fr")], sample_context("fr")).text
    assert "Rappel : " in fr


def test_none_values_print_as_empty():
    ctx = sample_context("en")
    ctx["customer"]["phone"] = None
    assert render(sms("Phone: [{{ customer.phone }}]"), ctx).text == "Phone: []"


# -- validation --------------------------------------------------------------

def test_unknown_variable_is_reported_with_field_and_name():
    errors = validate_template("Hi {{ custmer.name }}", "ok", "", "email")
    assert [e.field for e in errors] == ["subject"]
    assert "unknown variable 'custmer'" in errors[0].message
    assert "customer" in errors[0].message  # lists what is available


def test_unknown_attribute_of_a_known_object_is_reported():
    errors = validate_template("Hi", "ok", "<p>{{ customer.first_name }}</p>", "email")
    assert [(e.field, e.line) for e in errors] == [("body_html", 1)]
    assert "customer.first_name" in errors[0].message
    assert "email, name, phone" in errors[0].message


def test_syntax_error_names_the_line():
    errors = validate_template("Hi", "line one\n{{ customer.name ", "", "email")
    assert errors[0].field == "body_text"
    assert errors[0].line == 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ customer['__class__'] }}",
        "{{ customer.name.__class__.__base__.__subclasses__() }}",
        "{{ customer.items() }}",
        "{{ customer.name|safe }}",
        "{{ customer.name.ljust(10) }}",
        "{% for c in customer.name %}{{ c }}{% endfor %}",
        "{% set x = 1 %}",
        "{{ range(10) }}",
        "{{ customer.name * 1000000 }}",
        "{{ '%9999999d' % 1 }}",
        "{{ customer.name|replace('a', 'aaaaaaaaaa')|replace('a', 'aaaaaaaaaa')|replace('a', 'aaaaaaaaaa')"
        "|replace('a', 'aaaaaaaaaa')|replace('a', 'aaaaaaaaaa')|replace('a', 'aaaaaaaaaa') }}",
    ],
)
def test_unsafe_constructs_are_rejected(source):
    errors = validate_template("", source, "", "sms")
    assert errors and all(e.field == "body_text" for e in errors)


def test_unsafe_template_also_fails_at_render_time():
    # A template stored before validation existed must not run either.
    with pytest.raises(TemplateRenderError) as info:
        render(sms("{{ ''.__class__.__mro__ }}"), sample_context("en"))
    assert info.value.field == "body_text"
    assert "__" in info.value.message


def test_missing_context_value_fails_loudly_at_render_time():
    ctx = sample_context("en")
    del ctx["staff"]
    with pytest.raises(TemplateRenderError, match="staff"):
        render(sms("With {{ staff.name }}"), ctx)


def test_unguarded_optional_object_is_reported():
    errors = validate_template("", "At {{ location.name }}", "", "sms")
    assert len(errors) == 1
    assert "{% if location %}" in errors[0].message
    assert validate_template("", "{% if location %}At {{ location.name }}{% endif %}", "", "sms") == []


def test_previous_needs_no_guard_in_a_reschedule_template():
    source = "Moved from {{ previous.start_local }}"
    assert validate_template("", source, "", "sms", event="rescheduled") == []
    assert validate_template("", source, "", "sms", event="reminder")


def test_channel_rules():
    assert [e.field for e in validate_template("", "body", "", "email")] == ["subject"]
    assert {e.field for e in validate_template("Subj", "body", "<p>x</p>", "sms")} == {"subject", "body_html"}
    assert [e.field for e in validate_template("", "", "", "sms")] == ["body_text"]
    assert [e.field for e in validate_template("", "x", "", "fax")] == ["channel"]


def test_sms_that_renders_too_long_is_rejected():
    errors = validate_template("", "x" * 1601, "", "sms")
    assert errors and "1600" in errors[0].message


def test_allowed_filters_and_methods_work():
    out = render(sms("{{ customer.name|upper }} {{ service.name.lower() }} {{ staff.name|default('n/a') }}"
                     "{% if appointment.seats > 1 %} x{{ appointment.seats }}{% endif %}"),
                 sample_context("en"))
    assert out.text == "EMMA WILSON haircut & styling Oliver Bennett"


# -- precedence --------------------------------------------------------------

TENANT = email(subject="tenant")
AGENCY = email(subject="agency")


def test_tenant_beats_agency_beats_platform():
    key = ("reminder", "email", "de")
    assert resolve_template("reminder", "email", "de", {key: TENANT}, {key: AGENCY}).template is TENANT
    resolved = resolve_template("reminder", "email", "de", {}, {key: AGENCY})
    assert (resolved.template, resolved.source) == (AGENCY, "agency")
    resolved = resolve_template("reminder", "email", "de", None, None)
    assert resolved.source == "platform" and resolved.language == "de"
    assert resolved.template is DEFAULT_TEMPLATES[key]


def test_requested_language_beats_an_english_override():
    resolved = resolve_template("reminder", "email", "de", {("reminder", "email", "en"): TENANT})
    assert (resolved.source, resolved.language) == ("platform", "de")


def test_unknown_language_falls_back_to_english_with_overrides_first():
    resolved = resolve_template("reminder", "email", "pt", {("reminder", "email", "en"): TENANT})
    assert (resolved.template, resolved.language) == (TENANT, "en")
    assert resolve_template("reminder", "sms", "pt").language == "en"


def test_regional_language_tags_use_their_base_language():
    regional = email(subject="de-AT")
    assert resolve_template("reminder", "email", "de-AT", {("reminder", "email", "de-AT"): regional}).template is regional
    assert resolve_template("reminder", "email", "de_AT").language == "de"


def test_unknown_event_is_an_error():
    with pytest.raises(ValueError):
        resolve_template("birthday", "email", "en")


# -- formatting --------------------------------------------------------------

def test_times_are_formatted_in_the_recipients_zone_and_language():
    start = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
    end = datetime(2026, 7, 1, 13, 0, tzinfo=timezone.utc)

    de = format_when(start, end, "Europe/Berlin", "de")
    assert de["time"] == "14:00" and de["date"] == "Mittwoch, 1. Juli 2026"
    assert de["start_local"] == "Mittwoch, 1. Juli 2026, 14:00"
    assert de["timezone"] == "Mitteleuropäische Sommerzeit"

    en = format_when(start, end, "America/New_York", "en")
    assert en["time"] == "8:00\u202fAM"
    assert en["end_local"] == "Wednesday, July 1, 2026, 9:00\u202fAM"
    assert en["timezone"] == "Eastern Daylight Time"


def test_unknown_locale_falls_back_to_english_words():
    assert "Wednesday" in format_local(datetime(2026, 7, 1, 12, tzinfo=timezone.utc), "UTC", "xx")


def test_prices_use_the_customers_conventions():
    assert format_price(Decimal("45"), "EUR", "de") == "45,00\xa0€"
    assert format_price(Decimal("45"), "GBP", "en") == "£45.00"
    assert format_price(None, "EUR", "de") is None


def test_sample_context_has_every_documented_variable():
    from app.notifications.templating import VARIABLES

    for language in LANGUAGES:
        ctx = sample_context(language)
        assert set(ctx) == set(VARIABLES)
        for name, attrs in VARIABLES.items():
            assert set(ctx[name]) == set(attrs), name


def test_where_line_has_no_stray_comma_without_an_address():
    from app.notifications.templating import DEFAULT_TEMPLATES, render, sample_context

    context = sample_context("en")
    context["location"] = {**context["location"], "address": None}
    template = DEFAULT_TEMPLATES[("booking_confirmed", "email", "en")]
    text = render(template, context).text
    where = [line for line in text.splitlines() if line.startswith("Where")]
    assert where and not where[0].rstrip().endswith(",")
