"""Start-up checks: outside development the app refuses to run with unsafe settings."""

from __future__ import annotations

from config import DEV_SECRET_KEY


class UnsafeSettings(RuntimeError):
    """Raised by create_app() when a production setting is missing or a known default."""


def is_development(config) -> bool:
    return (config.get("ENV") or "production") == "development"


def check_settings(config) -> None:
    """Fill development defaults, or raise UnsafeSettings naming every missing setting."""
    if is_development(config):
        if not config.get("SECRET_KEY"):
            config["SECRET_KEY"] = DEV_SECRET_KEY
        if not config.get("PUBLIC_URL"):
            config["PUBLIC_URL"] = f"http://{config.get('HOST', '127.0.0.1')}:{config.get('PORT', 5000)}"
        return
    problems = []
    secret = config.get("SECRET_KEY")
    if not secret or secret == DEV_SECRET_KEY or len(str(secret)) < 16:
        problems.append(
            "SECRET_KEY is missing or the development default (it signs admin sessions): "
            "set SECRET_KEY to a random value of at least 16 characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    from app.crypto import check_keys

    try:
        check_keys(config)
    except RuntimeError as exc:
        problems.append(str(exc))
    public_url = config.get("PUBLIC_URL")
    if not public_url or not str(public_url).startswith(("http://", "https://")):
        problems.append("PUBLIC_URL is missing: set it to the site's base URL (e.g. https://book.example.com); "
                        "links in mails are built from it, never from the request")
    from app.services.custom_domains import parse_resolve

    try:
        parse_resolve(config.get("CUSTOM_DOMAIN_RESOLVE"))
    except (ValueError, TypeError) as exc:
        problems.append(f"CUSTOM_DOMAIN_RESOLVE: {exc}")
    if str(config.get("CUSTOM_DOMAIN_VERIFY_SCHEME") or "https").lower() != "https":
        problems.append("CUSTOM_DOMAIN_VERIFY_SCHEME=http is for tests: custom domains are verified over https")
    if problems:
        raise UnsafeSettings(
            "refusing to start outside development (UPZENTO_ENV=%s):\n  - %s"
            % (config.get("ENV"), "\n  - ".join(problems))
        )
