"""The static-rules cache never serves stale rules: any change to a rule table is seen at once."""

from __future__ import annotations

from sqlalchemy import text

NOW = "2027-01-01T00:00:00Z"
ARGS = {"service": "visit", "from": "2027-01-11", "to": "2027-01-11", "timezone": "Europe/Berlin"}


def _starts(client, slug):
    return [s["start"] for s in client.get(f"/api/v1/public/{slug}/availability", query_string=ARGS).get_json()["slots"]]


def _sql(app, statement):
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(statement))


def test_rule_changes_by_any_path_show_up_immediately(client, make_tenant, pinned_now, app):
    pinned_now(NOW)
    slug = make_tenant()
    assert len(_starts(client, slug)) == 16  # 09:00-17:00, 30 min
    _sql(app, f'UPDATE "tenant_{slug}".staff_hours SET end_min = 12 * 60')
    assert len(_starts(client, slug)) == 6
    _sql(app, f'INSERT INTO "tenant_{slug}".location_closure (location_id, date) SELECT id, DATE \'2027-01-11\' FROM "tenant_{slug}".location')
    assert _starts(client, slug) == []
    _sql(app, f'DELETE FROM "tenant_{slug}".location_closure')
    _sql(app, f'UPDATE "tenant_{slug}".staff SET active = false')
    assert _starts(client, slug) == []
    _sql(app, f'UPDATE "tenant_{slug}".staff SET active = true')
    _sql(app, f'UPDATE "tenant_{slug}".service SET duration_min = 60')
    assert len(_starts(client, slug)) == 3


def test_two_tenants_with_equal_versions_do_not_share_cached_rules(client, make_tenant, pinned_now, app):
    pinned_now(NOW)
    first = make_tenant()
    second = make_tenant()
    _sql(app, f'UPDATE "tenant_{second}".staff_hours SET end_min = 10 * 60')
    _sql(app, f'UPDATE "tenant_{first}".rules_version SET version = (SELECT version FROM "tenant_{second}".rules_version)')
    assert len(_starts(client, first)) == 16
    assert len(_starts(client, second)) == 2


def test_answer_cache_follows_bookings_time_off_and_the_clock(client, make_tenant, pinned_now, app):
    pinned_now(NOW)
    slug = make_tenant()
    before = _starts(client, slug)
    assert _starts(client, slug) == before  # a repeat (served from the answer cache) is identical
    booked = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": before[0], "customer": {"name": "A", "email": "a@example.com"}})
    assert booked.status_code == 201
    assert _starts(client, slug) == before[1:]
    _sql(app, f'INSERT INTO "tenant_{slug}".time_off (staff_id, start_at, end_at) SELECT id, \'{before[1]}\', \'{before[3]}\''
              f' FROM "tenant_{slug}".staff')
    assert _starts(client, slug) == before[3:]
    # The clock moves into the day: starts before "now" disappear.
    pinned_now("2027-01-11T12:00:00Z")
    assert _starts(client, slug) == [s for s in before[3:] if s >= "2027-01-11T12:00:00Z"]
