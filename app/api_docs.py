"""The OpenAPI 3.1 document of the tenant REST API (`/api/v1/openapi.json`) and its browsable page (`/api/v1/docs`).

Built from the code, so it cannot drift from the routes: the catalogue resources from their
FAB ModelRestApi classes (columns, types, lengths and nullability read from the SQLAlchemy
models), the booking, availability, webhook and analytics endpoints and the public booking
API (`/api/v1/public/{tenant}/...`, no key) from the descriptions below.
`tests/api/test_api_contract.py` runs schemathesis against the served document: no answer
may be a 5xx or differ from its documented schema. The page uses the Swagger UI files that
Flask-AppBuilder ships (no CDN). FAB's own 3.0 document stays at `/api/v1/_openapi`.
"""

from __future__ import annotations

import copy
from functools import lru_cache

from flask import Blueprint, Response, current_app, jsonify, render_template_string, url_for
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import types as sat

bp = Blueprint("api_docs", __name__)

ERROR_CODES = {
    "invalid": "a value breaks a rule (422) or cannot be read (400)",
    "invalid_json": "the body is not a JSON object",
    "required": "a required value is missing",
    "unknown_field": "the body names a field this endpoint does not take",
    "unknown_key": "a service, location, staff or customer this business does not have",
    "duplicate": "a key or name already used",
    "unauthorized": "no or an invalid API key / session (401)",
    "key_expired": "the API key has expired (401)",
    "not_allowed": "the key's scope or location, or the role, does not allow this (403)",
    "tenant_suspended": "the business is suspended (403)",
    "not_found": "no such item in this business (404)",
    "slot_unavailable": "the time is taken or not bookable (409; may list `reasons`)",
    "cancelled": "a cancelled appointment cannot change (409)",
    "precondition_failed": "If-Match does not match the current ETag (412)",
    "idempotency_mismatch": "the Idempotency-Key was used with another body (422)",
    "idempotency_in_progress": "a request with this Idempotency-Key is still running (409)",
    "range_too_long": "the availability range is longer than allowed (422)",
    "rate_limited": "too many requests (429, see Retry-After)",
    "too_large": "the body is too large (413)",
    "method_not_allowed": "the path does not take this method (405)",
}

DESCRIPTION = """\
REST API of one business (tenant). **Authentication**: an API key of the business
(`Authorization: Bearer upz_...` or `X-Api-Key: upz_...`; Settings → API keys), or the admin
session. A key has the scope `read` (GET only) or `read write`, may expire, has a rate-limit plan,
and may be restricted to one location (that location's appointments, availability, catalogue,
the categories of services offered there and the customers with an appointment there). Each key
reaches only its own business: another business's ids are 404. An **agency key** (Settings →
Agency API keys) reads the analytics endpoints only: the agency rollup, and any business of its
agency with `?tenant=<slug>`.

**Errors** always look like `{"error": {"code": "...", "message": "...", "field": "..." | null}}`;
codes: """ + ", ".join(f"`{c}` ({d})" for c, d in ERROR_CODES.items()) + """.

**Idempotency**: every POST takes an `Idempotency-Key` header (≤ 200 characters); the same key
and body within 24 h get the first answer again (`Idempotent-Replayed: true`).

**Concurrency**: single resources answer with an `ETag`; updates (PUT, appointment actions)
take `If-Match` and answer 412 when the resource changed meanwhile.

**Rate limits** per API key (its plan's limit) and per client address (`RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` on every answer); over the limit: 429 with `Retry-After`.

**Catalogue lists** page by keyset like appointments (`limit`, then `cursor` = the previous
page's `next_cursor`; `{result, next_cursor}`, by id), or with FAB's `q` in Rison, e.g.
`q=(page:0,page_size:50,order_column:name,order_direction:asc)` (offset pages `{count, ids, result}`).
"""


def _nullable(schema: dict, nullable: bool) -> dict:
    if not nullable:
        return schema
    kind = schema.get("type")
    if kind is None:
        return schema
    return {**schema, "type": [kind, "null"]}


def _column_schema(column) -> dict:
    kind = column.type
    if isinstance(kind, sat.Boolean):
        schema = {"type": "boolean"}
    elif isinstance(kind, (sat.Integer, sat.BigInteger, sat.SmallInteger)):
        schema = {"type": "integer"}
    elif isinstance(kind, sat.Numeric):
        schema = {"type": "number"}
    elif isinstance(kind, sat.DateTime):
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(kind, sat.Date):
        schema = {"type": "string", "format": "date"}
    elif isinstance(kind, sat.String) and not isinstance(kind, sat.Text) and getattr(kind, "length", None):
        schema = {"type": "string", "maxLength": kind.length}
    elif isinstance(kind, (sat.String, sat.Text)):
        schema = {"type": "string"}
    else:
        schema = {}
    return _nullable(schema, bool(column.nullable))


def _model_field(model, name: str, *, writing: bool) -> tuple[dict, bool]:
    """(schema, required on create) of one FAB column name ("key", "category.id", "locations", ...)."""
    mapper = sa_inspect(model)
    base, _, attr = name.partition(".")
    if base in mapper.relationships:
        rel = mapper.relationships[base]
        many = rel.uselist
        if writing:
            item = {"type": "integer"}
            if many:
                return {"type": "array", "items": item}, False
            local = next(iter(rel.local_columns))
            return _nullable(item, bool(local.nullable)), not local.nullable
        target = {"type": "object", "properties": {attr or "id": {"type": "integer"}}}
        if many:
            return {"type": "array", "items": target}, False
        local = next(iter(rel.local_columns))
        return _nullable(target, bool(local.nullable)), False
    column = mapper.columns[name]
    schema = _column_schema(column)
    required = (not column.nullable and column.default is None and column.server_default is None
                and not column.primary_key)
    return schema, required


def _fab_resource(api_cls) -> tuple[dict, dict]:
    """(paths, schemas) of one FAB ModelRestApi resource."""
    model = api_cls.datamodel.obj
    name = api_cls.resource_name
    title = "".join(part.title() for part in name.split("_"))
    item = {"type": "object", "properties": {}}
    for column in api_cls.show_columns or api_cls.list_columns:
        item["properties"][column.split(".")[0]] = _model_field(model, column, writing=False)[0]
    list_item = {"type": "object", "properties": {}}
    for column in api_cls.list_columns:
        list_item["properties"][column.split(".")[0]] = _model_field(model, column, writing=False)[0]
    add = {"type": "object", "properties": {}, "required": []}
    for column in api_cls.add_columns:
        schema, required = _model_field(model, column, writing=True)
        add["properties"][column] = schema
        if required:
            add["required"].append(column)
    if not add["required"]:
        del add["required"]
    edit = {"type": "object", "properties": {c: _model_field(model, c, writing=True)[0] for c in api_cls.edit_columns}}
    schemas = {title: item, f"{title}ListItem": list_item, f"{title}Create": add, f"{title}Update": edit}
    ref = lambda s: {"$ref": f"#/components/schemas/{s}"}  # noqa: E731
    tag = [title]
    collection = f"/api/v1/{name}/"
    single = f"/api/v1/{name}/{{pk}}"
    pk = {"name": "pk", "in": "path", "required": True, "schema": {"type": "integer"}}
    paths = {
        collection: {
            "get": {
                "tags": tag, "operationId": f"list_{name}", "summary": f"List {name.replace('_', ' ')}",
                "description": "Two ways to page. **Keyset** (recommended): send `limit` (and then `cursor`); rows "
                               "come by id ascending as `{result, next_cursor}` (null on the last page); a page costs the "
                               "same at any depth and rows added meanwhile are neither skipped nor repeated; `q` may "
                               "still carry `filters` (not page, page_size or order). **Offset** (FAB's, without "
                               "limit/cursor): `q=(page:0,page_size:50,order_column:name,order_direction:asc)` answers "
                               "`{count, ids, result}`.",
                "parameters": [{"$ref": "#/components/parameters/RisonQuery"},
                               {"$ref": "#/components/parameters/Cursor"}, {"$ref": "#/components/parameters/Limit"}],
                "responses": {"200": _json("A page (keyset: result, next_cursor; offset: count, ids, result)", {
                    "type": "object", "required": ["result"],
                    "properties": {"count": {"type": "integer"}, "ids": {"type": "array"},
                                   "next_cursor": NULL_STR,
                                   "result": {"type": "array", "items": ref(f"{title}ListItem")}}}),
                              **_errors(400, 401, 403, 404, 422, 429)},
            },
            "post": {
                "tags": tag, "operationId": f"create_{name}", "summary": f"Create one of {name.replace('_', ' ')}",
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref(f"{title}Create")}}},
                "responses": {"201": _json("Created", {"type": "object", "required": ["id", "result"],
                                                       "properties": {"id": {"type": "integer"},
                                                                      "result": {"type": "object"}}}),
                              **_errors(400, 401, 403, 404, 409, 422, 429)},
            },
        },
        single: {
            "parameters": [pk],
            "get": {
                "tags": tag, "operationId": f"get_{name}", "summary": "One item (with its ETag)",
                "responses": {"200": _json("The item", {"type": "object", "required": ["id", "result"],
                                                        "properties": {"id": {"type": "integer"},
                                                                       "result": ref(title)}},
                                           headers={"ETag": {"$ref": "#/components/headers/ETag"}}),
                              **_errors(400, 401, 403, 404, 405, 422, 429)},
            },
            "put": {
                "tags": tag, "operationId": f"update_{name}", "summary": "Change fields (If-Match optional)",
                "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref(f"{title}Update")}}},
                "responses": {"200": _json("Changed", {"type": "object", "required": ["result"],
                                                       "properties": {"result": {"type": "object"}}}),
                              **_errors(400, 401, 403, 404, 405, 412, 422, 429)},
            },
            "delete": {
                "tags": tag, "operationId": f"delete_{name}", "summary": "Delete",
                "responses": {"200": _json("Deleted", {"type": "object", "properties": {"message": {"type": "string"}}}),
                              **_errors(400, 401, 403, 404, 405, 422, 429)},
            },
        },
    }
    return paths, schemas


def _json(description: str, schema: dict, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _errors(*statuses: int) -> dict:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


NULL_STR = {"type": ["string", "null"]}
REF = {"type": ["object", "null"], "properties": {"id": {"type": "integer"}, "key": {"type": "string"},
                                                    "name": {"type": "string"}}}
APPOINTMENT = {
    "type": "object",
    "required": ["id", "status", "start", "end", "service", "staff", "seats", "source"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": ["pending", "confirmed", "cancelled", "completed", "no_show"]},
        "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
        "timezone": NULL_STR, "service": REF, "staff": REF, "location": REF,
        "customer": {"type": ["object", "null"], "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "email": NULL_STR, "phone": NULL_STR}},
        "seats": {"type": "integer", "minimum": 1}, "price": {"type": ["string", "null"], "pattern": r"^-?\d+\.\d{2}$"},
        "currency": NULL_STR, "source": {"type": "string"}, "notes": NULL_STR,
        "series_id": {"type": ["string", "null"], "format": "uuid"},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "meeting": {"type": ["object", "null"], "properties": {
            "provider": {"type": "string"}, "status": {"type": "string"}, "join_url": NULL_STR,
            "passcode": NULL_STR, "dial_in": {}}},
    },
}
KEY = {"type": "string", "minLength": 1, "maxLength": 63}
APPOINTMENT_CREATE = {
    "type": "object", "required": ["service", "start"], "additionalProperties": False,
    "properties": {
        "service": KEY, "start": {"type": "string", "format": "date-time"},
        "customer": {"type": "object", "required": ["name", "email"], "additionalProperties": False,
                     "properties": {"name": {"type": "string", "maxLength": 200},
                                    "email": {"type": "string", "format": "email", "maxLength": 254},
                                    "phone": {"type": "string", "maxLength": 40}}},
        "customer_id": {"type": "integer", "minimum": 1},
        "location": KEY, "staff": KEY, "seats": {"type": "integer", "minimum": 1, "maximum": 1000},
        "timezone": {"type": "string", "maxLength": 64}, "notes": {"type": "string", "maxLength": 2000},
        "status": {"type": "string", "enum": ["confirmed", "pending"]},
    },
    "description": "`customer` or `customer_id`. Booked through the booking service: hours, notice, "
                   "buffers and overlaps are checked (`slot_unavailable` with `reasons`).",
}
ENDPOINT = {"type": "object", "required": ["id", "scope", "url", "events", "enabled"], "properties": {
    "id": {"type": "string"}, "scope": {"type": "string", "enum": ["tenant", "agency"]}, "url": {"type": "string"},
    "events": {"type": "array", "items": {"type": "string"}}, "description": NULL_STR, "enabled": {"type": "boolean"},
    "failing_since": NULL_STR, "disabled_reason": NULL_STR, "last_success_at": NULL_STR, "created_at": NULL_STR,
    "secret_rotating_until": NULL_STR}}
DELIVERY = {"type": "object", "required": ["id", "webhook_id", "event_type", "status", "attempts"], "properties": {
    "id": {"type": "integer"}, "webhook_id": {"type": "string"}, "endpoint": NULL_STR, "scope": {"type": "string"},
    "event_type": {"type": "string"}, "event_at": NULL_STR, "status": {"type": "string"},
    "attempts": {"type": "integer"}, "next_attempt_at": NULL_STR, "last_status": {"type": ["integer", "null"]},
    "last_error": NULL_STR, "latency_ms": {"type": ["integer", "number", "null"]},
    "request": {"type": "object"}, "response": NULL_STR, "created_at": NULL_STR, "delivered_at": NULL_STR}}


def _booking_paths() -> dict:
    appt = {"$ref": "#/components/schemas/Appointment"}
    one = {"type": "object", "required": ["result"], "properties": {"result": appt}}
    etag = {"ETag": {"$ref": "#/components/headers/ETag"}}
    pk = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "appointment id (UUID); anything else is 404"}
    tag = ["Appointments"]

    def action(op: str, summary: str, body: dict | None) -> dict:
        spec = {"tags": tag, "operationId": op, "summary": summary,
                "parameters": [{"$ref": "#/components/parameters/IfMatch"},
                               {"$ref": "#/components/parameters/IdempotencyKey"}],
                "responses": {"200": _json("The appointment after the change", one, etag),
                              **_errors(400, 401, 403, 404, 409, 412, 422, 429)}}
        if body is not None:
            spec["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
        return spec

    q = lambda name, schema, description: {"name": name, "in": "query", "required": False,  # noqa: E731
                                           "schema": schema, "description": description}
    return {
        "/api/v1/appointments/": {
            "get": {
                "tags": tag, "operationId": "list_appointments",
                "summary": "Appointments by start (ascending), filtered; keyset pages",
                "parameters": [
                    q("from", {"type": "string", "format": "date-time"}, "start at or after (ISO 8601 instant)"),
                    q("to", {"type": "string", "format": "date-time"}, "start before"),
                    q("status", {"type": "string"}, "comma-separated statuses"),
                    q("staff", KEY, "staff key"), q("service", KEY, "service key"), q("location", KEY, "location key"),
                    q("customer", {"type": "integer", "minimum": 1}, "customer id"),
                    q("source", {"type": "string", "maxLength": 20}, "widget, api, admin, import, ..."),
                    q("series", {"type": "string", "format": "uuid"}, "series id"),
                    q("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size (default 50)"),
                ],
                "responses": {"200": _json("A page", {"type": "object", "required": ["result", "next_cursor"],
                                                      "properties": {"result": {"type": "array", "items": appt},
                                                                     "next_cursor": NULL_STR}}),
                              **_errors(400, 401, 403, 404, 422, 429)},
            },
            "post": {
                "tags": tag, "operationId": "create_appointment", "summary": "Book",
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AppointmentCreate"}}}},
                "responses": {"201": _json("Booked", one, etag), **_errors(400, 401, 403, 404, 409, 422, 429)},
            },
        },
        "/api/v1/appointments/{id}": {
            "parameters": [pk],
            "get": {"tags": tag, "operationId": "get_appointment", "summary": "One appointment (with its ETag)",
                    "responses": {"200": _json("The appointment", one, etag), **_errors(400, 401, 403, 404, 429)}},
        },
        "/api/v1/appointments/{id}/reschedule": {"parameters": [pk], "post": action(
            "reschedule_appointment", "Move to another start (and staff member)",
            {"type": "object", "required": ["start"], "additionalProperties": False,
             "properties": {"start": {"type": "string", "format": "date-time"}, "staff": KEY}})},
        "/api/v1/appointments/{id}/cancel": {"parameters": [pk], "post": action(
            "cancel_appointment", "Cancel (idempotent)",
            {"type": "object", "additionalProperties": False,
             "properties": {"reason": {"type": "string", "maxLength": 2000}}})},
        "/api/v1/appointments/{id}/no-show": {"parameters": [pk], "post": action(
            "mark_no_show", "Mark as no-show", None)},
        "/api/v1/appointments/{id}/complete": {"parameters": [pk], "post": action(
            "mark_completed", "Mark as completed", None)},
        "/api/v1/availability/": {
            "get": {
                "tags": ["Availability"], "operationId": "availability",
                "summary": "Bookable starts of a service (at most 62 days)",
                "parameters": [
                    {"name": "service", "in": "query", "required": True, "schema": KEY},
                    {"name": "from", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    q("location", KEY, "location key"), q("staff", KEY, "staff key"),
                    q("timezone", {"type": "string"}, "IANA zone of from/to (default UTC)"),
                ],
                "responses": {"200": _json("Slots", {"type": "object", "required": ["slots"], "properties": {
                    "slots": {"type": "array", "items": {"type": "object", "required": ["start", "end", "staff"],
                                                         "properties": {
                                                             "start": {"type": "string", "format": "date-time"},
                                                             "end": {"type": "string", "format": "date-time"},
                                                             "staff": {"type": "array", "items": {"type": "string"}},
                                                             "seats_left": {"type": ["integer", "null"]}}}}}}),
                              **_errors(400, 401, 403, 404, 422, 429)},
            },
        },
    }


def _webhook_paths() -> dict:
    tag = ["Webhooks"]
    endpoint = {"type": "object", "required": ["endpoint"], "properties": {"endpoint": {"$ref": "#/components/schemas/WebhookEndpoint"}}}
    delivery = {"type": "object", "required": ["delivery"], "properties": {"delivery": {"$ref": "#/components/schemas/WebhookDelivery"}}}
    uid = {"name": "uid", "in": "path", "required": True, "schema": {"type": "string"}}
    did = {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "string"}}
    idem = [{"$ref": "#/components/parameters/IdempotencyKey"}]
    events = {"type": "array", "items": {"type": "string"}}
    return {
        "/api/v1/webhooks/endpoints": {
            "get": {"tags": tag, "operationId": "list_webhook_endpoints", "summary": "The business's and its agency's endpoints",
                    "responses": {"200": _json("Endpoints", {"type": "object", "required": ["endpoints"], "properties": {
                        "endpoints": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookEndpoint"}}}}),
                        **_errors(401, 403, 404, 429)}},
            "post": {"tags": tag, "operationId": "create_webhook_endpoint", "summary": "New endpoint; its secret is shown once",
                     "parameters": idem,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["url"], "properties": {
                             "url": {"type": "string", "format": "uri"}, "events": events,
                             "description": {"type": "string"}}}}}},
                     "responses": {"201": _json("Created", {"type": "object", "required": ["endpoint", "secret"],
                                                            "properties": {"endpoint": {"$ref": "#/components/schemas/WebhookEndpoint"},
                                                                           "secret": {"type": "string", "pattern": "^whsec_"}}}),
                                   **_errors(400, 401, 403, 404, 409, 422, 429)}},
        },
        "/api/v1/webhooks/endpoints/{uid}": {
            "parameters": [uid],
            "get": {"tags": tag, "operationId": "get_webhook_endpoint", "summary": "One endpoint",
                    "responses": {"200": _json("The endpoint", endpoint), **_errors(401, 403, 404, 429)}},
            "patch": {"tags": tag, "operationId": "update_webhook_endpoint", "summary": "Change an endpoint",
                      "requestBody": {"required": False, "content": {"application/json": {"schema": {
                          "type": "object", "properties": {"url": {"type": "string"}, "events": events,
                                                           "description": {"type": "string"},
                                                           "enabled": {"type": "boolean"}}}}}},
                      "responses": {"200": _json("Changed", endpoint), **_errors(400, 401, 403, 404, 422, 429)}},
            "delete": {"tags": tag, "operationId": "delete_webhook_endpoint", "summary": "Delete an endpoint",
                       "responses": {"200": _json("Deleted", {"type": "object", "properties": {"deleted": {"type": "string"}}}),
                                     **_errors(401, 403, 404, 429)}},
        },
        "/api/v1/webhooks/endpoints/{uid}/rotate-secret": {
            "parameters": [uid],
            "post": {"tags": tag, "operationId": "rotate_webhook_secret", "summary": "New secret; the old one signs too for 24 h",
                     "parameters": idem,
                     "responses": {"200": _json("The new secret", {"type": "object", "required": ["secret"],
                                                                   "properties": {"secret": {"type": "string"}}}),
                                   **_errors(400, 401, 403, 404, 409, 422, 429)}},
        },
        "/api/v1/webhooks/endpoints/{uid}/test": {
            "parameters": [uid],
            "post": {"tags": tag, "operationId": "test_webhook_endpoint", "summary": "Send a webhook.test event",
                     "parameters": idem,
                     "responses": {"202": _json("Queued", delivery), **_errors(400, 401, 403, 404, 409, 422, 429)}},
        },
        "/api/v1/webhooks/deliveries": {
            "get": {"tags": tag, "operationId": "list_webhook_deliveries", "summary": "Delivery log, newest first (50 a page)",
                    "parameters": [
                        {"name": "endpoint", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "status", "in": "query", "required": False, "schema": {"type": "string", "enum": ["failed"]}},
                        {"name": "before", "in": "query", "required": False, "schema": {"type": "integer"}}],
                    "responses": {"200": _json("Deliveries", {"type": "object", "required": ["deliveries"], "properties": {
                        "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookDelivery"}},
                        "next_before": {"type": ["integer", "null"]}}}), **_errors(400, 401, 403, 404, 422, 429)}},
        },
        "/api/v1/webhooks/deliveries/{delivery_id}": {
            "parameters": [did],
            "get": {"tags": tag, "operationId": "get_webhook_delivery", "summary": "One delivery with request and response",
                    "responses": {"200": _json("The delivery", delivery), **_errors(400, 401, 403, 404, 422, 429)}},
        },
        "/api/v1/webhooks/deliveries/{delivery_id}/replay": {
            "parameters": [did],
            "post": {"tags": tag, "operationId": "replay_webhook_delivery", "summary": "Send again (same webhook-id)",
                     "parameters": idem,
                     "responses": {"202": _json("Queued", delivery), **_errors(400, 401, 403, 404, 409, 422, 429)}},
        },
        "/api/v1/webhooks/deliveries/replay": {
            "post": {"tags": tag, "operationId": "replay_failed_webhook_deliveries", "summary": "Send every failed delivery again",
                     "parameters": idem,
                     "requestBody": {"required": False, "content": {"application/json": {"schema": {
                         "type": "object", "properties": {"since": {"type": "string", "format": "date-time"},
                                                          "endpoint": {"type": "string"}}}}}},
                     "responses": {"202": _json("Queued", {"type": "object", "properties": {"endpoints": {"type": "integer"}}}),
                                   **_errors(400, 401, 403, 404, 409, 422, 429)}},
        },
    }


def _loose_errors(*statuses: int) -> dict:
    """Error answers of the public API and analytics: the same shape, codes of their own (README "Public API")."""
    return {str(s): {"$ref": f"#/components/responses/P{s}"} for s in statuses}


ANALYTICS_FIGURES = ["bookings", "cancellations", "no_shows", "revenue", "utilisation", "lead_time", "sources", "popular"]


ANALYTICS_SECURITY = [{"bearer": []}, {"apiKeyHeader": []}, {"agencyKey": []}, {"session": []}]


def _analytics_paths() -> dict:
    tag = ["Analytics"]
    date = {"type": "string", "format": "date"}
    q = lambda name, schema, description: {"name": name, "in": "query", "required": False,  # noqa: E731
                                           "schema": schema, "description": description}
    span = [q("from", date, "first local date (default: 29 days before `to`)"),
            q("to", date, "last local date, included (default: today); at most 366 days in all")]
    figure = {"type": "object", "description": "the figure; README \"Analytics\" defines each (money per currency, "
                                               "never summed across currencies)"}
    return {
        "/api/v1/analytics/{metric}": {
            "parameters": [{"name": "metric", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": ANALYTICS_FIGURES}}],
            "get": {
                "tags": tag, "operationId": "analytics_figure",
                "summary": "One figure of the business (a Staff log-in: their own figures only; an agency key: "
                           "the business named by ?tenant=)",
                "security": ANALYTICS_SECURITY,
                "parameters": [*span, {"$ref": "#/components/parameters/Tenant"},
                               q("interval", {"type": "string", "enum": ["day", "week", "month"]}, "bucket size"),
                               q("location", KEY, "location key"), q("staff", KEY, "staff key"),
                               q("service", KEY, "service key"),
                               q("format", {"type": "string", "enum": ["json", "csv"]}, "csv: the same rows as a file")],
                "responses": {"200": {"description": "The figure (JSON, or CSV with format=csv)", "content": {
                    "application/json": {"schema": figure}, "text/csv": {"schema": {"type": "string"}}}},
                    **_loose_errors(400, 401, 403, 404, 422, 429)},
            },
        },
        "/api/v1/analytics/agency": {
            "get": {
                "tags": tag, "operationId": "analytics_agency",
                "summary": "Agency rollup: every business of the agency, totals per currency (an agency API key, or "
                           "an agency owner's or auditor's session; a business's key gets 403)",
                "security": ANALYTICS_SECURITY,
                "parameters": span,
                "responses": {"200": _json("tenants, per_currency, bookings", {"type": "object"}),
                              **_loose_errors(400, 401, 403, 404, 422, 429)},
            },
        },
    }


PUBLIC_APPOINTMENT = {
    "type": "object", "required": ["id", "service", "staff", "start", "end", "status"],
    "properties": {
        "id": {"type": "string", "format": "uuid"}, "service": {"type": "string"}, "service_name": {"type": "string"},
        "staff": {"type": "string"}, "staff_name": {"type": "string"}, "location": NULL_STR, "location_name": NULL_STR,
        "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
        "timezone": NULL_STR, "status": {"type": "string"}, "seats": {"type": "integer"},
        "price": NULL_STR, "currency": NULL_STR, "series_id": NULL_STR,
        "customer": {"type": ["object", "null"]}, "meeting": {"type": ["object", "null"]},
    },
}
PUBLIC_BOOKING = {
    "type": "object", "required": ["service", "start", "customer"],
    "properties": {
        "service": KEY, "start": {"type": "string", "format": "date-time"}, "timezone": {"type": "string"},
        "location": KEY, "staff": KEY, "seats": {"type": "integer", "minimum": 1},
        "customer": {"type": "object", "required": ["name", "email"], "properties": {
            "name": {"type": "string", "maxLength": 200}, "email": {"type": "string", "format": "email"},
            "phone": {"type": "string", "maxLength": 40}, "locale": {"type": "string"}}},
        "answers": {"type": "object", "description": "booking-form answers by field key"},
        "consents": {"type": "object", "description": "{kind: accepted version} for every current consent text"},
        "notes": {"type": "string", "maxLength": 2000}, "widget": {"type": "string"},
        "recurrence": {"type": "object", "required": ["rrule"], "properties": {
            "rrule": {"type": "string"}, "mode": {"type": "string"}}},
    },
}


def _public_paths() -> dict:
    """The public booking API (widget, a business's own site): no key, limited per client address."""
    tag = ["Public booking API"]
    tenant = {"name": "tenant", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 63},
              "description": "the business's slug"}
    token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "the manage token answered by POST /bookings"}
    base = "/api/v1/public/{tenant}"
    errors = (400, 403, 404, 422, 429)
    q = lambda name, schema, required=False: {"name": name, "in": "query", "required": required,  # noqa: E731
                                              "schema": schema}
    listing = lambda key: _json(f"Active {key}", {"type": "object", "required": [key],  # noqa: E731
                                                  "properties": {key: {"type": "array", "items": {"type": "object"}}}})
    appt = {"$ref": "#/components/schemas/PublicAppointment"}
    one = {"type": "object", "required": ["appointment"], "properties": {
        "appointment": appt, "appointments": {"type": "array", "items": appt}}}

    def op(op_id: str, summary: str, responses: dict, **extra) -> dict:
        return {"tags": tag, "operationId": op_id, "summary": summary, "security": [], **extra,
                "responses": {**responses, **_loose_errors(*errors)}}

    return {
        f"{base}/services": {"parameters": [tenant], "get": op("public_services", "Active services",
                                                                {"200": listing("services")})},
        f"{base}/locations": {"parameters": [tenant], "get": op(
            "public_locations", "Active locations (with map and directions links)", {"200": listing("locations")})},
        f"{base}/staff": {"parameters": [tenant], "get": op("public_staff", "Active staff", {"200": listing("staff")})},
        f"{base}/availability": {"parameters": [tenant], "get": op(
            "public_availability", "Bookable starts (at most 62 days)",
            {"200": _json("Slots", {"type": "object", "required": ["slots"], "properties": {
                "slots": {"type": "array", "items": {"type": "object", "required": ["start", "end"]}}}})},
            parameters=[q("service", KEY, True), q("from", {"type": "string", "format": "date"}, True),
                        q("to", {"type": "string", "format": "date"}, True), q("location", KEY), q("staff", KEY),
                        q("timezone", {"type": "string"})])},
        f"{base}/bookings": {"parameters": [tenant], "post": op(
            "public_book", "Book (Idempotency-Key replays the first answer)",
            {"201": _json("Booked; keep manage_token to change or cancel", {
                "type": "object", "required": ["appointment", "manage_token"], "properties": {
                    "appointment": appt, "manage_token": {"type": "string"},
                    "appointments": {"type": "array", "items": appt}, "conflicts": {"type": "array"}}}),
             **_loose_errors(409, 413)},
            parameters=[{"$ref": "#/components/parameters/IdempotencyKey"}],
            requestBody={"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PublicBooking"}}}})},
        f"{base}/bookings/{{token}}": {"parameters": [tenant, token], "get": op(
            "public_show_booking", "The booking (and its series)", {"200": _json("The booking", one)})},
        f"{base}/bookings/{{token}}/reschedule": {"parameters": [tenant, token], "post": op(
            "public_reschedule", "Move to another start (policy window checked)",
            {"200": _json("Moved", one), **_loose_errors(409, 413)},
            requestBody={"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["start"], "properties": {
                    "start": {"type": "string", "format": "date-time"}, "series": {"type": "boolean"}}}}}})},
        f"{base}/bookings/{{token}}/cancel": {"parameters": [tenant, token], "post": op(
            "public_cancel", "Cancel (policy window checked)",
            {"200": _json("Cancelled", {"type": "object", "required": ["appointment"], "properties": {
                "appointment": appt, "cancelled": {"type": "array", "items": {"type": "string"}}}}),
             **_loose_errors(409, 413)},
            requestBody={"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"reason": {"type": "string", "maxLength": 2000},
                                                 "series": {"type": "boolean"}}}}}})},
        f"{base}/bookings/{{token}}/ics": {"parameters": [tenant, token], "get": op(
            "public_booking_ics", "The booking as an iCalendar file",
            {"200": {"description": "text/calendar", "content": {"text/calendar": {"schema": {"type": "string"}}}}})},
        f"{base}/form": {"parameters": [tenant], "get": op(
            "public_form", "Booking-form fields and current consent texts",
            {"200": _json("Fields and consents", {"type": "object", "required": ["fields", "consents"], "properties": {
                "fields": {"type": "array", "items": {"type": "object"}},
                "consents": {"type": "array", "items": {"type": "object"}}}})},
            parameters=[q("service", KEY)])},
        f"{base}/widgets/{{public_id}}": {"parameters": [tenant, {"name": "public_id", "in": "path", "required": True,
                                                                  "schema": {"type": "string"}}],
                                          "get": op("public_widget", "A widget's public settings",
                                                    {"200": _json("The widget", {"type": "object", "required": ["widget"]})})},
    }


def _components(schemas: dict) -> dict:
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "field"],
        "properties": {"code": {"type": "string", "enum": sorted(ERROR_CODES)}, "message": {"type": "string"},
                       "field": {"type": ["string", "null"]}}}}}
    # The public API and analytics answer in the same shape with codes of their own
    # (`policy_window`, `invalid_answers`, `consent_required`, ...), listed in the README.
    any_error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "field": {"type": ["string", "null"]}}}}}
    titles = {400: "Unreadable request", 401: "Not authenticated", 403: "Not allowed", 404: "Not found",
              405: "Not a method of this path (a non-numeric id)", 409: "Conflict", 412: "Precondition failed", 422: "Invalid", 429: "Too many requests"}
    responses = {}
    for status, title in titles.items():
        answer = _json(title, {"$ref": "#/components/schemas/Error"})
        if status == 429:
            answer["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
        responses[f"E{status}"] = answer
    for status, title in {**titles, 409: "Conflict (slot taken, policy window)", 413: "Body too large"}.items():
        answer = _json(title, {"$ref": "#/components/schemas/AnyError"})
        if status == 429:
            answer["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
        responses[f"P{status}"] = answer
    return {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key: upz_..."},
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            "agencyKey": {"type": "http", "scheme": "bearer",
                          "description": "an agency API key (upz_..., also as X-Api-Key; Settings → Agency API keys): "
                                         "read only, the analytics endpoints only (the agency rollup, and "
                                         "/api/v1/analytics/{metric}?tenant=<slug> for any business of the agency)"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session", "description": "the admin session"},
        },
        "parameters": {
            "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "maxLength": 200}},
            "IfMatch": {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            "Cursor": {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                       "description": "next_cursor of the previous page (keyset pages)"},
            "Limit": {"name": "limit", "in": "query", "required": False,
                      "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                      "description": "page size of keyset pages (default 50); with it or cursor the list pages by id"},
            "Tenant": {"name": "tenant", "in": "query", "required": False,
                       "schema": {"type": "string", "maxLength": 63},
                       "description": "a business's slug: required with an agency key (a business of another agency "
                                      "is 404, a suspended one 403); otherwise the business of the key or session, "
                                      "and any other value is 404"},
            "RisonQuery": {"name": "q", "in": "query", "required": False, "schema": {"type": "string"},
                           "description": "Rison: (page:0,page_size:50,order_column:name,order_direction:asc,"
                                          "filters:!((col:name,opr:ct,value:x)))"},
        },
        "headers": {"ETag": {"description": "version of the resource, for If-Match", "schema": {"type": "string"}}},
        "responses": responses,
        "schemas": {"Error": error, "AnyError": any_error, "Appointment": APPOINTMENT,
                    "AppointmentCreate": APPOINTMENT_CREATE, "PublicAppointment": PUBLIC_APPOINTMENT,
                    "PublicBooking": PUBLIC_BOOKING,
                    "WebhookEndpoint": ENDPOINT, "WebhookDelivery": DELIVERY, **schemas},
    }


@lru_cache(maxsize=1)
def _spec_cached(version: str) -> dict:
    from app.api_rest import API_CLASSES

    paths, schemas = {}, {}
    for api_cls in API_CLASSES:
        p, s = _fab_resource(api_cls)
        paths.update(p)
        schemas.update(s)
    paths.update(_booking_paths())
    paths.update(_webhook_paths())
    paths.update(_analytics_paths())
    paths.update(_public_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Upzento Appointments REST API", "version": version, "description": DESCRIPTION},
        "security": [{"bearer": []}, {"apiKeyHeader": []}, {"session": []}],
        "tags": [{"name": n} for n in sorted({t for item in paths.values() for op in item.values()
                                               if isinstance(op, dict) for t in op.get("tags", ())})],
        "paths": paths,
        "components": _components(schemas),
    }


def openapi_spec() -> dict:
    """The document (a copy: callers may change it)."""
    return copy.deepcopy(_spec_cached("1.0.0"))


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return jsonify(openapi_spec())


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Upzento REST API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{{ css }}"></head>
<body><main><h1 style="font:600 1.4rem sans-serif;margin:1rem">Upzento REST API</h1>
<p style="font:1rem sans-serif;margin:0 1rem">OpenAPI 3.1 document: <a href="{{ spec }}">{{ spec }}</a></p>
<div id="swagger-ui"></div></main>
<script src="{{ js }}" nonce="{{ nonce }}"></script>
<script nonce="{{ nonce }}">SwaggerUIBundle({url: {{ spec|tojson }}, dom_id: "#swagger-ui", deepLinking: true});</script>
</body></html>"""


@bp.get("/api/v1/docs")
def docs_page():
    """The browsable document, from the Swagger UI files Flask-AppBuilder ships (no CDN)."""
    from app.websecurity import csp_nonce

    html = render_template_string(
        DOCS_PAGE, spec=url_for("api_docs.openapi_json"), nonce=csp_nonce(),
        css=url_for("appbuilder.static", filename="css/swagger/swagger-ui.css"),
        js=url_for("appbuilder.static", filename="js/swagger-ui-bundle.js"))
    return Response(html, mimetype="text/html")


def menu_link() -> str:
    return "/api/v1/docs"


__all__ = ["bp", "openapi_spec", "current_app"]
