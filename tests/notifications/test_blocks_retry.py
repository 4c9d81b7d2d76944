import random

import pytest

from app.notifications.retry import backoff_ceiling, backoff_delays, backoff_schedule, retry_delay


def test_ceiling_doubles_until_the_cap():
    assert [backoff_ceiling(n, base=10, cap=100) for n in range(1, 6)] == [10, 20, 40, 80, 100]


def test_delays_stay_within_zero_and_the_ceiling():
    rng = random.Random(7)
    for attempt in range(1, 12):
        for _ in range(50):
            assert 0 <= backoff_delays(attempt, base=5, cap=300, rng=rng) <= backoff_ceiling(attempt, 5, 300)


def test_same_seed_gives_same_delays():
    assert backoff_schedule(5, rng=random.Random(1)) == backoff_schedule(5, rng=random.Random(1))


def test_jitter_spreads_delays():
    rng = random.Random(3)
    assert len({round(backoff_delays(4, rng=rng), 6) for _ in range(20)}) > 15


def test_huge_attempt_numbers_do_not_overflow():
    assert backoff_ceiling(10_000, base=1, cap=60) == 60


def test_attempts_start_at_one():
    with pytest.raises(ValueError):
        backoff_delays(0)


def test_retry_after_from_the_server_wins_even_over_the_cap():
    assert retry_delay(1, retry_after=7200, base=1, cap=60, rng=random.Random(0)) == 7200
    assert retry_delay(1, retry_after=None, base=1, cap=60, rng=random.Random(0)) <= 1
