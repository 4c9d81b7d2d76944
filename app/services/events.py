"""Domain events: the names, and `emit()`, which writes one to the outbox.

An event row is written in the same transaction as the change it describes, so
a rolled-back booking leaves no event behind. The outbox relay (app/jobs)
hands committed rows to RQ for notifications, webhooks and calendar sync.

Events (payload always carries `appointment_id`, `tenant`, and the fields listed):
- appointment.booked          start, end, staff, service, location, customer_id, seats, source, series_id
- appointment.rescheduled     previous_start, previous_end, previous_staff, start, end, staff, sequence
- appointment.cancelled       reason, by (actor), start
- appointment.status_changed  from_status, to_status
- appointment.no_show         start (also emitted as status_changed)
- appointment.meeting_ready   provider (the online meeting's link exists now, or changed)

Customer events (aggregate_id is the customer id; payload carries ids and field names, never values):
- customer.created            customer_id, fields
- customer.updated            customer_id, fields (the names of the fields that changed)
- customer.erased             customer_id, appointment_ids, meetings
- customer.deleted            customer_id (a customer with no appointments removed by the business)
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models.tenant import OutboxEvent
from app.observability import current_request_id

BOOKED = "appointment.booked"
RESCHEDULED = "appointment.rescheduled"
CANCELLED = "appointment.cancelled"
STATUS_CHANGED = "appointment.status_changed"
NO_SHOW = "appointment.no_show"
MEETING_READY = "appointment.meeting_ready"
ALL = (BOOKED, RESCHEDULED, CANCELLED, STATUS_CHANGED, NO_SHOW, MEETING_READY)
# Not about one appointment (aggregate_id is the customer id); consumers that sync
# calendars, meeting links or webhooks remove what they hold about the person.
CUSTOMER_ERASED = "customer.erased"   # customer_id, appointment_ids, meetings [{appointment_id, provider, meeting_id}]
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_DELETED = "customer.deleted"  # customer_id; the row is gone (only customers without appointments can be)
CUSTOMER_EVENTS = (CUSTOMER_CREATED, CUSTOMER_UPDATED, CUSTOMER_ERASED, CUSTOMER_DELETED)
# Columns of `customer` whose change is a customer.updated (created_at and ids never change).
CUSTOMER_FIELDS = ("name", "email", "phone", "locale", "timezone", "sms_opt_out", "marketing_opt_in")


def payload_of(event_type: str, aggregate_id: str, tenant_slug: str, **payload) -> dict:
    """The payload an event of `event_type` carries (refusing unknown events).

    The id of the request (or job) that caused the event rides along as `request_id`,
    so the jobs the relay enqueues for it log under the same id.
    """
    if event_type not in ALL:
        raise ValueError(f"unknown event {event_type!r}")
    body = {"tenant": tenant_slug, "appointment_id": aggregate_id, **payload}
    request_id = current_request_id()
    if request_id is not None and "request_id" not in body:
        body["request_id"] = request_id
    return body


def emit(session: Session, event_type: str, aggregate_id: str, tenant_slug: str, **payload) -> OutboxEvent:
    """Record `event_type` in the outbox of the session's tenant (flushed with the caller's work)."""
    event = OutboxEvent(
        event_type=event_type,
        aggregate_id=aggregate_id,
        payload=payload_of(event_type, aggregate_id, tenant_slug, **payload),
    )
    session.add(event)
    return event


def emit_customer_erased(session: Session, tenant_slug: str, customer_id: int, appointment_ids: list[str],
                         meetings: list[dict] = ()) -> OutboxEvent:
    """`customer.erased`: the person was anonymised; their appointments' external copies (calendar
    events, meetings: `meetings` lists provider and meeting id) must go."""
    body = {"tenant": tenant_slug, "customer_id": customer_id, "appointment_ids": appointment_ids,
            "meetings": list(meetings)}
    return _add_customer_event(session, CUSTOMER_ERASED, customer_id, body)


def emit_customer_deleted(session: Session, tenant_slug: str, customer_id: int) -> OutboxEvent:
    """`customer.deleted`: the row is being deleted in this transaction (a refused delete rolls it back)."""
    return _add_customer_event(session, CUSTOMER_DELETED, customer_id,
                               {"tenant": tenant_slug, "customer_id": customer_id})


def emit_customer(session: Session, event_type: str, tenant_slug: str, customer_id: int,
                  fields=CUSTOMER_FIELDS) -> OutboxEvent | None:
    """`customer.created` / `customer.updated` for one customer (nothing when `fields` is empty).

    Only the names of the changed fields go to the outbox: the values stay in the customer
    row, which erasure anonymises, so an outbox row never keeps a person's data.
    """
    if event_type not in (CUSTOMER_CREATED, CUSTOMER_UPDATED):
        raise ValueError(f"unknown customer event {event_type!r}")
    fields = sorted(set(fields))
    if not fields:
        return None
    body = {"tenant": tenant_slug, "customer_id": customer_id, "fields": fields}
    return _add_customer_event(session, event_type, customer_id, body)


def _add_customer_event(session: Session, event_type: str, customer_id: int, body: dict) -> OutboxEvent:
    """One outbox row about a customer, with the request id when there is one."""
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    event = OutboxEvent(event_type=event_type, aggregate_id=str(customer_id), payload=body)
    session.add(event)
    return event


def changed_customer_fields(customer) -> list[str]:
    """Names of the customer's columns changed in this session and not yet flushed."""
    from sqlalchemy import inspect

    state = inspect(customer)
    changed = []
    for name in CUSTOMER_FIELDS:
        history = state.attrs[name].history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before == "":
            before = None  # an empty form field over a missing value is no change
        if after == "":
            after = None
        if before != after or not history.deleted:
            changed.append(name)
    return changed


def record_customer_changes(session: Session, tenant_slug: str, customer) -> OutboxEvent | None:
    """Emit `customer.created` (a new row: flushed here for its id) or `customer.updated` (the changed fields)."""
    from sqlalchemy import inspect

    state = inspect(customer)
    if state.transient or state.pending:
        session.add(customer)
        session.flush()
        return emit_customer(session, CUSTOMER_CREATED, tenant_slug, customer.id)
    return emit_customer(session, CUSTOMER_UPDATED, tenant_slug, customer.id, changed_customer_fields(customer))
