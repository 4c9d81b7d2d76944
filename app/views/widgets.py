"""Admin: widget builder (settings, live preview, embed snippets), booking-form fields, consent texts and records."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access

from app.views.base import ModelView
from flask_appbuilder.actions import action
from app.views.base import FormModelView, Interface
from flask_appbuilder.security.decorators import permission_name
from flask_wtf.csrf import CSRFError, validate_csrf
from markupsafe import escape
from sqlalchemy import select
from wtforms import SelectField, TextAreaField
from wtforms.validators import DataRequired

from app import security
from app.extensions import db
from app.models import tenant as m
from app.models import widgets as w
from app.services import forms
from app.uow import run_unit


def _actor() -> str:
    user = g.get("user")
    return f"admin:{user.username}" if user is not None and getattr(user, "username", None) else "admin"


def _public_base(tenant=None) -> str:
    from app.links import public_base

    return public_base(tenant)


def snippets(tenant_slug: str, widget: w.Widget, tenant=None) -> dict[str, str]:
    """The two ways to embed a widget: the loader script and a plain iframe (on the business's verified domain, if any)."""
    base = _public_base(tenant)
    # The snippet is pasted into the business's own pages: attribute values must stay attribute values.
    label = f' data-label="{escape(widget.button_label)}"' if widget.button_label else ""
    js = (
        f'<div data-upzento-tenant="{tenant_slug}" data-upzento-widget="{widget.public_id}" data-mode="{widget.mode}"{label}></div>\n'
        f'<script async src="{escape(base)}/widget/v1/loader.js"></script>'
    )
    iframe = (
        f'<iframe src="{base}/widget/v1/{tenant_slug}/{widget.public_id}/frame" title="Booking" '
        'style="width:100%;height:760px;border:0" loading="lazy"></iframe>'
    )
    return {"js": js, "iframe": iframe}


LOGO_MAX_READ = 2 * 1024 * 1024  # read a little past the limit, so the refusal can say how large the file was


class WidgetBuilderView(BaseView):
    """Several widgets per business; each edited beside a live preview of the real iframe."""

    route_base = "/widgets"
    class_permission_name = "Widgets"
    default_view = "list"
    base_permissions = ["can_list", "can_show", "can_add", "can_edit", "can_delete"]

    def _check_csrf(self) -> None:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            try:
                validate_csrf(request.form.get("csrf_token"))
            except (CSRFError, Exception):
                abort(400, "the form expired; reload the page")

    def _get(self, pk: int) -> w.Widget:
        widget = db.session.get(w.Widget, pk)
        if widget is None:
            abort(404)
        return widget

    def _render(self, widget: w.Widget, problems=(), status: int = 200, logo_error: str | None = None):
        services = list(db.session.scalars(select(m.Service).order_by(m.Service.name)))
        locations = list(db.session.scalars(select(m.Location).order_by(m.Location.name)))
        fields = list(db.session.scalars(select(w.FormField).where(w.FormField.active.is_(True)).order_by(w.FormField.position)))
        errors = {}
        for problem in problems:
            errors.setdefault(problem.field, []).append(problem.message)
        # The preview sits inside this admin page: the platform's own origin, whatever the business's domain.
        base = _public_base()
        preview = None
        if widget.id:
            preview = f"{base}/widget/v1/{g.tenant.slug}/{widget.public_id}/frame?closable=0&origin={base}"
        from app.models.public import Tenant, TenantLogo
        from app.services.branding import LOGO_MAX_BYTES, logo_warnings

        uploaded = db.session.get(TenantLogo, g.tenant.id) is not None
        business_logo = db.session.get(Tenant, g.tenant.id).logo_url
        return self.render_template(
            "widget/admin_edit.html", widget=widget, logo_max_kb=LOGO_MAX_BYTES // 1024,
            logo_warnings=logo_warnings(widget.logo_url or business_logo, uploaded), logo_error=logo_error, services=services, locations=locations, fields=fields, errors=errors,
            snippets=snippets(g.tenant.slug, widget, g.tenant) if widget.id else None, preview=preview,
            modes=w.WIDGET_MODES, languages=w.WIDGET_LANGUAGES,
            origins_text="\n".join(widget.allowed_origins or []),
        ), status

    @expose("/")
    @has_access
    def list(self):
        rows = list(db.session.scalars(select(w.Widget).order_by(w.Widget.name)))
        return self.render_template("widget/admin_list.html", widgets=rows, tenant=g.tenant)

    @expose("/new", methods=["GET", "POST"])
    @has_access
    @permission_name("add")
    def add(self):
        widget = w.Widget(name="", mode="inline", primary_color="#1d4ed8", accent_color="#0f766e", radius_px=8,
                          language="auto", show_location_step=True, show_staff_step=True, show_phone=True,
                          hidden_fields=[], allowed_origins=[], active=True)
        if request.method == "POST":
            self._check_csrf()
            # With problems nothing is applied, so the unit writes nothing.
            problems = run_unit(lambda: forms.apply_widget_settings(db.session, widget, request.form))
            if problems:
                return self._render(widget, problems, 422)
            flash(f"Widget {widget.name!r} created.", "success")
            return redirect(url_for("WidgetBuilderView.show", pk=widget.id))
        return self._render(widget)

    @expose("/<int:pk>", methods=["GET"])
    @has_access
    def show(self, pk: int):
        return self._render(self._get(pk))

    @expose("/<int:pk>", methods=["POST"])
    @has_access
    def edit(self, pk: int):
        self._check_csrf()
        widget = self._get(pk)
        problems = run_unit(lambda: forms.apply_widget_settings(db.session, widget, request.form))
        if problems:
            return self._render(self._get(pk), problems, 422)
        flash("Widget saved.", "success")
        return redirect(url_for("WidgetBuilderView.show", pk=pk))

    @expose("/<int:pk>/logo", methods=["POST"])
    @has_access
    @permission_name("edit")
    def upload_logo(self, pk: int):
        """The business's logo, uploaded: stored and served by the app, used by this widget and the portal."""
        from app.models.public import Tenant
        from app.services.branding import LogoRefused, store_logo

        self._check_csrf()
        widget = self._get(pk)
        upload = request.files.get("logo_file")
        data = upload.read(LOGO_MAX_READ) if upload else b""

        def work():
            tenant = db.session.get(Tenant, g.tenant.id)
            widget.logo_url = store_logo(db.session, tenant, data)

        try:
            run_unit(work)
        except LogoRefused as exc:
            return self._render(self._get(pk), status=422, logo_error=exc.message)
        flash("Logo uploaded: the widget and the portal show it.", "success")
        return redirect(url_for("WidgetBuilderView.show", pk=pk))

    @expose("/<int:pk>/delete", methods=["POST"])
    @has_access
    def delete(self, pk: int):
        self._check_csrf()
        run_unit(lambda: db.session.delete(self._get(pk)))
        flash("Widget deleted.", "success")
        return redirect(url_for("WidgetBuilderView.list"))


FIELD_CHOICES = [(t, t) for t in w.FIELD_TYPES]


class FormFieldView(FormModelView):
    """Booking-form questions: for every service or one service; order by position."""

    datamodel = Interface(w.FormField)
    class_permission_name = "BookingFormFields"
    list_columns = ["position", "label", "key", "field_type", "required", "service", "active"]
    show_columns = ["label", "key", "field_type", "required", "help_text", "options", "service", "position", "active"]
    add_columns = ["label", "key", "field_type", "required", "help_text", "options_text", "service", "position", "active"]
    edit_columns = add_columns
    search_columns = ["label", "key", "field_type", "service"]
    base_order = ("position", "asc")
    label_columns = {"field_type": "Type", "service": "Only for service (empty: all)", "options_text": "Options (one per line)"}
    description_columns = {"key": "Name of the answer in exports and the API: a-z, 0-9, _",
                           "help_text": "Shown under the question"}
    add_form_extra_fields = {
        "field_type": SelectField("Type", choices=FIELD_CHOICES, validators=[DataRequired()]),
        "options_text": TextAreaField("Options (one per line)"),
    }
    edit_form_extra_fields = add_form_extra_fields

    def _options_from_form(self, item) -> None:
        from flask import request as req

        raw = req.form.get("options_text")
        if raw is not None:
            item.options = [line.strip() for line in raw.splitlines() if line.strip()]

    def pre_add(self, item):
        self._options_from_form(item)
        forms.save_field(db.session, item)

    def pre_update(self, item):
        self._options_from_form(item)
        forms.save_field(db.session, item)

    def prefill_form(self, form, pk):
        item = db.session.get(w.FormField, pk)
        if item is not None:
            form.options_text.data = "\n".join(item.options or [])


class ConsentTextView(FormModelView):
    """Terms and privacy texts: never edited; saving a changed text adds the next version."""

    datamodel = Interface(w.ConsentText)
    class_permission_name = "ConsentTexts"
    base_permissions = ["can_list", "can_show", "can_add"]
    list_columns = ["kind", "version", "created_at", "created_by"]
    show_columns = ["kind", "version", "body", "created_at", "created_by"]
    add_columns = ["kind", "body"]
    base_order = ("created_at", "desc")
    add_form_extra_fields = {
        "kind": SelectField("Kind", choices=[("terms", "Terms & conditions"), ("privacy", "Privacy notice"),
                                             ("marketing", "Marketing consent (optional)")]),
    }

    def pre_add(self, item):
        item.created_by = _actor()
        forms.prepare_consent(db.session, item)


class ConsentRecordView(ModelView):
    """Who agreed to which text version, when, from which IP (evidence: never edited; only a withdrawal
    can be recorded)."""

    datamodel = Interface(w.ConsentRecord)
    class_permission_name = "ConsentRecords"
    base_permissions = ["can_list", "can_show", "can_withdraw"]
    list_columns = ["at", "email", "text", "channel", "ip", "withdrawn_at", "appointment"]
    show_columns = ["at", "email", "customer", "text", "channel", "ip", "withdrawn_at", "withdrawn_channel", "appointment"]
    search_columns = ["email", "at"]
    base_order = ("at", "desc")
    label_columns = {"text": "Text version", "ip": "IP"}

    @action("withdraw", "Withdraw", "Record that the customer withdrew the selected consents?", "fa-undo")
    def withdraw(self, items):
        """The business records a withdrawal (by phone, at the desk): the evidence stays, marked
        withdrawn by "admin"; a customer's last marketing consent also clears their marketing flag."""
        from app.gdpr import consents

        items = items if isinstance(items, list) else [items]
        ids = [item.id for item in items]
        run_unit(lambda: consents.withdraw(db.session, g.tenant.slug, ids, "admin"))
        flash(f"{len(ids)} consent record(s) marked withdrawn.", "success")
        return redirect(self.get_redirect())


class ErasureRequestView(ModelView):
    """Customers' GDPR erasure requests from the portal."""

    datamodel = Interface(w.ErasureRequest)
    class_permission_name = "ErasureRequests"
    base_permissions = ["can_list", "can_show", "can_edit"]
    list_columns = ["requested_at", "email", "status", "ip"]
    show_columns = ["requested_at", "email", "customer", "status", "ip"]
    edit_columns = ["status"]
    edit_form_extra_fields = {"status": SelectField("Status", choices=[("requested", "requested"), ("done", "done"), ("refused", "refused")])}
    base_order = ("requested_at", "desc")

    @action("done", "Mark done", "Mark the selected requests as handled?", "fa-check")
    def mark_done(self, items):
        items = items if isinstance(items, list) else [items]

        def mark():
            for item in items:
                item.status = "done"

        run_unit(mark)
        return redirect(self.get_redirect())


VIEWS = [
    (WidgetBuilderView, "Booking widgets", "Online booking", security.TENANT_VIEWS, {"icon": "fa-code"}),
    (FormFieldView, "Booking form", "Online booking", security.TENANT_VIEWS, {"icon": "fa-list-alt"}),
    (ConsentTextView, "Terms & privacy texts", "Online booking", security.TENANT_VIEWS, {"icon": "fa-file-text-o"}),
    (ConsentRecordView, "Consent records", "Online booking", security.TENANT_VIEWS, {"icon": "fa-check-square-o"}),
]
