"""HTTP benchmarks of the public API under gunicorn (2 workers), driven by wrk.

    python bench/http_bench.py [--seconds 10] [--baseline REV] [--threads 1] [--no-floor]

Uses DATABASE_URL/REDIS_URL when set (a fresh database is created on that
server), else embedded servers in a temporary folder. Needs `wrk`
(Debian: apt-get install wrk). Prints, next to each target:
- availability, one month, one service, 20 staff: p50, p99, requests/s, and /health
  (a SELECT 1 and a Redis ping) on the same server beside it: the answer cache's target
  is availability p50 <= 1.5x /health p50
- bookings, 16 connections on distinct slots: bookings/s, p99
- bookings, 16 connections on one contested slot: rows created, overlaps
With --baseline REV (a git revision), the same loads first run against a
checkout of REV on the same database and machine, and the figures print side
by side: the before/after of an optimisation, measured in one run.
Two last columns run the booking load against bench/booking_floor.py: the same
server and the booking's SQL with no rules at all, then that SQL plus the
engine's re-check: the ceiling for bookings/s on this machine (--no-floor
skips them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Benches run the development settings (no production secrets needed).
os.environ.setdefault("UPZENTO_ENV", "development")

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import gunicorn, print_side_by_side, tenant_schema, worktree  # noqa: E402

# wrk sends everything from 127.0.0.1 to one business: the public API's rate limits would
# answer 429 and measure the limiter (tests/ops/test_rate_limits.py covers those).
UNLIMITED = {"PUBLIC_RATE_LIMIT_PER_TENANT": "100000000/minute", "PUBLIC_RATE_LIMIT_PER_IP": "100000000/minute",
             "PUBLIC_BOOKING_RATE_LIMIT_PER_IP": "100000000/minute", "METRICS_ENABLED": "true"}

STAFF = 20
BOOK_STAFF = 50
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def setup_doc(slug: str, staff: int, tz: str) -> dict:
    return {
        "version": 1,
        "tenant": {"slug": slug, "name": slug, "timezone": tz, "currency": "EUR"},
        "locations": [{"key": "main", "name": "Main", "timezone": tz}],
        "services": [{"key": "visit", "name": "Visit", "duration_min": 30, "slot_interval_min": 15, "max_advance_days": 730}],
        "staff": [
            {
                "key": f"s{i:02d}", "name": f"Staff {i}", "services": ["visit"], "locations": ["main"],
                "hours": [{"location": "main", "weekday": d, "start": "08:00", "end": "18:00"} for d in WEEKDAYS],
                "breaks": [{"weekday": d, "start": "12:00", "end": "12:30"} for d in WEEKDAYS],
            }
            for i in range(staff)
        ],
    }


def wrk(url: str, seconds: int, connections: int, script: str | None = None) -> dict:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout

    def ms(label):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"p50": ms("50"), "p99": ms("99"), "rps": rps, "requests": total, "non2xx": int(non2xx.group(1)) if non2xx else 0}


BOOK_SCRIPT = """
local days = {DAYS}
local counter = 0
local tid = 0
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
function init(args) tid = tonumber(wrk.thread:get("tid")) or 0 end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local i = counter * 2 + tid
  counter = counter + 1
  local staff = i % {STAFF}
  local rest = math.floor(i / {STAFF})
  local slot = rest % 19
  local day = days[math.floor(rest / 19) % #days + 1]
  local minutes = 8 * 60 + slot * 30
  if minutes >= 12 * 60 then minutes = minutes + 30 end
  local start = string.format("%sT%02d:%02d:00Z", day, math.floor(minutes / 60), minutes % 60)
  local body = string.format('{"service":"visit","staff":"s%02d","start":"%s","customer":{"name":"B%d","email":"b%d_%d@example.com"}}', staff, start, i, i, tid)
  return wrk.format(nil, nil, nil, body)
end
"""

VARIED_SCRIPT = """
local days = {DAYS}
local zones = {"Europe/Berlin", "Europe/Paris", "Europe/London", "Europe/Madrid", "Europe/Rome", "Europe/Vienna",
  "Europe/Zurich", "Europe/Amsterdam", "Europe/Brussels", "Europe/Prague", "Europe/Warsaw", "Europe/Lisbon",
  "Europe/Dublin", "Europe/Oslo", "Europe/Stockholm", "Europe/Copenhagen", "Europe/Helsinki", "Europe/Athens",
  "Europe/Budapest", "Europe/Bucharest"}
local n = 0
request = function()
  n = n + 1
  local i = (n % #days) + 1
  local zone = zones[(math.floor(n / #days) % #zones) + 1]
  return wrk.format("GET", "/api/v1/public/{SLUG}/availability?service=visit&timezone=" .. zone .. "&from=" .. days[i][1] .. "&to=" .. days[i][2])
end
"""

CONTESTED_SCRIPT = """
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format('{"service":"visit","staff":"s00","start":"{START}","customer":{"name":"C","email":"c%d_%d@example.com"}}', n, math.random(1, 1000000)))
end
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision, side by side in the same run")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (1: sync workers)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the reference run of the booking SQL alone (bench/booking_floor.py)")
    args = parser.parse_args()
    from devserver.embedded import scratch_environment

    tmp = Path(tempfile.mkdtemp(prefix="upzento-bench-", dir="/var/tmp"))
    with scratch_environment("upzento_bench") as (db_url, redis_url):
        return run(args, tmp, db_url, redis_url)


def run(args, tmp: Path, db_url: str, redis_url: str) -> int:
    """Migrate and fill the scratch database, then measure against gunicorn with 2 workers."""
    os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url)
    from app import create_app
    from app.extensions import db
    from app.security import sync_all_roles
    from app.services.setup_io import import_setup
    from tenants.provisioning import create_agency, migrate_all

    # Each measured tree gets its own three tenants, so one's bookings never slow the other.
    suffixes = ["", "b"] if args.baseline else [""]
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
    with app.app_context():
        migrate_all(db.engine)
        create_agency(db.session, "bench", "Bench")
        db.session.commit()
        for sfx in suffixes:
            import_setup(db.engine, setup_doc("avail" + sfx, STAFF, "Europe/Berlin"), "bench")
            import_setup(db.engine, setup_doc("book" + sfx, BOOK_STAFF, "UTC"), "bench")
            import_setup(db.engine, setup_doc("contest" + sfx, 1, "UTC"), "bench")
        if args.floor:
            import_setup(db.engine, setup_doc("floor", BOOK_STAFF, "UTC"), "bench")
            import_setup(db.engine, setup_doc("floorcheck", BOOK_STAFF, "UTC"), "bench")
        db.engine.dispose()
    sync_all_roles(app)
    columns = []
    if args.baseline:
        with worktree(args.baseline) as tree, gunicorn(db_url, redis_url, workers=2, threads=args.threads, root=tree,
                                                             env=UNLIMITED) as base:
            columns.append((f"baseline {args.baseline[:12]}", measure(args, tmp, base, db_url, "b")))
    with gunicorn(db_url, redis_url, workers=2, threads=args.threads, env=UNLIMITED) as base:
        columns.append(("this tree", measure(args, tmp, base, db_url, "")))
    if args.floor:
        # Same server, same SQL, no rules: the most this machine gives for the database work alone.
        floor = "bench.booking_floor:application"
        with gunicorn(db_url, redis_url, workers=2, threads=args.threads, wsgi=floor) as base:
            columns.append(("booking SQL alone", {"bookings": measure_bookings(args, tmp, base, db_url, "floor")}))
        # ... plus the engine's re-check under the lock, the one step of a booking the issue names beyond SQL.
        with gunicorn(db_url, redis_url, workers=2, threads=args.threads, wsgi=floor, env={"FLOOR_RECHECK": "1"}) as base:
            columns.append(("SQL + engine re-check", {"bookings": measure_bookings(args, tmp, base, db_url, "floorcheck")}))
    report(columns, args.threads)
    return 0


def measure(args, tmp: Path, base: str, db_url: str, sfx: str) -> dict:
    """Drive the four loads with wrk against one server; the figures as a dict."""
    avail_slug, book_slug, contest_slug = "avail" + sfx, "book" + sfx, "contest" + sfx
    first = _next_monday()
    month = (f"{base}/api/v1/public/{avail_slug}/availability?service=visit&from={first}"
             f"&to={first + dt.timedelta(days=30)}&timezone=Europe/Berlin")
    slots = len(requests.get(month).json()["slots"])
    # Two connections per sync worker: enough to keep both busy without measuring queueing alone.
    health = wrk(f"{base}/health", args.seconds, 4)
    avail = wrk(month, args.seconds, 4)
    # Every request a different question, so none is answered from the cache.
    varied_script = tmp / f"varied{sfx}.lua"
    # 31 start days × 20 zones = 620 different month-long questions, more than the 512 answers kept.
    months = [(first + dt.timedelta(days=i), first + dt.timedelta(days=i + 30)) for i in range(31)]
    varied_script.write_text(VARIED_SCRIPT.replace("{SLUG}", avail_slug).replace(
        "{DAYS}", "{" + ",".join(f'{{"{a}","{b}"}}' for a, b in months) + "}"))
    varied = wrk(f"{base}/api/v1/public/{avail_slug}/availability", args.seconds, 4, str(varied_script))

    booked = measure_bookings(args, tmp, base, db_url, book_slug)
    contested_script = tmp / f"contest{sfx}.lua"
    contested_script.write_text(CONTESTED_SCRIPT.replace("{START}", f"{first}T09:00:00Z"))
    contested = wrk(f"{base}/api/v1/public/{contest_slug}/bookings", 3, 16, str(contested_script))

    engine = create_engine(db_url)
    with engine.connect() as conn:
        contest_rows = conn.execute(text(f'SELECT count(*) FROM "{tenant_schema(conn, contest_slug)}".appointment')).scalar()
    engine.dispose()
    return {"slots": slots, "health": health, "availability": avail, "availability_varied": varied, "bookings": booked,
            "contested": {**contested, "created": contest_rows}, "load": os.getloadavg()[0]}


def measure_bookings(args, tmp: Path, base: str, db_url: str, slug: str) -> dict:
    """16 wrk connections booking distinct slots of tenant `slug` for args.seconds; rows made and overlaps counted."""
    first = _next_monday()
    days = [first + dt.timedelta(days=i) for i in range(400) if (first + dt.timedelta(days=i)).weekday() < 5][:250]
    script = tmp / f"book-{slug}.lua"
    script.write_text(BOOK_SCRIPT.replace("{DAYS}", "{" + ",".join(f'"{d}"' for d in days) + "}").replace("{STAFF}", str(BOOK_STAFF)))
    booked = wrk(f"{base}/api/v1/public/{slug}/bookings", args.seconds, 16, str(script))
    engine = create_engine(db_url)
    with engine.connect() as conn:
        schema = tenant_schema(conn, slug)
        made = conn.execute(text(f'SELECT count(*) FROM "{schema}".appointment')).scalar()
        overlaps = conn.execute(text(
            f'SELECT count(*) FROM "{schema}".appointment a JOIN "{schema}".appointment b'
            " ON a.staff_id = b.staff_id AND a.id < b.id AND tstzrange(a.padded_start, a.padded_end) && tstzrange(b.padded_start, b.padded_end)"
        )).scalar()
    engine.dispose()
    return {**booked, "created": made, "per_second": made / args.seconds, "overlaps": overlaps}


def _next_monday() -> dt.date:
    today = dt.date.today()
    return today + dt.timedelta(days=(7 - today.weekday()))


ROWS = [
    # label, the figure's text from one column, target
    ("/health (SELECT 1 + Redis ping): p50 ms", lambda f: f"{f['health']['p50']:.2f}", ""),
    ("availability, same month again and again: p50 ms", lambda f: f"{f['availability']['p50']:.2f}", "<= 15"),
    ("  p50 / health p50", lambda f: f"{f['availability']['p50'] / f['health']['p50']:.2f}x", "<= 1.5x"),
    ("  p99 ms", lambda f: f"{f['availability']['p99']:.1f}", "<= 40"),
    ("  requests/s", lambda f: f"{f['availability']['rps']:.0f}", ">= 300"),
    ("availability, a new month-long question each request (never cached): p50 ms",
     lambda f: f"{f['availability_varied']['p50']:.1f}", "(<= 15)"),
    ("  p99 ms", lambda f: f"{f['availability_varied']['p99']:.1f}", "(<= 40)"),
    ("  requests/s", lambda f: f"{f['availability_varied']['rps']:.0f}", "(>= 300)"),
    ("bookings, 16 clients on distinct slots: bookings/s", lambda f: f"{f['bookings']['per_second']:.0f}", ">= 1000"),
    ("  p50 ms", lambda f: f"{f['bookings']['p50']:.1f}", ""),
    ("  p99 ms", lambda f: f"{f['bookings']['p99']:.1f}", "<= 50"),
    ("  non-2xx answers", lambda f: str(f["bookings"]["non2xx"] + f.get("availability", {}).get("non2xx", 0)
                                      + f.get("availability_varied", {}).get("non2xx", 0)), "0"),
    ("  overlapping appointments", lambda f: str(f["bookings"]["overlaps"]), "0"),
    ("bookings, 16 clients on one slot for 3 s: requests", lambda f: str(f["contested"]["requests"]), ""),
    ("  rows created", lambda f: str(f["contested"]["created"]), "1"),
    ("load average after the run", lambda f: f"{f['load']:.1f}", ""),
]


def report(columns: list[tuple[str, dict]], threads: int) -> None:
    """Print every figure beside its target, one column per measured tree."""
    slots = columns[0][1]["slots"]
    kind = "sync workers" if threads == 1 else f"workers x {threads} threads"
    print(f"gunicorn 2 {kind}, wrk on the same {os.cpu_count()} CPUs; one month = {slots} slots of {STAFF} staff")
    print_side_by_side(ROWS, columns)
    print(json.dumps({name: fig for name, fig in columns}))


if __name__ == "__main__":
    sys.exit(main())
