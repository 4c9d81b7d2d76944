"""The Locust scenario's short (CI) mode, headless, against gunicorn on loopback and the real database:
no request fails and every kind of request (widget, portal, admin, REST) was made."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 8
KINDS = {
    "/services", "/staff", "/availability (month)", "/availability (next month)", "/availability (to book)",
    "/bookings", "/bookings/<token>", "/bookings/<token>/cancel",
    "portal: /manage/<token> (sign in)", "portal: / (signed in)", "portal: /appointments/<id>", "portal: /logout",
    "portal: / (sign-in page)", "portal: /login (magic link)",
    "admin: /login/ (form)", "admin: /login/", "admin: /appointments/", "admin: /calendar/",
    "admin: /calendar/events (week)",
    "api: /appointments/ (list)", "api: /availability/", "api: /availability/ (to book)",
    "api: /appointments/ (create)",
}
pytestmark = pytest.mark.slow


def test_short_load_test_makes_every_kind_of_request_without_an_error(app, services, tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.support import gunicorn
    from loadtest.prepare import prepare

    database_url, redis_url = services
    prefix = f"lt{uuid.uuid4().hex[:4]}"
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(prepare(app, TENANTS, prefix)))

    # Rate limits stay on: every simulated client has its own X-Forwarded-For address.
    with gunicorn(database_url, redis_url, workers=3, env={"TRUSTED_PROXIES": "1", "RATELIMIT_ENABLED": "1",
                                                           "LOG_LEVEL": "WARNING"}) as base:
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--host", base,
             "--headless", "--short", "--csv", str(tmp_path / "short"), "--only-summary", "--loglevel", "WARNING"],
            cwd=str(ROOT), env={**os.environ, "LOADTEST_CREDENTIALS": str(credentials)},
            capture_output=True, text=True, timeout=80)

    with open(tmp_path / "short_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    failures = (tmp_path / "short_failures.csv").read_text()
    total = rows.pop("Aggregated")
    assert int(total["Failure Count"]) == 0, failures
    assert run.returncode == 0, run.stderr[-2000:]
    made = {name for name, row in rows.items() if int(row["Request Count"]) > 0}
    assert KINDS <= made, f"never made: {sorted(KINDS - made)}"
    assert int(total["Request Count"]) > 200
    print(f"short load test: {total['Request Count']} requests, {float(total['Requests/s']):.1f}/s, "
          f"p50 {total['50%']} ms, p95 {total['95%']} ms, p99 {total['99%']} ms, 0 failures")
