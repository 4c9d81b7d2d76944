"""Rules version: a counter bumped by any change to the scheduling rules of a tenant.

The availability service caches the static rules (locations, hours, staff,
services) per (schema, version); a trigger on every rule table bumps the
version, so no code path (admin, API, import, raw SQL) can leave a stale cache.

Revision ID: t0004c
Revises: t0001
"""

from alembic import op

revision = "t0004c"
down_revision = "t0001"
branch_labels = None
depends_on = None

RULE_TABLES = (
    "location", "location_hours", "location_closure", "service", "service_location", "category",
    "staff", "staff_service", "staff_location", "staff_hours", "staff_break", "staff_override",
)


def upgrade() -> None:
    op.execute("CREATE TABLE rules_version (id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1), version bigint NOT NULL DEFAULT 1)")
    op.execute("INSERT INTO rules_version (id, version) VALUES (1, 1)")
    op.execute(
        """
        CREATE FUNCTION bump_rules_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('UPDATE %I.rules_version SET version = version + 1', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$
        """
    )
    for table in RULE_TABLES:
        op.execute(
            f"CREATE TRIGGER trg_{table}_rules_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version()"
        )


def downgrade() -> None:
    for table in RULE_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_rules_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_rules_version()")
    op.execute("DROP TABLE IF EXISTS rules_version")
