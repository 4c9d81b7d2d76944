"""Analytics of one business, and of an agency's businesses: figures from SQL, never from ORM rows.

Every figure is one aggregate statement over `appointment.start_at` ranges, grouped in
the business's local time. Bookings, cancellations, no-shows and revenue (with no filter
or one) read the daily rollup of migration t0014day instead, plus the rows of the day
containing `now` (see `_bucketed`). Dates are local dates of the business's time zone,
both ends included; an appointment belongs to the period its start falls in.

Definitions (README "Analytics"):
- bookings: appointments starting in the period, any status (cancelled ones too);
- cancellation rate: cancelled / bookings;
- no-show rate: no-shows / appointments not cancelled that have started by `now`;
- revenue: price x seats; booked = not cancelled, realised = completed, lost =
  no-show or cancelled; grouped by currency, never summed across currencies;
- utilisation: booked minutes (a group session counted once) / available minutes
  from the engine (working hours minus breaks and time off, app/scheduling/capacity.py);
- lead time: start minus the moment the booking was made.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, replace
from functools import lru_cache
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.boundedcache import BoundedCache
from app.errors import UnknownKey, ValidationError
from app.models import tenant as m
from app.models.public import Tenant
from app.scheduling.capacity import available_seconds

INTERVALS = ("day", "week", "month")
METRICS = ("bookings", "cancellations", "no_shows", "revenue", "utilisation", "lead_time", "sources")
MAX_DAYS = 3 * 366 + 1
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Range:
    """What a figure is asked for: local dates (both included), bucket size and filters (keys)."""

    date_from: dt.date
    date_to: dt.date
    interval: str = "day"
    location: str | None = None
    staff: str | None = None
    service: str | None = None
    # The viewer's restriction (a Staff log-in sees only their own figures); not a filter the caller picks.
    only_staff_id: int | None = None

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def previous(self) -> "Range":
        """The period of the same length just before this one (the comparison)."""
        return replace(self, date_from=self.date_from - dt.timedelta(days=self.days), date_to=self.date_from - dt.timedelta(days=1))


def parse_range(args, today: dt.date) -> Range:
    """A Range from query arguments `from`, `to`, `interval`, `location`, `staff`, `service` (default: last 30 days)."""

    def day(name: str, default: dt.date) -> dt.date:
        raw = (args.get(name) or "").strip()
        if not raw:
            return default
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise ValidationError(f"{name} must be a date (YYYY-MM-DD)", name) from None

    date_to = day("to", today)
    date_from = day("from", date_to - dt.timedelta(days=29))
    if date_to < date_from:
        raise ValidationError("to must not be before from", "to")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise ValidationError(f"a range is at most {MAX_DAYS} days", "to", code="range_too_long")
    interval = (args.get("interval") or "day").strip()
    if interval not in INTERVALS:
        raise ValidationError("interval is day, week or month", "interval")
    return Range(
        date_from, date_to, interval,
        location=(args.get("location") or None), staff=(args.get("staff") or None), service=(args.get("service") or None),
    )


def local_bounds(date_from: dt.date, date_to: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of date_from, local midnight after date_to) as UTC instants (DST-correct)."""
    zone = ZoneInfo(tz)
    lo = dt.datetime.combine(date_from, dt.time(), zone).astimezone(UTC)
    hi = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)
    return lo, hi


def _key_id(session: Session, model, key: str | None, field: str) -> int | None:
    if key is None:
        return None
    found = session.scalar(select(model.id).where(model.key == key))
    if found is None:
        raise UnknownKey(f"unknown {field} {key!r}", field)
    return found


@dataclass(frozen=True)
class _Where:
    sql: str
    params: dict


def _where(session: Session, tz: str, r: Range, with_previous: bool = False) -> _Where:
    """The range's SQL condition and parameters; `with_previous` starts it at the previous period."""
    lo, hi = local_bounds(r.date_from, r.date_to, tz)
    if with_previous:
        lo = local_bounds(r.previous().date_from, r.date_to, tz)[0]
    parts = ["a.start_at >= :lo", "a.start_at < :hi"]
    params: dict = {"lo": lo, "hi": hi, "tz": tz}
    for name, model in (("location", m.Location), ("staff", m.Staff), ("service", m.Service)):
        ident = _key_id(session, model, getattr(r, name), name)
        if ident is not None:
            parts.append(f"a.{name}_id = :{name}_id")
            params[f"{name}_id"] = ident
    if r.only_staff_id is not None:
        parts.append("a.staff_id = :only_staff_id")
        params["only_staff_id"] = r.only_staff_id
    return _Where(" AND ".join(parts), params)


@lru_cache(maxsize=256)
def periods(r: Range) -> tuple[dt.date, ...]:
    """The first local date of every bucket that meets the range (weeks start on Monday); a figure
    asks three times (bounds, series, revenue), a dashboard the same ranges again and again."""
    if r.interval == "day":
        first = r.date_from
    elif r.interval == "week":
        first = r.date_from - dt.timedelta(days=r.date_from.weekday())
    else:
        first = r.date_from.replace(day=1)
    out = []
    d = first
    while d <= r.date_to:
        out.append(d)
        if r.interval == "day":
            d += dt.timedelta(days=1)
        elif r.interval == "week":
            d += dt.timedelta(days=7)
        else:
            d = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return tuple(out)


def _bucket_bounds(r: Range, tz: str) -> list[dt.datetime]:
    """Thresholds for `width_bucket(start_at, bounds)` over the previous period and this one.

    Bucket 1 is the previous period, bucket k >= 2 the k-2th of `periods(r)`. The bounds are
    local midnights as UTC instants (DST-correct, like local_bounds), so PostgreSQL compares
    instants instead of converting every row to local time.
    """
    zone = ZoneInfo(tz)
    starts = periods(r)[1:]
    return [local_bounds(r.previous().date_from, r.date_to, tz)[0], local_bounds(r.date_from, r.date_to, tz)[0],
            *(dt.datetime.combine(p, dt.time(), zone).astimezone(UTC) for p in starts)]


def _money(value) -> str:
    return str((decimal.Decimal(value or 0)).quantize(decimal.Decimal("0.01")))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _trend(current: int | float, previous: int | float) -> float | None:
    """Change against the previous period as a fraction (0.25 = +25 %); None when the previous was 0."""
    return round((current - previous) / previous, 4) if previous else None


def _head(tenant, r: Range, metric: str) -> dict:
    return {
        "metric": metric, "tenant": tenant.slug, "timezone": tenant.timezone,
        "from": r.date_from.isoformat(), "to": r.date_to.isoformat(), "interval": r.interval,
        "filters": {k: v for k, v in (("location", r.location), ("staff", r.staff), ("service", r.service)) if v},
    }


_BUCKETED = """
SELECT width_bucket(a.start_at, CAST(:bounds AS timestamptz[])) AS bucket,
       count(*) AS bookings,
       count(*) FILTER (WHERE a.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE a.status = 'no_show') AS no_show,
       count(*) FILTER (WHERE a.status = 'completed') AS completed,
       count(*) FILTER (WHERE a.status <> 'cancelled' AND a.start_at <= :now) AS started
FROM appointment a WHERE {where} GROUP BY 1
"""
_MONEY = ("booked", "realised", "lost_no_show", "lost_cancelled")

_ZERO = {"bookings": 0, "cancelled": 0, "no_show": 0, "completed": 0, "started": 0}


# With money: one price × seats product per row (not one per FILTERed sum), grouped by status and
# "has started"; `_fold_money` adds the groups up into the same rows as _BUCKETED's.
_BUCKETED_MONEY = """
SELECT width_bucket(a.start_at, CAST(:bounds AS timestamptz[])) AS bucket,
       coalesce(a.currency, :currency) AS currency, a.status, a.start_at <= :now AS began,
       count(*) AS n, sum(coalesce(a.price, 0) * a.seats) AS amount
FROM appointment a WHERE {where} GROUP BY 1, 2, 3, 4
"""
_MONEY_OF_STATUS = {"completed": "realised", "no_show": "lost_no_show", "cancelled": "lost_cancelled"}


def _fold_money(groups) -> list[SimpleNamespace]:
    rows: dict[tuple, SimpleNamespace] = {}
    for g in groups:
        row = rows.get((g.bucket, g.currency))
        if row is None:
            row = rows[(g.bucket, g.currency)] = SimpleNamespace(bucket=g.bucket, currency=g.currency, **_ZERO,
                                                                 **{k: decimal.Decimal(0) for k in _MONEY})
        row.bookings += g.n
        if g.status in ("cancelled", "no_show", "completed"):
            setattr(row, g.status, getattr(row, g.status) + g.n)
        if g.status != "cancelled":
            row.booked += g.amount or 0
            if g.began:
                row.started += g.n
        if g.status in _MONEY_OF_STATUS:
            name = _MONEY_OF_STATUS[g.status]
            setattr(row, name, getattr(row, name) + (g.amount or 0))
    return [rows[k] for k in sorted(rows)]


# The daily rollup (tenant migration t0014day): a figure with no filter or one of location, staff
# and service reads `appointment_day` (+ its not yet compacted delta) instead of every row, and
# the rows of the one local day containing `now` (whether they have "started" depends on the
# time of day). Both in one statement, so the answer is the raw one at that statement's snapshot.
# The rollup counts days in the zone `appointment_day_zone` holds; while that is not the
# business's (a zone change not rebuilt yet), the statement reads every row instead.
ROLLUP = True  # tests turn it off to compare the rollup's answers with the raw ones

_ZONE = "(SELECT timezone FROM appointment_day_zone)"

_GROUPS_FROM_ROLLUP = f"""
    SELECT width_bucket(d.day, CAST(:days AS date[])) AS bucket, d.currency, d.status, d.day < :today AS began,
           d.n, d.amount
    FROM (
        SELECT day, status, currency, n, amount FROM appointment_day
        WHERE dim = :dim AND dim_id = :dim_id AND day >= :day_lo AND day <= :day_hi AND day <> :today
        UNION ALL
        SELECT day, status, currency, n, amount FROM appointment_day_delta
        WHERE dim = :dim AND dim_id = :dim_id AND day >= :day_lo AND day <= :day_hi AND day <> :today
    ) d WHERE {_ZONE} = :tz
    UNION ALL
    SELECT width_bucket(a.start_at, CAST(:bounds AS timestamptz[])), a.currency, a.status, a.start_at <= :now,
           1, coalesce(a.price, 0) * a.seats
    FROM appointment a WHERE {{where}} AND a.start_at >= :today_lo AND a.start_at < :today_hi AND {_ZONE} = :tz
    UNION ALL
    SELECT width_bucket(a.start_at, CAST(:bounds AS timestamptz[])), a.currency, a.status, a.start_at <= :now,
           1, coalesce(a.price, 0) * a.seats
    FROM appointment a WHERE {{where}} AND {_ZONE} IS DISTINCT FROM :tz
"""

_BUCKETED_ROLLUP = f"""
SELECT x.bucket, sum(x.n)::bigint AS bookings,
       coalesce(sum(x.n) FILTER (WHERE x.status = 'cancelled'), 0)::bigint AS cancelled,
       coalesce(sum(x.n) FILTER (WHERE x.status = 'no_show'), 0)::bigint AS no_show,
       coalesce(sum(x.n) FILTER (WHERE x.status = 'completed'), 0)::bigint AS completed,
       coalesce(sum(x.n) FILTER (WHERE x.status <> 'cancelled' AND x.began), 0)::bigint AS started
FROM ({_GROUPS_FROM_ROLLUP}) x GROUP BY 1
"""

_BUCKETED_MONEY_ROLLUP = f"""
SELECT x.bucket, coalesce(x.currency, :currency) AS currency, x.status, x.began, sum(x.n)::bigint AS n,
       sum(x.amount) AS amount
FROM ({_GROUPS_FROM_ROLLUP}) x GROUP BY 1, 2, 3, 4
"""


def _rollup_slice(where: _Where) -> tuple[int, int] | None:
    """The rollup's (dim, dim_id) that answers `where`'s filters: (0, 0) for none, one per location
    (1), staff member (2) or service (3); None for a combination (the raw statement answers it)."""
    chosen: dict[int, int] = {}
    for name, dim in (("location_id", 1), ("staff_id", 2), ("service_id", 3)):
        if name in where.params:
            chosen[dim] = where.params[name]
    if "only_staff_id" in where.params:
        if chosen.setdefault(2, where.params["only_staff_id"]) != where.params["only_staff_id"]:
            return None
    if len(chosen) > 1:
        return None
    return next(iter(chosen.items()), (0, 0))


def _array(values: list) -> str:
    """An array literal of dates or instants for `CAST(:x AS date[])` / `timestamptz[]`: one string
    for the driver instead of a list (psycopg spends ~2 ms dumping 370 instants one by one)."""
    return "{" + ",".join(v.isoformat() for v in values) + "}"


def _day_bounds(r: Range) -> list[dt.date]:
    """`_bucket_bounds` as local dates, for `width_bucket(day, bounds)` over the rollup's days."""
    return [r.previous().date_from, r.date_from, *periods(r)[1:]]


def _bucketed(session: Session, tenant, r: Range, now: dt.datetime, money: bool) -> list:
    """Status counts (and with `money`, sums per currency) of the previous period (bucket 1) and of
    each period of the range (bucket k >= 2 is periods(r)[k - 2]): one statement over both."""
    tz = tenant.timezone
    where = _where(session, tz, r, with_previous=True)
    params = dict(where.params, bounds=_array(_bucket_bounds(r, tz)), now=now, currency=tenant.currency)
    found = _rollup_slice(where) if ROLLUP else None
    if found is not None:
        today = now.astimezone(ZoneInfo(tz)).date()
        today_lo, today_hi = local_bounds(today, today, tz)
        params.update(dim=found[0], dim_id=found[1], days=_array(_day_bounds(r)), day_lo=r.previous().date_from,
                      day_hi=r.date_to, today=today, today_lo=today_lo, today_hi=today_hi)
        sql = _BUCKETED_MONEY_ROLLUP if money else _BUCKETED_ROLLUP
        rows = session.execute(text(sql.format(where=where.sql)), params)
        return _fold_money(rows) if money else list(rows)
    if money:
        return _fold_money(session.execute(text(_BUCKETED_MONEY.format(where=where.sql)), params))
    sql = _BUCKETED.format(where=where.sql)
    return list(session.execute(text(sql), params))


@dataclass(frozen=True)
class Counts:
    """Status counts of a range: per period, the whole range and the previous period."""

    series: list[dict]
    total: dict
    previous: dict


def _counts_from(rows: list, r: Range) -> Counts:
    by_bucket: dict[int, dict] = {}
    for row in rows:  # with money, one row per currency: counts add up across currencies
        into = by_bucket.get(row.bucket)
        if into is None:
            by_bucket[row.bucket] = {k: getattr(row, k) for k in _ZERO}
            continue
        for k in _ZERO:
            into[k] += getattr(row, k)
    series = [{**by_bucket.get(i + 2, _ZERO), "period": p.isoformat()} for i, p in enumerate(periods(r))]
    total = {k: sum(item[k] for item in series) for k in _ZERO}
    return Counts(series, total, dict(by_bucket.get(1, _ZERO)))


def counts(session: Session, tenant, r: Range, now: dt.datetime) -> Counts:
    """Bookings, cancellations, no-shows and completions per period, in total and for the previous period."""
    return _counts_from(_bucketed(session, tenant, r, now, money=False), r)


def home_figures(session: Session, tenant, r: Range, now: dt.datetime) -> dict:
    """The dashboard home's four figures (bookings, cancellations, no-shows, revenue) from one statement."""
    rows = _bucketed(session, tenant, r, now, money=True)
    c = _counts_from(rows, r)
    return {"bookings": bookings(session, tenant, r, now, c), "cancellations": cancellations(session, tenant, r, now, c),
            "no_shows": no_shows(session, tenant, r, now, c), "revenue": _revenue_from(rows, tenant, r)}


def _unpack(c: Counts) -> tuple[list[dict], dict, dict]:
    return c.series, c.total, c.previous


def bookings(session: Session, tenant, r: Range, now: dt.datetime, c: Counts | None = None) -> dict:
    series, total, previous = _unpack(c or counts(session, tenant, r, now))
    return _head(tenant, r, "bookings") | {
        "series": [{"period": s["period"], "bookings": s["bookings"], "cancelled": s["cancelled"],
                    "no_show": s["no_show"], "completed": s["completed"]} for s in series],
        "total": total["bookings"],
        "previous": {"from": r.previous().date_from.isoformat(), "to": r.previous().date_to.isoformat(), "total": previous["bookings"]},
        "trend": _trend(total["bookings"], previous["bookings"]),
    }


def cancellations(session: Session, tenant, r: Range, now: dt.datetime, c: Counts | None = None) -> dict:
    series, total, previous = _unpack(c or counts(session, tenant, r, now))
    return _head(tenant, r, "cancellations") | {
        "series": [{"period": s["period"], "bookings": s["bookings"], "cancelled": s["cancelled"],
                    "rate": _rate(s["cancelled"], s["bookings"])} for s in series],
        "bookings": total["bookings"], "cancelled": total["cancelled"], "rate": _rate(total["cancelled"], total["bookings"]),
        "previous": {"bookings": previous["bookings"], "cancelled": previous["cancelled"],
                     "rate": _rate(previous["cancelled"], previous["bookings"])},
    }


def no_shows(session: Session, tenant, r: Range, now: dt.datetime, c: Counts | None = None) -> dict:
    series, total, previous = _unpack(c or counts(session, tenant, r, now))
    return _head(tenant, r, "no_shows") | {
        "series": [{"period": s["period"], "started": s["started"], "no_show": s["no_show"],
                    "rate": _rate(s["no_show"], s["started"])} for s in series],
        "started": total["started"], "no_show": total["no_show"], "rate": _rate(total["no_show"], total["started"]),
        "previous": {"started": previous["started"], "no_show": previous["no_show"],
                     "rate": _rate(previous["no_show"], previous["started"])},
    }


def revenue(session: Session, tenant, r: Range, now: dt.datetime) -> dict:
    """Money per currency and period, this range's totals and the previous period's (one statement over both)."""
    return _revenue_from(_bucketed(session, tenant, r, now, money=True), tenant, r)


def _revenue_from(rows: list, tenant, r: Range) -> dict:
    starts = periods(r)
    by_period: dict[str, dict[dt.date, dict]] = {}
    sums: dict[str, dict[str, decimal.Decimal]] = {}
    previous: dict[str, dict] = {}
    for row in rows:
        if row.bucket == 1:
            previous[row.currency] = {k: _money(getattr(row, k)) for k in _MONEY}
            continue
        by_period.setdefault(row.currency, {})[starts[row.bucket - 2]] = {k: _money(getattr(row, k)) for k in _MONEY}
        total = sums.setdefault(row.currency, {k: decimal.Decimal(0) for k in _MONEY})
        for k in _MONEY:
            total[k] += getattr(row, k) or 0
    totals = {c: {k: _money(v) for k, v in money.items()} for c, money in sums.items()}
    zero = {k: "0.00" for k in _MONEY}
    currencies = sorted(set(totals) | set(previous)) or [tenant.currency]
    return _head(tenant, r, "revenue") | {
        "currencies": [
            {"currency": c, **totals.get(c, zero), "previous": previous.get(c, zero),
             "series": [{"period": p.isoformat(), **by_period.get(c, {}).get(p, zero)} for p in starts]}
            for c in currencies
        ],
    }


_BOOKED_MINUTES = """
SELECT s.staff_id, sum(s.minutes) AS minutes FROM (
    SELECT a.staff_id, extract(epoch FROM a.end_at - a.start_at) / 60 AS minutes
    FROM appointment a WHERE {where} AND a.status <> 'cancelled'
    GROUP BY a.staff_id, a.start_at, a.end_at
) s GROUP BY s.staff_id
"""


def _everyone_setup(session: Session, r: Range, tz: str, staff_ids: set[int] | None):
    """The engine's Setup with every (or the chosen) staff member and their time off near the range."""
    from app.scheduling import model as sm
    from app.services.availability import static_rules_keyed

    rules_key, rules = static_rules_keyed(session)
    people: dict[int, sm.StaffRules] = {}
    for members in rules.staff_by_service.values():
        for sid, person in members:
            if staff_ids is None or sid in staff_ids:
                people[sid] = person
    lo, hi = local_bounds(r.date_from - dt.timedelta(days=1), r.date_to + dt.timedelta(days=1), tz)
    off: dict[int, list] = {}
    if people:
        for row in session.execute(
            select(m.TimeOff.staff_id, m.TimeOff.start_at, m.TimeOff.end_at).where(
                m.TimeOff.staff_id.in_(list(people)), m.TimeOff.start_at < hi, m.TimeOff.end_at > lo
            )
        ):
            off.setdefault(row.staff_id, []).append(sm.Interval(row.start_at, row.end_at))
    staff = {sid: replace(p, time_off=tuple(off.get(sid, ()))) for sid, p in people.items()}
    setup = sm.Setup(locations=rules.locations, services={}, staff={p.key: p for p in staff.values()})
    return setup, staff, rules_key


# Available seconds per (rules key, staff member, their time off, dates, location): every input of
# available_seconds is in the key, so an answer is never stale; a dashboard asks again and again.
_AVAILABLE = BoundedCache("available_seconds", 8192)


def _available_seconds(setup, person, rules_key: tuple, date_from: dt.date, date_to: dt.date, location: str | None) -> int:
    key = (rules_key, person.key, tuple((i.start, i.end) for i in person.time_off), date_from, date_to, location)
    found = _AVAILABLE.get(key)
    if found is None:
        found = available_seconds(setup, person.key, date_from, date_to, location)
        _AVAILABLE.put(key, found)
    return found


def utilisation(session: Session, tenant, r: Range, now: dt.datetime) -> dict:
    where = _where(session, tenant.timezone, r)
    booked = {row.staff_id: float(row.minutes) for row in session.execute(text(_BOOKED_MINUTES.format(where=where.sql)), where.params)}
    chosen = None
    if "staff_id" in where.params or "only_staff_id" in where.params:
        chosen = {where.params.get("staff_id", where.params.get("only_staff_id"))}
    setup, staff, rules_key = _everyone_setup(session, r, tenant.timezone, chosen)
    location_key = r.location
    names = dict(session.execute(select(m.Staff.id, m.Staff.name)).all())
    rows = []
    total_booked = total_available = 0.0
    for sid in sorted(set(staff) | set(booked), key=lambda i: names.get(i, "")):
        person = staff.get(sid)
        available = _available_seconds(setup, person, rules_key, r.date_from, r.date_to, location_key) / 60 if person else 0.0
        minutes = booked.get(sid, 0.0)
        total_booked += minutes
        total_available += available
        rows.append({
            "staff": person.key if person else None, "name": names.get(sid), "booked_minutes": round(minutes, 1),
            "available_minutes": round(available, 1), "utilisation": _rate(minutes, available) if available else None,
        })
    return _head(tenant, r, "utilisation") | {
        "staff": rows,
        "booked_minutes": round(total_booked, 1), "available_minutes": round(total_available, 1),
        "utilisation": _rate(total_booked, total_available) if total_available else None,
    }


_LEAD = """
SELECT count(*) AS n,
       avg(extract(epoch FROM a.start_at - a.created_at)) / 3600 AS mean_h,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.start_at - a.created_at)) / 3600 AS median_h,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.start_at - a.created_at)) / 3600 AS p90_h,
       count(*) FILTER (WHERE a.start_at - a.created_at < interval '1 day') AS under_1d,
       count(*) FILTER (WHERE a.start_at - a.created_at >= interval '1 day' AND a.start_at - a.created_at < interval '7 days') AS d1_7,
       count(*) FILTER (WHERE a.start_at - a.created_at >= interval '7 days' AND a.start_at - a.created_at < interval '30 days') AS d7_30,
       count(*) FILTER (WHERE a.start_at - a.created_at >= interval '30 days') AS over_30d
FROM appointment a WHERE {where} AND a.status <> 'cancelled'
"""


def lead_time(session: Session, tenant, r: Range, now: dt.datetime) -> dict:
    where = _where(session, tenant.timezone, r)
    row = session.execute(text(_LEAD.format(where=where.sql)), where.params).one()

    def hours(v):
        return round(float(v), 2) if v is not None else None

    return _head(tenant, r, "lead_time") | {
        "appointments": row.n, "mean_hours": hours(row.mean_h), "median_hours": hours(row.median_h), "p90_hours": hours(row.p90_h),
        "buckets": [
            {"bucket": "under 1 day", "count": row.under_1d}, {"bucket": "1-7 days", "count": row.d1_7},
            {"bucket": "7-30 days", "count": row.d7_30}, {"bucket": "30+ days", "count": row.over_30d},
        ],
    }


_SOURCES = """
SELECT a.start_at < :current AS earlier, a.source, count(*) AS bookings,
       count(*) FILTER (WHERE a.status = 'cancelled') AS cancelled
FROM appointment a WHERE {where} GROUP BY 1, 2
"""


def sources(session: Session, tenant, r: Range, now: dt.datetime) -> dict:
    """Bookings per source in the range (most first) with the previous period's; one statement over both."""
    where = _where(session, tenant.timezone, r, with_previous=True)
    current = local_bounds(r.date_from, r.date_to, tenant.timezone)[0]
    rows, before = [], {}
    for row in session.execute(text(_SOURCES.format(where=where.sql)), dict(where.params, current=current)):
        if row.earlier:
            before[row.source] = row.bookings
        else:
            rows.append({"source": row.source, "bookings": row.bookings, "cancelled": row.cancelled})
    rows.sort(key=lambda item: (-item["bookings"], item["source"]))
    for row in rows:
        row["previous"] = before.get(row["source"], 0)
    return _head(tenant, r, "sources") | {"sources": rows}


_SERVICES = """
SELECT s.key, s.name, x.bookings, x.cancelled FROM (
    SELECT a.service_id, count(*) AS bookings, count(*) FILTER (WHERE a.status = 'cancelled') AS cancelled
    FROM appointment a WHERE {where} GROUP BY 1
) x JOIN service s ON s.id = x.service_id ORDER BY x.bookings DESC, s.name LIMIT 20
"""

_HEATMAP = """
SELECT extract(isodow FROM a.start_at AT TIME ZONE :tz)::int AS weekday,
       extract(hour FROM a.start_at AT TIME ZONE :tz)::int AS hour, count(*) AS bookings
FROM appointment a WHERE {where} AND a.status <> 'cancelled' GROUP BY 1, 2
"""


def popular(session: Session, tenant, r: Range, now: dt.datetime) -> dict:
    """Popular services and the weekday x hour heatmap (local time of the business; weekday 1 = Monday)."""
    where = _where(session, tenant.timezone, r)
    services = [dict(row._mapping) for row in session.execute(text(_SERVICES.format(where=where.sql)), where.params)]
    grid = [[0] * 24 for _ in range(7)]
    for row in session.execute(text(_HEATMAP.format(where=where.sql)), where.params):
        grid[row.weekday - 1][row.hour] = row.bookings
    return _head(tenant, r, "popular") | {"services": services, "heatmap": grid}


FIGURES = {
    "bookings": bookings, "cancellations": cancellations, "no_shows": no_shows, "revenue": revenue,
    "utilisation": utilisation, "lead_time": lead_time, "sources": sources, "popular": popular,
}


def figure(session: Session, tenant, metric: str, r: Range, now: dt.datetime) -> dict:
    fn = FIGURES.get(metric)
    if fn is None:
        raise ValidationError(f"unknown figure {metric!r}; one of {', '.join(FIGURES)}", "metric", code="not_found")
    return fn(session, tenant, r, now)


# --- CSV of every chart ------------------------------------------------------------


def csv_rows(data: dict) -> list[list]:
    """A figure as table rows (header first): what each chart's "CSV" link downloads."""
    metric = data["metric"]
    if metric in ("bookings", "cancellations", "no_shows"):
        keys = list(data["series"][0]) if data["series"] else ["period"]
        return [keys] + [[s[k] for k in keys] for s in data["series"]]
    if metric == "revenue":
        out = [["currency", "period", *_MONEY]]
        for c in data["currencies"]:
            out += [[c["currency"], s["period"], *(s[k] for k in _MONEY)] for s in c["series"]]
        return out
    if metric == "utilisation":
        return [["staff", "name", "booked_minutes", "available_minutes", "utilisation"]] + [
            [s["staff"], s["name"], s["booked_minutes"], s["available_minutes"], s["utilisation"]] for s in data["staff"]
        ]
    if metric == "lead_time":
        return [["bucket", "count"]] + [[b["bucket"], b["count"]] for b in data["buckets"]]
    if metric == "sources":
        return [["source", "bookings", "cancelled", "previous"]] + [
            [s["source"], s["bookings"], s["cancelled"], s["previous"]] for s in data["sources"]
        ]
    if metric == "popular":
        days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        return [["weekday", *[f"{h:02d}" for h in range(24)]]] + [[days[i], *row] for i, row in enumerate(data["heatmap"])]
    raise ValueError(metric)


# --- an agency's businesses -----------------------------------------------------------

# One business of the agency rollup, from its daily rollup (every appointment: dim 0) like
# `_bucketed`, and from its rows those of the day containing `now`; all of the range's rows
# instead when the rollup counts another zone. One scan of `appointment` per business whose
# bounds depend on that (the planner's time grows with every table a branch names, and there
# are a hundred branches).
_ROLLUP_BRANCH = """
SELECT CAST(:t{i} AS integer) AS tenant_id,
       coalesce(sum(x.n) FILTER (WHERE x.cur), 0)::bigint AS bookings,
       coalesce(sum(x.n) FILTER (WHERE x.cur AND x.status = 'cancelled'), 0)::bigint AS cancelled,
       coalesce(sum(x.n) FILTER (WHERE x.cur AND x.status = 'no_show'), 0)::bigint AS no_show,
       coalesce(sum(x.n) FILTER (WHERE x.cur AND x.status <> 'cancelled' AND x.began), 0)::bigint AS started,
       coalesce(sum(x.n) FILTER (WHERE NOT x.cur), 0)::bigint AS previous_bookings,
       coalesce(sum(x.amount) FILTER (WHERE x.cur AND x.status <> 'cancelled'), 0) AS booked,
       coalesce(sum(x.amount) FILTER (WHERE x.cur AND x.status = 'completed'), 0) AS realised,
       coalesce(sum(x.amount) FILTER (WHERE x.cur AND x.status IN ('no_show', 'cancelled')), 0) AS lost
FROM (
    SELECT d.day >= :dlo{i} AS cur, d.status, d.day < :today{i} AS began, d.n, d.amount
    FROM (
        SELECT day, status, n, amount FROM "{schema}".appointment_day
        WHERE dim = 0 AND dim_id = 0 AND day >= :pdlo{i} AND day <= :dhi{i} AND day <> :today{i}
        UNION ALL
        SELECT day, status, n, amount FROM "{schema}".appointment_day_delta
        WHERE dim = 0 AND dim_id = 0 AND day >= :pdlo{i} AND day <= :dhi{i} AND day <> :today{i}
    ) d WHERE (SELECT timezone FROM "{schema}".appointment_day_zone) = :tz{i}
    UNION ALL
    SELECT a.start_at >= :lo{i}, a.status, a.start_at <= :now, 1, coalesce(a.price, 0) * a.seats
    FROM "{schema}".appointment a
    WHERE a.start_at >= (CASE WHEN (SELECT timezone FROM "{schema}".appointment_day_zone) = :tz{i}
                              THEN greatest(:tlo{i}, :plo{i}) ELSE :plo{i} END)
      AND a.start_at < (CASE WHEN (SELECT timezone FROM "{schema}".appointment_day_zone) = :tz{i}
                             THEN least(:thi{i}, :hi{i}) ELSE :hi{i} END)
) x
"""


# The same from every row (ROLLUP off).
_ROLLUP_BRANCH_RAW = """
SELECT CAST(:t{i} AS integer) AS tenant_id,
       count(*) FILTER (WHERE a.start_at >= :lo{i}) AS bookings,
       count(*) FILTER (WHERE a.start_at >= :lo{i} AND a.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE a.start_at >= :lo{i} AND a.status = 'no_show') AS no_show,
       count(*) FILTER (WHERE a.start_at >= :lo{i} AND a.status <> 'cancelled' AND a.start_at <= :now) AS started,
       count(*) FILTER (WHERE a.start_at < :lo{i}) AS previous_bookings,
       coalesce(sum(coalesce(a.price, 0) * a.seats) FILTER (WHERE a.start_at >= :lo{i} AND a.status <> 'cancelled'), 0) AS booked,
       coalesce(sum(coalesce(a.price, 0) * a.seats) FILTER (WHERE a.start_at >= :lo{i} AND a.status = 'completed'), 0) AS realised,
       coalesce(sum(coalesce(a.price, 0) * a.seats) FILTER (WHERE a.start_at >= :lo{i} AND a.status IN ('no_show', 'cancelled')), 0) AS lost
FROM "{schema}".appointment a WHERE a.start_at >= :plo{i} AND a.start_at < :hi{i}
"""


# A business with fewer appointments than this (the planner's statistics) is summed from its rows in
# the agency rollup: naming its rollup, delta and zone costs the planner more (about 0.3 ms a
# business, a hundred businesses in one statement) than its few rows cost the executor.
AGENCY_ROLLUP_MIN_ROWS = 10_000


def _large_schemas(session: Session, schemas: list[str]) -> set[str]:
    """The schemas among `schemas` whose appointment table has at least AGENCY_ROLLUP_MIN_ROWS rows (estimated)."""
    if AGENCY_ROLLUP_MIN_ROWS <= 0:
        return set(schemas)
    return set(session.scalars(text(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = 'appointment' AND c.relkind = 'r' AND n.nspname = ANY(:schemas) AND c.reltuples >= :least"
    ), {"schemas": schemas, "least": AGENCY_ROLLUP_MIN_ROWS}))


def agency_tenants(session: Session, agency_id: int) -> list[Tenant]:
    return list(session.scalars(
        select(Tenant).where(Tenant.agency_id == agency_id, Tenant.status != Tenant.STATUS_PROVISIONING).order_by(Tenant.name)
    ))


def agency_rollup(session: Session, tenants: list, date_from: dt.date, date_to: dt.date, now: dt.datetime) -> dict:
    """Per-business figures of `tenants` (each in its own time zone and currency) and totals per currency.

    One statement: a UNION ALL of one aggregate per tenant schema (the bench compares it with one
    query per schema). Money is totalled per currency only; counts add up across businesses.
    """
    r = Range(date_from, date_to)
    prev = r.previous()
    branches, params = [], {"now": now}
    large = _large_schemas(session, [t.schema for t in tenants]) if ROLLUP and tenants else set()
    for i, t in enumerate(tenants):
        lo, hi = local_bounds(date_from, date_to, t.timezone)
        plo, _ = local_bounds(prev.date_from, prev.date_to, t.timezone)
        today = now.astimezone(ZoneInfo(t.timezone)).date()
        tlo, thi = local_bounds(today, today, t.timezone)
        params.update({f"t{i}": t.id, f"lo{i}": lo, f"hi{i}": hi, f"plo{i}": plo, f"tz{i}": t.timezone,
                       f"dlo{i}": date_from, f"dhi{i}": date_to, f"pdlo{i}": prev.date_from, f"today{i}": today,
                       f"tlo{i}": tlo, f"thi{i}": thi})
        branch = _ROLLUP_BRANCH if t.schema in large else _ROLLUP_BRANCH_RAW
        branches.append(branch.format(i=i, schema=t.schema))
    rows = {}
    if branches:
        rows = {row.tenant_id: row for row in session.execute(text(" UNION ALL ".join(branches)), params)}
    out, per_currency = [], {}
    for t in tenants:
        row = rows.get(t.id)
        item = {
            "tenant": t.slug, "name": t.name, "status": t.status, "currency": t.currency, "timezone": t.timezone,
            "bookings": row.bookings if row else 0, "cancelled": row.cancelled if row else 0,
            "no_show": row.no_show if row else 0, "previous_bookings": row.previous_bookings if row else 0,
            "revenue_booked": _money(row.booked if row else 0), "revenue_realised": _money(row.realised if row else 0),
            "revenue_lost": _money(row.lost if row else 0),
        }
        item["cancellation_rate"] = _rate(item["cancelled"], item["bookings"])
        item["no_show_rate"] = _rate(item["no_show"], row.started if row else 0)
        item["trend"] = _trend(item["bookings"], item["previous_bookings"])
        item["attention"] = attention(item)
        out.append(item)
        money = per_currency.setdefault(t.currency, {"currency": t.currency, "tenants": 0, "bookings": 0,
                                                      "revenue_booked": decimal.Decimal(0), "revenue_realised": decimal.Decimal(0),
                                                      "revenue_lost": decimal.Decimal(0)})
        money["tenants"] += 1
        money["bookings"] += item["bookings"]
        for k in ("revenue_booked", "revenue_realised", "revenue_lost"):
            money[k] += decimal.Decimal(item[k])
    totals = [{**v, **{k: _money(v[k]) for k in ("revenue_booked", "revenue_realised", "revenue_lost")}}
              for _c, v in sorted(per_currency.items())]
    return {
        "from": date_from.isoformat(), "to": date_to.isoformat(), "tenants": out, "per_currency": totals,
        "bookings": sum(i["bookings"] for i in out), "cancelled": sum(i["cancelled"] for i in out),
        "no_show": sum(i["no_show"] for i in out),
    }


# Recent rollups of this process, by (businesses, dates); the caller says how old one may be.
_ROLLUPS = BoundedCache("agency_rollups", 256)


def recent_agency_rollup(session: Session, tenants: list, date_from: dt.date, date_to: dt.date, now: dt.datetime,
                         max_age: float) -> dict:
    """agency_rollup, or this process's copy of the same businesses and dates if at most `max_age` seconds old.

    The key holds every business's id, name, currency and zone, so a user only ever gets a copy
    made for exactly the businesses they may see. The copy is shared: callers must not change it.
    """
    if max_age <= 0:
        return agency_rollup(session, tenants, date_from, date_to, now)
    key = (tuple((t.id, t.slug, t.name, t.currency, t.timezone) for t in tenants), date_from, date_to)
    found = _ROLLUPS.get(key, max_age=max_age)
    if found is None:
        found = agency_rollup(session, tenants, date_from, date_to, now)
        _ROLLUPS.put(key, found)
    return found


def attention(item: dict) -> list[str]:
    """Why a business needs its agency's attention (empty: it does not)."""
    reasons = []
    if item["bookings"] == 0:
        reasons.append("no bookings in the period")
    if item["trend"] is not None and item["trend"] <= -0.3:
        reasons.append(f"bookings down {round(-item['trend'] * 100)} % on the previous period")
    if (item["no_show_rate"] or 0) >= 0.1:
        reasons.append(f"no-show rate {round(item['no_show_rate'] * 100)} %")
    if (item["cancellation_rate"] or 0) >= 0.25:
        reasons.append(f"cancellation rate {round(item['cancellation_rate'] * 100)} %")
    return reasons
