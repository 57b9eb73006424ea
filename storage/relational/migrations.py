"""Apply schemas/relational/NNNN_*.sql in order, each once, each in one transaction.

A file may have a dialect variant beside it (`NNNN_name.postgresql.sql`), used instead of the
common one by that dialect. Statements are separated by a `;` at the end of a line.
"""

from __future__ import annotations

import time
from importlib import resources

from storage.relational.protocol import Relational

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
)


def migration_files(dialect: str) -> list[tuple[str, str]]:
    """(name, sql) for every migration, in order, with this dialect's variants chosen."""
    folder = resources.files("schemas") / "relational"
    common: dict[str, str] = {}
    variants: dict[str, str] = {}
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql") or not name[:4].isdigit():
            continue
        stem = name.removesuffix(".sql")
        base, _, suffix = stem.partition(".")
        if not suffix:
            common[base] = entry.read_text()
        elif suffix == dialect:
            variants[base] = entry.read_text()
    return [(base, variants.get(base, common[base])) for base in sorted(common)]


def statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines)
    return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";").strip()]


def apply_migrations(store: Relational, dialect: str) -> list[str]:
    with store.transaction() as tx:
        tx.execute(_TABLE)
    applied = {row[0] for row in store.fetchall("SELECT name FROM schema_migrations")}
    done = []
    for name, sql in migration_files(dialect):
        if name in applied:
            continue
        with store.transaction() as tx:
            if tx.fetchone("SELECT 1 FROM schema_migrations WHERE name = :n", {"n": name}):
                continue  # another process got there first
            for statement in statements(sql):
                tx.execute(statement.rstrip(";"))
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (:n, :t)",
                {"n": name, "t": time.time_ns() // 1000},
            )
        done.append(name)
    return done
