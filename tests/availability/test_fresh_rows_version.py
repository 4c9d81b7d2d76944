"""The exact answer cache: keyed on (rules version, fresh-rows versions, query), never on the clock, never stale.

Each write to a staff member's appointments, time off or busy blocks (ORM, plain SQL,
TRUNCATE) moves that staff member's fresh_version row; the answer served from the cache
always equals one computed from scratch.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text

from support import minimal_setup

NOW = "2027-01-01T00:00:00Z"
DAY = "2027-01-11"
ARGS = {"service": "visit", "from": DAY, "to": "2027-01-12", "timezone": "Europe/Berlin"}


def _two_staff() -> dict:
    doc = minimal_setup()
    doc["staff"].append({**doc["staff"][0], "key": "bob", "name": "Bob"})
    return doc


def _get(client, slug, **extra):
    response = client.get(f"/api/v1/public/{slug}/availability", query_string={**ARGS, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["slots"]


def _sql(app, statement, **params):
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        return conn.execute(text(statement), params)


def _versions(app, slug) -> dict[str, int]:
    rows = _sql(app, f'SELECT s.key, f.version FROM "tenant_{slug}".fresh_version f'
                     f' JOIN "tenant_{slug}".staff s ON s.id = f.staff_id').all()
    return dict(rows)


def _uncached(app, slug, now=NOW):
    """The same answer computed without the answer cache (slots_json: rows read, engine run)."""
    from app.extensions import db
    from app.services.availability import parse_query, slots_json
    from app.tenancy import tenant_session

    instant = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        return slots_json(session, parse_query(ARGS, 62), instant)["slots"]


def test_every_write_to_a_staff_members_rows_moves_only_their_version(app, make_tenant):
    slug = make_tenant(_two_staff())
    schema = f'"tenant_{slug}"'
    assert _versions(app, slug) == {}  # no row yet: none of their rows exist either

    def moved(statement):
        before = _versions(app, slug)
        _sql(app, statement)
        after = _versions(app, slug)
        return {k for k in after if after[k] != before.get(k)}

    ann = f"(SELECT id FROM {schema}.staff WHERE key = 'ann')"
    assert moved(f"INSERT INTO {schema}.time_off (staff_id, start_at, end_at)"
                 f" VALUES ({ann}, '{DAY}T08:00Z', '{DAY}T09:00Z')") == {"ann"}
    assert moved(f"UPDATE {schema}.time_off SET end_at = end_at + interval '1 hour'") == {"ann"}
    assert moved(f"DELETE FROM {schema}.time_off") == {"ann"}
    assert moved(f"INSERT INTO {schema}.busy_block (staff_id, source, external_id, start_at, end_at)"
                 f" VALUES ({ann}, 'google', 'x1', '{DAY}T08:00Z', '{DAY}T09:00Z')") == {"ann"}
    # A busy block moved to the other staff member changes both.
    assert moved(f"UPDATE {schema}.busy_block SET staff_id = (SELECT id FROM {schema}.staff WHERE key = 'bob')") == {"ann", "bob"}
    assert moved(f"TRUNCATE {schema}.busy_block") == {"ann", "bob"}


def test_appointment_writes_move_the_version_but_bookkeeping_columns_do_not(app, client, make_tenant, pinned_now):
    pinned_now(NOW)
    slug = make_tenant(_two_staff())
    schema = f'"tenant_{slug}"'
    first = _get(client, slug)[0]
    booked = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "staff": "ann", "start": first["start"], "customer": {"name": "A", "email": "a@example.com"}})
    assert booked.status_code == 201
    after_booking = _versions(app, slug)
    _sql(app, f"UPDATE {schema}.appointment SET notes = 'call first', sequence = sequence + 1")
    assert _versions(app, slug) == after_booking  # not read by availability: no new answers needed
    _sql(app, f"UPDATE {schema}.appointment SET status = 'cancelled'")
    cancelled = _versions(app, slug)
    assert cancelled["ann"] != after_booking["ann"] and "bob" not in cancelled


def test_cached_answer_equals_a_fresh_computation_after_each_kind_of_write(app, client, make_tenant, pinned_now):
    pinned_now(NOW)
    slug = make_tenant(_two_staff())
    schema = f'"tenant_{slug}"'
    ann = f"(SELECT id FROM {schema}.staff WHERE key = 'ann')"
    steps = [
        None,
        f"INSERT INTO {schema}.busy_block (staff_id, source, external_id, start_at, end_at)"
        f" VALUES ({ann}, 'google', 'b1', '{DAY}T08:00Z', '{DAY}T10:00Z')",
        f"INSERT INTO {schema}.time_off (staff_id, start_at, end_at)"
        f" SELECT id, '{DAY}T13:00Z', '{DAY}T15:00Z' FROM {schema}.staff",
        f"DELETE FROM {schema}.busy_block",
        f"UPDATE {schema}.time_off SET start_at = '{DAY}T14:00Z'",
        f"TRUNCATE {schema}.time_off",
    ]
    for statement in steps:
        if statement:
            _sql(app, statement)
        _get(client, slug)  # fill the cache
        assert _get(client, slug) == _uncached(app, slug), statement  # served from it


def test_a_hit_applies_notice_and_advance_for_the_current_clock(app, client, make_tenant, pinned_now):
    doc = minimal_setup()
    doc["services"][0].update(min_notice_min=120, max_advance_days=11)
    slug = make_tenant(doc)
    pinned_now("2027-01-11T08:00:00Z")  # 09:00 Berlin: notice hides starts before 11:00
    first = _get(client, slug)
    assert first[0]["start"] == "2027-01-11T10:00:00Z"
    assert first == _uncached(app, slug, "2027-01-11T08:00:00Z")
    pinned_now("2027-01-11T12:10:00Z")  # same versions, later clock: the cached answer, cut at 14:10 UTC
    later = _get(client, slug)
    assert later[0]["start"] == "2027-01-11T14:30:00Z"
    assert later == _uncached(app, slug, "2027-01-11T12:10:00Z")
    pinned_now("2027-01-01T06:00:00Z")  # advance (11 days) ends at 2027-01-12T06:00Z: nothing on the 12th
    early = _get(client, slug)
    assert {s["start"][:10] for s in early} == {"2027-01-11"}
    assert early == _uncached(app, slug, "2027-01-01T06:00:00Z")


def test_versions_read_inside_a_rolled_back_transaction_never_serve_later(app, client, make_tenant, pinned_now):
    """An answer cached from uncommitted rows is keyed on a version number that is never used again."""
    from app.extensions import db
    from app.services.availability import parse_query, slots_json_text
    from app.tenancy import tenant_session

    pinned_now(NOW)
    slug = make_tenant()
    clean = _get(client, slug)
    schema = f'"tenant_{slug}"'
    with app.app_context():
        try:
            with tenant_session(db.engine, slug) as (session, _ref):
                session.execute(text(f"INSERT INTO {schema}.time_off (staff_id, start_at, end_at)"
                                     f" SELECT id, '{DAY}T00:00Z', '2027-01-13T00:00Z' FROM {schema}.staff"))
                inside = json.loads(slots_json_text(session, parse_query(ARGS, 62),
                                                    dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)))
                assert inside["slots"] == []
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert _get(client, slug) == clean
    # The next committed write gets a new number too, never the rolled-back one.
    _sql(app, f"INSERT INTO {schema}.time_off (staff_id, start_at, end_at)"
              f" SELECT id, '{DAY}T00:00Z', '2027-01-13T00:00Z' FROM {schema}.staff")
    assert _get(client, slug) == []


def test_a_repeat_is_a_cache_hit_that_reads_no_rows(app, client, make_tenant, pinned_now):
    from app import metrics

    def count(result):
        return metrics.AVAILABILITY_CACHE.labels("answer", result)._value.get()

    pinned_now(NOW)
    slug = make_tenant()
    _get(client, slug)
    hits, misses = count("hit"), count("miss")
    _get(client, slug)
    _get(client, slug, timezone="Europe/Berlin")
    assert (count("hit") - hits, count("miss") - misses) == (2, 0)
    _get(client, slug, to="2027-01-13")  # another question
    assert count("miss") - misses == 1
