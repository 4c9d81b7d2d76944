"""The analytics day rollup (tenant migration t0014day) against the appointment rows.

The expected figures are counted here in Python from the rows (zoneinfo, not PostgreSQL's
time zone code): after bookings, status changes, reschedules across days and a DST change,
deletes, a bulk import and a change of the business's zone, the rollup plus its delta holds
exactly those counts and sums; compaction keeps them; the figures read from it equal the
figures read from the rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from support import minimal_setup

UTC = dt.timezone.utc
# Berlin's clocks go forward on Sunday 28 March 2027 and back on Sunday 31 October 2027.
DST_SPRING = dt.datetime(2027, 3, 28, tzinfo=UTC)
NOW = dt.datetime(2027, 3, 29, 9, 40, tzinfo=UTC)


def rollup_setup() -> dict:
    setup = minimal_setup()
    setup["locations"].append({"key": "north", "name": "North", "timezone": "Europe/Berlin"})
    setup["services"][0]["price"] = "10.00"
    setup["services"].append({"key": "long", "name": "Long", "duration_min": 60, "price": "25.50"})
    setup["staff"][0]["services"] = ["visit", "long"]
    setup["staff"].append({
        "key": "bob", "name": "Bob", "services": ["visit", "long"], "locations": ["main", "north"],
        "hours": [{"location": loc, "weekday": d, "start": "00:00", "end": "23:59"}
                  for loc in ("main", "north") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")],
    })
    return setup


def random_rows(rng: random.Random, n: int, around: dt.datetime = DST_SPRING) -> list[dict]:
    """Rows in the weeks around `around` at quarter hours (local midnights and the DST hours included),
    each staff member's in distinct hours of at most 30 minutes, so no two overlap; none within
    12 hours of NOW (the figures test puts its own rows there)."""
    hours = {"ann": [], "bob": []}
    for key in hours:
        pool = [h for h in range(-40 * 24, 40 * 24)
                if abs(around + dt.timedelta(hours=h) - NOW) > dt.timedelta(hours=12)]
        hours[key] = rng.sample(pool, n)
    rows = []
    for i in range(n):
        staff = rng.choice(("ann", "bob"))
        start = around + dt.timedelta(hours=hours[staff][i], minutes=rng.choice((0, 15, 30)))
        rows.append(dict(
            start=start, minutes=rng.choice((15, 30)),
            status=rng.choice(("confirmed", "confirmed", "completed", "cancelled", "no_show", "pending")),
            price=rng.choice((None, "10.00", "25.50", "0.01", "199.99")), seats=rng.choice((1, 1, 2, 3)),
            currency=rng.choice(("EUR", "EUR", "USD", None)), staff=staff,
            service=rng.choice(("visit", "long")), location=rng.choice(("main", "north")),
        ))
    return rows


def expected(session, tz: str) -> dict:
    """{(dim, dim_id, local day, status, currency): (count, sum of price x seats)} counted in Python."""
    zone = ZoneInfo(tz)
    out: dict[tuple, list] = {}
    for row in session.execute(text(
        "SELECT start_at, status, currency, location_id, staff_id, service_id, price, seats FROM appointment"
    )):
        day = row.start_at.astimezone(zone).date()
        amount = (row.price or decimal.Decimal(0)) * row.seats
        for dim, dim_id in ((0, 0), (1, row.location_id), (2, row.staff_id), (3, row.service_id)):
            if dim_id is None:
                continue
            item = out.setdefault((dim, dim_id, day, row.status, row.currency), [0, decimal.Decimal(0)])
            item[0] += 1
            item[1] += amount
    return {k: tuple(v) for k, v in out.items()}


def rolled(session) -> dict:
    """The same from rollup + delta (what the figures read)."""
    rows = session.execute(text(
        "SELECT dim, dim_id, day, status, currency, sum(n) AS n, sum(amount) AS amount FROM ("
        " SELECT * FROM appointment_day UNION ALL SELECT * FROM appointment_day_delta) x"
        " GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0 OR sum(amount) <> 0"
    ))
    return {(r.dim, r.dim_id, r.day, r.status, r.currency): (int(r.n), r.amount) for r in rows}


@pytest.fixture()
def check(app):
    """check(slug, compact=False): the rollup (+ delta) equals the rows, in the business's current zone."""
    from app.extensions import db
    from app.services import day_rollup
    from app.tenancy import tenant_session

    def run(slug: str, compact: bool = False) -> int:
        with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
            if compact:
                assert day_rollup.compact(session) >= 0
                assert session.scalar(text("SELECT count(*) FROM appointment_day_delta")) == 0
                assert session.scalar(text("SELECT coalesce(min(n), 1) FROM appointment_day")) > 0
            assert day_rollup.zone(session, ref.schema) == ref.timezone
            want = expected(session, ref.timezone)
            assert rolled(session) == want
            return sum(v[0] for k, v in want.items() if k[0] == 0)

    return run


@pytest.fixture()
def rollup_tenant(make_tenant):
    return make_tenant(rollup_setup())


def _in_tenant(app, slug):
    from app.extensions import db
    from app.tenancy import tenant_session

    return tenant_session(db.engine, slug)


def test_a_new_business_starts_with_an_empty_rollup_in_its_zone(app, make_tenant, check):
    setup = rollup_setup()
    setup["tenant"]["timezone"] = "Asia/Kolkata"
    slug = make_tenant(setup)
    assert check(slug) == 0
    # Built from the recorded schema script: its functions resolve tables in its own schema.
    with app.app_context(), _in_tenant(app, slug) as (session, ref):
        configs = session.scalars(text(
            "SELECT array_to_string(proconfig, ';') FROM pg_proc"
            " WHERE pronamespace = CAST(:s AS regnamespace) AND proname LIKE 'appointment_day%'"), {"s": f'"{ref.schema}"'}).all()
    assert configs == [f"search_path={ref.schema}, public"] * 4


def test_rollup_equals_the_rows_after_every_kind_of_write(app, rollup_tenant, put_appointments, book_real, check):
    from app.models import tenant as m
    from app.services import booking
    from app.services.setup_io import import_setup
    from app.extensions import db

    slug, rng = rollup_tenant, random.Random(16)
    put_appointments(slug, random_rows(rng, 80))
    assert check(slug) == 80

    # Real bookings (the engine, the outbox, the status row): a Monday and across the DST night.
    monday = dt.datetime(2027, 4, 5, 7, 0, tzinfo=UTC)
    booked = [book_real(slug, monday + dt.timedelta(hours=h), staff="bob") for h in range(3)]
    booked.append(book_real(slug, dt.datetime(2027, 3, 27, 23, 30, tzinfo=UTC), staff="bob"))  # Sun 00:30 local
    assert check(slug) == 84

    with app.app_context(), _in_tenant(app, slug) as (session, ref):
        appts = {str(a.id): a for a in session.scalars(select(m.Appointment))}
        mine = [appts[i] for i in booked]
        booking.set_status(session, ref, "test", mine[0], "completed")
        booking.set_status(session, ref, "test", mine[1], "no_show")
        booking.cancel(session, ref, "test", mine[2], NOW, enforce_policy=False)
        # Across a day and across the DST change: Sat 27 March 23:30 local -> Sun 28 March 03:30 (CEST).
        booking.reschedule(session, ref, "test", mine[3], dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC), NOW,
                           enforce_policy=False, override_rules=True)
        for a in rng.sample(sorted(appts.values(), key=lambda a: str(a.id)), 10):
            a.price, a.seats = decimal.Decimal("7.25"), 2
    assert check(slug) == 84

    with app.app_context(), _in_tenant(app, slug) as (session, _ref):
        # Statements over many rows at once: a move across the autumn DST change, a reassignment,
        # a change nothing counted reads (no delta rows), deletes.
        session.execute(text(
            "UPDATE appointment SET start_at = start_at + interval '217 days', end_at = end_at + interval '217 days',"
            " padded_start = padded_start + interval '217 days', padded_end = padded_end + interval '217 days'"
            " WHERE seats = 2"))
        session.execute(text("UPDATE appointment SET staff_id = (SELECT min(id) FROM staff) WHERE status = 'cancelled'"))
        session.execute(text("UPDATE appointment SET location_id = (SELECT max(id) FROM location), currency = 'USD'"
                             " WHERE status = 'pending'"))
        before = session.scalar(text("SELECT count(*) FROM appointment_day_delta"))
        session.execute(text("UPDATE appointment SET sequence = sequence + 1, updated_at = now()"))
        assert session.scalar(text("SELECT count(*) FROM appointment_day_delta")) == before
        gone = session.execute(text(
            "DELETE FROM appointment WHERE id IN (SELECT id FROM appointment WHERE status = 'cancelled' LIMIT 5)"
        )).rowcount
        session.delete(session.scalars(select(m.Appointment).where(m.Appointment.status == "no_show")).first())
    assert check(slug) == 84 - gone - 1
    assert check(slug, compact=True) == 84 - gone - 1

    # A bulk import adds appointments and compacts in its transaction; then the business moves zone.
    setup = rollup_setup()
    setup["tenant"]["slug"] = slug
    setup["appointments"] = [
        {"service": "visit", "staff": "bob", "location": "north", "start": f"2027-05-{d:02d}T22:30:00Z", "status": s}
        for d in range(3, 13) for s in ("confirmed",)
    ]
    with app.app_context():
        import_setup(db.engine, setup)
    with app.app_context(), _in_tenant(app, slug) as (session, _ref):
        assert session.scalar(text("SELECT count(*) FROM appointment_day_delta")) == 0
    total = check(slug)
    put_appointments(slug, random_rows(rng, 20))  # delta rows left when the zone changes
    setup["tenant"]["timezone"] = "America/New_York"
    with app.app_context():
        import_setup(db.engine, setup)
    assert check(slug) == total + 20


def test_a_time_zone_changed_in_the_admin_rebuilds_the_rollup(app, rollup_tenant, put_appointments, check):
    from app.extensions import db
    from app.models.public import Tenant
    from app.services import day_rollup

    put_appointments(rollup_tenant, random_rows(random.Random(3), 30))
    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == rollup_tenant))
        tenant.timezone = "Pacific/Auckland"
        assert day_rollup.follow_timezone(db.session, tenant)
        db.session.commit()
        assert not day_rollup.follow_timezone(db.session, tenant)  # nothing changed since
    assert check(rollup_tenant) == 30


def test_a_time_zone_changed_on_the_client_business_form_rebuilds_the_rollup(
        app, agency_business, client, login, put_appointments, check):
    from app.extensions import db
    from app.models.public import Tenant

    put_appointments(agency_business, [dict(r, staff=None, service=None, location=None)
                                       for r in random_rows(random.Random(8), 30) if r["staff"] == "ann"])
    with app.app_context():
        tenant_id = db.session.scalar(select(Tenant.id).where(Tenant.slug == agency_business))
    login(client, f"ow_{agency_business}", "password-1")
    page = client.post(f"/tenantview/edit/{tenant_id}", data={
        "name": "Moved", "timezone": "America/Chicago", "currency": "EUR", "locale": "en"})
    assert page.status_code == 302, page.get_data(as_text=True)[:500]
    with app.app_context():
        assert db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)) == "America/Chicago"
    assert check(agency_business) > 0


# --- figures from the rollup equal figures from the rows -------------------------------


def _figures(app, slug, metric, args, rollup: bool, now=NOW, staff_only=None):
    from app.extensions import db
    from app.models import tenant as m
    from app.services import analytics
    from app.tenancy import tenant_session

    analytics.ROLLUP = rollup
    try:
        with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
            r = analytics.parse_range(args, now.date())
            if staff_only:
                r = analytics.replace(r, only_staff_id=session.scalar(select(m.Staff.id).where(m.Staff.key == staff_only)))
            return analytics.figure(session, ref, metric, r, now)
    finally:
        analytics.ROLLUP = True


RANGES = [
    {"from": "2027-03-01", "to": "2027-04-10"},            # today inside, the DST change inside
    {"from": "2027-03-28", "to": "2027-03-29"},            # two days: the short one and today
    {"from": "2027-01-01", "to": "2027-03-28"},            # ends the day before today
    {"from": "2027-03-30", "to": "2027-06-30"},            # all after today
]
FILTERS = [{}, {"location": "north"}, {"staff": "bob"}, {"service": "long"}, {"staff": "ann", "service": "visit"},
           {"location": "main", "staff": "bob"}]


@pytest.fixture()
def figures_tenant(rollup_tenant, put_appointments):
    rng = random.Random(29)
    put_appointments(rollup_tenant, random_rows(rng, 150))
    # Today's rows on both sides of NOW (09:40 UTC): "started" splits inside the day.
    put_appointments(rollup_tenant, [
        dict(start=NOW + dt.timedelta(minutes=m), status=s, price="10.00", currency=c, staff=staff)
        for m, s, c in ((-300, "no_show", "USD"), (-30, "confirmed", "EUR"), (0, "completed", "EUR"),
                        (45, "no_show", "EUR"), (600, "confirmed", "USD"))
        for staff in ("ann", "bob")])
    return rollup_tenant


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_figures_from_the_rollup_equal_figures_from_the_rows(app, figures_tenant, check, interval):
    check(figures_tenant, compact=interval == "week")  # the day and month runs read an uncompacted delta
    for args in RANGES:
        for filters in FILTERS:
            for metric in ("bookings", "cancellations", "no_shows", "revenue"):
                query = {**args, **filters, "interval": interval}
                assert _figures(app, figures_tenant, metric, query, True) == _figures(app, figures_tenant, metric, query, False), (metric, query)
    # A Staff log-in's own figures (alone, with the same staff filter, with another one's).
    for filters in ({}, {"staff": "bob"}, {"staff": "ann"}, {"service": "visit"}):
        query = {**RANGES[0], **filters, "interval": interval}
        assert (_figures(app, figures_tenant, "no_shows", query, True, staff_only="bob")
                == _figures(app, figures_tenant, "no_shows", query, False, staff_only="bob"))


def test_the_rollup_is_what_the_figures_read(app, figures_tenant):
    """A rollup row changed by hand (in a transaction rolled back) changes the answer: no silent raw path."""
    from app.extensions import db
    from app.models.public import Tenant
    from app.services import analytics
    from app.tenancy import tenant_session

    args = {"from": "2027-03-01", "to": "2027-03-20"}
    with app.app_context(), tenant_session(db.engine, figures_tenant) as (session, ref):
        session.execute(text("SELECT appointment_day_compact()"))
        r = analytics.parse_range(args, NOW.date())
        honest = analytics.figure(session, ref, "bookings", r, NOW)["total"]
        session.execute(text("UPDATE appointment_day SET n = n + 1000 WHERE dim = 0 AND day = '2027-03-10'"
                             " AND (status, currency) = (SELECT status, currency FROM appointment_day"
                             " WHERE dim = 0 AND day = '2027-03-10' LIMIT 1)"))
        assert analytics.figure(session, ref, "bookings", r, NOW)["total"] == honest + 1000
        tenant = session.get(Tenant, ref.id)
        analytics.AGENCY_ROLLUP_MIN_ROWS = 0
        try:
            agency = analytics.agency_rollup(session, [tenant], r.date_from, r.date_to, NOW)["bookings"]
            # Told another zone than the rollup's, the figures read the rows.
            session.execute(text("UPDATE appointment_day_zone SET timezone = 'Asia/Tokyo'"))
            assert analytics.figure(session, ref, "bookings", r, NOW)["total"] == honest
            assert analytics.agency_rollup(session, [tenant], r.date_from, r.date_to, NOW)["bookings"] == honest
        finally:
            analytics.AGENCY_ROLLUP_MIN_ROWS = 10_000
        assert agency == honest + 1000
        session.rollback()


def test_home_and_agency_rollup_from_the_rollup_equal_the_rows(app, figures_tenant, make_tenant, put_appointments):
    from app.extensions import db
    from app.models.public import Tenant
    from app.services import analytics
    from app.tenancy import tenant_session

    setup = minimal_setup()
    setup["tenant"].update(timezone="America/New_York", currency="USD")
    other = make_tenant(setup)
    put_appointments(other, [dict(r, staff=None, service=None, location=None) for r in random_rows(random.Random(5), 40)
                             if r["staff"] == "ann"])

    def both(rollup: bool):
        analytics.ROLLUP = rollup
        analytics.AGENCY_ROLLUP_MIN_ROWS = 0  # every business from its rollup (the default: large ones only)
        try:
            with app.app_context():
                tenants = list(db.session.scalars(select(Tenant).where(Tenant.slug.in_([figures_tenant, other])).order_by(Tenant.slug)))
                agency = analytics.agency_rollup(db.session, tenants, dt.date(2027, 3, 1), dt.date(2027, 3, 30), NOW)
                db.session.rollback()
            with app.app_context(), tenant_session(db.engine, figures_tenant) as (session, ref):
                home = analytics.home_figures(session, ref, analytics.Range(dt.date(2027, 3, 1), dt.date(2027, 3, 30)), NOW)
            return agency, home
        finally:
            analytics.ROLLUP, analytics.AGENCY_ROLLUP_MIN_ROWS = True, 10_000

    assert both(True) == both(False)
    assert both(True)[0]["bookings"] > 0


# --- compaction under concurrency -------------------------------------------------------------


def test_compaction_beside_concurrent_bookings_loses_and_doubles_nothing(app, rollup_tenant, check):
    """One session inserts appointments (committing one by one, some rolled back) while another
    compacts again and again, and a third compaction finds the lock taken and skips."""
    from app.extensions import db
    from app.tenancy import tenant_session

    slug = rollup_tenant
    with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
        schema = ref.schema
        ids = session.execute(text("SELECT (SELECT min(id) FROM staff), (SELECT min(id) FROM service),"
                                   " (SELECT min(id) FROM location)")).one()
    with app.app_context():
        engine = db.engine
    insert = text(
        f'INSERT INTO "{schema}".appointment (id, service_id, staff_id, location_id, start_at, end_at, padded_start,'
        " padded_end, session_key, status, seats, source, answers, price, currency, sequence, created_at, updated_at)"
        " VALUES (:id, :svc, :staff, :loc, :start, :start + interval '10 minutes', :start, :start + interval '10 minutes',"
        " :key, 'confirmed', 1, 'api', '{}'::jsonb, 12.50, 'EUR', 0, now(), now())"
    )
    stop, errors, committed = threading.Event(), [], []

    def writer():
        try:
            for i in range(150):
                with engine.connect() as conn:
                    tx = conn.begin()
                    start = dt.datetime(2027, 3, 1, tzinfo=UTC) + dt.timedelta(minutes=10 * i)
                    conn.execute(insert, {"id": uuid.uuid4(), "svc": ids[1], "staff": ids[0], "loc": ids[2],
                                          "start": start, "key": f"c:{i}"})
                    if i % 7 == 3:
                        tx.rollback()
                    else:
                        tx.commit()
                        committed.append(i)
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            stop.set()

    def compactor():
        try:
            while not stop.is_set():
                with engine.begin() as conn:
                    conn.execute(text(f'SELECT "{schema}".appointment_day_compact()'))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=compactor)]
    for t in threads:
        t.start()
    # Meanwhile: while one compaction holds the lock (its transaction open), another one skips.
    with engine.connect() as a, engine.connect() as b:
        ta = a.begin()
        assert a.scalar(text(f'SELECT "{schema}".appointment_day_compact()')) >= -1
        held = a.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"))
        if held:
            with b.begin():
                assert b.scalar(text(f'SELECT "{schema}".appointment_day_compact()')) == -1
        ta.commit()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert check(slug) == len(committed) == 150 - len([i for i in range(150) if i % 7 == 3])
    assert check(slug, compact=True) == len(committed)


def test_the_agency_rollup_reads_the_day_rollup_of_large_businesses_only(app, figures_tenant, monkeypatch):
    from app.extensions import db
    from app.services import analytics
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, figures_tenant) as (session, ref):
        session.execute(text("ANALYZE appointment"))
        rows = session.scalar(text("SELECT count(*) FROM appointment"))
        monkeypatch.setattr(analytics, "AGENCY_ROLLUP_MIN_ROWS", rows)
        assert analytics._large_schemas(session, [ref.schema, "tenant_nowhere"]) == {ref.schema}
        monkeypatch.setattr(analytics, "AGENCY_ROLLUP_MIN_ROWS", rows + 1)
        assert analytics._large_schemas(session, [ref.schema]) == set()


def test_the_cron_job_compacts_every_business_and_rebuilds_one_counted_in_another_zone(
        app, make_tenant, put_appointments, check):
    from app.jobs import periodic

    first, second, broken = make_tenant(rollup_setup()), make_tenant(rollup_setup()), make_tenant(rollup_setup())
    put_appointments(first, random_rows(random.Random(11), 25))
    put_appointments(second, random_rows(random.Random(12), 25))
    with app.app_context(), _in_tenant(app, second) as (session, _ref):
        session.execute(text("UPDATE appointment_day_zone SET timezone = 'Asia/Tokyo'"))  # a change made around the rollup
    # A business whose rollup cannot be read (as a schema not migrated yet) does not stop the others.
    with app.app_context(), _in_tenant(app, broken) as (session, _ref):
        session.execute(text("ALTER TABLE appointment_day_zone RENAME TO appointment_day_zone_away"))
    try:
        with app.app_context():
            assert periodic.compact_day_rollups() >= 1
    finally:
        with app.app_context(), _in_tenant(app, broken) as (session, _ref):
            session.execute(text("ALTER TABLE appointment_day_zone_away RENAME TO appointment_day_zone"))
    with app.app_context(), _in_tenant(app, first) as (session, _ref):
        assert session.scalar(text("SELECT count(*) FROM appointment_day_delta")) == 0
    assert check(first) == 25
    assert check(second) == 25
