"""REST API for a tenant's business data (FAB ModelRestApi under /api/v1/<resource>/).

Authentication is a per-tenant API key (`Authorization: Bearer upz_...`, resolved
in app.security before FAB's code runs) or the admin session. Either way the
request session is routed to exactly one tenant schema, so another tenant's rows
are not reachable; an id from elsewhere is a 404. Errors use the project shape
`{"error": {"code", "message", "field"}}`. The OpenAPI document is FAB's, at
/api/v1/_openapi.
"""

from __future__ import annotations

import uuid

from flask import g, jsonify, make_response, request
from flask_appbuilder.api import ModelRestApi
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.api_common import check_if_match, etag_of
from app.errors import ApiError, ValidationError
from app.models import tenant as m
from app.services import catalogue_rules as rules
from app.services import events
from app.uow import discard

KEY_PATTERN = rules.KEY_PATTERN


class PayloadInvalid(Exception):
    """A rule failed (app.services.catalogue_rules, or one across fields): nothing is written."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _error(status: int, code: str, message, field: str | None = None, **extra):
    body = {"code": code, "message": message, "field": field}
    body.update(extra)
    response = make_response(jsonify({"error": body}), status)
    return response


def _flatten(messages) -> tuple[str | None, str]:
    """First field and message of a marshmallow error dict (or a plain message)."""
    if isinstance(messages, dict) and messages:
        field, detail = next(iter(messages.items()))
        while isinstance(detail, dict) and detail:
            detail = next(iter(detail.values()))
        text = detail[0] if isinstance(detail, list) and detail else str(detail)
        return str(field), f"{field}: {text}"
    return None, str(messages)


def _constraint_error(exc: IntegrityError):
    """A database rule caught what the checks did not (a duplicate key, a dangling reference)."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    known = rules.constraint_rule(name)
    if known is not None:
        code, field, message = known
        return _error(422, code, message, field)
    return _error(422, "invalid", f"the data breaks the rule {name or 'of the database'}", None)


def _require_tenant():
    """A signed-in user with no business to work in gets a 404, not a query against no schema."""
    user = g.get("user")
    if g.get("tenant") is None and user is not None and getattr(user, "is_authenticated", False):
        return _error(404, "not_found", "no client business to work in; create one or ask for access")
    return None


def _check_rison():
    """Malformed rison in `q` is a 400 (prison raises TypeError/IndexError on some inputs)."""
    from flask import request

    value = request.args.get("q")
    if not value:
        return None
    import prison

    try:
        parsed = prison.loads(value)
    except Exception:  # noqa: BLE001 - any parser failure is the caller's malformed input
        return _error(400, "invalid", "q is not valid rison", "q")
    if not isinstance(parsed, dict):
        return _error(400, "invalid", "q must be a rison object", "q")
    return None


class TenantRestApi(ModelRestApi):
    """Base: project error shape, session or API-key login, cross-field checks before any write."""

    allow_browser_login = True
    page_size = 50
    max_page_size = 500

    def create_blueprint(self, appbuilder, *args, **kwargs):
        blueprint = super().create_blueprint(appbuilder, *args, **kwargs)
        blueprint.before_request(_require_tenant)
        blueprint.before_request(_check_rison)
        return blueprint

    # Columns checked by the catalogue rule of the same name (app.services.catalogue_rules.FIELD_CHECKS).
    rule_fields: tuple[str, ...] = ()

    def check_item(self, item) -> None:
        """Raise PayloadInvalid for a value that breaks a catalogue rule (fields that fit together: subclasses)."""
        for field in self.rule_fields:
            value = getattr(item, field, None)
            if value in (None, "") and field not in ("key", "name"):
                continue
            problem = rules.field_problem(field, value)
            if problem:
                raise PayloadInvalid(field, problem)

    def pre_add(self, item):
        self.check_item(item)

    def pre_update(self, item):
        self.check_item(item)

    def post_headless(self):
        return self._guarded(super().post_headless)

    def get_headless(self, pk, **kwargs):
        response = super().get_headless(pk, **kwargs)
        if response.status_code == 200:
            response.headers["ETag"] = etag_of((response.get_json() or {}).get("result"))
        return response

    def put_headless(self, pk):
        if request.headers.get("If-Match"):
            current = super().get_headless(pk)
            if current.status_code != 200:
                return current
            try:
                check_if_match(etag_of((current.get_json() or {}).get("result")))
            except ApiError as exc:
                discard()
                return _error(exc.status, exc.code, exc.message, exc.field)
        response = self._guarded(lambda: super(TenantRestApi, self).put_headless(pk))
        if response.status_code == 200:
            shown = super().get_headless(pk)
            if shown.status_code == 200:
                response.headers["ETag"] = etag_of((shown.get_json() or {}).get("result"))
        return response

    def _guarded(self, call):
        try:
            return call()
        except PayloadInvalid as exc:
            # The item may already sit in the session through its relationships.
            discard()
            return _error(422, "invalid", exc.message, exc.field)
        except IntegrityError as exc:
            discard()
            return _constraint_error(exc)

    def response_400(self, message=None):
        field, text = _flatten(message or "bad request")
        return _error(400, "invalid", text, field)

    def response_422(self, message=None):
        field, text = _flatten(message or "could not process the entity")
        if isinstance(message, str) and message.startswith("Database exception"):
            # Constraint names say which rule failed; the SQL itself stays private.
            text = "the data breaks a rule of the database (unique key, span or reference)"
        return _error(422, "invalid", text, field, **({"fields": message} if isinstance(message, dict) else {}))

    def response_401(self):
        return _error(401, "unauthorized", "sign in or send a valid API key")

    def response_403(self):
        return _error(403, "not_allowed", "this role may not do that here")

    def response_404(self):
        return _error(404, "not_found", "no such item in this business")

    def response_500(self, message=None):
        import sys

        from sqlalchemy.exc import DBAPIError

        # FAB's @safe turns any exception into a 500; input PostgreSQL refuses as data
        # (SQLSTATE class 22) or a value out of range is the caller's error.
        exc = sys.exc_info()[1]
        state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
        if isinstance(exc, (OverflowError, ValueError, RecursionError)) or (
            isinstance(exc, DBAPIError) and state.startswith("22")
        ):
            discard()
            return _error(400, "invalid", "a value in the request is not valid here")
        return _error(500, "internal", "internal error")

    # ------------------------------------------------------------------ keyset pages (?limit=&cursor=)

    CURSOR_MAX_LIMIT = 200

    def get_list_headless(self, **kwargs):
        """FAB's offset pages (`q` with page/page_size) unless the caller asks for keyset pages with
        `limit` or `cursor`: then rows by id ascending after the cursor, `{result, next_cursor}`."""
        if "cursor" not in request.args and "limit" not in request.args:
            return super().get_list_headless(**kwargs)
        try:
            return self._cursor_page(kwargs.get("rison", {}))
        except ApiError as exc:
            discard()
            return _error(exc.status, exc.code, exc.message, exc.field)

    def _cursor_page(self, args: dict):
        from flask_appbuilder.exceptions import FABException
        from flask_appbuilder.models.sqla.filters import FilterGreater

        mixed = sorted(set(args) & {"page", "page_size", "order_column", "order_direction"})
        if mixed:
            raise ApiError("invalid", f"keyset pages (limit, cursor) are ordered by id: q may not set {mixed[0]}", "q",
                           status=400)
        raw = request.args.get("limit") or "50"
        if not raw.isdigit() or not 1 <= int(raw) <= self.CURSOR_MAX_LIMIT:
            raise ValidationError(f"limit is a whole number from 1 to {self.CURSOR_MAX_LIMIT}", "limit")
        limit = int(raw)
        after = decode_id_cursor(self.resource_name, request.args.get("cursor") or None)
        try:
            select_columns, pruned = self._handle_columns_args(args, self.list_select_columns, self.list_columns)
            filters = self._handle_filters_args(args)
        except FABException as exc:
            raise ApiError("invalid", str(exc), "q", status=400) from None  # as FAB answers it on offset pages
        schema = self.model2schemaconverter.convert(pruned) if pruned else self.list_model_schema
        if after is not None:
            filters.add_filter("id", FilterGreater, after)
        query = self.datamodel.apply_all(self.datamodel.session.query(self.datamodel.obj), filters, "id", "asc",
                                         0, limit + 1, select_columns, self.list_outer_default_load)
        name = self.datamodel.obj.__name__
        rows = [getattr(row, name) if hasattr(row, name) else row for row in query.all()]
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_id_cursor(self.resource_name, rows[-1].id) if more and rows else None
        return self.response(200, result=schema.dump(rows, many=True), next_cursor=next_cursor)

    MAX_PAGE = 1_000_000

    def _handle_page_args(self, rison_args):
        from werkzeug.exceptions import BadRequest

        page, page_size = rison_args.get("page", 0), rison_args.get("page_size", self.page_size)
        for name, value in (("page", page), ("page_size", page_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                                      or value > self.MAX_PAGE):
                raise BadRequest(f"{name} must be a whole number from 0 to {self.MAX_PAGE}")
        return super()._handle_page_args(rison_args)


def encode_id_cursor(resource: str, ident: int) -> str:
    """An opaque cursor: the resource (so one list's cursor is refused by another) and the last id."""
    import base64

    return base64.urlsafe_b64encode(f"{resource}|{ident}".encode()).decode().rstrip("=")


def decode_id_cursor(resource: str, cursor: str | None) -> int | None:
    import base64
    import binascii

    if cursor is None:
        return None
    try:
        name, _, ident = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        if name != resource or not ident.isdigit() or len(ident) > 12:
            raise ValueError
        return int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not one this list gave out", "cursor") from None


class KeyLocationScope(BaseFilter):
    """Base filter: under an API key restricted to a location, only the rows of that location.

    The filter's value builds the SQL condition from the location key; without a
    restriction (another key, an admin session) the query is left as it is.
    """

    name = "API key location"
    arg_name = None  # never a filter clients can pick in `q`

    def apply(self, query, condition):
        key = g.get("api_key_location")
        return query if key is None else query.filter(condition(key))


def _at(key: str):
    return m.Location.key == key


class LocationScoped:
    """Catalogue resources tied to places. A key restricted to a location lists and shows that
    location's rows only (others are 404) and writes none of them: its scope is booking at one
    location, not running the business's catalogue."""

    location_condition = None  # key -> SQL condition, set per resource
    restricted_writes = ("POST", "PUT", "PATCH", "DELETE")  # methods a restricted key may not use here
    restricted_message = "this API key is restricted to one location and cannot change the catalogue"

    def __init__(self, *args, **kwargs):
        condition = type(self).location_condition
        self.base_filters = [*(self.base_filters or ()), ["id", KeyLocationScope, lambda key: condition(key)]]
        super().__init__(*args, **kwargs)

    def create_blueprint(self, appbuilder, *args, **kwargs):
        blueprint = super().create_blueprint(appbuilder, *args, **kwargs)
        refused, message = frozenset(self.restricted_writes), self.restricted_message
        blueprint.before_request(lambda: _refuse_restricted_writes(refused, message))
        return blueprint


def _refuse_restricted_writes(methods, message):
    if g.get("api_key_location") is not None and request.method in methods:
        return _error(403, "not_allowed", message)
    return None


class SpanCheck:
    """Weekly wall-clock rows: a weekday, minutes inside the day, end after start."""

    rule_fields = ("weekday", "start_min", "end_min")

    def check_item(self, item) -> None:
        super().check_item(item)
        if item.start_min is not None and item.end_min is not None:
            try:
                rules.check_span(item.start_min, item.end_min)
            except rules.RuleError as exc:
                raise PayloadInvalid(exc.field, exc.message)


class LocationApi(LocationScoped, TenantRestApi):
    location_condition = staticmethod(_at)
    datamodel = SQLAInterface(m.Location)
    resource_name = "locations"
    class_permission_name = "LocationsApi"
    list_columns = ["id", "key", "name", "timezone", "address", "phone", "latitude", "longitude", "virtual", "active"]
    show_columns = list_columns
    add_columns = edit_columns = list_columns[1:]
    search_columns = ["key", "name", "timezone", "active"]
    rule_fields = ("key", "name", "timezone")


def _offered_at(key: str):
    """Services offered at the location: everywhere, or there by name."""
    return or_(m.Service.all_locations.is_(True), m.Service.locations.any(_at(key)))


def _customer_at(key: str):
    """Customers with at least one appointment (any status) at the location."""
    from sqlalchemy import exists

    location_id = select(m.Location.id).where(_at(key)).scalar_subquery()
    return exists().where(m.Appointment.customer_id == m.Customer.id, m.Appointment.location_id == location_id)


class CategoryApi(LocationScoped, TenantRestApi):
    location_condition = staticmethod(lambda key: m.Category.id.in_(select(m.Service.category_id).where(_offered_at(key))))
    datamodel = SQLAInterface(m.Category)
    resource_name = "categories"
    class_permission_name = "CategoriesApi"
    list_columns = ["id", "key", "name", "position"]
    show_columns = list_columns
    add_columns = edit_columns = list_columns[1:]
    search_columns = ["key", "name"]
    rule_fields = ("key", "name")


class ServiceApi(LocationScoped, TenantRestApi):
    location_condition = staticmethod(_offered_at)
    datamodel = SQLAInterface(m.Service)
    resource_name = "services"
    class_permission_name = "ServicesApi"
    list_columns = [
        "id", "key", "name", "description", "category.id", "duration_min", "price", "buffer_before_min",
        "buffer_after_min", "slot_interval_min", "min_notice_min", "max_advance_days", "capacity", "meeting",
        "all_locations", "cancel_window_min", "reschedule_window_min", "allow_recurring", "active",
    ]
    show_columns = list_columns + ["locations.id"]
    add_columns = edit_columns = [
        "key", "name", "description", "category", "duration_min", "price", "buffer_before_min", "buffer_after_min",
        "slot_interval_min", "min_notice_min", "max_advance_days", "capacity", "meeting", "all_locations", "locations",
        "cancel_window_min", "reschedule_window_min", "allow_recurring", "active",
    ]
    search_columns = ["key", "name", "category", "active", "meeting"]
    rule_fields = tuple(rules.SERVICE_FIELDS)


class StaffApi(LocationScoped, TenantRestApi):
    location_condition = staticmethod(lambda key: m.Staff.locations.any(_at(key)))
    datamodel = SQLAInterface(m.Staff)
    resource_name = "staff"
    class_permission_name = "StaffApi"
    list_columns = ["id", "key", "name", "email", "phone", "bio", "photo_url", "active"]
    show_columns = list_columns + ["services.id", "locations.id"]
    add_columns = edit_columns = list_columns[1:] + ["services", "locations"]
    search_columns = ["key", "name", "email", "active"]
    rule_fields = ("key", "name")


class StaffHoursApi(LocationScoped, SpanCheck, TenantRestApi):
    location_condition = staticmethod(lambda key: m.StaffHours.location.has(_at(key)))
    datamodel = SQLAInterface(m.StaffHours)
    resource_name = "staff_hours"
    class_permission_name = "StaffHoursApi"
    list_columns = ["id", "staff.id", "location.id", "weekday", "start_min", "end_min"]
    show_columns = list_columns
    add_columns = edit_columns = ["staff", "location", "weekday", "start_min", "end_min"]
    search_columns = ["staff", "location", "weekday"]


class LocationHoursApi(LocationScoped, SpanCheck, TenantRestApi):
    location_condition = staticmethod(lambda key: m.LocationHours.location.has(_at(key)))
    datamodel = SQLAInterface(m.LocationHours)
    resource_name = "location_hours"
    class_permission_name = "LocationHoursApi"
    list_columns = ["id", "location.id", "weekday", "start_min", "end_min"]
    show_columns = list_columns
    add_columns = edit_columns = ["location", "weekday", "start_min", "end_min"]
    search_columns = ["location", "weekday"]


class StaffBreakApi(LocationScoped, SpanCheck, TenantRestApi):
    location_condition = staticmethod(lambda key: m.StaffBreak.staff.has(m.Staff.locations.any(_at(key))) & or_(
        m.StaffBreak.location_id.is_(None), m.StaffBreak.location.has(_at(key))))
    datamodel = SQLAInterface(m.StaffBreak)
    resource_name = "staff_breaks"
    class_permission_name = "StaffBreaksApi"
    list_columns = ["id", "staff.id", "location.id", "weekday", "start_min", "end_min"]
    show_columns = list_columns
    add_columns = edit_columns = ["staff", "location", "weekday", "start_min", "end_min"]
    search_columns = ["staff", "location", "weekday"]


class TimeOffApi(LocationScoped, TenantRestApi):
    location_condition = staticmethod(lambda key: m.TimeOff.staff.has(m.Staff.locations.any(_at(key))))
    datamodel = SQLAInterface(m.TimeOff)
    resource_name = "time_off"
    class_permission_name = "TimeOffApi"
    list_columns = ["id", "staff.id", "start_at", "end_at", "reason"]
    show_columns = list_columns
    add_columns = edit_columns = ["staff", "start_at", "end_at", "reason"]
    search_columns = ["staff", "start_at", "reason"]

    def check_item(self, item) -> None:
        for name in ("start_at", "end_at"):
            value = getattr(item, name)
            if value is not None and value.tzinfo is None:
                raise PayloadInvalid(name, "an instant needs an offset or Z")
        if item.start_at is not None and item.end_at is not None and item.end_at <= item.start_at:
            raise PayloadInvalid("end_at", rules.SPAN_MESSAGE)


class CustomerApi(LocationScoped, TenantRestApi):
    """Under a key restricted to a location: the customers with an appointment there (others 404);
    such a key may correct them (PUT) but not create or delete any (a booking records a new customer)."""

    location_condition = staticmethod(_customer_at)
    restricted_writes = ("POST", "DELETE")
    restricted_message = ("this API key is restricted to one location: it records new customers by booking them "
                          "(POST /api/v1/appointments/) and deletes none")
    datamodel = SQLAInterface(m.Customer)
    resource_name = "customers"
    class_permission_name = "CustomersApi"
    list_columns = ["id", "name", "email", "phone", "locale", "timezone", "sms_opt_out", "marketing_opt_in", "created_at"]
    show_columns = list_columns
    add_columns = edit_columns = ["name", "email", "phone", "locale", "timezone", "sms_opt_out", "marketing_opt_in"]
    search_columns = ["name", "email", "phone"]

    rule_fields = ("timezone",)

    # FAB commits inside datamodel.add/edit, right after these hooks: the outbox row written
    # here (flushed with the customer, for its id) commits with it or not at all.
    def pre_add(self, item):
        super().pre_add(item)
        events.record_customer_changes(self.datamodel.session, g.tenant.slug, item)

    def pre_update(self, item):
        super().pre_update(item)
        events.record_customer_changes(self.datamodel.session, g.tenant.slug, item)

    def pre_delete(self, item):
        super().pre_delete(item)
        events.emit_customer_deleted(self.datamodel.session, g.tenant.slug, item.id)


API_CLASSES = [
    LocationApi, LocationHoursApi, CategoryApi, ServiceApi, StaffApi, StaffHoursApi, StaffBreakApi, TimeOffApi, CustomerApi,
]


# A plain blueprint beside FAB's APIs: an index that names the resources.
from flask import Blueprint  # noqa: E402

bp = Blueprint("rest_index", __name__)


@bp.get("/api/v1/")
def index():
    """The REST resources and where the OpenAPI document is."""
    names = [c.resource_name for c in API_CLASSES] + ["appointments", "availability"]
    return jsonify({"resources": sorted(f"/api/v1/{n}/" for n in names) + ["/api/v1/webhooks/endpoints",
                                                                            "/api/v1/webhooks/deliveries"],
                    "openapi": "/api/v1/openapi.json", "docs": "/api/v1/docs"})
