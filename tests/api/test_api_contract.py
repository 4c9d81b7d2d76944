"""The served OpenAPI 3.1 document: valid, complete for the REST routes, browsable without a CDN, and
honoured by the running app (schemathesis over real HTTP: no 5xx, every answer matches its schema)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_document_is_valid_openapi_31_and_covers_every_rest_route(app, client):
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)
    documented = {path.replace("{pk}", "<pk>").replace("{id}", "<pk>").replace("{uid}", "<uid>")
                  .replace("{delivery_id}", "<delivery_id>").replace("{tenant}", "<tenant_slug>")
                  .replace("{token}", "<token>").replace("{public_id}", "<public_id>").replace("{metric}", "<metric>"):
                  {m.upper() for m in item if m != "parameters"}
                  for path, item in spec["paths"].items()}
    missing = []
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<int:pk>", "<pk>")
        # The public booking API and analytics are documented too (only FAB's own login API is not).
        if not path.startswith("/api/v1/") or path.startswith(("/api/v1/security/", "/api/v1/_openapi",
                                                              "/api/v1/openapi", "/api/v1/docs", "/api/v1/menu/")):
            continue
        if path == "/api/v1/" or "/_info" in path or "/related/" in path or "/distinct/" in path:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method not in documented.get(path, ()):
                missing.append(f"{method} {path}")
    assert not missing, missing
    codes = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert {"rate_limited", "precondition_failed", "idempotency_mismatch", "slot_unavailable"} <= set(codes)
    public = spec["paths"]["/api/v1/public/{tenant}/bookings"]["post"]
    assert public["security"] == [] and "201" in public["responses"]
    assert "csv" in str(spec["paths"]["/api/v1/analytics/{metric}"]["get"]["responses"]["200"]["content"])


def test_docs_page_is_served_locally_and_linked_from_the_admin(client, make_tenant, make_user, login):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui-bundle" in html and "/api/v1/openapi.json" in html
    assert "https://" not in html and "http://" not in html  # every asset from this app
    login(client, make_user("Client Admin", tenant=make_tenant()))
    assert 'href="/api/v1/docs"' in client.get("/locationview/list/").get_data(as_text=True)


# caldav pulls in urllib3-future, whose pool manager has no `pools.keys()`; schemathesis counts open
# connections through it only to decide whether to resend a request dropped on a kept-alive connection.
RUNNER = ("import schemathesis.transport.requests as t; t._count_opened_connections = lambda session: 0; "
          "from schemathesis.cli import schemathesis as cli; cli(prog_name='st')")


def test_running_app_honours_its_document(app, live_server, make_tenant, make_api_key, pinned_now):
    pytest.importorskip("schemathesis")
    pinned_now("2027-01-01T00:00:00Z")
    key = make_api_key(make_tenant())
    run = subprocess.run(
        [sys.executable, "-c", RUNNER, "run", f"{live_server}/api/v1/openapi.json", "--url", live_server,
         "--checks", CHECKS, "--phases", "examples,fuzzing", "--max-examples", "5", "--seed", "1515",
         "--workers", "1", "--request-timeout", "10", "--no-shrink", "--generation-deterministic",
         "-H", f"Authorization: Bearer {key}"],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Test cases:" in run.stdout
