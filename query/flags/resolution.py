"""Evaluating a flag definition against a context: pure, deterministic, reproducible by SDKs.

Bucketing is Unleash's, from its client specification, so that an Unleash-compatible SDK gets
the same answer for the same user:

- `normalized_hash(group, key, n, seed)` = MurmurHash3 x86 32-bit (unsigned) of the UTF-8 bytes
  of `"{group}:{key}"` with `seed`, modulo n, plus 1: a bucket in 1..n. The group is the flag's
  name (Unleash's default groupId).
- Rollout: seed 0, n = 100; the context is in when `rollout > 0 and bucket <= rollout`.
- Variants: seed 86028157, n = the sum of the weights; walking the variants in order with a
  running total of their weights, the first whose total reaches the bucket is served
  (zero-weight variants are never drawn, but a rule may name one).

The stickiness key is the context attribute named by `stickiness` (also looked up in a nested
`properties` object, as Unleash contexts carry custom fields); `"default"` means the first of
userId, targetingKey (OpenFeature's), sessionId that is present. Values are compared as text,
written as JavaScript's String() would (true -> "true", 12.0 -> "12").

Resolution, in order:
1. `enabled` false: off, reason DISABLED.
2. The first rule whose constraints all match decides (reason TARGETING_MATCH): the context
   gets the flag if it falls within the rule's rollout; the variant is the rule's, or drawn.
   A rule is final: falling outside its rollout does not go on to later rules.
3. No rule matched: the flag's own rollout decides. Reason SPLIT when a draw decided (a partial
   rollout or two or more weighted variants), else DEFAULT when the flag has rules, else STATIC.
A draw needs a stickiness key. Where Unleash would then draw at random, Hutch answers ERROR
with TARGETING_KEY_MISSING and leaves the flag off: a random answer is neither sticky nor
reproducible, and OpenFeature has this error for exactly this case. A rollout of 0 or 100 and
a single weighted variant need no key.

Constraint semantics are Unleash's: a missing attribute fails every operator but NOT_IN;
NUM_* compare numbers, SEMVER_* strict semantic versions (no leading "v"), and a value that does
not parse fails; `inverted` negates the result, missing attribute included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import mmh3
import semver

from schemas.flags.definitions import NUMBER, Constraint, FlagDefinition, Variant, number_text

STRATEGY_SEED = 0
VARIANT_SEED = 86028157
DEFAULT_STICKINESS_KEYS = ("userId", "targetingKey", "sessionId")

Reason = Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT", "ERROR"]
ErrorCode = Literal["TARGETING_KEY_MISSING"]


@dataclass(frozen=True, slots=True)
class Resolution:
    flag: str
    enabled: bool
    variant: str | None
    """The served variant's name; None when the flag is off or has no variants."""
    reason: Reason
    error_code: ErrorCode | None = None
    rule: int | None = None
    """Index of the rule that decided, if one did."""


def normalized_hash(flag_name: str, key: str, modulus: int = 100, seed: int = 0) -> int:
    """Unleash's normalizedValue: a bucket from 1 to `modulus` for `key` within `flag_name`."""
    if modulus < 1:
        raise ValueError("modulus must be at least 1")
    digest: int = mmh3.hash(f"{flag_name}:{key}", seed, signed=False)
    return digest % modulus + 1


def context_value(context: Mapping[str, object], name: str) -> str | None:
    """The attribute as text, top level first, then in `properties`; None when absent."""
    value = context.get(name)
    if value is None:
        properties = context.get("properties")
        if isinstance(properties, Mapping):
            value = properties.get(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return number_text(value)
    return None


def stickiness_key(defn: FlagDefinition, context: Mapping[str, object]) -> str | None:
    if defn.stickiness != "default":
        return context_value(context, defn.stickiness) or None
    for name in DEFAULT_STICKINESS_KEYS:
        value = context_value(context, name)
        if value:
            return value
    return None


class _NeedsKey(Exception):
    """A draw was needed and the context has no stickiness key."""


def resolve(defn: FlagDefinition, context: Mapping[str, object]) -> Resolution:
    if not defn.enabled:
        return Resolution(defn.name, False, None, "DISABLED")
    key = stickiness_key(defn, context)
    try:
        for index, rule in enumerate(defn.rules):
            if all(matches(c, context) for c in rule.constraints):
                on, _ = _in_rollout(defn.name, rule.rollout, key)
                variant = _serve(defn, rule.variant, key) if on else None
                return Resolution(defn.name, on, variant, "TARGETING_MATCH", rule=index)
        on, split = _in_rollout(defn.name, defn.rollout, key)
        variant = _serve(defn, None, key) if on else None
    except _NeedsKey:
        return Resolution(defn.name, False, None, "ERROR", "TARGETING_KEY_MISSING")
    split = split or (on and sum(1 for v in defn.variants if v.weight > 0) > 1)
    reason: Reason = "SPLIT" if split else "DEFAULT" if defn.rules else "STATIC"
    return Resolution(defn.name, on, variant, reason)


def _in_rollout(flag: str, rollout: int, key: str | None) -> tuple[bool, bool]:
    """(in the rollout, whether a draw decided it)."""
    if rollout >= 100:
        return True, False
    if rollout <= 0:
        return False, False
    if key is None:
        raise _NeedsKey
    return normalized_hash(flag, key, 100, STRATEGY_SEED) <= rollout, True


def _serve(defn: FlagDefinition, forced: str | None, key: str | None) -> str | None:
    if forced is not None:
        return forced
    weighted = [v for v in defn.variants if v.weight > 0]
    if not weighted:
        return None
    if len(weighted) == 1:
        return weighted[0].name
    if key is None:
        raise _NeedsKey
    return select_variant(defn.name, defn.variants, key).name


def select_variant(flag_name: str, variants: tuple[Variant, ...], key: str) -> Variant:
    """Unleash's weighted draw; `variants` must have a positive total weight."""
    total = sum(v.weight for v in variants)
    target = normalized_hash(flag_name, key, total, VARIANT_SEED)
    running = 0
    for variant in variants:
        running += variant.weight
        if variant.weight > 0 and running >= target:
            return variant
    raise ValueError("variants have no positive weight")


def matches(constraint: Constraint, context: Mapping[str, object]) -> bool:
    value = context_value(context, constraint.context_name)
    return _holds(constraint, value) != constraint.inverted


def _holds(c: Constraint, value: str | None) -> bool:
    op = c.operator
    if op == "NOT_IN":
        return value is None or value not in c.values
    if value is None:
        return False
    if op == "IN":
        return value in c.values
    if op.startswith("STR_"):
        values = c.values
        if c.case_insensitive:
            value = value.casefold()
            values = tuple(v.casefold() for v in values)
        if op == "STR_CONTAINS":
            return any(v in value for v in values)
        if op == "STR_STARTS_WITH":
            return any(value.startswith(v) for v in values)
        return any(value.endswith(v) for v in values)
    if op.startswith("NUM_"):
        if not NUMBER.match(value):
            return False
        return _compare(op[4:], float(value), float(c.values[0]))
    if not semver.Version.is_valid(value):
        return False
    order = semver.Version.parse(value).compare(_version(c.values[0]))
    return _compare(op[7:], order, 0)


@lru_cache(maxsize=1024)
def _version(text: str) -> semver.Version:
    return semver.Version.parse(text)


def _compare(kind: str, left: float, right: float) -> bool:
    if kind == "EQ":
        return left == right
    if kind == "GT":
        return left > right
    if kind == "GTE":
        return left >= right
    if kind == "LT":
        return left < right
    return left <= right
