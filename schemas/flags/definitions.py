"""Feature-flag definitions: the data model, its JSON form and the validation of request bodies.

A definition is what `hutch flag set` and the define endpoint take, what a `flag.defined.v1`
event stores and what `GET /v1/flags` returns. `flag_to_json` gives the one canonical JSON form
and `parse_flag(flag_to_json(d)) == d`. Its meaning (bucketing, rule order, reasons) is written
down in `query/flags/resolution.py`, which follows Unleash's client specification so that other
SDKs can reproduce every result.

Validation is strict (unknown keys are refused) because definitions are written by people, and
a typo such as `"rolout"` silently ignored would ship a flag to everyone. A `FlagError` names
the offending field as a JSON path (`rules[0].constraints[2].value`); the empty path is the
body itself. Evaluation reports from SDKs are parsed in `schemas/flags/evaluations.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, get_args

import semver

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""Flag and variant names: URL- and metric-safe, 1-128 characters (`dark_mode`, `Feature.B3`)."""

CONTEXT_NAME = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_.:$-]{0,127}$")
"""Context attribute names (`userId`, `targetingKey`, `app.version`)."""

DEFAULT_STICKINESS = "default"
"""Bucket on the first of userId, targetingKey, sessionId that the context has."""

MAX_VARIANTS = 100
MAX_WEIGHT = 10_000
MAX_RULES = 100
MAX_CONSTRAINTS = 50
MAX_VALUES = 1_000
MAX_TEXT = 1_000

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
VariantValue: TypeAlias = "str | int | float | bool | dict[str, JsonValue]"

Operator = Literal[
    "IN",
    "NOT_IN",
    "STR_CONTAINS",
    "STR_STARTS_WITH",
    "STR_ENDS_WITH",
    "NUM_EQ",
    "NUM_GT",
    "NUM_GTE",
    "NUM_LT",
    "NUM_LTE",
    "SEMVER_EQ",
    "SEMVER_GT",
    "SEMVER_GTE",
    "SEMVER_LT",
    "SEMVER_LTE",
]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
LIST_OPERATORS = frozenset({"IN", "NOT_IN", "STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH"})
"""Operators taking `values` (a list); the others take one `value`, as in Unleash."""
STRING_OPERATORS = frozenset({"STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH"})
NUMBER_OPERATORS = frozenset({"NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"})

NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
"""What a numeric constraint accepts: JSON-like decimals, so `1_000` or `inf` never match."""


class FlagError(ValueError):
    """A definition or report body is invalid; `field` is the JSON path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Constraint:
    context_name: str
    operator: Operator
    values: tuple[str, ...]
    """One entry for the single-value operators (NUM_*, SEMVER_*), as text like Unleash's."""
    inverted: bool = False
    case_insensitive: bool = False
    """Only for the STR_* operators."""


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: int
    """Relative: a variant gets weight/total of the bucketed users (Unleash uses totals of 1000)."""
    value: VariantValue | None = field(default=None, hash=False)
    """What OFREP serves for this variant; without one, the variant's name."""


@dataclass(frozen=True, slots=True)
class Rule:
    constraints: tuple[Constraint, ...]
    """ANDed; an empty tuple matches every context."""
    rollout: int = 100
    variant: str | None = None
    """Serve this variant instead of the weighted split (Unleash's variant overrides)."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    name: str
    enabled: bool
    rollout: int = 100
    """Percentage (0-100) of contexts matching no rule that get the flag."""
    stickiness: str = DEFAULT_STICKINESS
    variants: tuple[Variant, ...] = ()
    rules: tuple[Rule, ...] = ()
    description: str = ""


def flag_to_json(defn: FlagDefinition) -> dict[str, JsonValue]:
    """The canonical JSON form: the event payload and one item of `GET /v1/flags`."""
    return {
        "name": defn.name,
        "description": defn.description,
        "enabled": defn.enabled,
        "rollout": defn.rollout,
        "stickiness": defn.stickiness,
        "variants": [_variant_json(v) for v in defn.variants],
        "rules": [_rule_json(r) for r in defn.rules],
    }


def _variant_json(variant: Variant) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"name": variant.name, "weight": variant.weight}
    if variant.value is not None:
        out["value"] = variant.value
    return out


def _rule_json(rule: Rule) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {
        "description": rule.description,
        "constraints": [_constraint_json(c) for c in rule.constraints],
        "rollout": rule.rollout,
    }
    if rule.variant is not None:
        out["variant"] = rule.variant
    return out


def _constraint_json(c: Constraint) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"contextName": c.context_name, "operator": c.operator}
    if c.operator in LIST_OPERATORS:
        out["values"] = list(c.values)
    else:
        out["value"] = c.values[0]
    out["inverted"] = c.inverted
    out["caseInsensitive"] = c.case_insensitive
    return out


# Parsing ------------------------------------------------------------------------------------


def parse_flag(obj: object) -> FlagDefinition:
    """Validate a decoded JSON body into a definition; raises FlagError naming the bad field."""
    body = _object(obj, "", {"name", "enabled"}, _FLAG_KEYS)
    name = _name(body["name"], "name")
    variants = _variants(body.get("variants", []), "variants")
    variant_names = {v.name for v in variants}
    rules = body.get("rules", [])
    rules_items = _list(rules, "rules", MAX_RULES)
    return FlagDefinition(
        name=name,
        enabled=_bool(body["enabled"], "enabled"),
        rollout=_percentage(body.get("rollout", 100), "rollout"),
        stickiness=_stickiness(body.get("stickiness", DEFAULT_STICKINESS), "stickiness"),
        variants=variants,
        rules=tuple(
            _rule(item, f"rules[{i}]", variant_names) for i, item in enumerate(rules_items)
        ),
        description=_text(body.get("description", ""), "description"),
    )


_FLAG_KEYS = {"name", "enabled", "rollout", "stickiness", "variants", "rules", "description"}
_VARIANT_KEYS = {"name", "weight", "value"}
_RULE_KEYS = {"constraints", "rollout", "variant", "description"}
_CONSTRAINT_KEYS = {"contextName", "operator", "values", "value", "inverted", "caseInsensitive"}


def _variants(obj: object, path: str) -> tuple[Variant, ...]:
    items = _list(obj, path, MAX_VARIANTS)
    variants: list[Variant] = []
    seen: set[str] = set()
    kind: str | None = None
    for i, item in enumerate(items):
        at = f"{path}[{i}]"
        body = _object(item, at, {"name", "weight"}, _VARIANT_KEYS)
        name = _name(body["name"], f"{at}.name")
        if name in seen:
            raise FlagError(f"{at}.name", f"duplicate variant name {name!r}")
        seen.add(name)
        weight = _int(body["weight"], f"{at}.weight", 0, MAX_WEIGHT)
        value = _variant_value(body["value"], f"{at}.value") if "value" in body else None
        # One flag serves one OpenFeature type, or typed SDK calls would fail on some users.
        this_kind = _kind(name if value is None else value)
        if kind is not None and this_kind != kind:
            raise FlagError(
                f"{at}.value", f"every variant must serve the same type ({kind}), not {this_kind}"
            )
        kind = this_kind
        variants.append(Variant(name=name, weight=weight, value=value))
    if variants and not any(v.weight > 0 for v in variants):
        raise FlagError(path, "at least one variant needs a weight above 0")
    return tuple(variants)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _variant_value(obj: object, path: str) -> VariantValue:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise FlagError(path, "must be a finite number")
    if isinstance(obj, str | int | float | bool | dict):
        return obj
    raise FlagError(path, "must be a string, number, boolean or object")


def _rule(obj: object, path: str, variant_names: set[str]) -> Rule:
    body = _object(obj, path, set(), _RULE_KEYS)
    items = _list(body.get("constraints", []), f"{path}.constraints", MAX_CONSTRAINTS)
    variant = body.get("variant")
    if variant is not None:
        variant = _name(variant, f"{path}.variant")
        if variant not in variant_names:
            raise FlagError(f"{path}.variant", f"the flag has no variant named {variant!r}")
    return Rule(
        constraints=tuple(
            _constraint(item, f"{path}.constraints[{i}]") for i, item in enumerate(items)
        ),
        rollout=_percentage(body.get("rollout", 100), f"{path}.rollout"),
        variant=variant,
        description=_text(body.get("description", ""), f"{path}.description"),
    )


def _constraint(obj: object, path: str) -> Constraint:
    body = _object(obj, path, {"contextName", "operator"}, _CONSTRAINT_KEYS)
    context_name = _context_name(body["contextName"], f"{path}.contextName")
    operator = body["operator"]
    if operator not in OPERATORS:
        raise FlagError(f"{path}.operator", f"must be one of {', '.join(OPERATORS)}")
    case_insensitive = _bool(body.get("caseInsensitive", False), f"{path}.caseInsensitive")
    if case_insensitive and operator not in STRING_OPERATORS:
        raise FlagError(f"{path}.caseInsensitive", "applies to the STR_* operators only")
    if operator in LIST_OPERATORS:
        if "value" in body:
            raise FlagError(f"{path}.value", f"{operator} takes `values`, a list")
        if "values" not in body:
            raise FlagError(f"{path}.values", "is required")
        items = _list(body["values"], f"{path}.values", MAX_VALUES)
        if not items:
            raise FlagError(f"{path}.values", "needs at least one value")
        values = tuple(_text(v, f"{path}.values[{i}]") for i, v in enumerate(items))
    else:
        if "values" in body:
            raise FlagError(f"{path}.values", f"{operator} takes one `value`")
        if "value" not in body:
            raise FlagError(f"{path}.value", "is required")
        values = (_operand(operator, body["value"], f"{path}.value"),)
    return Constraint(
        context_name=context_name,
        operator=operator,
        values=values,
        inverted=_bool(body.get("inverted", False), f"{path}.inverted"),
        case_insensitive=case_insensitive,
    )


def _operand(operator: str, obj: object, path: str) -> str:
    if operator in NUMBER_OPERATORS:
        if isinstance(obj, int | float) and not isinstance(obj, bool) and math.isfinite(obj):
            return number_text(obj)
        if isinstance(obj, str) and NUMBER.match(obj):
            return obj.strip()
        raise FlagError(path, "must be a number")
    text = _text(obj, path)
    if not semver.Version.is_valid(text):
        raise FlagError(path, f"{text!r} is not a semantic version such as 1.2.3 or 2.0.0-rc.1")
    return text


def number_text(value: int | float) -> str:
    """Numbers as JavaScript's String() writes them (12.0 -> "12"), so hashes agree."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _object(obj: object, path: str, required: set[str], allowed: set[str]) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise FlagError(path, "must be a JSON object")
    for key in obj:
        if key not in allowed:
            raise FlagError(_join(path, str(key)), "unknown field")
    for key in sorted(required):
        if key not in obj:
            raise FlagError(_join(path, key), "is required")
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list(obj: object, path: str, limit: int) -> list[object]:
    if not isinstance(obj, list):
        raise FlagError(path, "must be a list")
    if len(obj) > limit:
        raise FlagError(path, f"at most {limit} items")
    return obj


def _name(obj: object, path: str) -> str:
    if not isinstance(obj, str) or not NAME.match(obj):
        raise FlagError(
            path, "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return obj


def _context_name(obj: object, path: str) -> str:
    if not isinstance(obj, str) or not CONTEXT_NAME.match(obj):
        raise FlagError(path, "must be a context attribute name such as userId")
    return obj


def _stickiness(obj: object, path: str) -> str:
    if obj == DEFAULT_STICKINESS:
        return DEFAULT_STICKINESS
    return _context_name(obj, path)


def _text(obj: object, path: str) -> str:
    if not isinstance(obj, str):
        raise FlagError(path, "must be a string")
    if len(obj) > MAX_TEXT:
        raise FlagError(path, f"at most {MAX_TEXT} characters")
    return obj


def _bool(obj: object, path: str) -> bool:
    if not isinstance(obj, bool):
        raise FlagError(path, "must be true or false")
    return obj


def _int(obj: object, path: str, low: int, high: int) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int) or not low <= obj <= high:
        raise FlagError(path, f"must be an integer from {low} to {high}")
    return obj


def _percentage(obj: object, path: str) -> int:
    return _int(obj, path, 0, 100)
