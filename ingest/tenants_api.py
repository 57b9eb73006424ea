"""Tenants over HTTP, the commands (issue 16): the GitHub App setup handler
(GET /api/auth/github/setup), a tenant e-mail change (PUT or POST
/api/tenants/{tenant_id}/email) and following its mailed link
(GET /api/tenants/{tenant_id}/email/verify?jwt=).

The setup handler trusts nothing of its query but the shape of `installation_id`: GitHub is
asked for the installation with the App's own JWT (an id GitHub does not know: 404
`unknown_installation`), then whether the caller is its account (a User installation: the
caller's linked GitHub id is the account's) or a member of its organisation (403 otherwise).
Only then is the installation linked to its tenant and the caller made a member; the browser
goes on to the portal, or to a `redirect_uri` the allow-list accepts (web/redirects.py).
"""

from __future__ import annotations

import asyncio

import falcon
import falcon.asgi

from base.client_errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from base.github import GitHub, GitHubError, GitHubInstallation
from base.mail import mail_server, send_mail, sender
from base.settings import Settings
from ingest import tenant_email as email_commands
from ingest.identity_api import typed
from ingest.tenant_commands import link_installation
from state import people_reads as people
from state.command_context import CommandContext
from web.auth import Authenticator, Developer
from web.body import read_json_object, send_json
from web.redirects import safe_redirect

MAX_INSTALLATION_ID = 2**63 - 1
MAIL_TIMEOUT_S = 20.0


def installation_id(value: str | None) -> int:
    """A GitHub installation id from the query: decimal digits only (no sign, no spaces)."""
    if value is None:
        raise BadRequest(
            "installation_id (GitHub's id of the App installation) is required",
            field="installation_id",
            code="bad_installation_id",
        )
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_INSTALLATION_ID:
        raise BadRequest(
            "installation_id must be a positive integer",
            field="installation_id",
            code="bad_installation_id",
        )
    return int(value)


def _redirect(resp: falcon.asgi.Response, location: str) -> None:
    resp.status = falcon.HTTP_302
    resp.location = location
    resp.cache_control = ["no-store"]


class GitHubSetup:
    def __init__(
        self, ctx: CommandContext, auth: Authenticator, github: GitHub, settings: Settings
    ) -> None:
        self._ctx = ctx
        self._auth = auth
        self._github = github
        self._portal = f"{settings.public_url.rstrip('/')}/portal"
        self._settings = settings

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = await self._auth.developer(req)
        redirect = req.get_param("redirect_uri")
        target = self._portal if redirect is None else safe_redirect(redirect, self._settings)
        raw = req.get_param("installation_id")
        if raw is None and req.get_param("setup_action") == "request":
            # An organisation member asked its owners to install the App: nothing to link yet.
            _redirect(resp, target)
            return
        number = installation_id(raw)
        if not self._github.app_configured:
            raise ServiceUnavailable(
                "the GitHub App is not configured on this server (HUTCH_GITHUB_APP_ID and "
                "HUTCH_GITHUB_APP_KEY); nothing was linked",
                code="github_not_configured",
            )
        try:
            found = await self._github.installation(number)
            if found is None:
                raise NotFound(
                    f"GitHub knows no installation {number} of this App; nothing was linked",
                    field="installation_id",
                    code="unknown_installation",
                )
            await self._check_member(caller, found)
        except GitHubError as exc:
            raise BadGateway(
                f"GitHub did not answer as expected ({exc}); nothing was linked",
                code="github_unavailable",
            ) from None
        await link_installation(self._ctx, found, caller.name)
        _redirect(resp, target)

    async def _check_member(self, caller: Developer, installation: GitHubInstallation) -> None:
        account = await asyncio.to_thread(people.account_of, self._ctx.db, caller.name)
        if account is None:
            raise Forbidden(
                "sign in with GitHub first: only the installation's GitHub account or a member "
                "of its organisation may link it; nothing was linked",
                field="installation_id",
                code="not_installation_member",
            )
        if installation.account_type == "Organization":
            member = await self._github.org_member(
                installation.id, installation.account_login, account.login
            )
        else:
            member = installation.account_id == account.github_id
        if not member:
            raise Forbidden(
                f"your GitHub account {account.login} is neither the installation's account "
                f"({installation.account_login}) nor a member of it; nothing was linked",
                field="installation_id",
                code="not_installation_member",
            )


class TenantEmailChange:
    def __init__(
        self, ctx: CommandContext, auth: Authenticator, key: bytes, settings: Settings
    ) -> None:
        self._ctx = ctx
        self._auth = auth
        self._key = key
        self._settings = settings
        self._mail = mail_server(settings)
        self._sender = sender(settings)

    async def on_put(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tenant_id: str
    ) -> None:
        caller = await self._auth.developer(req)
        body = typed(await read_json_object(req), {"email": "a string"})
        address = body.get("email")
        if address is None:
            raise Unprocessable("email (the new address) is required", field="email")
        tenant, token = await email_commands.request_change(
            self._ctx, self._key, caller, tenant_id, address, self._mail is not None
        )
        ttl_s = self._settings.email_link_ttl_s
        url = email_commands.verify_url(self._settings.public_url, tenant_id, token)
        msg = email_commands.message(self._sender, address, tenant.name, url, ttl_s)
        outcome = await send_mail(self._mail, msg, [address], MAIL_TIMEOUT_S)
        if not outcome.ok:
            raise BadGateway(
                "the verification mail could not be sent; the e-mail is unchanged, ask again later",
                field="email",
                code="mail_failed",
            )
        send_json(
            resp,
            202,
            {
                "message": f"A verification link was mailed to {address}; the tenant's e-mail "
                "changes when it is followed"
            },
        )

    on_post = on_put


class TenantEmailVerification:
    def __init__(self, ctx: CommandContext, key: bytes) -> None:
        self._ctx = ctx
        self._key = key

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tenant_id: str
    ) -> None:
        token = req.get_param("jwt")
        if not token:
            raise BadRequest(
                "jwt (the token of the link in the verification e-mail) is required",
                field="jwt",
                code="invalid_link",
            )
        send_json(resp, 200, await email_commands.verify(self._ctx, self._key, tenant_id, token))
