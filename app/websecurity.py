"""HTTP-level protections: security headers, cookie flags, size limits, hostile input.

- Admin pages get a strict CSP (scripts only from our origin or with the request's
  nonce, `frame-ancestors 'none'`), `X-Frame-Options: DENY`, `X-Content-Type-Options`
  and `Referrer-Policy`. The widget frame and the portal set their own CSP (the frame
  must stay frameable by its allowed origins); they keep it and get the rest.
- Over HTTPS (`PUBLIC_URL` https, or `PREFERRED_URL_SCHEME=https`, or a secure request
  behind `TRUSTED_PROXIES` proxies) cookies are `Secure` and HSTS is sent.
- Requests whose body, query or path carry NUL bytes are 400 before any view runs;
  request bodies are capped (`MAX_CONTENT_LENGTH`, smaller for public JSON).
- A request authenticated by an API key never sets a session cookie.
"""

from __future__ import annotations

import secrets

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface

FRAMED_OR_OWN_CSP = ("/widget/", "/portal/")


class NoCookieForApiKeys(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that API-key requests never get a cookie."""

    def save_session(self, app, session, response):
        if g.get("_no_session_cookie"):
            return
        return super().save_session(app, session, response)


def csp_nonce() -> str:
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def admin_csp(nonce: str) -> str:
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https:; font-src 'self' data:; connect-src 'self'; "
        "frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def served_over_https(app: Flask) -> bool:
    public = str(app.config.get("PUBLIC_URL") or "")
    return public.startswith("https://") or app.config.get("PREFERRED_URL_SCHEME") == "https"


def _set_headers(response):
    from flask import current_app

    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if not request.path.startswith(FRAMED_OR_OWN_CSP) and "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = admin_csp(csp_nonce())
        headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure or served_over_https(current_app):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def _has_nul(value: str) -> bool:
    return "\x00" in value or "%00" in value


def _refuse_hostile_input():
    """NUL bytes in the path, query or a form/JSON body: 400 with the error shape."""
    from app.errors import ApiError

    raw_query = request.query_string.decode("latin-1")
    if "\x00" in request.path or _has_nul(raw_query.lower()):
        raise ApiError("invalid", "NUL bytes are not allowed in a request", status=400)
    public_json = request.path.startswith(("/api/v1/public/", "/portal/", "/widget/"))
    limit = current_limit(public_json)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError("too_large", f"the request body is larger than {limit} bytes", status=413)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        mimetype = request.mimetype or ""
        if mimetype == "multipart/form-data":
            # Uploaded files may be binary; the form fields may not carry NUL.
            if any("\x00" in v for values in request.form.listvalues() for v in values):
                raise ApiError("invalid", "NUL bytes are not allowed in a request", status=400)
        elif request.content_length or request.headers.get("Transfer-Encoding"):
            data = request.get_data(cache=True)
            if b"\x00" in data or b"%00" in data or b"\\u0000" in data.lower():
                raise ApiError("invalid", "NUL bytes are not allowed in a request", status=400)


def current_limit(public: bool) -> int:
    from flask import current_app

    if public:
        return int(current_app.config.get("PUBLIC_MAX_CONTENT_LENGTH", 64 * 1024))
    return int(current_app.config.get("MAX_CONTENT_LENGTH") or 16 * 1024 * 1024)


def install(app: Flask) -> None:
    app.session_interface = NoCookieForApiKeys()
    app.config.setdefault("MAX_CONTENT_LENGTH", 16 * 1024 * 1024)
    if served_over_https(app):
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=0)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.before_request(_refuse_hostile_input)
    app.after_request(_set_headers)
