"""JSON shapes of GitHub's REST answers and webhook payloads, as the stand-in's state makes
them (tests/support/github_standin.py): the members GitHub documents, so code written against
these reads real GitHub's too."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

APP_SLUG = "hutch-ci"
PERMISSIONS = {"contents": "read", "members": "read", "metadata": "read"}
EVENTS = ["push", "installation", "installation_repositories"]
CREATED_AT = "2026-01-01T00:00:00Z"


@dataclass
class Account:
    login: str
    id: int
    type: str  # "User" | "Organization"
    name: str | None = None
    email: str | None = None
    public_email: bool = False
    members: set[str] = field(default_factory=set)
    """Logins (lowercase) of an organisation's members."""


@dataclass
class Repo:
    owner: Account
    name: str
    id: int
    commits: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per commit sha, the whole tree: path -> text."""
    messages: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    """Branch name -> head sha."""

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Installation:
    id: int
    account: Account
    selection: str  # "all" | "selected"
    repositories: set[str] = field(default_factory=set)
    """Full names, lowercase, when the selection is "selected"."""
    suspended: bool = False


def node_id(kind: str, number: int) -> str:
    return f"{kind}_{hashlib.sha1(f'{kind}{number}'.encode()).hexdigest()[:12]}"  # noqa: S324


def account_json(web: str, api: str, account: Account) -> dict[str, Any]:
    return {
        "login": account.login,
        "id": account.id,
        "node_id": node_id("U" if account.type == "User" else "O", account.id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{account.id}?v=4",
        "gravatar_id": "",
        "url": f"{api}/users/{account.login}",
        "html_url": f"{web}/{account.login}",
        "type": account.type,
        "site_admin": False,
    }


def user_json(web: str, api: str, user: Account) -> dict[str, Any]:
    """GET /user's answer."""
    return {
        **account_json(web, api, user),
        "name": user.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": user.email if user.public_email else None,
        "hireable": None,
        "bio": None,
        "public_repos": 0,
        "followers": 0,
        "following": 0,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
    }


def installation_json(web: str, api: str, app_id: int, inst: Installation) -> dict[str, Any]:
    return {
        "id": inst.id,
        "account": account_json(web, api, inst.account),
        "repository_selection": inst.selection,
        "access_tokens_url": f"{api}/app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{api}/installation/repositories",
        "html_url": f"{web}/settings/installations/{inst.id}",
        "app_id": app_id,
        "app_slug": APP_SLUG,
        "client_id": None,
        "target_id": inst.account.id,
        "target_type": inst.account.type,
        "permissions": PERMISSIONS,
        "events": EVENTS,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": "2026-01-02T00:00:00Z" if inst.suspended else None,
    }


def repo_short_json(repo: Repo) -> dict[str, Any]:
    """A repository as installation webhooks list it."""
    return {
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": True,
    }


def repo_json(web: str, api: str, repo: Repo) -> dict[str, Any]:
    """A repository as a push webhook carries it."""
    return {
        **repo_short_json(repo),
        "owner": {
            **account_json(web, api, repo.owner),
            "name": repo.owner.login,
            "email": None,
        },
        "html_url": f"{web}/{repo.full_name}",
        "description": None,
        "fork": False,
        "url": f"{web}/{repo.full_name}",
        "clone_url": f"{web}/{repo.full_name}.git",
        "git_url": f"git://{web.split('://', 1)[-1]}/{repo.full_name}.git",
        "ssh_url": f"git@{web.split('://', 1)[-1].split(':')[0]}:{repo.full_name}.git",
        "default_branch": "main",
        "master_branch": "main",
        "visibility": "private",
        "created_at": 1767225600,
        "pushed_at": 1767225600,
    }


def content_entry(web: str, api: str, repo: Repo, path: str, kind: str, sha: str) -> dict[str, Any]:
    """One entry of a contents API answer (a directory lists these)."""
    return {
        "type": kind,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "size": 0,
        "url": f"{api}/repos/{repo.full_name}/contents/{path}",
        "html_url": f"{web}/{repo.full_name}/blob/main/{path}",
        "git_url": f"{api}/repos/{repo.full_name}/git/blobs/{sha}",
        "download_url": None,
        "_links": {},
    }


# --- webhook payloads -------------------------------------------------------------------


def push_json(
    web: str,
    api: str,
    repo: Repo,
    *,
    sha: str,
    before: str,
    ref: str,
    message: str,
    pusher: Account,
    installation_id: int | None,
) -> dict[str, Any]:
    """A `push` event's payload for one commit."""
    author = {
        "name": pusher.name or pusher.login,
        "email": pusher.email or "",
        "username": pusher.login,
    }
    commit = {
        "id": sha,
        "tree_id": hashlib.sha1(f"tree{sha}".encode()).hexdigest(),  # noqa: S324
        "distinct": True,
        "message": message,
        "timestamp": "2026-01-01T12:00:00+00:00",
        "url": f"{web}/{repo.full_name}/commit/{sha}",
        "author": author,
        "committer": author,
        "added": sorted(repo.commits.get(sha, {})),
        "removed": [],
        "modified": [],
    }
    payload: dict[str, Any] = {
        "ref": ref,
        "before": before,
        "after": sha,
        "repository": repo_json(web, api, repo),
        "pusher": {"name": pusher.login, "email": pusher.email or ""},
        "sender": account_json(web, api, pusher),
        "created": before == "0" * 40,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"{web}/{repo.full_name}/compare/{before[:12]}...{sha[:12]}",
        "commits": [commit],
        "head_commit": commit,
    }
    if installation_id is not None:
        payload["installation"] = {"id": installation_id, "node_id": node_id("I", installation_id)}
    return payload


def installation_event_json(
    web: str,
    api: str,
    app_id: int,
    inst: Installation,
    *,
    action: str,
    repositories: list[Repo],
    sender: Account,
) -> dict[str, Any]:
    """An `installation` event's payload (created, deleted, suspend, unsuspend, ...)."""
    payload: dict[str, Any] = {
        "action": action,
        "installation": installation_json(web, api, app_id, inst),
        "requester": None,
        "sender": account_json(web, api, sender),
    }
    if action in ("created", "deleted", "new_permissions_accepted"):
        payload["repositories"] = [repo_short_json(r) for r in repositories]
    return payload


def installation_repositories_json(
    web: str,
    api: str,
    app_id: int,
    inst: Installation,
    *,
    added: list[Repo],
    removed: list[Repo],
    sender: Account,
) -> dict[str, Any]:
    """An `installation_repositories` event's payload."""
    return {
        "action": "added" if added else "removed",
        "installation": installation_json(web, api, app_id, inst),
        "repository_selection": inst.selection,
        "repositories_added": [repo_short_json(r) for r in added],
        "repositories_removed": [repo_short_json(r) for r in removed],
        "requester": None,
        "sender": account_json(web, api, sender),
    }


def ping_json(web: str, api: str, app_id: int, hook_id: int, url: str) -> dict[str, Any]:
    """The `ping` GitHub sends when a webhook is set up."""
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": hook_id,
        "hook": {
            "type": "App",
            "id": hook_id,
            "name": "web",
            "active": True,
            "events": EVENTS,
            "config": {"content_type": "json", "insecure_ssl": "0", "url": url},
            "updated_at": CREATED_AT,
            "created_at": CREATED_AT,
            "app_id": app_id,
            "deliveries_url": f"{api}/app/hook/deliveries",
        },
    }
