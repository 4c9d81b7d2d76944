"""The audit log, written generically at flush: every ORM insert, update and delete of a
business table (and of the platform's own tables) becomes one audit row in the same
transaction, so admin, REST API, portal, importer and jobs are covered without a line
in any view.

- After each flush one multi-row INSERT writes the flush's entries (rows travel as one
  JSON parameter through `jsonb_to_recordset`, a statement PostgreSQL plans once).
- Who and from where come from `app.audit_context` (set at the request/job/CLI boundary).
- Changed fields are recorded as {column: [before, after]}; personal fields (registry)
  as "‹personal›" and secrets as "‹secret›", never their values.
- Writes made with plain SQL (the booking hot path) and operations that change no row
  (exports, reports, CLI runs) call `note()`; pending notes are written with the next
  flush or just before commit, and dropped when their (sub)transaction rolls back.
- ORM bulk UPDATE/DELETE statements are noted with their SQL (no per-row values).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import functools
import io
import json
import uuid
from typing import Any, Iterable

from sqlalchemy import event, inspect, select, text
from sqlalchemy.orm import Mapper, Session

from app.audit_context import Actor, current_actor
from app.gdpr import registry
from app.models.base import TenantBase

PERSONAL_MARK = "‹personal›"
SECRET_MARK = "‹secret›"

# Tables that are logs or internal plumbing themselves (auditing them would log the log).
SKIP_TABLES = frozenset({
    "audit_log", "platform_audit_log", "outbox_event", "idempotency_key", "portal_login_attempt",
    "status_change", "notification_delivery", "audit_report", "platform_mail", "webhook_delivery",
})
PUBLIC_AUDITED = frozenset({"agency", "tenant", "membership", "tenant_api_key", "agency_notification_template",
                            "access_token", "ab_user", "ab_role", "ab_group"})
# Bookkeeping columns whose change alone is not worth a row (sign-ins, key use, timestamps).
IGNORED_COLUMNS = frozenset({"updated_at", "last_used_at", "last_login", "login_count", "fail_login_count",
                             "changed_on", "changed_by_fk"})

_PENDING = "audit_pending"
_COLUMNS = ("actor_kind", "actor_id", "actor_label", "ip", "user_agent", "request_id", "entity", "entity_id",
            "action", "changes")
_TENANT_INSERT_SQL = (
    "INSERT INTO {table} (" + ", ".join(_COLUMNS) + ", customer_id, staff_id) SELECT " + ", ".join(_COLUMNS)
    + ", customer_id, staff_id FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(actor_kind text, actor_id text,"
    " actor_label text, ip text, user_agent text, request_id text, entity text, entity_id text, action text,"
    " changes jsonb, customer_id int, staff_id int)"
)


@functools.lru_cache(maxsize=4096)
def _tenant_insert(schema: str | None):
    # Schema-qualified: a note made while routed to a tenant lands there even if the
    # session is routed elsewhere by the time it is written (the importer unroutes before commit).
    return text(_TENANT_INSERT_SQL.format(table=f'"{schema}".audit_log' if schema else "audit_log"))


_PLATFORM_INSERT = text(
    "INSERT INTO public.platform_audit_log (" + ", ".join(_COLUMNS) + ", tenant_slug) SELECT " + ", ".join(_COLUMNS)
    + ", tenant_slug FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(actor_kind text, actor_id text,"
    " actor_label text, ip text, user_agent text, request_id text, entity text, entity_id text, action text,"
    " changes jsonb, tenant_slug text)"
)


# --------------------------------------------------------------------------- values


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def shown(table: str, column: str, value: Any) -> Any:
    """What the audit log keeps of one value: masked when secret or personal."""
    if value is None:
        return None
    if registry.is_secret(table, column):
        return SECRET_MARK
    if registry.is_personal(table, column) or registry.looks_personal(table, column):
        return PERSONAL_MARK
    return jsonable(value)


def _actor_fields(actor: Actor) -> dict:
    return {"actor_kind": actor.kind, "actor_id": actor.id, "actor_label": (actor.label or None) and actor.label[:200],
            "ip": actor.ip, "user_agent": actor.user_agent,
            # A job serving a batch carries the ids of every request in it, comma-joined: keep what fits.
            "request_id": (actor.request_id or None) and actor.request_id[:128]}


def row_changes(table: str, values: dict, prefix: str = "") -> dict:
    """{column: [None, shown value]} of a row written with plain SQL (bind names may carry a prefix)."""
    out = {}
    for key, value in values.items():
        if prefix and not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if value is not None:
            out[name] = [None, shown(table, name, value)]
    return out


# --------------------------------------------------------------------------- rows from the ORM


def _entry_for(obj, action: str) -> dict | None:
    state = inspect(obj)
    mapper = state.mapper
    table = mapper.local_table.name
    if table in SKIP_TABLES:
        return None
    tenant_row = isinstance(obj, TenantBase)
    if not tenant_row and table not in PUBLIC_AUDITED:
        return None
    changes: dict[str, list] = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        name = getattr(column, "name", attr.key)
        if action == "update":
            if name in IGNORED_COLUMNS:
                continue
            history = state.attrs[attr.key].history
            if not history.added and not history.deleted:
                continue
            before = history.deleted[0] if history.deleted else None
            after = history.added[0] if history.added else None
            if before == after:
                continue
            changes[name] = [shown(table, name, before), shown(table, name, after)]
        else:
            value = state.dict.get(attr.key)
            if value is None:
                continue
            pair = [None, shown(table, name, value)] if action == "create" else [shown(table, name, value), None]
            changes[name] = pair
    if action == "update":
        for rel in mapper.relationships:
            if rel.secondary is None:
                continue
            history = state.attrs[rel.key].history
            if history.added or history.deleted:
                changes[rel.key] = [[_ident(o) for o in history.deleted], [_ident(o) for o in history.added]]
        if not changes:
            return None
    identity = state.identity or ()
    entity_id = ",".join(str(part) for part in identity) if identity else None
    entry = {"entity": table, "entity_id": entity_id, "action": action, "changes": changes}
    if tenant_row:
        entry["customer_id"] = _subject(state, table, "customer")
        entry["staff_id"] = _subject(state, table, "staff")
    else:
        entry["tenant_slug"] = state.dict.get("slug") if table == "tenant" else None
    return entry


def _ident(obj) -> str:
    key = getattr(obj, "key", None)
    if key:
        return str(key)
    identity = inspect(obj).identity
    return ",".join(str(p) for p in identity) if identity else repr(obj)


def _subject(state, table: str, kind: str) -> int | None:
    if table == kind:
        identity = state.identity
        return identity[0] if identity else None
    value = state.dict.get(f"{kind}_id")
    return value if isinstance(value, int) else None


def _noop_set(target, value, oldvalue, initiator):
    return value


@event.listens_for(Mapper, "mapper_configured")
def _keep_old_values(mapper, class_) -> None:
    """Load the old value before an attribute that was not loaded is overwritten, so the log has "before"."""
    table = getattr(mapper.local_table, "name", None)
    if table in SKIP_TABLES or (not issubclass(class_, TenantBase) and table not in PUBLIC_AUDITED):
        return
    for attr in mapper.column_attrs:
        if attr.columns[0].primary_key:
            continue
        event.listen(getattr(class_, attr.key), "set", _noop_set, active_history=True, retval=True)


# --------------------------------------------------------------------------- pending notes


def note(session: Session, entity: str, action: str, entity_id: Any = None, changes: dict | None = None, *,
         customer_id: int | None = None, staff_id: int | None = None, platform: bool = False,
         tenant_slug: str | None = None, actor: Actor | None = None) -> None:
    """Queue an audit row for work the ORM does not see; written at the next flush or before commit."""
    from app.tenancy import plain_session

    session = plain_session(session)
    entry = {"entity": entity, "entity_id": None if entity_id is None else str(entity_id), "action": action,
             "changes": jsonable(changes or {}), **_actor_fields(actor or current_actor())}
    if platform:
        entry["tenant_slug"] = tenant_slug
    else:
        entry["customer_id"], entry["staff_id"] = customer_id, staff_id
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, None if platform else _schema(session), entry))


def _schema(session: Session) -> str | None:
    from app.tenancy import TENANT_INFO_KEY

    return session.info.get(TENANT_INFO_KEY)


def _take_pending(session: Session) -> tuple[dict[str | None, list[dict]], list[dict]]:
    pending = session.info.pop(_PENDING, None) or []
    tenant_rows: dict[str | None, list[dict]] = {}
    platform_rows = []
    for _t, schema, entry in pending:
        if "tenant_slug" in entry:
            platform_rows.append(entry)
        else:
            tenant_rows.setdefault(schema, []).append(entry)
    return tenant_rows, platform_rows


def _write(session: Session, tenant_rows: dict[str | None, list[dict]], platform_rows: list[dict]) -> None:
    if not tenant_rows and not platform_rows:
        return
    connection = session.connection()
    for schema, rows in tenant_rows.items():
        if rows:
            connection.execute(_tenant_insert(schema), {"rows": json.dumps(rows, default=str)})
    if platform_rows:
        connection.execute(_PLATFORM_INSERT, {"rows": json.dumps(platform_rows, default=str)})


@event.listens_for(Session, "after_flush")
def _audit_flush(session: Session, flush_context) -> None:
    if session.info.get("audit_off"):
        return
    entries: list[dict] = []
    for action, objects in (("create", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objects:
            if action == "update" and not session.is_modified(obj):
                continue
            try:
                entry = _entry_for(obj, action)
            except Exception:  # noqa: BLE001 - an unmapped object is nothing to audit
                entry = None
            if entry is not None:
                entries.append(entry)
    tenant_rows, platform_rows = _take_pending(session)
    if entries:
        actor = _actor_fields(current_actor())
        schema = _schema(session)
        for entry in entries:
            entry.update(actor)
            if "tenant_slug" in entry:
                platform_rows.append(entry)
            else:
                tenant_rows.setdefault(schema, []).append(entry)
    _write(session, tenant_rows, platform_rows)


@event.listens_for(Session, "before_commit")
def _audit_before_commit(session: Session) -> None:
    if session.info.get(_PENDING):
        tenant_rows, platform_rows = _take_pending(session)
        _write(session, tenant_rows, platform_rows)


@event.listens_for(Session, "after_soft_rollback")
def _audit_drop_rolled_back(session: Session, previous_transaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    kept = []
    for item in pending:
        outer = item[0]
        while outer is not None and outer is not previous_transaction:
            outer = outer.parent
        if outer is None:
            kept.append(item)
    session.info[_PENDING] = kept


@event.listens_for(Session, "after_transaction_end")
def _audit_forget_at_end(session: Session, transaction) -> None:
    # Whatever was noted and not written by the end of the outermost transaction (a rollback,
    # a close) belongs to work that did not happen.
    if transaction.parent is None and transaction.nested is False:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "do_orm_execute")
def _audit_bulk(state) -> None:
    if not (state.is_update or state.is_delete) or state.session.info.get("audit_off"):
        return
    mapper = state.bind_mapper
    if mapper is None:
        return
    table = mapper.local_table.name
    if table in SKIP_TABLES or (not issubclass(mapper.class_, TenantBase) and table not in PUBLIC_AUDITED):
        return
    note(state.session, table, "bulk_update" if state.is_update else "bulk_delete", None,
         {"statement": str(state.statement)[:1000]}, platform=not issubclass(mapper.class_, TenantBase))


# --------------------------------------------------------------------------- reading


def query(session: Session, *, limit: int | None = 500, offset: int = 0, **filters):
    """Audit rows of the session's tenant, newest first, filtered."""
    stmt = query_statement(**filters)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    return session.scalars(stmt)


def query_statement(*, since: dt.datetime | None = None, until: dt.datetime | None = None,
                    entity: str | None = None, action: str | None = None, actor: str | None = None,
                    customer_id: int | None = None):
    from app.models.gdpr import AuditLog

    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.at < until)
    if entity:
        stmt = stmt.where(AuditLog.entity == entity)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if actor:
        like = f"%{actor}%"
        stmt = stmt.where((AuditLog.actor_label.ilike(like)) | (AuditLog.actor_kind == actor) | (AuditLog.actor_id == actor))
    if customer_id is not None:
        stmt = stmt.where(AuditLog.customer_id == customer_id)
    return stmt


def stream(engine, schema: str, **filters) -> Iterable:
    """Audit rows of one tenant as plain rows from a server-side cursor, on a connection of its own
    (a download streams after the request's session is gone)."""
    from app.models.gdpr import AuditLog

    stmt = query_statement(**filters)
    table = AuditLog.__table__
    core = select(*table.columns).where(stmt.whereclause if stmt.whereclause is not None else text("true"))
    core = core.order_by(table.c.id.desc())
    with engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
            yield from conn.execution_options(stream_results=True, yield_per=1000).execute(core)


CSV_HEADER = ["id", "at", "actor_kind", "actor_id", "actor_label", "ip", "user_agent", "request_id", "entity",
              "entity_id", "action", "changes", "customer_id", "staff_id"]


def as_dict(row) -> dict:
    return {c: jsonable(getattr(row, c)) for c in CSV_HEADER}


def csv_lines(rows: Iterable) -> Iterable[str]:
    """CSV text of audit rows, a line at a time (streamed to the browser)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for row in rows:
        values = as_dict(row)
        values["changes"] = json.dumps(values["changes"], ensure_ascii=False, sort_keys=True)
        writer.writerow([values[c] if values[c] is not None else "" for c in CSV_HEADER])
        if buffer.tell() > 32768:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
