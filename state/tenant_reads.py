"""Reads for the tenant endpoints (issue 16): a developer's tenants with their role, e-mail
and GitHub App installation, in three queries whatever their number; and which e-mail link
of a tenant is the latest (a newer request supersedes the links mailed before it)."""

from __future__ import annotations

from dataclasses import dataclass

from state.people_reads import Installation, Reader


@dataclass(frozen=True, slots=True)
class TenantView:
    id: str
    name: str
    kind: str
    role: str
    created_at: int
    email: str | None
    installation: Installation | None
    """The live GitHub App installation; None for a personal tenant or after an uninstall."""
    repositories: tuple[tuple[int, str], ...] = ()
    """(id, full name) of the installation's repositories, by name."""


def _names(prefix: str, values: list[str] | list[int]) -> dict[str, object]:
    return {f"{prefix}{i}": v for i, v in enumerate(values)}


def tenants_with_installations(db: Reader, developer: str) -> list[TenantView]:
    """The tenants `developer` is a member of, oldest first."""
    rows = db.fetchall(
        "SELECT t.id, t.name, t.kind, m.role, t.created_at, t.email FROM tenants t "
        "JOIN tenant_members m ON m.tenant_id = t.id WHERE m.developer = :d "
        "ORDER BY t.created_at, t.id",
        {"d": developer},
    )
    ids = [str(r[0]) for r in rows]
    installations: dict[str, Installation] = {}
    if ids:
        names = _names("t", ids)
        found = db.fetchall(
            "SELECT installation_id, tenant_id, account_login, account_id, account_type, "
            "repository_selection, avatar_url, linked_at FROM tenant_installations "
            f"WHERE removed_at IS NULL AND tenant_id IN ({', '.join(':' + n for n in names)}) "
            "ORDER BY installation_id",
            names,
        )
        for i in found:
            live = Installation(
                int(str(i[0])),
                str(i[1]),
                str(i[2]),
                int(str(i[3])),
                str(i[4]),
                str(i[5]),
                None if i[6] is None else str(i[6]),
                int(str(i[7])),
                None,
            )
            installations.setdefault(live.tenant_id, live)
    repositories = _repositories(db, [i.installation_id for i in installations.values()])
    return [
        TenantView(
            id=str(r[0]),
            name=str(r[1]),
            kind=str(r[2]),
            role=str(r[3]),
            created_at=int(r[4]),
            email=None if r[5] is None else str(r[5]),
            installation=installations.get(str(r[0])),
            repositories=_of(repositories, installations.get(str(r[0]))),
        )
        for r in rows
    ]


def _of(
    repositories: dict[int, list[tuple[int, str]]], installation: Installation | None
) -> tuple[tuple[int, str], ...]:
    return () if installation is None else tuple(repositories[installation.installation_id])


def _repositories(db: Reader, installation_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    found: dict[int, list[tuple[int, str]]] = {i: [] for i in installation_ids}
    if not installation_ids:
        return found
    names = _names("i", installation_ids)
    rows = db.fetchall(
        "SELECT installation_id, repository_id, full_name FROM tenant_repositories "
        f"WHERE installation_id IN ({', '.join(':' + n for n in names)}) "
        "ORDER BY full_name, repository_id",
        names,
    )
    for r in rows:
        found[int(str(r[0]))].append((int(str(r[1])), str(r[2])))
    return found


def latest_email_link(db: Reader, tenant_id: str) -> str | None:
    """The jti of the tenant's most recently requested e-mail link."""
    row = db.fetchone(
        "SELECT jti FROM tenant_email_links WHERE tenant_id = :t "
        "ORDER BY requested_at DESC, jti DESC LIMIT 1",
        {"t": tenant_id},
    )
    return None if row is None else str(row[0])
