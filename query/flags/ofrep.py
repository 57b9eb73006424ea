"""OpenFeature Remote Resolution Protocol (OFREP) answers, as pure functions of definitions.

Shapes follow open-feature/protocol `service/openapi.yaml` (v0.3): a success is
`{key, reason, variant, value?, metadata?}`, a failure `{key, errorCode, errorDetails}`, and bulk
evaluation `{"flags": [...]}` mixing both. The resource owns HTTP: JSON decoding (it answers
`parse_error` for a body that is not JSON), authentication and, for bulk, the ETag / 304.

Values: a flag without variants serves a boolean, variant "enabled" or "disabled". A flag with
variants serves the drawn variant's `value` (its name when it has none); when such a flag is off
the answer has no `value`, which OFREP (ADR 0006) defines as "use the code default", because no
value of the variants' type means "off". Hutch's reason DEFAULT is sent as is; that ADR uses
it though the schema's enum does not list it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from query.flags.resolution import Resolution, resolve
from schemas.flags.definitions import FlagDefinition, JsonValue

OfrepErrorCode = Literal[
    "FLAG_NOT_FOUND", "PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"
]
Body = dict[str, JsonValue]


def ofrep_single(defn: FlagDefinition | None, key: str, context: object) -> tuple[int, Body]:
    """`POST /ofrep/v1/evaluate/flags/{key}`; `context` is the request body's `context`."""
    checked = _context(context)
    if isinstance(checked, str):
        return 400, failure(key, "INVALID_CONTEXT", checked)
    if defn is None:
        return 404, failure(key, "FLAG_NOT_FOUND", f"flag {key!r} was not found")
    item = _item(defn, resolve(defn, checked))
    return (400 if "errorCode" in item else 200), item


def ofrep_bulk(defns: Iterable[FlagDefinition], context: object) -> tuple[int, Body]:
    """`POST /ofrep/v1/evaluate/flags`: every flag of the app, sorted by key."""
    checked = _context(context)
    if isinstance(checked, str):
        return 400, {"errorCode": "INVALID_CONTEXT", "errorDetails": checked}
    items: list[JsonValue] = [
        _item(d, resolve(d, checked)) for d in sorted(defns, key=lambda d: d.name)
    ]
    return 200, {"flags": items}


def parse_error(key: str | None, details: str) -> tuple[int, Body]:
    """For a request body that is not JSON; `key` is None for bulk requests."""
    if key is None:
        return 400, {"errorCode": "PARSE_ERROR", "errorDetails": details}
    return 400, failure(key, "PARSE_ERROR", details)


def failure(key: str, code: OfrepErrorCode, details: str) -> Body:
    return {"key": key, "errorCode": code, "errorDetails": details}


def _context(context: object) -> Mapping[str, object] | str:
    """The context, or why it is invalid. A missing context is an empty one: flags that need
    no stickiness key still evaluate, and those that do answer TARGETING_KEY_MISSING."""
    if context is None:
        return {}
    if not isinstance(context, dict):
        return "context must be a JSON object"
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        return "targetingKey must be a string"
    return context


def _item(defn: FlagDefinition, ev: Resolution) -> Body:
    if ev.error_code is not None:
        return failure(
            defn.name,
            ev.error_code,
            f"flag {defn.name!r} buckets on {defn.stickiness!r}: give a targetingKey",
        )
    out: Body = {"key": defn.name, "reason": ev.reason}
    if not defn.variants:
        out["variant"] = "enabled" if ev.enabled else "disabled"
        out["value"] = ev.enabled
    elif ev.variant is None:
        out["variant"] = "disabled"
    else:
        out["variant"] = ev.variant
        chosen = next(v for v in defn.variants if v.name == ev.variant)
        out["value"] = chosen.name if chosen.value is None else chosen.value
    if defn.description:
        out["metadata"] = {"description": defn.description}
    return out
