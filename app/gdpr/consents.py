"""Consents: terms, privacy and marketing records with text version, time, channel and withdrawal.

Terms and privacy are agreed with a booking (app.services.forms.record_consents).
Marketing is optional: given at booking (when a marketing text is published) or in the
portal, withdrawn in the portal or by the business; `customer.marketing_opt_in` mirrors
the latest state and is what follow-up and marketing messages check.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.models import widgets as w

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def active(session: Session, customer_id: int, kind: str) -> list[w.ConsentRecord]:
    return list(session.scalars(
        select(w.ConsentRecord).join(w.ConsentText).where(
            w.ConsentRecord.customer_id == customer_id, w.ConsentText.kind == kind,
            w.ConsentRecord.withdrawn_at.is_(None)).order_by(w.ConsentRecord.at)))


def current_text(session: Session, kind: str) -> w.ConsentText | None:
    return session.scalar(select(w.ConsentText).where(w.ConsentText.kind == kind)
                          .order_by(w.ConsentText.version.desc()).limit(1))


def set_marketing(session: Session, customer: m.Customer, wanted: bool, channel: str, ip: str | None = None,
                  now: dt.datetime | None = None) -> None:
    """Give or withdraw marketing consent; a record is kept per change (when a marketing text exists)."""
    now = now or _now()
    if wanted and not customer.marketing_opt_in:
        text = current_text(session, "marketing")
        if text is not None:
            session.add(w.ConsentRecord(consent_text_id=text.id, customer_id=customer.id, email=customer.email,
                                        ip=(ip or "")[:64] or None, at=now, channel=channel))
    elif not wanted:
        for record in active(session, customer.id, "marketing"):
            record.withdrawn_at, record.withdrawn_channel = now, channel
    customer.marketing_opt_in = wanted
    session.flush()


def withdraw(session: Session, tenant_slug: str, record_ids: list[int], channel: str,
             now: dt.datetime | None = None) -> list[w.ConsentRecord]:
    """Withdraw consent records (terms/privacy withdrawals are recorded; the last active marketing
    consent of a customer also clears their marketing flag, a `customer.updated`).

    An unknown id is a NotFound and nothing is withdrawn; an already withdrawn record stays as it was.
    """
    from app.errors import NotFound
    from app.services import events

    records = [session.get(w.ConsentRecord, record_id) for record_id in record_ids]
    if not records or any(record is None for record in records):
        raise NotFound("no such consent record", "consent")
    now = now or _now()
    for record in records:
        if record.withdrawn_at is None:
            record.withdrawn_at, record.withdrawn_channel = now, channel
    session.flush()
    for customer_id in sorted({r.customer_id for r in records if r.text.kind == "marketing"}):
        customer = session.get(m.Customer, customer_id)
        if customer.marketing_opt_in and not active(session, customer_id, "marketing"):
            customer.marketing_opt_in = False
            events.emit_customer(session, events.CUSTOMER_UPDATED, tenant_slug, customer_id, ["marketing_opt_in"])
    session.flush()
    return records


def summary(session: Session, since: dt.datetime, until: dt.datetime) -> list[dict]:
    """Consents given and withdrawn per kind and version in a period (for auditor reports)."""
    from sqlalchemy import func

    given = session.execute(
        select(w.ConsentText.kind, w.ConsentText.version, w.ConsentRecord.channel, func.count())
        .select_from(w.ConsentRecord).join(w.ConsentText).where(w.ConsentRecord.at >= since, w.ConsentRecord.at < until)
        .group_by(w.ConsentText.kind, w.ConsentText.version, w.ConsentRecord.channel)
        .order_by(w.ConsentText.kind, w.ConsentText.version)).all()
    withdrawn = dict(((k, v), n) for k, v, n in session.execute(
        select(w.ConsentText.kind, w.ConsentText.version, func.count()).select_from(w.ConsentRecord).join(w.ConsentText)
        .where(w.ConsentRecord.withdrawn_at >= since, w.ConsentRecord.withdrawn_at < until)
        .group_by(w.ConsentText.kind, w.ConsentText.version)).all())
    out = [{"kind": k, "version": v, "channel": c, "given": n, "withdrawn": withdrawn.pop((k, v), 0)} for k, v, c, n in given]
    out += [{"kind": k, "version": v, "channel": "", "given": 0, "withdrawn": n} for (k, v), n in withdrawn.items()]
    return out
