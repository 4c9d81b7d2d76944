"""Benchmark: outbox → relay → RQ → rendered email with .ics → local SMTP sink.

Run from the repository root:  python bench/notifications_bench.py [--messages 3000] [--rate 250]

Uses DATABASE_URL/REDIS_URL when set, else starts embedded PostgreSQL and Redis
in a temporary directory. It creates a scratch database and one tenant with
pre-made appointments, then starts the real pieces: the relay process
(`python -m app.jobs.relay`, LISTEN/NOTIFY) and `--workers` `rq worker`
processes. A producer commits one `appointment.booked` outbox event per
transaction at `--rate` per second (what the booking core writes at commit);
every event yields one customer confirmation (staff have no email here), sent
over SMTP to an aiosmtpd sink on 127.0.0.1.

Reported: sustained throughput (messages accepted by the sink / time from the
first commit to the last accept) and the latency from each commit to its SMTP
accept (p50/p95/p99/max). Targets: >= 200 msg/s, p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

# Benches run the development settings (no production secrets needed).
os.environ.setdefault("UPZENTO_ENV", "development")

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.support import tenant_schema  # noqa: E402
from fakes.smtp_sink import SmtpSink  # noqa: E402

_SCHEMAS: dict[str, str] = {}
UID_RE = re.compile(rb"UID:appt-([0-9a-f-]{36})@")


class TimedSink(SmtpSink):
    """Records when each appointment's mail was accepted; skips parsing to keep the sink cheap."""

    def __init__(self):
        super().__init__()
        self.accepted: dict[str, float] = {}
        self.count = 0

    def _store(self, mail_from, rcpt_tos, raw):
        now = time.monotonic()
        match = UID_RE.search(raw)
        with self._cond:
            self.count += 1
            if match:
                self.accepted.setdefault(match.group(1).decode(), now)
            self._cond.notify_all()


def _setup(n: int) -> dict:
    from support import minimal_setup

    doc = minimal_setup()
    doc["tenant"]["slug"] = "bench_" + uuid.uuid4().hex[:8]
    return doc


def _make_appointments(engine, slug: str, n: int) -> list[str]:
    """n appointments (30 min apart, one customer each) inserted in bulk: setup, not measured."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with engine.begin() as conn:
        schema = f'"{tenant_schema(conn, slug)}"'
        service_id = conn.execute(text(f"SELECT id FROM {schema}.service")).scalar()
        staff_id = conn.execute(text(f"SELECT id FROM {schema}.staff")).scalar()
        location_id = conn.execute(text(f"SELECT id FROM {schema}.location")).scalar()
        conn.execute(text(
            f"INSERT INTO {schema}.customer (name, email, sms_opt_out, marketing_opt_in, created_at) "
            f"SELECT 'Customer ' || g, 'c' || g || '@bench.test', false, false, now() FROM generate_series(1, :n) g"),
            {"n": n})
        conn.execute(text(
            f"""INSERT INTO {schema}.appointment (id, service_id, staff_id, location_id, customer_id, start_at, end_at,
                   padded_start, padded_end, session_key, status, seats, source, timezone, answers, sequence,
                   created_at, updated_at)
                SELECT CAST(ids.id AS uuid), :service, :staff, :loc, c.id,
                       timestamptz '2030-01-07 08:00Z' + (ids.n * interval '30 minutes'),
                       timestamptz '2030-01-07 08:30Z' + (ids.n * interval '30 minutes'),
                       timestamptz '2030-01-07 08:00Z' + (ids.n * interval '30 minutes'),
                       timestamptz '2030-01-07 08:30Z' + (ids.n * interval '30 minutes'),
                       'bench-' || ids.n, 'confirmed', 1, 'api', 'Europe/Berlin', '{{}}', 0, now(), now()
                FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS ids(id, n)
                JOIN {schema}.customer c ON c.email = 'c' || ids.n || '@bench.test'"""),
            {"service": service_id, "staff": staff_id, "loc": location_id, "ids": ids})
    return ids


def _emit(engine, slug: str, appointment_id: str) -> None:
    with engine.begin() as conn:
        schema = _SCHEMAS.get(slug) or _SCHEMAS.setdefault(slug, tenant_schema(conn, slug))
        conn.execute(text(f'SET LOCAL search_path TO "{schema}", public'))
        conn.execute(text(
            "INSERT INTO outbox_event (event_type, aggregate_id, payload, created_at, attempts) "
            "VALUES ('appointment.booked', :a, CAST(:p AS jsonb), now(), 0)"),
            {"a": appointment_id, "p": f'{{"tenant": "{slug}", "appointment_id": "{appointment_id}", "source": "api"}}'})


def _produce(engine, slug: str, ids: list[str], rate: float, committed: dict[str, float]) -> None:
    start = time.monotonic()
    for i, appointment_id in enumerate(ids):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _emit(engine, slug, appointment_id)
        committed[appointment_id] = time.monotonic()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=250.0, help="events committed per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker-class", default="app.jobs.worker.AppSimpleWorker")
    args = parser.parse_args()

    from devserver.embedded import scratch_environment

    # Servers and the scratch database come and go with the block; this folder keeps the children's log.
    tmp = Path(tempfile.mkdtemp(prefix="upz-notif-bench-", dir="/var/tmp" if Path("/var/tmp").exists() else None))
    try:
        with scratch_environment("upzento_bench") as (db_url, redis_url):
            return _run(args, tmp, db_url, redis_url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path, db_url: str, redis_url: str) -> int:
    """Start the relay and workers on a migrated scratch database, produce events at the rate, report."""
    children = []
    sink = TimedSink().start()
    try:
        os.environ.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url})
        from app import create_app
        from app.extensions import db
        from app.services.setup_io import import_setup
        from tenants.provisioning import create_agency, migrate_all

        app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
        import logging

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
        doc = _setup(args.messages)
        with app.app_context():
            migrate_all(db.engine)
            create_agency(db.session, "bench-agency", "Bench Agency")
            db.session.commit()
            import_setup(db.engine, doc, "bench-agency")
        slug = doc["tenant"]["slug"]
        engine = create_engine(db_url, pool_size=4)
        warmup = 100
        ids = _make_appointments(engine, slug, args.messages + warmup)

        from devserver.embedded import ManagedProcess

        env = {**os.environ, "PYTHONPATH": str(ROOT), "SMTP_HOST": sink.host, "SMTP_PORT": str(sink.port),
               "MAIL_FROM": "bookings@bench.test", "PUBLIC_URL": "http://127.0.0.1:5000", "LOG_LEVEL": "WARNING"}
        for key in ("SMS_API_BASE_URL", "SMS_ACCOUNT_SID"):
            env.pop(key, None)
        log = open(tmp / "children.log", "wb")
        children.append(ManagedProcess("relay", [sys.executable, "-m", "app.jobs.relay"], env=env, cwd=str(ROOT),
                                       stdout=log, stderr=log).start())
        for i in range(args.workers):
            children.append(ManagedProcess(
                f"worker {i}", [sys.executable, "-m", "rq.cli", "worker", "-q", "-w", args.worker_class,
                                "--url", redis_url, "notifications", "default"],
                env=env, cwd=str(ROOT), stdout=log, stderr=log).start())

        # Warm-up: processes import and connect; not measured.
        for appointment_id in ids[:warmup]:
            _emit(engine, slug, appointment_id)
        with sink._cond:
            if not sink._cond.wait_for(lambda: sink.count >= warmup, 90):
                raise SystemExit(f"warm-up did not finish (got {sink.count}); see {tmp / 'children.log'}")

        measured = ids[warmup:]
        committed: dict[str, float] = {}
        producer = threading.Thread(target=_produce, args=(engine, slug, measured, args.rate, committed))
        t0 = time.monotonic()
        producer.start()
        producer.join()
        with sink._cond:
            done = sink._cond.wait_for(lambda: sink.count >= warmup + len(measured), 120)
        if not done:
            print(f"only {sink.count - warmup} of {len(measured)} messages arrived", file=sys.stderr)
        latencies = [sink.accepted[a] - committed[a] for a in measured if a in sink.accepted and a in committed]
        last = max(sink.accepted[a] for a in measured if a in sink.accepted)
        produce_s = max(committed.values()) - t0
        total_s = last - t0
        throughput = len(latencies) / total_s
        print(f"messages: {len(latencies)} (after {warmup} warm-up), workers: {args.workers} x {args.worker_class}, "
              f"cores: {os.cpu_count()}")
        print(f"offered rate: {args.rate:.0f}/s (producer took {produce_s:.2f} s, {len(measured) / produce_s:.0f}/s)")
        print(f"sustained throughput: {throughput:.0f} msg/s (first commit to last SMTP accept: {total_s:.2f} s)")
        print(f"commit -> SMTP accept latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {_percentile(latencies, 0.95) * 1000:.0f} ms, p99 {_percentile(latencies, 0.99) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
        ok = throughput >= 200 and _percentile(latencies, 0.99) <= 2.0 and len(latencies) == len(measured)
        print("targets (>= 200 msg/s, p99 <= 2 s):", "met" if ok else "NOT met")
        if os.environ.get("BENCH_SHOW_LOG"):
            log.flush()
            print((tmp / "children.log").read_text()[-4000:])
        return 0 if ok else 1
    finally:
        for child in reversed(children):
            child.stop()
        sink.stop()


if __name__ == "__main__":
    sys.exit(main())
