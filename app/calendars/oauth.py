"""OAuth 2.0 for Google and the Microsoft identity platform, through Authlib's requests client.

`authorize_url()` builds the redirect (offline access, the calendar scopes),
`exchange_code()` turns the callback's code into tokens, and `TokenSource` hands
out a valid access token, refreshing it (Authlib) shortly before it expires or
when the API answered 401. A refresh refused with `invalid_grant` (revoked,
expired, password changed) raises AuthFailed: the connection needs a reconnect.
Every URL comes from configuration (GOOGLE_AUTH_URL, GOOGLE_OAUTH_URL, MS_LOGIN_BASE_URL).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable

from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

from app.calendars.base import AuthFailed, ProviderError

GOOGLE_SCOPES = ("openid", "email", "https://www.googleapis.com/auth/calendar.events",
                 "https://www.googleapis.com/auth/calendar.readonly")
MICROSOFT_SCOPES = ("offline_access", "openid", "email", "User.Read", "Calendars.ReadWrite")
EARLY_REFRESH_SECONDS = 120


def endpoints(provider: str, cfg) -> dict:
    """authorize / token URLs, scopes and the client of a provider (from SyncConfig)."""
    if provider == "google":
        return {"authorize": cfg.google_auth, "token": f"{cfg.google_oauth}/token",
                "revoke": f"{cfg.google_oauth}/revoke", "scopes": GOOGLE_SCOPES,
                "client_id": cfg.google_client_id, "client_secret": cfg.google_client_secret}
    if provider == "microsoft":
        base = f"{cfg.ms_login}/{cfg.ms_tenant}/oauth2/v2.0"
        return {"authorize": f"{base}/authorize", "token": f"{base}/token", "revoke": None,
                "scopes": MICROSOFT_SCOPES, "client_id": cfg.ms_client_id, "client_secret": cfg.ms_client_secret}
    raise ValueError(f"no OAuth for provider {provider!r}")


def _session(provider: str, cfg, redirect_uri: str | None = None, token: dict | None = None) -> OAuth2Session:
    ep = endpoints(provider, cfg)
    if not ep["client_id"]:
        raise ProviderError(f"{provider} is not configured (client id missing)", 0)
    return OAuth2Session(ep["client_id"], ep["client_secret"], scope=" ".join(ep["scopes"]),
                         redirect_uri=redirect_uri, token=token, token_endpoint=ep["token"],
                         timeout=cfg.http_timeout)


def authorize_url(provider: str, cfg, redirect_uri: str, state: str) -> str:
    """Where to send the user to grant calendar access (asks for a refresh token)."""
    ep = endpoints(provider, cfg)
    extra = {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"} \
        if provider == "google" else {"prompt": "select_account"}
    url, _state = _session(provider, cfg, redirect_uri).create_authorization_url(ep["authorize"], state=state, **extra)
    return url


def exchange_code(provider: str, cfg, code: str, redirect_uri: str) -> dict:
    """The tokens for an authorization code (raises AuthFailed when the code is refused)."""
    ep = endpoints(provider, cfg)
    try:
        token = _session(provider, cfg, redirect_uri).fetch_token(ep["token"], code=code,
                                                                    grant_type="authorization_code")
    except OAuthError as exc:
        raise AuthFailed(f"{provider} refused the authorization code: {exc.error} {exc.description or ''}".strip(),
                         400) from exc
    except OSError as exc:
        raise ProviderError(f"{provider} token endpoint unreachable: {exc}", 0) from exc
    return _plain(token)


def _plain(token) -> dict:
    out = {k: token.get(k) for k in ("access_token", "refresh_token", "expires_at", "token_type", "id_token", "scope")
           if token.get(k) is not None}
    if "expires_at" not in out and token.get("expires_in"):
        out["expires_at"] = int(time.time()) + int(token["expires_in"])
    return out


def expiry_of(tokens: dict) -> dt.datetime | None:
    at = tokens.get("expires_at")
    return dt.datetime.fromtimestamp(int(at), dt.timezone.utc) if at else None


def account_of(tokens: dict) -> str | None:
    """The e-mail in the ID token (not verified: it only labels the connection in the admin)."""
    raw = tokens.get("id_token")
    if not raw:
        return None
    try:
        import base64
        import json

        payload = raw.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
        return claims.get("email") or claims.get("preferred_username")
    except Exception:  # noqa: BLE001
        return None


class TokenSource:
    """A valid access token on demand; `save` persists refreshed tokens (encrypted, by the caller)."""

    def __init__(self, provider: str, cfg, tokens: dict, save: Callable[[dict], None]):
        self.provider = provider
        self.cfg = cfg
        self.tokens = dict(tokens)
        self.save = save
        self.refreshes = 0

    def access_token(self) -> str:
        at = self.tokens.get("expires_at")
        if not self.tokens.get("access_token") or (at and int(at) - EARLY_REFRESH_SECONDS <= time.time()):
            self.refresh()
        return self.tokens["access_token"]

    def refresh(self) -> str:
        refresh_token = self.tokens.get("refresh_token")
        if not refresh_token:
            raise AuthFailed(f"{self.provider}: no refresh token; reconnect the calendar", 401)
        ep = endpoints(self.provider, self.cfg)
        try:
            token = _session(self.provider, self.cfg).refresh_token(ep["token"], refresh_token=refresh_token)
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "unauthorized_client", "invalid_client", "interaction_required"):
                raise AuthFailed(f"{self.provider} refused the refresh token: {exc.error}", 401) from exc
            raise ProviderError(f"{self.provider} token refresh failed: {exc.error}", 502) from exc
        except OSError as exc:
            raise ProviderError(f"{self.provider} token endpoint unreachable: {exc}", 0) from exc
        fresh = _plain(token)
        fresh.setdefault("refresh_token", refresh_token)  # Google keeps the old one
        self.tokens.update(fresh)
        self.refreshes += 1
        self.save(fresh)
        return self.tokens["access_token"]


def google_tokens(cfg, secret: dict, save) -> TokenSource:
    return TokenSource("google", cfg, secret, save)


def microsoft_tokens(cfg, secret: dict, save) -> TokenSource:
    return TokenSource("microsoft", cfg, secret, save)
