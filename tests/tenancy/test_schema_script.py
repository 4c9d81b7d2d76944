"""A tenant schema built from the recorded migrations script is the schema Alembic builds,
catalogue entry by catalogue entry; a new migration records a new script."""

from __future__ import annotations

import shutil
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text

from tenants import migrate, schema_script


def catalogue(conn, schema: str) -> dict[str, list]:
    """Everything PostgreSQL knows about `schema`, with its name written as <schema>."""
    conn.exec_driver_sql(f'SET search_path TO "{schema}", public')
    queries = {
        "relations": """SELECT c.relname, c.relkind, c.relpersistence, c.relhasindex, c.relhastriggers,
                               obj_description(c.oid, 'pg_class')
                        FROM pg_class c WHERE c.relnamespace = CAST(:s AS regnamespace) ORDER BY 1""",
        "columns": """SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                             pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation
                      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                      WHERE c.relnamespace = CAST(:s AS regnamespace) AND a.attnum > 0 AND NOT a.attisdropped
                      ORDER BY 1, 2""",
        "constraints": """SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid), condeferrable,
                                 condeferred, convalidated
                          FROM pg_constraint WHERE connamespace = CAST(:s AS regnamespace) ORDER BY 1, 2""",
        "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = :s ORDER BY 1, 2""",
        "triggers": """SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
                       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                       WHERE c.relnamespace = CAST(:s AS regnamespace) AND NOT t.tgisinternal ORDER BY 1, 2""",
        "functions": """SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
                        FROM pg_proc p WHERE p.pronamespace = CAST(:s AS regnamespace) ORDER BY 1, 2""",
        "sequences": """SELECT sequencename, data_type::text, start_value, min_value, max_value, increment_by,
                               cycle, cache_size, last_value FROM pg_sequences WHERE schemaname = :s ORDER BY 1""",
        "owned_sequences": """SELECT s.relname, t.relname, a.attname FROM pg_depend d
                              JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                              JOIN pg_class t ON t.oid = d.refobjid
                              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                              WHERE s.relnamespace = CAST(:s AS regnamespace) AND d.deptype IN ('a', 'i')
                              ORDER BY 1""",
        "types": """SELECT t.typname, t.typtype FROM pg_type t WHERE t.typnamespace = CAST(:s AS regnamespace)
                    ORDER BY 1""",
        "alembic_version": f'SELECT version_num FROM "{schema}".alembic_version ORDER BY 1',
    }
    out: dict[str, list] = {}
    for name, sql in queries.items():
        rows = conn.execute(text(sql), {"s": schema}).all()
        out[name] = [tuple(str(v).replace(schema, "<schema>") if isinstance(v, str) else v for v in row)
                     for row in rows]
    tables = [r[0] for r in conn.execute(text(
        "SELECT relname FROM pg_class WHERE relnamespace = CAST(:s AS regnamespace) AND relkind IN ('r', 'p') "
        "ORDER BY 1"), {"s": schema})]
    out["row_counts"] = [(t, conn.execute(text(f'SELECT count(*) FROM "{schema}"."{t}"')).scalar()) for t in tables]
    conn.exec_driver_sql("SET search_path TO public")
    return out


@pytest.fixture()
def scratch_db(services):
    url, _redis = services
    name = f"upzento_script_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(urlunsplit(urlsplit(url)._replace(path=f"/{name}")))
    migrate.migrate_public(engine)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_schema_built_from_the_script_equals_a_migrated_one(scratch_db):
    with scratch_db.begin() as conn:
        migrated_rev = migrate.migrate_schema(conn, "tenant_by_alembic")
    with scratch_db.begin() as conn:
        first = schema_script.build_schema(conn, "tenant_by_script_a")  # records the script
    with scratch_db.begin() as conn:
        second = schema_script.build_schema(conn, "tenant_by_script_b")  # replays the cached one
    assert migrated_rev == first == second == migrate.head_revision("tenant")
    with scratch_db.connect() as conn:
        expected = catalogue(conn, "tenant_by_alembic")
        assert expected["relations"] and expected["triggers"] and expected["functions"]
        assert any("EXCLUDE USING gist" in c[3] for c in expected["constraints"])
        for built in ("tenant_by_script_a", "tenant_by_script_b"):
            got = catalogue(conn, built)
            for part in expected:
                assert got[part] == expected[part], f"{built}: {part} differs"
        # the template the script was recorded in was rolled back
        left = conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'upzento_schema_template_%'"))
        assert left.scalar() == 0


def test_a_migrated_later_schema_and_a_built_one_are_both_current_for_migrate_all(scratch_db):
    """`tenants_behind` reads each schema's alembic_version: a script-built schema is at the head."""
    from sqlalchemy.orm import Session

    from tenants.provisioning import TenantSpec, create_agency, create_tenant, tenants_behind

    with Session(scratch_db) as session, session.begin():
        create_agency(session, "scripted", "Scripted")
    create_tenant(scratch_db, "scripted", TenantSpec("script-biz", "Script Biz"))
    assert tenants_behind(scratch_db) == []


def test_a_new_migration_records_a_new_script(scratch_db, tmp_path, monkeypatch):
    shutil.copytree(migrate.MIGRATIONS / "tenant", tmp_path / "tenant")
    heads = migrate.head_revision("tenant")
    with scratch_db.begin() as conn:
        schema_script.build_schema(conn, "tenant_before")
    (tmp_path / "tenant" / "versions" / "t9999_test_extra.py").write_text(
        '"""test: one more table"""\n'
        "from alembic import op\n\n"
        'revision = "t9999_test_extra"\n'
        f"down_revision = {tuple(heads.split('+'))!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n"
        '    op.execute("CREATE TABLE extra_for_test (id integer PRIMARY KEY)")\n\n\n'
        "def downgrade():\n"
        '    op.execute("DROP TABLE extra_for_test")\n')
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path)
    migrate._config.cache_clear()
    try:
        with scratch_db.begin() as conn:
            assert schema_script.build_schema(conn, "tenant_after") == "t9999_test_extra"
        with scratch_db.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('tenant_after.extra_for_test') IS NOT NULL")).scalar()
            assert conn.execute(text("SELECT to_regclass('tenant_before.extra_for_test') IS NULL")).scalar()
            assert conn.execute(text("SELECT version_num FROM tenant_after.alembic_version")).scalar() == \
                "t9999_test_extra"
    finally:
        monkeypatch.undo()
        migrate._config.cache_clear()
        schema_script._scripts.clear()


def test_turned_off_it_migrates_with_alembic(scratch_db, monkeypatch):
    monkeypatch.setenv("TENANT_SCHEMA_SCRIPT", "0")
    schema_script._scripts.clear()
    with scratch_db.begin() as conn:
        assert schema_script.build_schema(conn, "tenant_plain") == migrate.head_revision("tenant")
    assert schema_script._scripts == {}  # nothing recorded: Alembic ran
