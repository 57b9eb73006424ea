"""GitHub as Hutch uses it: sign-in with OAuth (authorize URL and code exchange, through
authlib) and the user's token (who they are, which installations they see); and the GitHub
App's own calls, with the App JWT or an installation token (base/github_app.py): an
installation's details, organisation membership, files of a repository at a commit.

Nothing here is called at construction: a Runtime builds this in every process, configured
or not. Each call opens its own connections (they are rare: a sign-in, a webhook), so a
client never outlives the event loop that used it. Whatever keeps a call from getting a
meaningful answer (unreachable, timeout, 5xx, a refused App credential, an unexpected body)
is a GitHubError naming the call; callers answer 502 `github_unavailable`. A code GitHub
refuses is an OAuthRefused: the user's to retry, not an outage."""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError

from base.github_app import AppCredentials, AppKeyError
from base.settings import Settings

with warnings.catch_warnings():
    # authlib prefers the `httpx2` package, which PyPI does not carry, and warns on every
    # import that it falls back to httpx: the fallback is what Hutch relies on.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

API_VERSION = "2022-11-28"
USER_AGENT = "Hutch (GitHub App client)"
TIMEOUT_S = 10.0
PER_PAGE = 100
MAX_PAGES = 10
"""At most this many pages of installations (1,000): a bound, not a limit anyone meets."""
CLIENT_ERRORS = frozenset({"incorrect_client_credentials", "invalid_client"})


@dataclass(frozen=True, slots=True)
class GitHubUser:
    id: int
    login: str
    name: str | None
    email: str | None
    avatar_url: str | None


@dataclass(frozen=True, slots=True)
class GitHubInstallation:
    id: int
    account_login: str
    account_id: int
    account_type: str  # "User" | "Organization"
    repository_selection: str  # "all" | "selected"
    avatar_url: str | None


class GitHubError(Exception):
    """GitHub could not be asked, or did not answer as documented."""


class OAuthRefused(GitHubError):
    """GitHub refused the authorization code (bad_verification_code, ...)."""

    def __init__(self, error: str, description: str | None) -> None:
        detail = f" ({description})" if description else ""
        super().__init__(f"GitHub refused the sign-in code: {error}{detail}")
        self.error = error
        self.description = description


class GitHub:
    def __init__(self, settings: Settings) -> None:
        self._web = settings.github_url
        self._api = settings.github_api_url
        self._client_id = settings.github_client_id
        self._client_secret = settings.github_client_secret
        self.sign_in_configured = bool(self._client_id and self._client_secret)
        self.app_configured = bool(settings.github_app_id and settings.github_app_key)
        self._app = AppCredentials(settings.github_app_id, settings.github_app_key)

    # --- sign-in -------------------------------------------------------------------------

    def authorize_url(self, callback_url: str, state: str) -> str:
        """GitHub's page asking the user to authorize the App, returning to `callback_url`."""
        oauth = AsyncOAuth2Client(client_id=self._client_id, redirect_uri=callback_url)
        url, _ = oauth.create_authorization_url(f"{self._web}/login/oauth/authorize", state=state)
        return str(url)

    async def exchange_code(self, code: str, callback_url: str) -> str:
        """The user access token for an authorization code; OAuthRefused if GitHub refuses
        the code (unknown, used, expired, or issued for another redirect)."""
        what = "exchanging the sign-in code"
        async with AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
            redirect_uri=callback_url,
            timeout=TIMEOUT_S,
            headers={"User-Agent": USER_AGENT},
        ) as oauth:
            try:
                token = await oauth.fetch_token(
                    f"{self._web}/login/oauth/access_token",
                    code=code,
                    headers={"Accept": "application/json"},
                )
            except OAuthError as exc:
                # GitHub answers a refused code with 200 and an `error` member. Refused
                # client credentials are Hutch's misconfiguration, not the user's to retry.
                if exc.error in CLIENT_ERRORS:
                    raise GitHubError(
                        f"{what}: GitHub refused the App's client credentials "
                        f"({exc.error}): check HUTCH_GITHUB_CLIENT_ID and "
                        "HUTCH_GITHUB_CLIENT_SECRET"
                    ) from exc
                raise OAuthRefused(str(exc.error), exc.description) from exc
            except httpx.HTTPStatusError as exc:
                raise _status_error(what, exc.response) from exc
            except (httpx.HTTPError, ValueError) as exc:
                raise GitHubError(f"{what}: {_describe(exc)}") from exc
        access = token.get("access_token") if isinstance(token, dict) else None
        if not isinstance(access, str) or not access:
            raise GitHubError(f"{what}: GitHub's answer carries no access_token")
        return access

    async def user(self, token: str) -> GitHubUser:
        """The signed-in user; their e-mail is /user's public one, else their verified
        primary address (/user/emails), else None."""
        body = _object("reading the user", await self._get("reading the user", "/user", token))
        email = _str_or_none(body.get("email"))
        if email is None:
            email = await self._primary_email(token)
        try:
            return GitHubUser(
                id=_int(body["id"]),
                login=_str(body["login"]),
                name=_str_or_none(body.get("name")),
                email=email,
                avatar_url=_str_or_none(body.get("avatar_url")),
            )
        except (KeyError, TypeError) as exc:
            raise GitHubError(f"reading the user: unexpected answer ({exc})") from exc

    async def _primary_email(self, token: str) -> str | None:
        what = "reading the user's e-mail addresses"
        resp = await self._request(what, "GET", f"{self._api}/user/emails", token)
        if resp.status_code in (401, 403, 404):
            return None  # the App lacks the "Email addresses" permission: no address
        entries = _json(what, _expect(what, resp, 200))
        if not isinstance(entries, list):
            raise GitHubError(f"{what}: expected a list")
        for entry in entries:
            if isinstance(entry, dict) and entry.get("primary") and entry.get("verified"):
                return _str_or_none(entry.get("email"))
        return None

    async def user_installations(self, token: str) -> list[GitHubInstallation]:
        """The App's installations the user can reach (their own, their organisations')."""
        what = "listing the user's installations"
        url: str | None = f"{self._api}/user/installations?per_page={PER_PAGE}"
        found: list[GitHubInstallation] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            resp = _expect(what, await self._request(what, "GET", url, token), 200)
            page = _object(what, _json(what, resp)).get("installations")
            if not isinstance(page, list):
                raise GitHubError(f"{what}: no installations list")
            found.extend(_installation(what, item) for item in page)
            url = resp.links.get("next", {}).get("url")
        return found

    # --- the App's own calls -------------------------------------------------------------

    async def installation(self, installation_id: int) -> GitHubInstallation | None:
        """An installation of this App, checked with GitHub; None if GitHub knows none."""
        what = f"reading installation {installation_id}"
        resp = await self._request(
            what, "GET", f"{self._api}/app/installations/{int(installation_id)}", self._jwt(what)
        )
        if resp.status_code == 404:
            return None
        return _installation(what, _json(what, _expect(what, resp, 200)))

    async def org_member(self, installation_id: int, org: str, login: str) -> bool:
        """Whether GitHub lists `login` as a member of organisation `org`."""
        what = f"checking {login}'s membership of {org}"
        resp = await self._as_installation(
            what, installation_id, f"/orgs/{_segment(org)}/members/{_segment(login)}"
        )
        if resp.status_code == 204:
            return True
        if resp.status_code in (302, 404):
            return False  # 302: the asker may not see members (not a member itself)
        raise _status_error(what, resp)

    async def file_at(self, installation_id: int, repo: str, path: str, ref: str) -> str | None:
        """The text of `path` in `repo` ("owner/name") at `ref`; None if there is no such
        file (missing, or a directory)."""
        what = f"reading {path} of {repo} at {ref}"
        resp = await self._contents(what, installation_id, repo, path, ref)
        if resp.status_code == 404:
            return None
        body = _json(what, _expect(what, resp, 200))
        if not isinstance(body, dict) or body.get("type") != "file":
            return None
        if body.get("encoding") != "base64":
            raise GitHubError(f"{what}: the file is too large for the contents API")
        try:
            return base64.b64decode(_str(body.get("content"))).decode("utf-8", "replace")
        except (TypeError, ValueError) as exc:
            raise GitHubError(f"{what}: undecodable content ({exc})") from exc

    async def files_in(self, installation_id: int, repo: str, path: str, ref: str) -> list[str]:
        """Names of the files (not subdirectories) in directory `path` of `repo` at `ref`,
        sorted; [] if there is no such directory."""
        what = f"listing {path} of {repo} at {ref}"
        resp = await self._contents(what, installation_id, repo, path, ref)
        if resp.status_code == 404:
            return []
        body = _json(what, _expect(what, resp, 200))
        if not isinstance(body, list):
            return []  # a file, not a directory
        return sorted(
            entry["name"]
            for entry in body
            if isinstance(entry, dict)
            and entry.get("type") == "file"
            and isinstance(entry.get("name"), str)
        )

    async def _contents(
        self, what: str, installation_id: int, repo: str, path: str, ref: str
    ) -> httpx.Response:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise GitHubError(f"{what}: the repository is not named owner/name")
        where = f"/repos/{_segment(owner)}/{_segment(name)}/contents/{quote(path.strip('/'))}"
        return await self._as_installation(what, installation_id, where, {"ref": ref})

    async def _as_installation(
        self, what: str, installation_id: int, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        token = await self._installation_token(what, installation_id)
        resp = await self._request(what, "GET", f"{self._api}{path}", token, params)
        if resp.status_code == 401:
            self._app.forget(installation_id)  # revoked early: the next call fetches anew
            raise _status_error(what, resp)
        return resp

    async def _installation_token(self, what: str, installation_id: int) -> str:
        cached = self._app.token(installation_id)
        if cached is not None:
            return cached
        url = f"{self._api}/app/installations/{int(installation_id)}/access_tokens"
        resp = _expect(what, await self._request(what, "POST", url, self._jwt(what)), 201)
        body = _object(what, _json(what, resp))
        token, expires_at = body.get("token"), body.get("expires_at")
        if not isinstance(token, str) or not isinstance(expires_at, str):
            raise GitHubError(f"{what}: GitHub issued no installation token")
        self._app.keep(installation_id, token, expires_at)
        return token

    def _jwt(self, what: str) -> str:
        if not self.app_configured:
            raise GitHubError(f"{what}: the GitHub App is not configured (HUTCH_GITHUB_APP_*)")
        try:
            return self._app.jwt()
        except AppKeyError as exc:
            raise GitHubError(f"{what}: {exc}") from exc

    # --- HTTP ----------------------------------------------------------------------------

    async def _get(self, what: str, path: str, token: str) -> Any:
        resp = await self._request(what, "GET", f"{self._api}{path}", token)
        return _json(what, _expect(what, resp, 200))

    async def _request(
        self,
        what: str,
        method: str,
        url: str,
        token: str,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {token}",
        }
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
                resp = await client.request(method, url, headers=headers, params=params)
        except httpx.HTTPError as exc:
            raise GitHubError(f"{what}: {_describe(exc)}") from exc
        if resp.status_code >= 500:
            raise _status_error(what, resp)
        return resp


def _expect(what: str, resp: httpx.Response, status: int) -> httpx.Response:
    if resp.status_code != status:
        raise _status_error(what, resp)
    return resp


def _status_error(what: str, resp: httpx.Response) -> GitHubError:
    message = ""
    try:
        body = resp.json()
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("error") or "")
    except ValueError:
        pass
    detail = f": {message[:200]}" if message else ""
    return GitHubError(f"{what}: GitHub answered {resp.status_code}{detail}")


def _describe(exc: Exception) -> str:
    kind = type(exc).__name__
    text = str(exc)
    return f"GitHub unreachable ({kind}: {text})" if text else f"GitHub unreachable ({kind})"


def _json(what: str, resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError as exc:
        raise GitHubError(f"{what}: GitHub's answer is not JSON") from exc


def _object(what: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GitHubError(f"{what}: expected a JSON object")
    return value


def _installation(what: str, item: Any) -> GitHubInstallation:
    try:
        account = item["account"]
        return GitHubInstallation(
            id=_int(item["id"]),
            account_login=_str(account["login"]),
            account_id=_int(account["id"]),
            account_type=_str(account["type"]),
            repository_selection=_str(item.get("repository_selection") or "all"),
            avatar_url=_str_or_none(account.get("avatar_url")),
        )
    except (KeyError, TypeError) as exc:
        raise GitHubError(f"{what}: unexpected installation ({exc!r})") from exc


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, not {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {value!r}")
    return value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _segment(value: str) -> str:
    return quote(value, safe="")
