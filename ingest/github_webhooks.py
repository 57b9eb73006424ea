"""GitHub's webhooks for the Hutch GitHub App (the App's "Webhook URL"):

    POST /api/github/webhook    X-Hub-Signature-256, X-GitHub-Event, X-GitHub-Delivery

In this order: a signature header is required (401 `missing_signature`); without a webhook
secret (HUTCH_GITHUB_WEBHOOK_SECRET) nothing can be verified (503 `github_not_configured`);
the body is read up to MAX_BODY (413); `sha256=` HMAC-SHA256 of the exact bytes received under
the secret, compared in constant time (401 `bad_signature`); then the event and delivery
headers (400) and the JSON. A delivery id already recorded is answered 200 "delivery already
received" with nothing done (replays are dropped; ingest/github_deliveries.py).

- `ping`: 200 with GitHub's zen.
- `installation`: `created` / `new_permissions_accepted` link it to its account's tenant
  (ingest/tenant_commands.py; members come from sign-in and setup), with the repositories
  the event lists; `deleted` unlinks it; `suspend` / `unsuspend` are recorded only.
- `installation_repositories`: the repositories added and removed (and a changed selection).
- `push`: jobs from the commit's manifests (ingest/github_push.py), read with the App's
  credentials (none configured: 503 `github_not_configured`).
- Any other event: 202, recorded and otherwise ignored.

Events about an installation Hutch has not linked (other than linking it) are 404
`unknown_installation`, nothing recorded. GitHub unreachable while handling one: 502
`github_unavailable`, nothing recorded; GitHub shows the delivery failed and it can be
redelivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import (
    BadGateway,
    BadRequest,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from base.github import GitHub, GitHubError, GitHubInstallation
from ingest import github_deliveries as deliveries
from ingest import tenant_commands as tenants
from ingest.github_push import REPOSITORY, github_id, push_jobs
from schemas.people import DeliveryReceived, Repository
from state import people_reads as qp
from state.command_context import CommandContext
from web.body import media_type, read_body, send_json

MAX_BODY = 8 * 1024 * 1024
"""GitHub sends at most 25 MB; what Hutch acts on (a push, an installation's repositories) is
a few KiB to a few hundred. The body is read before its signature can be checked, so the
bound is what an unauthenticated caller can make Hutch hold."""
EVENT = re.compile(r"^[a-z_]{1,64}$")
LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
"""GitHub's logins (at most 39 of letters, digits and -) with room to spare: nothing a store
or a tenant name chokes on."""
DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
SIGNATURE = "X-Hub-Signature-256"
MAX_SUMMARY_REPOSITORIES = 20


def verify(secret: str, body: bytes, signature: str) -> None:
    """Refuse (401) a body whose `sha256=<hex>` signature is not the secret's HMAC of it."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise Unauthorized(
            f"{SIGNATURE} does not match the body under the webhook secret",
            field=SIGNATURE,
            code="bad_signature",
        )


def _header(req: falcon.asgi.Request, name: str, pattern: re.Pattern[str]) -> str:
    value = req.get_header(name)
    if value is None or not pattern.match(value):
        raise BadRequest(
            f"{name} is required, as GitHub sends it", field=name, code="bad_webhook_header"
        )
    return value


def _installation(payload: dict[str, Any]) -> GitHubInstallation:
    """The installation an installation event describes (GitHub signed it: no need to ask)."""
    item = payload.get("installation")
    item = item if isinstance(item, dict) else {}
    account = item.get("account")
    account = account if isinstance(account, dict) else {}
    installation_id, account_id = github_id(item.get("id")), github_id(account.get("id"))
    login, kind = account.get("login"), account.get("type")
    valid = isinstance(login, str) and LOGIN.match(login)
    if installation_id is None or account_id is None or not valid:
        raise BadRequest(
            "installation (with its id and account) is missing or malformed",
            field="installation",
            code="bad_payload",
        )
    selection = payload.get("repository_selection", item.get("repository_selection"))
    avatar = account.get("avatar_url")
    return GitHubInstallation(
        id=installation_id,
        account_login=str(login),
        account_id=account_id,
        account_type="Organization" if kind == "Organization" else "User",
        repository_selection=selection if selection in ("all", "selected") else "all",
        avatar_url=avatar if isinstance(avatar, str) and _url(avatar) else None,
    )


def _url(text: str) -> bool:
    return 0 < len(text) <= 2048 and text.isprintable() and " " not in text


def _repositories(payload: dict[str, Any], name: str) -> list[Repository]:
    items = payload.get(name) or []
    if not isinstance(items, list):
        raise BadRequest(f"{name} must be a list", field=name, code="bad_payload")
    found: list[Repository] = []
    for item in items:
        repository_id = github_id(item.get("id")) if isinstance(item, dict) else None
        if repository_id is None or not REPOSITORY.match(str(item.get("full_name"))):
            raise BadRequest(
                f"{name}: each has an id and a full_name", field=name, code="bad_payload"
            )
        found.append(Repository(repository_id, item["full_name"]))
    return found


def _names(repositories: list[Repository]) -> list[str]:
    return [r.full_name for r in repositories[:MAX_SUMMARY_REPOSITORIES]]


class GitHubWebhook:
    def __init__(self, ctx: CommandContext, github: GitHub) -> None:
        self._ctx = ctx
        self._github = github

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        signature = req.get_header(SIGNATURE)
        if not signature:
            raise Unauthorized(
                f"{SIGNATURE} is required: GitHub signs each delivery with the webhook secret",
                field=SIGNATURE,
                code="missing_signature",
            )
        secret = self._ctx.settings.github_webhook_secret
        if not secret:
            raise ServiceUnavailable(
                "GitHub webhooks are not configured here (HUTCH_GITHUB_WEBHOOK_SECRET)",
                code="github_not_configured",
            )
        body = await read_body(req, MAX_BODY)
        verify(secret, body, signature)
        event = _header(req, "X-GitHub-Event", EVENT)
        delivery = _header(req, "X-GitHub-Delivery", DELIVERY)
        kind = media_type(req)
        if kind not in ("", "application/json"):
            raise UnsupportedMediaType(
                "set the webhook's content type to application/json", field="Content-Type"
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None
        if not isinstance(payload, dict):
            raise BadRequest("the payload must be a JSON object", code="bad_body")
        if await deliveries.seen(self._ctx, delivery):
            send_json(resp, 200, {"message": "delivery already received", "delivery": delivery})
            return
        try:
            status, answer = await self._handle(event, delivery, payload)
        except GitHubError as exc:
            raise BadGateway(
                f"GitHub could not be read ({exc}); nothing was recorded: redeliver it later",
                code="github_unavailable",
            ) from None
        send_json(resp, status, answer)

    async def _handle(
        self, event: str, delivery: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        action = payload.get("action")
        action = action if isinstance(action, str) and EVENT.match(action) else None
        if event == "push":
            if not self._github.app_configured:
                raise ServiceUnavailable(
                    "the GitHub App is not configured here (HUTCH_GITHUB_APP_ID, "
                    "HUTCH_GITHUB_APP_KEY): a push's manifests cannot be read",
                    code="github_not_configured",
                )
            return await push_jobs(self._ctx, self._github, delivery, payload)
        if event == "installation":
            summary, key = await self._installation_event(action, payload)
        elif event == "installation_repositories":
            summary, key = await self._repositories_event(payload)
        else:
            summary, key = {}, None
        installation = payload.get("installation")
        installation_id = (
            github_id(installation.get("id")) if isinstance(installation, dict) else None
        )
        received = DeliveryReceived(delivery, event, action, installation_id, summary)
        if not await deliveries.record(self._ctx, received, key):
            return 200, {"message": "delivery already received", "delivery": delivery}
        if event == "ping":
            zen = payload.get("zen")
            said = f"pong: {zen}" if isinstance(zen, str) else "pong"
            return 200, {"message": said, "delivery": delivery}
        if event in ("installation", "installation_repositories"):
            what = f"{event}{'.' + action if action else ''}"
            return 200, {"message": f"{what} applied", "delivery": delivery, **summary}
        return 202, {"message": f"{event} events are not acted on; recorded", "delivery": delivery}

    async def _known(self, installation_id: int) -> qp.Installation:
        known = await asyncio.to_thread(qp.installation_by_id, self._ctx.db, installation_id)
        if known is None or known.removed_at is not None:
            raise NotFound(
                f"installation {installation_id} is not linked to a tenant here",
                field="installation.id",
                code="unknown_installation",
            )
        return known

    async def _installation_event(
        self, action: str | None, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        installation = _installation(payload)
        summary: dict[str, Any] = {"account": installation.account_login}
        if action in ("created", "new_permissions_accepted"):
            repositories = _repositories(payload, "repositories")
            tenant = await tenants.link_installation(self._ctx, installation, None)
            if repositories:
                await tenants.change_repositories(self._ctx, installation.id, repositories, [])
            return summary | {"tenant": tenant, "repositories": _names(repositories)}, tenant
        known = await self._known(installation.id)
        if action == "deleted":
            await tenants.remove_installation(self._ctx, installation.id)
        return summary | {"tenant": known.tenant_id}, known.tenant_id

    async def _repositories_event(
        self, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        installation = _installation(payload)
        added = _repositories(payload, "repositories_added")
        removed = _repositories(payload, "repositories_removed")
        known = await self._known(installation.id)
        if known.repository_selection != installation.repository_selection:
            await tenants.link_installation(self._ctx, installation, None)
        await tenants.change_repositories(self._ctx, installation.id, added, removed)
        summary = {
            "tenant": known.tenant_id,
            "added": _names(added),
            "removed": _names(removed),
        }
        return summary, known.tenant_id
