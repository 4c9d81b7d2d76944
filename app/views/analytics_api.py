"""Analytics as JSON: `GET /api/v1/analytics/<figure>` with the business's API key (or the admin session).

The same figures as the admin's analytics page and `flask analytics` (app/services/analytics.py).
An agency owner's (or auditor's) session, or an agency API key, also reads
`GET /api/v1/analytics/agency`: every business of the agency with totals per currency. An agency
key reads one business's figures with `?tenant=<slug>` (app.security resolves it within the
key's agency: any other slug is 404).
"""

from __future__ import annotations

import datetime as dt

from flask import current_app, g, jsonify, request
from flask_appbuilder.api import BaseApi, expose, protect

from app import security
from app.api_rest import _error, _require_tenant
from app.errors import ApiError
from app.extensions import db
from app.services import analytics

UTC = dt.timezone.utc

def viewer_range(r: analytics.Range) -> analytics.Range:
    """A Staff-only log-in sees only their own figures, whatever the filters say."""
    from dataclasses import replace

    if security.is_staff_only():
        return replace(r, only_staff_id=security.current_staff_id() or -1)
    return r


class AnalyticsApi(BaseApi):
    route_base = "/api/v1/analytics"
    resource_name = "analytics"
    class_permission_name = "Analytics"
    method_permission_name = {"figure": "get", "agency": "get"}
    allow_browser_login = True
    openapi_spec_tag = "Analytics"

    def create_blueprint(self, appbuilder, *args, **kwargs):
        blueprint = super().create_blueprint(appbuilder, *args, **kwargs)
        blueprint.before_request(_require_business)
        return blueprint

    @expose("/agency", methods=["GET"])
    @protect()
    def agency(self):
        """Every business of the signed-in agency owner's agency (or agencies), totals per currency.
        ---
        get:
          summary: Agency rollup with a per-business breakdown
          parameters:
          - {in: query, name: from, schema: {type: string, format: date}}
          - {in: query, name: to, schema: {type: string, format: date}}
          responses:
            200:
              description: "tenants (one row per business), per_currency (money totals per currency), bookings"
            403:
              description: not an agency role (API keys belong to one business)
        """
        scope = g.get("scope")
        agency_key = g.get("api_key_agency_id") is not None
        if scope is None or (g.get("_api_key_user") and not agency_key) or not (scope.agency_ids or scope.platform):
            return _error(403, "not_allowed", "the agency rollup is for agency owners, auditors and agency API keys")
        try:
            r = analytics.parse_range(request.args, dt.date.today())
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.field)
        tenants = []
        for agency_id in sorted(scope.agency_ids):
            tenants += analytics.agency_tenants(db.session, agency_id)
        body = analytics.recent_agency_rollup(db.session, tenants, r.date_from, r.date_to, dt.datetime.now(UTC),
                                              current_app.config.get("AGENCY_ROLLUP_CACHE_SECONDS", 0))
        return jsonify(body)

    @expose("/<metric>", methods=["GET"])
    @protect()
    def figure(self, metric):
        """One figure of the business the API key (or session) works in.
        ---
        get:
          summary: "bookings | cancellations | no_shows | revenue | utilisation | lead_time | sources | popular"
          parameters:
          - {in: path, name: metric, required: true, schema: {type: string,
             enum: [bookings, cancellations, no_shows, revenue, utilisation, lead_time, sources, popular]}}
          - {in: query, name: from, schema: {type: string, format: date}, description: first local date}
          - {in: query, name: to, schema: {type: string, format: date}, description: last local date, included}
          - {in: query, name: interval, schema: {type: string, enum: [day, week, month]}}
          - {in: query, name: location, schema: {type: string}, description: location key}
          - {in: query, name: staff, schema: {type: string}, description: staff key}
          - {in: query, name: service, schema: {type: string}, description: service key}
          - {in: query, name: format, schema: {type: string, enum: [json, csv]}}
          responses:
            200:
              description: "the figure (README, Analytics, defines each); revenue per currency, never summed across"
            404:
              description: unknown figure
            422:
              description: "bad date, interval or key; body {error: {code, message, field}}"
        """
        wanted = request.args.get("tenant")
        if wanted and wanted != g.tenant.slug:
            # A business key or a session reads the business it works in; an agency key's ?tenant=
            # was resolved (within its agency) before this point, so here they always agree.
            return _error(404, "not_found", "no such business for this key or session", "tenant")
        if metric not in analytics.FIGURES:
            return _error(404, "not_found", f"unknown figure {metric!r}; one of {', '.join(analytics.FIGURES)}", "metric")
        now = dt.datetime.now(UTC)
        try:
            r = viewer_range(analytics.parse_range(request.args, dt.date.today()))
            body = analytics.figure(db.session, g.tenant, metric, r, now)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.field)
        if request.args.get("format") == "csv":
            return csv_response(analytics.csv_rows(body), f"{metric}-{r.date_from}-{r.date_to}.csv")
        return jsonify(body)

    def response_401(self):
        return _error(401, "unauthorized", "sign in or send a valid API key")

    def response_403(self):
        return _error(403, "not_allowed", "this role may not do that here")

    def response_404(self):
        return _error(404, "not_found", "no such item in this business")


def _require_business():
    """The rollup needs no business; a figure does (an agency key names it with ?tenant=)."""
    if request.endpoint and request.endpoint.endswith(".agency"):
        return None
    if g.get("api_key_agency_id") is not None and g.get("tenant") is None:
        return _error(422, "required", "an agency API key names the business: ?tenant=<slug>", "tenant")
    return _require_tenant()


def csv_response(rows, filename: str):
    import csv
    import io

    from flask import Response

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


APIS = [(AnalyticsApi, security.TENANT_VIEWS)]
