"""Upzento Appointments: application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from config import Config


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the WSGI app: admin (FAB), public booking API, widget and portal."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(Config)
    if overrides:
        app.config.update(overrides)
    from config import database_url

    # Overrides (run.py, tests) may pass the plain form as well.
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app.config.get("SQLALCHEMY_DATABASE_URI"))
    for name in ("DATABASE_REPLICA_URL", "DATABASE_DIRECT_URL"):
        app.config[name] = database_url(app.config.get(name))
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config)
    from app.settings_check import check_settings

    check_settings(app.config)
    # Keep fields in the order the code writes them (start, end, staff...), and skip the sort.
    app.json.sort_keys = False
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        raise RuntimeError(
            "DATABASE_URL is not set. `python run.py` starts an embedded PostgreSQL for you; "
            "other entry points need DATABASE_URL (and REDIS_URL)."
        )
    from app import observability

    observability.configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    # FAB logs every permission it creates and warns about UUID columns it cannot filter.
    logging.getLogger("flask_appbuilder").setLevel(logging.WARNING)
    logging.getLogger("flask_appbuilder.models.filters").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from app.extensions import appbuilder, babel, csrf, db

    db.init_app(app)
    observability.init_app(app)
    if not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping"):
        from app.dbpool import ping_when_idle

        with app.app_context():
            ping_when_idle(db.engine, app.config["DB_IDLE_PING_SECONDS"])
    # CSRF is checked for the admin's browser forms (below); JSON APIs, the widget and
    # the portal authenticate differently and check what they need themselves.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    from app.security import reject_misplaced_api_key
    from app.websecurity import install as install_web_security

    from app.session_generation import install as install_session_generation

    app.before_request(reject_misplaced_api_key)
    from app.links import platform_base
    from app.tenancy import resolve_custom_host
    from urllib.parse import urlsplit

    # A business's verified custom domain serves its widget, portal and public API (app.tenancy).
    app.config["_PLATFORM_HOST"] = (urlsplit(platform_base(app.config)).hostname or "").lower()
    app.url_value_preprocessor(resolve_custom_host)
    install_web_security(app)
    install_session_generation(app)
    from app.throttle import install as install_throttle

    install_throttle(app)
    csrf.init_app(app)
    app.before_request(_protect_admin_forms)
    from app.i18n import catalogue_dir
    from app.i18n.web import install as install_languages, select_locale

    # translations/ (compiled here when needed); Flask-AppBuilder puts its own catalogues in front.
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(catalogue_dir())
    babel.init_app(app, locale_selector=select_locale)
    install_languages(app)

    from app import errors, tenancy  # noqa: F401  (registers the search_path hook)
    from app.gdpr import audit  # noqa: F401  (registers the audit-log hooks)

    errors.register(app)

    from app import ratelimit

    ratelimit.configure_storage(app)
    with app.app_context():
        appbuilder.init_app(app, db.session)
        from app.views import register_views

        register_views(appbuilder)
        appbuilder.post_init()
    # FAB's BabelManager replaced the selector with its own (session or English): ours again.
    babel.init_app(app, locale_selector=select_locale)

    from app.health import bp as health_bp
    from app.security import resolve_request_scope
    from app.widget.api import bp as public_api_bp

    # After FAB's own before_request (which loads the user): pick the tenant.
    app.before_request(resolve_request_scope)
    ratelimit.install(app)
    from app import api_common

    api_common.install(app)

    app.register_blueprint(health_bp)
    app.register_blueprint(public_api_bp)
    _register_optional_blueprints(app)

    from app.cli import register_cli

    register_cli(app)
    from app import assets

    assets.init_app(app)
    app.context_processor(_page_context)
    from app.views.home import home_checklist, local_filter

    app.jinja_env.globals["home_checklist"] = home_checklist  # the dashboard home shows it too
    app.add_template_filter(local_filter, "local")
    from app import boundedcache

    boundedcache.configure(app.config)  # every module with a cache is imported by now
    return app


def engine_options(config) -> dict[str, Any]:
    """SQLAlchemy engine options; behind a transaction pooler (DATABASE_POOLER=transaction) psycopg prepares nothing.

    PgBouncer in transaction mode hands each transaction to any server connection, where a
    statement psycopg prepared on another one does not exist (psycopg prepares after 5 runs).
    """
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if (config.get("DATABASE_POOLER") or "").lower() == "transaction":
        options["connect_args"] = {**options.get("connect_args", {}), "prepare_threshold": None}
    return options


def _page_context() -> dict[str, Any]:
    """`page_lang()`: the active locale for `<html lang>` in every admin template."""
    from flask_babel import get_locale

    def page_lang() -> str:
        locale = get_locale()
        return str(locale).replace("_", "-") if locale else "en"

    return {"page_lang": page_lang}


def _register_optional_blueprints(app: Flask) -> None:
    """Widget and portal blueprints, registered when their packages provide one."""
    import importlib

    for module_name in ("app.widget.views", "app.portal.views", "app.views.sms_hooks", "app.api_rest", "app.api_docs",
                        "app.meetings.hooks", "app.views.calendar_hooks"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if hasattr(module, "bp"):
            app.register_blueprint(module.bp)


CSRF_FREE_PREFIXES = ("/api/", "/widget/", "/portal/", "/hooks/", "/health")


def _protect_admin_forms() -> None:
    from flask import current_app, request

    from app.extensions import csrf

    if (
        request.method in ("POST", "PUT", "PATCH", "DELETE")
        and current_app.config.get("WTF_CSRF_ENABLED", True)
        and not request.path.startswith(CSRF_FREE_PREFIXES)
    ):
        csrf.protect()
