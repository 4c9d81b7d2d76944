"""Concurrent bookings over real HTTP against real PostgreSQL: exactly one winner per slot."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import minimal_setup
from sqlalchemy import text
from werkzeug.serving import make_server

NOW = "2027-01-01T00:00:00Z"
START = "2027-01-11T08:00:00Z"


@pytest.fixture()
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _hammer(url: str, bodies: list[dict]) -> list[int]:
    barrier = threading.Barrier(len(bodies))

    def one(body):
        with requests.Session() as http:
            barrier.wait()
            return http.post(url, json=body, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def _body(i: int, **extra) -> dict:
    return {"service": "visit", "start": START, "customer": {"name": f"C{i}", "email": f"c{i}@example.com"}, **extra}


def _live_rows(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(
            f'SELECT staff_id, seats FROM "tenant_{slug}".appointment WHERE status <> \'cancelled\'')).all()


def test_fifty_concurrent_posts_for_one_slot_make_one_booking(app, live_server, make_tenant, pinned_now):
    pinned_now(NOW)
    slug = make_tenant()
    started = time.monotonic()
    codes = _hammer(f"{live_server}/api/v1/public/{slug}/bookings", [_body(i, staff="ann") for i in range(50)])
    assert time.monotonic() - started < 30  # no deadlock stalls
    assert codes.count(201) == 1 and codes.count(409) == 49, codes
    assert len(_live_rows(app, slug)) == 1


def test_any_staff_race_fills_each_staff_member_once(app, live_server, make_tenant, pinned_now):
    pinned_now(NOW)
    setup = minimal_setup()
    setup["staff"].append({**setup["staff"][0], "key": "bob", "name": "Bob"})
    setup["staff"].append({**setup["staff"][0], "key": "cy", "name": "Cy"})
    slug = make_tenant(setup)
    codes = _hammer(f"{live_server}/api/v1/public/{slug}/bookings", [_body(i) for i in range(50)])
    assert codes.count(201) == 3 and codes.count(409) == 47, codes
    rows = _live_rows(app, slug)
    assert len({staff for staff, _ in rows}) == 3


def test_group_session_sells_exactly_its_capacity(app, live_server, make_tenant, pinned_now):
    pinned_now(NOW)
    setup = minimal_setup()
    setup["services"][0]["capacity"] = 5
    slug = make_tenant(setup)
    codes = _hammer(f"{live_server}/api/v1/public/{slug}/bookings", [_body(i) for i in range(50)])
    assert codes.count(201) == 5 and codes.count(409) == 45, codes
    assert sum(seats for _, seats in _live_rows(app, slug)) == 5


def test_database_refuses_overlapping_padded_ranges_even_without_the_code(app, make_tenant, pinned_now, client):
    from psycopg.errors import ExclusionViolation
    from sqlalchemy.exc import IntegrityError

    from app.extensions import db

    pinned_now(NOW)
    slug = make_tenant()
    assert client.post(f"/api/v1/public/{slug}/bookings", json=_body(1)).status_code == 201
    with app.app_context(), db.engine.connect() as conn:
        row = conn.execute(text(f'SELECT * FROM "tenant_{slug}".appointment')).mappings().one()
        with pytest.raises(IntegrityError) as info:
            conn.execute(
                text(
                    f'INSERT INTO "tenant_{slug}".appointment (id, service_id, staff_id, start_at, end_at, padded_start,'
                    " padded_end, session_key, status, seats, source, answers, sequence, created_at, updated_at)"
                    " VALUES (gen_random_uuid(), :service, :staff, :s + interval '15 minutes', :e + interval '15 minutes',"
                    " :s + interval '15 minutes', :e + interval '15 minutes', 'other', 'confirmed', 1, 'sql', '{}', 0, now(), now())"
                ),
                {"service": row["service_id"], "staff": row["staff_id"], "s": row["start_at"], "e": row["end_at"]},
            )
        assert isinstance(info.value.orig, ExclusionViolation)
