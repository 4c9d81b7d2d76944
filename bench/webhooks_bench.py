"""Benchmark: webhook fan-out, outbox → relay → RQ → signed HTTP POST → local receivers.

Run from the repository root:  python bench/webhooks_bench.py [--events 1000] [--endpoints 5] [--rate 100]

Uses DATABASE_URL/REDIS_URL when set, else embedded servers, with a scratch database.
One business with `--endpoints` webhook endpoints (every event), each on its own
loopback receiver (a threaded HTTP/1.1 server answering 200). The real relay
process (LISTEN/NOTIFY) and `--workers` rq workers on the integrations queue run;
a producer commits one `appointment.booked` outbox event per transaction at
`--rate` per second. Every event yields one signed delivery per endpoint.

Reported beside the targets of the issue: deliveries/s (from the first commit to
the last delivery received), commit → receiver latency (p50/p95/p99), and the
cost of signing one delivery (Standard Webhooks headers over a real payload).
A sample of deliveries is verified with the independent `standardwebhooks` package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("UPZENTO_ENV", "development")
os.environ["WEBHOOK_ALLOW_PRIVATE"] = "1"  # the receivers are on loopback
ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.notifications_bench import _make_appointments, _percentile, _produce, _setup  # noqa: E402

TARGET_RATE, TARGET_P95, TARGET_SIGN_US = 300.0, 2.0, 50.0


class Receiver:
    """A loopback endpoint recording when each event's delivery arrived (and keeping a few bodies)."""

    def __init__(self, name: str):
        self.name = name
        self.arrived: dict[str, float] = {}
        self.samples: list[tuple[dict, bytes]] = []
        self.count = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.monotonic()
                appointment_id = json.loads(body)["data"]["appointment"]["id"]
                with receiver.cond:
                    receiver.count += 1
                    receiver.arrived.setdefault(appointment_id, now)
                    if len(receiver.samples) < 20:
                        receiver.samples.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/{self.name}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def signing_cost(body: str, n: int = 20000) -> float:
    """Microseconds to sign one delivery (headers for one secret) over `body`."""
    from app.webhooks import signing

    secret, data = signing.new_secret(), body.encode()
    start = time.perf_counter()
    for i in range(n):
        signing.headers([secret], "msg_2Lz0b8kq1Yw3", 1767225600 + i, data)
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0, help="events committed per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker-class", default="app.jobs.worker.AppSimpleWorker")
    args = parser.parse_args()
    from devserver.embedded import scratch_environment

    tmp = Path(tempfile.mkdtemp(prefix="upz-wh-bench-", dir="/var/tmp" if Path("/var/tmp").exists() else None))
    try:
        with scratch_environment("upzento_bench") as (db_url, redis_url):
            return _run(args, tmp, db_url, redis_url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path, db_url: str, redis_url: str) -> int:
    children, receivers = [], [Receiver(f"e{i}") for i in range(args.endpoints)]
    try:
        os.environ.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url})
        from app import create_app
        from app.extensions import db
        from app.services import webhooks as svc
        from app.services.setup_io import import_setup
        from app.tenancy import tenant_session
        from tenants.provisioning import create_agency, migrate_all

        app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
        doc = _setup(args.events)
        with app.app_context():
            migrate_all(db.engine)
            create_agency(db.session, "bench-agency", "Bench Agency")
            db.session.commit()
            import_setup(db.engine, doc, "bench-agency")
            slug = doc["tenant"]["slug"]
            secrets = []
            with tenant_session(db.engine, slug) as (session, _ref):
                for r in receivers:
                    secrets.append(svc.create_endpoint(session, r.url, allow_private=True).secret)
        engine = create_engine(db_url, pool_size=4)
        warmup = 50
        ids = _make_appointments(engine, slug, args.events + warmup)

        from devserver.embedded import ManagedProcess

        env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", "WEBHOOK_ALLOW_PRIVATE": "1"}
        log = open(tmp / "children.log", "wb")
        children.append(ManagedProcess("relay", [sys.executable, "-m", "app.jobs.relay"], env=env, cwd=str(ROOT),
                                       stdout=log, stderr=log).start())
        for i in range(args.workers):
            children.append(ManagedProcess(
                f"worker {i}", [sys.executable, "-m", "rq.cli", "worker", "-q", "-w", args.worker_class,
                                "--url", redis_url, "integrations"],
                env=env, cwd=str(ROOT), stdout=log, stderr=log).start())

        from bench.notifications_bench import _emit

        def total() -> int:
            return sum(r.count for r in receivers)

        for appointment_id in ids[:warmup]:
            _emit(engine, slug, appointment_id)
        deadline = time.monotonic() + 120
        while total() < warmup * len(receivers):
            if time.monotonic() > deadline:
                raise SystemExit(f"warm-up did not finish ({total()}); see {tmp / 'children.log'}")
            time.sleep(0.05)

        measured = ids[warmup:]
        committed: dict[str, float] = {}
        producer = threading.Thread(target=_produce, args=(engine, slug, measured, args.rate, committed))
        t0 = time.monotonic()
        producer.start()
        producer.join()
        expected = (warmup + len(measured)) * len(receivers)
        deadline = time.monotonic() + 180
        while total() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = [r.arrived[a] - committed[a] for r in receivers for a in measured
                     if a in r.arrived and a in committed]
        last = max(r.arrived[a] for r in receivers for a in measured if a in r.arrived)
        rate = len(latencies) / (last - t0)
        p95 = _percentile(latencies, 0.95)

        from standardwebhooks.webhooks import Webhook

        verified = 0
        for receiver, secret in zip(receivers, secrets):
            for headers, body in receiver.samples:
                Webhook(secret).verify(body, headers)
                verified += 1
        body = receivers[0].samples[-1][1].decode()
        sign_us = signing_cost(body)

        print(f"events: {len(measured)} (after {warmup} warm-up) x {len(receivers)} endpoints = "
              f"{len(measured) * len(receivers)} deliveries; received {len(latencies)}; "
              f"workers: {args.workers} x {args.worker_class}; cores: {os.cpu_count()}")
        print(f"offered: {args.rate:.0f} events/s = {args.rate * len(receivers):.0f} deliveries/s; "
              f"payload {len(body)} bytes; {verified} sampled deliveries verified with standardwebhooks")
        print(f"{'figure':34} {'measured':>12} {'target':>10}")
        print(f"{'deliveries/s':34} {rate:>12.0f} {'>= 300':>10}")
        print(f"{'commit -> receiver p50':34} {statistics.median(latencies) * 1000:>9.0f} ms {'':>10}")
        print(f"{'commit -> receiver p95':34} {p95 * 1000:>9.0f} ms {'<= 2000 ms':>10}")
        print(f"{'commit -> receiver p99':34} {_percentile(latencies, 0.99) * 1000:>9.0f} ms {'':>10}")
        print(f"{'signing one delivery':34} {sign_us:>9.1f} us {'<= 50 us':>10}")
        ok = (rate >= TARGET_RATE and p95 <= TARGET_P95 and sign_us <= TARGET_SIGN_US
              and len(latencies) == len(measured) * len(receivers))
        print("targets:", "met" if ok else "NOT met")
        if os.environ.get("BENCH_SHOW_LOG"):
            log.flush()
            print((tmp / "children.log").read_text()[-4000:])
        return 0 if ok else 1
    finally:
        for child in reversed(children):
            child.stop()
        for r in receivers:
            r.stop()


if __name__ == "__main__":
    sys.exit(main())
