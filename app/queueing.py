"""Redis connection and RQ queues (default, notifications, integrations).

Below services and jobs: health, the relay, jobs and the admin import it from here.
Services do not enqueue (they write outbox rows; the relay enqueues).
"""

from __future__ import annotations

from functools import lru_cache

import redis
from flask import current_app, has_app_context
from rq import Queue

QUEUE_NAMES = ("default", "notifications", "integrations")


@lru_cache(maxsize=4)
def _connection_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def redis_url() -> str:
    import os

    if has_app_context() and current_app.config.get("REDIS_URL"):
        return current_app.config["REDIS_URL"]
    url = os.environ.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set")
    return url


def redis_connection() -> redis.Redis:
    return _connection_for(redis_url())


def queue(name: str = "default") -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_connection())
