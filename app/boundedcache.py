"""Bounded in-process caches: every per-tenant cache of a web or worker process is one of these.

A process serving 1,000 businesses must not keep one entry per business forever. Each
cache here is an LRU with a bound on entries and, where the values can be weighed cheaply
(answer texts), on bytes too; an optional time to live drops entries that may be stale
(a tenant row read a few seconds ago). Thread-safe: gunicorn's threads share them.

Every cache registers under a name; `configure(config)` applies `CACHE_<NAME>_ENTRIES` /
`CACHE_<NAME>_BYTES` from the app's configuration, and `sizes()` reports what each holds
(the /metrics gauges and the 1,000-tenant bench read it).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable

_REGISTRY: dict[str, "BoundedCache"] = {}
_MISSING = object()


class BoundedCache:
    """An LRU of at most `max_entries` entries (and `max_bytes` by `weigh`), entries living `ttl` seconds at most."""

    def __init__(self, name: str, max_entries: int, *, max_bytes: int | None = None,
                 weigh: Callable[[Any], int] | None = None, ttl: float | None = None):
        if max_bytes is not None and weigh is None:
            raise ValueError("a byte bound needs a weigh function")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._weigh = weigh
        self._data: "OrderedDict[Hashable, tuple[float, int, Any]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        _REGISTRY[name] = self
        _apply(self, {})

    def get(self, key: Hashable, default: Any = None, max_age: float | None = None) -> Any:
        """The value under `key`, or `default`; `max_age` (seconds) overrides the cache's ttl for this look-up."""
        ttl = self.ttl if max_age is None else max_age
        with self._lock:
            hit = self._data.get(key, _MISSING)
            if hit is _MISSING:
                return default
            born, size, value = hit
            if ttl is not None and time.monotonic() - born >= ttl:
                del self._data[key]
                self._bytes -= size
                return default
            self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        size = self._weigh(value) if self._weigh is not None else 0
        if self.max_bytes is not None and size > self.max_bytes:
            return  # larger than the whole cache: not worth evicting everything for
        with self._lock:
            old = self._data.pop(key, _MISSING)
            if old is not _MISSING:
                self._bytes -= old[1]
            self._data[key] = (time.monotonic(), size, value)
            self._bytes += size
            self._shrink()

    def pop(self, key: Hashable) -> None:
        with self._lock:
            old = self._data.pop(key, _MISSING)
            if old is not _MISSING:
                self._bytes -= old[1]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def resize(self, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        with self._lock:
            if max_entries is not None:
                self.max_entries = max_entries
            if max_bytes is not None and self._weigh is not None:
                self.max_bytes = max_bytes
            self._shrink()

    def _shrink(self) -> None:
        while self._data and (
            len(self._data) > self.max_entries or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            _key, (_born, size, _value) = self._data.popitem(last=False)
            self._bytes -= size

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    @property
    def bytes(self) -> int:
        return self._bytes


def configure(config) -> None:
    """Apply `CACHE_<NAME>_ENTRIES` and `CACHE_<NAME>_BYTES` (names upper-cased) from a config mapping or the environment."""
    for cache in _REGISTRY.values():
        _apply(cache, config)


def _apply(cache: BoundedCache, config) -> None:
    import os

    prefix = f"CACHE_{cache.name.upper()}_"
    entries = config.get(prefix + "ENTRIES") or os.environ.get(prefix + "ENTRIES") or None
    size = config.get(prefix + "BYTES") or os.environ.get(prefix + "BYTES") or None
    if entries is not None or size is not None:
        cache.resize(int(entries) if entries is not None else None, int(size) if size is not None else None)


def sizes() -> dict[str, tuple[int, int, int]]:
    """name -> (entries held, entry bound, bytes held where weighed)."""
    return {name: (len(c), c.max_entries, c.bytes) for name, c in _REGISTRY.items()}


def clear_all() -> None:
    for cache in _REGISTRY.values():
        cache.clear()
