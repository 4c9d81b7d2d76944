"""Languages, gettext catalogues and the choice of a language.

One set of catalogues (``translations/<lang>/LC_MESSAGES/messages.po``, the design's
top-level folder) serves the admin, the widget, the portal and the notification
defaults. The admin reads them through Flask-Babel (per request); the widget's
texts, the portal and the message defaults that jobs build outside any request use
``translations(lang)`` here, which needs no Flask.

The ``.po`` files are the source; the ``.mo`` files are build output (not committed):
``compile_catalogues()`` writes them when one is missing or older than its ``.po``,
at start-up (``create_app``), before the first lookup here, and from
``python -m app.i18n compile`` / ``pybabel compile -d translations``. A read-only
install writes them to a temporary folder instead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es")
DEFAULT_LANGUAGE = "en"
DOMAIN = "messages"
SOURCE_DIR = Path(__file__).resolve().parents[2] / "translations"

_lock = threading.Lock()
_compiled_dir: Path | None = None


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated later, in the reader's language."""
    return message


def NC_(context: str, message: str) -> tuple[str, str]:
    """Marks a message with a context (msgctxt) for extraction: the same English, another translation."""
    return (context, message)


def _stale(po: Path, mo: Path) -> bool:
    try:
        return mo.stat().st_mtime < po.stat().st_mtime
    except FileNotFoundError:
        return True


def _write_mo(po: Path, mo: Path) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=po.parent.parent.name, domain=DOMAIN)
    mo.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may start at once: each writes its own file and renames it into place.
    fd, tmp = tempfile.mkstemp(dir=mo.parent, prefix=".messages-", suffix=".mo")
    try:
        with os.fdopen(fd, "wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        os.replace(tmp, mo)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_catalogues(source: Path = SOURCE_DIR, target: Path | None = None, force: bool = False) -> list[str]:
    """Compile every ``.po`` under ``source`` whose ``.mo`` (under ``target``, default beside it) is missing or older.

    Returns the languages compiled. Fuzzy entries are left out, as ``pybabel compile`` does.
    """
    target = target or source
    done = []
    for po in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        lang = po.parent.parent.name
        mo = target / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
        if force or _stale(po, mo):
            _write_mo(po, mo)
            done.append(lang)
    return done


def catalogue_dir() -> Path:
    """The folder holding compiled catalogues, compiling them first when needed (once per process)."""
    global _compiled_dir
    if _compiled_dir is not None:
        return _compiled_dir
    with _lock:
        if _compiled_dir is None:
            try:
                compile_catalogues(SOURCE_DIR)
                _compiled_dir = SOURCE_DIR
            except OSError:
                # Read-only install: compile into a folder of our own, keyed by the source path.
                key = hashlib.sha1(str(SOURCE_DIR).encode()).hexdigest()[:12]
                other = Path(tempfile.gettempdir()) / f"upzento-translations-{key}"
                compile_catalogues(SOURCE_DIR, other)
                _compiled_dir = other
    return _compiled_dir


@functools.lru_cache(maxsize=16)
def translations(lang: str):
    """The gettext translations of ``lang`` (a NullTranslations for English or an unknown language)."""
    from babel.support import NullTranslations, Translations

    code = normalize(lang)
    if code is None or code == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(catalogue_dir()), [code], DOMAIN)


def gettext(lang: str, message: str, **variables) -> str:
    """``message`` in ``lang``; ``%(name)s`` placeholders are filled from ``variables`` when given."""
    text = translations(lang).gettext(message)
    return text % variables if variables else text


def normalize(tag: str | None) -> str | None:
    """A supported language for a tag such as ``de``, ``de-AT``, ``de_at`` or ``FR``; else None."""
    if not tag:
        return None
    tag = str(tag).strip().replace("_", "-").lower()
    if tag in LANGUAGES:
        return tag
    primary = tag.split("-")[0]
    return primary if primary in LANGUAGES else None


def pick(candidates: Iterable[str | None], accept=None, fallback: str | None = None) -> str:
    """The first supported language among ``candidates``, else the browser's best, else ``fallback``, else English.

    ``accept`` is a werkzeug ``LanguageAccept`` (``request.accept_languages``) or None.
    """
    for wanted in candidates:
        found = normalize(wanted)
        if found:
            return found
    if accept is not None:
        # In the browser's order of preference; "fr-CA" counts as "fr" before a lower-rated exact "de".
        for value, _quality in accept:
            found = normalize(value)
            if found:
                return found
    return normalize(fallback) or DEFAULT_LANGUAGE
