"""Fresh-rows version per staff member: bumped by every write to appointments, time off and busy blocks.

The availability answer cache (app/services/availability.py) keys an answer on the
rules version and on these numbers for the staff the query can touch. A row trigger
on each of the three tables upserts the staff member's row with nextval() of the
database-wide version sequence (t0006r): a number is never used twice, not after a
rollback and not in another schema, so a key names one state of the rows only and a
cached answer is never stale. Per staff member rather than one row per tenant: two
bookings for different staff do not wait for each other on the version row (the same
staff member's bookings already queue on the advisory lock).

Appointment updates bump only when a column the availability reads changes
(a reminder flag or a meeting link does not).

Revision ID: t0011fr
Revises: t0011out
"""

from alembic import op

revision = "t0011fr"
down_revision = "t0011out"
branch_labels = None
depends_on = None

TABLES = ("appointment", "time_off", "busy_block")
# What the availability's fresh-rows statement reads of an appointment.
APPOINTMENT_COLUMNS = ("staff_id", "service_id", "location_id", "start_at", "end_at", "padded_start", "padded_end",
                       "status", "seats")


def upgrade() -> None:
    op.execute("CREATE TABLE fresh_version (staff_id integer PRIMARY KEY, version bigint NOT NULL)")
    op.execute(
        "INSERT INTO fresh_version (staff_id, version) SELECT id, nextval('public.rules_version_seq') FROM staff"
    )
    # Row trigger: the staff of the old and the new row (a reassignment changes both).
    op.execute(
        """
        CREATE OR REPLACE FUNCTION bump_fresh_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                EXECUTE format('INSERT INTO %I.fresh_version AS f (staff_id, version)'
                               ' VALUES ($1, nextval(''public.rules_version_seq''))'
                               ' ON CONFLICT (staff_id) DO UPDATE SET version = nextval(''public.rules_version_seq'')',
                               TG_TABLE_SCHEMA) USING OLD.staff_id;
            END IF;
            IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.staff_id IS DISTINCT FROM OLD.staff_id) THEN
                EXECUTE format('INSERT INTO %I.fresh_version AS f (staff_id, version)'
                               ' VALUES ($1, nextval(''public.rules_version_seq''))'
                               ' ON CONFLICT (staff_id) DO UPDATE SET version = nextval(''public.rules_version_seq'')',
                               TG_TABLE_SCHEMA) USING NEW.staff_id;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    # TRUNCATE has no rows: every staff member's version moves.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION bump_all_fresh_versions() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('UPDATE %I.fresh_version SET version = nextval(''public.rules_version_seq'')', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$
        """
    )
    old = ", ".join(f"OLD.{c}" for c in APPOINTMENT_COLUMNS)
    new = ", ".join(f"NEW.{c}" for c in APPOINTMENT_COLUMNS)
    for table in TABLES:
        if table == "appointment":
            op.execute(
                f"CREATE TRIGGER trg_{table}_fresh_write AFTER INSERT OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION bump_fresh_version()"
            )
            op.execute(
                f"CREATE TRIGGER trg_{table}_fresh_update AFTER UPDATE ON {table}"
                f" FOR EACH ROW WHEN (({old}) IS DISTINCT FROM ({new})) EXECUTE FUNCTION bump_fresh_version()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER trg_{table}_fresh_write AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION bump_fresh_version()"
            )
        op.execute(
            f"CREATE TRIGGER trg_{table}_fresh_truncate AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_all_fresh_versions()"
        )


def downgrade() -> None:
    for table in TABLES:
        for suffix in ("write", "update", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_fresh_{suffix} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_fresh_version()")
    op.execute("DROP FUNCTION IF EXISTS bump_all_fresh_versions()")
    op.execute("DROP TABLE IF EXISTS fresh_version")
