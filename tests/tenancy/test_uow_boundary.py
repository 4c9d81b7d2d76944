"""The one transaction boundary (app.uow): commit once or roll back, overlap and deadlock become
slot_unavailable, one retry after a real deadlock; and no request, job or CLI code ends a
transaction by hand."""

from __future__ import annotations

import ast
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
# Code at the edge: it runs its work through app.uow and never commits or rolls back itself.
EDGE = ["views", "portal", "widget", "cli", "jobs", "security.py", "api_rest.py", "health.py", "meetings/hooks.py"]


def _calls(path: Path, names: set[str]):
    """(line, receiver source, method) of every `<x>.<method>(...)` call named in `names`."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names:
            yield node.lineno, ast.unparse(node.func.value), node.func.attr


def _files(parts: list[str]) -> list[Path]:
    out = []
    for part in parts:
        target = APP / part
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return out


def test_edge_code_never_commits_or_rolls_back_by_hand():
    files = _files(EDGE)
    assert len(files) > 20 and (APP / "views" / "people.py") in files
    found = [
        f"{path.relative_to(ROOT)}:{line}: {receiver}.{method}()"
        for path in files
        for line, receiver, method in _calls(path, {"commit", "rollback"})
    ]
    assert found == [], "end transactions through app.uow (run_unit / transactional / discard):\n" + "\n".join(found)


def test_services_flush_and_never_end_the_transaction():
    files = _files(["services"])
    assert (APP / "services" / "booking.py") in files
    found = []
    for path in files:
        for line, receiver, method in _calls(path, {"commit", "rollback", "begin"}):
            # A savepoint (begin_nested) may roll back its own part; the transaction is the caller's.
            if method == "rollback" and "savepoint" in receiver:
                continue
            if method == "begin" and "session" not in receiver:
                continue
            found.append(f"{path.relative_to(ROOT)}:{line}: {receiver}.{method}()")
    assert found == [], "services flush; the caller's unit of work commits:\n" + "\n".join(found)


def test_the_scan_finds_a_hand_written_commit(tmp_path):
    sample = tmp_path / "view.py"
    sample.write_text("def f():\n    db.session.add(x)\n    db.session.commit()\n    s.rollback()\n")
    assert [(line, method) for line, _r, method in _calls(sample, {"commit", "rollback"})] == [(3, "commit"), (4, "rollback")]


# --------------------------------------------------------------------------- against PostgreSQL


@pytest.fixture()
def scratch_table(engine):
    """A public table `name (id int primary key, v int, span tstzrange, EXCLUDE span &&)` with rows 1 and 2."""
    name = f"uow_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE public.{name} (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, span tstzrange,"
                          f" EXCLUDE USING gist (span WITH &&))"))
        conn.execute(text(f"INSERT INTO public.{name} (id) VALUES (1), (2)"))
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE public.{name}"))


def _values(engine, table) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT id, v FROM public.{table}")).all())


def test_a_unit_commits_once_at_the_end(engine, scratch_table):
    from app.uow import run_unit

    commits = []
    with Session(engine) as session:
        event.listen(session, "after_commit", lambda s: commits.append(1))

        def work():
            session.execute(text(f"UPDATE public.{scratch_table} SET v = 5 WHERE id = 1"))
            session.flush()
            # Not visible outside before the unit ends.
            assert _values(engine, scratch_table)[1] == 0
            session.execute(text(f"UPDATE public.{scratch_table} SET v = 6 WHERE id = 2"))
            return "done"

        assert run_unit(work, session) == "done"
    assert commits == [1]
    assert _values(engine, scratch_table) == {1: 5, 2: 6}


def test_a_unit_that_raises_writes_nothing(engine, scratch_table):
    from app.uow import unit_of_work

    with Session(engine) as session:
        with pytest.raises(ValueError):
            with unit_of_work(session):
                session.execute(text(f"UPDATE public.{scratch_table} SET v = 9"))
                raise ValueError("refused")
        assert not session.in_transaction()
    assert _values(engine, scratch_table) == {1: 0, 2: 0}


def test_an_overlap_refused_by_the_database_is_slot_unavailable(engine, scratch_table):
    from app.errors import SlotUnavailable
    from app.uow import run_unit, sqlstate

    insert = text(f"UPDATE public.{scratch_table} SET span = tstzrange(:a, :b) WHERE id = :id")
    with Session(engine) as session:
        run_unit(lambda: session.execute(insert, {"a": "2030-01-01 10:00Z", "b": "2030-01-01 11:00Z", "id": 1}), session)
        with pytest.raises(SlotUnavailable) as caught:
            run_unit(lambda: session.execute(insert, {"a": "2030-01-01 10:30Z", "b": "2030-01-01 11:30Z", "id": 2}), session)
    assert caught.value.code == "slot_unavailable" and caught.value.status == 409
    assert sqlstate(caught.value) == "23P01"
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(span) FROM public.{scratch_table}")).scalar() == 1


def _deadlocking_unit(engine, table):
    """(fn, attempts, other): fn's first run deadlocks with a second connection (`other`), which wins."""
    attempts: list[int] = []
    a_locked, b_locked = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other():
        try:
            with engine.connect() as conn:
                conn.execute(text("SET LOCAL deadlock_timeout = '10s'"))  # never the victim
                conn.execute(text(f"UPDATE public.{table} SET v = v + 10 WHERE id = 1"))
                a_locked.set()
                b_locked.wait(10)
                conn.execute(text(f"UPDATE public.{table} SET v = v + 10 WHERE id = 2"))
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=other)

    def fn(session):
        attempts.append(1)
        session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
        session.execute(text(f"UPDATE public.{table} SET v = v + 1 WHERE id = 2"))
        if len(attempts) == 1:
            thread.start()
            assert a_locked.wait(10)
            b_locked.set()
            time.sleep(0.3)  # the other connection now waits for row 2: row 1 closes the cycle
        session.execute(text(f"UPDATE public.{table} SET v = v + 1 WHERE id = 1"))

    return fn, attempts, thread, errors


def test_a_real_deadlock_is_retried_once(engine, scratch_table):
    from app.uow import run_unit

    fn, attempts, thread, errors = _deadlocking_unit(engine, scratch_table)
    with Session(engine) as session:
        run_unit(lambda: fn(session), session, retry=True)
    thread.join(10)
    assert errors == []
    assert len(attempts) == 2
    # Both transactions are in: the other connection's and the retried unit's (once, not twice).
    assert _values(engine, scratch_table) == {1: 11, 2: 11}


def test_a_real_deadlock_without_retry_is_slot_unavailable(engine, scratch_table):
    from app.errors import SlotUnavailable
    from app.uow import run_unit, sqlstate

    fn, attempts, thread, errors = _deadlocking_unit(engine, scratch_table)
    with Session(engine) as session:
        with pytest.raises(SlotUnavailable) as caught:
            run_unit(lambda: fn(session), session)
    thread.join(10)
    assert errors == [] and len(attempts) == 1
    assert sqlstate(caught.value) == "40P01"
    assert _values(engine, scratch_table) == {1: 10, 2: 10}


def test_discard_ends_a_read_without_writing(engine, scratch_table):
    from app.uow import discard

    with Session(engine) as session:
        session.execute(text(f"UPDATE public.{scratch_table} SET v = 3"))
        discard(session)
        assert not session.in_transaction()
    assert _values(engine, scratch_table) == {1: 0, 2: 0}
