"""GDPR: append-only audit log, subject-request timeline, marketing consent and withdrawal,
retention policy, auditor reports

The audit log is append-only in PostgreSQL: a row trigger refuses UPDATE and DELETE and a
statement trigger refuses TRUNCATE, for every role including the application's own and
the table's owner; UPDATE/DELETE/TRUNCATE are also revoked from PUBLIC. Dropping the
whole schema (tenant offboarding, after its archive) stays possible.

Revision ID: t0010gdpr
Revises: t0006r
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "t0010gdpr"
down_revision: Union[str, Sequence[str], None] = "t0006r"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _ts(name: str, nullable: bool = True, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **kw)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _ts("at", False, server_default=sa.text("now()")),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(80)),
        sa.Column("actor_label", sa.String(200)),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.String(300)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("entity_id", sa.String(80)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("changes", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("customer_id", sa.Integer()),
        sa.Column("staff_id", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_entity", "audit_log", ["entity", "entity_id"])
    op.create_index("ix_audit_log_customer", "audit_log", ["customer_id"])
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
        """
    )

    # Consents: marketing joins terms and privacy; channel and withdrawal per record.
    op.drop_constraint(op.f("ck_consent_text_kind"), "consent_text", type_="check")
    op.create_check_constraint(op.f("ck_consent_text_kind"), "consent_text", "kind IN ('terms', 'privacy', 'marketing')")
    op.add_column("consent_record", sa.Column("channel", sa.String(20), nullable=False, server_default="widget"))
    op.add_column("consent_record", _ts("withdrawn_at"))
    op.add_column("consent_record", sa.Column("withdrawn_channel", sa.String(20)))

    # Subject requests: erasure and export, with their timeline.
    op.alter_column("erasure_request", "customer_id", nullable=True)
    op.alter_column("erasure_request", "email", nullable=True)
    op.add_column("erasure_request", sa.Column("staff_id", sa.Integer()))
    op.add_column("erasure_request", sa.Column("kind", sa.String(10), nullable=False, server_default="erasure"))
    op.add_column("erasure_request", sa.Column("channel", sa.String(20), nullable=False, server_default="portal"))
    op.add_column("erasure_request", _ts("due_at"))
    op.add_column("erasure_request", _ts("approved_at"))
    op.add_column("erasure_request", sa.Column("approved_by", sa.String(200)))
    op.add_column("erasure_request", _ts("handled_at"))
    op.add_column("erasure_request", sa.Column("handled_by", sa.String(200)))
    op.add_column("erasure_request", sa.Column("note", sa.Text()))
    op.execute("UPDATE erasure_request SET due_at = requested_at + interval '30 days' WHERE due_at IS NULL")

    op.create_table(
        "retention_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_inactive_months", sa.Integer()),
        sa.Column("message_body_days", sa.Integer()),
        sa.Column("delivery_log_days", sa.Integer()),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        _ts("dry_run_at"),
        sa.Column("dry_run_report", postgresql.JSONB()),
        _ts("last_run_at"),
        sa.Column("last_run_report", postgresql.JSONB()),
        _ts("updated_at", False, server_default=sa.text("now()")),
        sa.CheckConstraint("id = 1", name=op.f("ck_retention_policy_single")),
        sa.CheckConstraint("customer_inactive_months IS NULL OR customer_inactive_months >= 1",
                           name=op.f("ck_retention_policy_months")),
        sa.CheckConstraint("message_body_days IS NULL OR message_body_days >= 1", name=op.f("ck_retention_policy_body_days")),
        sa.CheckConstraint("delivery_log_days IS NULL OR delivery_log_days >= 1", name=op.f("ck_retention_policy_log_days")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policy")),
    )
    op.create_table(
        "audit_report",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("period_from", False),
        _ts("period_to", False),
        sa.Column("format", sa.String(4), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(100)),
        sa.Column("requested_by", sa.String(200)),
        _ts("created_at", False),
        _ts("finished_at"),
        sa.Column("error", sa.Text()),
        sa.Column("content", sa.LargeBinary()),
        sa.CheckConstraint("format IN ('pdf', 'csv')", name=op.f("ck_audit_report_format")),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_audit_report_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_report")),
    )


def downgrade() -> None:
    op.drop_table("audit_report")
    op.drop_table("retention_policy")
    for column in ("note", "handled_by", "handled_at", "approved_by", "approved_at", "due_at", "channel", "kind", "staff_id"):
        op.drop_column("erasure_request", column)
    op.drop_column("consent_record", "withdrawn_channel")
    op.drop_column("consent_record", "withdrawn_at")
    op.drop_column("consent_record", "channel")
    op.drop_constraint(op.f("ck_consent_text_kind"), "consent_text", type_="check")
    op.create_check_constraint(op.f("ck_consent_text_kind"), "consent_text", "kind IN ('terms', 'privacy')")
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
