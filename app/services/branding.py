"""A business's logo: uploaded and served by the app (checked for size and type), and the warnings the
widget builder shows about a logo that may not load inside the widget or the portal."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy.orm import Session

from app.models.public import Tenant, TenantLogo

LOGO_MAX_BYTES = 300 * 1024
# By content, not by the file name: (magic bytes, content type, extension). No SVG: it can carry script.
LOGO_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
)
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


class LogoRefused(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = "logo_file"
        self.message = message


def logo_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((ctype for magic, ctype, _ext in LOGO_TYPES if data.startswith(magic)), None)


def logo_path(slug: str, logo: TenantLogo) -> str:
    return f"/widget/v1/{slug}/logo/{logo.digest[:16]}.{EXTENSIONS[logo.content_type]}"


def store_logo(session: Session, tenant: Tenant, data: bytes) -> str:
    """Keep `data` as the business's logo (PNG, JPEG, GIF or WebP, at most 300 KB) and point the
    business's logo at it; answers the served path. Flushes only."""
    if not data:
        raise LogoRefused("Choose an image file.")
    if len(data) > LOGO_MAX_BYTES:
        raise LogoRefused(f"The logo is {len(data) // 1024} KB; at most {LOGO_MAX_BYTES // 1024} KB, please.")
    ctype = logo_type(data)
    if ctype is None:
        raise LogoRefused("The logo must be a PNG, JPEG, GIF or WebP image (SVG is not accepted).")
    digest = hashlib.sha256(data).hexdigest()
    row = session.get(TenantLogo, tenant.id)
    if row is None:
        row = TenantLogo(tenant_id=tenant.id)
        session.add(row)
    row.content_type, row.digest, row.data, row.updated_at = ctype, digest, data, dt.datetime.now(dt.timezone.utc)
    tenant.logo_url = logo_path(tenant.slug, row)
    session.flush()
    return tenant.logo_url


def served_logo(session: Session, tenant_id: int, name: str) -> TenantLogo | None:
    """The stored logo when `name` is its current served name (an old name is gone, not served stale)."""
    row = session.get(TenantLogo, tenant_id)
    if row is None or name != f"{row.digest[:16]}.{EXTENSIONS[row.content_type]}":
        return None
    return row


def logo_warnings(logo_url: str | None, uploaded: bool) -> list[str]:
    """Why a logo may not show inside the widget or the portal (empty when it will)."""
    if not logo_url:
        return ["No logo yet: the widget and the portal show the business name only. Upload one below."]
    if logo_url.startswith("http://"):
        return ["The logo address is plain http: browsers block it inside the widget, which is served over https. "
                "Upload the logo instead."]
    if logo_url.startswith("/widget/v1/") and not uploaded:
        return ["The uploaded logo this address points to is gone. Upload it again."]
    if logo_url.startswith("https://"):
        return ["The logo is loaded from another website: if that site is slow, moves the file or blocks other "
                "sites, the widget shows no logo. Uploading it here avoids that."]
    return []
