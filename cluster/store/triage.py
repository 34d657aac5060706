"""How urgent a ticket is, and which queue it joins — one rule for every source (a bot's
action, an agent, the intake API), so tickets compare like with like.

Priority is 1 (most urgent) to 4, from three signals added up:

* the customer's tier: a VIP tier (``customers.vip_tiers``, by default vip, platinum) or
  a VIP flag +2, ``gold`` +1;
* emotion: a caller who was angry (the call's peak anger ≥ 0.5, or an agent's / intake's
  ``emotion`` of angry, frustrated, upset) +1;
* what was asked: ``urgent`` +2, ``high`` +1, ``normal`` 0, ``low`` −1;

``priority = clamp(3 − points, 1, 4)``: a plain ticket is 3, a low one 4, an urgent one or
a VIP's 1, an angry caller's 2.

Queue: the one asked for; a VIP's ticket that asks for none (or ``default``) joins
``vip`` when that queue exists (its deadlines are shorter, ``tickets.queues``).
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["ANGRY", "PRIORITY_POINTS", "choose_queue", "ticket_id", "ticket_priority"]

ANGRY = frozenset({"angry", "anger", "frustrated", "annoyed", "upset"})
PRIORITY_POINTS = {"urgent": 2, "high": 1, "normal": 0, "medium": 0, "low": -1}
GOLD_TIERS = frozenset({"gold"})
DEFAULT_VIP_TIERS = ("vip", "platinum")


def is_vip(tier: str | None, vip: bool = False,
           vip_tiers: tuple[str, ...] | list[str] = DEFAULT_VIP_TIERS) -> bool:
    return bool(vip) or (tier or "").lower() in vip_tiers


def ticket_priority(*, tier: str | None = None, vip: bool = False, emotion: str | None = None,
                    anger: float | None = None, requested: str | None = None,
                    vip_tiers: tuple[str, ...] | list[str] = DEFAULT_VIP_TIERS) -> int:
    """1 (most urgent) .. 4; see the module docstring."""
    points = 0
    if is_vip(tier, vip, vip_tiers):
        points += 2
    elif (tier or "").lower() in GOLD_TIERS:
        points += 1
    if (emotion or "").lower() in ANGRY or (anger is not None and anger >= 0.5):
        points += 1
    points += PRIORITY_POINTS.get((requested or "normal").lower(), 0)
    return max(1, min(4, 3 - points))


def choose_queue(requested: str | None, vip: bool, queues: tuple[str, ...] | list[str] = ()
                 ) -> str:
    """The queue a ticket joins (see the module docstring)."""
    wanted = (requested or "").strip() or "default"
    if wanted == "default" and vip and (not queues or "vip" in queues):
        return "vip"
    return wanted[:64]


def ticket_id(seed: str | None = None) -> str:
    """``tk-`` + 16 hex: derived from `seed` (an idempotency key: the same seed, the same
    ticket), else random."""
    if seed:
        return "tk-" + hashlib.sha256(seed.encode()).hexdigest()[:16]
    return "tk-" + uuid.uuid4().hex[:16]
