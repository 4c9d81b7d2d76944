"""Benchmark: calendar sync (pull, polling of many staff, push latency through the relay and RQ).

Run from the repository root:  python bench/calendar_bench.py [--staff 500] [--pushes 200] [--rate 20]

Uses DATABASE_URL/REDIS_URL when set, else embedded PostgreSQL and Redis; a scratch
database, one tenant. Google Calendar is the loopback fake of the tests (same protocol,
syncToken, etags); HTTP to it is real.

1. Incremental pull of 1,000 changed events of one staff member (one `pull_connection`:
   list with syncToken, parse, busy blocks written, one commit). Target <= 2 s.
2. Polling: `--staff` connected staff, each calendar with a few changed events, every
   connection pulled once through the pull job (`app.jobs.calendar_sync.pull`), one after
   the other in this process. The tick hands these to the RQ workers; the figure is the
   whole round's wall time on one process, and the 2-core estimate is that time / 2.
   Target: all polled within 5 minutes on 2 cores.
3. Push latency: bookings committed at `--rate`/s through `booking.book`; the real relay
   (`python -m app.jobs.relay`) and `--workers` `rq worker` processes (integrations queue)
   write them to the fake; latency = commit -> the fake receiving the event insert.
   Target p95 <= 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("UPZENTO_ENV", "development")
os.environ.setdefault("SECRET_KEY", "calendar-bench-secret")

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from fakes.google_calendar import GoogleCalendarFake  # noqa: E402

UTC = dt.timezone.utc


class TimedGoogle(GoogleCalendarFake):
    """Records when each event insert arrived (monotonic clock of this process)."""

    def __init__(self):
        super().__init__()
        self.inserted: dict[str, float] = {}

    def _m_events_insert(self, req, params):
        self.inserted.setdefault(req.json().get("id", ""), time.monotonic())
        return super()._m_events_insert(req, params)


def _setup(n_staff: int) -> dict:
    hours = [{"location": "main", "weekday": d, "start": "08:00", "end": "18:00"} for d in ("mon", "tue", "wed", "thu", "fri")]
    return {
        "version": 1,
        "tenant": {"slug": f"calbench_{os.getpid()}", "name": "Calendar bench", "timezone": "Europe/Berlin", "currency": "EUR"},
        "locations": [{"key": "main", "name": "Main", "timezone": "Europe/Berlin"}],
        "services": [{"key": "visit", "name": "Visit", "duration_min": 30}],
        "staff": [{"key": f"s{i:04d}", "name": f"Staff {i}", "services": ["visit"], "locations": ["main"], "hours": hours}
                  for i in range(n_staff)],
    }


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staff", type=int, default=500)
    parser.add_argument("--changes-per-staff", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from devserver.embedded import scratch_environment

    tmp = Path(tempfile.mkdtemp(prefix="upz-cal-bench-", dir="/var/tmp" if Path("/var/tmp").exists() else None))
    try:
        with scratch_environment("upzento_calbench") as (db_url, redis_url):
            return _run(args, tmp, db_url, redis_url)
    finally:
        if os.environ.get("CAL_BENCH_KEEP_LOGS"):
            print(f"children log kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path, db_url: str, redis_url: str) -> int:
    import logging

    logging.disable(logging.INFO)
    fake = TimedGoogle().start()
    fake.clients["bench"] = "bench"  # the platform app the bench configures
    children = []
    try:
        os.environ.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "GOOGLE_API_BASE_URL": fake.api_base,
                           "GOOGLE_OAUTH_URL": fake.base_url, "GOOGLE_CLIENT_ID": "bench", "GOOGLE_CLIENT_SECRET": "bench",
                           "LOG_LEVEL": os.environ.get("CAL_BENCH_LOG_LEVEL", "WARNING"), "PUBLIC_URL": "http://127.0.0.1:9"})
        from app import create_app
        from app.extensions import db
        from app.services.setup_io import import_setup
        from tenants.provisioning import create_agency, migrate_all

        app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url, "GOOGLE_API_BASE_URL": fake.api_base,
                          "GOOGLE_OAUTH_URL": fake.base_url, "GOOGLE_CLIENT_ID": "bench", "GOOGLE_CLIENT_SECRET": "bench"})
        doc = _setup(args.staff)
        with app.app_context():
            migrate_all(db.engine)
            create_agency(db.session, "bench-agency", "Bench Agency")
            db.session.commit()
            import_setup(db.engine, doc, "bench-agency")
        slug = doc["tenant"]["slug"]
        with app.app_context():
            conns = _connect_all(app, slug, fake)
            rows = [("incremental pull of 1,000 changed events", _pull_1000(app, slug, fake, conns[0]), "<= 2 s")]
            rows.append(_poll_all(app, slug, fake, conns, args.changes_per_staff))
        rows.append(_push_latency(app, slug, fake, args, tmp, redis_url, children))
        print()
        print(f"{'figure':58} {'measured':>34}  target")
        for label, measured, target in rows:
            print(f"{label:58} {measured:>34}  {target}")
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        fake.stop()


def _connect_all(app, slug: str, fake: GoogleCalendarFake) -> list[int]:
    """One Google connection per staff member, each with its own calendar in the fake."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.models.calendar_sync import CalendarConnection
    from app.services import calendar_sync as cal
    from app.tenancy import tenant_session

    ids = []
    with tenant_session(db.engine, slug) as (session, _ref):
        for sid, key in session.execute(select(m.Staff.id, m.Staff.key).order_by(m.Staff.key)):
            cal_id = f"{key}@bench.test"
            fake.calendars[cal_id] = {"id": cal_id, "summary": key, "accessRole": "owner"}
            fake.events[cal_id] = {}
            conn = CalendarConnection(provider="google", owner_kind="staff", staff_id=sid, account=cal_id,
                                      status="active", busy_calendars=[{"id": cal_id, "name": key}],
                                      target_calendar=cal_id, target_calendar_name=key, include_tentative=True,
                                      sync_state={}, channel={})
            cal.store_secret(conn, fake.grant("bench"))
            session.add(conn)
            session.flush()
            ids.append(conn.id)
    return ids


def _pull(app, slug, conn_id) -> dict:
    from app.jobs import calendar_sync as jobs

    return jobs.pull(slug, conn_id)


def _pull_1000(app, slug, fake, conn_id) -> str:
    from app.extensions import db
    from app.models.calendar_sync import CalendarConnection
    from app.tenancy import tenant_session

    with tenant_session(db.engine, slug) as (session, _ref):
        cal_id = session.get(CalendarConnection, conn_id).target_calendar
    _pull(app, slug, conn_id)  # first (full) pull: sync token
    base = dt.datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    times = []
    for round_ in range(3):
        for i in range(1000):
            start = base + dt.timedelta(days=i // 8, hours=i % 8, minutes=round_ * 10)
            eid = f"bench{i:05d}"
            if eid in fake.events[cal_id]:
                fake.edit(cal_id, eid, start={"dateTime": start.isoformat()},
                          end={"dateTime": (start + dt.timedelta(minutes=45)).isoformat()})
            else:
                fake.add_foreign(cal_id, start, start + dt.timedelta(minutes=45), id=eid)
        t0 = time.perf_counter()
        result = _pull(app, slug, conn_id)
        times.append(time.perf_counter() - t0)
        assert result["events"] == 1000 and not result.get("error"), result
    return f"{statistics.median(times):.2f} s median of 3 (best {min(times):.2f} s)"


def _poll_all(app, slug, fake, conns, changes: int):
    from app.extensions import db
    from app.models.calendar_sync import CalendarConnection
    from app.tenancy import tenant_session

    with tenant_session(db.engine, slug) as (session, _ref):
        cals = {c: session.get(CalendarConnection, c).target_calendar for c in conns}
    for c in conns:  # first pulls (sync tokens), not measured
        _pull(app, slug, c)
    base = dt.datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + dt.timedelta(days=3)
    for c, cal_id in cals.items():
        for i in range(changes):
            start = base + dt.timedelta(days=i, hours=c % 7)
            fake.add_foreign(cal_id, start, start + dt.timedelta(hours=1))
    t0 = time.perf_counter()
    per = []
    for c in conns:
        s = time.perf_counter()
        result = _pull(app, slug, c)
        per.append(time.perf_counter() - s)
        assert result["events"] == changes and not result.get("error"), result
    total = time.perf_counter() - t0
    label = f"{len(conns)} staff polled once ({changes} changes each)"
    measured = (f"{total:.1f} s on 1 process (p95 {_pct(per, 95) * 1000:.0f} ms/pull); "
                f"~{total / 2:.1f} s on 2 cores")
    return label, measured, "<= 300 s"


def _push_latency(app, slug, fake, args, tmp: Path, redis_url: str, children):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.services import booking
    from app.tenancy import tenant_session
    from devserver.embedded import ManagedProcess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(tmp / "children.log", "wb")
    children.append(ManagedProcess("relay", [sys.executable, "-m", "app.jobs.relay"], env=env, cwd=str(ROOT),
                                   stdout=log, stderr=log).start())
    for i in range(args.workers):
        children.append(ManagedProcess(f"worker {i}", [sys.executable, "-m", "rq.cli", "worker", "-q", "-w",
                                                        "app.jobs.worker.AppSimpleWorker", "--url", redis_url,
                                                        "integrations"],
                                       env=env, cwd=str(ROOT), stdout=log, stderr=log).start())
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        # The first staff member carries the 1,000 busy events of part 1: not booked here.
        keys = list(session.scalars(select(m.Staff.key).order_by(m.Staff.key)))[1:]
    monday = dt.date.today() + dt.timedelta(days=(7 - dt.date.today().weekday()) % 7 + 7)
    committed: dict[str, float] = {}
    warmup = 20
    total = args.pushes + warmup
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    for n in range(total):
        day = monday + dt.timedelta(days=(n // (len(keys) * 16)) % 5 + 7 * (n // (len(keys) * 16 * 5)))
        slot = (n // len(keys)) % 16
        start = dt.datetime.combine(day, dt.time(8), dt.timezone(dt.timedelta(hours=1))) + dt.timedelta(minutes=30 * slot)
        req = booking.BookingRequest(service="visit", start=start.astimezone(UTC), staff=keys[n % len(keys)],
                                     customer=booking.CustomerInput(name="Bench", email=f"b{n}@bench.test"))
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at += interval
        with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
            result = booking.book(session, ref, "bench", req, dt.datetime.now(UTC))
            appt_id = str(result.appointments[0].id)
        committed[appt_id.replace("-", "")] = time.monotonic()
        if n == warmup - 1:  # processes warm: wait for the warm-up to land, then measure
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(fake.inserted) < warmup:
                time.sleep(0.05)
            measured_from = set(committed)
    deadline = time.monotonic() + 120
    wanted = set(committed) - measured_from
    while time.monotonic() < deadline and not wanted <= set(fake.inserted):
        time.sleep(0.1)
    lat = [fake.inserted[k] - committed[k] for k in wanted if k in fake.inserted]
    missing = len(wanted) - len(lat)
    measured = (f"p50 {_pct(lat, 50) * 1000:.0f} ms, p95 {_pct(lat, 95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
                + (f", {missing} never arrived" if missing else ""))
    return f"push latency commit -> provider ({len(lat)} bookings at {args.rate:g}/s, {args.workers} workers)", measured, "p95 <= 2 s"


if __name__ == "__main__":
    raise SystemExit(main())
