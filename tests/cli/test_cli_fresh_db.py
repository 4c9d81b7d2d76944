"""The real `flask --app run.py` CLI on a brand-new empty database: migrate, then every other command works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text
from support import SCENARIOS, load_scenario

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture()
def fresh_db(services):
    url, redis_url = services
    name = f"upzento_fresh_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    yield fresh, redis_url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _flask(db, *args, stdin=None):
    url, redis_url = db
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "run.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, input=stdin, timeout=120)


def test_fresh_database_migrate_then_every_command(fresh_db, tmp_path):
    first = _flask(fresh_db, "tenants", "migrate", "--all")
    assert first.returncode == 0, first.stderr
    again = _flask(fresh_db, "tenants", "migrate", "--all")
    assert again.returncode == 0 and "0 tenant schema(s)" in again.stdout
    assert _flask(fresh_db, "agencies", "create", "acme", "--name", "Acme").returncode == 0
    created = _flask(fresh_db, "tenants", "create", "spa", "--agency", "acme", "--name", "Spa", "--timezone", "Europe/Paris")
    assert created.returncode == 0, created.stderr
    user = _flask(fresh_db, "users", "create", "boss", "--email", "boss@acme.test", "--password", "long-enough-1",
                  "--role", "Client Admin", "--tenant", "spa")
    assert user.returncode == 0, user.stderr
    bad_user = _flask(fresh_db, "users", "create", "x", "--email", "x@acme.test", "--password", "long-enough-1",
                      "--role", "Client Admin")
    assert bad_user.returncode == 1 and "needs --tenant" in bad_user.stderr
    if SCENARIOS:
        scenario = load_scenario(SCENARIOS[0])
        setup_file = tmp_path / "setup.json"
        setup_file.write_text(json.dumps(scenario["setup"]))
        imported = _flask(fresh_db, "tenants", "import", str(setup_file), "--agency", "acme")
        assert imported.returncode == 0, imported.stderr
        query = scenario["queries"][0]
        slots = _flask(fresh_db, "slots", scenario["setup"]["tenant"]["slug"], "--service", query["service"], "--from", query["from"],
                       "--to", query["to"], "--timezone", query["timezone"], "--now", scenario["setup"]["now"])
        assert slots.returncode == 0, slots.stderr
        assert json.loads(slots.stdout)["slots"] == query["expect"]
    listing = _flask(fresh_db, "tenants", "list")
    assert "spa\tacme\tactive" in listing.stdout
    assert _flask(fresh_db, "tenants", "delete", "spa", "--confirm").returncode == 0
    unknown = _flask(fresh_db, "slots", "nope", "--service", "x", "--from", "2027-01-01", "--to", "2027-01-01")
    assert unknown.returncode == 1 and "unknown tenant" in unknown.stderr
