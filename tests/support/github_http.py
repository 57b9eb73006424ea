"""The stand-in's HTTP side (tests/support/github_standin.py holds the state): GitHub's OAuth
web flow at the root, and its REST API under /api/v3 (where GitHub Enterprise Server has it,
so a client that drops the API URL's path is caught).

Answers follow GitHub's documentation: a refused code is a 200 carrying `error`; an unknown
or bad credential is 401 `{"message": "Bad credentials"}`; a repository an installation does
not cover is 404, as GitHub hides what a token may not see."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
import orjson

from tests.support import github_payloads as shapes
from tests.support.github_standin import GitHubStandIn, InstallationToken

DOCS = "https://docs.github.com/rest"
API = "/api/v3"


class Answer(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def refuse(status: int, message: str) -> Answer:
    return Answer(status, {"message": message, "documentation_url": DOCS, "status": str(status)})


def handler_for(gh: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with gh.lock:
                gh.requests.append((method, parts.path))
            try:
                if gh.fail_with is not None:
                    raise Answer(
                        gh.fail_with, "<html>Unicorn! No server is currently available</html>"
                    )
                route = _route(method, parts.path)
                if route is None:
                    raise refuse(404, "Not Found")
                action, args = route
                with gh.lock:
                    action(_Request(self, gh, query, body), *args)
                raise Answer(500, "no answer")  # every action raises its Answer
            except Answer as answer:
                self._answer(answer)
            except Exception as exc:  # a stand-in bug or a test's inconsistent state: say which
                self._answer(Answer(500, {"message": f"stand-in failed: {exc!r}"}))

        def _answer(self, answer: Answer) -> None:
            if isinstance(answer.body, str):
                data, kind = answer.body.encode(), "text/html; charset=utf-8"
            elif isinstance(answer.body, bytes):
                data, kind = answer.body, "application/x-www-form-urlencoded"
            elif answer.body is None:
                data, kind = b"", ""
            else:
                data, kind = orjson.dumps(answer.body), "application/json; charset=utf-8"
            self.send_response(answer.status)
            if kind:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _Request:
    def __init__(
        self, handler: BaseHTTPRequestHandler, gh: GitHubStandIn, query: dict[str, str], body: bytes
    ) -> None:
        self.headers = handler.headers
        self.gh = gh
        self.query = query
        self.body = body

    def bearer(self) -> str:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token:
            raise refuse(401, "Requires authentication")
        return token.strip()

    def user(self) -> str:
        login = self.gh.user_tokens.get(self.bearer())
        if login is None:
            raise refuse(401, "Bad credentials")
        return login

    def app(self) -> None:
        """Check the App JWT as GitHub does: RS256 under the App's key, issued by the App,
        not expired, lasting at most ten minutes."""
        token = self.bearer()
        try:
            claims = jwt.decode(
                token,
                self.gh.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise refuse(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires",
            ) from None
        except jwt.PyJWTError:
            raise refuse(401, "A JSON web token could not be decoded") from None
        if str(claims["iss"]) != str(self.gh.app_id):
            raise refuse(401, "Integration not found")
        if claims["exp"] - claims["iat"] > 600:
            raise refuse(401, "'Expiration time' claim ('exp') is too far in the future")

    def installation(self) -> int:
        found = self.gh.installation_tokens.get(self.bearer())
        if found is None or found.expires <= time.time():
            raise refuse(401, "Bad credentials")
        return found.installation_id


def authorize(req: _Request) -> None:
    gh = req.gh
    if req.query.get("client_id") != gh.client_id:
        raise Answer(404, "<html>Not Found: no application with this client_id</html>")
    redirect_uri = req.query.get("redirect_uri")
    if not redirect_uri:
        raise Answer(400, "<html>The redirect_uri is missing</html>")
    if gh.signed_in is None:
        raise Answer(403, "<html>Sign in to GitHub to continue (stand-in: call sign_in)</html>")
    params = {"code": gh.issue_code(gh.signed_in, redirect_uri)}
    if "state" in req.query:
        params["state"] = req.query["state"]
    glue = "&" if "?" in redirect_uri else "?"
    raise Answer(302, "", {"Location": f"{redirect_uri}{glue}{urlencode(params)}"})


def access_token(req: _Request) -> None:
    gh = req.gh
    form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
    scheme, _, basic = (req.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        user, _, password = base64.b64decode(basic).decode().partition(":")
        form.setdefault("client_id", unquote(user))
        form.setdefault("client_secret", unquote(password))
    as_json = "application/json" in (req.headers.get("Accept") or "")

    def answer(values: dict[str, Any]) -> Answer:
        if as_json:
            return Answer(200, values)
        return Answer(200, urlencode({k: str(v) for k, v in values.items()}).encode())

    def error(code: str, description: str) -> Answer:
        uri = f"https://docs.github.com/apps/oauth-apps/troubleshooting#{code.replace('_', '-')}"
        return answer({"error": code, "error_description": description, "error_uri": uri})

    if form.get("client_id") != gh.client_id or form.get("client_secret") != gh.client_secret:
        raise error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        )
    code = form.get("code", "")
    found = gh.codes.get(code)
    if found is None or time.monotonic() - found.issued > gh.code_ttl_s:
        gh.refused_codes.append(code)
        raise error("bad_verification_code", "The code passed is incorrect or expired.")
    if form.get("redirect_uri") and form["redirect_uri"] != found.redirect_uri:
        gh.refused_codes.append(code)
        raise error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        )
    del gh.codes[code]
    gh.redeemed.append(code)
    raise answer(
        {
            "access_token": gh.user_token(found.login),
            "expires_in": 28800,
            "refresh_token": "ghr_" + hashlib.sha256(code.encode()).hexdigest()[:40],
            "refresh_token_expires_in": 15811200,
            "scope": "",
            "token_type": "bearer",
        }
    )


def user(req: _Request) -> None:
    raise Answer(200, shapes.user_json(req.gh.url, req.gh.api_url, req.gh.account(req.user())))


def user_emails(req: _Request) -> None:
    account = req.gh.account(req.user())
    if account.email is None:
        raise Answer(200, [])
    visibility = "public" if account.public_email else "private"
    entry = {"email": account.email, "primary": True, "verified": True, "visibility": visibility}
    raise Answer(200, [entry])


def user_installations(req: _Request) -> None:
    gh = req.gh
    login = req.user().lower()
    seen = [
        i
        for i in gh.installations.values()
        if i.account.login.lower() == login or login in i.account.members
    ]
    per_page = max(1, min(100, int(req.query.get("per_page", "30"))))
    page = max(1, int(req.query.get("page", "1")))
    chosen = seen[(page - 1) * per_page : page * per_page]
    headers = {}
    if page * per_page < len(seen):
        following = f"{gh.api_url}/user/installations?per_page={per_page}&page={page + 1}"
        headers["Link"] = f'<{following}>; rel="next"'
    items = [shapes.installation_json(gh.url, gh.api_url, gh.app_id, i) for i in chosen]
    raise Answer(200, {"total_count": len(seen), "installations": items}, headers)


def app_installation(req: _Request, installation_id: str) -> None:
    req.app()
    inst = req.gh.installations.get(int(installation_id))
    if inst is None:
        raise refuse(404, "Not Found")
    raise Answer(200, shapes.installation_json(req.gh.url, req.gh.api_url, req.gh.app_id, inst))


def installation_token(req: _Request, installation_id: str) -> None:
    req.app()
    gh = req.gh
    inst = gh.installations.get(int(installation_id))
    if inst is None:
        raise refuse(404, "Not Found")
    if inst.suspended:
        raise refuse(403, "This installation has been suspended")
    token = "ghs_" + hashlib.sha256(f"{inst.id}{time.time_ns()}".encode()).hexdigest()[:36]
    expires = time.time() + gh.token_ttl_s
    gh.installation_tokens[token] = InstallationToken(inst.id, expires)
    gh.installation_tokens_issued += 1
    at = datetime.fromtimestamp(int(expires), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "token": token,
        "expires_at": at,
        "permissions": shapes.PERMISSIONS,
        "repository_selection": inst.selection,
    }
    raise Answer(201, body)


def org_member(req: _Request, org: str, login: str) -> None:
    gh = req.gh
    inst = gh.installations[req.installation()]
    account = gh.accounts.get(unquote(org).lower())
    if account is None or account.type != "Organization":
        raise refuse(404, "Not Found")
    if inst.account is not account:
        raise refuse(403, "Resource not accessible by integration")
    raise Answer(204 if unquote(login).lower() in account.members else 404, None)


def contents(req: _Request, owner: str, name: str, path: str = "") -> None:
    gh = req.gh
    inst = gh.installations[req.installation()]
    full_name = f"{unquote(owner)}/{unquote(name)}"
    repo = gh.repos.get(full_name.lower())
    if repo is None or not gh.covers(inst, full_name):
        raise refuse(404, "Not Found")
    ref = req.query.get("ref") or "main"
    sha = ref if ref in repo.commits else repo.branches.get(ref.removeprefix("refs/heads/"))
    if sha is None:
        raise refuse(404, f"No commit found for the ref {ref}")
    tree = repo.commits[sha]
    path = unquote(path).strip("/")
    if path in tree:
        text = tree[path].encode()
        blob = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()  # noqa: S324
        encoded = base64.encodebytes(text).decode()  # GitHub wraps it at 60-76 columns too
        entry = shapes.content_entry(gh.url, gh.api_url, repo, path, "file", blob)
        raise Answer(200, {**entry, "size": len(text), "encoding": "base64", "content": encoded})
    prefix = f"{path}/" if path else ""
    children: dict[str, str] = {}
    for file in tree:
        if file.startswith(prefix):
            head, slash, _ = file[len(prefix) :].partition("/")
            children[head] = "dir" if slash else children.get(head, "file")
    if not children:
        raise refuse(404, "Not Found")
    listing = [
        shapes.content_entry(gh.url, gh.api_url, repo, prefix + child, kind, "0" * 40)
        for child, kind in sorted(children.items())
    ]
    raise Answer(200, listing)


ROUTES: list[tuple[str, re.Pattern[str], Callable[..., None]]] = [
    ("GET", re.compile(r"/login/oauth/authorize"), authorize),
    ("POST", re.compile(r"/login/oauth/access_token"), access_token),
    ("GET", re.compile(API + r"/user"), user),
    ("GET", re.compile(API + r"/user/emails"), user_emails),
    ("GET", re.compile(API + r"/user/installations"), user_installations),
    ("GET", re.compile(API + r"/app/installations/(\d+)"), app_installation),
    ("POST", re.compile(API + r"/app/installations/(\d+)/access_tokens"), installation_token),
    ("GET", re.compile(API + r"/orgs/([^/]+)/members/([^/]+)"), org_member),
    ("GET", re.compile(API + r"/repos/([^/]+)/([^/]+)/contents/?(.*)"), contents),
]


def _route(method: str, path: str) -> tuple[Callable[..., None], tuple[str, ...]] | None:
    for verb, pattern, action in ROUTES:
        match = pattern.fullmatch(path)
        if match and verb == method:
            return action, match.groups()
    return None
