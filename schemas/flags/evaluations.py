"""Evaluation reports: what SDKs send to `POST /v1/flags/eval` about the flags they evaluated.

`{"evaluations": [{"flagName": "dark_mode", "enabled": true, "variant": "blue",
"context": {"userId": "abc"}}]}`. Unlike definitions, report items ignore keys they do not
know: SDKs are machines of many versions, and a newer one adding a field must not have its
reports refused. Unknown flag names are valid here (they point to stale clients); deciding
which names are unknown is the resource's job, against the app's current definitions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.flags.definitions import FlagError, JsonValue

Scalar = str | int | float | bool

MAX_EVALUATIONS = 1_000
MAX_CONTEXT_KEYS = 64
MAX_NAME = 128
MAX_VALUE_TEXT = 1_000


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    flag_name: str
    enabled: bool
    variant: str | None = None
    context: Mapping[str, Scalar] = field(default_factory=dict, hash=False)


def parse_evaluations(obj: object) -> list[EvaluationReport]:
    """Validate a decoded `/v1/flags/eval` body; raises FlagError with paths like
    `evaluations[3].enabled`."""
    if not isinstance(obj, dict):
        raise FlagError("", "must be a JSON object with an `evaluations` list")
    if "evaluations" not in obj:
        raise FlagError("evaluations", "is required")
    items = obj["evaluations"]
    if not isinstance(items, list):
        raise FlagError("evaluations", "must be a list")
    if len(items) > MAX_EVALUATIONS:
        raise FlagError(
            "evaluations", f"at most {MAX_EVALUATIONS} evaluations per request, got {len(items)}"
        )
    return [_report(item, f"evaluations[{i}]") for i, item in enumerate(items)]


def _report(obj: object, path: str) -> EvaluationReport:
    if not isinstance(obj, dict):
        raise FlagError(path, "must be a JSON object")
    if "flagName" not in obj:
        raise FlagError(f"{path}.flagName", "is required")
    if "enabled" not in obj:
        raise FlagError(f"{path}.enabled", "is required")
    enabled = obj["enabled"]
    if not isinstance(enabled, bool):
        raise FlagError(f"{path}.enabled", "must be true or false")
    variant = obj.get("variant")
    return EvaluationReport(
        flag_name=_short_text(obj["flagName"], f"{path}.flagName"),
        enabled=enabled,
        variant=None if variant is None else _short_text(variant, f"{path}.variant"),
        context=_context(obj.get("context"), f"{path}.context"),
    )


def _short_text(obj: object, path: str) -> str:
    if not isinstance(obj, str) or not obj:
        raise FlagError(path, "must be a non-empty string")
    if len(obj) > MAX_NAME:
        raise FlagError(path, f"at most {MAX_NAME} characters")
    return obj


def _context(obj: object, path: str) -> dict[str, Scalar]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise FlagError(path, "must be a JSON object of attribute names to scalar values")
    if len(obj) > MAX_CONTEXT_KEYS:
        raise FlagError(path, f"at most {MAX_CONTEXT_KEYS} attributes")
    context: dict[str, Scalar] = {}
    for key, value in obj.items():
        at = f"{path}.{key}"
        if not key or len(key) > MAX_NAME:
            raise FlagError(at, f"attribute names must be 1-{MAX_NAME} characters")
        if isinstance(value, str):
            if len(value) > MAX_VALUE_TEXT:
                raise FlagError(at, f"at most {MAX_VALUE_TEXT} characters")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise FlagError(at, "must be a finite number")
        elif not isinstance(value, int | bool):
            raise FlagError(at, "must be a string, number or boolean")
        context[key] = value
    return context


def report_to_json(report: EvaluationReport) -> dict[str, JsonValue]:
    """camelCase, as received; `variant` and `context` only when present."""
    out: dict[str, JsonValue] = {"flagName": report.flag_name, "enabled": report.enabled}
    if report.variant is not None:
        out["variant"] = report.variant
    if report.context:
        out["context"] = dict(report.context)
    return out
