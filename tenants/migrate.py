"""Run Alembic for the public schema and for each tenant schema.

Each schema keeps its own `alembic_version` table, so a tenant can be migrated
(or left behind and caught up) on its own. Migrations run on a connection whose
search_path points at the schema being migrated.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@lru_cache(maxsize=2)
def _config(kind: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / kind))
    return cfg


def head_revision(kind: str) -> str:
    """The newest revision(s) of the public or tenant tree ("a+b" while feature branches are unmerged)."""
    return "+".join(sorted(ScriptDirectory.from_config(_config(kind)).get_heads()))


def _upgrade(connection: Connection, kind: str, schema: str, target: str = "heads") -> None:
    cfg = _config(kind)
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    try:
        command.upgrade(cfg, target)
    finally:
        cfg.attributes.clear()


def migrate_public(engine: Engine) -> None:
    """Bring the public schema (and the extensions it needs) to the newest revision."""
    with engine.begin() as conn:
        # One migrator at a time: run.py, the CLI and tests may race on a fresh database.
        conn.execute(text("SELECT pg_advisory_xact_lock(7262001)"))
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
        conn.exec_driver_sql("SET LOCAL search_path TO public")
        _upgrade(conn, "public", "public")


def migrate_schema(connection: Connection, schema: str) -> str:
    """Create (if needed) and upgrade one tenant schema (its stored name) inside the caller's transaction."""
    connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
    _upgrade(connection, "tenant", schema)
    connection.exec_driver_sql("SET LOCAL search_path TO public")
    return head_revision("tenant")


def current_revision(connection: Connection, schema: str) -> str | None:
    exists = connection.execute(
        text("SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = 'alembic_version'"),
        {"s": schema},
    ).scalar()
    if not exists:
        return None
    ctx = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    return ctx.get_current_revision()
