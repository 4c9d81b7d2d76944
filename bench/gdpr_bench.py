"""GDPR benchmarks: subject export (JSON, PDF) of a customer with 500 appointments, and a streamed
tenant archive of 250,000 appointments with its peak memory.

    python bench/gdpr_bench.py [--appointments 500] [--archive-rows 250000]

Uses DATABASE_URL/REDIS_URL when set (a fresh database on that server), else embedded
servers. The archive runs in a child process so its peak RSS is its own. The audit log's
cost on the booking endpoint is measured side by side with the HTTP bench against the
commit before the audit log:  python bench/http_bench.py --baseline <commit> --no-floor
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("UPZENTO_ENV", "development")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETUP = {
    "version": 1,
    "tenant": {"slug": "gdpr_bench", "name": "GDPR bench", "timezone": "Europe/Berlin", "currency": "EUR"},
    "locations": [{"key": "main", "name": "Main", "timezone": "Europe/Berlin"}],
    "services": [{"key": "visit", "name": "Visit", "duration_min": 30}],
    "staff": [{"key": f"s{i:02d}", "name": f"Staff {i}", "services": ["visit"], "locations": ["main"]} for i in range(50)],
}

FILL = """
INSERT INTO appointment (id, service_id, staff_id, location_id, customer_id, start_at, end_at, padded_start, padded_end,
                         session_key, status, seats, source, timezone, notes, answers, price, currency, sequence,
                         created_at, updated_at)
SELECT gen_random_uuid(), (SELECT min(id) FROM service), st.id, (SELECT min(id) FROM location), :cid,
       t, t + interval '30 min', t, t + interval '30 min', 'bench-' || st.id || '-' || n,
       CASE WHEN n % 7 = 0 THEN 'cancelled' ELSE 'completed' END, 1, 'import', 'Europe/Berlin',
       'note ' || n, jsonb_build_object('allergies', 'none', 'n', n), 40.00, 'EUR', 0, now(), now()
FROM generate_series(0, :n - 1) AS n
JOIN LATERAL (SELECT id FROM staff ORDER BY id OFFSET (n % 50) LIMIT 1) st ON true
CROSS JOIN LATERAL (SELECT timestamptz '2020-01-06 08:00Z' + (n / 50) * interval '1 hour' AS t) w
"""


def _fill(engine, schema: str, customer_id: int, count: int) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
        conn.execute(text(FILL), {"cid": customer_id, "n": count})


def _customer(engine, schema: str, email: str) -> int:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
        return conn.execute(text(
            "INSERT INTO customer (name, email, phone, sms_opt_out, marketing_opt_in, created_at)"
            " VALUES ('Bench Person', :e, '+49301234567', false, false, now()) RETURNING id"), {"e": email}).scalar()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=500)
    parser.add_argument("--archive-rows", type=int, default=250_000)
    args = parser.parse_args()

    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_bench") as (db_url, redis_url):
        os.environ["REDIS_URL"] = redis_url
        from app import create_app
        from app.extensions import db
        from app.gdpr import subjects
        from app.models import tenant as m
        from app.services.setup_io import import_setup
        from app.tenancy import tenant_session
        from tenants.provisioning import create_agency, migrate_all

        app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url, "SECRET_KEY": "bench"})
        with app.app_context():
            migrate_all(db.engine)
            create_agency(db.session, "bench-agency", "Bench")
            db.session.commit()
            import_setup(db.engine, json.loads(json.dumps(SETUP)), "bench-agency")
            schema = "tenant_gdpr_bench"
            cid = _customer(db.engine, schema, "person@example.com")
            _fill(db.engine, schema, cid, args.appointments)

            timings = {}
            for fmt in ("json", "pdf"):
                best = None
                for _ in range(3):
                    started = time.perf_counter()
                    with tenant_session(db.engine, "gdpr_bench") as (session, ref):
                        data = subjects.export_customer(session, ref, session.get(m.Customer, cid))
                        content = json.dumps(data, ensure_ascii=False).encode() if fmt == "json" else subjects.export_pdf(data)
                    took = time.perf_counter() - started
                    best = took if best is None else min(best, took)
                timings[fmt] = (best, len(content))

            # The archive: the remaining rows on another customer, then a child process writes the zip.
            other = _customer(db.engine, schema, "many@example.com")
            started = time.perf_counter()
            _fill(db.engine, schema, other, args.archive_rows - args.appointments)
            fill_s = time.perf_counter() - started
            out = Path(tempfile.mkdtemp()) / "archive.zip"
            child = (
                "import os, sys, time, resource; sys.path.insert(0, %r); os.environ.setdefault('UPZENTO_ENV', 'development');"
                "from sqlalchemy import create_engine; from app.gdpr import offboarding; import app.models;"
                "e = create_engine(%r); t = time.perf_counter();"
                "m = offboarding.archive_tenant(e, 'gdpr_bench', open(%r, 'wb'));"
                "print(time.perf_counter() - t, m['tables']['appointment'], m['bytes'],"
                " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
            ) % (str(ROOT), db_url, str(out))
            result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
            seconds, rows, size, rss_kb = result.stdout.split()[-4:]
            out.unlink()

        print(f"{'measure':44} {'measured':>14} {'target':>12}")
        print(f"{'export JSON, ' + str(args.appointments) + ' appointments (best of 3)':44} {timings['json'][0]:>12.2f} s {'<= 2 s':>12}"
              f"   ({timings['json'][1] / 1024:.0f} KB)")
        print(f"{'export PDF, ' + str(args.appointments) + ' appointments (best of 3)':44} {timings['pdf'][0]:>12.2f} s {'<= 5 s':>12}"
              f"   ({timings['pdf'][1] / 1024:.0f} KB)")
        print(f"{'tenant archive, ' + rows + ' appointments':44} {float(seconds):>12.1f} s {'(streamed)':>12}"
              f"   ({int(size) / 1048576:.1f} MB zip; fill took {fill_s:.0f} s)")
        print(f"{'archive peak RSS (child process)':44} {int(rss_kb) / 1024:>11.0f} MB {'<= 300 MB':>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
