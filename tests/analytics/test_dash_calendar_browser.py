"""Headless Chromium on the admin calendar's week view: drag an appointment to a free time (saved,
rescheduling event queued for the notifications), then onto a taken time (refused with the
engine's reason, put back)."""

from __future__ import annotations

import re
import datetime as dt
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from sqlalchemy import select
from support import minimal_setup, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")


def _at(day, hh, mm=0):
    return dt.datetime.combine(day, dt.time(hh, mm), BERLIN).astimezone(dt.timezone.utc)


def _row(app, slug, appointment_id):
    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        appt = session.get(m.Appointment, __import__("uuid").UUID(appointment_id))
        pending = list(session.scalars(select(m.OutboxEvent.event_type).where(
            m.OutboxEvent.aggregate_id == appointment_id, m.OutboxEvent.relayed_at.is_(None))))
        return appt.start_at.astimezone(BERLIN).strftime("%H:%M"), pending


def _drag(page, event, day, hhmm):
    """Drag an event by its top edge so its new start is the slot `hhmm` of `day`."""
    box = None
    for _ in range(20):  # a refetch may be replacing the element just now
        box = event.bounding_box()
        if box:
            break
        page.wait_for_timeout(100)
    lane = page.locator(f'.fc-timegrid-slot-lane[data-time="{hhmm}:00"]').first.bounding_box()
    column = page.locator(f'td.fc-timegrid-col[data-date="{day}"]').first.bounding_box()
    x0, y0 = box["x"] + box["width"] / 2, box["y"] + 3
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0, y0 + 8, steps=4)
    page.mouse.move(column["x"] + column["width"] / 2, lane["y"] + 3, steps=15)
    page.mouse.up()


def test_drag_to_free_time_saves_and_onto_taken_time_is_refused(app, live_server, page, make_tenant, make_user, book_real):
    slug = make_tenant(minimal_setup())
    day = next_weekday(2, weeks_ahead=2)  # a Wednesday, 09:00-17:00
    moving = book_real(slug, _at(day, 10))
    book_real(slug, _at(day, 14))
    user = make_user("Client Admin", tenant=slug)

    page.goto(f"{live_server}/login/")
    page.fill("#username", user)
    page.fill("#password", "password-1")
    page.click("[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_server}/calendar/?date={day}&timezone=Europe/Berlin")
    event = page.locator(f'[data-appointment="{moving}"]')
    event.wait_for()
    assert page.locator(".fc-timeGridWeek-view").count() == 1

    _drag(page, event, day, "12:00")
    # Locator waits, not wait_for_function: the admin's CSP allows no eval, which that one needs.
    expect(page.locator("#upz-cal-status")).to_have_text(re.compile(r"^Moved"))
    start, pending = _row(app, slug, moving)
    assert start == "12:00"
    assert "appointment.rescheduled" in pending  # the outbox row the relay turns into the customer's notification

    page.wait_for_load_state("networkidle")  # the refetch after the move has drawn the events again
    event = page.locator(f'[data-appointment="{moving}"]')
    event.wait_for()
    _drag(page, event, day, "14:00")
    expect(page.locator("#upz-cal-status")).to_have_text(re.compile(r"^Not moved"))
    status = page.locator("#upz-cal-status").text_content()
    assert "Not moved:" in status and len(status) > len("Not moved: ")
    assert _row(app, slug, moving)[0] == "12:00"
    # Put back where it was: still drawn at 12:00.
    assert page.locator(f'[data-appointment="{moving}"] .fc-event-time').first.text_content().startswith("12:00")
