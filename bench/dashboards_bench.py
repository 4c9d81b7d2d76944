"""Dashboards bench: a business with 250,000 appointments over 3 years (50 staff, 5 locations) in an
agency of 100 businesses; server time of the dashboard pages and every analytics figure, the agency
rollup, the peak RSS of a 250,000-row CSV export, and the EXPLAIN plans with the indexes they use.

    python bench/dashboards_bench.py [--runs 30] [--appointments 250000] [--tenants 100] [--reuse-db NAME] [--only LABELS]

Server time = the request handled inside the app (Flask test client, no network), after warm-up;
the same SQL and templates as in production. Rows are generated in SQL (INSERT ... SELECT
generate_series), so the set-up takes about a minute plus the schema migrations of the businesses.
`--reuse-db NAME` keeps the generated database NAME (on DATABASE_URL's server) and uses it again on
the next run instead of generating it (pending migrations are still applied).

The app's start-up heap is frozen for the garbage collector as in app/wsgi.py (production).
The bench app runs with the API rate limits off (a bench setting, `BENCH_CONFIG`): the bench sends
hundreds of requests a minute from one address with one key, and a 429 would time the refusal,
not the figure. Every timed answer must be 200; a row with another status is marked FAILED and the
bench exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("UPZENTO_ENV", "development")

UTC = dt.timezone.utc
PASSWORD = "bench-password-1"
TODAY = dt.date.today()
FIGURES = ("bookings", "cancellations", "no_shows", "revenue", "utilisation", "lead_time", "sources", "popular")


# The bench app's settings. Rate limits off: production keeps its defaults (config.py); here one
# client sends far more than 20 requests a second with one key on purpose.
BENCH_CONFIG = {"WTF_CSRF_ENABLED": False, "SECRET_KEY": "bench", "SERVER_NAME": None, "RATELIMIT_ENABLED": False}


def big_setup(slug: str) -> dict:
    days = ("mon", "tue", "wed", "thu", "fri")
    locations = [{"key": f"loc{i}", "name": f"Location {i}", "timezone": "Europe/Berlin"} for i in range(5)]
    services = [{"key": f"svc{i}", "name": f"Service {i}", "duration_min": 30 + 15 * (i % 3), "price": f"{20 + 5 * i}.00"}
                for i in range(10)]
    staff = [{
        "key": f"s{i}", "name": f"Staff {i:02d}", "services": [s["key"] for s in services], "locations": [f"loc{i % 5}"],
        "hours": [{"location": f"loc{i % 5}", "weekday": d, "start": "08:00", "end": "18:00"} for d in days],
    } for i in range(50)]
    return {"version": 1, "tenant": {"slug": slug, "name": "Big Clinic", "timezone": "Europe/Berlin", "currency": "EUR"},
            "locations": locations, "services": services, "staff": staff}


def small_setup(slug: str, i: int) -> dict:
    usd = i % 2 == 1
    tz = "America/New_York" if usd else "Europe/Berlin"
    return {"version": 1, "tenant": {"slug": slug, "name": f"Business {i:03d}", "timezone": tz, "currency": "USD" if usd else "EUR"},
            "locations": [{"key": "main", "name": "Main", "timezone": tz}],
            "services": [{"key": "visit", "name": "Visit", "duration_min": 30, "price": "40.00"}],
            "staff": [{"key": "ann", "name": "Ann", "services": ["visit"], "locations": ["main"],
                       "hours": [{"location": "main", "weekday": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")]}]}


# One row per (staff, j): day = j * days / per_staff (consecutive j share a day at most ceil(per/days)
# times, each at another hour), so no two live rows of one staff member overlap (the exclusion constraint).
FILL = """
INSERT INTO customer (name, email, sms_opt_out, marketing_opt_in, created_at)
SELECT 'Customer ' || g, 'c' || g || '@bench.example', false, false, now() FROM generate_series(1, :customers) g;

INSERT INTO appointment (id, service_id, staff_id, location_id, customer_id, start_at, end_at, padded_start, padded_end,
                         session_key, status, seats, source, timezone, answers, price, currency, sequence, created_at, updated_at)
SELECT gen_random_uuid(), x.service_id, x.staff_id, x.location_id, 1 + (x.g * 7919) % :customers,
       x.start_at, x.start_at + make_interval(mins => x.duration), x.start_at, x.start_at + make_interval(mins => x.duration),
       'a:' || x.g, x.status, 1, (ARRAY['widget', 'api', 'admin', 'widget', 'admin'])[1 + x.g % 5], 'Europe/Berlin', '{}'::jsonb,
       x.price, 'EUR', 0, x.start_at - make_interval(hours => (x.g * 37) % 2000), now()
FROM (
    SELECT g, st.id AS staff_id, sl.location_id, sv.id AS service_id, sv.duration_min AS duration, sv.price,
           (CAST(:first AS date) + ((g / :staff_n) * :days / :per_staff)::int + time '07:00' + make_interval(hours => ((g / :staff_n) % 5) * 2))
             AT TIME ZONE 'UTC' AS start_at,
           CASE WHEN g % 13 = 0 THEN 'cancelled' WHEN g % 23 = 0 THEN 'no_show'
                WHEN CAST(:first AS date) + ((g / :staff_n) * :days / :per_staff)::int < current_date THEN 'completed' ELSE 'confirmed' END AS status
    FROM generate_series(0, :total - 1) g
    JOIN LATERAL (SELECT id FROM staff ORDER BY id OFFSET g % :staff_n LIMIT 1) st ON true
    JOIN LATERAL (SELECT location_id FROM staff_location WHERE staff_id = st.id LIMIT 1) sl ON true
    JOIN LATERAL (SELECT id, duration_min, price FROM service ORDER BY id OFFSET g % 10 LIMIT 1) sv ON true
) x
"""


# Keys of (rollup + delta) and of a fresh GROUP BY of the rows that are not in both (0: the same).
ROLLUP_CHECK = """
WITH rolled AS (
    SELECT dim, dim_id, day, status, currency, sum(n) AS n, sum(amount) AS amount
    FROM (SELECT * FROM appointment_day UNION ALL SELECT * FROM appointment_day_delta) x
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0
), fresh AS (
    SELECT d.dim, d.dim_id, (a.start_at AT TIME ZONE :tz)::date AS day, a.status, a.currency,
           count(*) AS n, sum(coalesce(a.price, 0) * a.seats) AS amount
    FROM appointment a
    CROSS JOIN LATERAL (VALUES (0, 0), (1, a.location_id), (2, a.staff_id), (3, a.service_id)) d(dim, dim_id)
    WHERE d.dim_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5
)
SELECT count(*) FROM ((TABLE rolled EXCEPT ALL TABLE fresh) UNION ALL (TABLE fresh EXCEPT ALL TABLE rolled)) x
"""


def fill(engine, schema: str, total: int, staff_n: int, days: int, first: dt.date, customers: int) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text(f'SET LOCAL search_path TO "{schema}", public'))
        for statement in FILL.split(";\n"):
            if statement.strip():
                conn.execute(text(statement), {"customers": customers, "total": total, "staff_n": staff_n, "days": days,
                                               "per_staff": max(1, total // staff_n), "first": first})
        # What the day-rollup cron job (app/jobs/periodic.py) does within five minutes: the fill's
        # delta (one signed row per day, status and dimension) into the rollup.
        conn.execute(text("SELECT appointment_day_compact()"))
    vacuum(engine, schema)


def vacuum(engine, schema: str) -> None:
    """What autovacuum does to tables of this size soon after: statistics and the visibility map
    (index-only scans skip the heap only for pages marked all-visible)."""
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("appointment", "customer", "appointment_day", "appointment_day_delta"):
            conn.execute(text(f'VACUUM ANALYZE "{schema}".{table}'))


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def timed(client, url: str, runs: int, headers=None) -> tuple[float, float, dict[int, int]]:
    """(median ms, p95 ms, {status: count}) of `runs` timed requests after 3 warm-up ones."""
    for _ in range(3):
        client.get(url, headers=headers)
    samples, statuses = [], {}
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(url, headers=headers)
        response.get_data()
        samples.append((time.perf_counter() - t0) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return statistics.median(samples), p95(samples), statuses


def capture_sql(engine, fn) -> list[tuple[str, dict]]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    engine = Engine  # every engine: the request's session may use its own pool
    seen: list[tuple[str, dict]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "appointment" in statement and not statement.lstrip().upper().startswith(("SET", "EXPLAIN")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return seen


def explain(engine, schema: str, statement: str, parameters) -> list[str]:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.execute(f'SET search_path TO "{schema}", public')
            cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + statement, parameters)
            lines = [r[0] for r in cur.fetchall()]
            cur.execute("RESET search_path")
        raw.rollback()
    return lines


def export_child(database_url: str, redis_url: str, username: str, slug: str, mode: str = "stream") -> None:
    """Run in a fresh process, so its peak RSS is the export's; prints size, time and peak RSS.

    mode "stream": the CSV streamed within the request (the inline limit raised for it);
    mode "job": the background build of the same CSV (app.jobs.exports.build_export, as an RQ
    worker runs it), then its download streamed from the stored chunks."""
    from app import create_app

    inline = 10**9 if mode == "stream" else 0
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, **BENCH_CONFIG,
                      "EXPORT_INLINE_ROWS": inline})
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    with client.session_transaction() as s:
        s["tenant_slug"] = slug
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    built = None
    if mode == "job":
        from sqlalchemy import text

        from app.extensions import db
        from app.jobs.exports import build_export
        from app.services import appointment_list as al
        from app.services import exports
        from app.tenancy import tenant_session

        with app.app_context():
            with tenant_session(db.engine, slug) as (session, ref):
                user = session.execute(text("SELECT id FROM public.ab_user WHERE username = :u"), {"u": username}).scalar()
                export_id = exports.request(session, "csv", al.ListFilter(), ref.timezone, user, "bench",
                                            dt.datetime.now(UTC)).id
            build_export(slug, export_id)
        built = time.perf_counter() - t0
        response = client.get(f"/appointments/exports/{export_id}/download", buffered=False)
    else:
        response = client.get("/appointments/export.csv", buffered=False)
    size = rows = 0
    for chunk in response.response:
        size += len(chunk)
        rows += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
    seconds = time.perf_counter() - t0
    print(json.dumps({"rows": rows - 1, "bytes": size, "seconds": round(seconds, 2), "rss_before_mb": round(rss0, 1),
                      "build_seconds": round(built, 2) if built is not None else None,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--appointments", type=int, default=250_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--export-child", nargs=5, metavar=("DB", "REDIS", "USER", "SLUG", "MODE"))
    parser.add_argument("--profile", help="print a cProfile of this case label's request, then stop")
    parser.add_argument("--only", metavar="LABELS",
                        help="time only the cases whose label starts with one of these (comma-separated); "
                             "skips the rollup comparison, the export and the plans")
    parser.add_argument("--reuse-db", metavar="NAME",
                        help="keep the generated database NAME and use it again on later runs (DATABASE_URL's server)")
    args = parser.parse_args()
    if args.export_child:
        export_child(*args.export_child)
        return 0
    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_dashbench") as (db_url, redis_url):
        if args.reuse_db:
            db_url = kept_database(db_url, args.reuse_db)
        return run(args, db_url, redis_url)


def kept_database(scratch_url: str, name: str) -> str:
    """URL of database `name` beside the scratch one, created (empty) if it does not exist yet."""
    from urllib.parse import urlsplit, urlunsplit

    from sqlalchemy import create_engine, text

    admin = create_engine(scratch_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return urlunsplit(urlsplit(scratch_url)._replace(path=f"/{name}"))


def run(args, db_url: str, redis_url: str) -> int:
    os.environ["REDIS_URL"] = redis_url
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import select, text

    from app import create_app
    from app.extensions import db
    from app.models.public import Tenant
    from app.security import sync_all_roles
    from app.services.people import create_api_key
    from tenants.provisioning import migrate_all

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url, **BENCH_CONFIG})
    t0 = time.perf_counter()
    with app.app_context():
        migrate_all(db.engine)
        sync_all_roles(app)
        big = db.session.scalar(select(Tenant).where(Tenant.slug == "big"))
        reused = big is not None and db.session.scalar(select(User.id).where(User.username == "bench_owner")) is not None
    if reused:
        print(f"set-up: reusing database {args.reuse_db} (migrated in {time.perf_counter() - t0:.0f} s)", flush=True)
    else:
        generate(app, args)
    with app.app_context():
        big = db.session.scalar(select(Tenant).where(Tenant.slug == "big"))
        _, key = create_api_key(db.session, big, "bench")
        db.session.commit()
        big_schema = big.schema
        if reused:
            # A reused database may just have been migrated (t0014day backfills the day rollup).
            vacuum(db.engine, big_schema)
        count = db.session.execute(text(f'SELECT count(*), min(start_at)::date, max(start_at)::date FROM "{big_schema}".appointment')).one()
        print(f"big business: {count[0]:,} appointments from {count[1]} to {count[2]}, 50 staff, 5 locations\n")
        agency_id = big.agency_id
    return measure(args, app, db_url, redis_url, key, big_schema, agency_id)


def generate(app, args) -> None:
    """The agency, its businesses, their appointments and the two bench users."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_user_with_role
    from app.services.setup_io import import_setup
    from tenants.provisioning import create_agency

    t0 = time.perf_counter()
    with app.app_context():
        create_agency(db.session, "bench", "Bench Agency")
        db.session.commit()
        import_setup(db.engine, big_setup("big"), "bench")
        for i in range(1, args.tenants):
            import_setup(db.engine, small_setup(f"small{i:03d}", i), "bench")
        print(f"set-up: {args.tenants} businesses migrated in {time.perf_counter() - t0:.0f} s", flush=True)
        t1 = time.perf_counter()
        big = db.session.scalar(select(Tenant).where(Tenant.slug == "big"))
        first = TODAY - dt.timedelta(days=2 * 365)
        fill(db.engine, big.schema, args.appointments, 50, 3 * 365, first, 20_000)
        for t in db.session.scalars(select(Tenant).where(Tenant.slug != "big")):
            schema = t.schema
            fill(db.engine, schema, 600, 1, 3 * 365, first, 200)
        print(f"set-up: {args.appointments:,} + {(args.tenants - 1) * 600:,} appointments generated in {time.perf_counter() - t1:.0f} s", flush=True)
        create_user_with_role(db.session, username="bench_admin", email="a@bench.example", password=PASSWORD,
                              role="Client Admin", tenant_slug="big")
        create_user_with_role(db.session, username="bench_owner", email="o@bench.example", password=PASSWORD,
                              role="Agency Owner", agency_slug="bench")
        db.session.commit()


def measure(args, app, db_url: str, redis_url: str, key: str, big_schema: str, agency_id: int) -> int:
    from app.extensions import db
    from app.runtime_gc import freeze_startup_heap

    # As app/wsgi.py does for every gunicorn worker: without it, each full collection walks the
    # whole start-up heap (~100 ms) and lands in some request's time as a p95 no worker sees.
    freeze_startup_heap()

    admin, owner = app.test_client(), app.test_client()
    admin.post("/login/", data={"username": "bench_admin", "password": PASSWORD})
    owner.post("/login/", data={"username": "bench_owner", "password": PASSWORD})
    with owner.session_transaction() as s:
        s["tenant_slug"] = "big"
    bearer = {"Authorization": f"Bearer {key}"}
    monday = TODAY - dt.timedelta(days=TODAY.weekday())
    d90 = f"from={TODAY - dt.timedelta(days=89)}&to={TODAY}"
    cases = [
        ("dashboard home (client admin)", admin, "/dashboard/", None, 50),
        ("week calendar: page", admin, "/calendar/", None, 50),
        ("week calendar: events, all 50 staff", admin, f"/calendar/events?start={monday}T00:00:00&end={monday + dt.timedelta(days=7)}T00:00:00", None, 50),
        ("filtered list: staff+status+range", admin, f"/appointments/?staff=s7&status=completed&from={TODAY - dt.timedelta(days=365)}&to={TODAY}", None, 50),
        ("filtered list: customer search", admin, "/appointments/?q=customer%2012", None, 50),
    ]
    for figure in FIGURES:
        cases.append((f"analytics {figure}, 90 days", None, f"/api/v1/analytics/{figure}?{d90}&interval=week", bearer, 50))
    cases.append(("analytics bookings, 365 days by day", None, f"/api/v1/analytics/bookings?from={TODAY - dt.timedelta(days=364)}&to={TODAY}", bearer, 50))
    cases.append(("analytics bookings, 90 days, one staff", None, f"/api/v1/analytics/bookings?{d90}&staff=s7", bearer, 50))
    # The rollup may be AGENCY_ROLLUP_CACHE_SECONDS old (default 30): timed both ways, "fresh" with the cache off.
    cases.append(("agency rollup API, 100 businesses, fresh", owner, f"/api/v1/analytics/agency?{d90}", None, 200))
    cases.append(("agency rollup API, 100 businesses, cached", owner, f"/api/v1/analytics/agency?{d90}", None, 200))
    cases.append(("dashboard home (agency owner), rollup fresh", owner, "/dashboard/", None, 200))
    cases.append(("dashboard home (agency owner), rollup cached", owner, "/dashboard/", None, 200))
    plain = app.test_client()
    if args.profile:
        import cProfile
        import pstats

        label, client, url, headers, _t = next(c for c in cases if c[0].startswith(args.profile))
        for _ in range(3):
            (client or plain).get(url, headers=headers)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            (client or plain).get(url, headers=headers)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        return 0
    load = os.getloadavg()
    print(f"load average before timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    print(f"{'server time (ms), ' + str(args.runs) + ' runs':44} {'median':>8} {'p95':>8} {'target':>8}  status")
    failed = []
    only = tuple(x.strip() for x in args.only.split(",")) if args.only else None
    for label, client, url, headers, target in cases:
        if only and not label.startswith(only):
            continue
        cache = app.config.get("AGENCY_ROLLUP_CACHE_SECONDS", 0)
        if label.endswith("fresh"):
            app.config["AGENCY_ROLLUP_CACHE_SECONDS"] = 0
        try:
            median, top, statuses = timed(client or plain, url, args.runs, headers)
        finally:
            app.config["AGENCY_ROLLUP_CACHE_SECONDS"] = cache
        if set(statuses) != {200}:
            # Not a figure: a refusal or an error was timed. The row does not count.
            failed.append(label)
            flag = "FAILED: not all answers 200 (" + ", ".join(f"{n}x {code}" for code, n in sorted(statuses.items())) + ")"
        else:
            flag = "200 " + ("ok" if top <= target else "OVER")
        print(f"{label:44} {median:8.1f} {top:8.1f} {'≤' + str(target):>8}  {flag}", flush=True)
    load = os.getloadavg()
    print(f"load average after timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if failed:
        print(f"\nBENCH FAILED: {len(failed)} row(s) timed answers other than 200: {', '.join(failed)}", flush=True)
    if args.only:
        return 1 if failed else 0

    # The agency rollup two ways: one UNION ALL statement, and one query per tenant schema.
    with app.app_context():
        from app.services import analytics

        tenants = analytics.agency_tenants(db.session, agency_id)
        lo, hi = TODAY - dt.timedelta(days=89), TODAY
        now = dt.datetime.now(UTC)
        samples = []
        for _ in range(10):
            t = time.perf_counter()
            analytics.agency_rollup(db.session, tenants, lo, hi, now)
            samples.append((time.perf_counter() - t) * 1000)
        loop = []
        for _ in range(10):
            t = time.perf_counter()
            for tenant in tenants:
                analytics.agency_rollup(db.session, [tenant], lo, hi, now)
            loop.append((time.perf_counter() - t) * 1000)
        db.session.rollback()
    print(f"\nagency rollup, {len(tenants)} businesses: UNION ALL p95 {p95(samples):.1f} ms; one query per schema p95 {p95(loop):.1f} ms")

    # The day rollup answers what the rows answer: every key, and the 365-day figures both ways.
    with app.app_context():
        from sqlalchemy import text

        from app.tenancy import tenant_session

        with tenant_session(db.engine, "big") as (session, ref):
            differ = session.scalar(text(ROLLUP_CHECK), {"tz": ref.timezone})
            r = analytics.Range(TODAY - dt.timedelta(days=364), TODAY)
            answers = []
            for use in (True, False):
                analytics.ROLLUP = use
                answers.append((analytics.bookings(session, ref, r, now), analytics.revenue(session, ref, r, now)))
            analytics.ROLLUP = True
    same = "equal" if differ == 0 and answers[0] == answers[1] else "DIFFERENT"
    print(f"day rollup of the big business: {differ} keys differ from a GROUP BY of the rows; "
          f"365-day bookings and revenue from the rollup and from the rows: {same}")
    if same != "equal":
        failed.append("day rollup")

    # CSV export of every row, in a fresh process so its peak RSS is the export's: streamed within
    # the request (EXPORT_INLINE_ROWS raised), and built by the background job then downloaded.
    for mode, label in (("stream", "CSV export streamed in the request"), ("job", "CSV export built by the job")):
        child = subprocess.run([sys.executable, __file__, "--export-child", db_url, redis_url, "bench_admin", "big", mode],
                               capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            export = json.loads(child.stdout.strip().splitlines()[-1])
            built = f" (build {export['build_seconds']} s, then download)" if export["build_seconds"] is not None else ""
            print(f"{label}: {export['rows']:,} rows, {export['bytes'] / 1e6:.1f} MB in {export['seconds']} s{built}; "
                  f"peak RSS {export['peak_rss_mb']} MB (app loaded: {export['rss_before_mb']} MB), target ≤ 200 MB")
        except (IndexError, ValueError, KeyError):
            print(f"{label} failed:", child.stdout[-500:], child.stderr[-2000:])

    # EXPLAIN ANALYZE of the statements behind each figure and page, with the indexes they use.
    print("\nEXPLAIN plans (ANALYZE, the big business):")
    with app.app_context():
        engine = db.engine
    # The requests run outside any app context of ours: inside one, Flask would let every request
    # share its `g` and session (a request then inherits the previous one's tenant and user).
    for label, client, url, headers, _target in cases:
        if "agency" in label:
            continue
        statements = capture_sql(engine, lambda: (client or plain).get(url, headers=headers))
        print(f"\n## {label}: {url.split('?')[0]}")
        for statement, parameters in statements:
            if "count(*) FROM (SELECT" in statement or "INSERT" in statement.upper()[:20]:
                continue
            plan = explain(engine, big_schema, statement, parameters)
            used = sorted({w.strip('",') for line in plan for w in line.split() if w.startswith(("ix_", "pk_", "uq_"))})
            first_line = " ".join(statement.split())[:110]
            execution = next((line for line in plan if line.startswith("Execution Time")), "")
            print(f"  {first_line}...\n    indexes: {', '.join(used) or 'none'}; {execution}")
            for line in plan:
                if any(k in line for k in ("Scan", "Aggregate", "Sort", "Join", "Limit")):
                    print("     " + line.rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
