"""Telemetry events as BuildHut documents them: `{kind, version, bits}`.

The payload of `telemetry.event.v1` is the validated event as JSON; the app and the time of
receipt travel in the envelope.
"""

from __future__ import annotations

from typing import Any

from schemas.events import TELEMETRY_KINDS
from schemas.validation import Invalid

MAX_EVENTS = 1000
MAX_VERSION_LENGTH = 128


def parse_event(obj: Any, where: str = "") -> dict[str, Any]:
    """The event to store, validated; raises Invalid naming the offending field."""
    prefix = f"{where}." if where else ""
    if not isinstance(obj, dict):
        raise Invalid(where or "body", "an event must be a JSON object {kind, version, bits}")
    kind = obj.get("kind")
    if kind not in TELEMETRY_KINDS:
        raise Invalid(f"{prefix}kind", "kind must be one of " + "|".join(TELEMETRY_KINDS))
    version = obj.get("version", "")
    if not isinstance(version, str) or len(version) > MAX_VERSION_LENGTH:
        raise Invalid(
            f"{prefix}version", f"version must be a string of at most {MAX_VERSION_LENGTH} chars"
        )
    bits = obj.get("bits", {})
    if not isinstance(bits, dict):
        raise Invalid(f"{prefix}bits", "bits must be a JSON object")
    return {"kind": kind, "version": version, "bits": bits}


def parse_events(body: Any) -> list[dict[str, Any]]:
    """One event object, or an array of 1 to MAX_EVENTS of them."""
    if isinstance(body, list):
        if not body:
            raise Invalid("body", "the array holds no events")
        if len(body) > MAX_EVENTS:
            raise Invalid("body", f"at most {MAX_EVENTS} events per request, got {len(body)}")
        return [parse_event(item, f"[{i}]") for i, item in enumerate(body)]
    return [parse_event(body)]
