"""Setup import as an admin upload (the CLI's all-or-nothing import, every error shown with its JSON path)
and the matching export download."""

from __future__ import annotations

import json

from flask import Response, abort, flash, g, request
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select

from app import security
from app.extensions import db
from app.models.public import ROLE_AGENCY_OWNER, Agency, Tenant
from app.services.setup_admin import import_upload
from app.services.setup_io import SetupInvalid, export_setup
from app.uow import discard


class SetupImportView(BaseView):
    route_base = "/setupimport"
    class_permission_name = "SetupImport"
    default_view = "upload"

    def _agencies(self, scope):
        query = select(Agency).order_by(Agency.name)
        if not scope.platform:
            owned = [a for a, roles in scope.agency_roles.items() if ROLE_AGENCY_OWNER in roles]
            query = query.where(Agency.id.in_(owned or [-1]))
        return list(db.session.scalars(query))

    @expose("/", methods=["GET", "POST"])
    @has_access
    def upload(self):
        scope = g.get("scope")
        if scope is None:
            abort(403)
        errors, report, status = [], None, 200
        if request.method == "POST":
            upload = request.files.get("file")
            try:
                agency_id = int(request.form["agency"]) if request.form.get("agency") else None
            except ValueError:
                agency_id = None
            if upload is None or not upload.filename:
                errors, status = ["$: choose a setup file (JSON)"], 400
            else:
                tenant = g.get("tenant")
                try:
                    report = import_upload(db.engine, db.session, scope, upload.read(),
                                           current_tenant_id=tenant.id if tenant else None, agency_id=agency_id)
                    flash(f"Imported {report.tenant}: " + ", ".join(f"{v} {k}" for k, v in report.counts.items()), "success")
                except SetupInvalid as exc:
                    errors, status = [str(e) for e in exc.errors], 400
                discard()  # the import ran in its own unit of work; nothing pending here
        return self.render_template(
            "setup_import.html", errors=errors, report=report, agencies=self._agencies(scope), current=g.get("tenant"),
        ), status


    @expose("/export")
    @has_access
    @permission_name("download")
    def export(self):
        """The current business's setup as a JSON file (the format the upload takes back)."""
        ref = g.get("tenant")
        tenant = db.session.get(Tenant, ref.id) if ref is not None else None
        if tenant is None:
            abort(404)
        body = json.dumps(export_setup(db.session, tenant), indent=2, ensure_ascii=False)
        return Response(body, mimetype="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{tenant.slug}-setup.json"'})


VIEWS = [(SetupImportView, "Import setup", "Settings", security.TENANT_VIEWS, {"icon": "fa-upload"})]
