"""Long work (auditor reports, exports) queued fairly between businesses.

RQ serves a queue first in, first out: a business that asks for 50 reports would make
every other business's single report wait behind all 50. Here each business holds at
most `LONG_JOBS_PER_TENANT` jobs (default 1) in the RQ queue or running; the rest wait
in the business's own Redis list. When one of its jobs ends, the next one of that
business is put at the tail of the RQ queue, behind whatever other businesses asked for
meanwhile: businesses take turns, one job each (round robin), whatever their backlog.

Redis keys (prefix `upzento:long:`):
  pending:<tenant>  list of job specs (JSON) waiting for a turn;
  running:<tenant>  sorted set of the business's job ids in RQ, scored by the time taken;
  specs:<tenant>    hash of the running jobs' specs by job id (what to call if one is lost);
  tenants           set of businesses with waiting or running work (for the sweep).

Taking a turn is one Lua script (cap check, pop, mark running), so two processes
pumping the same business never exceed the cap. A job frees its turn when it ends
(`run`, success or failure) and pumps its business; `sweep` (cron, every minute) frees
the turns of jobs that are gone (a worker killed mid-job, Redis lost the job) and pumps
every business, so no backlog is left behind for good. A job killed with its worker never
reaches its own error handling, so its row (a report, an export) would say "running" for
ever: the sweep first lets RQ fail the started jobs whose worker stopped sending heartbeats
(StartedJobRegistry.cleanup), then calls the spec's `on_lost(tenant, *args)` for each lost
job, which marks the row failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from importlib import import_module

from flask import current_app, has_app_context

from app.queueing import queue, redis_connection

log = logging.getLogger(__name__)
PREFIX = "upzento:long:"
QUEUE = "default"
RUN_JOB = "app.fairqueue.run"
# A turn is freed by the sweep only after this long without its job in RQ, so a turn just
# taken (the job about to be enqueued) is never taken for a lost one.
LOST_AFTER_SECONDS = 60
ENDED = ("finished", "failed", "stopped", "canceled")

# KEYS: pending list, running zset, tenants set, specs hash; ARGV: cap, now, tenant.
_TAKE_TURN = """
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return false end
local spec = redis.call('LPOP', KEYS[1])
if not spec then
  if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
  return false
end
local id = cjson.decode(spec)['id']
redis.call('ZADD', KEYS[2], ARGV[2], id)
redis.call('HSET', KEYS[4], id, spec)
return spec
"""


def _keys(tenant: str) -> tuple[str, str, str, str]:
    return f"{PREFIX}pending:{tenant}", f"{PREFIX}running:{tenant}", f"{PREFIX}tenants", f"{PREFIX}specs:{tenant}"


def per_tenant_cap() -> int:
    """LONG_JOBS_PER_TENANT: how many long jobs of one business may be queued or running at once."""
    value = current_app.config.get("LONG_JOBS_PER_TENANT") if has_app_context() else None
    value = value or os.environ.get("LONG_JOBS_PER_TENANT") or 1
    return max(1, int(value))


def submit(tenant: str, func: str, *args, job_timeout: int = 1800, result_ttl: int = 3600,
           failure_ttl: int = 86400, meta: dict | None = None, on_lost: str | None = None) -> str:
    """Queue `func(tenant, *args)` (a dotted name; args JSON-serialisable) as long work of `tenant`;
    returns the RQ job id it will run under. It runs now if the business has a free turn.
    `on_lost` (a dotted name) is called as `on_lost(tenant, *args)` by the sweep if the job is
    lost before it ends (its worker killed): it settles whatever row said the work was under way."""
    job_id = f"long-{uuid.uuid4().hex}"
    spec = {"id": job_id, "func": func, "args": list(args), "timeout": job_timeout, "result_ttl": result_ttl,
            "failure_ttl": failure_ttl, "meta": {**(meta or {}), "tenant": tenant, "long_func": func},
            "on_lost": on_lost}
    pending, _running, tenants, _specs = _keys(tenant)
    with redis_connection().pipeline() as pipe:
        pipe.rpush(pending, json.dumps(spec))
        pipe.sadd(tenants, tenant)
        pipe.execute()
    pump(tenant)
    return job_id


def pump(tenant: str) -> int:
    """Move the business's waiting jobs into RQ while it has free turns; returns how many moved."""
    connection = redis_connection()
    take = connection.register_script(_TAKE_TURN)
    cap = per_tenant_cap()
    moved = 0
    while True:
        spec = take(keys=list(_keys(tenant)), args=[cap, time.time(), tenant])
        if not spec:
            return moved
        spec = json.loads(spec)
        try:
            queue(QUEUE).enqueue_call(RUN_JOB, args=(tenant, spec["func"], spec["args"]), job_id=spec["id"],
                                      timeout=spec["timeout"], result_ttl=spec["result_ttl"],
                                      failure_ttl=spec["failure_ttl"], meta=spec["meta"])
        except Exception:
            # Not in RQ: give the spec back at the head of the line and free the turn.
            pending, running, _, specs = _keys(tenant)
            with connection.pipeline() as pipe:
                pipe.lpush(pending, json.dumps(spec))
                pipe.zrem(running, spec["id"])
                pipe.hdel(specs, spec["id"])
                pipe.execute()
            raise
        moved += 1


def _end_turn(tenant: str, job_id: str) -> None:
    _pending, running, _tenants, specs = _keys(tenant)
    with redis_connection().pipeline() as pipe:
        pipe.zrem(running, job_id)
        pipe.hdel(specs, job_id)
        pipe.execute()


def run(tenant: str, func: str, args: list):
    """The RQ job: run the long work, then free the business's turn and give the next job its place."""
    from rq import get_current_job

    module, _, name = func.rpartition(".")
    try:
        return getattr(import_module(module), name)(tenant, *args)
    finally:
        job = get_current_job()
        if job is not None:
            _end_turn(tenant, job.id)
        try:
            pump(tenant)
        except Exception as exc:  # noqa: BLE001 - the sweep pumps again
            log.warning("long work of %s: cannot queue the next job (%s); the sweep will", tenant, exc)


def free_lost_turns(tenant: str, now: float | None = None) -> int:
    """Free the turns of jobs taken over LOST_AFTER_SECONDS ago that RQ no longer runs or holds,
    and settle each lost one through its spec's `on_lost`."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    connection = redis_connection()
    _pending, running, _tenants, specs = _keys(tenant)
    now = time.time() if now is None else now
    freed = 0
    for raw in connection.zrangebyscore(running, "-inf", now - LOST_AFTER_SECONDS):
        job_id = raw.decode() if isinstance(raw, bytes) else raw
        try:
            status = Job.fetch(job_id, connection=connection).get_status(refresh=True)
        except NoSuchJobError:
            status = None
        status = None if status is None else str(getattr(status, "value", status))
        if status is not None and status not in ENDED:
            continue
        if not connection.zrem(running, job_id):
            continue  # another sweep freed it first (and settles it)
        freed += 1
        spec = connection.hget(specs, job_id)
        connection.hdel(specs, job_id)
        if status != "finished" and spec:
            _settle_lost(tenant, json.loads(spec))
    return freed


def _settle_lost(tenant: str, spec: dict) -> None:
    """Call the lost job's `on_lost(tenant, *args)` (its own error handling never ran)."""
    if not spec.get("on_lost"):
        return
    module, _, name = spec["on_lost"].rpartition(".")
    try:
        getattr(import_module(module), name)(tenant, *spec["args"])
        log.warning("long work of %s: job %s (%s) was lost with its worker; settled by %s",
                    tenant, spec["id"], spec["func"], spec["on_lost"])
    except Exception:  # noqa: BLE001 - one business's row must not stop the sweep of the others
        log.exception("long work of %s: settling lost job %s failed", tenant, spec["id"])


def fail_abandoned(now: float | None = None) -> None:
    """Let RQ fail the started long jobs whose worker stopped sending heartbeats (killed, lost):
    RQ itself does this only in a worker's maintenance round, every 10 minutes."""
    from rq.registry import StartedJobRegistry

    StartedJobRegistry(QUEUE, connection=redis_connection()).cleanup(timestamp=now)


def sweep(now: float | None = None) -> int:
    """RQ/cron job: fail abandoned jobs, free (and settle) lost turns and pump every business
    with waiting work; returns jobs moved."""
    connection = redis_connection()
    fail_abandoned(now)
    moved = 0
    for raw in connection.smembers(f"{PREFIX}tenants"):
        tenant = raw.decode() if isinstance(raw, bytes) else raw
        free_lost_turns(tenant, now)
        moved += pump(tenant)
    return moved


def backlog(tenant: str) -> tuple[int, int]:
    """(waiting, queued or running) long jobs of `tenant`."""
    pending, running, _tenants, _specs = _keys(tenant)
    connection = redis_connection()
    return connection.llen(pending), connection.zcard(running)


def waiting_figures() -> tuple[int, int]:
    """(businesses with long work waiting or running, jobs waiting for a turn) over all businesses."""
    connection = redis_connection()
    tenants = [t.decode() if isinstance(t, bytes) else t for t in connection.smembers(f"{PREFIX}tenants")]
    if not tenants:
        return 0, 0
    with connection.pipeline(transaction=False) as pipe:
        for tenant in tenants:
            pipe.llen(_keys(tenant)[0])
        return len(tenants), sum(pipe.execute())
