"""Hutch's bucketing against known vectors from Unleash's client specification.

Every expected value below is transcribed from github.com/Unleash/client-specification
(commit 931b695), `specifications/<file>.json`, named beside each table; none was produced by
Hutch's code. An Unleash feature whose strategies all use the feature's name as groupId maps
onto a Hutch flag (Hutch always groups by the flag name); where the spec uses another groupId
(03, 04, 16) the hash and variant draw are checked directly with that groupId.
"""

from __future__ import annotations

import pytest

from query.flags.resolution import normalized_hash, resolve, select_variant
from schemas.flags.definitions import FlagDefinition, FlagError, Variant, parse_flag


def flag(name: str, **fields: object) -> FlagDefinition:
    return parse_flag({"name": name, "enabled": True, **fields})


def constrained(name: str, *constraint_sets: list[dict[str, object]]) -> FlagDefinition:
    """Unleash `default` strategies with constraints (ORed): one rule each, nobody else."""
    rules = [{"constraints": cs} for cs in constraint_sets]
    return flag(name, rollout=0, rules=rules)


# 03-gradual-rollout-user-id-strategy.json and 04-gradual-rollout-session-id-strategy.json:
# percentage 50, groupId "AB12A"; id 122 is in, id 155 is out.
@pytest.mark.parametrize(("key", "inside"), [("122", True), ("155", False)])
def test_gradual_rollout_group_vectors(key: str, inside: bool) -> None:
    assert (normalized_hash("AB12A", key) <= 50) is inside


# 10-flexible-rollout-strategy.json: groupId equals the feature name.
@pytest.mark.parametrize(
    ("name", "rollout", "stickiness", "context", "expected"),
    [
        ("Feature.flexibleRollout.100", 100, "default", {}, True),
        ("Feature.flexibleRollout.10", 10, "default", {"userId": "174"}, True),
        ("Feature.flexibleRollout.10", 10, "default", {"userId": "499"}, False),
        ("Feature.flexibleRollout.10", 10, "default", {"sessionId": "174"}, True),
        ("Feature.flexibleRollout.10", 10, "default", {"sessionId": "499"}, False),
        ("Feature.flexibleRollout.userId.55", 55, "userId", {"userId": "25"}, True),
        ("Feature.flexibleRollout.userId.55", 55, "userId", {"sessionId": "25"}, False),
        ("Feature.flexibleRollout.userId.55", 55, "userId", {}, False),
        ("Feature.flexibleRollout.sessionId.42", 42, "sessionId", {"sessionId": "147"}, True),
        ("Feature.flexibleRollout.0", 0, "default", {"sessionId": "147", "userId": "12"}, False),
    ],
)
def test_flexible_rollout_vectors(
    name: str, rollout: int, stickiness: str, context: dict[str, object], expected: bool
) -> None:
    defn = flag(name, rollout=rollout, stickiness=stickiness)
    assert resolve(defn, context).enabled is expected


# 12-custom-stickiness.json: stickiness on a custom context field, in `properties`.
@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, False),
        ({"properties": {"customField": "402"}}, False),
        ({"properties": {"customField": "388"}}, True),
        ({"properties": {"customField": "39"}}, True),
    ],
)
def test_custom_stickiness_rollout_vectors(context: dict[str, object], expected: bool) -> None:
    defn = flag(
        "Feature.flexible.rollout.custom.stickiness_50", rollout=50, stickiness="customField"
    )
    assert resolve(defn, context).enabled is expected


@pytest.mark.parametrize(
    ("field", "variant"), [("616", "blue"), ("503", "red"), ("438", "green"), ("44", "yellow")]
)
def test_custom_stickiness_variant_vectors(field: str, variant: str) -> None:
    colours = ["blue", "red", "green", "yellow"]
    defn = flag(
        "Feature.flexible.rollout.custom.stickiness_100",
        stickiness="customField",
        variants=[{"name": c, "weight": 25} for c in colours],
    )
    result = resolve(defn, {"properties": {"customField": field}})
    assert (result.enabled, result.variant) == (True, variant)


# 08-variants.json: feature variants, hashed with the feature name and seed 86028157.
VARIANTS_08 = {
    "Feature.Variants.B": [1, 1],
    "Feature.Variants.C": [33, 33, 33],
    "Feature.Variants.D": [1, 49, 50],
    "Feature.Variants.override.D": [33, 33, 34],
}


@pytest.mark.parametrize(
    ("name", "user", "variant"),
    [
        ("Feature.Variants.B", "2", "variant2"),
        ("Feature.Variants.B", "0", "variant1"),
        ("Feature.Variants.C", "232", "variant1"),
        ("Feature.Variants.C", "607", "variant2"),
        ("Feature.Variants.C", "656", "variant3"),
        ("Feature.Variants.D", "712", "variant1"),
        ("Feature.Variants.D", "525", "variant2"),
        ("Feature.Variants.D", "537", "variant3"),
        ("Feature.Variants.override.D", "388", "variant2"),
    ],
)
def test_variant_vectors(name: str, user: str, variant: str) -> None:
    weights = VARIANTS_08[name]
    variants = [{"name": f"variant{i + 1}", "weight": w} for i, w in enumerate(weights)]
    result = resolve(flag(name, variants=variants), {"userId": user})
    assert (result.enabled, result.variant) == (True, variant)


@pytest.mark.parametrize("user", ["132", "61", "388"])
def test_variant_override_vectors_as_a_rule(user: str) -> None:
    # Unleash's `overrides: [{contextName: userId, values: [132, 61]}]` on variant1 is a rule.
    variants = [{"name": f"variant{i + 1}", "weight": w} for i, w in enumerate([33, 33, 34])]
    rule = {
        "constraints": [{"contextName": "userId", "operator": "IN", "values": ["132", "61"]}],
        "variant": "variant1",
    }
    defn = flag("Feature.Variants.override.D", variants=variants, rules=[rule])
    expected = "variant2" if user == "388" else "variant1"
    assert resolve(defn, {"userId": user}).variant == expected


def test_variant_edge_vectors() -> None:
    one = [{"name": "variant1", "weight": 1, "value": "val1"}]
    # A: a single variant is served.
    assert resolve(flag("Feature.Variants.A", variants=one), {"userId": "0"}).variant == "variant1"
    # E: a disabled feature serves no variant.
    disabled = parse_flag({"name": "Feature.Variants.E", "enabled": False, "variants": one})
    assert resolve(disabled, {"userId": "0"}).variant is None
    # F: enabled with no variants: enabled, no variant.
    result = resolve(flag("Feature.Variants.F"), {"userId": "0"})
    assert (result.enabled, result.variant) == (True, None)
    # G: a 0% rollout with variants is off and serves no variant.
    result = resolve(flag("Feature.Variants.G", rollout=0, variants=one), {"userId": "0"})
    assert (result.enabled, result.variant) == (False, None)


# 16-strategy-variants.json: strategy variants draw within the strategy's groupId "a".
@pytest.mark.parametrize(
    ("key", "variant"),
    [("5", "variantNameA"), ("0", "variantNameB"), ("1", "variantNameA"), ("2", "variantNameB")],
)
def test_strategy_variant_vectors(key: str, variant: str) -> None:
    # Keys 5 and 0 are userIds (default stickiness); 1 and 2 are clientId values.
    variants = (Variant("variantNameA", 1), Variant("variantNameB", 1))
    assert select_variant("a", variants, key).name == variant


# 09-strategy-constraints.json
@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"environment": "prod", "userId": "2"}, True),
        ({"environment": "prod"}, False),
        ({"environment": "prod", "userId": "2", "appName": "web"}, False),
    ],
)
def test_constraint_multi_vectors(context: dict[str, object], expected: bool) -> None:
    defn = constrained(
        "Feature.constraints.multi",
        [
            {"contextName": "environment", "operator": "IN", "values": ["prod"]},
            {"contextName": "userId", "operator": "IN", "values": ["1", "2", "3"]},
            {"contextName": "appName", "operator": "NOT_IN", "values": ["web", "sun-app"]},
        ],
    )
    assert resolve(defn, context).enabled is expected


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"environment": "prod", "properties": {"country": "norway"}}, True),
        ({"environment": "prod", "properties": {"country": "denmark"}}, False),
    ],
)
def test_constraint_custom_field_vectors(context: dict[str, object], expected: bool) -> None:
    defn = constrained(
        "Feature.constraints.custom",
        [
            {"contextName": "environment", "operator": "IN", "values": ["prod"]},
            {"contextName": "country", "operator": "IN", "values": ["norway", "sweeden"]},
        ],
    )
    assert resolve(defn, context).enabled is expected


def test_constraint_dual_and_multiple_strategy_vectors() -> None:
    dual = constrained(
        "Feature.constraints.dual",
        [
            {"contextName": "environment", "operator": "IN", "values": ["prod", "dev"]},
            {"contextName": "environment", "operator": "NOT_IN", "values": ["dev", "qa"]},
        ],
    )
    assert resolve(dual, {"environment": "prod"}).enabled is True
    assert resolve(dual, {"environment": "dev"}).enabled is False
    multiple = constrained(
        "Feature.constraints.multiple.strategies",
        [{"contextName": "userId", "operator": "IN", "values": ["123"]}],
        [{"contextName": "userId", "operator": "IN", "values": ["456"]}],
    )
    assert resolve(multiple, {"userId": "456"}).enabled is True


# 13-constraint-operators.json (the DATE_* operators are not supported; see test_flag_rules).
OPERATOR_VECTORS = [
    ("STR_STARTS_WITH", ["some-string"], {}, "some-string-is-cool", True),
    ("STR_STARTS_WITH", ["some-string"], {}, "some2-is-cool-string", False),
    ("STR_STARTS_WITH", ["e1", "e2"], {}, "e2 cool", True),
    ("STR_STARTS_WITH", ["e1", "e2"], {}, "cool e1", False),
    ("STR_STARTS_WITH", ["TEST"], {"caseInsensitive": True}, "test@example.com", True),
    ("STR_STARTS_WITH", ["TEST"], {"caseInsensitive": True}, "TEsT@example.com", True),
    ("STR_ENDS_WITH", ["some-email.com"], {}, "test@some-email.com", True),
    ("STR_ENDS_WITH", ["some-email.com"], {}, "test@some-EMAIL.com", False),
    ("STR_ENDS_WITH", ["some-email.com"], {"caseInsensitive": True}, "test@SOME-EMAIL.com", True),
    ("STR_ENDS_WITH", ["some-email.com"], {}, "test@another-email.com", False),
    ("STR_CONTAINS", ["email"], {}, "test@some-email.com", True),
    ("STR_CONTAINS", ["email"], {}, "test@another.com", False),
    ("STR_CONTAINS", ["email"], {"inverted": True}, "test@another.com", True),
    ("NUM_EQ", "12", {}, "12", True),
    ("NUM_EQ", "12", {}, "12.0", True),
    ("NUM_EQ", "12", {"inverted": True}, "12", False),
    ("NUM_EQ", "12.0", {}, "12.0", True),
    ("NUM_EQ", "12.0", {}, "12", True),
    ("NUM_EQ", "12", {"inverted": True}, "13", True),
    ("NUM_GT", "12", {}, "13", True),
    ("NUM_GT", "12", {}, "12", False),
    ("NUM_GTE", "12", {}, "12", True),
    ("NUM_GTE", "12", {}, "13", True),
    ("NUM_GTE", "12", {}, "11", False),
    ("NUM_LTE", "12", {}, "13", False),
    ("NUM_LTE", "12", {}, "12", True),
    ("NUM_LTE", "12", {}, "0", True),
    ("NUM_LT", "12", {}, "0", True),
    ("NUM_LT", "12", {}, "12", False),
    ("IN", ["s1", "s2"], {"inverted": True}, "s1", False),
    ("NOT_IN", ["s1", "s2"], {"inverted": True}, "s1", True),
    # 14-constraint-semver-operators.json
    ("SEMVER_EQ", "1.2.2", {}, "1.2.2", True),
    ("SEMVER_EQ", "1.2.2", {}, "1.2.0", False),
    ("SEMVER_GT", "1.2.2", {}, "1.2.3", True),
    ("SEMVER_GT", "1.2.2", {}, "1.2.0", False),
    ("SEMVER_GTE", "1.2.2", {}, "1.2.2", True),
    ("SEMVER_GTE", "1.2.2", {}, "1.2.3", True),
    ("SEMVER_GTE", "1.2.2", {}, "1.2.1", False),
    ("SEMVER_LT", "1.2.2", {}, "1.2.1", True),
    ("SEMVER_LT", "1.2.2", {}, "1.2.3", False),
    ("SEMVER_LTE", "1.2.2", {}, "1.2.2", True),
    ("SEMVER_LTE", "1.2.2", {}, "1.2.1", True),
    ("SEMVER_LTE", "1.2.2", {}, "1.2.3", False),
    ("SEMVER_GT", "2.0.0-alpha.1", {}, "2.0.0-beta.1", True),
    ("SEMVER_GT", "2.0.0-alpha.1", {}, "2.0.0", True),
    ("SEMVER_LT", "2.0.0-alpha.1", {}, "2.0.0-beta.1", False),
    ("SEMVER_LT", "2.0.0-alpha.1", {}, "1.9.1-beta.1", True),
    ("SEMVER_LT", "2.0.0-alpha.3", {}, "2.0.0-alpha.1", True),
    ("SEMVER_LT", "2.0.0-alpha.3", {}, "2.0.0-alpha.4", False),
    ("SEMVER_GT", "2.0.0-alpha", {}, "2.0.0-alpha.1", True),
    ("SEMVER_GT", "2.0.0-rc", {}, "2.0.0-alpha.1", False),
    ("SEMVER_GT", "2.0.0-rc", {}, "2.0.0-beta.1", False),
    ("SEMVER_GT", "2.0.0-rc", {}, "2.0.0", True),
]


@pytest.mark.parametrize(("operator", "operand", "extra", "actual", "expected"), OPERATOR_VECTORS)
def test_operator_vectors(
    operator: str, operand: object, extra: dict[str, object], actual: str, expected: bool
) -> None:
    key = "values" if isinstance(operand, list) else "value"
    constraint = {"contextName": "someField", "operator": operator, key: operand, **extra}
    defn = constrained("F.operators", [constraint])
    assert resolve(defn, {"properties": {"someField": actual}}).enabled is expected


def test_missing_field_vectors() -> None:
    # 13-constraint-operators.json, F8.missing-field.IN / F8.missing-field.NOT_IN
    is_in = constrained(
        "F8.missing-field.IN",
        [{"contextName": "customFieldMissing", "operator": "IN", "values": ["s1"]}],
    )
    assert resolve(is_in, {}).enabled is False
    assert resolve(is_in, {"properties": {"customFieldMissing": "s1"}}).enabled is True
    not_in = constrained(
        "F8.missing-field.NOT_IN",
        [{"contextName": "customFieldMissing", "operator": "NOT_IN", "values": ["s1"]}],
    )
    assert resolve(not_in, {}).enabled is True
    assert resolve(not_in, {"properties": {"customFieldMissing": None}}).enabled is True


def test_semver_context_values_that_do_not_parse_never_match() -> None:
    # 14-constraint-semver-operators.json, F8.invalidSemverWithLeadingV: "v2.0.0" is no semver.
    # Hutch refuses it as a definition, and a context value like it matches nothing.
    with pytest.raises(FlagError) as caught:
        constrained(
            "F8.bad", [{"contextName": "version", "operator": "SEMVER_EQ", "value": "v2.0.0"}]
        )
    assert caught.value.field == "rules[0].constraints[0].value"
    defn = constrained(
        "F8.ok", [{"contextName": "version", "operator": "SEMVER_EQ", "value": "2.0.0"}]
    )
    for bad in ("v2.0.0", "not a semver"):
        assert resolve(defn, {"properties": {"version": bad}}).enabled is False
