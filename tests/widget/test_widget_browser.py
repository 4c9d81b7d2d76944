"""The widget in headless Chromium: a host page on another loopback port embeds the loader and a customer books.

Three origins: the app (live server), an allowed host site and a foreign site.
"""

from __future__ import annotations

import time

import pytest
from axe_support import assert_accessible
import requests
from widget_support import ARTIFACTS, NOW, tenant_rows

pytestmark = pytest.mark.browser
EVIL = '<img src=x onerror="window.__xss=1">'

def host_html(live: str, body: str) -> str:
    return (f"<!doctype html><html><head><title>Host</title></head><body><h1>My salon</h1>{body}"
            f'<script src="{live}/widget/v1/loader.js"></script>'
            "<script>window.events=[];['booking_completed','closed','opened','resize'].forEach(function(t){"
            "Upzento.on(t,function(d){window.events.push([t,d])})});</script></body></html>")


def _events(page, kind):
    return [d for t, d in page.evaluate("window.events") if t == kind]


def test_customer_books_through_the_embedded_widget(app, live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(
        origins=[allowed.origin],
        fields=[{"key": "reason", "label": f"Reason {EVIL}", "field_type": "select", "required": True,
                 "options": ["Check-up", "Pain"], "help_text": f"Help {EVIL}"},
                {"key": "note", "label": "Note", "field_type": "textarea"}],
        consents={"terms": "Be on time.", "privacy": "We keep data for 2 years."},
    )
    allowed.pages["/book.html"] = host_html(live_server, f'<div id="w" data-upzento-tenant="{slug}" data-upzento-widget="{widget}"></div>')
    t0 = time.monotonic()
    page.goto(f"{allowed.origin}/book.html")
    frame = page.frame_locator("iframe.upzw-frame")
    frame.locator('button.upz-card[data-key="visit"]').click()
    first_slot = frame.locator("button.upz-slot").first
    first_slot.wait_for()
    assert first_slot.get_attribute("data-start") == "2027-01-01T08:00:00Z"  # Friday, 09:00 Berlin
    assert first_slot.inner_text().strip() == "09:00"  # detected zone: the context's Europe/Berlin
    print(f"page load to first slots: {time.monotonic() - t0:.3f}s")
    # Switching the time zone re-renders the same instants in the chosen zone.
    frame.locator("#upz-tz").click()  # the full zone list is filled on first use
    frame.locator("#upz-tz").select_option("America/New_York")
    assert frame.locator("button.upz-slot").first.inner_text().strip() == "03:00"
    assert frame.locator(".upz-day h2").first.inner_text().startswith("Friday")
    frame.locator("#upz-tz").select_option("Europe/Berlin")
    frame.locator("button.upz-slot").first.click()

    # Submitting empty: inline errors on every required field, nothing booked.
    frame.locator("#upz-submit").click()
    for field in ("upz-name", "upz-email", "upz-f-reason", "upz-consent-terms", "upz-consent-privacy"):
        assert frame.locator(f"#{field}").get_attribute("aria-invalid") == "true", field
        assert frame.locator(f"#{field}-err").is_visible()
    assert tenant_rows(app, slug, "SELECT count(*) FROM appointment")[0][0] == 0
    # Labels with markup are shown as text, never run.
    assert EVIL in frame.locator('label[for="upz-f-reason"]').inner_text()
    assert frame.locator("img[src=x]").count() == 0

    frame.locator("#upz-name").fill("Eve Example")
    frame.locator("#upz-email").fill("eve@example.com")
    frame.locator("#upz-f-reason").select_option("Pain")
    frame.locator("#upz-f-note").fill(EVIL)
    frame.locator("#upz-consent-terms").check()
    frame.locator("#upz-consent-privacy").check()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-form-1280.png"), full_page=True)
    frame.locator("#upz-submit").click()
    frame.locator("#upz-done").wait_for()
    appt_id = frame.locator("#upz-done").get_attribute("data-appointment")

    page.wait_for_function("window.events.some(function(e){return e[0]==='booking_completed'})")
    assert _events(page, "booking_completed")[0]["appointmentId"] == appt_id
    # The iframe reported its height and the loader applied it.
    assert _events(page, "resize") and page.eval_on_selector("iframe.upzw-frame", "f => parseInt(f.style.height)") > 200
    assert page.evaluate("window.__xss") is None

    rows = tenant_rows(app, slug, "SELECT status, source, answers FROM appointment WHERE id = :id", id=appt_id)
    assert rows[0][0] == "confirmed" and rows[0][1] == "widget" and rows[0][2] == {"reason": "Pain", "note": EVIL}
    events = tenant_rows(app, slug, "SELECT event_type FROM outbox_event WHERE aggregate_id = :id", id=appt_id)
    assert ("appointment.booked",) in [tuple(e) for e in events]
    assert tenant_rows(app, slug, "SELECT count(*) FROM consent_record WHERE appointment_id = :id", id=appt_id)[0][0] == 2
    manage = frame.locator("#upz-manage").get_attribute("href")
    assert manage.startswith(f"/portal/{slug}/manage/")
    # "Add to Outlook" is built from the booking (Outlook.com's compose link; nothing is fetched).
    outlook = frame.locator("#upz-outlook").get_attribute("href")
    assert outlook.startswith("https://outlook.live.com/calendar/0/deeplink/compose?")
    assert "startdt=2027-01-01T08%3A00%3A00Z" in outlook and "enddt=2027-01-01T08%3A30%3A00Z" in outlook
    assert "eve%40example.com" not in outlook
    page.screenshot(path=str(ARTIFACTS / "widget-done-1280.png"), full_page=True)

    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{allowed.origin}/book.html")
    page.frame_locator("iframe.upzw-frame").locator('button.upz-card[data-key="visit"]').click()
    page.frame_locator("iframe.upzw-frame").locator("button.upz-slot").first.wait_for()
    width = page.eval_on_selector("iframe.upzw-frame", "f => f.getBoundingClientRect().width")
    assert width <= 375
    page.screenshot(path=str(ARTIFACTS / "widget-slots-375.png"), full_page=True)


# In the frame only: the moment flow.js's own script has run (its first mark), before it has started
# the flow (that waits for the first paint), click the first server-drawn slot.
EARLY_CLICK = """(function () {
  if (!/\\/frame$/.test(location.pathname)) return;
  var mark = performance.mark.bind(performance);
  performance.mark = function (name) {
    if (name === "upz-js-start") queueMicrotask(function () {
      var slot = document.querySelector("#upz-times button.upz-slot");
      window.__early = [document.activeElement && document.activeElement.tagName, slot && slot.getAttribute("data-start")];
      if (slot) slot.click();
    });
    return mark.apply(null, arguments);
  };
})();"""


def test_first_slots_come_drawn_in_the_frame_page_and_book_through_flow_js(live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    # Without running any script: the frame page itself carries the first slot buttons.
    html = requests.get(f"{live_server}/widget/v1/{slug}/{widget}/frame?service=visit", headers={"Accept-Language": "en-GB"}, timeout=10).text
    assert '<button type="button" class="upz-slot" data-start="2027-01-01T08:00:00Z">09:00</button>' in html
    allowed.pages["/drawn.html"] = host_html(
        live_server, f'<div data-upzento-tenant="{slug}" data-upzento-widget="{widget}" data-service="visit"></div>')

    page.goto(f"{allowed.origin}/drawn.html")
    frame = page.frame_locator("iframe.upzw-frame")
    child = next(f for f in page.frames if f.url.startswith(live_server))
    child.wait_for_function("performance.getEntriesByName('upz-first-slots').length > 0")
    # flow.js adopted the drawn step: focus on its heading, the rest of the week added, the zone picker live.
    assert child.evaluate("document.activeElement.tagName") == "H1"
    frame.locator(".upz-day").nth(4).wait_for()
    slot = frame.locator("button.upz-slot").first
    assert slot.inner_text().strip() == "09:00"
    slot.focus()
    page.keyboard.press("Enter")
    assert frame.locator("h1").inner_text() == "Your details"
    assert "09:00" in frame.locator(".upz-ok").inner_text()

    # A click that lands before flow.js has started the flow still goes through it.
    page.add_init_script(EARLY_CLICK)
    page.goto(f"{allowed.origin}/drawn.html")
    frame.locator("#upz-form").wait_for()
    child = next(f for f in page.frames if f.url.startswith(live_server))
    assert child.evaluate("window.__early") == ["BODY", "2027-01-01T08:00:00Z"]  # the flow had not focused its heading yet
    assert frame.locator("h1").inner_text() == "Your details"
    assert "09:00" in frame.locator(".upz-ok").inner_text()


def test_popup_and_floating_modes_open_and_close(live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    allowed.pages["/modes.html"] = host_html(live_server, (
        '<div id="p"></div>'
        f"<script>document.addEventListener('DOMContentLoaded',function(){{"
        f"Upzento.mount({{target:'#p',tenant:'{slug}',widget:'{widget}',mode:'popup',label:'Book (popup)',service:'visit'}});"
        f"Upzento.mount({{tenant:'{slug}',widget:'{widget}',mode:'floating',label:'Book (floating)'}});}});</script>"))
    page.goto(f"{allowed.origin}/modes.html")
    popup = page.get_by_role("button", name="Book (popup)")
    popup.click()
    dialog = page.get_by_role("dialog")
    assert dialog.is_visible()
    frame = page.frame_locator(".upzw-overlay:not([hidden]) iframe")
    frame.locator("button.upz-slot").first.wait_for()  # preselected service: straight to the times
    frame.locator("#upz-close").click()  # the iframe asks to close via postMessage
    page.wait_for_function("window.events.some(function(e){return e[0]==='closed'})")
    assert not page.locator(".upzw-overlay").first.is_visible()
    assert page.evaluate("document.activeElement.textContent") == "Book (popup)"  # focus returns to the opener

    floating = page.get_by_role("button", name="Book (floating)")
    box = floating.bounding_box()
    assert box["x"] > 1000 and box["y"] > 700  # fixed at the bottom right
    floating.click()
    frame = page.frame_locator(".upzw-overlay:not([hidden]) iframe")
    frame.locator('button.upz-card[data-key="visit"]').wait_for()
    page.screenshot(path=str(ARTIFACTS / "widget-floating-1280.png"))
    page.keyboard.press("Escape")
    page.wait_for_function("window.events.filter(function(e){return e[0]==='closed'}).length >= 2")
    assert page.locator(".upzw-overlay:not([hidden])").count() == 0


def test_keyboard_only_reaches_the_slots(live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    allowed.pages["/kb.html"] = host_html(live_server, f'<div data-upzento-tenant="{slug}" data-upzento-widget="{widget}"></div>')
    page.goto(f"{allowed.origin}/kb.html")
    frame = page.frame_locator("iframe.upzw-frame")
    frame.locator('button.upz-card[data-key="visit"]').focus()
    page.keyboard.press("Enter")
    slot = frame.locator("button.upz-slot").first
    slot.wait_for()
    slot.focus()
    page.keyboard.press("Enter")
    assert frame.locator("h1").inner_text() == "Your details"
    assert frame.locator('label[for="upz-name"]').count() == 1


def test_a_foreign_origin_gets_a_link_to_the_booking_page_and_never_the_booking_frame(live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, foreign = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    frame_url = f"{live_server}/widget/v1/{slug}/{widget}/frame"
    foreign.pages["/steal.html"] = host_html(live_server, f'<div data-upzento-tenant="{slug}" data-upzento-widget="{widget}"></div>')
    # A plain iframe (no loader, no origin parameter): the browser's Referer names the page.
    foreign.pages["/plain.html"] = f'<!doctype html><html><body><iframe src="{frame_url}" title="Booking"></iframe></body></html>'
    # A page that claims to be the allowed site gets the real frame, which the browser then refuses.
    foreign.pages["/liar.html"] = (f'<!doctype html><html><body><iframe src="{frame_url}?origin={allowed.origin}" '
                                   'title="Booking"></iframe></body></html>')
    for path in ("/steal.html", "/plain.html"):
        page.goto(f"{foreign.origin}{path}")
        inner = page.frame_locator("iframe")
        link = inner.get_by_role("link", name="Open the booking page")
        link.wait_for()
        assert link.get_attribute("href").startswith(frame_url) and link.get_attribute("target") == "_blank"
        assert inner.locator("#upz-app").count() == 0
        assert_accessible(page.frames[1], "not-allowed fallback")
    page.goto(f"{foreign.origin}/steal.html")
    page.frame_locator("iframe").locator("#upz-elsewhere").wait_for()
    assert page.evaluate("window.events.length") == 0  # the fallback posts nothing to a foreign page
    blocked = []
    page.on("console", lambda msg: blocked.append(msg.text) if "frame-ancestors" in msg.text else None)
    page.goto(f"{foreign.origin}/liar.html")
    deadline = time.monotonic() + 5
    while not blocked and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert blocked, "Chromium did not report the frame-ancestors refusal"
    child = [f for f in page.frames if f != page.main_frame]
    assert child and all(f.url.startswith("chrome-error:") or not f.query_selector("#upz-app") for f in child)


def test_the_inline_frame_shrinks_back_to_its_content(live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    allowed.pages["/book.html"] = host_html(live_server, f'<div id="w" data-upzento-tenant="{slug}" data-upzento-widget="{widget}"></div>')
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(f"{allowed.origin}/book.html")
    frame = page.frame_locator("iframe.upzw-frame")
    iframe = page.locator("iframe.upzw-frame")

    def settled_height():
        last, same = -1, 0
        for _ in range(40):
            h = iframe.evaluate("el => el.getBoundingClientRect().height")
            same = same + 1 if h == last else 0
            if same >= 3:
                return h
            last = h
            page.wait_for_timeout(50)
        return last

    frame.locator('button.upz-card[data-key="visit"]').click()
    frame.locator("button.upz-slot").first.wait_for()
    tall = settled_height()
    frame.get_by_role("button", name="← Back").click()
    frame.locator('button.upz-card[data-key="visit"]').wait_for()
    short = settled_height()
    content = page.frames[1].evaluate("Math.ceil(document.body.getBoundingClientRect().height)")
    assert short < tall - 100, (tall, short)
    assert abs(short - content) <= 2, (short, content)  # no white space below the content


def test_group_class_shows_seats_left_and_books_a_weekly_series(app, live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    allowed.pages["/class.html"] = host_html(
        live_server, f'<div data-upzento-tenant="{slug}" data-upzento-widget="{widget}" data-service="class" data-lang="de"></div>')
    page.goto(f"{allowed.origin}/class.html")
    frame = page.frame_locator("iframe.upzw-frame")
    slot = frame.locator("button.upz-slot").first
    assert "Noch 5 Plätze" in slot.inner_text()  # German, seats left of the group session
    slot.click()
    frame.locator("#upz-seats").select_option("2")
    frame.locator("#upz-repeat").check()
    frame.locator("#upz-count").select_option("3")
    frame.locator("#upz-name").fill("Gus Group")
    frame.locator("#upz-email").fill("gus@example.com")
    frame.locator("#upz-submit").click()
    assert "3 Termine gebucht" in frame.locator("#upz-done").inner_text()
    rows = tenant_rows(app, slug, "SELECT seats, series_id IS NOT NULL FROM appointment ORDER BY start_at")
    assert [tuple(r) for r in rows] == [(2, True)] * 3
    page.goto(f"{allowed.origin}/class.html")
    assert "Noch 3 Plätze" in page.frame_locator("iframe.upzw-frame").locator("button.upz-slot").first.inner_text()
