"""The gettext catalogues in translations/: complete for the widget, portal and messages, no fuzzy
entry, placeholders kept; the check itself catches each kind of fault; compiled from a clean checkout."""

from __future__ import annotations

import shutil

import pytest
from babel.messages.pofile import read_po, write_po

from app import i18n
from app.i18n import catalogues

LANGS = [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT_LANGUAGE]


@pytest.fixture(scope="module")
def template():
    return catalogues.extract()


def test_catalogues_are_complete_and_keep_every_placeholder(template):
    report = catalogues.check(template)
    assert report.problems == []
    for lang in LANGS:
        assert report.coverage(lang) >= catalogues.ADMIN_COVERAGE_MIN, (lang, report.coverage(lang))


def test_extraction_finds_the_widget_portal_messages_and_admin_menus(template):
    ids = {(m.context, m.id): m for m in template if m.id}
    assert (None, "Book an appointment") in ids  # widget (N_ table)
    assert (None, "Your data") in ids  # portal template
    assert ("email", "Manage your booking") in ids and (None, "Manage your booking") in ids  # msgctxt
    assert (None, "Booking confirmed: {{ service.name }} on {{ appointment.date }}") in ids  # email default
    menu = ids[(None, "Subject requests")]
    assert "admin menu" in menu.auto_comments
    assert (None, "Privacy") in ids  # a menu category


def _break(path, mutate):
    with path.open("rb") as fh:
        catalog = read_po(fh)
    mutate(catalog)
    with path.open("wb") as fh:
        write_po(fh, catalog)


def test_check_reports_a_missing_message_a_fuzzy_entry_and_a_changed_placeholder(template, tmp_path):
    copy = tmp_path / "translations"
    shutil.copytree(i18n.SOURCE_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    _break(copy / "de/LC_MESSAGES/messages.po", lambda c: c.delete("Book an appointment"))

    def fuzzy(c):
        c["Book now"].flags.add("fuzzy")
    _break(copy / "fr/LC_MESSAGES/messages.po", fuzzy)

    def placeholder(c):
        c["{n} seats left"].string = "Quedan {m} plazas"
        c.get("Hello {{ customer.name }},", "email").string = "Hola, {{ customer.nombre }}:"
    _break(copy / "es/LC_MESSAGES/messages.po", placeholder)

    problems = catalogues.check(template, copy).problems
    assert any(p.startswith("de: 'Book an appointment'") and "missing" in p for p in problems), problems
    assert any(p.startswith("fr: fuzzy entry 'Book now'") for p in problems), problems
    assert any(p.startswith("es: '{n} seats left'") and "placeholders differ" in p for p in problems), problems
    assert any(p.startswith("es: 'Hello {{ customer.name }},'") for p in problems), problems
    assert len(problems) == 4, problems


def test_placeholders_of_each_kind():
    count = catalogues.placeholders
    assert count("%(label)s: %(value)s") == count("%(label)s\u00a0: %(value)s")
    assert count("%(done)d of %(total)d") != count("%(done)d von %(total)s")
    assert count("{n} seats left") == count("Noch {n} Plätze") != count("Noch {x} Plätze")
    assert count("Hi {{ customer.name }}") == count("Hallo {{customer.name}}")
    assert count("Call{% if business.phone %}: {{ business.phone }}{% endif %}.") != count("Anrufen.")
    assert count("100%% sure") == count("sicher")


def test_compiled_from_the_po_files_when_missing_or_older(tmp_path):
    target = tmp_path / "compiled"
    assert sorted(i18n.compile_catalogues(i18n.SOURCE_DIR, target)) == sorted(LANGS)
    assert i18n.compile_catalogues(i18n.SOURCE_DIR, target) == []  # up to date
    mo = target / "de/LC_MESSAGES/messages.mo"
    old = (i18n.SOURCE_DIR / "de/LC_MESSAGES/messages.po").stat().st_mtime - 10
    import os

    os.utime(mo, (old, old))
    assert i18n.compile_catalogues(i18n.SOURCE_DIR, target) == ["de"]
    from babel.support import Translations

    german = Translations.load(str(target), ["de"], "messages")
    assert german.gettext("Book an appointment") == "Termin buchen"
    assert german.pgettext("email", "Manage your booking") == "Buchung verwalten"


def test_language_choice_rules():
    from werkzeug.datastructures import LanguageAccept

    assert i18n.normalize("de-AT") == "de" and i18n.normalize("FR") == "fr" and i18n.normalize("pt") is None
    accept = LanguageAccept([("pt-BR", 1), ("fr-CA", 0.8), ("de", 0.5)])
    assert i18n.pick([None, "xx"], accept, "es") == "fr"
    assert i18n.pick(["es-MX"], accept) == "es"
    assert i18n.pick([], LanguageAccept([("pt", 1)]), "de") == "de"
    assert i18n.pick([], None, None) == "en"
    assert i18n.gettext("fr", "Changes online are possible until %(deadline)s.", deadline="lundi") == (
        "Modifications en ligne possibles jusqu'au lundi.")
