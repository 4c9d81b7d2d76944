"""1,000 tenants on one database: provisioning, `migrate --all` with --jobs 1 vs 4, web process memory.

    python bench/tenants_bench.py [--tenants 1000] [--provision-jobs 4] [--skip-rss]

Works in a scratch database (DATABASE_URL's server when set, else embedded servers;
devserver.embedded.scratch_environment), dropped at the end. Steps, each timed:

1. provision N businesses through the real path (`import_setup`: tenant row, schema,
   every tenant migration, a one-location/one-service/one-staff catalogue), in
   --provision-jobs processes;
2. a deploy with one new tenant revision: every schema is put back one revision (the
   newest revision's downgrade, run in SQL) and `migrate_all(jobs=1)` brings them up;
   the same again with `jobs=4`; then a rerun on the up-to-date database (a no-op);
3. one gunicorn sync worker (the default bounded caches): resident memory (RSS) of the
   worker after serving /services and one availability month for 10, 100 and N
   businesses, each business once.

Figures are printed beside the targets of issue #19.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("UPZENTO_ENV", "development")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import psutil  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.support import gunicorn, print_side_by_side  # noqa: E402

UNLIMITED = {"PUBLIC_RATE_LIMIT_PER_TENANT": "100000000/minute", "PUBLIC_RATE_LIMIT_PER_IP": "100000000/minute",
             "LOG_LEVEL": "WARNING"}
ARGS = {"service": "visit", "from": "2027-01-11", "to": "2027-02-10", "timezone": "Europe/Berlin"}

_engine = None


def _start(url: str) -> None:
    global _engine
    _engine = create_engine(url, pool_size=1, max_overflow=0)


def _provision(slug: str) -> float:
    from support import minimal_setup

    from app.services.setup_io import import_setup

    doc = minimal_setup()
    doc["tenant"]["slug"] = slug
    started = time.perf_counter()
    import_setup(_engine, doc, "bench")
    return time.perf_counter() - started


def provision(url: str, slugs: list[str], jobs: int) -> tuple[float, list[float]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_start,
                             initargs=(url,)) as pool:
        each = list(pool.map(_provision, slugs, chunksize=8))
    return time.perf_counter() - started, each


def one_revision_back(engine) -> str:
    """Undo the newest tenant revision in every schema (its downgrade, in SQL): a deploy has one to run."""
    from tenants.migrate import head_revision

    head = head_revision("tenant")
    assert "t0013cal" in head.split("+"), f"this step knows how to undo t0013cal only, the heads are {head}"
    with engine.begin() as conn:
        schemas = conn.execute(text("SELECT schema_name FROM public.tenant")).scalars().all()
    # One transaction per 50 schemas: all 1,000 in one ran out of lock slots (max_locks_per_transaction).
    for start in range(0, len(schemas), 50):
        _undo_newest(engine, schemas[start:start + 50])
    return head


def _undo_newest(engine, schemas: list[str]) -> None:
    with engine.begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
            conn.exec_driver_sql("ALTER TABLE calendar_connection DROP COLUMN IF EXISTS oauth_client_id")
            conn.exec_driver_sql("ALTER TABLE calendar_connection DROP COLUMN IF EXISTS oauth_app")
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 't0012cal' WHERE version_num = 't0013cal'")


def timed_migrate(engine, jobs: int) -> tuple[float, int, int]:
    from tenants.provisioning import migrate_all

    started = time.perf_counter()
    results = migrate_all(engine, jobs=jobs)
    return time.perf_counter() - started, len(results), sum(1 for r in results if r.error)


def rss_curve(db_url: str, redis_url: str, slugs: list[str], marks: list[int]) -> dict[int, float]:
    """RSS (MB) of one sync gunicorn worker after serving each of the first `mark` businesses once."""
    out: dict[int, float] = {}
    with gunicorn(db_url, redis_url, workers=1, env=UNLIMITED) as base:
        master = _gunicorn_master(base)
        worker = master.children()[0]
        http = requests.Session()
        served = 0
        out[0] = worker.memory_info().rss / 2**20
        for mark in marks:
            for slug in slugs[served:mark]:
                assert http.get(f"{base}/api/v1/public/{slug}/services").status_code == 200
                r = http.get(f"{base}/api/v1/public/{slug}/availability", params=ARGS)
                assert r.status_code == 200 and r.json()["slots"], r.text[:200]
            served = mark
            out[mark] = worker.memory_info().rss / 2**20
            print(f"web worker RSS after {mark} businesses: {out[mark]:.0f} MB", flush=True)
    return out


def _gunicorn_master(base: str) -> psutil.Process:
    port = int(base.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == "LISTEN" and conn.laddr.port == port and conn.pid:
            proc = psutil.Process(conn.pid)
            return proc if proc.children() else proc.parent()
    raise RuntimeError("gunicorn not found")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--provision-jobs", type=int, default=4)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--database-url", help="migrate and measure an existing database (its businesses t0000...) instead of a scratch one")
    args = parser.parse_args()
    from devserver.embedded import scratch_environment

    if args.database_url:
        return run(args, args.database_url, os.environ["REDIS_URL"], provisioned=True)
    with scratch_environment("upzento_tenants") as (db_url, redis_url):
        return run(args, db_url, redis_url)


def run(args, db_url: str, redis_url: str, provisioned: bool = False) -> int:
    os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url)
    from tenants.provisioning import create_agency, migrate_all  # noqa: F401
    from tenants.migrate import migrate_public

    engine = create_engine(db_url)
    migrate_public(engine)
    from sqlalchemy.orm import Session

    slugs = [f"t{i:04d}" for i in range(args.tenants)]
    if provisioned:
        wall, each = 0.0, [0.0]
    else:
        with Session(engine) as session:
            create_agency(session, "bench", "Bench")
            session.commit()
        engine.dispose()
        wall, each = provision(db_url, slugs, args.provision_jobs)
    each.sort()
    print(f"provisioned {len(slugs)} businesses in {wall:.0f} s ({args.provision_jobs} processes); "
          f"per business p50 {each[len(each) // 2]:.2f} s, p95 {each[int(len(each) * .95)]:.2f} s", flush=True)

    figures = {}
    head = one_revision_back(engine)
    figures["jobs1"] = timed_migrate(engine, 1)
    print(f"migrate --all --jobs 1 (one revision, {head}): {figures['jobs1'][0]:.1f} s", flush=True)
    one_revision_back(engine)
    figures["jobs4"] = timed_migrate(engine, 4)
    print(f"migrate --all --jobs 4: {figures['jobs4'][0]:.1f} s", flush=True)
    engine = create_engine(db_url)
    figures["noop"] = timed_migrate(engine, 4)
    engine.dispose()
    marks = [m for m in (10, 100, 1000) if m < args.tenants] + [args.tenants]
    rss = {} if args.skip_rss else rss_curve(db_url, redis_url, slugs, marks)

    n = args.tenants
    scale = n / 1000
    rows = [
        ("businesses", lambda f: str(n), "1000"),
        ("provision: wall s (processes)", lambda f: f"{wall:.0f} ({args.provision_jobs})", ""),
        ("  per business p50 s", lambda f: f"{each[len(each) // 2]:.2f}", "<= 0.5"),
        ("migrate --all, one new revision: --jobs 1 s", lambda f: f"{f['jobs1'][0]:.1f}", ""),
        ("  --jobs 4 s", lambda f: f"{f['jobs4'][0]:.1f}", f"<= {120 * scale:.0f}"),
        ("  speed-up", lambda f: f"{f['jobs1'][0] / f['jobs4'][0]:.2f}x", ""),
        ("  schemas migrated / failed (jobs 4)", lambda f: f"{f['jobs4'][1]} / {f['jobs4'][2]}", f"{n} / 0"),
        ("migrate --all again (up to date) s", lambda f: f"{f['noop'][0]:.1f}", "no-op"),
    ]
    for mark, mb in rss.items():
        rows.append((f"web worker RSS after {mark} businesses MB", lambda f, mb=mb: f"{mb:.0f}",
                     "flat" if mark else ""))
    if rss:
        grow = rss[marks[-1]] - rss[marks[0]]
        rows.append((f"  growth {marks[0]} -> {marks[-1]} businesses MB", lambda f: f"{grow:.0f}", "<= 64"))
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print_side_by_side(rows, [("measured", figures)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
