"""Tickets with their SLA deadlines and breach markers; customer profiles keyed by a
keyed hash of the number.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cluster.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(32)),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("fields", sa.JSON),
        sa.Column("call_uuid", sa.String(64)),
        sa.Column("customer_key", sa.String(64)),
        sa.Column("phone", sa.String(40)),
        sa.Column("email", sa.String(320)),
        sa.Column("tier", sa.String(32)),
        sa.Column("emotion", sa.String(64)),
        sa.Column("created_by", sa.String(200)),
        sa.Column("assignee", sa.String(128)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime()),
        sa.Column("first_response_due", UTCDateTime()),
        sa.Column("resolution_due", UTCDateTime()),
        sa.Column("first_response_at", UTCDateTime()),
        sa.Column("closed_at", UTCDateTime()),
        sa.Column("resolution", sa.Text),
        sa.Column("first_response_breached_at", UTCDateTime()),
        sa.Column("first_response_breach_sent_at", UTCDateTime()),
        sa.Column("resolution_breached_at", UTCDateTime()),
        sa.Column("resolution_breach_sent_at", UTCDateTime()),
    )
    op.create_index("ix_tickets_status_queue", "tickets", ["status", "queue"])
    op.create_index("ix_tickets_assignee", "tickets", ["assignee"])
    op.create_index("ix_tickets_customer", "tickets", ["customer_key"])
    op.create_index("ix_tickets_call", "tickets", ["call_uuid"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_table(
        "customers",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("phone_masked", sa.String(40)),
        sa.Column("tier", sa.String(32)),
        sa.Column("name", sa.String(200)),
        sa.Column("language", sa.String(16)),
        sa.Column("attributes", sa.JSON),
        sa.Column("source", sa.String(16)),
        sa.Column("created_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime()),
    )


def downgrade() -> None:
    op.drop_table("customers")
    for name in ("ix_tickets_created_at", "ix_tickets_call", "ix_tickets_customer",
                 "ix_tickets_assignee", "ix_tickets_status_queue"):
        op.drop_index(name, table_name="tickets")
    op.drop_table("tickets")
