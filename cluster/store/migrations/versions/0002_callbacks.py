"""Callbacks instead of hang-ups: a call says under which lead it is called back, and when.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cluster.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("callback_lead_id", sa.String(128)))
        batch.add_column(sa.Column("callback_due_at", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("callback_due_at")
        batch.drop_column("callback_lead_id")
