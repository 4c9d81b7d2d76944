"""HTTP benchmarks of the public API under gunicorn (2 workers), driven by wrk.

    python bench/http_bench.py [--seconds 10]

Uses DATABASE_URL/REDIS_URL when set (a fresh database is created on that
server), else embedded servers in a temporary folder. Needs `wrk`
(Debian: apt-get install wrk). Prints, next to each target:
- availability, one month, one service, 20 staff: p50, p99, requests/s
- bookings, 16 connections on distinct slots: bookings/s, p99
- bookings, 16 connections on one contested slot: rows created, overlaps
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

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import gunicorn  # noqa: E402

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
  return wrk.format("GET", "/api/v1/public/avail/availability?service=visit&timezone=" .. zone .. "&from=" .. days[i][1] .. "&to=" .. days[i][2])
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
    args = parser.parse_args()
    from app.embedded import scratch_environment

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

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
    with app.app_context():
        migrate_all(db.engine)
        create_agency(db.session, "bench", "Bench")
        db.session.commit()
        import_setup(db.engine, setup_doc("avail", STAFF, "Europe/Berlin"), "bench")
        import_setup(db.engine, setup_doc("book", BOOK_STAFF, "UTC"), "bench")
        import_setup(db.engine, setup_doc("contest", 1, "UTC"), "bench")
        db.engine.dispose()
    sync_all_roles(app)
    with gunicorn(db_url, redis_url, workers=2) as base:
        return measure(args, tmp, base, db_url)


def measure(args, tmp: Path, base: str, db_url: str) -> int:
    """Drive the three loads with wrk and print each figure beside its target."""
    today = dt.date.today()
    first = today + dt.timedelta(days=(7 - today.weekday()))
    month = f"{base}/api/v1/public/avail/availability?service=visit&from={first}&to={first + dt.timedelta(days=30)}&timezone=Europe/Berlin"
    slots = len(requests.get(month).json()["slots"])
    # Two connections per sync worker: enough to keep both busy without measuring queueing alone.
    avail = wrk(month, args.seconds, 4)
    # Every request a different question, so none is answered from the cache.
    varied_script = tmp / "varied.lua"
    # 31 start days × 20 zones = 620 different month-long questions, more than the 512 answers kept.
    months = [(first + dt.timedelta(days=i), first + dt.timedelta(days=i + 30)) for i in range(31)]
    varied_script.write_text(VARIED_SCRIPT.replace("{DAYS}", "{" + ",".join(f'{{"{a}","{b}"}}' for a, b in months) + "}"))
    varied = wrk(f"{base}/api/v1/public/avail/availability", args.seconds, 4, str(varied_script))

    days = [first + dt.timedelta(days=i) for i in range(400) if (first + dt.timedelta(days=i)).weekday() < 5][:250]
    script = tmp / "book.lua"
    script.write_text(BOOK_SCRIPT.replace("{DAYS}", "{" + ",".join(f'"{d}"' for d in days) + "}").replace("{STAFF}", str(BOOK_STAFF)))
    booked = wrk(f"{base}/api/v1/public/book/bookings", args.seconds, 16, str(script))
    contested_script = tmp / "contest.lua"
    contested_script.write_text(CONTESTED_SCRIPT.replace("{START}", f"{first}T09:00:00Z"))
    contested = wrk(f"{base}/api/v1/public/contest/bookings", 3, 16, str(contested_script))

    engine = create_engine(db_url)
    with engine.connect() as conn:
        made = conn.execute(text('SELECT count(*) FROM "tenant_book".appointment')).scalar()
        contest_rows = conn.execute(text('SELECT count(*) FROM "tenant_contest".appointment')).scalar()
        overlaps = conn.execute(text(
            'SELECT count(*) FROM "tenant_book".appointment a JOIN "tenant_book".appointment b'
            " ON a.staff_id = b.staff_id AND a.id < b.id AND tstzrange(a.padded_start, a.padded_end) && tstzrange(b.padded_start, b.padded_end)"
        )).scalar()
    engine.dispose()
    print(f"availability, same month asked again and again (1 month, {STAFF} staff, {slots} slots): p50 {avail['p50']:.1f} ms "
          f"(target <= 15), p99 {avail['p99']:.1f} ms (target <= 40), {avail['rps']:.0f} req/s (target >= 300), non-2xx {avail['non2xx']}")
    print(f"availability, a different month-long question every request (never cached): p50 {varied['p50']:.1f} ms, "
          f"p99 {varied['p99']:.1f} ms, {varied['rps']:.0f} req/s, non-2xx {varied['non2xx']}")
    print(f"bookings, 16 clients on distinct slots: {made / args.seconds:.0f} bookings/s (target >= 1000), "
          f"p99 {booked['p99']:.1f} ms (target <= 50), {booked['requests']} requests, {booked['non2xx']} non-2xx, overlaps {overlaps}")
    print(f"bookings, 16 clients on one slot for 3 s: {contested['requests']} requests, rows created {contest_rows} (must be 1)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wrk shares them)")
    print(json.dumps({"availability": avail, "availability_varied": varied, "bookings": {**booked, "created": made}, "contested": {**contested, "created": contest_rows}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
