"""Availability from the database: load the rules the engine needs, then ask it.

The engine (app/scheduling) is pure; this module is the only place that turns
rows into its dataclasses. It loads just what a query can touch: the service,
the staff who offer it, their rules, and bookings/time off/busy blocks near the
requested range.
"""

from __future__ import annotations

import datetime as dt
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import CompoundSelect, Select, bindparam, event, literal, literal_column, null, select, text, union_all
from sqlalchemy.orm import Session

from app import metrics
from app.boundedcache import BoundedCache
from app.errors import UnknownKey, ValidationError
from app.models import tenant as m
from app.scheduling import model as sm
from app.scheduling.engine import find_slots, find_slots_json_parts, slot_to_json
from app.scheduling.wallclock import notice_bounds
from app.tenancy import plain_session, session_schema

# Location zones differ from the query's by at most ~26 h, and paddings are short;
# two days either side covers every instant that can touch the range.
MARGIN = dt.timedelta(days=2)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class AvailabilityQuery:
    service: str
    date_from: dt.date
    date_to: dt.date
    timezone: str
    location: str | None = None
    staff: str | None = None
    exclude_refs: frozenset[str] = frozenset()


def absolute_range(date_from: dt.date, date_to: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(date_from, dt.time(), zone).astimezone(UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)
    return start, end


def _spans(rows) -> dict[int, tuple[tuple[int, int], ...]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        out.setdefault(row.weekday, []).append((row.start_min, row.end_min))
    return {k: tuple(v) for k, v in out.items()}


@dataclass(frozen=True)
class StaticRules:
    """The rules of one tenant that change only when an admin edits them (cached per rules version)."""

    locations: dict[str, sm.LocationRules]
    loc_key: dict[int, str]
    services: dict[str, tuple[int, sm.ServiceRules]]
    # service key -> [(staff id, rules without time off / busy blocks)]
    staff_by_service: dict[str, list[tuple[int, sm.StaffRules]]]


# Static rules, catalogue and public catalogue snapshots: about three entries per busy
# business (CACHE_RULES_ENTRIES); the least recently used business is dropped first.
_CACHE = BoundedCache("rules", 3072)


def _load_static(session: Session) -> StaticRules:
    loc_key: dict[int, str] = {}
    hours_by_loc: dict[int, list] = {}
    for row in session.execute(
        select(m.LocationHours.location_id, m.LocationHours.weekday, m.LocationHours.start_min, m.LocationHours.end_min)
    ):
        hours_by_loc.setdefault(row.location_id, []).append(row)
    closures_by_loc: dict[int, set] = {}
    for row in session.execute(select(m.LocationClosure.location_id, m.LocationClosure.date)):
        closures_by_loc.setdefault(row.location_id, set()).add(row.date)
    locations = {}
    for loc in session.execute(select(m.Location.id, m.Location.key, m.Location.timezone, m.Location.active)):
        loc_key[loc.id] = loc.key
        locations[loc.key] = sm.LocationRules(
            key=loc.key,
            timezone=loc.timezone,
            active=loc.active,
            hours=_spans(hours_by_loc[loc.id]) if loc.id in hours_by_loc else None,
            closures=frozenset(closures_by_loc.get(loc.id, ())),
        )

    service_locations: dict[int, set[str]] = {}
    for row in session.execute(select(m.service_location.c.service_id, m.service_location.c.location_id)):
        service_locations.setdefault(row.service_id, set()).add(loc_key[row.location_id])
    services = {}
    for svc in session.scalars(select(m.Service)):
        rules = service_rules(svc, service_locations.get(svc.id, set()))
        services[svc.key] = (svc.id, rules)
    service_key = {sid: key for key, (sid, _r) in services.items()}

    def grouped(query) -> dict[int, list]:
        out: dict[int, list] = {}
        for row in session.execute(query):
            out.setdefault(row[0], []).append(row)
        return out

    offers = grouped(select(m.staff_service.c.staff_id, m.staff_service.c.service_id))
    own_locations = grouped(select(m.staff_location.c.staff_id, m.staff_location.c.location_id))
    hours = grouped(select(m.StaffHours.staff_id, m.StaffHours.location_id, m.StaffHours.weekday, m.StaffHours.start_min, m.StaffHours.end_min))
    breaks = grouped(select(m.StaffBreak.staff_id, m.StaffBreak.location_id, m.StaffBreak.weekday, m.StaffBreak.start_min, m.StaffBreak.end_min))
    overrides = grouped(select(m.StaffOverride.staff_id, m.StaffOverride.location_id, m.StaffOverride.date, m.StaffOverride.intervals))

    staff_by_service: dict[str, list[tuple[int, sm.StaffRules]]] = {key: [] for key in services}
    for person in session.execute(select(m.Staff.id, m.Staff.key, m.Staff.active).order_by(m.Staff.key)):
        offered = frozenset(service_key[r.service_id] for r in offers.get(person.id, ()))
        rules = sm.StaffRules(
            key=person.key,
            services=offered,
            locations=frozenset(loc_key[r.location_id] for r in own_locations.get(person.id, ())),
            active=person.active,
            hours=tuple(sm.WeeklyHours(loc_key[h.location_id], h.weekday, h.start_min, h.end_min) for h in hours.get(person.id, ())),
            breaks=tuple(
                sm.Break(b.weekday, b.start_min, b.end_min, loc_key.get(b.location_id) if b.location_id else None)
                for b in breaks.get(person.id, ())
            ),
            overrides=tuple(
                sm.DateOverride(loc_key[o.location_id], o.date, tuple(tuple(i) for i in o.intervals))
                for o in overrides.get(person.id, ())
            ),
        )
        for key in offered:
            staff_by_service[key].append((person.id, rules))
    return StaticRules(locations, loc_key, services, staff_by_service)


def static_rules(session: Session) -> StaticRules:
    """The tenant's static rules, from the cache while its rules version is unchanged."""
    return _static_rules_keyed(session)[1]


def _static_rules_keyed(session: Session) -> tuple[tuple, StaticRules]:
    return versioned(session, "rules", _load_static)


def static_rules_keyed(session: Session) -> tuple[tuple, StaticRules]:
    """The static rules with the key they are cached under (database, schema, rules version):
    a new key whenever any rule changes, so results computed from the rules may be cached on it."""
    return _static_rules_keyed(session)


# Tables whose rows are cached per rules version: a trigger on each bumps the
# version (migrations t0004c and t0005v), and so does a write through the ORM
# below, for the rest of the writing transaction. Versions come from one
# database-wide sequence (t0006r): a number read inside a transaction that then
# rolls back, or in a schema since dropped, never comes back for other rows.
VERSIONED_TABLES = frozenset({
    "location", "location_hours", "location_closure", "service", "service_location", "category",
    "staff", "staff_service", "staff_location", "staff_hours", "staff_break", "staff_override",
    "form_field", "consent_text",
})
_VERSION_MEMO = "rules_version"
# Execution option of a statement known to write no rule table (plain SQL included).
RULES_UNTOUCHED = "upzento_rules_untouched"


_VERSION_STATEMENT = select(literal_column("version")).select_from(text("rules_version"))


def rules_version(session: Session) -> int:
    """The tenant's rules version: read once per transaction, again after anything that may change it."""
    session = plain_session(session)
    transaction, schema = session.get_transaction(), session_schema(session)
    if any(_is_rule(obj) for obj in (*session.new, *session.dirty, *session.deleted)):
        # Unflushed rule edits: write them, so the triggers bump the version read below.
        # (A Core select does not autoflush.)
        session.flush()
    memo = session.info.get(_VERSION_MEMO)
    if memo is not None and transaction is not None and memo[0] is transaction and memo[1] == schema:
        return memo[2]
    version = session.connection().execute(_VERSION_STATEMENT).scalar_one()
    session.info[_VERSION_MEMO] = (session.get_transaction(), schema, version)
    return version


@event.listens_for(Session, "do_orm_execute")
def _forget_version_on_write(state) -> None:
    # Reads keep the version; so do writes to tables outside the rules (a customer
    # upsert). Plain SQL (text) might touch anything: read the version again.
    statement = getattr(state.statement, "element", state.statement)  # from_statement() wraps DML
    if isinstance(statement, (Select, CompoundSelect)) or state.execution_options.get(RULES_UNTOUCHED):
        return
    table = getattr(statement, "table", None)
    if table is not None and getattr(table, "name", None) not in VERSIONED_TABLES:
        return
    state.session.info.pop(_VERSION_MEMO, None)


@event.listens_for(Session, "after_flush")
def _forget_version_after_rule_flush(session: Session, flush_context) -> None:
    # new/dirty/deleted still hold what was just flushed; a booking or a customer keeps the memo.
    if any(_is_rule(obj) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info.pop(_VERSION_MEMO, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_version_on_rollback(session: Session, previous_transaction) -> None:
    # Also a savepoint's: its rule edits are undone, and the version goes back to
    # what it was before them, while the memo still holds the one they reached.
    session.info.pop(_VERSION_MEMO, None)


def _is_rule(obj) -> bool:
    return getattr(getattr(obj, "__table__", None), "name", None) in VERSIONED_TABLES


def versioned(session: Session, name: str, loader):
    """`loader(session)`, cached per (database, tenant schema, rules version, name); also returns the key."""
    version = rules_version(session)
    bind = session.get_bind()
    key = (str(bind.url), session_schema(session), version)
    cached = _CACHE.get((key, name))
    if cached is not None:
        metrics.AVAILABILITY_CACHE.labels("rules", "hit").inc()
        return key, cached
    metrics.AVAILABILITY_CACHE.labels("rules", "miss").inc()
    loaded = loader(session)
    _CACHE.put((key, name), loaded)
    return key, loaded


def load_setup(
    session: Session,
    service_key: str,
    window_start: dt.datetime,
    window_end: dt.datetime,
    staff_keys: list[str] | None = None,
) -> sm.Setup:
    """Rules for `service_key` and everyone who offers it, for instants near the window.

    Static rules come from the per-version cache; time off, busy blocks and
    bookings are read fresh (two queries) on every call.
    """
    return _load_setup_keyed(session, service_key, window_start, window_end, staff_keys)[0]


@lru_cache(maxsize=1)
def _fresh_rows_statement():
    """Bookings, time off and busy blocks of some staff near a window, in one round trip (built once)."""
    ids, lo, hi = bindparam("ids", expanding=True), bindparam("lo"), bindparam("hi")
    nothing = null()  # columns only bookings have
    return union_all(
        select(
            literal("appt").label("kind"), m.Appointment.staff_id, m.Appointment.start_at, m.Appointment.end_at,
            m.Appointment.id, m.Appointment.service_id, m.Appointment.seats, m.Appointment.location_id,
        ).where(
            m.Appointment.staff_id.in_(ids),
            m.Appointment.status != m.STATUS_CANCELLED,
            m.Appointment.padded_start < hi,
            m.Appointment.padded_end > lo,
        ),
        select(
            literal("off"), m.TimeOff.staff_id, m.TimeOff.start_at, m.TimeOff.end_at, nothing, nothing, nothing, nothing,
        ).where(m.TimeOff.staff_id.in_(ids), m.TimeOff.start_at < hi, m.TimeOff.end_at > lo),
        select(
            literal("busy"), m.BusyBlock.staff_id, m.BusyBlock.start_at, m.BusyBlock.end_at, nothing, nothing, nothing, nothing,
        ).where(m.BusyBlock.staff_id.in_(ids), m.BusyBlock.start_at < hi, m.BusyBlock.end_at > lo),
        # A location's own calendar (front desk): in the staff column's place, its location id.
        select(
            literal("loc"), m.BusyBlock.location_id, m.BusyBlock.start_at, m.BusyBlock.end_at, nothing, nothing, nothing,
            nothing,
        ).where(m.BusyBlock.location_id.is_not(None), m.BusyBlock.start_at < hi, m.BusyBlock.end_at > lo),
    )


def _load_setup_keyed(session, service_key, window_start, window_end, staff_keys=None) -> tuple[sm.Setup, tuple]:
    """load_setup(), plus a key that is equal exactly when the returned Setup is (rules version + fresh rows)."""
    rules_key, rules = _static_rules_keyed(session)
    if service_key not in rules.services:
        raise UnknownKey(f"unknown service {service_key!r}", "service")
    lo, hi = window_start - MARGIN, window_end + MARGIN
    people = rules.staff_by_service[service_key]
    if staff_keys is not None:
        people = [(sid, r) for sid, r in people if r.key in staff_keys]
    ids = [sid for sid, _r in people]
    by_id = {sid: r.key for sid, r in people}

    time_off: dict[int, list[sm.Interval]] = {}
    busy: dict[int, list[sm.Interval]] = {}
    location_busy: dict[str, list[sm.Interval]] = {}
    bookings = []
    if ids:
        if session.autoflush:
            session.flush()  # what an ORM query would do first: pending bookings and time off count
        # On the connection: the ORM's per-statement machinery costs ~10% of a booking here.
        rows = session.connection().execute(_fresh_rows_statement(), {"ids": ids, "lo": lo, "hi": hi})
        service_by_id = {sid: r for sid, r in rules.services.values()}
        for r in rows:
            if r.kind == "loc":
                key = rules.loc_key.get(r.staff_id)
                if key is not None:
                    location_busy.setdefault(key, []).append(sm.Interval(r.start_at, r.end_at))
                continue
            if r.kind != "appt":
                target = time_off if r.kind == "off" else busy
                target.setdefault(r.staff_id, []).append(sm.Interval(r.start_at, r.end_at))
                continue
            svc = service_by_id[r.service_id]
            bookings.append(
                sm.Booking(
                    staff=by_id[r.staff_id],
                    service=svc.key,
                    start=r.start_at,
                    end=r.end_at,
                    buffer_before_min=svc.buffer_before_min,
                    buffer_after_min=svc.buffer_after_min,
                    seats=r.seats,
                    location=rules.loc_key.get(r.location_id),
                    ref=str(r.id),
                )
            )
    staff = {
        r.key: replace(r, time_off=tuple(time_off.get(sid, ())), busy=tuple(busy.get(sid, ())))
        for sid, r in people
    }
    locations = rules.locations
    if location_busy:
        locations = {**locations, **{k: replace(locations[k], busy=tuple(sorted(v, key=lambda iv: iv.start)))
                                     for k, v in location_busy.items()}}
    setup = sm.Setup(
        locations=locations,
        services={service_key: rules.services[service_key][1]},
        staff=staff,
        bookings=tuple(bookings),
    )
    # The rows themselves, not a hash of them: equal keys then mean equal inputs, exactly.
    fresh = (setup.bookings, tuple((k, r.time_off, r.busy) for k, r in staff.items()),
             tuple((k, locations[k].busy) for k in sorted(location_busy)))
    return setup, (rules_key, service_key, fresh)


def service_rules(service: m.Service, location_keys: set[str]) -> sm.ServiceRules:
    return sm.ServiceRules(
        key=service.key,
        duration_min=service.duration_min,
        buffer_before_min=service.buffer_before_min,
        buffer_after_min=service.buffer_after_min,
        slot_interval_min=service.slot_interval_min,
        min_notice_min=service.min_notice_min,
        max_advance_days=service.max_advance_days,
        capacity=service.capacity,
        locations=None if service.all_locations else frozenset(location_keys),
        active=service.active,
    )


def query_slots(session: Session, query: AvailabilityQuery, now: dt.datetime) -> tuple[list[sm.Slot], bool]:
    """Bookable slots for `query` as of `now`; also whether the service is a group service."""
    setup, _key = _prepare(session, query)
    return _compute(setup, query, now), setup.services[query.service].capacity > 1


def _prepare(session: Session, query: AvailabilityQuery) -> tuple[sm.Setup, tuple]:
    start, end = absolute_range(query.date_from, query.date_to, query.timezone)
    staff_keys = [query.staff] if query.staff else None
    setup, key = _load_setup_keyed(session, query.service, start, end, staff_keys)
    if query.location and query.location not in setup.locations:
        raise UnknownKey(f"unknown location {query.location!r}", "location")
    if query.staff and query.staff not in setup.staff:
        if session.scalar(select(m.Staff.id).where(m.Staff.key == query.staff)) is None:
            raise UnknownKey(f"unknown staff {query.staff!r}", "staff")
    return setup, key


def _compute(setup: sm.Setup, query: AvailabilityQuery, now: dt.datetime) -> list[sm.Slot]:
    q = _slot_query(setup, query, now)
    return [] if q is None else find_slots(setup, q)


def _slot_query(setup: sm.Setup, query: AvailabilityQuery, now: dt.datetime) -> sm.SlotQuery | None:
    """The engine's query; None for a known staff member who does not offer this service (no slots)."""
    if query.staff and query.staff not in setup.staff:
        return None
    return sm.SlotQuery(
        service=query.service,
        date_from=query.date_from,
        date_to=query.date_to,
        timezone=query.timezone,
        now=now,
        location=query.location,
        staff=query.staff,
        exclude_refs=query.exclude_refs,
    )


def slots_json(session: Session, query: AvailabilityQuery, now: dt.datetime) -> dict:
    """The availability answer as the API and the CLI print it."""
    slots, group = query_slots(session, query, now)
    return {"slots": [slot_to_json(s, group) for s in slots]}


@dataclass(frozen=True)
class _Answer:
    """One query's slots for every start in its range, whatever the clock: notice and advance are applied on the way out."""

    starts: array  # epoch seconds of each slot's start, ascending
    offsets: array  # where each slot's JSON object begins in `text`
    text: str  # the slots' JSON objects joined with ","


def _weigh(answer: _Answer) -> int:
    return len(answer.text) + 8 * (len(answer.starts) + len(answer.offsets)) + 200


# Answers by (rules version, fresh-rows versions of the staff asked about, query): about
# 64 KB each for a 20-staff month; bounded by count and by bytes (CACHE_ANSWERS_ENTRIES / _BYTES).
_ANSWERS = BoundedCache("answers", 4096, max_bytes=32 * 1024 * 1024, weigh=_weigh)

# Per staff member: the fresh_version row (migration t0011fr) moves on every write to
# their appointments, time off or busy blocks; no row yet means none of those rows exist.
_FRESH_VERSIONS = text(
    "SELECT coalesce(string_agg(staff_id || ':' || version, ',' ORDER BY staff_id), '')"
    " FROM fresh_version WHERE staff_id = ANY(:ids)"
)


def fresh_rows_version(session: Session, staff_ids: list[int]) -> str:
    """The fresh-rows versions of `staff_ids`, as one text: equal texts mean equal bookings, time off and busy blocks."""
    if not staff_ids:
        return ""
    session = plain_session(session)
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()  # pending bookings or time off bump the version through the triggers
    return session.connection().execute(_FRESH_VERSIONS, {"ids": staff_ids}).scalar_one()


def slots_json_text(session: Session, query: AvailabilityQuery, now: dt.datetime) -> str:
    """slots_json() serialised, from the answer cache while its inputs are unchanged.

    The key is the rules version, the fresh-rows versions of the staff the query can
    touch and the query; never the clock. A hit costs the two version reads and a
    slice of the stored text: the cached answer holds every start in the range, and
    the service's notice and advance limits are applied here, for `now`. Every write
    to the rows behind an answer moves a version (database triggers), so a cached
    answer is never stale.
    """
    rules_key, rules = _static_rules_keyed(session)
    if query.service not in rules.services:
        raise UnknownKey(f"unknown service {query.service!r}", "service")
    people = rules.staff_by_service[query.service]
    ids = [sid for sid, r in people if query.staff is None or r.key == query.staff]
    key = (rules_key, fresh_rows_version(session, ids), query)
    answer = _ANSWERS.get(key)
    if answer is not None:
        metrics.AVAILABILITY_CACHE.labels("answer", "hit").inc()
    else:
        metrics.AVAILABILITY_CACHE.labels("answer", "miss").inc()
        answer = _wide_answer(session, query)
        _ANSWERS.put(key, answer)
    service = rules.services[query.service][1]
    lo, hi = notice_bounds(now, service.min_notice_min, service.max_advance_days)
    i, j = bisect_left(answer.starts, lo), bisect_right(answer.starts, hi)
    if i >= j:
        return '{"slots":[]}'
    end = answer.offsets[j] - 1 if j < len(answer.offsets) else len(answer.text)
    return '{"slots":[' + answer.text[answer.offsets[i]:end] + "]}"


def _wide_answer(session: Session, query: AvailabilityQuery) -> _Answer:
    """Every bookable start of the query's range, as if notice were 0 and advance unlimited."""
    setup, _inputs = _prepare(session, query)
    q = _slot_query(setup, query, dt.datetime.now(UTC))
    if q is None:
        return _Answer(array("q"), array("q"), "")
    start, end = absolute_range(query.date_from, query.date_to, query.timezone)
    service = setup.services[query.service]
    # The engine reads the clock only through notice and advance (wallclock.notice_bounds):
    # with no notice, an advance past the range and `now` just before it, it bounds nothing.
    days = (end - start).days + 2
    wide = replace(setup, services={query.service: replace(service, min_notice_min=0, max_advance_days=days)})
    starts, parts = find_slots_json_parts(wide, replace(q, now=start - dt.timedelta(seconds=1)))
    offsets, at = array("q"), 0
    for part in parts:
        offsets.append(at)
        at += len(part) + 1
    return _Answer(array("q", starts), offsets, ",".join(parts))


def parse_query(args, max_days: int) -> AvailabilityQuery:
    """Validate availability parameters (from a request or the CLI); 422 names the field."""
    service = (args.get("service") or "").strip()
    if not service:
        raise ValidationError("service is required", "service", code="required")
    tz = (args.get("timezone") or "UTC").strip()
    try:
        ZoneInfo(tz)
    except Exception:
        raise ValidationError(f"unknown time zone {tz!r}", "timezone")
    dates = {}
    for name in ("from", "to"):
        raw = (args.get(name) or "").strip()
        if not raw:
            raise ValidationError(f"{name} is required (YYYY-MM-DD)", name, code="required")
        try:
            dates[name] = dt.date.fromisoformat(raw)
        except ValueError:
            raise ValidationError(f"{name} must be a date YYYY-MM-DD, got {raw!r}", name)
    if dates["to"] < dates["from"]:
        raise ValidationError("to must not be before from", "to")
    if (dates["to"] - dates["from"]).days + 1 > max_days:
        raise ValidationError(f"the range may cover at most {max_days} days", "to", code="range_too_long")
    return AvailabilityQuery(
        service=service,
        date_from=dates["from"],
        date_to=dates["to"],
        timezone=tz,
        location=(args.get("location") or "").strip() or None,
        staff=(args.get("staff") or "").strip() or None,
    )
