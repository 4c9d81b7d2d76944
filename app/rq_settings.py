"""Settings module for the RQ command line: `rq worker -c app.rq_settings -w app.jobs.worker.AppWorker ...`.

It reads the same environment as the app (app.queueing): REDIS_SENTINELS + REDIS_SENTINEL_MASTER
when set (the worker then follows the Sentinel-elected master), else REDIS_URL.
"""

from __future__ import annotations

import os

from app.queueing import CONNECT_TIMEOUT, SOCKET_TIMEOUT, parse_sentinels

_sentinels = os.environ.get("REDIS_SENTINELS")
if _sentinels:
    REDIS_URL = None
    SENTINEL = {
        "INSTANCES": parse_sentinels(_sentinels),
        "MASTER_NAME": os.environ.get("REDIS_SENTINEL_MASTER") or "upzento",
        "SOCKET_TIMEOUT": SOCKET_TIMEOUT,
        "CONNECTION_KWARGS": {"socket_connect_timeout": CONNECT_TIMEOUT},
        "SENTINEL_KWARGS": {"socket_timeout": CONNECT_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT},
    }
else:
    REDIS_URL = os.environ.get("REDIS_URL")
QUEUES = ["notifications", "integrations", "default"]
