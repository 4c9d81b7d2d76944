"""Every in-process cache is bounded: a process that serves many businesses keeps a fixed number of entries.

The bounds are lowered here so that ten businesses overflow them; the 1,000-tenant
bench (bench/tenants_bench.py) measures the resident memory at the default bounds.
"""

from __future__ import annotations

import time

import pytest

from app import boundedcache
from app.boundedcache import BoundedCache

ARGS = {"service": "visit", "from": "2027-01-11", "to": "2027-01-15", "timezone": "Europe/Berlin"}


def test_entries_bytes_and_age_are_bounded():
    cache = BoundedCache("test_unit", 3, max_bytes=100, weigh=len)
    for i in range(10):
        cache.put(i, "x" * 10)
    assert len(cache) == 3 and [k for k in range(10) if k in cache] == [7, 8, 9]
    cache.get(7)  # used: now the most recent
    cache.put(10, "y" * 10)
    assert 8 not in cache and 7 in cache
    cache.put("big", "z" * 90)  # 90 + 10 + 10 + 10 > 100: the oldest go until it fits
    assert cache.bytes == 100 and "big" in cache and 7 in cache and len(cache) == 2
    cache.put("huge", "z" * 101)  # larger than the whole cache: not kept, nothing evicted for it
    assert "huge" not in cache and "big" in cache
    aging = BoundedCache("test_ttl", 10, ttl=0.05)
    aging.put("k", 1)
    assert aging.get("k") == 1
    time.sleep(0.06)
    assert aging.get("k") is None and len(aging) == 0


def test_bounds_come_from_configuration(monkeypatch):
    cache = BoundedCache("test_configured", 100)
    boundedcache.configure({"CACHE_TEST_CONFIGURED_ENTRIES": 7})
    assert cache.max_entries == 7
    monkeypatch.setenv("CACHE_TEST_FROM_ENV_ENTRIES", "5")
    assert BoundedCache("test_from_env", 100).max_entries == 5


def test_every_module_level_cache_is_registered_with_a_bound(app):
    import app.jobs.relay  # noqa: F401  (worker-side caches: imported by the worker, not the web app)
    import app.jobs.runtime  # noqa: F401
    import app.meetings.base  # noqa: F401

    held = boundedcache.sizes()
    for name in ("rules", "answers", "recent_tenants", "job_tenants", "relay_slugs", "oauth_tokens", "outbox_figures"):
        assert name in held, name
        assert held[name][1] > 0


@pytest.fixture()
def small_bounds():
    saved = {name: (c.max_entries, c.max_bytes) for name, c in boundedcache._REGISTRY.items()}
    boundedcache.clear_all()
    bounds = {"rules": 4, "answers": 3, "recent_tenants": 3}
    for name, entries in bounds.items():
        boundedcache._REGISTRY[name].resize(max_entries=entries)
    yield bounds
    for name, (entries, size) in saved.items():
        boundedcache._REGISTRY[name].resize(entries, size)


def test_many_businesses_keep_the_caches_at_their_bounds(app, client, make_tenant, pinned_now, small_bounds):
    import tracemalloc

    pinned_now("2027-01-01T00:00:00Z")
    slugs = [make_tenant() for _ in range(10)]
    first_answers = {}
    tracemalloc.start()
    try:
        for round_ in range(2):
            for slug in slugs:
                services = client.get(f"/api/v1/public/{slug}/services")
                slots = client.get(f"/api/v1/public/{slug}/availability", query_string=ARGS)
                assert services.status_code == 200 and slots.status_code == 200
                # Evicted and loaded again: the same answer.
                assert first_answers.setdefault(slug, slots.get_json()) == slots.get_json()
                for name, bound in small_bounds.items():
                    assert len(boundedcache._REGISTRY[name]) <= bound, name
            if round_ == 0:
                after_first, _peak = tracemalloc.get_traced_memory()
        after_second, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A second pass over the same 10 businesses (every one evicted and loaded again) leaves
    # what the first left: nothing accumulates per business beyond the bounds.
    assert after_second - after_first < 512 * 1024, (after_first, after_second)
