"""A local GitHub for tests: a real HTTP server on 127.0.0.1 speaking the subset of GitHub's
OAuth and REST API Hutch uses (tests/support/github_http.py), whose state a test sets here
in Python, and which sends webhooks signed as GitHub signs them.

    with github_standin(tmp_dir) as github:
        github.add_user("octocat", name="The Octocat", email="octo@example.org")
        github.add_org("acme", members=["octocat"])
        sha = github.commit("acme/widgets", {".build.yml": "image: alpine/edge\\n"})
        installation = github.install("acme", repositories=["widgets"])
        github.sign_in("octocat")  # the browser's GitHub session: authorize approves as them
        ... serve_in_thread(data, **github.env) ...
        github.send_webhook(url, "push", github.push_payload("acme/widgets", sha))

Sign-in: /login/oauth/authorize approves at once as the signed-in user (403 if none) and
redirects with a single-use code (10 minutes, as GitHub). The App: a fresh RSA key pair; its
PEM private key is in `env["HUTCH_GITHUB_APP_KEY"]`, JWTs are checked against its public key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import github_payloads as shapes
from tests.support.github_payloads import Account, Installation, Repo
from tests.support.servers import free_port

CODE_TTL_S = 600.0
HOOKSHOT = "GitHub-Hookshot/7c4a3e1"


@dataclass
class Code:
    login: str
    redirect_uri: str
    issued: float


@dataclass
class InstallationToken:
    installation_id: int
    expires: float


@dataclass
class GitHubStandIn:
    url: str
    """The web base (OAuth); the REST API is under `api_url`."""
    key_dir: Path
    app_id: int = 424242
    client_id: str = field(default_factory=lambda: "Iv23li" + secrets.token_hex(7))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    token_ttl_s: float = 3600.0
    """Lifetime of the installation tokens it issues."""
    code_ttl_s: float = CODE_TTL_S
    """How long an authorization code can be exchanged (GitHub: 10 minutes)."""
    fail_with: int | None = None
    """A status (e.g. 502) every request is answered with, to play an outage."""
    # What a test may assert:
    redeemed: list[str] = field(default_factory=list)
    """Codes exchanged for a token, in order."""
    refused_codes: list[str] = field(default_factory=list)
    installation_tokens_issued: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path without query) of every request, in order."""
    deliveries: list[str] = field(default_factory=list)
    """X-GitHub-Delivery of every webhook sent."""
    # State:
    accounts: dict[str, Account] = field(default_factory=dict)
    repos: dict[str, Repo] = field(default_factory=dict)
    installations: dict[int, Installation] = field(default_factory=dict)
    signed_in: str | None = None
    codes: dict[str, Code] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)
    installation_tokens: dict[str, InstallationToken] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(5_000_001, 10**9)))
    _installation_ids: Iterator[int] = field(default_factory=lambda: iter(range(40_000_001, 10**9)))
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v3"

    @property
    def key_path(self) -> Path:
        return self.key_dir / "github-app.pem"

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    @property
    def env(self) -> dict[str, str]:
        """The settings a Hutch server needs to use this stand-in."""
        return {
            "HUTCH_GITHUB_URL": self.url,
            "HUTCH_GITHUB_API_URL": self.api_url,
            "HUTCH_GITHUB_CLIENT_ID": self.client_id,
            "HUTCH_GITHUB_CLIENT_SECRET": self.client_secret,
            "HUTCH_GITHUB_APP_ID": str(self.app_id),
            "HUTCH_GITHUB_APP_KEY": str(self.key_path),
            "HUTCH_GITHUB_WEBHOOK_SECRET": self.webhook_secret,
        }

    def write_key(self) -> None:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # GitHub hands out PKCS#1
            serialization.NoEncryption(),
        )
        self.key_dir.mkdir(parents=True, exist_ok=True)
        self.key_path.write_bytes(pem)
        self.key_path.chmod(0o600)

    # --- state a test sets ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget every account, repository, installation, code, token and record (the
        App's credentials stay): for a module-scoped stand-in shared by tests."""
        with self.lock:
            for kept in (self.accounts, self.repos, self.installations, self.codes):
                kept.clear()
            self.user_tokens.clear()
            self.installation_tokens.clear()
            self.redeemed.clear()
            self.refused_codes.clear()
            self.requests.clear()
            self.deliveries.clear()
            self.installation_tokens_issued = 0
            self.signed_in = None
            self.fail_with = None

    def add_user(
        self,
        login: str,
        id: int | None = None,
        name: str | None = None,
        email: str | None = None,
        *,
        public_email: bool = False,
    ) -> Account:
        """A GitHub user. `email` is their verified primary address (GET /user/emails);
        GET /user shows it only if `public_email`."""
        with self.lock:
            user = Account(login, id or next(self._ids), "User", name, email, public_email)
            self.accounts[login.lower()] = user
            return user

    def add_org(
        self,
        login: str,
        members: Sequence[str] = (),
        id: int | None = None,
    ) -> Account:
        """An organisation and its members (logins of users, added if unknown)."""
        with self.lock:
            org = Account(login, id or next(self._ids), "Organization")
            self.accounts[login.lower()] = org
            for member in members:
                self.add_member(login, member)
            return org

    def add_member(self, org: str, login: str) -> None:
        with self.lock:
            if login.lower() not in self.accounts:
                self.add_user(login)
            self.account(org).members.add(login.lower())

    def remove_member(self, org: str, login: str) -> None:
        with self.lock:
            self.account(org).members.discard(login.lower())

    def rename(self, login: str, new_login: str) -> None:
        """A user renames themselves (their id stays)."""
        with self.lock:
            account = self.accounts.pop(login.lower())
            account.login = new_login
            self.accounts[new_login.lower()] = account

    def account(self, login: str) -> Account:
        with self.lock:
            try:
                return self.accounts[login.lower()]
            except KeyError:
                raise KeyError(f"no GitHub account {login!r}: add_user or add_org it") from None

    def repo(self, full_name: str) -> Repo:
        """A repository, created (empty) if new; its owner must exist."""
        owner, _, name = full_name.partition("/")
        with self.lock:
            found = self.repos.get(full_name.lower())
            if found is None:
                found = Repo(self.account(owner), name, next(self._ids))
                self.repos[full_name.lower()] = found
            return found

    def commit(
        self,
        repo: str,
        files: dict[str, str],
        *,
        branch: str = "main",
        message: str = "Add CI manifests",
    ) -> str:
        """A commit on `branch` whose whole tree is `files` (path -> text); its sha."""
        with self.lock:
            found = self.repo(repo)
            sha = hashlib.sha1(  # noqa: S324 (a commit id, as git makes them)
                orjson.dumps([repo, branch, files, message, len(found.commits)])
            ).hexdigest()
            found.commits[sha] = dict(files)
            found.messages[sha] = message
            found.branches[branch] = sha
            return sha

    def install(
        self,
        account_login: str,
        repositories: Sequence[str] = (),
        selection: str | None = None,
    ) -> int:
        """Install the App on an account; its id. On all the account's repositories
        (selection "all", the default when none are named), or on those named ("name" or
        "owner/name"; selection "selected", the default when some are)."""
        with self.lock:
            account = self.account(account_login)
            chosen = {self._full_name(account, r) for r in repositories}
            for name in chosen:
                self.repo(name)
            kind = selection or ("selected" if chosen else "all")
            inst = Installation(next(self._installation_ids), account, kind, chosen)
            self.installations[inst.id] = inst
            return inst.id

    def uninstall(self, installation_id: int) -> None:
        with self.lock:
            del self.installations[installation_id]
            for token in [
                t
                for t, v in self.installation_tokens.items()
                if v.installation_id == installation_id
            ]:
                del self.installation_tokens[token]

    def suspend(self, installation_id: int, suspended: bool = True) -> None:
        with self.lock:
            self.installations[installation_id].suspended = suspended

    def change_repositories(
        self, installation_id: int, added: Sequence[str] = (), removed: Sequence[str] = ()
    ) -> None:
        """Add or remove repositories of a "selected" installation."""
        with self.lock:
            inst = self.installations[installation_id]
            inst.selection = "selected"
            inst.repositories |= {self._full_name(inst.account, r) for r in added}
            inst.repositories -= {self._full_name(inst.account, r) for r in removed}
            for name in inst.repositories:
                self.repo(name)

    def sign_in(self, login: str | None) -> None:
        """Who the browser is signed in to GitHub as (None: nobody)."""
        with self.lock:
            self.signed_in = None if login is None else self.account(login).login

    def installation_of(self, repo: str) -> int | None:
        """The installation covering `repo`, if any."""
        with self.lock:
            for inst in self.installations.values():
                if self.covers(inst, repo):
                    return inst.id
            return None

    def covers(self, inst: Installation, repo: str) -> bool:
        owner = repo.partition("/")[0].lower()
        if owner != inst.account.login.lower() or inst.suspended:
            return False
        return inst.selection == "all" or repo.lower() in inst.repositories

    def _full_name(self, account: Account, repo: str) -> str:
        return (repo if "/" in repo else f"{account.login}/{repo}").lower()

    # --- webhooks ------------------------------------------------------------------------

    def send_webhook(
        self,
        url: str,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        delivery: str | None = None,
        secret: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST a webhook as GitHub does: the JSON body signed with HMAC-SHA256 under the
        webhook secret (or `secret`); `signature` replaces the header (forgeries), bytes
        replace the body."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        key = (self.webhook_secret if secret is None else secret).encode()
        delivery = delivery or str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": HOOKSHOT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": "500000001",
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
            "X-Hub-Signature": "sha1=" + hmac.new(key, body, "sha1").hexdigest(),
            "X-Hub-Signature-256": signature
            or "sha256=" + hmac.new(key, body, "sha256").hexdigest(),
        }
        self.deliveries.append(delivery)
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def push_payload(
        self,
        repo: str,
        sha: str,
        ref: str = "refs/heads/main",
        message: str | None = None,
        pusher_login: str | None = None,
        before: str = "0" * 40,
    ) -> dict[str, Any]:
        with self.lock:
            found = self.repo(repo)
            pusher = self.account(pusher_login or found.owner.login)
            return shapes.push_json(
                self.url,
                self.api_url,
                found,
                sha=sha,
                before=before,
                ref=ref,
                message=found.messages.get(sha, "") if message is None else message,
                pusher=pusher,
                installation_id=self.installation_of(repo),
            )

    def installation_payload(
        self, action: str, installation_id: int, sender_login: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            inst = self.installations[installation_id]
            repos = [r for r in self.repos.values() if self.covers(inst, r.full_name)]
            return shapes.installation_event_json(
                self.url,
                self.api_url,
                self.app_id,
                inst,
                action=action,
                repositories=repos,
                sender=self.account(sender_login or inst.account.login),
            )

    def installation_repositories_payload(
        self,
        installation_id: int,
        added: Sequence[str] = (),
        removed: Sequence[str] = (),
        sender_login: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            inst = self.installations[installation_id]
            return shapes.installation_repositories_json(
                self.url,
                self.api_url,
                self.app_id,
                inst,
                added=[self.repo(self._full_name(inst.account, r)) for r in added],
                removed=[self.repo(self._full_name(inst.account, r)) for r in removed],
                sender=self.account(sender_login or inst.account.login),
            )

    def ping_payload(self, url: str = "https://hutch.example/api/github/webhook") -> dict[str, Any]:
        return shapes.ping_json(self.url, self.api_url, self.app_id, 500000001, url)

    # --- tokens (for the HTTP side, and for tests that need one directly) -----------------

    def issue_code(self, login: str, redirect_uri: str) -> str:
        with self.lock:
            code = secrets.token_hex(10)
            self.codes[code] = Code(login, redirect_uri, time.monotonic())
            return code

    def user_token(self, login: str) -> str:
        """A user access token for `login`, as a code exchange would give."""
        with self.lock:
            token = "ghu_" + secrets.token_urlsafe(27)
            self.user_tokens[token] = self.account(login).login
            return token


@contextmanager
def github_standin(key_dir: Path) -> Iterator[GitHubStandIn]:
    from tests.support.github_http import handler_for

    port = free_port()
    standin = GitHubStandIn(f"http://127.0.0.1:{port}", key_dir)
    standin.write_key()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(standin))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
