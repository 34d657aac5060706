"""Call records, turns and the compliance ledger.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cluster.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_uuid", sa.String(64), primary_key=True),
        sa.Column("direction", sa.String(16)),
        sa.Column("campaign_id", sa.String(128)),
        sa.Column("lead_id", sa.String(128)),
        sa.Column("bot", sa.String(128)),
        sa.Column("variant", sa.String(64)),
        sa.Column("caller", sa.String(40)),
        sa.Column("callee", sa.String(40)),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("answered_at", UTCDateTime()),
        sa.Column("bot_ended_at", UTCDateTime()),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("outcome", sa.String(200)),
        sa.Column("disposition", sa.String(128)),
        sa.Column("dial_result", sa.String(32)),
        sa.Column("hangup_cause", sa.String(64)),
        sa.Column("escalation_reason", sa.String(500)),
        sa.Column("escalation_rule", sa.String(128)),
        sa.Column("escalation_status", sa.String(32)),
        sa.Column("agent_id", sa.String(128)),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("turn_count", sa.Integer()),
        sa.Column("barge_ins", sa.Integer()),
        sa.Column("recording_url", sa.String(1000)),
        sa.Column("updated_at", UTCDateTime()),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_campaign_started", "calls", ["campaign_id", "started_at"])
    op.create_index("ix_calls_agent", "calls", ["agent_id"])

    op.create_table(
        "call_turns",
        sa.Column("call_uuid", sa.String(64), primary_key=True),
        sa.Column("turn_index", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime()),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("caller_text", sa.Text()),
        sa.Column("dtmf", sa.String(64)),
        sa.Column("intent", sa.String(128)),
        sa.Column("intent_confidence", sa.Float()),
        sa.Column("out_of_scope", sa.Boolean()),
        sa.Column("emotion", sa.String(64)),
        sa.Column("emotion_score", sa.Float()),
        sa.Column("bot_reply", sa.Text()),
        sa.Column("bot_state", sa.String(128)),
        sa.Column("actions", sa.JSON()),
        sa.Column("endpoint_ms", sa.Float()),
        sa.Column("prep_ms", sa.Float()),
        sa.Column("asr_ms", sa.Float()),
        sa.Column("asr_engine_ms", sa.Float()),
        sa.Column("nlu_ms", sa.Float()),
        sa.Column("bot_ms", sa.Float()),
        sa.Column("first_audio_ms", sa.Float()),
    )

    op.create_table(
        "dial_attempts",
        sa.Column("campaign_id", sa.String(128), primary_key=True),
        sa.Column("attempt_id", sa.String(160), primary_key=True),
        sa.Column("lead_id", sa.String(128)),
        sa.Column("attempt", sa.Integer()),
        sa.Column("call_uuid", sa.String(64)),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("result", sa.String(32)),
        sa.Column("cause", sa.String(64)),
        sa.Column("answered", sa.Boolean()),
        sa.Column("abandoned", sa.Boolean()),
        sa.Column("ring_s", sa.Float()),
        sa.Column("gateway", sa.String(128)),
        sa.Column("handle_s", sa.Float()),
        sa.Column("hangup_cause", sa.String(64)),
        sa.Column("escalated", sa.Boolean()),
        sa.Column("lead_timezone", sa.String(64)),
        sa.Column("local_time", sa.String(40)),
        sa.Column("window_start", sa.String(5)),
        sa.Column("window_end", sa.String(5)),
        sa.Column("inside_window", sa.Boolean()),
    )
    op.create_index("ix_dial_attempts_campaign_ended", "dial_attempts", ["campaign_id", "ended_at"])
    op.create_index("ix_dial_attempts_call", "dial_attempts", ["call_uuid"])

    op.create_table(
        "dnc_changes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("reason", sa.String(500)),
        sa.Column("source", sa.String(32)),
        sa.Column("call_uuid", sa.String(64)),
    )
    op.create_index("ix_dnc_changes_phone", "dnc_changes", ["phone"])
    op.create_index("ix_dnc_changes_at", "dnc_changes", ["at"])

    op.create_table(
        "window_decisions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("lead_id", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("lead_timezone", sa.String(64)),
        sa.Column("local_time", sa.String(40)),
        sa.Column("window_start", sa.String(5)),
        sa.Column("window_end", sa.String(5)),
        sa.Column("next_open_at", UTCDateTime()),
    )
    op.create_index("ix_window_decisions_campaign_at", "window_decisions",
                    ["campaign_id", "at"])


def downgrade() -> None:
    op.drop_table("window_decisions")
    op.drop_table("dnc_changes")
    op.drop_table("dial_attempts")
    op.drop_table("call_turns")
    op.drop_table("calls")
