-- ALTCHA challenges redeemed by POST /api/validate (schemas/challenges.py), kept until they
-- expire so a solution is accepted once: the challenge-redemptions projection, `apps` topic.
-- Times in microseconds since the epoch, UTC.

CREATE TABLE redeemed_challenges (
    challenge TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    redeemed_at BIGINT NOT NULL
);
CREATE INDEX redeemed_challenges_by_expiry ON redeemed_challenges (expires_at);
