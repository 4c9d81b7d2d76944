"""The site's public base URL for links in mails, .ics files and embed snippets.

Built from configuration only (`PUBLIC_URL`; in development `http://HOST:PORT`),
never from the request's Host or X-Forwarded-Host headers, which a client chooses.
"""

from __future__ import annotations

from flask import current_app, has_app_context


def public_base() -> str:
    if has_app_context():
        config = current_app.config
    else:
        from config import Config

        config = {k: getattr(Config, k) for k in ("PUBLIC_URL", "HOST", "PORT")}
    configured = config.get("PUBLIC_URL")
    if configured:
        return str(configured).rstrip("/")
    return f"http://{config.get('HOST', '127.0.0.1')}:{config.get('PORT', 5000)}"
