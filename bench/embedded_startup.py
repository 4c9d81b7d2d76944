"""Cold and warm start/stop times of the embedded PostgreSQL and Redis.

    python bench/embedded_startup.py [--runs 5] [--keep]

Cold = empty DATA_DIR (initdb, binaries mirror when root, CREATE DATABASE,
CREATE EXTENSION btree_gist). Warm = same DATA_DIR again. Uses a fresh
directory under /var/tmp (never /root) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402,F401  (import cost is not server start cost)
import redis  # noqa: E402

from devserver.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(cls, data_dir: Path, runs: int, check) -> dict[str, float | list[float]]:
    svc = cls(data_dir)
    cold_start, url = _timed(svc.start)
    check(url)
    cold_stop, _ = _timed(svc.stop)
    warm_starts, warm_stops = [], []
    for _ in range(runs):
        svc = cls(data_dir)
        t, url = _timed(svc.start)
        warm_starts.append(t)
        check(url)
        t, _ = _timed(svc.stop)
        warm_stops.append(t)
    return {"cold_start": cold_start, "cold_stop": cold_stop,
            "warm_start": statistics.median(warm_starts), "warm_start_max": max(warm_starts),
            "warm_stop": statistics.median(warm_stops)}


def _check_pg(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as c:
        c.execute(sa.text("select 1"))
    engine.dispose()


def _check_redis(url: str) -> None:
    c = redis.Redis.from_url(url)
    assert c.ping()
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="warm start/stop rounds (median reported)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR")
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="uz-bench-", dir="/var/tmp"))
    try:
        rows = [("postgres", bench(EmbeddedPostgres, data_dir, args.runs, _check_pg)),
                ("redis", bench(EmbeddedRedis, data_dir, args.runs, _check_redis))]
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"DATA_DIR {data_dir}{'' if args.keep else ' (removed)'}; warm = median of {args.runs}")
    print(f"{'service':<10}{'cold start':>12}{'cold stop':>11}{'warm start':>12}{'warm max':>10}{'warm stop':>11}")
    for name, r in rows:
        print(f"{name:<10}{r['cold_start']:>11.3f}s{r['cold_stop']:>10.3f}s"
              f"{r['warm_start']:>11.3f}s{r['warm_start_max']:>9.3f}s{r['warm_stop']:>10.3f}s")


if __name__ == "__main__":
    main()
