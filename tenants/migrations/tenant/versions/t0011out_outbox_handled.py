"""outbox: handled_at, so the relay can send again an event whose job Redis lost

`relayed_at` says the event's jobs were handed to Redis; `handled_at` says the
notification job planned its deliveries. An event relayed long ago and still
not handled (its job vanished in a Redis failover or a restart without
persistence) is relayed again (app.jobs.relay, OUTBOX_REQUEUE_SECONDS).
Events relayed before this revision count as handled.

Also merges the feature branches that grew from t0006r into one head.

Revision ID: t0011out
Revises: t0007cal, t0008mtg, t0009dash, t0010gdpr
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "t0011out"
down_revision: Union[str, Sequence[str], None] = ("t0007cal", "t0008mtg", "t0009dash", "t0010gdpr")
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("outbox_event", sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE outbox_event SET handled_at = relayed_at WHERE relayed_at IS NOT NULL")
    op.create_index("ix_outbox_unhandled", "outbox_event", ["relayed_at"],
                    postgresql_where=sa.text("handled_at IS NULL AND relayed_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_outbox_unhandled", table_name="outbox_event")
    op.drop_column("outbox_event", "handled_at")
