"""Rules versions come from one database-wide sequence, so no version number is ever used twice.

Processes cache a tenant's catalogue and rules per (database, schema, version).
With a per-schema counter (version + 1) a number came back: after a transaction
that edited rules, read them (caching that state) and rolled back, the next
committed edit reached the same number and was served the rolled-back state; a
business deleted and made again under its slug restarted the count and was
served the old business's catalogue. nextval() is never rolled back and is
shared by every schema, so a version number names one state only.

Revision ID: t0006r
Revises: t0005v
"""

from alembic import op

revision = "t0006r"
down_revision = "t0005v"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The first schema to get here after the upgrade creates the sequence; the lock
    # makes a concurrent one wait for that instead of failing on the duplicate name.
    op.execute(
        """
        DO $$ BEGIN
            IF to_regclass('public.rules_version_seq') IS NULL THEN
                PERFORM pg_advisory_xact_lock(7262002);
                CREATE SEQUENCE IF NOT EXISTS public.rules_version_seq;
            END IF;
        END $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION bump_rules_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('UPDATE %I.rules_version SET version = nextval(''public.rules_version_seq'')', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$
        """
    )
    op.execute("UPDATE rules_version SET version = nextval('public.rules_version_seq')")


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION bump_rules_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('UPDATE %I.rules_version SET version = version + 1', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$
        """
    )
