"""Registers the tenant REST API (app/api_rest.py) with the audience of tenant data."""

from __future__ import annotations

from app import security
from app.api_appointments import AppointmentsApi, AvailabilityApi
from app.api_rest import API_CLASSES
from app.api_webhooks import WebhooksApi

APIS = [(api, security.TENANT_VIEWS) for api in (*API_CLASSES, AppointmentsApi, AvailabilityApi, WebhooksApi)]

# FAB's own OpenAPI document and Swagger page: any signed-in role (or API key) may read them.
security.STAFF_READ_VIEWS.update({"OpenApi", "SwaggerView"})

# The REST API's own OpenAPI 3.1 document and page (app/api_docs.py), for the roles that may read appointments.
LINKS = [("REST API docs", "/api/v1/docs", "Settings", "AppointmentsApi", "can_get", "fa-book")]
