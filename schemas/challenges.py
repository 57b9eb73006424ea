"""Payload of `challenge.redeemed.v1` on the `apps` topic (key: the challenge): an ALTCHA
proof-of-work challenge (POST /api/validate) that was solved and accepted, remembered until it
expires so that the same solution is accepted once only, in every process."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChallengeRedeemed:
    challenge: str
    """The challenge's hash (hex), which names it: its salt and secret number hash to it, and
    Hutch's signature covers it."""
    expires_at: int
    """When the challenge stops being solvable, in microseconds since the epoch; its row may
    be forgotten after that."""
