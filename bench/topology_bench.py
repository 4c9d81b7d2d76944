"""The production topology under load: one web node against HAProxy + two nodes, and a failover.

    python bench/topology_bench.py [--seconds 15] [--clients 8]

Starts ops/topology.py (PostgreSQL primary + synchronous replica, PgBouncer in transaction
mode, Redis, 2 gunicorn nodes of 1 worker x 4 threads, HAProxy, 1 RQ worker, the relay) and
measures, in the same run:
- bookings/s and p95 (distinct slots, Idempotency-Key on each) and availability requests/s
  and p95 (one day, one service, 6 staff): against one node directly, then through HAProxy
  over both nodes; the ratio is the second over the first;
- failover: bookings running, the primary stopped (pg_ctl -m fast) and the replica promoted;
  seconds from the stop to the first booking answered 201, and bookings lost (must be 0).
The load generator runs in this process (Python threads) on the same machine as every
server: on a small machine it competes with them for the CPU, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ops.loadcheck import BookingLoad, check_no_loss, recovery_seconds, slots, summary  # noqa: E402
from ops.topology import TENANT, Topology  # noqa: E402


def bookings(base_url: str, seconds: float, clients: int, days_ahead: int) -> dict:
    load = BookingLoad(base_url, clients=clients, retry_for=5, days_ahead=days_ahead).start()
    time.sleep(seconds)
    attempts = load.stop()
    figures = summary(attempts)
    figures["per_s"] = round(figures["acknowledged"] / seconds, 1)
    return figures


def availability(base_url: str, seconds: float, clients: int) -> dict:
    days = sorted({start[:10] for _, start in (next(iter(slots(d))) for d in range(3, 33))})
    latencies: list[float] = []
    errors = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client():
        with requests.Session() as session:
            while not stop.is_set():
                day = random.choice(days)
                began = time.perf_counter()
                try:
                    response = session.get(f"{base_url}/api/v1/public/{TENANT}/availability", timeout=15,
                                           params={"service": "visit", "from": day, "to": day, "timezone": "UTC"})
                    ok = response.status_code == 200
                except requests.RequestException:
                    ok = False
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - began)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(20)
    latencies.sort()
    return {"requests": len(latencies), "errors": errors[0], "per_s": round(len(latencies) / seconds, 1),
            "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1) if latencies else None}


def failover(topo: Topology, clients: int) -> dict:
    load = BookingLoad(topo.url, clients=clients, retry_for=40, days_ahead=200).start()
    time.sleep(5)
    began = time.monotonic()
    promoted_in = topo.failover("fast")
    time.sleep(10)
    attempts = load.stop()
    report = check_no_loss(topo.pg_primary.url, attempts)
    return {"promote_s": round(promoted_in, 2),
            "first_booking_after_stop_s": recovery_seconds(attempts, began),
            "failed_tries_retried": summary(attempts)["failed_tries"],
            "attempted": report["attempted"], "acknowledged": report["acknowledged"], "found": report["found"],
            "duplicated": report["duplicated"], "lost": len(report["lost"]), "double_booked": report["double_booked"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    results: dict = {}
    with Topology(web_nodes=2, workers=1, replica=True, sentinel=False) as topo:
        availability(topo.url, 3, 2)  # warm both nodes' caches and pools
        results["one node: bookings"] = bookings(topo.web_url(0), args.seconds, args.clients, 60)
        results["HAProxy + 2 nodes: bookings"] = bookings(topo.url, args.seconds, args.clients, 100)
        results["one node: availability"] = availability(topo.web_url(0), args.seconds, args.clients)
        results["HAProxy + 2 nodes: availability"] = availability(topo.url, args.seconds, args.clients)
        results["failover (pg_ctl stop -m fast, promote)"] = failover(topo, 4)
    one, two = results["one node: bookings"], results["HAProxy + 2 nodes: bookings"]
    a1, a2 = results["one node: availability"], results["HAProxy + 2 nodes: availability"]
    results["ratio 2 nodes / 1 node"] = {
        "bookings_per_s": round(two["per_s"] / one["per_s"], 2) if one["per_s"] else None,
        "availability_per_s": round(a2["per_s"] / a1["per_s"], 2) if a1["per_s"] else None}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
