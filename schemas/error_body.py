"""The one error shape Hutch answers with, over HTTP and from the CLI:
`{"error": {"code", "message", "field"?}, "message"}`: the message twice, at the top level too,
where Builtiful's clients read it."""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape, for HTTP answers and the CLI's errors alike."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error, "message": message}
