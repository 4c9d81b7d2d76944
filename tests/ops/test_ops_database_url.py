"""DATABASE_URL in the plain form hosting platforms hand out (`postgresql://`, `postgres://`): the app picks psycopg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://u:p@db:5432/app", "postgresql+psycopg://u:p@db:5432/app"),
    ("postgres://u:p@db/app?sslmode=require", "postgresql+psycopg://u:p@db/app?sslmode=require"),
    ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
    (None, None),
    ("", ""),
])
def test_plain_urls_get_the_psycopg_driver(given, used):
    from config import database_url

    assert database_url(given) == used


def _plain(url: str, scheme: str) -> str:
    return scheme + "://" + url.split("://", 1)[1]


CHECK = (
    "from sqlalchemy import text\n"
    "from app import create_app\n"
    "from app.extensions import db\n"
    "app = create_app()\n"
    "with app.app_context():\n"
    "    print(db.engine.dialect.driver, db.session.execute(text('SELECT count(*) FROM agency')).scalar() >= 1)\n"
)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_the_app_starts_on_a_plain_url_from_the_environment(services, app, scheme):
    url, redis_url = services
    assert make_url(url).drivername == "postgresql+psycopg"
    env = {**os.environ, "DATABASE_URL": _plain(url, scheme), "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT),
           "UPZENTO_ENV": "development"}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["psycopg", "True"]


def test_the_cli_runs_on_a_plain_url(services, app):
    url, redis_url = services
    env = {**os.environ, "DATABASE_URL": _plain(url, "postgres"), "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT),
           "UPZENTO_ENV": "development"}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "run.py", "agencies", "list"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test-agency" in done.stdout
