"""Redis connection and RQ queues (default, notifications, integrations).

Below services and jobs: health, the relay, jobs and the admin import it from here.
Services do not enqueue (they write outbox rows; the relay enqueues).

With REDIS_SENTINELS set ("host:port,host:port") the connection is the current master
of REDIS_SENTINEL_MASTER as the sentinels name it: after a failover the next command
that fails on the old master asks the sentinels again and goes to the new one.
Otherwise REDIS_URL names the one server.
"""

from __future__ import annotations

import os
from functools import lru_cache

import redis
from flask import current_app, has_app_context
from rq import Queue

QUEUE_NAMES = ("default", "notifications", "integrations")
CONNECT_TIMEOUT = 2
SOCKET_TIMEOUT = 5


@lru_cache(maxsize=4)
def _connection_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """"h1:26379,h2:26380" -> [("h1", 26379), ("h2", 26380)]."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entry {item!r} is not host:port")
        out.append((host, int(port)))
    if not out:
        raise ValueError("REDIS_SENTINELS names no sentinel")
    return out


@lru_cache(maxsize=4)
def _sentinel_master(sentinels: str, master: str) -> redis.Redis:
    from redis.sentinel import Sentinel

    sentinel = Sentinel(parse_sentinels(sentinels), socket_timeout=CONNECT_TIMEOUT,
                        sentinel_kwargs={"socket_timeout": CONNECT_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT})
    return sentinel.master_for(master, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)


def _setting(name: str) -> str | None:
    if has_app_context() and current_app.config.get(name):
        return current_app.config[name]
    return os.environ.get(name) or None


def sentinel_settings() -> tuple[str, str] | None:
    """(REDIS_SENTINELS, REDIS_SENTINEL_MASTER) when Sentinel is configured, else None."""
    sentinels = _setting("REDIS_SENTINELS")
    if not sentinels:
        return None
    return sentinels, _setting("REDIS_SENTINEL_MASTER") or "upzento"


def redis_url() -> str:
    url = _setting("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set")
    return url


def redis_connection() -> redis.Redis:
    sentinel = sentinel_settings()
    if sentinel is not None:
        return _sentinel_master(*sentinel)
    return _connection_for(redis_url())


def queue(name: str = "default") -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_connection())
