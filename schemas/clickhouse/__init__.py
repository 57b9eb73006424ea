"""ClickHouse DDL, one file per table; `{retention_days}` is the only placeholder."""

from __future__ import annotations

from importlib import resources


def load(name: str, **params: object) -> str:
    """The DDL in `<name>.sql` with its placeholders filled in."""
    text = (resources.files(__package__) / f"{name}.sql").read_text()
    return text.format(**params) if params else text
