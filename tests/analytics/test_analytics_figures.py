"""Analytics figures against numbers worked out by hand: a DST weekend in Berlin, a mix of
cancelled / no-show / completed, two currencies in one agency, an empty business."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from support import minimal_setup, unique_slug

UTC = dt.timezone.utc
NOW = dt.datetime(2027, 4, 1, 12, 0, tzinfo=UTC)


def z(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def dst_setup() -> dict:
    setup = minimal_setup()
    setup["services"][0]["price"] = "10.00"
    # Sunday 28 March 2027 the clocks jump 02:00 -> 03:00: 00:00-06:00 that day is 5 real hours.
    setup["staff"][0]["hours"].append({"location": "main", "weekday": "sun", "start": "00:00", "end": "06:00"})
    return setup


# Range Sat 27 .. Mon 29 March 2027 (Berlin). Local times in the comments.
ROWS = [
    dict(start=z("2027-03-27T22:30:00Z"), status="completed", price="50.00", created=z("2027-03-27T20:30:00Z")),   # Sat 23:30, lead 2 h
    dict(start=z("2027-03-27T23:30:00Z"), status="confirmed", price="40.00", created=z("2027-03-20T23:30:00Z")),   # Sun 00:30 (UTC still Sat), lead 168 h
    dict(start=z("2027-03-28T08:00:00Z"), status="no_show", price="30.00", created=z("2027-03-28T07:00:00Z")),     # Sun 10:00 CEST, lead 1 h
    dict(start=z("2027-03-29T07:00:00Z"), status="cancelled", price="20.00"),                                       # Mon 09:00
    dict(start=z("2027-03-29T08:00:00Z"), status="completed", price="25.00", seats=2, source="widget",
         created=z("2027-02-27T08:00:00Z")),                                                                       # Mon 10:00, 2 seats, lead 720 h
    dict(start=z("2027-03-26T09:00:00Z"), status="confirmed", price="99.00"),   # Fri 26: the previous period (24..26)
    dict(start=z("2027-03-29T22:30:00Z"), status="confirmed", price="99.00"),   # Tue 30 00:30 local: outside, though the UTC date is the 29th
]


@pytest.fixture()
def dst_tenant(make_tenant, put_appointments):
    slug = make_tenant(dst_setup())
    put_appointments(slug, ROWS)
    return slug


def figure(app, slug, metric, **args):
    from app.extensions import db
    from app.services import analytics
    from app.tenancy import tenant_session

    args = {"from": "2027-03-27", "to": "2027-03-29", **args}
    with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
        return analytics.figure(session, ref, metric, analytics.parse_range(args, NOW.date()), NOW)


def test_bookings_are_bucketed_by_local_day_across_dst(app, dst_tenant):
    data = figure(app, dst_tenant, "bookings")
    assert [(s["period"], s["bookings"]) for s in data["series"]] == [("2027-03-27", 1), ("2027-03-28", 2), ("2027-03-29", 2)]
    assert data["total"] == 5
    assert data["previous"] == {"from": "2027-03-24", "to": "2027-03-26", "total": 1}
    assert data["trend"] == 4.0
    weekly = figure(app, dst_tenant, "bookings", interval="week")
    assert [(s["period"], s["bookings"]) for s in weekly["series"]] == [("2027-03-22", 3), ("2027-03-29", 2)]


def test_cancellation_and_no_show_rates(app, dst_tenant):
    cancelled = figure(app, dst_tenant, "cancellations")
    assert (cancelled["bookings"], cancelled["cancelled"], cancelled["rate"]) == (5, 1, 0.2)
    no_show = figure(app, dst_tenant, "no_shows")
    # Four appointments not cancelled have started by NOW; one was a no-show.
    assert (no_show["started"], no_show["no_show"], no_show["rate"]) == (4, 1, 0.25)
    assert [s["rate"] for s in no_show["series"]] == [0.0, 0.5, 0.0]


def test_revenue_booked_realised_lost(app, dst_tenant):
    data = figure(app, dst_tenant, "revenue")
    [eur] = data["currencies"]
    assert eur["currency"] == "EUR"
    assert (eur["booked"], eur["realised"], eur["lost_no_show"], eur["lost_cancelled"]) == ("170.00", "100.00", "30.00", "20.00")
    assert eur["previous"]["booked"] == "99.00"
    assert [s["booked"] for s in eur["series"]] == ["50.00", "70.00", "50.00"]


def test_utilisation_counts_the_real_hours_of_a_dst_day(app, dst_tenant):
    data = figure(app, dst_tenant, "utilisation")
    [ann] = data["staff"]
    # Sun 00:00-06:00 on the spring-forward night is 300 min; Mon 09:00-17:00 is 480; Sat none.
    assert ann["available_minutes"] == 780.0
    # Four live appointments of 30 min (the two-seat one counts once).
    assert ann["booked_minutes"] == 120.0
    assert ann["utilisation"] == round(120 / 780, 4)


def test_utilisation_follows_new_time_off_and_changed_hours(app, dst_tenant):
    """Available minutes are remembered per rules version and time off: a change to either shows at once."""
    from sqlalchemy import text

    from app.extensions import db
    from app.tenancy import tenant_session

    assert figure(app, dst_tenant, "utilisation")["staff"][0]["available_minutes"] == 780.0
    with app.app_context(), tenant_session(db.engine, dst_tenant) as (session, _ref):
        # Mon 29 March 09:00-10:00 Berlin off.
        session.execute(text("INSERT INTO time_off (staff_id, start_at, end_at) SELECT id, :a, :b FROM staff"),
                        {"a": z("2027-03-29T07:00:00Z"), "b": z("2027-03-29T08:00:00Z")})
    assert figure(app, dst_tenant, "utilisation")["staff"][0]["available_minutes"] == 720.0
    with app.app_context(), tenant_session(db.engine, dst_tenant) as (session, _ref):
        # Monday's hours end at 16:00 instead of 17:00 (a rules change: the version moves on).
        session.execute(text("UPDATE staff_hours SET end_min = 960 WHERE weekday = 0"))
    assert figure(app, dst_tenant, "utilisation")["staff"][0]["available_minutes"] == 660.0


def test_lead_time_heatmap_and_sources(app, dst_tenant):
    lead = figure(app, dst_tenant, "lead_time")
    assert lead["appointments"] == 4
    assert lead["mean_hours"] == 222.75
    assert lead["median_hours"] == 85.0
    assert [b["count"] for b in lead["buckets"]] == [2, 0, 1, 1]
    popular = figure(app, dst_tenant, "popular")
    heat = popular["heatmap"]
    assert heat[5][23] == 1 and heat[6][0] == 1 and heat[6][10] == 1 and heat[0][10] == 1  # Sat, Sun, Sun, Mon
    assert sum(map(sum, heat)) == 4
    assert popular["services"][0]["bookings"] == 5
    sources = figure(app, dst_tenant, "sources")
    assert [(s["source"], s["bookings"], s["cancelled"], s["previous"]) for s in sources["sources"]] == [
        ("admin", 4, 1, 1), ("widget", 1, 0, 0)]


def test_filters_by_key_and_unknown_key(app, dst_tenant):
    from app.errors import UnknownKey

    assert figure(app, dst_tenant, "bookings", staff="ann")["total"] == 5
    with pytest.raises(UnknownKey):
        figure(app, dst_tenant, "bookings", staff="nobody")


def test_empty_business_has_zeros_not_errors(app, make_tenant):
    slug = make_tenant()
    data = figure(app, slug, "bookings")
    assert data["total"] == 0 and data["trend"] is None and len(data["series"]) == 3
    assert figure(app, slug, "cancellations")["rate"] is None
    assert figure(app, slug, "revenue")["currencies"][0]["booked"] == "0.00"
    assert figure(app, slug, "lead_time")["mean_hours"] is None


def test_agency_rollup_per_currency_and_only_its_tenants(app, make_tenant, put_appointments):
    from app.extensions import db
    from app.services import analytics
    from tenants.provisioning import create_agency

    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Two currencies")
        db.session.commit()
    eur = make_tenant(dst_setup(), agency=agency)
    usd_setup = minimal_setup()
    usd_setup["tenant"].update(currency="USD", timezone="America/New_York")
    usd_setup["locations"][0]["timezone"] = "America/New_York"
    usd = make_tenant(usd_setup, agency=agency)
    empty = make_tenant(agency=agency)
    outsider = make_tenant()  # the shared test agency: must not appear
    put_appointments(eur, ROWS)
    put_appointments(usd, [dict(start=z("2027-03-28T14:00:00Z"), status="completed", price="80.00", currency="USD"),
                           # Mon 29 22:30 New York = Tue 30 02:30Z: inside for New York
                           dict(start=z("2027-03-30T02:30:00Z"), status="no_show", price="15.00", currency="USD")])
    put_appointments(outsider, [dict(start=z("2027-03-28T10:00:00Z"), price="1000.00")])
    with app.app_context():
        from app.models.public import Agency
        from sqlalchemy import select

        agency_id = db.session.scalar(select(Agency.id).where(Agency.slug == agency))
        tenants = analytics.agency_tenants(db.session, agency_id)
        data = analytics.agency_rollup(db.session, tenants, dt.date(2027, 3, 27), dt.date(2027, 3, 29), NOW)
    by_slug = {t["tenant"]: t for t in data["tenants"]}
    assert set(by_slug) == {eur, usd, empty}
    assert by_slug[eur]["revenue_booked"] == "170.00" and by_slug[eur]["currency"] == "EUR"
    assert by_slug[usd]["revenue_booked"] == "95.00" and by_slug[usd]["revenue_realised"] == "80.00"
    assert by_slug[usd]["no_show_rate"] == 0.5
    assert by_slug[empty]["bookings"] == 0 and "no bookings in the period" in by_slug[empty]["attention"]
    assert {c["currency"]: c["revenue_booked"] for c in data["per_currency"]} == {"EUR": "170.00", "USD": "95.00"}
    assert data["bookings"] == 7


def test_recent_agency_rollup_is_reused_only_for_the_same_businesses_and_dates(app, make_tenant, put_appointments):
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Tenant
    from app.services import analytics

    first, second = make_tenant(), make_tenant()
    put_appointments(first, [dict(start=z("2027-03-28T10:00:00Z"), price="10.00")])
    lo, hi = dt.date(2027, 3, 27), dt.date(2027, 3, 29)
    with app.app_context():
        def tenants(*slugs):
            return list(db.session.scalars(select(Tenant).where(Tenant.slug.in_(slugs)).order_by(Tenant.name)))

        cached = analytics.recent_agency_rollup(db.session, tenants(first), lo, hi, NOW, max_age=60)
        assert cached["bookings"] == 1
        put_appointments(first, [dict(start=z("2027-03-28T12:00:00Z"), price="10.00")])
        # Within max_age the same businesses and dates get the copy; a fresh read sees the new row.
        assert analytics.recent_agency_rollup(db.session, tenants(first), lo, hi, NOW, max_age=60) is cached
        assert analytics.recent_agency_rollup(db.session, tenants(first), lo, hi, NOW, max_age=0)["bookings"] == 2
        # Another set of businesses or other dates is never answered from that copy.
        both = analytics.recent_agency_rollup(db.session, tenants(first, second), lo, hi, NOW, max_age=60)
        assert {t["tenant"] for t in both["tenants"]} == {first, second} and both["bookings"] == 2
        assert analytics.recent_agency_rollup(db.session, tenants(first), lo, hi + dt.timedelta(days=1), NOW,
                                              max_age=60)["bookings"] == 2


def test_cli_prints_the_same_json(app, dst_tenant):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["analytics", dst_tenant, "--from", "2027-03-27", "--to", "2027-03-29", "--metric", "revenue"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["revenue"]["currencies"][0]["booked"] == "170.00"
    bad = runner.invoke(args=["analytics", dst_tenant, "--from", "2027-03-29", "--to", "2027-03-27"])
    assert bad.exit_code != 0 and "error:" in bad.output
    missing = runner.invoke(args=["analytics", f"nope_{uuid.uuid4().hex[:6]}", "--from", "2027-03-27", "--to", "2027-03-29"])
    assert missing.exit_code != 0


def test_period_buckets_match_local_dates_in_new_york_across_both_dst_changes(app, make_tenant, put_appointments):
    """Periods are found by comparing instants with local midnights; the answer must be what the
    local calendar date says, around local midnight on both DST change days and at month ends."""
    import random
    from collections import Counter
    from zoneinfo import ZoneInfo

    setup = minimal_setup()
    setup["tenant"]["timezone"] = "America/New_York"
    setup["locations"][0]["timezone"] = "America/New_York"
    slug = make_tenant(setup)
    zone = ZoneInfo("America/New_York")
    rnd = random.Random(7)
    starts = []
    for day in ("2027-03-13", "2027-03-14", "2027-03-31", "2027-04-01", "2027-10-31", "2027-11-07", "2027-11-08"):
        midnight = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), zone).astimezone(UTC)
        # Minutes either side of local midnight, never overlapping (one staff member, 30-minute rows).
        starts += [midnight + dt.timedelta(minutes=m) for m in (-95, -31, 0, 31, 95)]
    starts += [dt.datetime(2027, 1, 1, tzinfo=UTC) + dt.timedelta(hours=5 * i + 0.5) for i in range(0, 1700, 37)]
    statuses = ["confirmed", "cancelled", "completed", "no_show"]
    rows = [dict(start=s, status=rnd.choice(statuses), price="10.00") for s in sorted(set(starts))]
    put_appointments(slug, rows)
    starts = [row["start"] for row in rows]

    for interval, first in (("day", lambda d: d), ("week", lambda d: d - dt.timedelta(days=d.weekday())),
                            ("month", lambda d: d.replace(day=1))):
        lo, hi = dt.date(2027, 3, 1), dt.date(2027, 11, 30)
        data = figure(app, slug, "bookings", **{"from": lo.isoformat(), "to": hi.isoformat(), "interval": interval})
        local_days = [s.astimezone(zone).date() for s in starts]
        expected = Counter(first(d).isoformat() for d in local_days if lo <= d <= hi)
        got = {s["period"]: s["bookings"] for s in data["series"] if s["bookings"]}
        assert got == dict(expected), interval
        previous = hi - lo + dt.timedelta(days=1)
        assert data["previous"]["total"] == sum(1 for d in local_days if lo - previous <= d < lo), interval
        money = figure(app, slug, "revenue", **{"from": lo.isoformat(), "to": hi.isoformat(), "interval": interval})
        [eur] = money["currencies"]
        booked = Counter(first(row["start"].astimezone(zone).date()).isoformat() for row in rows
                         if row["status"] != "cancelled" and lo <= row["start"].astimezone(zone).date() <= hi)
        assert {s["period"]: s["booked"] for s in eur["series"] if s["booked"] != "0.00"} == {
            period: f"{10 * n}.00" for period, n in booked.items()}, interval
