"""Who is acting and from where, for the audit log: set once at each boundary.

The boundary (a web request, an RQ job, a CLI command) says who acts; the audit
listener (app.gdpr.audit) reads it at flush time, so no view, service or job writes
audit code of its own. Inside a Flask request nothing needs setting: the actor is
derived from what the request already resolved (the FAB user, the API key, the
portal customer, else an anonymous visitor) with its IP, user agent and request id.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, replace
from typing import Iterator


@dataclass(frozen=True)
class Actor:
    kind: str  # user | api_key | customer | public | job | cli | system
    id: str | None = None
    label: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    def describe(self) -> str:
        return f"{self.kind}:{self.label or self.id or ''}".rstrip(":")


SYSTEM = Actor("system")
_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("upzento_audit_actor", default=None)


def set_actor(actor: Actor | None) -> contextvars.Token:
    return _actor.set(actor)


def reset_actor(token: contextvars.Token) -> None:
    _actor.reset(token)


@contextlib.contextmanager
def acting_as(kind: str, id: str | None = None, label: str | None = None, **where) -> Iterator[Actor]:
    """`with acting_as("job", label="retention"):` – everything written inside is attributed to it."""
    from app.observability import current_request_id

    actor = Actor(kind, None if id is None else str(id), label, request_id=where.pop("request_id", None) or current_request_id(),
                  **where)
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def current_actor() -> Actor:
    """The actor of the work being done now (explicit context first, then the Flask request)."""
    explicit = _actor.get()
    if explicit is not None:
        return explicit
    from flask import has_request_context

    if has_request_context():
        return _from_request()
    from app.observability import current_request_id

    request_id = current_request_id()
    return replace(SYSTEM, request_id=request_id) if request_id else SYSTEM


def _from_request() -> Actor:
    from flask import g, request, session

    where = {
        "ip": (request.remote_addr or None),
        "user_agent": (request.user_agent.string or None) and request.user_agent.string[:300],
        "request_id": g.get("request_id"),
    }
    if g.get("_api_key_user"):
        return Actor("api_key", str(g.get("api_key_id") or ""), g.get("api_key_label"), **where)
    user = g.get("user")
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "id", None) is not None:
        return Actor("user", str(user.id), getattr(user, "username", None), **where)
    tenant = g.get("tenant")
    if request.blueprint == "portal" and tenant is not None:
        customer_id = (session.get("portal") or {}).get(tenant.slug)
        if customer_id:
            return Actor("customer", str(customer_id), None, **where)
    return Actor("public", None, None, **where)
