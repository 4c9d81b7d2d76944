"""Booking-form fields and consent texts bump the rules version too.

The public booking path reads them from the per-version catalogue snapshot
(app/services/catalogue.py); a trigger on each table keeps that snapshot exact,
whatever writes the rows.

Revision ID: t0005v
Revises: t0003w, t0004c
"""

from alembic import op

revision = "t0005v"
down_revision = ("t0003w", "t0004c")
branch_labels = None
depends_on = None

TABLES = ("form_field", "consent_text")


def upgrade() -> None:
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER trg_{table}_rules_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_rules_version ON {table}")
