"""The demo seed fills lists, history and the portal: past and coming appointments of every kind."""

from __future__ import annotations

from sqlalchemy import text


def test_demo_seed_has_history_and_coming_appointments(app):
    from app.extensions import db
    from devserver.seed import seed_demo

    seed_demo(app)
    seed_demo(app)  # idempotent: nothing is added twice
    with app.app_context(), db.engine.connect() as conn:
        salon = dict(conn.execute(text("SELECT status, count(*) FROM tenant_bella_salon.appointment GROUP BY status")).all())
        physio = conn.execute(text(
            "SELECT count(*) FILTER (WHERE series_id IS NOT NULL), max(seats_in_session), count(*) FROM "
            "(SELECT series_id, sum(seats) OVER (PARTITION BY start_at, service_id) AS seats_in_session "
            " FROM tenant_city_physio.appointment) a")).one()
        future = conn.execute(text("SELECT count(*) FROM tenant_bella_salon.appointment WHERE start_at > now()")).scalar()
        sources = {r[0] for r in conn.execute(text("SELECT DISTINCT source FROM tenant_bella_salon.appointment"))}
    assert salon.get("completed", 0) >= 2 and salon.get("cancelled") == 1 and salon.get("no_show") == 1
    assert future >= 3
    series, group_seats, total = physio
    assert series == 4 and group_seats == 4 and total >= 9
    assert sources == {"import"}  # history, not news: no message goes out
