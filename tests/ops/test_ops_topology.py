"""The production topology on real parts (ops/topology.py): PostgreSQL primary + synchronous
streaming replica (+ spare), PgBouncer in transaction mode, Redis + Sentinel, gunicorn nodes
behind HAProxy, RQ workers and the outbox relay, all from Debian's packages on loopback ports.

The light test (always on, ~30 s) books through HAProxy -> one node -> PgBouncer. The heavy
ones (failovers under load, node loss, Sentinel) take minutes: UPZENTO_TOPOLOGY_TESTS=1 runs them.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.topology

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
MISSING = [name for name in ("pgbouncer", "haproxy", "redis-sentinel") if shutil.which(name) is None]
if not (PG_BIN / "pg_basebackup").exists():
    MISSING.append(str(PG_BIN / "pg_basebackup"))
needs_parts = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (see .ci/run)")
heavy = pytest.mark.skipif(os.environ.get("UPZENTO_TOPOLOGY_TESTS") != "1",
                           reason="failover/load tests take minutes: set UPZENTO_TOPOLOGY_TESTS=1")


def _availability(base: str, day: str) -> list[tuple[str, str]]:
    response = requests.get(f"{base}/api/v1/public/topo/availability",
                            params={"service": "visit", "from": day, "to": day, "timezone": "UTC"}, timeout=10)
    assert response.status_code == 200, response.text
    return [(s["start"], staff) for s in response.json()["slots"] for staff in s.get("staff", [None])]


def _slot_starts(base: str, day: str) -> set[str]:
    return {start for start, _ in _availability(base, day)}


# ---------------------------------------------------------------------------- light, always on

@needs_parts
def test_bookings_through_haproxy_one_node_and_pgbouncer_in_transaction_mode():
    from ops.loadcheck import BookingLoad, check_no_loss, summary
    from ops.topology import Topology

    with Topology(web_nodes=1, workers=0, replica=False, spare=False, sentinel=False, relay=False) as topo:
        assert requests.get(topo.url + "/health/ready", timeout=5).json()["status"] == "ok"
        # Three clients for a few seconds: psycopg would prepare the booking statements after
        # five runs, and PgBouncer hands each transaction to any server connection.
        load = BookingLoad(topo.url, clients=3, retry_for=5).start()
        time.sleep(4)
        attempts = load.stop()
        report = check_no_loss(topo.pg_primary.url, attempts)
        print(summary(attempts), report)
        assert report["acknowledged"] >= 20 and report["acknowledged"] == report["attempted"]
        assert report["found"] == report["acknowledged"]
        assert report["lost"] == [] and report["duplicated"] == 0 and report["double_booked"] == 0
        pools = topo.bouncer._admin("SHOW STATS")
        upzento = [row for row in pools if row[0] == "upzento"]
        assert upzento and upzento[0][1] >= report["acknowledged"]  # total_xact_count: it went through the pooler

        # A retry with the same key answers the original booking and writes nothing.
        first = attempts[0]
        body = {"service": "visit", "staff": first.staff, "start": first.start, "timezone": "UTC",
                "customer": {"name": f"Load {first.key[:12]}", "email": f"{first.key}@load.test"}}
        replay = requests.post(f"{topo.url}/api/v1/public/topo/bookings", json=body,
                               headers={"Idempotency-Key": first.key}, timeout=10)
        assert replay.status_code == 201 and replay.json()["appointment"]["id"] == first.appointment_id
        assert check_no_loss(topo.pg_primary.url, attempts)["duplicated"] == 0
        # The booked slot is gone from the answer that came through the same path.
        day = first.start[:10]
        taken = {(a.start, a.staff) for a in attempts if a.start.startswith(day)}
        offered = set(_availability(topo.url, day))
        assert not taken & offered


# ---------------------------------------------------------------------------- heavy

@pytest.fixture(scope="module")
def full():
    """2 web nodes, primary + sync replica + spare, Sentinel, 2 workers, relay, an SMTP sink."""
    from fakes.smtp_sink import SmtpSink
    from ops.topology import Topology

    with SmtpSink() as smtp:
        topo = Topology(web_nodes=2, workers=2, replica=True, spare=True, sentinel=True,
                        extra_env={"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "MAIL_FROM": "b@upzento.test",
                                   "OUTBOX_REQUEUE_SECONDS": "8"})
        with topo:
            topo.smtp = smtp
            yield topo


def _mails_to(smtp, addresses: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in smtp.messages:
        for rcpt in message.rcpt_tos:
            if rcpt in addresses:
                counts[rcpt] = counts.get(rcpt, 0) + 1
    return counts


@needs_parts
@heavy
def test_rule_edit_is_honoured_by_every_node_at_once(full):
    from ops.loadcheck import slots

    day = next(slots(days_ahead=20))[1][:10]
    before = [set(_availability(full.web_url(i), day)) for i in range(2)]
    assert before[0] == before[1] and any(staff == "s5" for _, staff in before[0])
    # An admin edit (s5 stops working): committed on the primary, applied on the replica before the commit returns.
    full.pg_primary.sql('DELETE FROM "tenant_topo".staff_hours WHERE staff_id = '
                        '(SELECT id FROM "tenant_topo".staff WHERE key = \'s5\')')
    try:
        after = [set(_availability(full.web_url(i), day)) for i in (1, 0)]
        assert all(not any(staff == "s5" for _, staff in answer) for answer in after)
    finally:
        full.pg_primary.sql(
            'INSERT INTO "tenant_topo".staff_hours (staff_id, location_id, weekday, start_min, end_min) '
            'SELECT s.id, l.id, d, 0, 1439 FROM "tenant_topo".staff s, "tenant_topo".location l, '
            'generate_series(0, 6) d WHERE s.key = \'s5\'')


@needs_parts
@heavy
def test_availability_is_read_from_the_replica(full):
    from ops.loadcheck import BookingLoad, check_no_loss

    replica = full.pg_replica
    load = BookingLoad(full.url, clients=2, retry_for=10, days_ahead=25).start()
    time.sleep(2)
    attempts = load.stop()
    day = attempts[0].start[:10]
    for _ in range(10):
        _availability(full.url, day)
    # The nodes' replica connections last ran the availability queries (bookings and busy times).
    readers = replica.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'upzento' "
                          "AND backend_type = 'client backend' AND query ILIKE '%%appointment%%'")[0][0]
    assert readers >= 1
    # remote_apply: what was acknowledged is already visible there.
    taken = {(a.start, a.staff) for a in attempts if a.start.startswith(day) and a.status == 201}
    assert taken and not taken & set(_availability(full.url, day))
    assert check_no_loss(full.pg_primary.url, attempts)["lost"] == []


@needs_parts
@heavy
def test_redis_sentinel_failover_during_a_burst_delivers_every_confirmation_once(full):
    from ops.loadcheck import BookingLoad, check_no_loss

    load = BookingLoad(full.url, clients=3, retry_for=20, days_ahead=30).start()
    time.sleep(3)
    elected_in = full.redis_failover(kill=True)
    time.sleep(3)
    attempts = load.stop()
    report = check_no_loss(full.pg_primary.url, attempts)
    assert report["lost"] == [] and report["duplicated"] == 0
    emails = {f"{a.key}@load.test" for a in attempts if a.status == 201}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_mails_to(full.smtp, emails)) < len(emails):
        time.sleep(1)
    counts = _mails_to(full.smtp, emails)
    print(f"sentinel elected a new master in {elected_in:.1f}s; {len(emails)} bookings, "
          f"{len(counts)} confirmed, max per customer {max(counts.values(), default=0)}; restarts {full.restarts}")
    assert set(counts) == emails
    time.sleep(2)
    assert set(_mails_to(full.smtp, emails).values()) == {1}


def _failover_under_load(full, mode: str, days_ahead: int) -> dict:
    from ops.loadcheck import BookingLoad, check_no_loss, recovery_seconds, summary

    load = BookingLoad(full.url, clients=4, retry_for=40, days_ahead=days_ahead).start()
    time.sleep(4)
    began = time.monotonic()
    full.failover(mode)
    time.sleep(8)
    attempts = load.stop()
    report = check_no_loss(full.pg_primary.url, attempts)
    report["first_booking_after_s"] = recovery_seconds(attempts, began)
    print(mode, summary(attempts), report)
    return report


@needs_parts
@heavy
def test_primary_stopped_fast_then_promoted_loses_no_acknowledged_booking(full):
    report = _failover_under_load(full, "fast", days_ahead=35)
    assert report["lost"] == [] and report["duplicated"] == 0 and report["double_booked"] == 0
    assert report["unknown"] == []
    assert report["first_booking_after_s"] is not None and report["first_booking_after_s"] < 10


@needs_parts
@heavy
def test_primary_stopped_immediately_then_promoted_loses_no_acknowledged_booking(full):
    if full.pg_replica is None:
        pytest.fail("the spare did not become the new primary's synchronous standby")
    report = _failover_under_load(full, "immediate", days_ahead=40)
    assert report["lost"] == [] and report["duplicated"] == 0 and report["double_booked"] == 0
    assert report["first_booking_after_s"] is not None and report["first_booking_after_s"] < 10


@needs_parts
@heavy
def test_web_node_killed_under_load_is_routed_around(full):
    from ops.loadcheck import BookingLoad, check_no_loss, summary

    load = BookingLoad(full.url, clients=4, retry_for=10, days_ahead=45).start()
    time.sleep(3)
    full.kill_web(1)
    time.sleep(6)
    attempts = load.stop()
    failed_tries = [e for a in attempts for e in a.errors]
    print(summary(attempts), failed_tries)
    # Only requests in flight on the killed node fail (at most one per client); the rest go to web-0,
    # and the clients' retries (same Idempotency-Key) are answered.
    assert len(failed_tries) <= load.clients
    assert all(a.status == 201 for a in attempts)
    assert sum(1 for a in attempts if a.status == 201) > 20
    report = check_no_loss(full.pg_primary.url, attempts)
    assert report["lost"] == [] and report["duplicated"] == 0
