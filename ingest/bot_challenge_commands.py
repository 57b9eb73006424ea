"""ALTCHA proof-of-work challenges (POST /api/validate): issue one, accept its solution once.

ALTCHA's library (`altcha`, its v1 protocol, the one the ALTCHA widget speaks) makes and
checks them: a challenge is the SHA-256 of a random salt and a secret number from 0 to
HUTCH_CHALLENGE_MAX_NUMBER, signed with an HMAC under a key derived from the server key
(base/keys.py, purpose `bot-challenge`), so any process of the deployment checks what any
other issued, and nothing is stored per challenge until it is solved. Its expiry is the
salt's `expires` parameter (Unix seconds), which the hash, and so the signature, covers.

A solution is refused (400, the code saying why) when it is malformed, not signed by this
server (`bad_signature`), expired (`expired`), or wrong (`wrong_solution`: the number does not
hash to the challenge); once accepted, its challenge is recorded (`challenge.redeemed.v1`,
state/challenge_redemptions.py) under the challenge's command lock, so the same solution sent
again, to this process or another, is refused (`already_redeemed`) until it has expired and
is refused for that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from altcha import v1 as altcha

from base.client_errors import BadRequest
from schemas.challenges import ChallengeRedeemed
from schemas.envelope import new_envelope
from schemas.identity import encode
from state import challenge_redemptions as q
from state.command_context import CHALLENGES, CommandContext

ALGORITHM: Final[altcha.AlgoType] = "SHA-256"
MAX_PAYLOAD_CHARS = 4096
MAX_SALT_CHARS = 512
MAX_NUMBER = 10**15
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ChallengeRefused(BadRequest):
    code = "challenge_refused"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, field="altcha", code=code)


@dataclass(frozen=True, slots=True)
class Solution:
    """What a client sends back: the challenge it was given and the number it found."""

    algorithm: str
    challenge: str
    number: int
    salt: str
    signature: str

    def payload(self) -> altcha.Payload:
        """As the library takes it (`verify` has checked the algorithm first)."""
        return altcha.Payload(ALGORITHM, self.challenge, self.number, self.salt, self.signature)


def issue(key: bytes, max_number: int, ttl_s: int, now_s: float | None = None) -> dict[str, Any]:
    """A new challenge, as the ALTCHA widget reads it from its `challengeurl`."""
    now = time.time() if now_s is None else now_s
    expires = datetime.datetime.fromtimestamp(now + ttl_s, datetime.UTC)
    options = altcha.ChallengeOptions(
        algorithm=ALGORITHM, max_number=max_number, hmac_key=key, expires=expires
    )
    made = altcha.create_challenge(options)
    return {
        "algorithm": made.algorithm,
        "challenge": made.challenge,
        "maxnumber": made.max_number,
        "salt": made.salt,
        "signature": made.signature,
    }


def _malformed(why: str) -> ChallengeRefused:
    return ChallengeRefused(
        f"altcha must be the ALTCHA widget's payload (base64 of a JSON object with algorithm, "
        f"challenge, number, salt and signature) or that JSON object itself: {why}",
        "malformed_solution",
    )


def parse(value: object) -> Solution:
    """The solution in `value`: the widget's base64 text, or the JSON object it encodes."""
    if isinstance(value, str):
        if len(value) > MAX_PAYLOAD_CHARS:
            raise _malformed(f"longer than {MAX_PAYLOAD_CHARS} characters")
        try:
            value = orjson.loads(base64.b64decode(value.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise _malformed("not base64 of JSON") from None
    if not isinstance(value, dict):
        raise _malformed("not an object")
    texts = {}
    for name in ("algorithm", "challenge", "salt", "signature"):
        text = value.get(name)
        if not isinstance(text, str) or not 0 < len(text) <= MAX_SALT_CHARS:
            raise _malformed(f"{name} must be a string of 1 to {MAX_SALT_CHARS} characters")
        texts[name] = text
    number = value.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_NUMBER:
        raise _malformed(f"number must be an integer from 0 to {MAX_NUMBER}")
    return Solution(number=number, **texts)


def verify(key: bytes, solution: Solution, now_s: float | None = None) -> int:
    """Check a solution; answers its challenge's expiry (µs since the epoch). Raises
    ChallengeRefused. Does not look at whether it was redeemed: `redeem` does."""
    if solution.algorithm != ALGORITHM:
        raise ChallengeRefused(
            f"algorithm must be {ALGORITHM}, as in the challenges this server issues",
            "bad_algorithm",
        )
    # Constant time, before anything else: the library compares its HMAC with ==.
    expected = altcha.hmac_hex(ALGORITHM, solution.challenge.encode(), key)
    if not _HEX64.fullmatch(solution.signature) or not hmac.compare_digest(
        expected, solution.signature
    ):
        raise ChallengeRefused(
            "the challenge's signature is not this server's: get a challenge from "
            "GET /api/validate",
            "bad_signature",
        )
    now = time.time() if now_s is None else now_s
    expires = _expires(solution)
    if expires is None or expires < now:
        raise ChallengeRefused(
            "the challenge has expired: get a new one from GET /api/validate", "expired"
        )
    ok, _ = altcha.verify_solution(solution.payload(), key, check_expires=True)
    if not ok:
        raise ChallengeRefused(
            "the number does not solve the challenge (or the challenge was altered)",
            "wrong_solution",
        )
    return expires * 1_000_000


def _expires(solution: Solution) -> int | None:
    """The salt's `expires` (Unix seconds); None when missing or not a number."""
    values = altcha.extract_params(solution.payload().to_dict()).get("expires") or []
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


async def redeem(ctx: CommandContext, key: bytes, solution: Solution) -> None:
    """Accept `solution` once: verify it, then record its challenge unless that was done
    before (ChallengeRefused `already_redeemed`)."""
    expires_at = verify(key, solution)
    async with ctx.command(f"challenge:{solution.challenge}", CHALLENGES):
        if await asyncio.to_thread(q.redeemed, ctx.db, solution.challenge):
            raise ChallengeRefused(
                "this challenge was already solved and used: get a new one from GET /api/validate",
                "already_redeemed",
            )
        event = ChallengeRedeemed(solution.challenge, expires_at)
        envelope = new_envelope("challenge.redeemed.v1", encode(event), key=solution.challenge)
        await ctx.append("apps", [envelope], CHALLENGES)
