"""Sign-in with GitHub and logout (Builtiful's, and BuildHut's POST /api/logout).

GET /api/auth/github/login?redirect_uri=  302 to GitHub's authorize page; the state and the
    checked redirect target go into the signed state cookie (web/oauth_state.py).
GET /api/auth/github/callback?code=&state=  checks the state against that cookie, exchanges
    the code, reads the user and their installations: all of GitHub's answers first, so a
    refusal or an outage changes nothing. Then the developer (ingest/sign_in_commands.py),
    their installation tenants (ingest/tenant_commands.sync_memberships), the session, its
    cookies (web/cookies.py), and 302 to the redirect target.
GET|POST /api/auth/logout?redirect_uri=, POST /api/logout  end the caller's session if the
    cookies name a live one, clear the cookies, and 302 to the checked redirect target or
    answer 200 {"message": "Successfully logged out"}. No CSRF proof: a logout only ends the
    session of the browser that sends it.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from base.client_errors import BadGateway, BadRequest, HutchError, ServiceUnavailable
from base.github import GitHub, GitHubError, OAuthRefused
from base.settings import Settings
from ingest import sign_in_commands as commands
from ingest import tenant_commands
from state.command_context import CommandContext
from web import cookies, oauth_state
from web.auth import Authenticator
from web.body import send_json
from web.redirects import safe_redirect

CALLBACK_PATH = "/api/auth/github/callback"
LOGGED_OUT = {"message": "Successfully logged out"}


def _configured(github: GitHub) -> None:
    if not github.sign_in_configured:
        raise ServiceUnavailable(
            "sign-in with GitHub is not configured on this server "
            "(HUTCH_GITHUB_CLIENT_ID and HUTCH_GITHUB_CLIENT_SECRET)",
            code="github_not_configured",
        )


def _redirect(resp: falcon.asgi.Response, location: str) -> None:
    resp.status = falcon.HTTP_302
    resp.location = location
    resp.cache_control = ["no-store"]


class GitHubLogin:
    def __init__(self, settings: Settings, github: GitHub, state_key: bytes) -> None:
        self._settings = settings
        self._github = github
        self._key = state_key

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _configured(self._github)
        target = req.get_param("redirect_uri") or f"{self._settings.public_url}/portal"
        redirect_uri = safe_redirect(target, self._settings)
        pending, cookie = oauth_state.issue(self._key, redirect_uri)
        cookies.set_cookie(
            req,
            resp,
            self._settings,
            oauth_state.STATE_COOKIE,
            cookie,
            oauth_state.STATE_PATH,
            oauth_state.STATE_TTL_S,
        )
        callback = f"{self._settings.public_url}{CALLBACK_PATH}"
        _redirect(resp, self._github.authorize_url(callback, pending.state))


class GitHubCallback:
    def __init__(
        self,
        ctx: CommandContext,
        github: GitHub,
        state_key: bytes,
    ) -> None:
        self._ctx = ctx
        self._settings = ctx.settings
        self._github = github
        self._key = state_key

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _configured(self._github)
        cookie = cookies.cookie_value(req, oauth_state.STATE_COOKIE)
        pending = oauth_state.verify(self._key, cookie, req.get_param("state"))
        if error := req.get_param("error"):
            raise BadRequest(
                f"GitHub did not sign you in ({error}): {req.get_param('error_description') or ''}",
                code="oauth_refused",
            )
        code = req.get_param("code")
        if not code:
            raise BadRequest("the code parameter is missing", code="missing_code", field="code")
        callback = f"{self._settings.public_url}{CALLBACK_PATH}"
        try:
            token = await self._github.exchange_code(code, callback)
            user = await self._github.user(token)
            installations = await self._github.user_installations(token)
        except OAuthRefused as exc:
            raise BadRequest(
                f"GitHub refused the sign-in code ({exc.error}; codes work once and expire "
                "after 10 minutes): sign in again at /api/auth/github/login",
                code="oauth_refused",
                field="code",
            ) from None
        except GitHubError as exc:
            raise github_unavailable(exc) from None
        developer = await commands.link_developer(self._ctx, user)
        await tenant_commands.sync_memberships(self._ctx, developer, user.id, installations)
        session = await commands.start_session(self._ctx, developer, self._settings.session_ttl_s)
        cookies.set_session(req, resp, self._settings, developer, session.token)
        cookies.clear_cookie(
            req, resp, self._settings, oauth_state.STATE_COOKIE, oauth_state.STATE_PATH
        )
        _redirect(resp, pending.redirect_uri)


def github_unavailable(exc: GitHubError) -> HutchError:
    return BadGateway(f"GitHub did not answer as expected: {exc}", code="github_unavailable")


class Logout:
    """Builtiful's logout (GET or POST, optional redirect_uri) and BuildHut's (POST)."""

    def __init__(self, ctx: CommandContext, auth: Authenticator, redirects: bool) -> None:
        self._ctx = ctx
        self._auth = auth
        self._redirects = redirects

    async def _logout(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        target = req.get_param("redirect_uri") if self._redirects else None
        location = None if target is None else safe_redirect(target, self._ctx.settings)
        if cookies.SESSION_COOKIE in req.cookies:
            try:
                caller = await self._auth.session(req)
            except HutchError:
                pass  # ended, expired or not ours: clearing the cookies is all there is to do
            else:
                await commands.end_session(self._ctx, caller)
                assert caller.session_id is not None
                self._auth.forget_session(caller.session_id)
        cookies.clear_session(req, resp, self._ctx.settings)
        if location is None:
            send_json(resp, 200, LOGGED_OUT)
        else:
            _redirect(resp, location)

    on_post = _logout


class BuiltifulLogout(Logout):
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        super().__init__(ctx, auth, redirects=True)

    on_get = Logout._logout


class BuildHutLogout(Logout):
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        super().__init__(ctx, auth, redirects=False)
