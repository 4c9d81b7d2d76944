"""The site's public base URL for links in mails, .ics files and embed snippets.

Built from configuration and the database only: `PUBLIC_URL` (in development
`http://HOST:PORT`), or for one business its verified custom domain
(`https://<domain>`, see app.services.custom_domains). Never from the request's
Host or X-Forwarded-Host headers, which a client chooses.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import current_app, has_app_context


def platform_base(config: Mapping[str, Any] | None = None) -> str:
    """PUBLIC_URL without its trailing slash (development: http://HOST:PORT)."""
    if config is None:
        if has_app_context():
            config = current_app.config
        else:
            from config import Config

            config = {k: getattr(Config, k) for k in ("PUBLIC_URL", "HOST", "PORT")}
    configured = config.get("PUBLIC_URL")
    if configured:
        return str(configured).rstrip("/")
    return f"http://{config.get('HOST', '127.0.0.1')}:{config.get('PORT', 5000)}"


def public_base(tenant: Any = None, config: Mapping[str, Any] | None = None) -> str:
    """The base URL of links for `tenant` (a Tenant row or TenantRef): its verified custom domain, else PUBLIC_URL."""
    domain = getattr(tenant, "verified_domain", None) if tenant is not None else None
    if domain:
        return f"https://{domain}"
    return platform_base(config)
