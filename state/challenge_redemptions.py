"""The challenge-redemptions projection: `challenge.redeemed.v1` (the `apps` topic) -> the
`redeemed_challenges` table, and its read. A projection of its own, so the one command that
needs it (ingest/bot_challenge_commands.py) catches up this table alone.

A row is dropped once its challenge has expired (a margin later, for clocks that disagree a
little): an expired solution is refused for its expiry, so remembering it adds nothing, and
the table stays as small as the number of challenges live at once. Dropping is done when a
later redemption is applied, with that event's time: replay gives the same rows.
"""

from __future__ import annotations

import logging

import orjson

from schemas.challenges import ChallengeRedeemed
from schemas.events import Topic
from storage.log import Record
from storage.relational import Relational, Transaction

log = logging.getLogger(__name__)

FORGET_AFTER_US = 60_000_000
"""How long past its expiry a redeemed challenge is still remembered (1 min), in µs."""


class ChallengeRedemptionsProjection:
    name = "challenge_redemptions"
    topics: tuple[Topic, ...] = ("apps",)
    tables: tuple[str, ...] = ("redeemed_challenges",)

    def apply(self, tx: Transaction, record: Record) -> None:
        envelope = record.envelope
        if envelope.type != "challenge.redeemed.v1":
            return  # the identity projection's
        try:
            redeemed = ChallengeRedeemed(**orjson.loads(envelope.payload))
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.error(
                "skipping malformed challenge record",
                extra={"offset": record.offset, "error": str(exc)},
            )
            return
        at = envelope.received_at
        tx.execute(
            "DELETE FROM redeemed_challenges WHERE expires_at < :before",
            {"before": at - FORGET_AFTER_US},
        )
        tx.execute(
            "INSERT INTO redeemed_challenges (challenge, expires_at, redeemed_at) "
            "VALUES (:c, :e, :at) ON CONFLICT (challenge) DO NOTHING",
            {"c": redeemed.challenge, "e": redeemed.expires_at, "at": at},
        )


def redeemed(db: Relational | Transaction, challenge: str) -> bool:
    """Whether the challenge was redeemed (and not yet forgotten)."""
    row = db.fetchone("SELECT 1 FROM redeemed_challenges WHERE challenge = :c", {"c": challenge})
    return row is not None
