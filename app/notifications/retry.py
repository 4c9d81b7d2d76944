"""Retry delays for notification delivery.

Full jitter (delay drawn uniformly from ``[0, min(cap, base * 2**(attempt-1))]``)
spreads retries of many jobs that failed together (an SMTP relay that was down
for a minute) instead of sending them back as one wave.
"""

from __future__ import annotations

import random
from typing import Protocol

DEFAULT_BASE = 30.0
DEFAULT_CAP = 3600.0

# 2.0 ** 1024 overflows a float; past 2**62 the cap wins anyway.
_MAX_EXPONENT = 62


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def backoff_ceiling(attempt: int, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP) -> float:
    """Upper bound of the delay before retry number ``attempt`` (1 = first retry)."""
    if attempt < 1:
        raise ValueError(f"attempt starts at 1, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    return min(cap, base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))


def backoff_delays(
    attempt: int,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: _Uniform | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry), with full jitter.

    Pure when ``rng`` is given (any object with ``uniform(a, b)``, e.g. ``random.Random(seed)``).
    """
    ceiling = backoff_ceiling(attempt, base, cap)
    return (rng or random).uniform(0.0, ceiling)


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: _Uniform | None = None,
) -> float:
    """Delay before retry ``attempt``, never sooner than a server's ``Retry-After``.

    A server-given wait is honoured even beyond ``cap``: retrying earlier only earns
    another 429 and burns an attempt.
    """
    delay = backoff_delays(attempt, base, cap, rng)
    if retry_after is not None and retry_after > delay:
        return float(retry_after)
    return delay


def backoff_schedule(
    retries: int,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: _Uniform | None = None,
) -> list[float]:
    """Jittered delays for retries 1..``retries``, e.g. for RQ's ``Retry(interval=[...])``.

    RQ fixes the intervals at enqueue time, so each job draws its own list.
    """
    return [backoff_delays(n, base, cap, rng) for n in range(1, retries + 1)]
