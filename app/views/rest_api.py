"""Registers the tenant REST API (app/api_rest.py) with the audience of tenant data."""

from __future__ import annotations

from app import security
from app.api_appointments import AppointmentsApi, AvailabilityApi
from app.api_rest import API_CLASSES
from app.api_webhooks import WebhooksApi

APIS = [(api, security.TENANT_VIEWS) for api in (*API_CLASSES, AppointmentsApi, AvailabilityApi, WebhooksApi)]

# FAB's own OpenAPI document and Swagger page: any signed-in role (or API key) may read them.
security.STAFF_READ_VIEWS.update({"OpenApi", "SwaggerView"})
