"""The predictive dialer: campaigns, leads, pacing, compliance records (plain Python over
Redis), hosted by a detached Ray actor (`cluster.actors.dialer`). See docs/dialer.md."""

from cluster.dialer.campaign import (
    CampaignConfig,
    CampaignState,
    ComplianceConfig,
    InvalidTransition,
    PacingConfig,
    RetryPolicy,
    Schedule,
)
from cluster.dialer.compliance import AnswerAction, AttemptRecord, Outcome
from cluster.dialer.engine import AnswerHandler, CapacityProbe, Dialer
from cluster.dialer.leads import ConversionScorer, Lead, LeadFileError, LeadImport, parse_leads_csv
from cluster.dialer.pacing import PacingDecision, plan_dials
from cluster.dialer.store import CampaignExists, CampaignNotFound, DialerStore
from configs.dialer import DialerSettings

__all__ = [
    "AnswerAction",
    "AnswerHandler",
    "AttemptRecord",
    "CampaignConfig",
    "CampaignExists",
    "CampaignNotFound",
    "CampaignState",
    "CapacityProbe",
    "ComplianceConfig",
    "ConversionScorer",
    "Dialer",
    "DialerSettings",
    "DialerStore",
    "InvalidTransition",
    "Lead",
    "LeadFileError",
    "LeadImport",
    "Outcome",
    "PacingConfig",
    "PacingDecision",
    "RetryPolicy",
    "Schedule",
    "parse_leads_csv",
    "plan_dials",
]
