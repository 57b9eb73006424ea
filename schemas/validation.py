"""The error a data definition raises for input that does not fit it."""

from __future__ import annotations


class Invalid(ValueError):
    """Input does not fit the schema; `field` is its JSON path (`bits`, `events[3].kind`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
