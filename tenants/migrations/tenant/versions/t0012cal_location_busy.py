"""Calendar sync: busy blocks of a location.

- `busy_block.location_id`: a location connection's foreign events become one row per
  occurrence for the location (staff_id NULL), which closes that location for the time
  (app/services/availability.py); every other block keeps its staff member. Exactly one
  of the two is set. Blocks written per staff member by location connections before
  this revision are dropped and those connections read their calendars in full again.
- The fresh-rows trigger of busy_block also moves the versions of every staff member
  working at a block's location, so cached availability answers see location blocks.

Revision ID: t0012cal
Revises: t0011fr
"""

import sqlalchemy as sa
from alembic import op

revision = "t0012cal"
down_revision = "t0011fr"
branch_labels = None
depends_on = None

_BUMP_BUSY = """
CREATE OR REPLACE FUNCTION bump_fresh_version_busy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sids integer[] := '{}';
    at_location integer[];
    lookup text := format('SELECT coalesce(array_agg(staff_id), ''{}'') FROM %I.staff_location WHERE location_id = $1',
                          TG_TABLE_SCHEMA);
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.staff_id IS NOT NULL THEN
            sids := sids || OLD.staff_id;
        END IF;
        IF OLD.location_id IS NOT NULL THEN
            EXECUTE lookup INTO at_location USING OLD.location_id;
            sids := sids || at_location;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.staff_id IS NOT NULL THEN
            sids := sids || NEW.staff_id;
        END IF;
        IF NEW.location_id IS NOT NULL THEN
            EXECUTE lookup INTO at_location USING NEW.location_id;
            sids := sids || at_location;
        END IF;
    END IF;
    IF cardinality(sids) > 0 THEN
        EXECUTE format('INSERT INTO %I.fresh_version AS f (staff_id, version)'
                       ' SELECT s, nextval(''public.rules_version_seq'') FROM (SELECT DISTINCT unnest($1) AS s) AS d ORDER BY s'
                       ' ON CONFLICT (staff_id) DO UPDATE SET version = nextval(''public.rules_version_seq'')',
                       TG_TABLE_SCHEMA) USING sids;
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.add_column("busy_block", sa.Column("location_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f("fk_busy_block_location_id_location"), "busy_block", "location",
                          ["location_id"], ["id"], ondelete="CASCADE")
    op.alter_column("busy_block", "staff_id", existing_type=sa.Integer(), nullable=True)
    op.create_check_constraint(op.f("ck_busy_block_owner"), "busy_block",
                               "(staff_id IS NOT NULL) <> (location_id IS NOT NULL)")
    op.create_index("ix_busy_block_location_range", "busy_block", ["location_id", "start_at", "end_at"])
    op.create_index("uq_busy_block_location_source_external", "busy_block", ["location_id", "source", "external_id"],
                    unique=True, postgresql_where=sa.text("location_id IS NOT NULL"))
    op.execute(_BUMP_BUSY)
    op.execute("DROP TRIGGER IF EXISTS trg_busy_block_fresh_write ON busy_block")
    op.execute("CREATE TRIGGER trg_busy_block_fresh_write AFTER INSERT OR UPDATE OR DELETE ON busy_block"
               " FOR EACH ROW EXECUTE FUNCTION bump_fresh_version_busy()")
    # Location connections wrote one block per staff member before: read their calendars again.
    op.execute("DELETE FROM busy_block WHERE connection_id IN "
               "(SELECT id FROM calendar_connection WHERE owner_kind = 'location')")
    op.execute("UPDATE calendar_connection SET sync_state = '{}'::jsonb, next_pull_at = now() "
               "WHERE owner_kind = 'location' AND status = 'active'")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_busy_block_fresh_write ON busy_block")
    op.execute("CREATE TRIGGER trg_busy_block_fresh_write AFTER INSERT OR UPDATE OR DELETE ON busy_block"
               " FOR EACH ROW EXECUTE FUNCTION bump_fresh_version()")
    op.execute("DROP FUNCTION IF EXISTS bump_fresh_version_busy()")
    op.execute("DELETE FROM busy_block WHERE location_id IS NOT NULL")
    op.drop_index("uq_busy_block_location_source_external", table_name="busy_block")
    op.drop_index("ix_busy_block_location_range", table_name="busy_block")
    op.drop_constraint(op.f("ck_busy_block_owner"), "busy_block", type_="check")
    op.alter_column("busy_block", "staff_id", existing_type=sa.Integer(), nullable=False)
    op.drop_constraint(op.f("fk_busy_block_location_id_location"), "busy_block", type_="foreignkey")
    op.drop_column("busy_block", "location_id")
