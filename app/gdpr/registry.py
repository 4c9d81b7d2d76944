"""The one registry of personal data in a tenant schema: table.column -> category.

It drives the subject export (every registered column of every row linked to the
person), erasure (what each column becomes), the audit log (registered columns are
recorded as changed, never with their values) and the completeness test, which reads
the tenant schema's columns from PostgreSQL and fails on a personal-looking column
that is neither registered here nor listed in NOT_PERSONAL.

Erasure rules:
- "null": set NULL; "blank": set '' (NOT NULL text); "anon": a placeholder unique per
  row (e.g. `erased-42`), "anon_email": `erased-42@erased.invalid`; "empty_json": {} / [];
- "delete": the row goes (tokens, login attempts, idempotency answers);
- "keep": a security record kept under legitimate interest (the audit log's IP and
  browser), exported but not erased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Personal:
    category: str
    erase: str


# Customer-linked rows: table -> SQL condition selecting them for customer :cid / email :email.
# (Staff are linked by staff.id = :sid; see STAFF_LINKS.)
CUSTOMER_LINKS: dict[str, str] = {
    "customer": "id = :cid",
    "appointment": "customer_id = :cid",
    "consent_record": "customer_id = :cid",
    "portal_token": "customer_id = :cid",
    "notification_preference": "customer_id = :cid",
    "erasure_request": "customer_id = :cid",
    "portal_login_attempt": "lower(email) = lower(:email)",
    "notification_delivery": "(appointment_id IN (SELECT id FROM appointment WHERE customer_id = :cid)"
                             " AND recipient_role = 'customer') OR lower(recipient) = lower(:email)",
    "status_change": "appointment_id IN (SELECT id FROM appointment WHERE customer_id = :cid)",
    "outbox_event": "aggregate_id IN (SELECT id::text FROM appointment WHERE customer_id = :cid)",
    "idempotency_key": "response::text ILIKE '%' || :email || '%'",
    "webhook_delivery": "body ILIKE '%' || :email || '%'",
    "audit_log": "customer_id = :cid",
}
STAFF_LINKS: dict[str, str] = {
    "staff": "id = :sid",
    "time_off": "staff_id = :sid",
    "audit_log": "staff_id = :sid",
}

PERSONAL: dict[str, Personal] = {
    # The customer themselves.
    "customer.name": Personal("identity", "anon"),
    "customer.email": Personal("contact", "anon_email"),
    "customer.phone": Personal("contact", "null"),
    "customer.locale": Personal("preference", "null"),
    "customer.timezone": Personal("preference", "null"),
    # Appointments keep service, staff, time, price and status (statistics); these go.
    "appointment.notes": Personal("free_text", "null"),
    "appointment.answers": Personal("form_answers", "empty_json"),
    "appointment.cancel_reason": Personal("free_text", "null"),
    "appointment.manage_token_hash": Personal("token", "null"),
    "appointment.timezone": Personal("preference", "keep"),
    "appointment.meeting_join_url": Personal("meeting", "null"),
    "appointment.meeting_details": Personal("meeting", "null"),
    "appointment.meeting_error": Personal("message", "null"),
    "status_change.actor": Personal("actor", "keep"),
    "status_change.reason": Personal("free_text", "null"),
    "consent_record.email": Personal("contact", "anon_email"),
    "consent_record.ip": Personal("network", "null"),
    "portal_token.token_hash": Personal("token", "delete"),
    "portal_login_attempt.email": Personal("contact", "delete"),
    "portal_login_attempt.ip": Personal("network", "delete"),
    "erasure_request.email": Personal("contact", "null"),
    "erasure_request.ip": Personal("network", "null"),
    "erasure_request.note": Personal("free_text", "keep"),
    "notification_delivery.recipient": Personal("contact", "anon"),
    "notification_delivery.subject": Personal("message", "null"),
    "notification_delivery.body_text": Personal("message", "null"),
    "notification_delivery.body_html": Personal("message", "null"),
    "notification_delivery.last_error": Personal("message", "null"),
    "notification_delivery.provider_id": Personal("message", "keep"),
    "outbox_event.payload": Personal("event", "scrub"),
    "outbox_event.last_error": Personal("message", "null"),
    "idempotency_key.response": Personal("message", "delete"),
    # Outgoing webhooks carry the appointment and its customer: the log rows go with them.
    "webhook_delivery.body": Personal("message", "delete"),
    "webhook_delivery.response_body": Personal("message", "delete"),
    # Background exports of the appointment list (names, emails, phones): kept EXPORT_KEEP_HOURS;
    # erasing anyone deletes every export file of the business, which may hold them.
    "export_chunk.data": Personal("export", "delete"),
    "audit_log.ip": Personal("network", "keep"),
    "audit_log.user_agent": Personal("network", "keep"),
    "audit_log.actor_label": Personal("actor", "keep"),
    # Staff members.
    "staff.name": Personal("identity", "anon"),
    "staff.email": Personal("contact", "null"),
    "staff.phone": Personal("contact", "null"),
    "staff.bio": Personal("free_text", "null"),
    "staff.photo_url": Personal("photo", "null"),
    "time_off.reason": Personal("free_text", "null"),
    "calendar_connection.target_calendar_name": Personal("integration", "keep"),
}

# Personal-looking names that are about the business, not a person.
NOT_PERSONAL: set[str] = {
    "location.name", "location.address", "location.phone", "category.name", "service.name",
    "service.description", "widget.name", "widget.logo_url", "widget.font_family", "widget.button_label",
    "form_field.label", "form_field.help_text", "consent_text.body", "consent_text.created_by",
    "notification_template.subject", "notification_template.body_text", "notification_template.body_html",
    "location_closure.reason", "series.rrule", "audit_log.changes", "audit_report.requested_by",
    "audit_report.error", "audit_report.content", "audit_report.step", "erasure_request.approved_by",
    "erasure_request.handled_by", "staff.user_id", "busy_block.external_id", "outbox_event.event_type",
    "notification_delivery.recipient_role", "retention_policy.dry_run_report", "retention_policy.last_run_report",
    "webhook_delivery.last_error", "webhook_endpoint.url", "webhook_endpoint.description", "webhook_endpoint.disabled_reason",
    "webhook_endpoint.secret_enc", "webhook_endpoint.old_secret_enc", "webhook_delivery.event_type",
    "saved_filter.name", "saved_filter.query", "idempotency_key.request_hash", "widget.show_phone",
    "appointment.meeting_id", "appointment.meeting_provider",
    # Calendar sync: connection state and hashes; the feed token is a secret (masked), not personal data.
    "calendar_connection.last_error", "calendar_event_link.content_hash", "calendar_event_link.push_error",
    "calendar_feed.token_hash", "export_file.error", "export_file.requested_by",
}

# Column names that look personal: a new column matching one must be registered above.
PERSONAL_LOOKING = re.compile(
    r"(^|_)(name|email|mail|phone|mobile|address|street|city|zip|postcode|birth|gender|ip|user_agent|note|notes|"
    r"answer|answers|comment|reason|body|message|recipient|token|secret|password|photo|avatar|bio|"
    r"description|label|subject|payload|response|content|error|actor|attendee|summary)$|"
    r"(_name|_email|_phone|_address|_token|_hash|_ip|_note|_text|_html|_url)$"
)

# Secrets: never written to the audit log in clear, whatever the registry says.
SECRET_COLUMNS: set[str] = {
    "appointment.manage_token_hash", "portal_token.token_hash", "tenant_api_key.secret_hash",
    "access_token.token_hash", "ab_user.password",
}
SECRET_NAME = re.compile(r"(secret|password|token|credential|api_key|private_key|refresh|access_key)", re.I)


def is_secret(table: str, column: str) -> bool:
    return f"{table}.{column}" in SECRET_COLUMNS or bool(SECRET_NAME.search(column))


def is_personal(table: str, column: str) -> bool:
    return f"{table}.{column}" in PERSONAL


def personal_columns(table: str) -> list[str]:
    prefix = table + "."
    return [key[len(prefix):] for key in PERSONAL if key.startswith(prefix)]


def unregistered(columns: list[tuple[str, str]]) -> list[str]:
    """`table.column` names that look personal but are in neither PERSONAL nor NOT_PERSONAL."""
    out = []
    for table, column in columns:
        key = f"{table}.{column}"
        if key in PERSONAL or key in NOT_PERSONAL:
            continue
        if PERSONAL_LOOKING.search(column):
            out.append(key)
    return sorted(out)


_LOOKS: dict[str, bool] = {}


def looks_personal(table: str, column: str) -> bool:
    """An unregistered column whose name looks personal (masked in the audit log until registered)."""
    key = f"{table}.{column}"
    hit = _LOOKS.get(key)
    if hit is None:
        hit = _LOOKS[key] = key not in NOT_PERSONAL and key not in PERSONAL and bool(PERSONAL_LOOKING.search(column))
    return hit
