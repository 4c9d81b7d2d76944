"""REST API for outgoing webhooks: endpoints and the delivery log (/api/v1/webhooks/...).

Same login as the rest of the tenant REST API (API key or admin session, routed to
one business) and the same error shape. Through the API a business manages its own
endpoints; its agency's endpoints are listed (read-only), since a business's key
must not reach the agency's other businesses.

| method | path | |
|---|---|---|
| GET | /endpoints | the business's and its agency's endpoints |
| POST | /endpoints | `{url, events?, description?}` → 201 `{endpoint, secret}` (secret shown once) |
| GET, PATCH, DELETE | /endpoints/<id> | PATCH `{url?, events?, description?, enabled?}` |
| POST | /endpoints/<id>/rotate-secret | → `{secret}`; the old one signs too for 24 h |
| POST | /endpoints/<id>/test | a `webhook.test` delivery → 202 `{delivery}` |
| GET | /deliveries?endpoint=&status=&before= | newest first, 50 a page (`next_before`) |
| GET | /deliveries/<id> | one delivery with request and response |
| POST | /deliveries/<id>/replay | same webhook-id and body again → 202 |
| POST | /deliveries/replay | `{since?, endpoint?}`: every failed delivery → 202 `{endpoints}` |
"""

from __future__ import annotations

import datetime as dt

from flask import g, jsonify, request
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api_rest import _error, _require_tenant
from app.errors import ApiError, ValidationError
from app.extensions import db
from app.models.webhooks import SCOPE_AGENCY
from app.uow import run_unit


def _body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", None, code="invalid_json")
    return data


def _allow_private() -> bool:
    from flask import current_app

    import os

    raw = os.environ.get("WEBHOOK_ALLOW_PRIVATE") or current_app.config.get("WEBHOOK_ALLOW_PRIVATE")
    return str(raw).strip().lower() in ("1", "true", "yes", "on") if raw not in (None, "") else False


def _drain(pairs) -> None:
    from app.jobs.webhooks import send_now

    send_now(g.tenant.slug, pairs)


class WebhooksApi(BaseApi):
    resource_name = "webhooks"
    class_permission_name = "WebhooksApi"
    allow_browser_login = True
    method_permission_name = {"endpoints": "get", "get_endpoint": "get", "deliveries": "get", "get_delivery": "get",
                              "create": "post", "change": "put", "remove": "delete", "rotate": "put",
                              "test": "post", "replay": "post", "replay_failed": "post"}
    openapi_spec_tag = "Webhooks"

    def create_blueprint(self, appbuilder, *args, **kwargs):
        blueprint = super().create_blueprint(appbuilder, *args, **kwargs)
        blueprint.before_request(_require_tenant)
        return blueprint

    @staticmethod
    def _answer(fn, status: int = 200):
        try:
            body = run_unit(fn, db.session)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.field, **exc.extra), exc.status
        return jsonify(body), status

    @staticmethod
    def _own(uid: str):
        from app.services import webhooks as svc

        endpoint = svc.find_endpoint(db.session, uid, g.tenant.agency_id)
        if endpoint.scope == SCOPE_AGENCY:
            raise ApiError("not_allowed", "an agency endpoint is managed by the agency, not through a business key",
                           "endpoint", status=403)
        return endpoint

    @expose("/endpoints", methods=["GET"])
    @protect()
    @permission_name("get")
    def endpoints(self):
        """The business's endpoints and its agency's."""
        from app.services import webhooks as svc

        return self._answer(lambda: {"endpoints": [svc.endpoint_json(e) for e in svc.endpoints(
            db.session, agency_id=g.tenant.agency_id)]})

    @expose("/endpoints", methods=["POST"])
    @protect()
    @permission_name("post")
    def create(self):
        from app.services import webhooks as svc

        data = _body()

        def work():
            if data.get("agency"):
                raise ApiError("not_allowed", "agency endpoints are made by the agency (admin or command line)",
                               "agency", status=403)
            created = svc.create_endpoint(db.session, data.get("url") or "", data.get("events"),
                                          description=data.get("description"), allow_private=_allow_private())
            return {"endpoint": svc.endpoint_json(created.endpoint), "secret": created.secret}

        return self._answer(work, 201)

    @expose("/endpoints/<uid>", methods=["GET"])
    @protect()
    @permission_name("get")
    def get_endpoint(self, uid):
        from app.services import webhooks as svc

        return self._answer(lambda: {"endpoint": svc.endpoint_json(
            svc.find_endpoint(db.session, uid, g.tenant.agency_id))})

    @expose("/endpoints/<uid>", methods=["PATCH"])
    @protect()
    @permission_name("put")
    def change(self, uid):
        from app.services import webhooks as svc

        data = _body()

        def work():
            endpoint = self._own(uid)
            enabled = data.get("enabled")
            if enabled is not None and not isinstance(enabled, bool):
                raise ValidationError("enabled is true or false", "enabled")
            svc.update_endpoint(db.session, endpoint, url=data.get("url"), events_=data.get("events"),
                                description=data.get("description"), enabled=enabled,
                                allow_private=_allow_private())
            return {"endpoint": svc.endpoint_json(endpoint)}

        return self._answer(work)

    @expose("/endpoints/<uid>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    def remove(self, uid):
        def work():
            db.session.delete(self._own(uid))
            return {"deleted": uid}

        return self._answer(work)

    @expose("/endpoints/<uid>/rotate-secret", methods=["POST"])
    @protect()
    @permission_name("put")
    def rotate(self, uid):
        from app.services import webhooks as svc

        return self._answer(lambda: {"secret": svc.rotate_secret(db.session, self._own(uid))})

    @expose("/endpoints/<uid>/test", methods=["POST"])
    @protect()
    @permission_name("post")
    def test(self, uid):
        from app.services import webhooks as svc

        def work():
            endpoint = svc.find_endpoint(db.session, uid, g.tenant.agency_id)
            row = svc.test_delivery(db.session, endpoint, g.tenant.slug)
            return {"delivery": svc.delivery_json(row, endpoint.uid), "_pair": (endpoint.scope, endpoint.id)}

        response, status = self._answer(work, 202)
        body = response.get_json()
        if status == 202:
            _drain([tuple(body.pop("_pair"))])
            response = jsonify(body)
        return response, status

    @expose("/deliveries", methods=["GET"])
    @protect()
    @permission_name("get")
    def deliveries(self):
        from app.services import webhooks as svc

        def work():
            endpoint = None
            if request.args.get("endpoint"):
                endpoint = svc.find_endpoint(db.session, request.args["endpoint"], g.tenant.agency_id)
            status = request.args.get("status")
            if status not in (None, "", "failed"):
                raise ValidationError("status filter is 'failed' or none", "status")
            try:
                before = int(request.args["before"]) if request.args.get("before") else None
            except ValueError:
                raise ValidationError("before is a delivery id", "before") from None
            rows = svc.deliveries(db.session, endpoint=endpoint, failed_only=status == "failed", limit=50,
                                  before_id=before)
            uids = svc.endpoint_uids(db.session, rows)
            return {"deliveries": [svc.delivery_json(r, uids.get((r.endpoint_scope, r.endpoint_id))) for r in rows],
                    "next_before": rows[-1].id if len(rows) == 50 else None}

        return self._answer(work)

    @expose("/deliveries/<delivery_id>", methods=["GET"])
    @protect()
    @permission_name("get")
    def get_delivery(self, delivery_id):
        from app.services import webhooks as svc

        def work():
            row = svc.find_delivery(db.session, delivery_id)
            uid = svc.endpoint_uids(db.session, [row]).get((row.endpoint_scope, row.endpoint_id))
            return {"delivery": svc.delivery_json(row, uid)}

        return self._answer(work)

    @expose("/deliveries/<delivery_id>/replay", methods=["POST"])
    @protect()
    @permission_name("post")
    def replay(self, delivery_id):
        from app.services import webhooks as svc

        def work():
            row = svc.replay(db.session, svc.find_delivery(db.session, delivery_id))
            return {"delivery": svc.delivery_json(row), "_pair": (row.endpoint_scope, row.endpoint_id)}

        response, status = self._answer(work, 202)
        if status == 202:
            body = response.get_json()
            _drain([tuple(body.pop("_pair"))])
            response = jsonify(body)
        return response, status

    @expose("/deliveries/replay", methods=["POST"])
    @protect()
    @permission_name("post")
    def replay_failed(self):
        from app.services import webhooks as svc

        data = _body()

        def work():
            since = None
            if data.get("since"):
                try:
                    since = dt.datetime.fromisoformat(str(data["since"]).replace("Z", "+00:00"))
                except ValueError:
                    raise ValidationError("since is an ISO 8601 time", "since") from None
                if since.tzinfo is None:
                    since = since.replace(tzinfo=dt.timezone.utc)
            endpoint = svc.find_endpoint(db.session, data["endpoint"], g.tenant.agency_id) \
                if data.get("endpoint") else None
            return {"_pairs": svc.replay_failed(db.session, since=since, endpoint=endpoint)}

        response, status = self._answer(work, 202)
        if status == 202:
            pairs = [tuple(p) for p in response.get_json()["_pairs"]]
            _drain(pairs)
            response = jsonify({"endpoints": len(pairs)})
        return response, status


