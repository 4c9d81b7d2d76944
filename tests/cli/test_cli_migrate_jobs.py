"""`tenants migrate --all --jobs N`: parallel, failures listed while the rest carry on, resumable, a rerun is a no-op."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TENANTS = 12


@pytest.fixture()
def many_tenants(services):
    """A fresh database with TENANTS businesses; yields (database URL, redis URL, slugs)."""
    url, redis_url = services
    name = f"upzento_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    from tenants.provisioning import TenantSpec, create_agency, create_tenant, migrate_public
    from sqlalchemy.orm import Session

    engine = create_engine(fresh)
    migrate_public(engine)
    with Session(engine) as session, session.begin():
        create_agency(session, "many", "Many")
    slugs = [f"biz-{i:02d}" for i in range(TENANTS)]
    for slug in slugs:
        create_tenant(engine, "many", TenantSpec(slug, slug.title()))
    engine.dispose()
    yield fresh, redis_url, slugs
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrate(url, redis_url, *extra):
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "run.py", "tenants", "migrate", "--all", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _versions(url) -> dict[str, set[str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        schemas = dict(conn.execute(text("SELECT slug, schema_name FROM public.tenant")).all())
        present = set(conn.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'")).scalars())
        found = {slug: set(conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version')).scalars())
                 if schema in present else set() for slug, schema in schemas.items()}
    engine.dispose()
    return found


def test_parallel_migrate_reports_a_failing_tenant_carries_on_and_resumes(many_tenants):
    from tenants.migrate import head_revision

    url, redis_url, slugs = many_tenants
    heads = set(head_revision("tenant").split("+"))
    engine = create_engine(url)
    with engine.begin() as conn:
        schemas = dict(conn.execute(text("SELECT slug, schema_name FROM public.tenant")).all())
        for slug in slugs[:3]:  # behind: their schema is gone and is built again
            conn.execute(text(f'DROP SCHEMA "{schemas[slug]}" CASCADE'))
        # broken: a revision no migration knows, so Alembic refuses this one
        conn.execute(text(f'DELETE FROM "{schemas[slugs[5]]}".alembic_version'))
        conn.execute(text(f'INSERT INTO "{schemas[slugs[5]]}".alembic_version VALUES (\'zz_unknown\')'))
    engine.dispose()

    first = _migrate(url, redis_url, "--jobs", "4")
    assert first.returncode == 1
    assert f"error: {slugs[5]}:" in first.stderr and "zz_unknown" in first.stderr
    assert "1 tenant schema(s) failed" in first.stderr
    assert "3 tenant schema(s) migrated, 1 failed" in first.stdout
    versions = _versions(url)
    assert all(versions[s] == heads for s in slugs if s != slugs[5])
    assert versions[slugs[5]] == {"zz_unknown"}

    engine = create_engine(url)
    with engine.begin() as conn:  # the operator repairs it ...
        conn.execute(text(f'DROP SCHEMA "{schemas[slugs[5]]}" CASCADE'))
    engine.dispose()
    second = _migrate(url, redis_url, "--jobs", "4")  # ... and runs again: only that one is migrated
    assert second.returncode == 0, second.stderr
    assert "1 tenant schema(s) migrated, 0 failed" in second.stdout
    assert all(v == heads for v in _versions(url).values())

    third = _migrate(url, redis_url, "--jobs", "4")
    assert third.returncode == 0, third.stderr
    assert "0 tenant schema(s) to migrate" in third.stdout


def test_jobs_must_be_a_positive_number(many_tenants):
    url, redis_url, _ = many_tenants
    bad = _migrate(url, redis_url, "--jobs", "0")
    assert bad.returncode != 0
    assert "--jobs" in bad.stderr
