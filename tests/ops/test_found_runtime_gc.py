"""Server processes exempt their start-up heap from the garbage collector (see app.runtime_gc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
import app.wsgi
from app.jobs.worker import AppSimpleWorker
wsgi_frozen = gc.get_freeze_count()
gc.unfreeze()
from redis import Redis
import os
AppSimpleWorker(["probe"], connection=Redis.from_url(os.environ["REDIS_URL"]))
print(json.dumps({"wsgi": wsgi_frozen, "worker": gc.get_freeze_count()}))
"""


def test_wsgi_module_and_rq_worker_freeze_what_they_built(services):
    database_url, redis_url = services
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    # The Flask app, FAB and SQLAlchemy alone are well over 100,000 objects.
    assert counts["wsgi"] > 100_000
    assert counts["worker"] > 100_000


def test_frozen_objects_are_left_alone_and_new_cycles_still_collected():
    import gc
    import weakref

    from app.runtime_gc import freeze_startup_heap

    class Node:
        pass

    try:
        old = Node()
        old.self = old
        old_ref = weakref.ref(old)
        assert freeze_startup_heap() > 0
        del old
        gc.collect()
        assert old_ref() is not None  # frozen: a full collection does not free it

        new = Node()
        new.self = new
        new_ref = weakref.ref(new)
        del new
        gc.collect()
        assert new_ref() is None  # built after the freeze: collected as usual
    finally:
        gc.unfreeze()
