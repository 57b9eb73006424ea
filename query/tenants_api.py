"""Tenants over HTTP, the reads (issue 16): GET /api/tenants (the caller's tenants with their
GitHub App installation) and GET /api/tenants/{tenant_id}/email.

A token limited to scopes needs `jobs:read` (what a tenant's jobs need too). A tenant the
caller is not a member of is a 404, the same as one that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

import falcon.asgi
import orjson

from schemas.envelope import iso_micros
from state import identity_reads as qi
from state import people_reads as people
from state import tenant_reads as q
from storage.relational import Relational
from web.auth import Authenticator

READ = "jobs:read"


def tenant_document(view: q.TenantView) -> dict[str, Any]:
    installation = view.installation
    return {
        "id": view.id,
        "name": view.name,
        "kind": view.kind,
        "role": view.role,
        "created_at": iso_micros(view.created_at),
        "email": view.email,
        "installation": None
        if installation is None
        else {
            "id": installation.installation_id,
            "account": {
                "login": installation.account_login,
                "id": installation.account_id,
                "type": installation.account_type,
                "avatar_url": installation.avatar_url,
            },
            "repository_selection": installation.repository_selection,
            "repositories": [{"id": i, "full_name": name} for i, name in view.repositories],
            "linked_at": iso_micros(installation.linked_at),
        },
    }


class TenantListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req, READ)
        views = await asyncio.to_thread(q.tenants_with_installations, self._db, developer.name)
        tenants = [tenant_document(v) for v in views]
        resp.data = orjson.dumps({"tenants": tenants, "total_count": len(tenants)})


class TenantEmailLookup:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tenant_id: str
    ) -> None:
        developer = await self._auth.developer(req, READ)
        await asyncio.to_thread(qi.member_tenant, self._db, tenant_id, developer.name)
        email = await asyncio.to_thread(people.tenant_email, self._db, tenant_id)
        resp.data = orjson.dumps({"email": email})
