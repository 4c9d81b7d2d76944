"""Auditor reports of one business and period: PDF (WeasyPrint) and CSV, from the same sections.

Sections: processing overview (data categories from the registry, processors in use,
retention settings), subject requests and their timeliness, consents given and
withdrawn, access by role (memberships, API keys, what each role may do), audit-log
summary, and a data-isolation attestation read from PostgreSQL itself (the schema, its
owner, the roles and their grants on it, the append-only triggers).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Callable

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.gdpr import consents, registry, subjects
from app.models.gdpr import AuditLog, RetentionPolicy
from app.models.public import ApiKey, Membership, Tenant
from app.tenancy import TenantRef

UTC = dt.timezone.utc
SECTIONS = ("Processing overview", "Subject requests", "Consents", "Access by role", "Audit log summary",
            "Data isolation")

ROLE_RIGHTS = {
    "Platform Admin": "everything, every business",
    "Agency Owner": "full access to the agency's businesses; audit log, reports",
    "Client Admin": "full access to this business; audit log, subject requests, retention",
    "Staff": "own day, hours, time off and profile",
    "Auditor": "read-only access to assigned businesses; audit log, reports",
}


def build(session: Session, tenant: TenantRef, since: dt.datetime, until: dt.datetime, config: dict | None = None,
          progress: Callable[[int, str], None] | None = None) -> dict:
    """Every section's data (`session` routed to the tenant; public tables are reachable too)."""
    step = progress or (lambda pct, name: None)
    config = config or {}
    report = {"business": {"name": tenant.name, "slug": tenant.slug, "schema": tenant.schema},
              "period": {"from": subjects.iso(since), "to": subjects.iso(until)},
              "generated_at": subjects.iso(dt.datetime.now(UTC))}
    step(5, SECTIONS[0])
    report["processing"] = _processing(session, config)
    step(25, SECTIONS[1])
    timeline = [r for r in subjects.timeline(session) if since.isoformat() <= (r["requested_at"] or "").replace("Z", "+00:00") < until.isoformat()]
    handled = [r for r in timeline if r["handled_at"]]
    report["requests"] = {"items": timeline, "total": len(timeline), "handled": len(handled),
                          "on_time": sum(1 for r in handled if r["on_time"]), "late": sum(1 for r in handled if not r["on_time"]),
                          "open": len(timeline) - len(handled), "open_overdue": sum(1 for r in timeline if not r["handled_at"] and r["overdue"])}
    step(40, SECTIONS[2])
    report["consents"] = consents.summary(session, since, until)
    step(55, SECTIONS[3])
    report["access"] = _access(session, tenant)
    step(70, SECTIONS[4])
    report["audit"] = _audit_summary(session, since, until)
    step(85, SECTIONS[5])
    report["isolation"] = _isolation(session, tenant)
    step(95, "rendering")
    return report


def _processing(session: Session, config: dict) -> dict:
    categories: dict[str, list[str]] = {}
    for key, field in registry.PERSONAL.items():
        categories.setdefault(field.category, []).append(key)
    processors = [{"name": "PostgreSQL (this platform)", "purpose": "storage of all business data", "in_use": True}]
    processors.append({"name": "SMTP relay", "purpose": "email notifications",
                       "in_use": bool(config.get("SMTP_HOST")), "detail": config.get("SMTP_HOST") or "not configured"})
    processors.append({"name": "SMS provider (Twilio-compatible)", "purpose": "SMS notifications",
                       "in_use": bool(config.get("SMS_API_BASE_URL")), "detail": config.get("SMS_API_BASE_URL") or "not configured"})
    providers = _meeting_providers(session)
    for name, keys in (("Google", ("google_meet", "google")), ("Microsoft", ("teams", "microsoft")), ("Zoom", ("zoom",))):
        used = sorted(p for p in providers if p in keys)
        processors.append({"name": name, "purpose": "calendar sync / meeting links", "in_use": bool(used),
                           "detail": ", ".join(used) or "no connection recorded"})
    policy = session.get(RetentionPolicy, 1)
    retention = {"customer_inactive_months": policy.customer_inactive_months if policy else None,
                 "message_body_days": policy.message_body_days if policy else None,
                 "delivery_log_days": policy.delivery_log_days if policy else None,
                 "enabled": bool(policy and policy.enabled),
                 "last_run_at": subjects.iso(policy.last_run_at) if policy else None,
                 "platform_message_body_days": config.get("NOTIFY_BODY_RETENTION_DAYS"),
                 "platform_outbox_days": config.get("OUTBOX_RETENTION_DAYS")}
    return {"categories": {k: sorted(v) for k, v in sorted(categories.items())}, "processors": processors,
            "retention": retention}


def _meeting_providers(session: Session) -> set[str]:
    found: set[str] = set()
    has_meeting = session.scalar(text("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                                      " AND table_name = 'appointment' AND column_name = 'meeting_provider'"))
    if has_meeting:
        found |= {p for p in session.scalars(text("SELECT DISTINCT meeting_provider FROM appointment"
                                                  " WHERE meeting_provider IS NOT NULL"))}
    found |= {p for p in session.scalars(text("SELECT DISTINCT meeting FROM service WHERE meeting <> 'none'"))}
    return found


def _access(session: Session, tenant: TenantRef) -> dict:
    from flask_appbuilder.security.sqla.models import User

    rows = session.execute(
        select(User.username, User.email, User.active, Membership.role, Membership.tenant_id, Membership.agency_id)
        .join(Membership, Membership.user_id == User.id)
        .where((Membership.tenant_id == tenant.id) | (Membership.agency_id == tenant.agency_id)
               | (Membership.role == "Platform Admin"))
        .order_by(Membership.role, User.username)).all()
    members = [{"user": r.username, "role": r.role, "active": r.active,
                "scope": "platform" if r.role == "Platform Admin" else ("business" if r.tenant_id else "agency")}
               for r in rows]
    keys = [{"name": k.name, "prefix": k.prefix, "created_at": subjects.iso(k.created_at),
             "last_used_at": subjects.iso(k.last_used_at), "revoked_at": subjects.iso(k.revoked_at)}
            for k in session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.id))]
    by_role: dict[str, int] = {}
    for member in members:
        by_role[member["role"]] = by_role.get(member["role"], 0) + 1
    return {"members": members, "api_keys": keys,
            "roles": [{"role": role, "may": rights, "members": by_role.get(role, 0)} for role, rights in ROLE_RIGHTS.items()]}


def _audit_summary(session: Session, since: dt.datetime, until: dt.datetime) -> dict:
    period = (AuditLog.at >= since) & (AuditLog.at < until)
    by_action = session.execute(select(AuditLog.entity, AuditLog.action, func.count()).where(period)
                                .group_by(AuditLog.entity, AuditLog.action).order_by(AuditLog.entity, AuditLog.action)).all()
    by_actor = session.execute(select(AuditLog.actor_kind, func.count()).where(period)
                               .group_by(AuditLog.actor_kind).order_by(AuditLog.actor_kind)).all()
    total = session.scalar(select(func.count()).select_from(AuditLog).where(period))
    first = session.scalar(select(func.min(AuditLog.at)))
    return {"total": total, "first_entry_ever": subjects.iso(first),
            "by_action": [{"entity": e, "action": a, "count": n} for e, a, n in by_action],
            "by_actor": [{"actor_kind": k, "count": n} for k, n in by_actor]}


def _isolation(session: Session, tenant: TenantRef) -> dict:
    schema = tenant.schema
    row = session.execute(text(
        "SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner, n.nspacl::text AS acl"
        " FROM pg_namespace n WHERE n.nspname = :s"), {"s": schema}).one()
    tables = session.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": schema})
    grants = session.execute(text(
        "SELECT grantee, string_agg(DISTINCT privilege_type, ', ' ORDER BY privilege_type) AS privileges,"
        " count(DISTINCT table_name) AS tables FROM information_schema.role_table_grants WHERE table_schema = :s"
        " GROUP BY grantee ORDER BY grantee"), {"s": schema}).mappings().all()
    roles = session.execute(text(
        "SELECT rolname, rolsuper, rolcanlogin, has_schema_privilege(rolname, :s, 'USAGE') AS usage"
        " FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY rolname"), {"s": schema}).mappings().all()
    triggers = session.scalars(text(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = :s AND c.relname = 'audit_log' AND NOT t.tgisinternal ORDER BY t.tgname"), {"s": schema}).all()
    others = session.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' AND nspname <> :s"),
                            {"s": schema})
    return {
        "schema": row.nspname, "owner": row.owner, "schema_acl": row.acl or "(owner only)", "tables": tables,
        "grants": [dict(g) for g in grants], "roles": [dict(r) for r in roles],
        "append_only_triggers": list(triggers), "other_tenant_schemas": others,
        "current_user": session.scalar(text("SELECT current_user")),
        "routing": "every transaction runs SET LOCAL search_path TO the business's schema, then public; "
                   "no business table exists in public, so a query without a business fails",
    }


# --------------------------------------------------------------------------- output


def fail(session: Session, report_id: int, error: str, now: dt.datetime) -> bool:
    """A queued or running report will not be built (its job was lost, or could not be queued):
    it fails, saying why; False if it had already ended."""
    from sqlalchemy import update

    from app.models.gdpr import AuditReport

    return session.execute(update(AuditReport).where(
        AuditReport.id == report_id, AuditReport.status.in_(("queued", "running"))).values(
        status="failed", error=error[:2000], finished_at=now).returning(AuditReport.id)).scalar() is not None


def to_pdf(report: dict) -> bytes:
    from app.gdpr.pdf import render_pdf

    return render_pdf("auditor_report.html", r=report, sections=SECTIONS,
                      title=f"Auditor report – {report['business']['name']}")


def csv_rows(report: dict):
    yield ["section", "item", "field", "value"]
    yield ["Report", "business", "slug", report["business"]["slug"]]
    yield ["Report", "period", "from", report["period"]["from"]]
    yield ["Report", "period", "to", report["period"]["to"]]
    p = report["processing"]
    for category, keys in p["categories"].items():
        yield [SECTIONS[0], "data category", category, " ".join(keys)]
    for proc in p["processors"]:
        yield [SECTIONS[0], "processor", proc["name"], f"{'in use' if proc['in_use'] else 'not in use'}: {proc.get('detail', proc['purpose'])}"]
    for key, value in p["retention"].items():
        yield [SECTIONS[0], "retention", key, value]
    req = report["requests"]
    for key in ("total", "handled", "on_time", "late", "open", "open_overdue"):
        yield [SECTIONS[1], "summary", key, req[key]]
    for item in req["items"]:
        yield [SECTIONS[1], f"request {item['id']}", item["kind"],
               f"{item['status']} received {item['requested_at']} due {item['due_at']} handled {item['handled_at'] or '-'}"]
    for c in report["consents"]:
        yield [SECTIONS[2], f"{c['kind']} v{c['version']}", c["channel"] or "-", f"given {c['given']} withdrawn {c['withdrawn']}"]
    for m in report["access"]["members"]:
        yield [SECTIONS[3], m["user"], m["role"], f"{m['scope']}{'' if m['active'] else ' (inactive)'}"]
    for k in report["access"]["api_keys"]:
        yield [SECTIONS[3], f"api key {k['prefix']}", k["name"], "revoked" if k["revoked_at"] else "active"]
    for r in report["access"]["roles"]:
        yield [SECTIONS[3], "role", r["role"], r["may"]]
    a = report["audit"]
    yield [SECTIONS[4], "summary", "entries", a["total"]]
    for row in a["by_action"]:
        yield [SECTIONS[4], row["entity"], row["action"], row["count"]]
    for row in a["by_actor"]:
        yield [SECTIONS[4], "actor", row["actor_kind"], row["count"]]
    iso_ = report["isolation"]
    for key in ("schema", "owner", "schema_acl", "tables", "current_user", "other_tenant_schemas", "routing"):
        yield [SECTIONS[5], "schema", key, iso_[key]]
    yield [SECTIONS[5], "audit_log", "append_only_triggers", " ".join(iso_["append_only_triggers"])]
    for g in iso_["grants"]:
        yield [SECTIONS[5], "grant", g["grantee"], f"{g['privileges']} on {g['tables']} tables"]
    for r in iso_["roles"]:
        yield [SECTIONS[5], "role", r["rolname"], f"usage={r['usage']} superuser={r['rolsuper']} login={r['rolcanlogin']}"]


def to_csv(report: dict) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in csv_rows(report):
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue().encode()


def render(report: dict, fmt: str) -> bytes:
    if fmt == "pdf":
        return to_pdf(report)
    if fmt == "csv":
        return to_csv(report)
    raise ValueError("format must be pdf or csv")
