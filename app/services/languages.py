"""A staff or admin user's language preference (public.ab_user.locale), read at log-in."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import ApiError
from app.i18n import LANGUAGES, normalize


def user_language(session: Session, user_id: int) -> str | None:
    """The language the user chose, or None."""
    value = session.execute(text("SELECT locale FROM public.ab_user WHERE id = :id"), {"id": user_id}).scalar()
    return normalize(value)


def set_user_language(session: Session, user_id: int, language: str) -> str:
    """Keep ``language`` as the user's choice for later sessions."""
    code = normalize(language)
    if code is None:
        raise ApiError("invalid_language", f"language must be one of {', '.join(LANGUAGES)}", "locale", status=422)
    session.execute(text("UPDATE public.ab_user SET locale = :locale WHERE id = :id"), {"locale": code, "id": user_id})
    return code
