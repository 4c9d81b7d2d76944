"""The booking's SQL and nothing else: a floor for the booking benchmark.

A WSGI app (Flask, psycopg, gunicorn sync workers, like the real one) that
answers the benchmark's POST /api/v1/public/<tenant>/bookings by running the
statements a real booking runs, against the same tables, in one transaction:

    BEGIN; SET LOCAL search_path; upsert the customer; advisory lock on the
    staff member; read that day's appointments, time off and busy blocks;
    insert appointment + first status + outbox event (one statement); COMMIT

It checks no rule beyond "does a read row overlap", validates nothing, keeps no
ORM objects, builds no token and reads no cached rules. So its bookings/s are
what this machine gives for the database work alone: whatever the real
endpoint adds (validation, the engine's re-check, forms, the ORM, the response)
has to fit between the two figures. `http_bench.py` prints it as a column.

With FLOOR_RECHECK=1 it also runs the issue's required re-check under the
lock: the pure engine (app.scheduling) over that staff member's local day,
with the rules of the benchmark's setup document and the rows just read. That
column is the SQL plus the engine and still nothing else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import uuid

from dataclasses import replace

import psycopg
from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from app.scheduling import model as sm
from app.scheduling.engine import find_slots
from app.scheduling.setup_file import setup_from_file

application = Flask(__name__)
_connection: psycopg.Connection | None = None
_ids: dict[str, tuple] = {}
_schemas: dict[str, str] = {}
RECHECK = os.environ.get("FLOOR_RECHECK") == "1"
MARGIN = dt.timedelta(days=2)  # rows read around the day, as app.services.availability does

UPSERT = (
    "INSERT INTO customer (name, email, phone, locale, timezone, sms_opt_out, marketing_opt_in, created_at)"
    " VALUES (%s, %s, NULL, NULL, NULL, false, false, now())"
    " ON CONFLICT (lower(email)) DO UPDATE SET name = EXCLUDED.name RETURNING id"
)
FRESH_ROWS = (
    "SELECT start_at, end_at, true FROM appointment WHERE staff_id = %(staff)s AND status <> 'cancelled'"
    " AND padded_start < %(hi)s AND padded_end > %(lo)s"
    " UNION ALL SELECT start_at, end_at, false FROM time_off WHERE staff_id = %(staff)s AND start_at < %(hi)s AND end_at > %(lo)s"
    " UNION ALL SELECT start_at, end_at, false FROM busy_block WHERE staff_id = %(staff)s AND start_at < %(hi)s AND end_at > %(lo)s"
)
BOOKED = (
    "WITH new_appointment AS (INSERT INTO appointment (id, service_id, staff_id, location_id, customer_id,"
    " start_at, end_at, padded_start, padded_end, session_key, status, seats, source, timezone, answers, currency,"
    " manage_token_hash, sequence, created_at, updated_at)"
    " VALUES (%(id)s, %(service)s, %(staff)s, %(location)s, %(customer)s, %(start)s, %(end)s, %(start)s, %(end)s,"
    " %(session_key)s, 'confirmed', 1, 'api', 'UTC', '{}', 'EUR', %(token_hash)s, 0, now(), now()) RETURNING id),"
    " first_status AS (INSERT INTO status_change (appointment_id, to_status, at, actor)"
    " SELECT id, 'confirmed', now(), 'customer' FROM new_appointment)"
    " INSERT INTO outbox_event (event_type, aggregate_id, payload, attempts) VALUES ('appointment.booked', %(key)s, %(payload)s, 0)"
)


def _db() -> psycopg.Connection:
    global _connection
    if _connection is None:
        url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql")
        _connection = psycopg.connect(url.render_as_string(hide_password=False))
    return _connection


def _schema_of(slug: str) -> str:
    """The tenant's stored schema name, read once per slug (setup, like _keys)."""
    from bench.support import tenant_schema

    with _db().transaction():
        return tenant_schema(_db(), slug)


def _keys(schema: str) -> tuple:
    """(service id, location id, {staff key: id}) of the benchmark tenant, read once."""
    if schema not in _ids:
        with _db().transaction():
            conn = _db()
            conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            service = conn.execute("SELECT id FROM service WHERE key = 'visit'").fetchone()[0]
            location = conn.execute("SELECT id FROM location WHERE key = 'main'").fetchone()[0]
            staff = dict(conn.execute("SELECT key, id FROM staff").fetchall())
        _ids[schema] = (service, location, staff)
    return _ids[schema]


@application.post("/api/v1/public/<slug>/bookings")
def book(slug: str):
    body = request.get_json()
    schema = _schemas.get(slug) or _schemas.setdefault(slug, _schema_of(slug))
    service, location, staff_ids = _keys(schema)
    staff = staff_ids[body["staff"]]
    start = dt.datetime.fromisoformat(body["start"].replace("Z", "+00:00"))
    end = start + dt.timedelta(minutes=30)
    day = start.replace(hour=0, minute=0, second=0)
    conn = _db()
    with conn.transaction():
        conn.execute(f'SET LOCAL search_path TO "{schema}", public')
        customer = conn.execute(UPSERT, (body["customer"]["name"], body["customer"]["email"])).fetchone()[0]
        conn.execute("SELECT pg_advisory_xact_lock(7262, hashtext(%s))", (f"{schema}:{staff}",))
        lo, hi = (day - MARGIN, day + dt.timedelta(days=1) + MARGIN) if RECHECK else (day, day + dt.timedelta(days=1))
        rows = conn.execute(FRESH_ROWS, {"staff": staff, "lo": lo, "hi": hi}).fetchall()
        free = _engine_allows(slug, body["staff"], start, rows) if RECHECK else not any(s < end and e > start for s, e, _ in rows)
        if not free:
            return jsonify(error={"code": "slot_unavailable", "message": "taken", "field": "start"}), 409
        appointment = uuid.uuid4()
        token = secrets.token_urlsafe(24)
        conn.execute(BOOKED, {
            "id": appointment, "service": service, "staff": staff, "location": location, "customer": customer,
            "start": start, "end": end, "session_key": f"a:{appointment.hex}",
            "token_hash": hashlib.sha256(token.encode()).hexdigest(), "key": str(appointment),
            "payload": Jsonb({"tenant": slug, "appointment_id": str(appointment)}),
        })
    return jsonify(appointment={"id": str(appointment), "start": body["start"], "staff": body["staff"]}, manage_token=token), 201


def _engine_allows(slug: str, staff_key: str, start: dt.datetime, rows) -> bool:
    """The engine's answer for one start: that staff member's slots of the day, with the rows just read."""
    rules = _rules(slug)
    bookings = tuple(
        sm.Booking(staff=staff_key, service="visit", start=s, end=e) for s, e, is_booking in rows if is_booking
    )
    blocked = tuple(sm.Interval(s, e) for s, e, is_booking in rows if not is_booking)
    setup = replace(rules, staff={staff_key: replace(rules.staff[staff_key], time_off=blocked)}, bookings=bookings)
    query = sm.SlotQuery(service="visit", date_from=start.date(), date_to=start.date(), timezone="UTC",
                         now=dt.datetime.now(dt.timezone.utc))
    return any(slot.start == start for slot in find_slots(setup, query))


def _rules(slug: str) -> sm.Setup:
    if slug not in _setups:
        from bench.http_bench import BOOK_STAFF, setup_doc

        _setups[slug] = setup_from_file(setup_doc(slug, BOOK_STAFF, "UTC"))[0]
    return _setups[slug]


_setups: dict[str, sm.Setup] = {}


@application.get("/health")
def health():
    return jsonify(status="ok")
