"""Local wall-clock times to instants, by the DST rules of AVAILABILITY.md §2.4.

Instants are integer seconds since the Unix epoch (UTC). A local time that does
not exist (spring-forward gap) becomes the first instant that does; an
ambiguous one (fall-back) becomes its first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_SECOND = timedelta(seconds=1)
_ONE_DAY = timedelta(days=1)


def floor_seconds(dt: datetime) -> int:
    """Epoch seconds of an aware datetime, rounded down."""
    if dt.microsecond == 0:
        return int(dt.timestamp())
    return (dt - EPOCH) // _ONE_SECOND


def ceil_seconds(dt: datetime) -> int:
    """Epoch seconds of an aware datetime, rounded up."""
    if dt.microsecond == 0:
        return int(dt.timestamp())
    return -((EPOCH - dt) // _ONE_SECOND)


def from_seconds(u: int) -> datetime:
    """The UTC datetime of epoch seconds."""
    return EPOCH + timedelta(seconds=u)


def _wall(u: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(u, tz).replace(tzinfo=None)


def resolve(tz: ZoneInfo, day: date, minute: int) -> int:
    """Epoch seconds of local `minute` (0..1440) on `day` in `tz`."""
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    local = (naive.toordinal() - _EPOCH_ORDINAL) * 86400 + naive.hour * 3600 + naive.minute * 60
    # fold=0 picks the first occurrence of an ambiguous time, which is the rule.
    guess = local - int(tz.utcoffset(naive).total_seconds())
    if _wall(guess, tz) == naive:
        return guess
    # In a gap, fold=0 applies the pre-transition offset and lands after the
    # transition; fold=1 lands before it. The transition instant, the first one
    # that exists, lies between the two, and wall time is monotonic there.
    lo = local - int(tz.utcoffset(naive.replace(fold=1)).total_seconds())
    hi = guess
    if lo > hi:
        lo, hi = hi, lo
    if _wall(lo, tz) >= naive:  # defensive: zoneinfo data we did not foresee
        lo -= 86400
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall(mid, tz) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


class LocalClock:
    """Cached local-to-instant conversion for one IANA zone."""

    __slots__ = ("name", "tz", "_days", "_points", "_offsets")

    def __init__(self, name: str) -> None:
        self.name = name
        self.tz = ZoneInfo(name)
        self._days: dict[date, tuple[int, bool]] = {}
        self._points: dict[tuple[date, int], int] = {}
        self._offsets: dict[date, int] = {}

    def _midnight_offset(self, d: date) -> int:
        off = self._offsets.get(d)
        if off is None:
            off = int(self.tz.utcoffset(datetime(d.year, d.month, d.day)).total_seconds())
            self._offsets[d] = off
        return off

    def day(self, d: date) -> tuple[int, bool]:
        """(instant of local midnight, whether the day is a plain 24 h with no transition)."""
        info = self._days.get(d)
        if info is None:
            off = self._midnight_offset(d)
            if off == self._midnight_offset(d + _ONE_DAY):
                # Same offset at both midnights: no transition in between (no
                # zone changes twice in a day), so midnight exists and is unique.
                info = ((d.toordinal() - _EPOCH_ORDINAL) * 86400 - off, True)
            else:
                u0 = resolve(self.tz, d, 0)
                u1 = resolve(self.tz, d + _ONE_DAY, 0)
                info = (u0, u1 - u0 == 86400)
            self._days[d] = info
        return info

    def at(self, d: date, minute: int) -> int:
        """Instant of local `minute` on `d`."""
        u0, plain = self.day(d)
        if plain:
            return u0 + 60 * minute
        key = (d, minute)
        u = self._points.get(key)
        if u is None:
            u = self._points[key] = resolve(self.tz, d, minute)
        return u

    def local_date(self, u: int) -> date:
        """The local date an instant falls on."""
        return datetime.fromtimestamp(u, self.tz).date()


def notice_bounds(now: datetime, min_notice_min: int, max_advance_days: int) -> tuple[int, int]:
    """Closed range [lo, hi] of whole-second starts allowed by §5.4."""
    lo = ceil_seconds(now + timedelta(minutes=min_notice_min))
    hi = floor_seconds(now + timedelta(days=max_advance_days))
    return lo, hi


__all__ = [
    "UTC",
    "EPOCH",
    "LocalClock",
    "ceil_seconds",
    "floor_seconds",
    "from_seconds",
    "notice_bounds",
    "resolve",
]
