"""The one transaction boundary: requests, CLI commands and jobs commit here, nowhere else.

Services flush and raise; they never commit. The code at the edge (a view, a CLI
command, a job) runs its work through `unit_of_work()` / `run_unit()` / `@transactional`:

- the block's work is committed once at the end, or rolled back when anything raises;
- the database's overlap refusal (23P01) and a deadlock (40P01) become the domain
  error `slot_unavailable`;
- `discard()` ends an open transaction without writing: a read that is done (the
  connection goes back to the pool before the page renders), or work a framework
  boundary (FAB's model views and REST API commit inside FAB) refused half-way;
- with `retry=True`, a deadlock or serialization failure (40P01 / 40001) rolls back
  and runs the work once more (only for work that is safe to run twice: it re-reads
  what it needs inside the block).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session

from app.errors import SlotUnavailable

T = TypeVar("T")
__all__ = ["SlotUnavailable", "discard", "run_unit", "sqlstate", "transactional", "unit_of_work"]

RETRYABLE = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
REFUSED = frozenset({"23P01", "40P01"})  # exclusion_violation (overlap), deadlock


def sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE behind `exc`, following `__cause__` (a domain error raised from a DB error keeps it)."""
    seen = 0
    while exc is not None and seen < 5:
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        if code:
            return code
        exc = exc.__cause__
        seen += 1
    return None


def _plain(session: Session | scoped_session | None) -> Session:
    if session is None:
        from app.extensions import db

        session = db.session
    return session() if isinstance(session, scoped_session) else session


@contextlib.contextmanager
def unit_of_work(session: Session | scoped_session | None = None) -> Iterator[Session]:
    """Commit the block's work once, or roll it back; map the overlap refusal to `slot_unavailable`."""
    plain = _plain(session)
    try:
        yield plain
        plain.commit()
    except DBAPIError as exc:
        plain.rollback()
        if sqlstate(exc) in REFUSED:
            raise SlotUnavailable() from exc
        raise
    except BaseException:
        plain.rollback()
        raise


def run_unit(fn: Callable[[], T], session: Session | scoped_session | None = None, *, retry: bool = False) -> T:
    """`fn()` inside one unit of work; with `retry`, once more after a deadlock / serialization failure."""
    attempts = 2 if retry else 1
    for attempt in range(attempts):
        try:
            with unit_of_work(session):
                return fn()
        except Exception as exc:  # noqa: BLE001 - re-raised unless retryable
            if attempt + 1 < attempts and sqlstate(exc) in RETRYABLE:
                continue
            raise
    raise AssertionError("unreachable")


def transactional(fn: Callable[..., T] | None = None, *, retry: bool = False) -> Any:
    """Decorator form of `run_unit` for views, CLI commands and jobs (on `db.session`)."""

    def wrap(inner: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(inner)
        def wrapper(*args, **kwargs):
            return run_unit(lambda: inner(*args, **kwargs), retry=retry)

        return wrapper

    return wrap(fn) if fn is not None else wrap


def discard(session: Session | scoped_session | None = None) -> None:
    """End the open transaction without writing anything: a finished read, or refused work."""
    _plain(session).rollback()
