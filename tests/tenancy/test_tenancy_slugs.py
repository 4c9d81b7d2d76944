"""Tenant slugs are setup-file keys (hyphens allowed); the schema name is derived once and stored on the row.

`bella-salon` imports through the CLI and the admin upload, takes bookings at
/api/v1/public/bella-salon/..., and lives in its own schema; `bella_salon` (same
derived name) gets a disambiguated schema and the two never see each other's rows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import jsonschema
import pytest
from sqlalchemy import create_engine, select, text
from support import SETUP_SCHEMA, minimal_setup, next_weekday, unique_slug

SCHEMA_NAME = re.compile(r"^tenant_[a-z0-9_]{1,56}$")


def test_schema_names_are_derived_safely():
    from app.models.public import derive_schema_name

    assert derive_schema_name("bella_salon") == "tenant_bella_salon"
    assert derive_schema_name("bella-salon") == "tenant_bella_salon"
    taken = {"tenant_bella_salon"}
    other = derive_schema_name("bella-salon", taken)
    assert other != "tenant_bella_salon" and other.startswith("tenant_bella_salon_") and SCHEMA_NAME.match(other)
    assert derive_schema_name("bella-salon", taken) == other  # deterministic
    assert derive_schema_name("bella-salon", taken | {other}) not in taken | {other}
    longest = "a-" * 31 + "z"  # 63 characters, the longest slug
    name = derive_schema_name(longest)
    assert len(name.encode()) <= 63 and SCHEMA_NAME.match(name)
    assert derive_schema_name("7-days") == "tenant_7_days"
    for bad in ("Bella", "-x", "", "a" * 64, 'x"; drop', "bella salon"):
        with pytest.raises(ValueError):
            derive_schema_name(bad)


def _run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def _stored_schema(app, slug):
    from app.extensions import db
    from app.models.public import Tenant

    with app.app_context():
        return db.session.scalar(select(Tenant.schema_name).where(Tenant.slug == slug))


def _appointments(app, schema):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(f'SELECT count(*) FROM "{schema}".appointment')).scalar()


def _book(client, slug, day):
    free = client.get(f"/api/v1/public/{slug}/availability",
                      query_string={"service": "visit", "from": day.isoformat(), "to": day.isoformat(), "timezone": "Europe/Berlin"})
    assert free.status_code == 200, free.get_json()
    start = free.get_json()["slots"][0]["start"]
    booked = client.post(f"/api/v1/public/{slug}/bookings",
                         json={"service": "visit", "start": start, "customer": {"name": "Eve", "email": "eve@example.com"}})
    assert booked.status_code == 201, booked.get_json()
    return booked.get_json()


def test_hyphen_slug_imports_by_cli_and_books_through_the_public_api(app, client, tmp_path):
    # A name of its own: the demo seed (another test) may already hold tenant_bella_salon.
    tag = uuid.uuid4().hex[:8]
    hyphen, underscore, schema = f"bella-{tag}", f"bella_{tag}", f"tenant_bella_{tag}"
    doc = minimal_setup()
    doc["tenant"]["slug"] = hyphen
    jsonschema.validate(doc, json.loads(SETUP_SCHEMA.read_text()))  # a valid setup file
    path = tmp_path / "bella.json"
    path.write_text(json.dumps(doc))
    imported = _run(app, "tenants", "import", str(path), "--agency", "test-agency")
    assert imported.exit_code == 0, imported.output
    assert f"created tenant {hyphen}" in imported.output
    assert _stored_schema(app, hyphen) == schema
    assert f"{hyphen}\ttest-agency\tactive" in _run(app, "tenants", "list").output

    day = next_weekday(0, weeks_ahead=2)
    body = _book(client, hyphen, day)
    assert client.get(f"/api/v1/public/{hyphen}/bookings/{body['manage_token']}").status_code == 200
    assert _appointments(app, schema) == 1

    # The same derived name for another slug: its own, disambiguated schema; no rows shared.
    twin = minimal_setup()
    twin["tenant"]["slug"] = underscore
    path.write_text(json.dumps(twin))
    assert _run(app, "tenants", "import", str(path), "--agency", "test-agency").exit_code == 0
    twin_schema = _stored_schema(app, underscore)
    assert twin_schema != schema and SCHEMA_NAME.match(twin_schema)
    _book(client, underscore, day)
    _book(client, underscore, day)
    assert _appointments(app, twin_schema) == 2 and _appointments(app, schema) == 1
    assert len(client.get(f"/api/v1/public/{hyphen}/availability", query_string={
        "service": "visit", "from": day.isoformat(), "to": day.isoformat(), "timezone": "Europe/Berlin"}).get_json()["slots"]) == 15

    exported = _run(app, "tenants", "export", hyphen)
    assert exported.exit_code == 0 and json.loads(exported.output)["tenant"]["slug"] == hyphen
    assert _run(app, "tenants", "migrate", hyphen).exit_code == 0

    # Deleting the twin drops its schema only.
    assert _run(app, "tenants", "delete", underscore, "--confirm").exit_code == 0
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        schemas = set(conn.execute(text("SELECT schema_name FROM information_schema.schemata")).scalars())
    assert twin_schema not in schemas and schema in schemas
    assert _appointments(app, schema) == 1


def test_bad_slugs_are_refused_with_the_rule(app):
    for bad in ("Bella-Salon", "_bella", "bella salon", "b" * 64):
        created = _run(app, "tenants", "create", bad, "--agency", "test-agency", "--name", "B")
        assert created.exit_code == 1 and "tenant slug must match" in created.output, bad


def test_hyphen_slug_through_the_admin_upload_and_the_admin_form(app, client, make_user, login):
    from app.extensions import db
    from app.models.public import Agency

    login(client, make_user("Agency Owner", agency="test-agency"))
    with app.app_context():
        agency_id = db.session.scalar(select(Agency.id).where(Agency.slug == "test-agency"))
    doc = minimal_setup()
    doc["tenant"]["slug"] = slug = "up-" + uuid.uuid4().hex[:8]
    uploaded = client.post("/setupimport/", data={"file": (io.BytesIO(json.dumps(doc).encode()), "setup.json"),
                                                  "agency": str(agency_id)}, content_type="multipart/form-data")
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)[-800:]
    assert _stored_schema(app, slug) == "tenant_" + slug.replace("-", "_")
    assert client.get(f"/api/v1/public/{slug}/services").get_json()["services"][0]["key"] == "visit"

    form_slug = "form-" + uuid.uuid4().hex[:8]
    added = client.post("/tenantview/add", data={"agency": str(agency_id), "name": "Form Co", "slug": form_slug,
                                                 "timezone": "Europe/Berlin", "currency": "EUR", "locale": "en"})
    assert added.status_code == 302, added.get_data(as_text=True)[-500:]
    status = client.get(added.headers["Location"] + "?format=json").get_json()
    assert status["status"] == "active" and all(step["done"] for step in status["steps"])
    assert _stored_schema(app, form_slug) == "tenant_" + form_slug.replace("-", "_")


def test_migration_backfills_the_schema_name_of_existing_tenants(services):
    """p0003s on a database made before it: every existing row gets what schema_for(slug) gave, tenant_<slug>."""
    from tenants import migrate

    url, _redis = services
    name = f"upzento_p0003s_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(urlunsplit(urlsplit(url)._replace(path=f"/{name}")))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
            conn.exec_driver_sql("SET LOCAL search_path TO public")
            migrate._upgrade(conn, "public", "public", "p0002n")
            conn.execute(text("INSERT INTO agency (slug, name, created_at) VALUES ('old', 'Old', now())"))
            conn.execute(text(
                "INSERT INTO tenant (agency_id, slug, name, timezone, currency, locale, status, created_at) "
                "SELECT id, s, 'Old ' || s, 'UTC', 'EUR', 'en', 'active', now() FROM agency, "
                "unnest(ARRAY['old_salon', 'spa']) s"))
        migrate.migrate_public(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT slug, schema_name FROM tenant")).all())
            assert rows == {"old_salon": "tenant_old_salon", "spa": "tenant_spa"}
            with pytest.raises(Exception):
                conn.execute(text("UPDATE tenant SET schema_name = 'public' WHERE slug = 'spa'"))
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
