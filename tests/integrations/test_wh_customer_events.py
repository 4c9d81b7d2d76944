"""customer.created / .updated / .erased: written to the outbox by the services that change customers
(booking, admin form, REST API, portal, erasure), in their transaction, and delivered signed."""

from __future__ import annotations

from fakes.webhook_receiver import WebhookReceiver
from integ_helpers import MONDAY_0900, book, cli, relay, rows, wait_until

CUSTOMER_EVENTS = "customer.created,customer.updated,customer.erased"


def _outbox(app, slug):
    return [(r["event_type"], r["aggregate_id"], r["payload"])
            for r in rows(app, slug, "outbox_event", "event_type LIKE 'customer.%'")]


def test_customer_events_from_every_writer_are_delivered_signed_without_extra_personal_data(
        app, client, make_tenant, make_api_key, make_user, login, pinned_now, integ, integ_workers):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with WebhookReceiver() as receiver:
        add = cli(app, "webhooks", "add", slug, receiver.url, "--events", CUSTOMER_EVENTS)
        assert add.exit_code == 0, add.output
        receiver.secret = dict(line.split(" ", 1) for line in add.output.strip().splitlines())["secret"]

        # Booking: a new address is created; the same person again with the same details is no event;
        # a new name is an update naming the field (not its value).
        book(client, slug)
        book(client, slug, start="2027-01-11T09:00:00Z")
        response = client.post(f"/api/v1/public/{slug}/bookings", json={
            "service": "visit", "start": "2027-01-11T10:00:00Z", "timezone": "Europe/Berlin",
            "customer": {"name": "Eve Renamed", "email": "EVE@example.com", "phone": "+49 30 1234567"}})
        assert response.status_code == 201, response.get_json()
        outbox = _outbox(app, slug)
        assert [(t, p.get("fields")) for t, _a, p in outbox] == [
            ("customer.created", ["email", "locale", "marketing_opt_in", "name", "phone", "sms_opt_out", "timezone"]),
            ("customer.updated", ["name", "phone"])]
        eve = int(outbox[0][1])
        assert all("Eve" not in str(p) and "example.com" not in str(p) for _t, _a, p in outbox)

        # REST API: create and update.
        key = {"Authorization": f"Bearer {make_api_key(slug)}"}
        created = client.post("/api/v1/customers/", headers=key, json={"name": "Rita Rest", "email": "rita@example.com"})
        assert created.status_code == 201, created.get_data(as_text=True)
        rita = created.get_json()["id"]
        put = client.put(f"/api/v1/customers/{rita}", headers=key, json={"phone": "+4930999888"})
        assert put.status_code == 200, put.get_data(as_text=True)
        # A refused write (duplicate address) leaves no event behind.
        dup = client.post("/api/v1/customers/", headers=key, json={"name": "Dup", "email": "RITA@example.com"})
        assert dup.status_code == 422

        # Admin form: add and edit.
        admin = make_user("Client Admin", tenant=slug)
        with app.test_client() as browser:
            login(browser, admin)
            added = browser.post("/customerview/add", data={"name": "Ada Admin", "email": "ada@example.com"})
            assert added.status_code == 302, added.get_data(as_text=True)[:500]
            [ada] = [r["id"] for r in rows(app, slug, "customer", "email = 'ada@example.com'")]
            edited = browser.post(f"/customerview/edit/{ada}", data={"name": "Ada Admin", "email": "ada@example.com",
                                                                     "locale": "de"})
            assert edited.status_code == 302, edited.get_data(as_text=True)[:500]

        # Erasure.
        with app.app_context():
            from app.extensions import db
            from app.gdpr import subjects
            from app.models import tenant as m
            from app.tenancy import tenant_session

            with tenant_session(db.engine, slug) as (session, ref):
                subjects.erase_customer(session, ref, session.get(m.Customer, eve), "test")

        kinds = [(t, int(a), p.get("fields")) for t, a, p in _outbox(app, slug)]
        assert kinds[2:] == [("customer.created", rita, kinds[0][2]), ("customer.updated", rita, ["phone"]),
                             ("customer.created", ada, kinds[0][2]), ("customer.updated", ada, ["locale"]),
                             ("customer.erased", eve, None)]

        relay(app, slug)
        integ_workers.start(1)
        got = wait_until(lambda: len(receiver.received) >= 7 and receiver.payloads(), timeout=60)
        assert receiver.rejected == [] and len(got) == 7
        by_type = [(p["type"], p["data"]["customer"]["id"]) for p in got]
        assert by_type == [("customer.created", eve), ("customer.updated", eve), ("customer.created", rita),
                           ("customer.updated", rita), ("customer.created", ada), ("customer.updated", ada),
                           ("customer.erased", eve)]
        rita_created = got[2]["data"]
        assert rita_created["customer"]["email"] == "rita@example.com" and rita_created["customer"]["phone"] == "+4930999888"
        assert set(rita_created["customer"]) == {"id", "name", "email", "phone", "locale", "timezone", "created_at"}
        assert got[3]["data"]["change"] == {"fields": ["phone"]}
        erased = got[6]["data"]
        assert erased == {"customer": {"id": eve}, "appointment_ids": erased["appointment_ids"]}
        assert len(erased["appointment_ids"]) == 3
        # Eve's earlier deliveries were planned after the erasure: they carry the anonymised row, never her data.
        assert "Eve" not in str(got[0]) and "eve@example.com" not in str(got).lower()


def test_a_refused_booking_writes_no_customer_event(app, client, make_tenant, pinned_now):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    book(client, slug, start=MONDAY_0900, email="first@example.com")
    taken = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": MONDAY_0900, "timezone": "Europe/Berlin",
        "customer": {"name": "Late Comer", "email": "late@example.com"}})
    assert taken.status_code == 409
    assert [t for t, _a, _p in _outbox(app, slug)] == ["customer.created"]
    assert rows(app, slug, "customer", "email = 'late@example.com'") == []


def _marketing_consent(app, slug, email):
    """A published marketing text and the customer's consent to it (as the widget or portal records it)."""
    from app.extensions import db
    from app.gdpr import consents
    from app.models import tenant as m
    from app.models import widgets as w
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        if consents.current_text(session, "marketing") is None:
            session.add(w.ConsentText(kind="marketing", version=1, body="News by e-mail", created_by="test"))
            session.flush()
        customer = session.query(m.Customer).filter_by(email=email).one()
        consents.set_marketing(session, customer, True, "portal")
        return customer.id, [r.id for r in consents.active(session, customer.id, "marketing")]


def test_deletion_consent_withdrawal_and_sms_stop_are_customer_events(
        app, client, make_tenant, make_api_key, make_user, login, pinned_now, integ, integ_workers):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with WebhookReceiver() as receiver:
        add = cli(app, "webhooks", "add", slug, receiver.url, "--events", "customer.updated,customer.deleted")
        assert add.exit_code == 0, add.output
        receiver.secret = dict(line.split(" ", 1) for line in add.output.strip().splitlines())["secret"]
        key = {"Authorization": f"Bearer {make_api_key(slug)}"}

        # Deleted through the REST API and the admin: customer.deleted with the id only.
        rest = client.post("/api/v1/customers/", headers=key, json={"name": "Rita Rest", "email": "rita@example.com"})
        rita = rest.get_json()["id"]
        assert client.delete(f"/api/v1/customers/{rita}", headers=key).status_code == 200
        book(client, slug)  # Eve has an appointment: deleting her is refused and writes nothing
        [eve] = [r["id"] for r in rows(app, slug, "customer", "email = 'eve@example.com'")]
        assert client.delete(f"/api/v1/customers/{eve}", headers=key).status_code == 422
        admin = make_user("Client Admin", tenant=slug)
        with app.test_client() as browser:
            login(browser, admin)
            assert browser.post("/customerview/add", data={"name": "Ada Admin", "email": "ada@example.com"}).status_code == 302
            [ada] = [r["id"] for r in rows(app, slug, "customer", "email = 'ada@example.com'")]
            assert browser.post(f"/customerview/delete/{ada}").status_code == 302
            assert browser.post(f"/customerview/delete/{eve}").status_code == 302  # refused: flashed, kept
            assert [r["id"] for r in rows(app, slug, "customer")] == [eve]

            # The business records a withdrawn marketing consent: the flag clears, once.
            eve_id, [consent] = _marketing_consent(app, slug, "eve@example.com")
            assert rows(app, slug, "customer", f"id = {eve}")[0]["marketing_opt_in"] is True
            for _ in range(2):
                done = browser.post("/consentrecordview/action_post", data={"action": "withdraw", "rowid": str(consent)})
                assert done.status_code == 302
            [record] = rows(app, slug, "consent_record", f"id = {consent}")
            assert record["withdrawn_channel"] == "admin" and record["withdrawn_at"] is not None
            assert rows(app, slug, "customer", f"id = {eve}")[0]["marketing_opt_in"] is False

        # An auditor may read the evidence but not record a withdrawal.
        _eve, [again] = _marketing_consent(app, slug, "eve@example.com")
        auditor = make_user("Auditor", tenant=slug)
        with app.test_client() as browser:
            login(browser, auditor)
            assert browser.get("/consentrecordview/list/").status_code == 200
            refused = browser.post("/consentrecordview/action_post", data={"action": "withdraw", "rowid": str(again)})
            assert refused.status_code in (302, 403)
        assert rows(app, slug, "consent_record", f"id = {again}")[0]["withdrawn_at"] is None

        kinds = [(t, int(a), p.get("fields")) for t, a, p in _outbox(app, slug) if t != "customer.created"]
        assert kinds == [("customer.deleted", rita, None), ("customer.deleted", ada, None),
                         ("customer.updated", eve, ["marketing_opt_in"])]

        relay(app, slug)
        integ_workers.start(1)
        got = wait_until(lambda: len(receiver.received) >= 3 and receiver.payloads(), timeout=60)
        assert receiver.rejected == [] and len(got) == 3
        assert [(p["type"], p["data"]) for p in got[:2]] == [("customer.deleted", {"customer": {"id": rita}}),
                                                             ("customer.deleted", {"customer": {"id": ada}})]
        assert got[2]["type"] == "customer.updated" and got[2]["data"]["change"] == {"fields": ["marketing_opt_in"]}
