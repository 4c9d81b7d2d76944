"""Shared fixtures: a real PostgreSQL and Redis (yours via DATABASE_URL/REDIS_URL, or embedded),
one migrated database per test session, the app, and factories.

Each test that needs business data makes its own tenant with a unique slug, so
tests never see each other's rows and need no cleanup.
"""

from __future__ import annotations

import json
import os

import pytest

# The suite runs the development settings (derived credentials key, PUBLIC_URL from HOST:PORT);
# tests/security checks the production start-up refusals explicitly.
os.environ.setdefault("UPZENTO_ENV", "development")

from support import minimal_setup, unique_slug


@pytest.fixture(scope="session")
def services():
    """(database_url, redis_url) of a fresh database: env-provided servers, else embedded ones."""
    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_test") as urls:
        yield urls


@pytest.fixture(scope="session")
def app(services):
    database_url, redis_url = services
    os.environ["REDIS_URL"] = redis_url
    from app import create_app
    from app.security import sync_all_roles
    from tenants.provisioning import create_agency, migrate_all

    application = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "SERVER_NAME": None,
        }
    )
    with application.app_context():
        from app.extensions import db

        migrate_all(db.engine)
        sync_all_roles(application)
        create_agency(db.session, "test-agency", "Test Agency")
        db.session.commit()
    yield application
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def engine(app):
    from app.extensions import db

    with app.app_context():
        yield db.engine


@pytest.fixture()
def make_tenant(app):
    """make_tenant(setup=None, slug=None) -> slug: imports a setup file (the scenario format) as a new tenant."""
    from app.extensions import db
    from app.services.setup_io import import_setup

    def factory(setup: dict | None = None, slug: str | None = None, agency: str = "test-agency") -> str:
        doc = json.loads(json.dumps(setup or minimal_setup()))
        doc["tenant"]["slug"] = slug or unique_slug(doc["tenant"]["slug"][:20].replace("-", "_"))
        with app.app_context():
            import_setup(db.engine, doc, agency)
        return doc["tenant"]["slug"]

    return factory


@pytest.fixture()
def agency_business(app, make_tenant):
    """A new agency with one business (minimal setup) and two log-ins, password "password-1":
    its agency owner `ow_<slug>` and the business's client admin `ca_<slug>`. Returns the slug."""
    from app.extensions import db
    from app.services.people import create_user_with_role
    from tenants.provisioning import create_agency

    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Own agency")
        db.session.commit()
    slug = make_tenant(agency=agency)
    with app.app_context():
        create_user_with_role(db.session, username=f"ca_{slug}", email=f"ca_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        create_user_with_role(db.session, username=f"ow_{slug}", email=f"ow_{slug}@x.org", password="password-1",
                              role="Agency Owner", agency_slug=agency)
        db.session.commit()
    return slug


@pytest.fixture()
def pinned_now(app):
    """Pin the public API's clock: pinned_now("2027-01-01T00:00:00Z")."""
    previous = app.config.get("PUBLIC_API_NOW")

    def pin(value: str | None):
        app.config["PUBLIC_API_NOW"] = value

    yield pin
    app.config["PUBLIC_API_NOW"] = previous
