"""Per-user session generation: logout, password change/reset, role removal and
deactivation end every existing admin session of that user.

Flask's sessions are signed cookies; a copied cookie would otherwise stay valid for
its whole lifetime. Each user row carries `session_generation`; a log-in records the
current value in the session, and every request compares the two (one indexed
primary-key read, in the user loader). Any of the events above bumps the counter:

- logout (Flask-Login's `user_logged_out`);
- a change to the user's password or `active` flag, or to their FAB roles, and the
  removal of one of their memberships — detected in the ORM flush, so every code path
  (FAB's user admin, reset by mail, "my password", CLI) is covered.
"""

from __future__ import annotations

from flask import Flask, has_request_context, session as web_session
from flask_login import user_logged_in, user_logged_out
from sqlalchemy import event, text
from sqlalchemy.orm import Session

SESSION_KEY = "_upz_gen"


def current_generation(session, user_id: int) -> int | None:
    return session.execute(
        text("SELECT session_generation FROM public.ab_user WHERE id = :id"), {"id": user_id}
    ).scalar()


def bump(connection_or_session, user_ids) -> None:
    ids = sorted({int(i) for i in user_ids if i is not None})
    if ids:
        connection_or_session.execute(
            text("UPDATE public.ab_user SET session_generation = session_generation + 1 WHERE id = ANY(:ids)"),
            {"ids": ids},
        )


def session_is_current(db_session, user) -> bool:
    """True unless the request's session was issued under an older generation of `user`."""
    if not has_request_context():
        return True
    recorded = web_session.get(SESSION_KEY)
    if recorded is None:
        # A session without a generation (signed before this check existed, or not a log-in).
        return False
    return recorded == current_generation(db_session, user.id)


def _on_login(sender, user, **extra):
    from app.extensions import db

    web_session[SESSION_KEY] = current_generation(db.session, user.id)


def _on_logout(sender, user, **extra):
    from app.extensions import db
    from app.uow import unit_of_work

    if user is None or not getattr(user, "id", None):
        return
    with unit_of_work(db.session) as session:
        bump(session, [user.id])
    web_session.pop(SESSION_KEY, None)


def _users_to_bump(session: Session) -> set[int]:
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import inspect

    from app.models.public import Membership

    ids: set[int] = set()
    for obj in session.dirty:
        if isinstance(obj, User):
            state = inspect(obj)
            for attr in ("password", "active", "roles"):
                history = state.attrs[attr].history
                if history.deleted or (attr == "roles" and history.has_changes()):
                    if attr == "roles" and not history.deleted:
                        continue  # a role added does not end sessions
                    ids.add(obj.id)
    for obj in session.deleted:
        if isinstance(obj, Membership):
            ids.add(obj.user_id)
        elif isinstance(obj, User):
            pass  # the row goes; its sessions fail the user load anyway
    return ids


def _before_flush(session: Session, flush_context, instances) -> None:
    ids = _users_to_bump(session)
    if ids:
        session.info.setdefault("_upz_bump", set()).update(ids)


def _after_flush(session: Session, flush_context) -> None:
    ids = session.info.pop("_upz_bump", None)
    if ids:
        bump(session.connection(), ids)


def install(app: Flask) -> None:
    user_logged_in.connect(_on_login, app)
    user_logged_out.connect(_on_logout, app)
    if not getattr(Session, "_upz_generation_hooks", False):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)
        Session._upz_generation_hooks = True
