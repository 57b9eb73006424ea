"""ClickHouse query parameters as text, the form the engine parses `{name:Type}` values from.

The HTTP interface (`param_<name>=`) and chDB take the same text, so both adapters use this.
Strings at top level are in the escaped (TSV) form; inside arrays they are quoted literals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
_QUOTED = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"})


def format_params(params: Mapping[str, Any]) -> dict[str, str]:
    return {name: format_value(value) for name, value in params.items()}


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return _scalar(value, quoted=False)


def _scalar(value: Any, *, quoted: bool) -> str:
    if value is None:
        return "NULL" if quoted else "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.translate(_QUOTED) + "'" if quoted else value.translate(_ESCAPES)
    if isinstance(value, UUID):
        return f"'{value}'" if quoted else str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        text = value.isoformat(sep=" ", timespec="microseconds")
        return f"'{text}'" if quoted else text
    if isinstance(value, Sequence):
        return "[" + ",".join(_scalar(v, quoted=True) for v in value) + "]"
    raise TypeError(f"cannot bind a {type(value).__name__} as a ClickHouse parameter")
