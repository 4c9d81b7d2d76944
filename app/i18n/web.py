"""Which language a page speaks: Flask-Babel's locale selector and the admin user's stored choice.

Admin pages: the language picked in the menu (kept in the session, and saved as the user's
preference for later sessions), else the browser's Accept-Language, else the business's
default locale, else English. The widget and the portal choose for themselves (widget
``lang`` option or setting / customer's language, browser, business) and render under
``flask_babel.force_locale``.
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request, session
from flask_login import current_user, user_logged_in

from app.i18n import normalize, pick

LOCALE_ENDPOINT = "LocaleView.index"  # Flask-AppBuilder's /lang/<locale>


def select_locale() -> str | None:
    """Flask-Babel's locale selector (see the module docstring)."""
    if not has_request_context():
        return None
    chosen = normalize(g.get("lang")) or normalize(session.get("locale"))
    if chosen:
        return chosen
    tenant = g.get("tenant")
    return pick([], request.accept_languages, getattr(tenant, "locale", None))


def _remember_choice() -> None:
    """The menu's language becomes the signed-in user's preference (read again at the next log-in)."""
    if request.endpoint != LOCALE_ENDPOINT or not current_user.is_authenticated:
        return
    code = normalize((request.view_args or {}).get("locale"))
    if code is None:
        return
    from app.extensions import db
    from app.services.languages import set_user_language
    from app.uow import run_unit

    run_unit(lambda: set_user_language(db.session, current_user.id, code))


def _on_login(sender, user, **extra) -> None:
    from app.extensions import db
    from app.services.languages import user_language

    stored = user_language(db.session, user.id)
    if stored:
        session["locale"] = stored


def install(app: Flask) -> None:
    app.before_request(_remember_choice)
    user_logged_in.connect(_on_login, app)
