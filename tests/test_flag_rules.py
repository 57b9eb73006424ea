"""Flag definitions and reports: validation with field paths, evaluation semantics, OFREP."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from query.flags.ofrep import ofrep_bulk, ofrep_single, parse_error
from query.flags.resolution import resolve
from schemas.flags.definitions import FlagDefinition, FlagError, flag_to_json, parse_flag
from schemas.flags.evaluations import (
    MAX_EVALUATIONS,
    EvaluationReport,
    parse_evaluations,
    report_to_json,
)

FULL: dict[str, Any] = {
    "name": "new_dashboard",
    "description": "the redesigned dashboard",
    "enabled": True,
    "rollout": 25,
    "stickiness": "default",
    "variants": [
        {"name": "blue", "weight": 500, "value": "#0000ff"},
        {"name": "green", "weight": 500, "value": "#00ff00"},
        {"name": "staff", "weight": 0, "value": "#ff00ff"},
    ],
    "rules": [
        {
            "description": "staff always, in their own colour",
            "constraints": [
                {
                    "contextName": "email",
                    "operator": "STR_ENDS_WITH",
                    "values": ["@example.com"],
                    "inverted": False,
                    "caseInsensitive": True,
                }
            ],
            "rollout": 100,
            "variant": "staff",
        },
        {
            "description": "old apps never",
            "constraints": [
                {
                    "contextName": "appVersion",
                    "operator": "SEMVER_LT",
                    "value": "2.0.0",
                    "inverted": False,
                    "caseInsensitive": False,
                }
            ],
            "rollout": 0,
        },
    ],
}


def with_change(path: str, value: object) -> dict[str, Any]:
    """FULL with one field replaced (or removed, for value=...) at a dotted path."""
    body = copy.deepcopy(FULL)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return body


R0 = "rules.0.constraints.0"
R1 = "rules.1.constraints.0"


def flag(**fields: object) -> FlagDefinition:
    return parse_flag({"name": "f", "enabled": True, **fields})


# Definitions ---------------------------------------------------------------------------------


def test_canonical_json_round_trips() -> None:
    defn = parse_flag(FULL)
    assert flag_to_json(defn) == FULL
    assert parse_flag(flag_to_json(defn)) == defn


def test_defaults_fill_a_minimal_definition() -> None:
    assert flag_to_json(parse_flag({"name": "dark_mode", "enabled": False})) == {
        "name": "dark_mode",
        "description": "",
        "enabled": False,
        "rollout": 100,
        "stickiness": "default",
        "variants": [],
        "rules": [],
    }


def test_numeric_constraint_values_are_kept_as_text_like_unleash() -> None:
    gt = {"contextName": "n", "operator": "NUM_GT", "value": 12.0}
    defn = flag(rules=[{"constraints": [gt]}])
    rule = flag_to_json(defn)["rules"]
    assert isinstance(rule, list)
    assert rule[0]["constraints"][0]["value"] == "12"  # type: ignore[index,call-overload]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], ""),
        (with_change("name", ...), "name"),
        (with_change("name", "-leading-dash"), "name"),
        (with_change("name", "x" * 129), "name"),
        (with_change("enabled", ...), "enabled"),
        (with_change("enabled", "yes"), "enabled"),
        (with_change("rollout", 101), "rollout"),
        (with_change("rollout", 50.5), "rollout"),
        (with_change("rollout", True), "rollout"),
        (with_change("rolout", 10), "rolout"),
        (with_change("stickiness", "user id"), "stickiness"),
        (with_change("description", "x" * 1001), "description"),
        (with_change("variants", {"blue": 1}), "variants"),
        (with_change("variants.1.weight", -1), "variants[1].weight"),
        (with_change("variants.1.weight", 1.5), "variants[1].weight"),
        (with_change("variants.1.weight", ...), "variants[1].weight"),
        (with_change("variants.1.name", "blue"), "variants[1].name"),
        (with_change("variants.1.value", 3), "variants[1].value"),
        (with_change("variants.1.value", None), "variants[1].value"),
        (with_change("variants.1.value", [1, 2]), "variants[1].value"),
        (with_change("variants.0.colour", "red"), "variants[0].colour"),
        (with_change("rules.0.variant", "purple"), "rules[0].variant"),
        (with_change("rules.1.rollout", -5), "rules[1].rollout"),
        (with_change(f"{R0}.operator", "LIKE"), "rules[0].constraints[0].operator"),
        (with_change(f"{R0}.contextName", ""), "rules[0].constraints[0].contextName"),
        (with_change(f"{R0}.values", []), "rules[0].constraints[0].values"),
        (with_change(f"{R0}.values", ["ok", 7]), "rules[0].constraints[0].values[1]"),
        (with_change(f"{R0}.values", "@example.com"), "rules[0].constraints[0].values"),
        (with_change(f"{R0}.inverted", "no"), "rules[0].constraints[0].inverted"),
        (with_change(f"{R1}.value", "2.0"), "rules[1].constraints[0].value"),
        (with_change(f"{R1}.caseInsensitive", True), "rules[1].constraints[0].caseInsensitive"),
        (with_change(f"{R1}.values", ["2.0.0"]), "rules[1].constraints[0].values"),
    ],
)
def test_invalid_definitions_name_the_field(body: object, field: str) -> None:
    with pytest.raises(FlagError) as caught:
        parse_flag(body)
    assert caught.value.field == field


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(FlagError) as caught:
        flag(variants=[{"name": "a", "weight": 0}, {"name": "b", "weight": 0}])
    assert caught.value.field == "variants"


def test_number_constraint_needs_a_number() -> None:
    bad = {"contextName": "n", "operator": "NUM_EQ", "value": "twelve"}
    with pytest.raises(FlagError) as caught:
        flag(rules=[{"constraints": [bad]}])
    assert caught.value.field == "rules[0].constraints[0].value"
    assert "number" in caught.value.message


def test_date_operators_are_not_offered() -> None:
    # Unleash's DATE_AFTER/DATE_BEFORE read the clock; Hutch's evaluation is a pure function.
    date = {"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2022-01-29"}
    with pytest.raises(FlagError):
        flag(rules=[{"constraints": [date]}])


# Reports ------------------------------------------------------------------------------------


def test_reports_parse_and_serialise() -> None:
    body = {
        "evaluations": [
            {"flagName": "dark_mode", "enabled": True},
            {"flagName": "new_dashboard", "enabled": False, "context": {"userId": "abc"}},
            {"flagName": "theme", "enabled": True, "variant": "blue", "sdkExtra": 1},
        ]
    }
    reports = parse_evaluations(body)
    assert reports == [
        EvaluationReport("dark_mode", True),
        EvaluationReport("new_dashboard", False, None, {"userId": "abc"}),
        EvaluationReport("theme", True, "blue"),
    ]
    assert [report_to_json(r) for r in reports] == [
        {"flagName": "dark_mode", "enabled": True},
        {"flagName": "new_dashboard", "enabled": False, "context": {"userId": "abc"}},
        {"flagName": "theme", "enabled": True, "variant": "blue"},
    ]


def _evals(*items: object) -> dict[str, object]:
    good = {"flagName": "ok", "enabled": True}
    return {"evaluations": [good, good, good, *items]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("nope", ""),
        ({}, "evaluations"),
        ({"evaluations": {}}, "evaluations"),
        (_evals("x"), "evaluations[3]"),
        (_evals({"flagName": "a"}), "evaluations[3].enabled"),
        (_evals({"flagName": "a", "enabled": "true"}), "evaluations[3].enabled"),
        (_evals({"enabled": True}), "evaluations[3].flagName"),
        (_evals({"flagName": "", "enabled": True}), "evaluations[3].flagName"),
        (_evals({"flagName": 7, "enabled": True}), "evaluations[3].flagName"),
        (_evals({"flagName": "a", "enabled": True, "variant": 1}), "evaluations[3].variant"),
        (_evals({"flagName": "a", "enabled": True, "context": []}), "evaluations[3].context"),
        (
            _evals({"flagName": "a", "enabled": True, "context": {"u": {"id": 1}}}),
            "evaluations[3].context.u",
        ),
        (
            _evals({"flagName": "a", "enabled": True, "context": {"u": None}}),
            "evaluations[3].context.u",
        ),
    ],
)
def test_invalid_reports_name_the_field(body: object, field: str) -> None:
    with pytest.raises(FlagError) as caught:
        parse_evaluations(body)
    assert caught.value.field == field


def test_reports_are_capped_per_request() -> None:
    item = {"flagName": "a", "enabled": True}
    assert len(parse_evaluations({"evaluations": [item] * MAX_EVALUATIONS})) == MAX_EVALUATIONS
    with pytest.raises(FlagError) as caught:
        parse_evaluations({"evaluations": [item] * (MAX_EVALUATIONS + 1)})
    assert caught.value.field == "evaluations"


# Resolution ---------------------------------------------------------------------------------


def test_disabled_flag_is_off_whatever_the_rules() -> None:
    defn = parse_flag(with_change("enabled", False))
    result = resolve(defn, {"email": "a@example.com", "userId": "1"})
    assert (result.enabled, result.variant, result.reason) == (False, None, "DISABLED")


def test_flag_on_for_everyone_is_static() -> None:
    result = resolve(flag(), {})
    assert (result.enabled, result.reason) == (True, "STATIC")


def test_first_matching_rule_decides_and_serves_its_variant() -> None:
    defn = parse_flag(FULL)
    staff = resolve(defn, {"email": "Ann@EXAMPLE.com", "appVersion": "1.0.0"})
    assert (staff.enabled, staff.variant, staff.reason, staff.rule) == (
        True,
        "staff",
        "TARGETING_MATCH",
        0,
    )
    old = resolve(defn, {"email": "bob@other.org", "appVersion": "1.9.9", "userId": "7"})
    assert (old.enabled, old.variant, old.reason, old.rule) == (False, None, "TARGETING_MATCH", 1)


def test_zero_weight_variant_is_never_drawn() -> None:
    defn = parse_flag(with_change("rollout", 100))
    drawn = {resolve(defn, {"userId": str(i)}).variant for i in range(2000)}
    assert drawn == {"blue", "green"}


def test_unmatched_rules_fall_through_to_the_flag_rollout() -> None:
    only_x = {"contextName": "c", "operator": "IN", "values": ["x"]}
    everyone = flag(rules=[{"constraints": [only_x], "rollout": 0}])
    result = resolve(everyone, {"c": "y"})
    assert (result.enabled, result.reason, result.rule) == (True, "DEFAULT", None)
    partial = flag(rollout=50)
    assert resolve(partial, {"userId": "1"}).reason == "SPLIT"


def test_a_rule_is_final_even_outside_its_rollout() -> None:
    rules = [
        {
            "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}],
            "rollout": 1,
        },
        {"constraints": [], "rollout": 100},
    ]
    defn = flag(rules=rules)
    outcomes = [resolve(defn, {"plan": "pro", "userId": str(i)}) for i in range(300)]
    assert {o.rule for o in outcomes} == {0}
    assert sum(o.enabled for o in outcomes) < 20


def test_a_draw_without_a_stickiness_key_is_an_error_not_a_coin_toss() -> None:
    result = resolve(flag(rollout=40), {"country": "NO"})
    assert (result.enabled, result.reason, result.error_code) == (
        False,
        "ERROR",
        "TARGETING_KEY_MISSING",
    )
    # 0 and 100 need no key, nor does a single weighted variant.
    assert resolve(flag(rollout=100), {}).enabled is True
    assert resolve(flag(rollout=0), {}).enabled is False
    single = flag(variants=[{"name": "only", "weight": 3}, {"name": "never", "weight": 0}])
    assert resolve(single, {}).variant == "only"
    two = flag(variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}])
    assert resolve(two, {}).error_code == "TARGETING_KEY_MISSING"


def test_targeting_key_buckets_like_user_id() -> None:
    defn = flag(rollout=50, variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 2}])
    for i in range(200):
        by_user = resolve(defn, {"userId": f"u{i}"})
        by_targeting_key = resolve(defn, {"targetingKey": f"u{i}"})
        assert (by_user.enabled, by_user.variant) == (
            by_targeting_key.enabled,
            by_targeting_key.variant,
        )


def test_user_id_wins_over_targeting_key_and_session_id() -> None:
    defn = flag(rollout=50)
    keys = [f"k{i}" for i in range(100)]
    for key in keys:
        expected = resolve(defn, {"userId": key}).enabled
        mixed = {"userId": key, "targetingKey": "other", "sessionId": "other"}
        assert resolve(defn, mixed).enabled is expected


def test_numbers_and_booleans_in_context_are_compared_as_text() -> None:
    defn = flag(rollout=50)
    for i in range(100):
        assert resolve(defn, {"userId": i}).enabled is resolve(defn, {"userId": str(i)}).enabled
    flags = flag(
        rollout=0,
        rules=[
            {
                "constraints": [
                    {"contextName": "beta", "operator": "IN", "values": ["true"]},
                    {"contextName": "build", "operator": "NUM_GTE", "value": 12},
                ]
            }
        ],
    )
    assert resolve(flags, {"beta": True, "build": 12.0}).enabled is True
    assert resolve(flags, {"beta": False, "build": 12}).enabled is False


def test_evaluation_is_deterministic() -> None:
    defn = parse_flag(with_change("rules", []))
    contexts = [{"userId": f"user-{i}", "noise": i} for i in range(500)]
    first = [resolve(defn, c) for c in contexts]
    again = [resolve(defn, {"userId": c["userId"]}) for c in reversed(contexts)]
    assert first == list(reversed(again))


def test_rollout_share_and_nesting_follow_the_percentage() -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    ten = {k for k in keys if resolve(flag(rollout=10), {"userId": k}).enabled}
    thirty = {k for k in keys if resolve(flag(rollout=30), {"userId": k}).enabled}
    assert 900 <= len(ten) <= 1100
    assert 2_800 <= len(thirty) <= 3_200
    # Raising a rollout only adds users: nobody who had the flag loses it.
    assert ten <= thirty


def test_variant_shares_follow_the_weights() -> None:
    defn = flag(
        variants=[
            {"name": "a", "weight": 200},
            {"name": "b", "weight": 300},
            {"name": "c", "weight": 500},
        ]
    )
    counts = Counter(resolve(defn, {"userId": f"user-{i}"}).variant for i in range(10_000))
    assert 1_800 <= counts["a"] <= 2_200
    assert 2_750 <= counts["b"] <= 3_250
    assert 4_700 <= counts["c"] <= 5_300


# OFREP --------------------------------------------------------------------------------------


def test_ofrep_boolean_flag() -> None:
    defn = flag(description="dark theme")
    assert ofrep_single(defn, "f", {"targetingKey": "u1"}) == (
        200,
        {
            "key": "f",
            "reason": "STATIC",
            "variant": "enabled",
            "value": True,
            "metadata": {"description": "dark theme"},
        },
    )
    off = parse_flag({"name": "f", "enabled": False})
    assert ofrep_single(off, "f", {}) == (
        200,
        {"key": "f", "reason": "DISABLED", "variant": "disabled", "value": False},
    )


def test_ofrep_variant_flag_serves_values_and_defers_to_code_default_when_off() -> None:
    defn = parse_flag(FULL)
    staff = {"targetingKey": "x", "email": "a@example.com"}
    status, body = ofrep_single(defn, "new_dashboard", staff)
    assert status == 200
    assert body == {
        "key": "new_dashboard",
        "reason": "TARGETING_MATCH",
        "variant": "staff",
        "value": "#ff00ff",
        "metadata": {"description": "the redesigned dashboard"},
    }
    status, body = ofrep_single(defn, "new_dashboard", {"targetingKey": "x", "appVersion": "1.0.0"})
    assert status == 200
    assert body["variant"] == "disabled"
    assert "value" not in body


def test_ofrep_errors() -> None:
    assert ofrep_single(None, "ghost", {"targetingKey": "u"}) == (
        404,
        {
            "key": "ghost",
            "errorCode": "FLAG_NOT_FOUND",
            "errorDetails": "flag 'ghost' was not found",
        },
    )
    status, body = ofrep_single(flag(), "f", ["not", "an", "object"])
    assert (status, body["errorCode"]) == (400, "INVALID_CONTEXT")
    status, body = ofrep_single(flag(), "f", {"targetingKey": 5})
    assert (status, body["errorCode"]) == (400, "INVALID_CONTEXT")
    status, body = ofrep_single(flag(rollout=50), "f", {"plan": "pro"})
    assert (status, body["key"], body["errorCode"]) == (400, "f", "TARGETING_KEY_MISSING")
    assert parse_error("f", "bad JSON")[1] == {
        "key": "f",
        "errorCode": "PARSE_ERROR",
        "errorDetails": "bad JSON",
    }


def test_ofrep_bulk_mixes_successes_and_failures_sorted_by_key() -> None:
    defns = [
        parse_flag({"name": "zeta", "enabled": True, "rollout": 50}),
        parse_flag({"name": "alpha", "enabled": True}),
    ]
    status, body = ofrep_bulk(defns, {})
    assert status == 200
    flags = body["flags"]
    assert isinstance(flags, list)
    assert [f["key"] for f in flags] == ["alpha", "zeta"]  # type: ignore[call-overload,index]
    assert flags[0] == {"key": "alpha", "reason": "STATIC", "variant": "enabled", "value": True}
    assert flags[1]["errorCode"] == "TARGETING_KEY_MISSING"  # type: ignore[call-overload,index]
    status, body = ofrep_bulk(defns, "nope")
    assert (status, body["errorCode"]) == (400, "INVALID_CONTEXT")
    assert "key" not in body


def test_ofrep_matches_local_evaluation() -> None:
    defn = parse_flag(with_change("rules", []))
    for i in range(200):
        local = resolve(defn, {"targetingKey": f"t{i}"})
        _, body = ofrep_single(defn, defn.name, {"targetingKey": f"t{i}"})
        assert body["variant"] == (local.variant or "disabled")


def test_empty_custom_stickiness_value_counts_as_missing() -> None:
    defn = flag(rollout=50, stickiness="tenant")
    assert resolve(defn, {"tenant": ""}).error_code == "TARGETING_KEY_MISSING"
    assert resolve(defn, {"tenant": "acme", "userId": ""}).error_code is None


def test_ofrep_serves_object_values() -> None:
    limits = {"maxUploads": 3, "tier": "free"}
    defn = flag(variants=[{"name": "limits", "weight": 1, "value": limits}])
    assert ofrep_single(defn, "f", {"targetingKey": "u"})[1]["value"] == limits
