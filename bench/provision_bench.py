"""Provision many tenants, migrate them all, then time the admin's tenant list over real HTTP.

    python bench/provision_bench.py [--tenants 200] [--requests 100] [--database-url URL] [--keep]

Uses DATABASE_URL (or --database-url) as the server and creates a scratch database
on it, or starts an embedded PostgreSQL when neither is given. Prints seconds per
tenant for provisioning (row + schema, one transaction each; the schema built alternately by Alembic
running every tenant migration and by the recorded script, tenants/schema_script.py)
and for `migrate --all` over an up-to-date database, then the p50/p95 of
GET /tenantview/list/ for a logged-in agency owner who sees every tenant, served by
werkzeug's threaded server on a free loopback port. Targets: provisioning ≤ 0.5 s per
tenant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

# Benches run the development settings (no production secrets needed).
os.environ.setdefault("UPZENTO_ENV", "development")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import logging  # noqa: E402

import requests  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

PASSWORD = "bench-password-1"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def provision(app, count: int) -> tuple[dict[str, dict[str, list[float]]], float]:
    """Create `count` tenants one by one, alternating how the schema is built (Alembic running every
    migration / the recorded script, tenants/schema_script.py) so both see the same load; then
    migrate all. Per mode: wall seconds per tenant, seconds in the schema step, client CPU seconds."""
    import tenants.provisioning as prov
    from app.extensions import db

    schema_seconds: list[float] = []
    real_build = prov.build_schema

    def timed_build(connection, schema):
        started = time.perf_counter()
        try:
            return real_build(connection, schema)
        finally:
            schema_seconds.append(time.perf_counter() - started)

    prov.build_schema = timed_build
    figures = {mode: {"wall": [], "schema": [], "cpu": []} for mode in ("alembic", "script")}
    try:
        with app.app_context():
            for i in range(count):
                mode = ("alembic", "script")[i % 2]
                os.environ["TENANT_SCHEMA_SCRIPT"] = "1" if mode == "script" else "0"
                started, cpu = time.perf_counter(), time.process_time()
                prov.create_tenant(db.engine, "bench", prov.TenantSpec(f"b{i:04d}", f"Bench business {i:04d}",
                                                                       "Europe/Berlin"))
                figures[mode]["wall"].append(time.perf_counter() - started)
                figures[mode]["cpu"].append(time.process_time() - cpu)
                figures[mode]["schema"].append(schema_seconds[-1])
                if (i + 1) % 50 == 0:
                    print(f"  provisioned {i + 1}/{count}", flush=True)
            os.environ.pop("TENANT_SCHEMA_SCRIPT", None)
            started = time.perf_counter()
            prov.migrate_all(db.engine)
            migrate_seconds = time.perf_counter() - started
    finally:
        prov.build_schema = real_build
    return figures, migrate_seconds


def list_page_latency(app, requests_count: int) -> tuple[list[float], int]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        http = requests.Session()
        login = http.post(f"{base}/login/", data={"username": "bench_owner", "password": PASSWORD}, allow_redirects=False)
        if login.status_code != 302 or "/login" in login.headers.get("Location", ""):
            raise SystemExit(f"log-in failed: {login.status_code}")
        page = http.get(f"{base}/tenantview/list/")
        if page.status_code != 200 or "Bench business" not in page.text:
            raise SystemExit(f"tenant list not shown: {page.status_code}")
        total = page.text.count("Bench business")
        timings = []
        for _ in range(requests_count):
            started = time.perf_counter()
            response = http.get(f"{base}/tenantview/list/")
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200
        return timings, total
    finally:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database-url", help="server to create the scratch database on (default: DATABASE_URL or embedded)")
    args = parser.parse_args()

    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_bench", database_url=args.database_url) as (url, redis_url):
        run(args, url, redis_url)


def run(args, url: str, redis_url: str) -> None:
    """Provision into the scratch database, then time the tenant list page."""
    os.environ["REDIS_URL"] = redis_url
    from app import create_app
    from app.extensions import db
    from app.security import sync_all_roles
    from app.services.people import create_user_with_role
    from tenants.provisioning import create_agency, migrate_all

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "bench"})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    with app.app_context():
        migrate_all(db.engine)
        sync_all_roles(app)
        create_agency(db.session, "bench", "Bench Agency")
        db.session.commit()
        create_user_with_role(db.session, username="bench_owner", email="owner@bench.invalid", password=PASSWORD,
                              role="Agency Owner", agency_slug="bench")
        db.session.commit()

    print(f"provisioning {args.tenants} tenants ...", flush=True)
    started = time.perf_counter()
    figures, migrate_seconds = provision(app, args.tenants)
    wall = time.perf_counter() - started
    print(f"provision: {args.tenants} tenants, alternating the two ways of building the schema "
          f"(load average {os.getloadavg()[0]:.1f}); median per tenant, target <= 0.5 s:")
    for mode, label in (("alembic", "Alembic, every migration"), ("script", "recorded script (default)")):
        f = figures[mode]
        print(f"  {label:27s} wall {statistics.median(f['wall']):.3f} s (p95 {_pct(f['wall'], 0.95):.3f}), "
              f"schema step {statistics.median(f['schema']):.3f} s, client CPU {statistics.median(f['cpu']) * 1000:.0f} ms")
    print(f"migrate --all (already current: every schema's revision read in one statement, none migrated): "
          f"{migrate_seconds:.2f} s; provision + migrate wall time {wall:.1f} s")

    timings, shown = list_page_latency(app, args.requests)
    ms = [t * 1000 for t in timings]
    print(f"GET /tenantview/list/ as agency owner with {args.tenants} tenants ({shown} rows on the page), "
          f"{len(ms)} requests: p50 {_pct(ms, 0.5):.1f} ms, p95 {_pct(ms, 0.95):.1f} ms, max {max(ms):.1f} ms")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    main()
